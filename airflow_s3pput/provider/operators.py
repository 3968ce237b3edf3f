"""The three stages of an s3pput upload as Airflow operators: plan, put (mapped), reduce.

They are thin: each builds the engine's options from its (templated) fields and calls the
engine. Nothing here opens a connection before ``execute``, so parsing a DAG is offline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_s3pput.content import DEFAULT_GZIP_TYPES
from airflow_s3pput.engine import selection_of, upload
from airflow_s3pput.errors import UsageError
from airflow_s3pput.etag import MIB
from airflow_s3pput.options import ConnectionSettings, UploadOptions
from airflow_s3pput.planner import Batch, plan_batches
from airflow_s3pput.progress import Progress
from airflow_s3pput.stats import PutResult, Stats
from airflow_s3pput.transport import default_concurrency
from airflow_s3pput.walker import check_sources, walk

log = logging.getLogger(__name__)
T = TypeVar("T")

STATS_XCOM_KEY = "s3pput_stats"
#: the upload settings every put task shares, all templated
UPLOAD_FIELDS: tuple[str, ...] = (
    "source",
    "bucket",
    "prefix",
    "put_mode",
    "dry_run_only",
    "content_type",
    "gzip",
    "gzip_types",
    "headers",
    "grant",
    "include",
    "exclude",
    "follow_symlinks",
    "transport",
    "processes",
    "threads",
    "multipart_threshold",
    "part_size",
    "aws_conn_id",
)


def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence):
        raise TypeError("expected a string or a list of strings")
    return tuple(str(v) for v in value)


def _as_int(value: object) -> int | None:
    """``None`` (or its rendering) means "the default"; anything else must be an integer."""
    if value is None or str(value).strip() in ("", "None"):
        return None
    if isinstance(value, bool) or not str(value).strip().lstrip("-").isdigit():
        raise ValueError("expected an integer")
    return int(str(value))


def _param(name: str, convert: Callable[[Any], T], value: Any) -> T:
    """``convert(value)``, or a ``UsageError`` that names the parameter and shows the value."""
    try:
        return convert(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid {name} {value!r}: {exc}") from None


def _or_default(value: int | None, default: int) -> int:
    # Not ``value or default``: 0 is a bad value to report, not "the default".
    return default if value is None else value


def _as_bool(value: object) -> bool:
    """Templated fields render to strings unless the DAG renders native objects."""
    if isinstance(value, str):
        if value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if value.strip().lower() in ("false", "0", "no", "off", "", "none"):
            return False
        raise ValueError("expected true or false")
    return bool(value)


class _UploadSettings(BaseOperator):
    """Fields shared by the plan and put operators; see ``s3pput_task_group`` for their meaning."""

    def __init__(
        self,
        *,
        source: str | Sequence[str],
        bucket: str = "",
        prefix: str = "",
        put_mode: str = "update",
        dry_run_only: bool = False,
        content_type: str | None = None,
        gzip: bool = False,
        gzip_types: Sequence[str] | None = None,
        headers: Sequence[str] | None = None,
        grant: str | None = None,
        include: Sequence[str] | str | None = None,
        exclude: Sequence[str] | str | None = None,
        follow_symlinks: bool = False,
        transport: str = "auto",
        processes: int | None = None,
        threads: int | None = None,
        multipart_threshold: int = 16 * MIB,
        part_size: int = 16 * MIB,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.bucket = bucket
        self.prefix = prefix
        self.put_mode = put_mode
        # Not ``dry_run``: BaseOperator has a method of that name.
        self.dry_run_only = dry_run_only
        self.content_type = content_type
        self.gzip = gzip
        self.gzip_types = gzip_types
        self.headers = headers
        self.grant = grant
        self.include = include
        self.exclude = exclude
        self.follow_symlinks = follow_symlinks
        self.transport = transport
        self.processes = processes
        self.threads = threads
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.aws_conn_id = aws_conn_id

    def upload_options(self, *, with_connection: bool) -> UploadOptions:
        """Validate the rendered fields into engine options; bad input fails without retries."""
        try:
            connection = ConnectionSettings()
            if with_connection:
                from airflow_s3pput.provider.connection import settings_from_connection

                connection = settings_from_connection(self.aws_conn_id or None)
            default_processes, default_threads = default_concurrency(str(self.transport))
            options = UploadOptions(
                bucket=str(self.bucket or ""),
                sources=_param("source", _as_tuple, self.source),
                prefix=str(self.prefix or ""),
                mode=str(self.put_mode),
                dry_run=_param("dry_run", _as_bool, self.dry_run_only),
                content_type=self.content_type or None,
                gzip=_param("gzip", _as_bool, self.gzip),
                gzip_types=_param("gzip_types", _as_tuple, self.gzip_types) or DEFAULT_GZIP_TYPES,
                headers=_param("headers", _as_tuple, self.headers),
                grant=self.grant or None,
                include=_param("include", _as_tuple, self.include),
                exclude=_param("exclude", _as_tuple, self.exclude),
                follow_symlinks=_param("follow_symlinks", _as_bool, self.follow_symlinks),
                transport=str(self.transport),
                processes=_or_default(_param("processes", _as_int, self.processes), default_processes),
                threads=_or_default(_param("threads", _as_int, self.threads), default_threads),
                multipart_threshold=_or_default(
                    _param("multipart_threshold", _as_int, self.multipart_threshold), 16 * MIB
                ),
                part_size=_or_default(_param("part_size", _as_int, self.part_size), 16 * MIB),
                connection=connection,
            )
            check_sources(options.sources)
        except UsageError as exc:
            raise AirflowFailException(f"s3pput: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise AirflowFailException(f"s3pput: invalid parameter: {exc}") from None
        return options


#: files per batch by default. A mapped task costs an Airflow worker about a second before it
#: puts anything (measured: 5,000 files under the LocalExecutor took 7.9 s in 3 batches, 6.3 s
#: in one), and one task puts ~2,000 small files a second: 10,000 files keep that cost near a
#: tenth, and a large tree still fans out over the workers.
DEFAULT_BATCH_FILES = 10_000


class S3PPutPlanOperator(_UploadSettings):
    """Walk SOURCE and return the list of batch descriptors that the put task is mapped over.

    :param batch_size: at most this many files per batch (templated)
    :param batch_bytes: at most this many bytes per batch (templated)
    :param limit: consider only the first N files of the walk (templated)
    :param max_batches: cap on the batch count; default ``[core] max_map_length``
    """

    template_fields: Sequence[str] = (*UPLOAD_FIELDS, "batch_size", "batch_bytes", "limit")

    def __init__(
        self,
        *,
        batch_size: int = DEFAULT_BATCH_FILES,
        batch_bytes: int = 4096 * MIB,
        limit: int | None = None,
        max_batches: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.limit = limit
        self.max_batches = max_batches

    def execute(self, context: Context) -> list[dict[str, Any]]:
        options = self.upload_options(with_connection=False)
        try:
            limit = _param("limit", _as_int, self.limit)
            batch_size = _or_default(_param("batch_size", _as_int, self.batch_size), DEFAULT_BATCH_FILES)
            batch_bytes = _or_default(_param("batch_bytes", _as_int, self.batch_bytes), 4096 * MIB)
        except UsageError as exc:
            raise AirflowFailException(f"s3pput: {exc}") from None
        if limit is not None and limit < 0:
            raise AirflowFailException(f"s3pput: limit must be 0 or more, not {limit}")
        if batch_size < 1 or batch_bytes < 1:
            raise AirflowFailException("s3pput: batch_size and batch_bytes must be positive")
        max_batches = self.max_batches or max_map_length()
        items = walk(options.sources, options.prefix, selection_of(options))
        batches = plan_batches(
            items,
            max_files=batch_size,
            max_bytes=batch_bytes,
            max_batches=max_batches,
            limit=limit,
        )
        files = sum(b.files for b in batches)
        total = sum(b.bytes for b in batches)
        log.info("planned %d files, %d bytes in %d batches (cap %d)", files, total, len(batches), max_batches)
        return [b.to_dict() for b in batches]


def max_map_length() -> int:
    from airflow.sdk.configuration import conf

    return int(conf.getint("core", "max_map_length", fallback=1024))


class S3PPutBatchOperator(_UploadSettings):
    """Upload one batch (a key range of the walk) with a local putter pool; return its stats.

    When files failed, the stats are pushed to XCom under the key ``s3pput_stats`` and the task
    fails, so that Airflow's retries can complete the batch — idempotently in ``update`` and
    ``add`` mode, which skip what already landed.

    :param batch: a descriptor from the plan task (mapped with ``expand``)
    :param progress_interval: seconds between progress lines in the task log
    """

    template_fields: Sequence[str] = UPLOAD_FIELDS

    def __init__(self, *, batch: dict[str, Any], progress_interval: float = 10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.progress_interval = progress_interval

    def execute(self, context: Context) -> dict[str, Any]:
        batch = Batch.from_dict(self.batch)
        context["batch_label"] = batch.label  # type: ignore[typeddict-unknown-key]
        options = self.upload_options(with_connection=True)
        progress = Progress(total_files=batch.files, total_bytes=batch.bytes, interval=self.progress_interval)
        log.info("batch %d: %d files, %d bytes: %s", batch.index, batch.files, batch.bytes, batch.label)

        def on_result(result: PutResult) -> None:
            progress.add(result)
            if result.action == "fail":
                log.error("failed %s: %s", result.key, result.error)
            if progress.due():
                log.info("progress: %s", progress.line())

        try:
            stats = upload(options, key_range=batch.key_range, on_result=on_result)
        except UsageError as exc:
            raise AirflowFailException(f"s3pput: {exc}") from None
        log.info("progress: %s", progress.line())
        log.info("batch %d summary:\n%s", batch.index, stats.table())
        result = stats.to_dict()
        if not stats.ok:
            # A failed task returns no XCom: push the stats under our own key so that the
            # reduce step still counts this batch, then fail so that retries can finish it.
            context["ti"].xcom_push(key=STATS_XCOM_KEY, value=result)
            raise AirflowException(f"s3pput: {stats.failed} of the batch's files failed")
        return result


class S3PPutReduceOperator(BaseOperator):
    """Merge the per-batch stats into the run's summary, log it as a table, return it.

    Runs whatever happened upstream (``trigger_rule=all_done``): batches whose task died
    before reporting are counted as ``batches_missing``. Fails when any file failed or a batch
    is missing, unless ``fail_on_error`` is false.

    :param plan_task_id: task id of the plan task
    :param put_task_id: task id of the mapped put task
    :param fail_on_error: fail this task (and so the run) on any failure (templated)
    """

    template_fields: Sequence[str] = ("fail_on_error",)

    def __init__(
        self, *, plan_task_id: str, put_task_id: str, fail_on_error: bool = True, **kwargs: Any
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.put_task_id = put_task_id
        self.fail_on_error = fail_on_error

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        plan = ti.xcom_pull(task_ids=self.plan_task_id)
        if plan is None:
            # Without a plan nothing was uploaded: never let the run end green.
            raise AirflowException("s3pput: the plan task failed; nothing was uploaded")
        planned = len(plan)
        parts = [Stats.from_dict(s) for s in self._batch_stats(ti, planned) if s]
        stats = Stats.merge_all(parts)
        summary = stats.to_dict()
        summary["batches"] = planned
        summary["batches_missing"] = planned - len(parts)
        summary["files_planned"] = sum(int(b["files"]) for b in plan)
        log.info("s3pput summary:\n%s", summary_table(stats, summary))
        if self.fail_on_error and (stats.failed or summary["batches_missing"]):
            raise AirflowException(
                f"s3pput: {stats.failed} files failed, {summary['batches_missing']} batches did not report"
            )
        return summary

    def _batch_stats(self, ti: Any, planned: int) -> list[dict[str, Any] | None]:
        """Each batch's stats: its return value, or what a failed try pushed before failing."""
        if not planned:
            return []
        indexes = list(range(planned))
        returned = ti.xcom_pull(task_ids=self.put_task_id, map_indexes=indexes)
        pushed = ti.xcom_pull(task_ids=self.put_task_id, key=STATS_XCOM_KEY, map_indexes=indexes)
        return [r if r is not None else p for r, p in zip(returned, pushed, strict=True)]


def summary_table(stats: Stats, summary: dict[str, Any]) -> str:
    """The merged stats as a table, with one row for the batches: planned and missing."""
    return stats.table(batches=f"{summary['batches']:,} planned, {summary['batches_missing']:,} missing")

"""The three stages of an s3pput upload as Airflow operators: plan, put (mapped), reduce.

Each keeps its settings in one templated mapping, ``settings``, checks the literal ones when the DAG
is parsed, and calls one engine stage when it runs; nothing connects before ``execute``. A failure
that no retry changes raises ``AirflowFailException``, one that a retry may mend (an endpoint out of
reach, a file that failed transiently) ``AirflowException``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_s3pput.bucket_check import check_bucket
from airflow_s3pput.engine import upload
from airflow_s3pput.errors import Unavailable, UsageError
from airflow_s3pput.option_builder import (
    AIRFLOW_SPELLING,
    AWS_SETTINGS,
    PLAN_SETTINGS,
    UPLOAD_SETTINGS,
    as_bool,
    build_bounds,
    build_options,
    check_known,
    coerce,
    given,
    is_unset,
)
from airflow_s3pput.planner import Batch, plan
from airflow_s3pput.progress import Progress
from airflow_s3pput.stats import BatchReport, PutResult, Stats, Summary, one_line, summarize, where
from airflow_s3pput.transport.interface import iso_seconds
from airflow_s3pput.walker import doubled_slash_warning, join_key

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_s3pput.options import UploadOptions

log = logging.getLogger(__name__)
T = TypeVar("T")

#: every setting an operator or the task group takes, by its canonical name
SETTINGS = frozenset({*UPLOAD_SETTINGS, *PLAN_SETTINGS, *AWS_SETTINGS})
#: the settings only the plan takes
PLAN_ONLY = frozenset({"limit", *PLAN_SETTINGS})
#: where a failed put leaves its report and a failed reduce the summary (a failed task returns none)
REPORT_XCOM_KEY, SUMMARY_XCOM_KEY = "s3pput_report", "s3pput_summary"
#: Airflow renders ``rendered_map_index`` into a VARCHAR(250): PostgreSQL and MySQL refuse more
MAX_MAP_INDEX_NAME = 250
#: names each mapped put in the UI by its batch (``S3PPutBatchOperator.batch_name``)
MAP_INDEX_TEMPLATE = "{{ task.batch_name }}"


def fail_fast(step: Callable[..., T], *args: Any, context: str = "", **kwargs: Any) -> T:
    """``step(...)``, failing the task for good on bad input or a missing or unusable package (the
    next try would meet the same); an endpoint out of reach may be back for the next try."""
    try:
        return step(*args, **kwargs)
    except ImportError as exc:
        raise AirflowFailException(f"s3pput: the installation lacks what the run needs: {exc}") from None
    except Unavailable as exc:
        raise AirflowException(
            f"s3pput: {exc.render(AIRFLOW_SPELLING)}{context}; a retry of the task may succeed"
        ) from None
    except UsageError as exc:
        raise AirflowFailException(f"s3pput: {exc.render(AIRFLOW_SPELLING)}{context}") from None


def shorten(text: str, room: int) -> str:
    """``text`` cut in the middle to at most ``room`` characters, both ends kept."""
    if len(text) <= room:
        return text
    head = (room - 1) // 2
    return text[:head] + "…" + text[len(text) - (room - 1 - head) :]


def batch_name(batch: Mapping[str, Any]) -> str:
    """The mapped put's name in the UI: ``first_key .. last_key (N files)``, each key cut in the
    middle when the whole would not fit Airflow's column."""
    files, first, last = int(batch["files"]), str(batch["first_key"]), str(batch["last_key"])
    if not files:
        return "nothing to put: delete extraneous keys"  # the delete-only batch of an empty SOURCE
    count = f" ({files} file{'' if files == 1 else 's'})"
    if first == last:
        return shorten(first, MAX_MAP_INDEX_NAME - len(count)) + count
    room = MAX_MAP_INDEX_NAME - len(count) - len(" .. ")
    first = shorten(first, max(room - min(len(last), room // 2), room // 2))
    return f"{first} .. {shorten(last, room - len(first))}{count}"


def _check_target(said: str, mine: tuple[str, str], planned: tuple[str, str]) -> None:
    """Fail for good when a put or the reduce was given another bucket or prefix than the plan;
    ``said`` names the two. Prefixes come as ``join_key(prefix, "")`` makes them."""
    if mine != planned:
        mine_url, planned_url = (f"s3://{bucket}/{prefix}" for bucket, prefix in (mine, planned))
        raise AirflowFailException(
            f"s3pput: {said.format(mine_url, planned_url)}: give the plan, put and reduce tasks "
            "the same bucket and prefix"
        )


def _is_literal(value: object) -> bool:
    """Known when the DAG is parsed: plain data without a Jinja template in it (not an XComArg)."""
    if isinstance(value, str):
        return not any(mark in value for mark in ("{{", "{%", "{#"))
    if isinstance(value, (list, tuple, dict)):
        return all(map(_is_literal, value.values() if isinstance(value, dict) else value))
    return value is None or isinstance(value, (bool, int, float))


def check_settings(settings: Mapping[str, object]) -> None:
    """Validate the literal settings now, leaving templated ones to ``execute``."""
    check_known(settings, unknown=[name for name, value in settings.items() if not _is_literal(value)])


class _UploadSettings(BaseOperator):
    """The upload settings the plan and the put share; see ``s3pput_task_group``. Each defaults to
    ``None`` (the engine's default) and lives in ``settings``, one templated field: a method of
    BaseOperator is called ``dry_run``, so no setting can be an attribute of its own name."""

    template_fields: Sequence[str] = ("settings", "aws_conn_id")
    template_fields_renderers = {"settings": "json"}

    def __init__(
        self,
        *,
        source: str | Sequence[str],
        bucket: str | None = None,
        prefix: str | None = None,
        put_mode: str | None = None,
        dry_run: bool | str | None = None,
        content_type: str | None = None,
        gzip: bool | str | None = None,
        gzip_types: str | Sequence[str] | None = None,
        gzip_level: int | str | None = None,
        headers: str | Sequence[str] | None = None,
        grant: str | None = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        follow_symlinks: bool | str | None = None,
        delete: bool | str | None = None,
        transport: str | None = None,
        processes: int | str | None = None,
        threads: int | str | None = None,
        multipart_threshold: int | str | None = None,
        part_size: int | str | None = None,
        digest_cache: bool | str | None = None,
        rehash: bool | str | None = None,
        cache_dir: str | None = None,
        resume: bool | str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings: dict[str, Any] = {n: v for n, v in locals().items() if n in SETTINGS and v is not None}
        self.aws_conn_id = aws_conn_id

    def upload_options(self) -> UploadOptions:
        """The rendered settings as engine options with the connection's credentials, which
        ``region_name`` and ``verify`` override."""
        fail_fast(build_options, self.settings)  # bad settings fail before any connection is looked up
        overrides = fail_fast(given, self.settings, AWS_SETTINGS)
        from airflow_s3pput.provider.connection import settings_from_connection

        connection = fail_fast(settings_from_connection, self.aws_conn_id, **overrides)
        # Again with the connection: the transport, and so the default concurrency, may follow it.
        return fail_fast(build_options, self.settings, connection=connection)


def parallel_capacity(executor: str | None = None, cpus: int | None = None) -> int:
    """How many put tasks can usefully run at once: the batch count when none is given. Under an
    executor that runs every task on this machine, half its cores (a put process keeps one busy,
    the rest is for the S3 client's threads and the scheduler); elsewhere ``[core] parallelism``."""
    from airflow.sdk.configuration import conf

    parallelism = max(1, int(conf.getint("core", "parallelism", fallback=32)))
    name = (executor if executor is not None else conf.get("core", "executor", fallback="")) or ""
    first = name.split(",")[0].strip().rsplit(".", 1)[-1]
    if first in ("LocalExecutor", "SequentialExecutor", "DebugExecutor"):
        return max(1, min(parallelism, (cpus if cpus is not None else os.cpu_count() or 1) // 2))
    return parallelism


class S3PPutPlanOperator(_UploadSettings):
    """Check the connection and the bucket, walk SOURCE, return the batches to map the put over.

    :param limit: consider only the first N files of the walk (templated)
    :param batch_size: at most this many files per batch (templated)
    :param batch_bytes: at most this many bytes per batch, e.g. ``4096MiB`` (templated)
    :param max_batches: cap on the batch count (templated); default: as many as can run at once
        (``parallel_capacity``), unless ``batch_size`` is given; always within ``[core]
        max_map_length``
    """

    def __init__(
        self,
        *,
        limit: int | str | None = None,
        batch_size: int | str | None = None,
        batch_bytes: int | str | None = None,
        max_batches: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings.update({n: v for n, v in locals().items() if n in PLAN_ONLY and v is not None})
        check_settings(self.settings)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        bounds = fail_fast(build_bounds, self.settings)
        options = self.upload_options()
        if doubled := doubled_slash_warning(options.prefix):
            log.warning("s3pput: %s", doubled)
        server_time = fail_fast(check_bucket, options, context=f" (aws_conn_id {self.aws_conn_id!r})")
        batches = fail_fast(plan, options, bounds, max_batches=self._max_batches())
        files, size = sum(b.files for b in batches), sum(b.bytes for b in batches)
        log.info("planned %d files, %d bytes in %d batches", files, size, len(batches))
        if not batches and options.delete:
            # An emptied SOURCE still has keys to delete: one batch over the whole key range
            # deletes what is under the prefix, as ``s3pput --delete`` does.
            batches = [Batch(0, None, None, "", "", 0, 0)]
            log.info("nothing to put: one batch deletes the extraneous keys under the prefix")
        return _descriptors(batches, options, server_time)

    def _max_batches(self) -> int:
        """Airflow's map limit, and as many batches as can run at once unless the DAG bounds them."""
        from airflow.sdk.configuration import conf

        cap: int = conf.getint("core", "max_map_length", fallback=1024)
        if is_unset(self.settings.get("batch_size")) and is_unset(self.settings.get("max_batches")):
            return min(cap, parallel_capacity())
        return cap


def _descriptors(
    batches: Sequence[Batch], options: UploadOptions, server_time: float | None
) -> list[dict[str, Any]]:
    """The batches to map the put over. Each says where it was planned for, so that a put or the
    reduce given another target fails, and when, by the server's clock as LastModified is: what an
    earlier try of the run landed was written since then (``engine.landed_earlier``)."""
    planned_at = datetime.fromtimestamp(math.floor(server_time or time.time()), tz=timezone.utc)
    target = {"bucket": options.bucket, "prefix": join_key(options.prefix, "")}
    return [{**b.to_dict(), **target, "planned_at": planned_at.isoformat()} for b in batches]


class S3PPutBatchOperator(_UploadSettings):
    """Upload one batch (a key range of the walk) with the engine's putter pool; return its report.

    The report (``stats.BatchReport``) is the return value or, when the try fails or is stopped
    midway, pushed under the key ``s3pput_report`` with the files it got to. A retry counts what an
    earlier try of the run landed as put (``earlier try``).

    :param batch: a descriptor from the plan task (mapped with ``expand``)
    :param progress_interval: seconds between progress lines in the task log
    """

    def __init__(self, *, batch: dict[str, Any], progress_interval: float = 10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_settings(self.settings)
        self.batch = batch
        self.progress_interval = progress_interval
        self._options: UploadOptions | None = None  # this try's, for OpenLineage
        self._uploading = False  # what ``on_kill`` stops

    @property
    def batch_name(self) -> str:
        """This instance's name in the UI (``MAP_INDEX_TEMPLATE``)."""
        return batch_name(self.batch)

    def execute(self, context: Context) -> dict[str, Any]:
        batch = Batch.from_dict(self.batch)
        report = BatchReport(batch.index, batch.label, batch.files)
        progress: BatchProgress | None = None
        try:
            options = self.upload_options()
            # Planned for another target, its key range would select none of the files, or others.
            _check_target(
                "this put uploads to {} but its batch was planned for {}",
                (options.bucket, join_key(options.prefix, "")),
                (self.batch["bucket"], self.batch["prefix"]),
            )
            self._options = options
            progress = BatchProgress(batch, options.dry_run, self.progress_interval)
            self._uploading = True
            try:
                stats = fail_fast(
                    upload,
                    options,
                    key_range=batch.key_range,
                    on_result=progress,
                    landed_since=iso_seconds(self.batch["planned_at"]),
                )
            finally:
                self._uploading = False
        except BaseException as exc:
            # Whatever stopped the try (an error, on_kill, execution_timeout's AirflowTaskTimeout,
            # which is no Exception): the reduce counts the files it got to.
            done = progress.stats() if progress is not None else None
            stopped = dataclasses.replace(report, stats=done, error=_one_line(exc), stopped=done is not None)
            context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=stopped.to_dict())
            raise
        log.info("progress: %s", progress.line())
        log.info("batch %d summary:\n%s", batch.index, stats.table())
        report = dataclasses.replace(report, stats=stats)
        if stats.ok:
            return report.to_dict()
        error = f"{stats.failed} of the batch's {stats.files_done} files failed"
        context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=dataclasses.replace(report, error=error).to_dict())
        if progress.retryable:
            raise AirflowException(
                f"s3pput: {error}; {progress.retryable} may land when the batch is retried"
            )
        raise AirflowFailException(f"s3pput: {error}, for reasons no retry changes (see the failed lines)")

    def on_kill(self) -> None:
        """Airflow's SIGTERM ("mark failed", a task the scheduler gave up on), called in the thread
        that runs ``execute``: stop as Ctrl-C does, aborting the open multipart uploads."""
        if self._uploading:
            self._uploading = False
            raise AirflowException("s3pput: the task was killed (SIGTERM): its open uploads were aborted")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage datasets: the local SOURCE in, the bucket's prefix out (none for a dry run)."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        options = self._options
        if options is None or options.dry_run:  # or a try that failed before it knew its settings
            return OperatorLineage()
        host = f"file://{socket.gethostname()}"
        return OperatorLineage(
            inputs=[Dataset(namespace=host, name=os.path.abspath(source)) for source in options.sources],
            outputs=[Dataset(namespace=f"s3://{options.bucket}", name=options.prefix.strip("/") or "/")],
        )


class BatchProgress(Progress):
    """Logs a batch's progress and each failed file; counts the failures that a retry may change."""

    def __init__(self, batch: Batch, dry_run: bool, interval: float) -> None:
        super().__init__(total_files=batch.files, interval=interval, dry_run=dry_run)
        self.retryable = 0
        log.info("batch %d: %d files, %d bytes: %s", batch.index, batch.files, batch.bytes, batch.label)

    def stats(self) -> Stats | None:
        """What the results so far add up to, for a try stopped midway; ``None`` before the first."""
        return self.counts.freeze() if self.done or self.counts.deleted else None

    def __call__(self, result: PutResult) -> None:
        self.add(result)
        if result.action == "fail":
            self.retryable += result.can_retry
            log.error("failed %s: %s", where(result), result.error)
        if self.due():
            log.info("progress: %s", self.line())


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if str(exc) and not isinstance(exc, Exception):  # an interruption: say which
        text = f"{type(exc).__name__}: {text}"
    return one_line(text.removeprefix("s3pput: "))


class S3PPutReduceOperator(BaseOperator):
    """Merge the batches' reports into the run's summary, log it as a table, return it.

    Runs whatever happened upstream (``trigger_rule=all_done``) and fails for good when a file
    failed or a batch did not finish, unless ``fail_on_error`` is false, leaving the summary under
    the XCom key ``s3pput_summary``. The ``outlets`` get an event only when the upload landed and
    was no dry run; an ``AssetAlias`` gets one for the asset ``s3://BUCKET/PREFIX`` of this run.

    :param plan_task_id: task id of the plan task
    :param put_task_id: task id of the mapped put task
    :param bucket: the destination (templated); ``None``: the plan's, and another fails the task
    :param prefix: the key prefix, likewise (templated)
    :param fail_on_error: fail this task (and so the run) on any failure (templated)
    """

    template_fields: Sequence[str] = ("bucket", "prefix", "fail_on_error")

    def __init__(
        self,
        *,
        plan_task_id: str,
        put_task_id: str,
        bucket: str | None = None,
        prefix: str | None = None,
        fail_on_error: bool | str = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.put_task_id = put_task_id
        self.bucket = bucket
        self.prefix = prefix
        self.fail_on_error = fail_on_error

    def execute(self, context: Context) -> dict[str, Any]:
        planned = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        if planned is None:  # without a plan nothing was uploaded: never let the run end green
            raise AirflowFailException("s3pput: the plan task failed; nothing was uploaded")
        bucket, prefix = self._target(planned)
        summary = summarize(self._reports(context, planned), bucket=bucket, prefix=prefix)
        log.info("s3pput summary:\n%s", summary.table())
        for warning in summary.warnings:
            log.warning("s3pput: %s", warning)
        if not summary.ok and fail_fast(coerce, "fail_on_error", as_bool, self.fail_on_error) is not False:
            context["ti"].xcom_push(key=SUMMARY_XCOM_KEY, value=summary.to_dict())
            raise AirflowFailException(f"s3pput: {summary.failure_message()}")
        self._announce(context, summary)
        return summary.to_dict()

    def _target(self, planned: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
        """The bucket and prefix reported on: the plan's, which this task's, where given, must be."""
        bucket = str(self.bucket or "")
        prefix = None if self.prefix is None else join_key(str(self.prefix), "")
        if not planned:  # an empty plan names no target
            return bucket, prefix or ""
        target = (str(planned[0]["bucket"]), str(planned[0]["prefix"]))
        mine = (bucket or target[0], target[1] if prefix is None else prefix)
        _check_target("this reduce reports on {} but the plan was made for {}", mine, target)
        return target

    def _reports(self, context: Context, planned: Sequence[Mapping[str, Any]]) -> list[BatchReport]:
        """Each planned batch's report: its return value, else what a failed try pushed (pulled
        whole: a missing XCom is then no error line in the log of a run that went well)."""
        found: dict[int, BatchReport] = {}
        for key in (REPORT_XCOM_KEY, "return_value"):  # a returned report wins over a pushed one
            for value in context["ti"].xcom_pull(task_ids=[self.put_task_id], key=key) or ():
                if value:
                    report = BatchReport.from_dict(value)
                    found[report.index] = report
        batches = [Batch.from_dict(b) for b in planned]
        return [found.get(b.index, BatchReport(b.index, b.label, b.files)) for b in batches]

    def _announce(self, context: Context, summary: Summary) -> None:
        """Asset events for an upload that landed; none for a dry run or a run with failures."""
        if not summary.ok or summary.stats.dry_run:
            if self.outlets:
                log.info("no asset events: %s", "a dry run" if summary.ok else "the upload did not succeed")
            self.outlets = []  # this try's copy of the task: what Airflow emits events for
            return
        from airflow.sdk import Asset, AssetAlias

        extra = summary.event_extra()
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra = extra
            elif isinstance(outlet, AssetAlias):
                # Where the files went, as the rendered bucket and prefix say: known only now.
                landed = Asset(uri=f"s3://{summary.bucket}/{summary.prefix}")
                context["outlet_events"][outlet].add(landed, extra=extra)

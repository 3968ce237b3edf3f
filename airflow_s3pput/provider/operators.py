"""The three stages of an s3pput upload as Airflow operators: plan, put (mapped), reduce.

Glue, as thin as the Amazon provider's ``LocalFilesystemToS3Operator.execute``: each operator
keeps its settings in one templated mapping (``settings``, by the canonical names of
``airflow_s3pput.settings``), builds the engine's options with ``build_options`` when it runs,
and calls one engine stage: ``planner.plan``, ``engine.upload`` or ``stats.summarize``.

Failures say whether a retry can help. Bad settings, an undefined connection, a missing bucket
or rejected credentials, and files that no retry changes (a FIFO, a symlink leaving SOURCE, an
unreadable file) raise ``AirflowFailException``: the task fails at once instead of waiting out
``retry_delay``. An endpoint that stayed out of reach through the engine's own backoff
(``errors.Unavailable``) and files that failed transiently (a server error, a file that changed)
raise ``AirflowException``, so that Airflow's retries complete the batch, idempotently in
``update`` and ``add`` mode. Nothing here opens a connection before ``execute``, so parsing a DAG is
offline; literal settings are validated when the DAG is parsed (``settings.check_known``).
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
from airflow_s3pput.planner import Batch, plan
from airflow_s3pput.progress import Progress
from airflow_s3pput.settings import (
    AWS_SETTINGS,
    PLAN_SETTINGS,
    UPLOAD_SETTINGS,
    as_bool,
    build_aws_overrides,
    build_bounds,
    build_options,
    check_known,
    coerce,
)
from airflow_s3pput.stats import (
    BatchReport,
    PutResult,
    Stats,
    Summary,
    one_line,
    summarize,
    where,
)
from airflow_s3pput.transport.port import iso_seconds
from airflow_s3pput.walker import doubled_slash_warning, join_key

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_s3pput.options import UploadOptions

log = logging.getLogger(__name__)
T = TypeVar("T")

#: where a put task that fails leaves its report (a failed task returns no XCom)
REPORT_XCOM_KEY = "s3pput_report"
#: where a reduce task that fails leaves the run's summary
SUMMARY_XCOM_KEY = "s3pput_summary"


#: the engine's connection settings as a DAG author sets them (the rest keep their names)
AIRFLOW_SPELLING = {"region": "region_name", "ca_bundle": "verify", "verify_ssl": "verify"}

#: Airflow renders ``rendered_map_index`` into a VARCHAR(250): PostgreSQL and MySQL refuse more
MAX_MAP_INDEX_NAME = 250
#: names each mapped put in the UI by its batch (``S3PPutBatchOperator.batch_name``)
MAP_INDEX_TEMPLATE = "{{ task.batch_name }}"


def fail_fast(step: Callable[..., T], *args: Any, context: str = "", **kwargs: Any) -> T:
    """``step(...)``; a ``UsageError`` fails the task for good: no retry changes bad input, nor
    an ``ImportError`` (a package missing or of a version the run cannot use: the next try runs
    the same installation). An endpoint out of reach (``Unavailable``) may be back for the next
    try: the task's ``retries`` apply. ``context`` is added to the message (whose connection it
    was)."""
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
    if room < 2:
        return text[:room]
    head = (room - 1) // 2
    return text[:head] + "…" + text[len(text) - (room - 1 - head) :]


def batch_name(batch: Mapping[str, Any], limit: int = MAX_MAP_INDEX_NAME) -> str:
    """The mapped put's name in the UI: ``first_key .. last_key (N files)``, each key cut in the
    middle when the whole would exceed ``limit`` characters (Airflow's column)."""
    files = int(batch.get("files") or 0)
    if not files:
        return "nothing to put: delete extraneous keys"  # the delete-only batch of an empty SOURCE
    first, last = str(batch.get("first_key") or ""), str(batch.get("last_key") or "")
    count = f" ({files} file{'' if files == 1 else 's'})"
    if first == last:
        return shorten(first, limit - len(count)) + count
    room = limit - len(count) - len(" .. ")
    first_room = max(room - min(len(last), room // 2), room // 2)
    first = shorten(first, first_room)
    return f"{first} .. {shorten(last, room - len(first))}{count}"


def _target(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{join_key(prefix, '')}"


def _is_literal(value: object) -> bool:
    """Known when the DAG is parsed: plain data without a Jinja template in it."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return not any(mark in value for mark in ("{{", "{%", "{#"))
    if isinstance(value, (list, tuple)):
        return all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(_is_literal(v) for v in value.values())
    return False  # an XComArg, or anything else resolved when the task runs


def check_settings(settings: Mapping[str, object]) -> None:
    """Validate the literal settings now, leaving templated ones to ``execute``."""
    check_known(settings, unknown=[name for name, value in settings.items() if not _is_literal(value)])


class _UploadSettings(BaseOperator):
    """The upload settings the plan and the put operators share; see ``s3pput_task_group``.

    Every setting is templated and defaults to ``None``: the engine's default. They are kept in
    one mapping, ``settings``, rendered as one templated field (a method of BaseOperator is
    called ``dry_run``, so no setting can be an attribute of its own name).
    """

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
        given = {
            "source": source, "bucket": bucket, "prefix": prefix, "put_mode": put_mode,
            "dry_run": dry_run, "content_type": content_type, "gzip": gzip, "gzip_types": gzip_types,
            "gzip_level": gzip_level, "headers": headers, "grant": grant, "include": include,
            "exclude": exclude, "follow_symlinks": follow_symlinks, "delete": delete,
            "transport": transport, "processes": processes, "threads": threads,
            "multipart_threshold": multipart_threshold, "part_size": part_size,
            "digest_cache": digest_cache, "rehash": rehash, "cache_dir": cache_dir, "resume": resume,
            "region_name": region_name, "verify": verify,
        }  # fmt: skip
        self.settings: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        self.aws_conn_id = aws_conn_id
        check_settings(self.settings)

    def upload_options(self, *, with_connection: bool) -> UploadOptions:
        """The rendered settings as engine options, with the Airflow connection's credentials
        (``region_name`` and ``verify`` override the connection's, as ``AwsBaseOperator``'s do).

        The settings are checked first: a bad one is reported before any connection is made."""
        raw = {k: v for k, v in self.settings.items() if k in UPLOAD_SETTINGS}
        options = fail_fast(build_options, raw)
        aws = {k: v for k, v in self.settings.items() if k in AWS_SETTINGS}
        overrides = fail_fast(build_aws_overrides, aws)
        if not with_connection:
            return options
        from airflow_s3pput.provider.connection import settings_from_connection

        connection = fail_fast(settings_from_connection, self.aws_conn_id, **overrides)
        # Again with the connection: the transport, and so the default concurrency, may follow it.
        return fail_fast(build_options, raw, connection=connection)


class TaskKilled(AirflowException):
    """The put task was told to stop (SIGTERM through ``on_kill``): a retry may finish the batch."""


def max_map_length() -> int:
    from airflow.sdk.configuration import conf

    return int(conf.getint("core", "max_map_length", fallback=1024))


#: executors whose tasks all run on the machine of the scheduler (and of this plan task)
_LOCAL_EXECUTORS = ("LocalExecutor", "SequentialExecutor", "DebugExecutor")


def parallel_capacity(executor: str | None = None, cpus: int | None = None) -> int:
    """How many put tasks can usefully run at once: the batch count when none is given.

    On an executor that runs every task on this machine, half its cores (one put process
    keeps a core busy; the rest is left to the S3 client's own threads, the scheduler and the
    other tasks): more batches would only compete for the same cores. Elsewhere (Celery,
    Kubernetes, ...) the workers are other machines: ``[core] parallelism`` of them at most.
    """
    from airflow.sdk.configuration import conf

    parallelism = max(1, int(conf.getint("core", "parallelism", fallback=32)))
    name = (executor if executor is not None else conf.get("core", "executor", fallback="")) or ""
    first = name.split(",")[0].strip().rsplit(".", 1)[-1]
    if first in _LOCAL_EXECUTORS:
        return max(1, min(parallelism, (cpus if cpus is not None else os.cpu_count() or 1) // 2))
    return parallelism


class S3PPutPlanOperator(_UploadSettings):
    """Check the connection and the bucket, walk SOURCE, return the batches to map the put over.

    Fails for good, with one line naming the connection or the bucket, when the connection is
    not defined, its credentials are rejected or the bucket is missing or not writable.

    :param limit: consider only the first N files of the walk (templated)
    :param batch_size: at most this many files per batch (templated)
    :param batch_bytes: at most this many bytes per batch, e.g. ``4096MiB`` (templated)
    :param max_batches: cap on the batch count (templated); default: as many as can run at
        once (``parallel_capacity``: half the cores under the LocalExecutor, ``[core]
        parallelism`` elsewhere), within ``[core] max_map_length``; with ``batch_size`` given,
        only ``max_map_length`` caps it
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
        given = {
            "limit": limit,
            "batch_size": batch_size,
            "batch_bytes": batch_bytes,
            "max_batches": max_batches,
        }
        self.settings.update({k: v for k, v in given.items() if v is not None})
        check_settings(self.settings)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        bounds = fail_fast(build_bounds, {k: v for k, v in self.settings.items() if k in PLAN_SETTINGS})
        options = self.upload_options(with_connection=True)
        doubled = doubled_slash_warning(options.prefix)
        if doubled:
            log.warning("s3pput: %s", doubled)
        # The bucket, the endpoint or the keys: say whose they are.
        server_time = fail_fast(check_bucket, options, context=f" (aws_conn_id {self.aws_conn_id!r})")
        # An explicit batch size or cap is the user's; else as many batches as can run at once.
        explicit = any(
            self.settings.get(name) not in (None, "", "None") for name in ("batch_size", "max_batches")
        )
        cap = max_map_length() if explicit else min(max_map_length(), parallel_capacity())
        batches = fail_fast(plan, options, bounds, max_batches=cap)
        files, size = sum(b.files for b in batches), sum(b.bytes for b in batches)
        log.info("planned %d files, %d bytes in %d batches", files, size, len(batches))
        if not batches and options.delete:
            # An emptied SOURCE still has keys to delete: one batch over the whole key range
            # walks nothing and deletes what is under the prefix, as ``s3pput --delete`` does.
            batches = [Batch(0, None, None, "", "", 0, 0)]
            log.info("nothing to put: one batch deletes the extraneous keys under the prefix")
        # Each descriptor says where it was planned for, so that a put (or the reduce) given
        # another bucket or prefix is caught before it uploads into a range it was not planned for,
        # and when (``planned_at``): what a put's earlier tries of this run landed is written
        # since then, and a retry counts it as put (``engine.landed_earlier``). The server's
        # clock, as LastModified is; ours only if its answer had no Date.
        planned_at = server_time if server_time is not None else time.time()
        target = {
            "bucket": options.bucket,
            "prefix": join_key(options.prefix, ""),
            "planned_at": _iso_seconds(planned_at),
        }
        return [{**b.to_dict(), **target} for b in batches]


class S3PPutBatchOperator(_UploadSettings):
    """Upload one batch (a key range of the walk) with the engine's putter pool; return its report.

    The report (``stats.BatchReport``: the batch, its stats, its error) is the return value, or,
    when the batch failed, pushed under the key ``s3pput_report`` so that the reduce still
    counts what the batch did and says why it failed; a try stopped midway (an error,
    ``execution_timeout``, "mark failed") reports the files it got to. A retry, or a try after
    a clear, counts the files an earlier try of the run landed as put (reason ``earlier try``):
    their objects were written since the plan checked the bucket (the descriptor's
    ``planned_at``).

    :param batch: a descriptor from the plan task (mapped with ``expand``)
    :param progress_interval: seconds between progress lines in the task log
    """

    def __init__(self, *, batch: dict[str, Any], progress_interval: float = 10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.progress_interval = progress_interval
        #: what this try read and wrote, for OpenLineage: (SOURCE paths, bucket, prefix); no secret
        self._lineage: tuple[list[str], str, str] | None = None
        #: set while the engine uploads: what ``on_kill`` stops
        self._uploading = False

    @property
    def batch_name(self) -> str:
        """This instance's name in the UI (``MAP_INDEX_TEMPLATE``), within Airflow's 250 characters."""
        return batch_name(self.batch) if isinstance(self.batch, Mapping) else ""

    def execute(self, context: Context) -> dict[str, Any]:
        batch = Batch.from_dict(self.batch)
        report = BatchReport(batch.index, batch.label, batch.files)
        progress: BatchProgress | None = None
        try:
            options = self.upload_options(with_connection=True)
            self._check_target(options)
            if not options.dry_run:
                self._lineage = (
                    [os.path.abspath(s) for s in options.sources],
                    options.bucket,
                    options.prefix,
                )
            progress = BatchProgress(batch, options.dry_run, self.progress_interval)
            self._uploading = True
            try:
                stats = fail_fast(
                    upload,
                    options,
                    key_range=batch.key_range,
                    on_result=progress,
                    landed_since=_planned_at(self.batch),
                )
            finally:
                self._uploading = False
        except BaseException as exc:
            # Whatever stopped the try (an error, execution_timeout's AirflowTaskTimeout, which is
            # no Exception, on_kill's TaskKilled): the reduce counts the files it got to.
            done = progress.stats() if progress is not None else None
            stopped = dataclasses.replace(report, stats=done, error=_one_line(exc), stopped=done is not None)
            self._push(context, stopped)
            raise
        log.info("progress: %s", progress.line())
        log.info("batch %d summary:\n%s", batch.index, stats.table())
        if stats.ok:
            return dataclasses.replace(report, stats=stats).to_dict()
        error = f"{stats.failed} of the batch's {stats.files_done} files failed"
        self._push(context, dataclasses.replace(report, stats=stats, error=error))
        if progress.retryable:
            raise AirflowException(
                f"s3pput: {error}; {progress.retryable} may land when the batch is retried"
            )
        raise AirflowFailException(f"s3pput: {error}, for reasons no retry changes (see the failed lines)")

    def on_kill(self) -> None:
        """Airflow's SIGTERM ("mark failed", a task the scheduler gave up on): stop the upload as
        Ctrl-C does. The task runner calls this in the task's main thread, from its signal
        handler, where ``execute`` runs: the exception raised here stops feeding the putters,
        lets the parts on the wire finish, aborts the open multipart uploads, and fails the try
        (before the SIGKILL that follows the grace period)."""
        if self._uploading:
            self._uploading = False
            raise TaskKilled("s3pput: the task was killed (SIGTERM): its open uploads were aborted")

    def _check_target(self, options: UploadOptions) -> None:
        """Fail for good if the plan made this batch for another bucket or prefix: its key range
        would select none of the files, or others, and the reduce would name the plan's target."""
        planned = (self.batch.get("bucket"), self.batch.get("prefix"))
        if planned[0] is None:  # a descriptor from a plan that did not say (an older version)
            return
        mine = (options.bucket, join_key(options.prefix, ""))
        if mine != planned:
            raise AirflowFailException(
                f"s3pput: this put uploads to {_target(*mine)} but its batch was planned for "
                f"{_target(str(planned[0]), str(planned[1] or ''))}: give the plan, put and reduce "
                "tasks the same bucket and prefix"
            )

    @staticmethod
    def _push(context: Context, report: BatchReport) -> None:
        context["ti"].xcom_push(key=REPORT_XCOM_KEY, value=report.to_dict())

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage datasets: the local SOURCE in, the bucket's prefix out (none for a dry run)."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        if self._lineage is None:  # a dry run, or a try that failed before it knew its settings
            return OperatorLineage()
        sources, bucket, prefix = self._lineage
        host = socket.gethostname()
        return OperatorLineage(
            inputs=[Dataset(namespace=f"file://{host}", name=source) for source in sources],
            outputs=[Dataset(namespace=f"s3://{bucket}", name=prefix.strip("/") or "/")],
        )


class BatchProgress:
    """Logs a batch's progress and each failed file (``PATH -> KEY: error``); counts the
    failures that a retry may change, and every result, for a try stopped midway (``stats``)."""

    def __init__(self, batch: Batch, dry_run: bool, interval: float) -> None:
        self.meter = Progress(
            total_files=batch.files, total_bytes=batch.bytes, interval=interval, dry_run=dry_run
        )
        self.retryable = 0
        log.info("batch %d: %d files, %d bytes: %s", batch.index, batch.files, batch.bytes, batch.label)

    def stats(self) -> Stats | None:
        """What the results so far add up to; ``None`` before the first."""
        counts = self.meter.counts
        return counts.freeze() if self.meter.done or counts.deleted else None

    def __call__(self, result: PutResult) -> None:
        self.meter.add(result)
        if result.action == "fail":
            self.retryable += result.can_retry
            log.error("failed %s: %s", where(result), result.error)
        if self.meter.due():
            log.info("progress: %s", self.meter.line())

    def line(self) -> str:
        return self.meter.line()


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if str(exc) and not isinstance(exc, Exception):  # an interruption: say which
        text = f"{type(exc).__name__}: {text}"
    return one_line(text.removeprefix("s3pput: "))


def _planned_at(batch: Mapping[str, Any]) -> float | None:
    """A descriptor's ``planned_at`` as epoch seconds; ``None`` from a plan that did not say."""
    value = batch.get("planned_at")
    return iso_seconds(value) if isinstance(value, str) else None


def _iso_seconds(epoch: float) -> str:
    """``epoch`` to the second, as ISO 8601 (UTC): a descriptor stays readable in the UI."""
    return datetime.fromtimestamp(math.floor(epoch), tz=timezone.utc).isoformat()


class S3PPutReduceOperator(BaseOperator):
    """Merge the batches' reports into the run's summary, log it as a table, return it.

    Runs whatever happened upstream (``trigger_rule=all_done``): a batch that has no stats (its
    task failed before counting, or died) is counted in ``batches_missing``, one stopped midway
    (a timeout, a kill) in ``batches_stopped`` with the files it put counted, and each failed
    batch's error is in the summary's ``batch_errors`` and in the exception. Fails when any file
    failed or a batch did not finish, unless ``fail_on_error`` is false, and then leaves the
    summary under the XCom key ``s3pput_summary``; a retry of this task changes nothing, so it
    fails for good.

    The ``outlets`` (assets) get an event only when the upload succeeded and was not a dry
    run; the event's ``extra`` is the summary's ``event_extra()``: files, bytes, bucket, prefix.
    An ``AssetAlias`` among them gets an event for the asset ``s3://BUCKET/PREFIX`` of this run
    (the rendered bucket and prefix), for targets that a DAG's params choose.

    :param plan_task_id: task id of the plan task
    :param put_task_id: task id of the mapped put task
    :param bucket: the destination, for the summary and the asset events (templated); ``None``:
        the plan's. One that is not the plan's fails the task.
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
        """The bucket and prefix of the summary: this task's, which must be the plan's."""
        bucket = None if self.bucket is None else str(self.bucket)
        prefix = None if self.prefix is None else join_key(str(self.prefix), "")
        plan_bucket = str(planned[0]["bucket"]) if planned and planned[0].get("bucket") is not None else None
        plan_prefix = str(planned[0].get("prefix") or "") if plan_bucket is not None else None
        planned_for = (plan_bucket, plan_prefix)
        if plan_bucket is not None and plan_prefix is not None and (bucket, prefix) != planned_for:
            mine = (bucket or plan_bucket, plan_prefix if prefix is None else prefix)
            if mine != (plan_bucket, plan_prefix):
                raise AirflowFailException(
                    f"s3pput: this reduce reports on {_target(*mine)} but the plan was made for "
                    f"{_target(plan_bucket, plan_prefix)}: give the plan, put and reduce tasks the "
                    "same bucket and prefix"
                )
        return bucket or plan_bucket or "", prefix if prefix is not None else plan_prefix or ""

    def _reports(self, context: Context, planned: Sequence[Mapping[str, Any]]) -> list[BatchReport]:
        """Each planned batch's report: its return value, else what a failed try pushed.

        Pulled as whole sequences (not index by index): a missing XCom is then no error line
        in the log of a run that went well."""
        ti = context["ti"]
        found: dict[int, BatchReport] = {}
        for key in (REPORT_XCOM_KEY, "return_value"):  # a returned report wins over a pushed one
            for value in ti.xcom_pull(task_ids=[self.put_task_id], key=key) or ():
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

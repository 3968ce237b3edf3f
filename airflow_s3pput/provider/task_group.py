"""``s3pput_task_group``: one call in a DAG gives plan -> mapped put -> reduce.

Typed keyword parameters: mypy (the package ships ``py.typed``) catches a misspelt setting or a
value of the wrong kind (``batch_size=[10]``, ``gzip=3``). A string where a number or a flag is
expected may be a Jinja template, so mypy lets it pass; the values that are not templates are
validated when the DAG is parsed instead (``batch_size="ten"`` or ``put_mode="sync"`` is a broken
DAG, not a failed run), the templated ones when the task runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import TaskGroup

from airflow_s3pput.provider.operators import (
    MAP_INDEX_TEMPLATE,
    S3PPutBatchOperator,
    S3PPutPlanOperator,
    S3PPutReduceOperator,
)
from airflow_s3pput.settings import AWS_SETTINGS, PLAN_SETTINGS, UPLOAD_SETTINGS

if TYPE_CHECKING:
    from airflow.sdk import Asset, AssetAlias
    from airflow.sdk.definitions.xcom_arg import XComArg

#: a Jinja template, rendered when the task runs (e.g. ``"{{ params.batch_size }}"``)
Template = str
PutMode = Literal["add", "stupid", "update"]
Transport = Literal["auto", "crt", "boto3"]
#: one string (a path, a glob, a header) or a list of them
Strings = str | Sequence[str]

#: settings only the plan needs
PLAN_ONLY = frozenset({"limit", *PLAN_SETTINGS})
#: task arguments that the group sets itself, and why they may not come through ``*_kwargs``
_RESERVED = {
    "outlets": "pass outlets to s3pput_task_group: the reduce emits them once the upload landed",
    "task_id": "the group names its tasks plan, put and reduce",
}


class S3PPutTaskGroup(TaskGroup):
    """The task group of one s3pput upload; ``summary`` is the reduce task's XCom."""

    @property
    def summary(self) -> XComArg:
        """The run's summary (the ``reduce`` task's return value) for a downstream task::

        upload = s3pput_task_group(...)
        report(upload.summary)  # a @task receiving the summary dict
        """
        reduce = self.get_child_by_label("reduce")
        assert isinstance(reduce, S3PPutReduceOperator)
        return reduce.output


def s3pput_task_group(
    *,
    source: Strings,
    bucket: str,
    prefix: str | None = None,
    put_mode: PutMode | Template | None = None,
    dry_run: bool | Template | None = None,
    limit: int | Template | None = None,
    content_type: str | None = None,
    gzip: bool | Template | None = None,
    gzip_types: Strings | None = None,
    gzip_level: int | Template | None = None,
    headers: Strings | None = None,
    grant: str | None = None,
    include: Strings | None = None,
    exclude: Strings | None = None,
    follow_symlinks: bool | Template | None = None,
    delete: bool | Template | None = None,
    transport: Transport | Template | None = None,
    processes: int | Template | None = None,
    threads: int | Template | None = None,
    multipart_threshold: int | Template | None = None,
    part_size: int | Template | None = None,
    digest_cache: bool | Template | None = None,
    rehash: bool | Template | None = None,
    cache_dir: str | None = None,
    resume: bool | Template | None = None,
    batch_size: int | Template | None = None,
    batch_bytes: int | Template | None = None,
    max_batches: int | Template | None = None,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    verify: bool | str | None = None,
    group_id: str = "s3pput",
    fail_on_error: bool | Template = True,
    outlets: Sequence[Asset | AssetAlias] = (),
    retries: int | None = None,
    retry_delay: timedelta | None = None,
    plan_kwargs: Mapping[str, Any] | None = None,
    put_kwargs: Mapping[str, Any] | None = None,
    reduce_kwargs: Mapping[str, Any] | None = None,
) -> S3PPutTaskGroup:
    """Upload SOURCE to S3 as three tasks in a task group: ``plan``, ``put`` (mapped), ``reduce``.

    The upload settings are templated; ``None`` means the engine's default. They are the
    CLI's options under their canonical names (see the README's table): ``source``, ``bucket``,
    ``prefix``, ``put_mode`` (add/stupid/update, default update), ``dry_run``, ``limit``,
    ``content_type``, ``gzip``, ``gzip_types``, ``gzip_level``, ``headers`` (``NAME:VALUE``
    list), ``grant``, ``include``, ``exclude``, ``follow_symlinks``, ``delete``, ``transport``,
    ``processes`` and ``threads`` (per put task), ``multipart_threshold``, ``part_size``
    (bytes, or sizes such as ``"32MiB"``), ``digest_cache``, ``rehash``, ``cache_dir`` (the
    digest record of ``update``, on each worker), ``resume`` (carry on a killed run's
    multipart uploads, default on); the plan's: ``batch_size`` (files per batch, default
    10,000), ``batch_bytes`` (default 4 GiB), ``max_batches`` (default: as many batches as can
    run at once, see ``parallel_capacity``); ``aws_conn_id``, the Airflow AWS connection, and
    ``region_name`` and ``verify`` (true, false or a CA bundle's path), which override the
    connection's as ``AwsBaseOperator``'s arguments do (templated).

    Where task arguments go:

    - ``retries`` and ``retry_delay`` go to all three tasks (a lost worker fails a task only
      after ``[scheduler] task_instance_heartbeat_timeout``; a retry then finishes the batch).
      Failures no retry changes fail at once whatever ``retries`` says.
    - ``plan_kwargs``, ``put_kwargs``, ``reduce_kwargs``: any other ``BaseOperator`` argument
      for that task only, and they win over the two above: ``pool``, ``queue``,
      ``priority_weight``, ``execution_timeout``, ``retries``... ``put_kwargs`` apply to every
      mapped put instance (``max_active_tis_per_dag`` caps how many run at once).
    - The DAG's ``default_args`` reach all three, as for any task.
    - ``outlets`` go to the reduce only, which emits them when the upload succeeded and was not
      a dry run, with the summary (files, bytes, bucket, prefix) in the event's ``extra``; an
      ``AssetAlias`` gets an event for ``s3://BUCKET/PREFIX`` as rendered for the run.

    Returns the task group; its ``summary`` is the reduce task's return value as an
    ``XComArg`` for downstream tasks, and the group itself sets dependencies (``a >> group``).
    """
    given = {
        "source": source, "bucket": bucket, "prefix": prefix, "put_mode": put_mode, "dry_run": dry_run,
        "limit": limit, "content_type": content_type, "gzip": gzip, "gzip_types": gzip_types,
        "gzip_level": gzip_level, "headers": headers, "grant": grant, "include": include,
        "exclude": exclude, "follow_symlinks": follow_symlinks, "delete": delete, "transport": transport,
        "processes": processes, "threads": threads, "multipart_threshold": multipart_threshold,
        "part_size": part_size, "digest_cache": digest_cache, "rehash": rehash, "cache_dir": cache_dir,
        "resume": resume, "batch_size": batch_size, "batch_bytes": batch_bytes, "max_batches": max_batches,
        "region_name": region_name, "verify": verify,
    }  # fmt: skip
    settings: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    upload = {name: value for name, value in settings.items() if name not in PLAN_ONLY}
    common: dict[str, Any] = {}
    if retries is not None:
        common["retries"] = retries
    if retry_delay is not None:
        common["retry_delay"] = retry_delay
    group = S3PPutTaskGroup(group_id=group_id)
    with group:
        plan = S3PPutPlanOperator(
            task_id="plan", aws_conn_id=aws_conn_id, **settings, **_task_kwargs(common, plan_kwargs)
        )
        put = S3PPutBatchOperator.partial(
            task_id="put",
            aws_conn_id=aws_conn_id,
            **upload,
            **_task_kwargs({"map_index_template": MAP_INDEX_TEMPLATE, **common}, put_kwargs),
        ).expand(batch=plan.output)
        reduce = S3PPutReduceOperator(
            task_id="reduce",
            plan_task_id=plan.task_id,
            put_task_id=put.task_id,
            bucket=bucket,
            prefix=prefix,
            fail_on_error=fail_on_error,
            outlets=list(outlets),
            **_task_kwargs(common, reduce_kwargs),
        )
        plan >> put >> reduce
    return group


def _task_kwargs(common: Mapping[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """``common`` updated with ``extra``; an upload setting or a reserved argument is refused."""
    for name in extra or {}:
        if (
            name in UPLOAD_SETTINGS
            or name in PLAN_SETTINGS
            or name in AWS_SETTINGS
            or name in ("limit", "aws_conn_id")
        ):
            raise TypeError(f"{name!r} is an upload setting: pass it to s3pput_task_group itself")
        if name in _RESERVED:
            raise TypeError(f"{name!r} cannot be given to one task: {_RESERVED[name]}")
    return {**common, **(extra or {})}

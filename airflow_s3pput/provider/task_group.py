"""``s3pput_task_group``: one call in a DAG gives plan -> mapped put -> reduce, typed, so that a
DAG author's mypy catches a misspelt setting or a value of the wrong kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

from airflow.sdk import TaskGroup

from airflow_s3pput.provider.operators import (
    MAP_INDEX_TEMPLATE,
    PLAN_ONLY,
    SETTINGS,
    S3PPutBatchOperator,
    S3PPutPlanOperator,
    S3PPutReduceOperator,
)

if TYPE_CHECKING:
    from airflow.sdk import Asset, AssetAlias
    from airflow.sdk.definitions.xcom_arg import XComArg

#: a Jinja template, rendered when the task runs (e.g. ``"{{ params.batch_size }}"``)
Template = str
PutMode = Literal["add", "stupid", "update"]
Transport = Literal["auto", "crt", "boto3"]
#: one string (a path, a glob, a header) or a list of them
Strings = str | Sequence[str]

#: task arguments that the group sets itself, and why they may not come through ``*_kwargs``
_RESERVED = {
    "outlets": "pass outlets to s3pput_task_group: the reduce emits them once the upload landed",
    "task_id": "the group names its tasks plan, put and reduce",
}


class S3PPutTaskGroup(TaskGroup):
    @property
    def summary(self) -> XComArg:
        """The run's summary (the ``reduce`` task's return value) for a downstream task."""
        return cast("S3PPutReduceOperator", self.get_child_by_label("reduce")).output


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

    The settings are the CLI's options by their canonical names, templated (the README's table).
    ``retries`` and ``retry_delay`` go to all three tasks; ``plan_kwargs``, ``put_kwargs`` (every
    mapped put) and ``reduce_kwargs`` give any other ``BaseOperator`` argument to one task and win
    over those two. ``outlets`` go to the reduce, which emits them once the upload landed.
    """
    settings = {name: value for name, value in locals().items() if name in SETTINGS and value is not None}
    common = {"retries": retries, "retry_delay": retry_delay}
    common = {name: value for name, value in common.items() if value is not None}
    group = S3PPutTaskGroup(group_id=group_id)
    with group:
        plan = S3PPutPlanOperator(
            task_id="plan", aws_conn_id=aws_conn_id, **settings, **_task_kwargs(common, plan_kwargs)
        )
        put = S3PPutBatchOperator.partial(
            task_id="put",
            aws_conn_id=aws_conn_id,
            **{name: value for name, value in settings.items() if name not in PLAN_ONLY},
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
        if name in SETTINGS or name == "aws_conn_id":
            raise TypeError(f"{name!r} is an upload setting: pass it to s3pput_task_group itself")
        if name in _RESERVED:
            raise TypeError(f"{name!r} cannot be given to one task: {_RESERVED[name]}")
    return {**common, **(extra or {})}

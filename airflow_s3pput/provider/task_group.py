"""``s3pput_task_group``: one call in a DAG gives plan -> mapped put -> reduce."""

from __future__ import annotations

from typing import Any

from airflow.sdk import TaskGroup

from airflow_s3pput.provider.operators import (
    S3PPutBatchOperator,
    S3PPutPlanOperator,
    S3PPutReduceOperator,
)

PLAN_ONLY = ("batch_size", "batch_bytes", "limit", "max_batches")


def s3pput_task_group(
    *,
    group_id: str = "s3pput",
    fail_on_error: bool = True,
    put_kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> TaskGroup:
    """Upload SOURCE to S3 as three stages in a task group.

    ``options`` are the upload settings, all templated: ``source``, ``bucket``, ``prefix``,
    ``put_mode`` (add/stupid/update), ``dry_run``, ``limit``, ``content_type``, ``gzip``,
    ``gzip_types``, ``headers`` (``NAME:VALUE`` list), ``grant``, ``include``, ``exclude``,
    ``follow_symlinks``, ``transport``, ``processes`` and ``threads`` (per put task), ``multipart_threshold``,
    ``part_size``, ``batch_size`` (files per batch), ``batch_bytes``, ``aws_conn_id``.
    ``put_kwargs`` go to the mapped put task only (e.g. ``retries``, ``pool``, ``queue``).

    The group's ``reduce`` task returns the summary statistics as its XCom.
    """
    if "dry_run" in options:  # the operators call it dry_run_only: BaseOperator.dry_run is a method
        options["dry_run_only"] = options.pop("dry_run")
    upload = {k: v for k, v in options.items() if k not in PLAN_ONLY}
    with TaskGroup(group_id=group_id) as group:
        plan = S3PPutPlanOperator(task_id="plan", **options)
        put = S3PPutBatchOperator.partial(
            task_id="put",
            map_index_template="{{ batch_label }}",
            **upload,
            **(put_kwargs or {}),
        ).expand(batch=plan.output)
        reduce = S3PPutReduceOperator(
            task_id="reduce",
            plan_task_id=plan.task_id,
            put_task_id=put.task_id,
            fail_on_error=fail_on_error,
        )
        plan >> put >> reduce
    return group

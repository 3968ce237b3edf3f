"""Every day, upload that day's folder (``/data/exports/YYYY-MM-DD``) in update mode."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_s3pput.provider import s3pput_task_group

# [START s3pput_daily]
with DAG(
    dag_id="s3pput_daily",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["s3pput", "example"],
    doc_md=__doc__,
) as dag:
    s3pput_task_group(
        group_id="upload",
        source="/data/exports/{{ ds }}",
        bucket="my-bucket",
        prefix="exports/{{ ds }}",
        put_mode="update",
        put_kwargs={"retries": 2},
    )
# [END s3pput_daily]

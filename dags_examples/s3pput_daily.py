"""Every night, upload the day that just ended: ``/data/exports/YYYY-MM-DD`` in update mode.

Under Airflow 3, ``schedule="@daily"`` means a ``CronTriggerTimetable`` (``[scheduler]
create_cron_data_intervals = False``): the run that starts at midnight has ``ds`` and
``data_interval_start`` equal to that midnight, the day that *starts*, whose folder is still
empty. This DAG schedules with ``CronDataIntervalTimetable`` instead: each run covers one day,
starts once that day is over, and ``data_interval_start | ds`` is the day it covers (also for
a run triggered by hand: the last complete day).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Param

from airflow_s3pput.provider import s3pput_task_group

# [START s3pput_daily]
with DAG(
    dag_id="s3pput_daily",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # A retry finishes what a lost worker left: the put skips what already landed.
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={"exports": Param("/data/exports", type="string", title="Folder of the daily exports")},
    tags=["s3pput", "example"],
    doc_md=__doc__,
) as dag:
    s3pput_task_group(
        group_id="upload",
        source="{{ params.exports }}/{{ data_interval_start | ds }}",
        bucket="my-bucket",
        prefix="exports/{{ data_interval_start | ds }}",
        put_mode="update",
    )
# [END s3pput_daily]

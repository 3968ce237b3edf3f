"""The Apache Airflow side of airflow-s3pput: the only package here that imports Airflow.

DAG authors use ``s3pput_task_group`` (plan -> mapped put -> reduce) or the three operators.
"""

from airflow_s3pput.provider.operators import (
    S3PPutBatchOperator,
    S3PPutPlanOperator,
    S3PPutReduceOperator,
)
from airflow_s3pput.provider.task_group import S3PPutTaskGroup, s3pput_task_group

__all__ = [
    "S3PPutBatchOperator",
    "S3PPutPlanOperator",
    "S3PPutReduceOperator",
    "S3PPutTaskGroup",
    "s3pput_task_group",
]

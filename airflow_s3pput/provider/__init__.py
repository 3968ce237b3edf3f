"""The Apache Airflow side of airflow-s3pput, the only package here that imports Airflow: the task
group and the three operators. On an Airflow too old for them, one ``ImportError`` says so."""

from __future__ import annotations

from airflow_s3pput.provider_info import AIRFLOW_FLOOR


def _require_airflow() -> None:
    needs = f"airflow-s3pput's provider needs apache-airflow>={AIRFLOW_FLOOR}"
    try:
        import airflow
    except ImportError as exc:
        raise ImportError(f"{needs}, which is not installed: pip install 'airflow-s3pput[airflow]'") from exc
    from packaging.version import Version  # a dependency of Airflow itself

    # base_version: a release candidate of the floor counts as the floor
    if Version(Version(airflow.__version__).base_version) < Version(AIRFLOW_FLOOR):
        raise ImportError(f"{needs}; this is Airflow {airflow.__version__}")


_require_airflow()

from airflow_s3pput.provider.operators import (  # noqa: E402  (after the version check)
    S3PPutBatchOperator,
    S3PPutPlanOperator,
    S3PPutReduceOperator,
)
from airflow_s3pput.provider.task_group import S3PPutTaskGroup, s3pput_task_group  # noqa: E402

__all__ = [
    "S3PPutBatchOperator",
    "S3PPutPlanOperator",
    "S3PPutReduceOperator",
    "S3PPutTaskGroup",
    "s3pput_task_group",
]

"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point.

Airflow calls every provider's entry point, unguarded, whenever it discovers providers: in
``airflow providers list`` and while parsing any DAG that names an asset URI. So this module
imports nothing but the package's version: no Airflow, no operators. An exception here would
break other people's DAGs, even on an Airflow this provider does not support.

It follows Airflow's runtime schema (``airflow/provider_info.schema.json``, which Airflow
validates it against when it discovers providers): the integration, and the modules holding its
operators. The documentation URL comes from the package's ``Documentation`` project URL, which
Airflow reads from the distribution's metadata (``[project.urls]`` in ``pyproject.toml``).
"""

from __future__ import annotations

from typing import Any

from airflow_s3pput import __version__

INTEGRATION = "s3pput"

#: The oldest Airflow the provider works with (the floor of the ``airflow`` extra): older ones
#: lack ``airflow.sdk.exceptions.AirflowFailException`` and ``airflow.sdk.configuration``.
AIRFLOW_FLOOR = "3.2.0"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-s3pput",
        "name": "s3pput",
        "description": "Upload many files to S3 in parallel: s3-parallel-put with dynamic task mapping.",
        "versions": [__version__],
        "integrations": [{"integration-name": INTEGRATION, "tags": ["aws", "transfer"]}],
        "operators": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_s3pput.provider.operators"]}
        ],
    }

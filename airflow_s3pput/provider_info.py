"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point.

Airflow calls every provider's entry point, unguarded, whenever it discovers providers, even
while it parses other people's DAGs: so this module imports nothing of Airflow nor the operators.
It follows Airflow's ``provider_info.schema.json``; the documentation URL is the package's
``Documentation`` project URL, which Airflow reads from the distribution's metadata.
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

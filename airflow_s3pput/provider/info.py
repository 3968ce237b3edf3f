"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_s3pput import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-s3pput",
        "name": "s3pput",
        "description": "Upload many files to S3 in parallel: s3-parallel-put with dynamic task mapping.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "s3pput",
                "python-modules": ["airflow_s3pput.provider.operators"],
            }
        ],
    }

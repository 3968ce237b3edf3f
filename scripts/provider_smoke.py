"""What the provider imports and calls of Airflow and its providers when a task runs, checked
without a metadata database or a network: used by ``scripts/check-floors.sh``, because parsing
the example DAGs does not reach these (the operators import them when they execute).

    python scripts/provider_smoke.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile


def main() -> int:
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="s3pput-smoke-"))
    # A connection from the environment, as a deployment may define it: made-up keys, a loopback
    # endpoint that nothing contacts.
    os.environ["AIRFLOW_CONN_S3PPUT_SMOKE"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "AKIDSMOKE",
            "password": "smoke-secret",
            "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1"},
        }
    )
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.openlineage.extractors import OperatorLineage  # noqa: F401

    import airflow_s3pput.provider.operators
    import airflow_s3pput.provider.task_group  # noqa: F401

    hook = S3Hook(aws_conn_id="s3pput_smoke")
    endpoint = hook.conn_config.get_service_endpoint_url("s3")
    credentials = hook.get_credentials()
    problems = []
    if endpoint != "http://127.0.0.1:9":
        problems.append(f"endpoint {endpoint!r}")
    if credentials.access_key != "AKIDSMOKE":
        problems.append("the connection's access key was not used")
    if (hook.region_name or hook.conn_config.region_name) != "eu-west-1":
        problems.append("the connection's region was not used")
    for problem in problems:
        print(f"provider_smoke: {problem}", file=sys.stderr)
    if not problems:
        print("provider_smoke: the provider's imports and the S3 hook work")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

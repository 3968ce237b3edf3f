"""Turn an Airflow AWS connection into the engine's ``ConnectionSettings``, at execution time.

The Amazon provider's hook does the resolving (keys, profile, assumed role, ``endpoint_url`` and
``region_name`` from the extras), so S3-compatible stores work as they do for every other AWS
operator. The credentials are frozen once and handed to the worker processes; the hook masks
them in task logs, and ``ConnectionSettings`` keeps them out of its ``repr``.
"""

from __future__ import annotations

from airflow_s3pput.options import ConnectionSettings


def settings_from_connection(aws_conn_id: str | None) -> ConnectionSettings:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=aws_conn_id)
    config = hook.conn_config
    credentials = hook.get_credentials()
    verify = config.verify if config.verify is not None else True
    return ConnectionSettings(
        endpoint_url=config.get_service_endpoint_url("s3"),
        region=hook.region_name or config.region_name,
        verify=verify,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        session_token=credentials.token,
    )

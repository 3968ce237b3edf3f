"""Turn an Airflow AWS connection into the engine's ``ConnectionSettings``, at execution time.

The Amazon provider's hook does the resolving (keys, profile, assumed role, ``endpoint_url`` and
``region_name`` from the extras), so S3-compatible stores work as they do for every other AWS
operator. The task's own process signs with the hook's boto3 session (``session_factory``),
whose credentials refresh themselves: an assumed role or web identity outlives its hour. The
keys are also frozen once, for worker processes that cannot reach the connection; the hook
masks them in task logs, and ``ConnectionSettings`` keeps them out of its ``repr``.

The connection's ``config_kwargs`` (botocore ``Config`` options) are honoured as the Amazon
provider's clients honour them, as far as each transport can (``transport.client_config`` says
which, and how s3pput's retry policy takes ``retries``); ``region_name`` and ``verify`` given to
an operator override the connection's, as ``AwsBaseOperator``'s do.

Two things the hook forgives, we do not: a connection id that is not defined (the hook would
warn and fall back to the worker's environment, which then fails in every put task with an
``AttributeError``), and no credentials at all. Both are one ``UsageError`` naming the
connection, before anything is uploaded. ``aws_conn_id=None`` asks for the worker's standard
AWS chain (environment, profile, instance role), as with the Amazon provider's operators.
"""

from __future__ import annotations

import functools
from typing import Any

from airflow_s3pput.errors import UsageError
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.transport.client_config import connection_fields


def hook_session(aws_conn_id: str | None, region_name: str | None = None) -> Any:
    """The Airflow connection's boto3 session, as the Amazon provider makes it (its credentials
    refresh themselves). Module-level, so that a ``functools.partial`` of it pickles."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=aws_conn_id or None, region_name=region_name).get_session()


def settings_from_connection(
    aws_conn_id: str | None, *, region_name: str | None = None, verify: bool | str | None = None
) -> ConnectionSettings:
    """``region_name`` and ``verify`` override the connection's, as ``AwsBaseOperator``'s do."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    if aws_conn_id is not None and not aws_conn_id.strip():
        # An emptied form field: never fall back to the workers' credentials without a word.
        raise UsageError(
            "{setting} is empty: name an Airflow connection, or pass None to use the workers' "
            "AWS credential chain",
            setting="aws_conn_id",
        )
    client_fields: dict[str, Any] = {}
    if aws_conn_id:
        try:
            connection = BaseHook.get_connection(aws_conn_id)
        except AirflowNotFoundException:
            raise UsageError(
                f"{{setting}} {aws_conn_id!r} is not defined: create the connection, or set "
                "{setting} to None to use the workers' AWS credential chain",
                setting="aws_conn_id",
            ) from None
        # Read here, before the hook builds a botocore Config of them: a bad option is one line
        # naming it (never its value: a proxy URL may carry a password).
        config_kwargs = _extra(connection).get("config_kwargs")
        _mask_proxy_passwords(config_kwargs)
        client_fields = connection_fields(config_kwargs)
    hook = S3Hook(aws_conn_id=aws_conn_id or None, region_name=region_name, verify=verify)
    where = (
        f"{{setting}} {aws_conn_id!r}"
        if aws_conn_id
        else "the workers' AWS credential chain ({setting} None)"
    )
    try:
        config = hook.conn_config
        credentials = hook.get_credentials()
    except Exception as exc:  # noqa: BLE001 - one line naming the connection, whatever went wrong
        # The type and the first line only: a library's message may quote the whole config.
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}" if str(exc) else type(exc).__name__
        if isinstance(exc, AttributeError):  # boto3 found no credentials at all
            reason = "no AWS credentials found"
        raise UsageError(
            f"{where} gives no usable AWS credentials ({reason})", setting="aws_conn_id"
        ) from None
    verify = config.verify if config.verify is not None else True
    # The hook's region (the argument, else the connection's) before config_kwargs' own.
    config_region = client_fields.pop("region", None)
    region = config.region_name or config_region
    return ConnectionSettings(
        endpoint_url=config.get_service_endpoint_url("s3"),
        region=region,
        verify=verify,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        session_token=credentials.token,
        session_factory=functools.partial(hook_session, aws_conn_id or None, region_name),
        **client_fields,
    )


def _extra(connection: Any) -> dict[str, Any]:
    try:
        extra = connection.extra_dejson
    except Exception:  # noqa: BLE001 - the hook says what is wrong with it, in its own words
        return {}
    return extra if isinstance(extra, dict) else {}


def _mask_proxy_passwords(config_kwargs: object) -> None:
    """Have Airflow mask a proxy's password (and its URL) in task logs, before anything may log
    it (the Amazon provider's debug lines quote ``config_kwargs``)."""
    proxies = config_kwargs.get("proxies") if isinstance(config_kwargs, dict) else None
    if not isinstance(proxies, dict):
        return
    from airflow.sdk.log import mask_secret

    for url in proxies.values():
        if isinstance(url, str) and "@" in url:
            user_info = url.partition("://")[2].rpartition("@")[0] if "://" in url else url.rpartition("@")[0]
            password = user_info.partition(":")[2]
            if password:
                mask_secret(password)
            mask_secret(url)

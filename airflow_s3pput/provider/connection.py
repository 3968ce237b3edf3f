"""Turn an Airflow AWS connection into the engine's ``ConnectionSettings``, when a task runs.

The Amazon provider's hook resolves it, as for any AWS operator. Credentials that refresh (a role,
web identity, instance metadata, SSO) are signed with the hook's session in the task's own
process and frozen once for worker processes; fixed keys are used as they are, so that on a
plain-HTTP endpoint every call goes through the CRT, as the CLI's do. Where the hook
would fall back to the worker's environment (an undefined connection, no credentials), this fails
with one ``UsageError`` naming the connection; ``aws_conn_id=None`` asks for that chain on purpose.
"""

from __future__ import annotations

import functools
from typing import Any

from airflow_s3pput.errors import UsageError, describe_error
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.transport import environment_endpoint
from airflow_s3pput.transport.client_config import connection_fields


def hook_session(aws_conn_id: str | None, region_name: str | None = None) -> Any:
    """The connection's boto3 session, as the Amazon provider makes it (a ``partial`` of it pickles)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=aws_conn_id, region_name=region_name).get_session()


def settings_from_connection(
    aws_conn_id: str | None, *, region_name: str | None = None, verify: bool | str | None = None
) -> ConnectionSettings:
    """``region_name`` and ``verify`` override the connection's, as ``AwsBaseOperator``'s do."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    client_fields = _client_fields(aws_conn_id)
    hook = S3Hook(aws_conn_id=aws_conn_id, region_name=region_name, verify=verify)
    try:
        config = hook.conn_config
        credentials, refreshes = _credentials(hook)
    except Exception as exc:  # noqa: BLE001 - one line naming the connection, whatever went wrong
        raise _unusable(aws_conn_id, exc) from None
    # The hook's region (the argument, else the connection's) before config_kwargs' own.
    config_region = client_fields.pop("region", None)
    return ConnectionSettings(
        # Unnamed by the connection, the hook's boto3 clients take the environment's.
        endpoint_url=config.get_service_endpoint_url("s3") or environment_endpoint(),
        region=config.region_name or config_region,
        verify=config.verify if config.verify is not None else True,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        session_token=credentials.token,
        session_factory=functools.partial(hook_session, aws_conn_id, region_name) if refreshes else None,
        **client_fields,
    )


def _credentials(hook: Any) -> tuple[Any, bool]:
    """The hook's credentials, frozen and masked in task logs as its ``get_credentials`` does,
    and whether they refresh. ``AttributeError`` when boto3 found none at all."""
    from airflow.sdk.log import mask_secret
    from botocore.credentials import RefreshableCredentials

    resolved = hook.get_session().get_credentials()
    if resolved is None:
        raise AttributeError("no AWS credentials found")
    credentials = resolved.get_frozen_credentials()
    mask_secret(credentials.secret_key)
    if credentials.token:
        mask_secret(credentials.token)
    return credentials, isinstance(resolved, RefreshableCredentials)


def _client_fields(aws_conn_id: str | None) -> dict[str, Any]:
    """The ``ConnectionSettings`` fields of the connection's ``config_kwargs``, read before the
    hook builds a botocore Config of them: a bad option is then one line naming it."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    if aws_conn_id is None:  # the workers' chain, asked for on purpose
        return {}
    if not aws_conn_id.strip():
        # An emptied form field: never fall back to the workers' credentials without a word.
        raise UsageError(
            "{setting} is empty: name an Airflow connection, or pass None to use the workers' "
            "AWS credential chain",
            setting="aws_conn_id",
        )
    try:
        extra = BaseHook.get_connection(aws_conn_id).extra_dejson
    except AirflowNotFoundException:
        raise UsageError(
            f"{{setting}} {aws_conn_id!r} is not defined: create the connection, or set "
            "{setting} to None to use the workers' AWS credential chain",
            setting="aws_conn_id",
        ) from None
    config_kwargs = extra.get("config_kwargs") if isinstance(extra, dict) else None
    _mask_proxy_passwords(config_kwargs)
    return connection_fields(config_kwargs)


def _unusable(aws_conn_id: str | None, exc: Exception) -> UsageError:
    """Why the hook gave no credentials, naming the connection. The exception's type and first
    line only: a library's message may quote the whole config."""
    reason = describe_error(exc)
    if isinstance(exc, AttributeError):  # boto3 found no credentials at all
        reason = "no AWS credentials found"
    who = f"{{setting}} {aws_conn_id!r}"
    if aws_conn_id is None:
        who = "the workers' AWS credential chain ({setting} None)"
    return UsageError(f"{who} gives no usable AWS credentials ({reason})", setting="aws_conn_id")


def _mask_proxy_passwords(config_kwargs: object) -> None:
    """Have Airflow mask each proxy URL with a password, and the password, in task logs, before
    anything may log them (the Amazon provider's debug lines quote ``config_kwargs``)."""
    from airflow.sdk.log import mask_secret

    proxies = config_kwargs.get("proxies") if isinstance(config_kwargs, dict) else None
    for url in proxies.values() if isinstance(proxies, dict) else ():
        if isinstance(url, str) and "@" in url:
            mask_secret(url)
            if password := url.rpartition("@")[0].rpartition("://")[2].partition(":")[2]:
                mask_secret(password)

"""An Airflow connection's ``config_kwargs`` (botocore ``Config`` options): which the run honours,
and on which transport (the README's table).

The boto3 transport builds its ``Config`` from them as the Amazon provider does, except for the
options s3pput's own design owns (pool size, one attempt a try, checksums, payload signing):
ours win. Timeouts, ``retries`` (the attempts of s3pput's own retry policy; ``mode`` has no
effect), ``s3.addressing_style`` and ``region_name`` become the run's settings, on both
transports. The CRT transport signs and sends requests itself: an option it cannot honour (a
proxy above all) makes ``auto`` take boto3, with one warning line, and ``crt`` a usage error
(``selection.resolve_transport``). Nothing is ignored silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_s3pput.errors import UsageError
from airflow_s3pput.options import MAX_ATTEMPTS

#: options with no effect on the requests the CRT sends (user agent, client-side tuning, or
#: settings s3pput owns itself)
CRT_NEUTRAL = frozenset(
    {
        "user_agent",
        "user_agent_extra",
        "user_agent_appid",
        "max_pool_connections",
        "tcp_keepalive",
        "parameter_validation",
        "request_checksum_calculation",
        "response_checksum_validation",
        "request_min_compression_size_bytes",
        "disable_request_compression",
        "inject_host_prefix",
        "endpoint_discovery_enabled",
    }
)
#: the SigV4 names of ``signature_version``: what the CRT signs with
_SIGV4 = ("s3v4", "v4")


def connection_fields(config_kwargs: object) -> dict[str, Any]:
    """``ConnectionSettings`` fields from a connection's ``config_kwargs``: timeouts, attempts and
    addressing style as the run's own settings, every other option in ``client_options``.

    A name botocore's ``Config`` does not take, or a value of the wrong kind, is a one-line
    ``UsageError`` naming the option (never its value: a proxy URL may carry a password).
    """
    if not config_kwargs:
        return {}
    if not isinstance(config_kwargs, Mapping):
        raise _invalid("", "expected a JSON object")
    from botocore.config import Config

    unknown = sorted(set(config_kwargs) - set(Config.OPTION_DEFAULTS))
    if unknown:
        raise _invalid(unknown[0], "not an option of botocore's Config")
    fields: dict[str, Any] = {}
    others: dict[str, Any] = {}
    for name, value in config_kwargs.items():
        if value is not None:
            read = _READERS.get(name, _other)
            read(name, value, fields, others)
    if others:
        fields["client_options"] = tuple(sorted(others.items()))
    return fields


_Fields = dict[str, Any]


def _timeout(name: str, value: object, fields: _Fields, others: _Fields) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(name, "expected a number of seconds")
    fields[name] = float(value)


def _region(name: str, value: object, fields: _Fields, others: _Fields) -> None:
    if not isinstance(value, str):
        raise _invalid(name, "expected a string")
    fields["region"] = value  # the connection's own region_name comes first


def _retries(name: str, value: object, fields: _Fields, others: _Fields) -> None:
    if not isinstance(value, Mapping):
        raise _invalid(name, "expected a JSON object")
    attempts = _integer(name, value, "total_max_attempts")
    retries = _integer(name, value, "max_attempts")  # botocore's: the first attempt not counted
    if attempts is None and retries is not None:
        attempts = retries + 1
    if attempts is None:
        return
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise _invalid(name, f"at most {MAX_ATTEMPTS} attempts in all, not {attempts}")
    fields["max_attempts"] = attempts


def _integer(name: str, value: Mapping[str, Any], key: str) -> int | None:
    given = value.get(key)
    if given is not None and (isinstance(given, bool) or not isinstance(given, int)):
        raise _invalid(f"{name}.{key}", "expected an integer")
    return given


def _s3(name: str, value: object, fields: _Fields, others: _Fields) -> None:
    if not isinstance(value, Mapping):
        raise _invalid(name, "expected a JSON object")
    s3 = dict(value)
    style = s3.pop("addressing_style", None)
    if style is not None:
        fields["addressing_style"] = style
    if s3:
        others["s3"] = s3


def _proxies(name: str, value: object, fields: _Fields, others: _Fields) -> None:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _invalid(name, "expected a JSON object")
    others[name] = dict(value)


def _other(name: str, value: object, fields: _Fields, others: _Fields) -> None:
    others[name] = value


#: how each ``config_kwargs`` option is read (``_other``: kept for botocore as given)
_READERS = {
    "connect_timeout": _timeout,
    "read_timeout": _timeout,
    "region_name": _region,
    "retries": _retries,
    "s3": _s3,
    "proxies": _proxies,
    "proxies_config": _proxies,
}


def _invalid(name: str, reason: str) -> UsageError:
    where = f"{{setting}} {name}" if name else "{setting}"
    return UsageError(f"invalid {where}: {reason}", setting="config_kwargs")


def crt_cannot_honour(options: tuple[tuple[str, Any], ...]) -> tuple[str, ...]:
    """The names among ``client_options`` that the CRT transport cannot honour (sorted)."""
    return tuple(
        name
        for name, value in options
        if name not in CRT_NEUTRAL and not (name == "signature_version" and value in _SIGV4)
    )


def botocore_config(client_options: tuple[tuple[str, Any], ...], own: Mapping[str, Any]) -> Any:
    """The botocore ``Config`` of a boto3 transport's client: the connection's options, then
    ``own`` (s3pput's: pool size, one attempt, timeouts, checksums, ``s3`` addressing) over them.
    The ``s3`` mappings are merged key by key: the connection's other ``s3`` options stay."""
    from botocore import UNSIGNED
    from botocore.config import Config

    given = dict(client_options)
    if given.get("signature_version") == "unsigned":  # as the Amazon provider reads it
        given["signature_version"] = UNSIGNED
    mine = dict(own)
    if "s3" in mine and "s3" in given:
        mine["s3"] = {**given["s3"], **mine["s3"]}
    return Config(**given).merge(Config(**mine))

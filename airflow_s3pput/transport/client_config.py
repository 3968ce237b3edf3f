"""An Airflow connection's ``config_kwargs`` (botocore ``Config`` options): which the run honours,
and on which transport.

The Amazon provider builds ``botocore.config.Config(**config_kwargs)`` for every client it makes;
s3pput does the same on its boto3 transport, except for the options its own design owns. The
CRT transport signs and sends requests itself, so only what it can do the same way is honoured
there; an option it cannot honour (a proxy above all) makes ``auto`` take boto3, with one
warning line, and ``crt`` a usage error (``choice.resolve_transport``). Nothing is ignored
silently.

- ``connect_timeout``, ``read_timeout``: the run's timeouts, on both transports.
- ``retries``: the attempts of s3pput's own retry policy, on both transports
  (``total_max_attempts``, or ``max_attempts`` + 1). ``mode`` has no effect: the policy backs
  off exponentially with full jitter, and botocore makes one attempt per try.
- ``s3.addressing_style``: path or virtual-host URLs, on both transports.
- ``region_name``: the region when neither the operator nor the connection names one.
- ``proxies``, ``proxies_config``: the boto3 transport's; the CRT cannot take them.
- ``max_pool_connections``, ``tcp_keepalive``, ``parameter_validation``,
  ``request_checksum_calculation``, ``response_checksum_validation``,
  ``s3.payload_signing_enabled``: s3pput's own values win (pools sized from ``threads``; every
  body carries a Content-MD5).
- ``user_agent``, ``user_agent_extra``, ``user_agent_appid``, the compression and host-prefix
  options: the boto3 transport's; the CRT sends its own user agent and no compression.
- any other option (``use_fips_endpoint``, ``client_cert``, other ``s3`` keys,
  ``signature_version="unsigned"``, read as the Amazon provider reads it, ...): the boto3
  transport's; the CRT cannot take it.
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


def _config_names() -> frozenset[str]:
    from botocore.config import Config

    return frozenset(Config.OPTION_DEFAULTS)


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
    unknown = sorted(set(config_kwargs) - _config_names())
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
    fields.update(_attempts(value))


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


def _attempts(retries: object) -> dict[str, Any]:
    if not isinstance(retries, Mapping):
        raise _invalid("retries", "expected a JSON object")
    for key in ("total_max_attempts", "max_attempts"):
        value = retries.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise _invalid(f"retries.{key}", "expected an integer")
    if retries.get("total_max_attempts") is not None:
        attempts = int(retries["total_max_attempts"])
    elif retries.get("max_attempts") is not None:
        attempts = int(retries["max_attempts"]) + 1
    else:
        return {}
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise _invalid("retries", f"at most {MAX_ATTEMPTS} attempts in all, not {attempts}")
    return {"max_attempts": attempts}


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

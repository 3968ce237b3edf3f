"""From raw settings to ``UploadOptions``: the one builder for the CLI and the Airflow operators.

A raw setting is argparse's value or an operator's rendered template (often a string: ``"16"``,
``"true"``, ``"None"``), keyed by its canonical name in the tables below, which the operators use
as they are and the CLI spells as its flags. A setting not given (``None``, ``""`` or ``"None"``,
what a template renders for ``None``) is left out, so that the default of ``UploadOptions``,
``ConnectionSettings`` or ``BatchBounds`` applies: each default lives there, once. Every error is
a ``UsageError`` that names its setting::

    options = build_options({"source": "/data", "bucket": "b", "part_size": "32MiB"})
    bounds = build_bounds({"batch_size": "500"})
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from airflow_s3pput.errors import UsageError
from airflow_s3pput.etag import MIB
from airflow_s3pput.options import ConnectionSettings, UploadOptions
from airflow_s3pput.planner import BatchBounds
from airflow_s3pput.transport import default_concurrency

RawSettings = Mapping[str, object]
Coerce = Callable[[object], Any]

_SIZE = re.compile(r"^(\d+)\s*([kmgt]i?b?|b)?$", re.IGNORECASE)
_UNITS = {"b": 1, "k": 1024, "m": MIB, "g": 1024 * MIB, "t": 1024 * 1024 * MIB}
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def is_unset(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", "None"))


def as_text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _flag(value: object) -> bool | None:
    """A boolean, or the text of one (``"true"``, ``"off"`` ...); ``None`` for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    return None


def as_bool(value: object) -> bool:
    flag = _flag(value)
    if flag is None:
        raise ValueError("expected true or false")
    return flag


def as_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ValueError("expected an integer")


def as_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("expected a number")
    return float(value)  # for a string, the ValueError names the text


def as_size(value: object) -> int:
    """Bytes: an integer, or a size such as ``8MiB``, ``16M``, ``1g``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError("expected a size in bytes, e.g. 16777216 or 16MiB")
    return int(match.group(1)) * _UNITS[(match.group(2) or "b").lower()[:1]]


def as_verify(value: object) -> bool | str:
    """TLS verification as boto3 takes it: true, false, or the path of a CA bundle."""
    flag = _flag(value)
    if flag is not None:
        return flag
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError("expected true, false or the path of a CA bundle")


def as_strings(value: object) -> tuple[str, ...]:
    """A list of strings; one string is a list of one."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("expected a string or a list of strings")


#: each upload setting: its canonical name -> its coercion
UPLOAD_SETTINGS: Mapping[str, Coerce] = {
    "source": as_strings,
    "bucket": as_text,
    "prefix": as_text,
    "put_mode": as_text,
    "dry_run": as_bool,
    "limit": as_int,
    "content_type": as_text,
    "gzip": as_bool,
    "gzip_types": as_strings,
    "gzip_level": as_int,
    "headers": as_strings,
    "grant": as_text,
    "include": as_strings,
    "exclude": as_strings,
    "follow_symlinks": as_bool,
    "transport": as_text,
    "processes": as_int,
    "threads": as_int,
    "multipart_threshold": as_size,
    "part_size": as_size,
    "delete": as_bool,
    "digest_cache": as_bool,
    "rehash": as_bool,
    "cache_dir": as_text,
    "resume": as_bool,
}
#: the connection settings a front end may give (the CLI; the provider takes an Airflow connection)
CONNECTION_SETTINGS: Mapping[str, Coerce] = {
    "endpoint_url": as_text,
    "region": as_text,
    "profile": as_text,
    "secure": as_bool,
    "ca_bundle": as_text,
    "verify_ssl": as_bool,
    "retries": as_int,
    "connect_timeout": as_float,
    "read_timeout": as_float,
}
#: what an operator or the task group takes beside its Airflow connection, overriding the
#: connection's, as ``AwsBaseOperator``'s arguments of the same names do
AWS_SETTINGS: Mapping[str, Coerce] = {
    "region_name": as_text,
    "verify": as_verify,
}
#: the CLI's connection settings that an ``AWS_SETTINGS`` one stands for (``--region``;
#: ``--ca-bundle``, ``--no-verify-ssl``), so that an error names the keyword a DAG author wrote
AIRFLOW_SPELLING: Mapping[str, str] = {"region": "region_name", "ca_bundle": "verify", "verify_ssl": "verify"}
#: the plan's settings: the bounds of a batch
PLAN_SETTINGS: Mapping[str, Coerce] = {
    "batch_size": as_int,
    "batch_bytes": as_size,
    "max_batches": as_int,
}
#: the settings whose field (of ``UploadOptions``, ``BatchBounds``) has another name
_FIELDS = {"source": "sources", "put_mode": "mode", "batch_size": "files", "batch_bytes": "bytes"}
#: lists whose empty value means "the default" rather than "none" (no gzip type at all is no option)
_EMPTY_IS_DEFAULT = {"gzip_types"}


def coerce(name: str, convert: Coerce, value: object) -> Any:
    """``convert(value)``, ``None`` when not given, or a ``UsageError`` naming the setting."""
    if is_unset(value):
        return None
    try:
        result = convert(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"invalid {{setting}} {value!r}: {exc}", setting=name) from None
    if name in _EMPTY_IS_DEFAULT and not result:
        return None
    return result


def given(raw: RawSettings, table: Mapping[str, Coerce]) -> dict[str, Any]:
    """The coerced values that ``raw`` gives for the settings of ``table``, by field name."""
    fields: dict[str, Any] = {}
    for name, convert in table.items():
        coerced = coerce(name, convert, raw.get(name))
        if coerced is not None:
            fields[_FIELDS.get(name, name)] = coerced
    return fields


def build_options(raw: RawSettings, *, connection: ConnectionSettings | None = None) -> UploadOptions:
    """Validated ``UploadOptions`` from the upload settings (``UPLOAD_SETTINGS``) of ``raw``.

    ``connection`` is the front end's (the CLI builds it with ``build_connection``, the
    provider from an Airflow connection); without it the standard AWS chain applies.
    """
    fields = given(raw, UPLOAD_SETTINGS)
    fields.setdefault("bucket", "")
    fields.setdefault("sources", ())
    if "processes" not in fields or "threads" not in fields:
        # Only the transport tells; an invalid one is reported by UploadOptions.
        processes, threads = default_concurrency(str(fields.get("transport", "auto")), connection)
        fields.setdefault("processes", processes)
        fields.setdefault("threads", threads)
    if connection is not None:
        fields["connection"] = connection
    return UploadOptions(**fields)


def build_connection(raw: RawSettings) -> ConnectionSettings:
    """Validated ``ConnectionSettings`` from the connection settings (``CONNECTION_SETTINGS``) of ``raw``.

    An endpoint without a scheme gets ``https://``, or ``http://`` when ``secure`` is false;
    ``ca_bundle`` is the file to verify TLS with, ``verify_ssl=False`` turns verifying off;
    ``retries`` counts the attempts after the first.
    """
    fields = given(raw, CONNECTION_SETTINGS)
    endpoint = fields.get("endpoint_url")
    if endpoint and "://" not in endpoint:
        secure = fields.get("secure", ConnectionSettings.secure)
        fields["endpoint_url"] = ("https://" if secure else "http://") + endpoint
    if "ca_bundle" in fields:
        fields["verify"] = fields.pop("ca_bundle")
    if fields.pop("verify_ssl", None) is False:
        fields["verify"] = False
    if "retries" in fields:
        fields["max_attempts"] = fields.pop("retries") + 1
    return ConnectionSettings(**fields)


def build_bounds(raw: RawSettings) -> BatchBounds:
    """Validated ``BatchBounds`` from the plan settings (``PLAN_SETTINGS``) of ``raw``."""
    return BatchBounds(**given(raw, PLAN_SETTINGS))


#: a stand-in for a setting known only when the task runs, where validation needs a value
_STAND_INS: Mapping[str, object] = {"bucket": "stand-in-bucket", "source": "."}


def check_known(raw: RawSettings, *, unknown: Collection[str] = ()) -> None:
    """Validate what ``raw`` says now, the settings in ``unknown`` aside (templates, rendered
    when the task runs): a DAG with ``put_mode="sync"`` or ``batch_size=0`` fails when parsed.

    Nothing is read from disk: SOURCE need not exist where the DAG is parsed.
    """
    known = {name: value for name, value in raw.items() if name not in unknown}
    known.update((name, value) for name, value in _STAND_INS.items() if name in unknown)
    build_options(known)
    build_bounds(known)
    given(known, AWS_SETTINGS)

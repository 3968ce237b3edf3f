"""Validate the ``headers`` (``NAME:VALUE``) and the ``grant`` settings once, at the edge.

Each header the user may set maps to one PutObject/CreateMultipartUpload parameter, the way
s3transfer whitelists ``ALLOWED_UPLOAD_ARGS``: anything outside the table is rejected before the
first upload instead of being silently dropped or sent as an unsigned raw header.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_s3pput.errors import UsageError

#: header name (lower case) -> PutObject parameter
HEADER_PARAMS: Mapping[str, str] = {
    "cache-control": "CacheControl",
    "content-disposition": "ContentDisposition",
    "content-encoding": "ContentEncoding",
    "content-language": "ContentLanguage",
    "content-type": "ContentType",
    "expires": "Expires",
    "x-amz-storage-class": "StorageClass",
    "x-amz-server-side-encryption": "ServerSideEncryption",
    "x-amz-server-side-encryption-aws-kms-key-id": "SSEKMSKeyId",
    "x-amz-server-side-encryption-context": "SSEKMSEncryptionContext",
    "x-amz-server-side-encryption-bucket-key-enabled": "BucketKeyEnabled",
    "x-amz-website-redirect-location": "WebsiteRedirectLocation",
    "x-amz-tagging": "Tagging",
    "x-amz-acl": "ACL",
}
USER_METADATA_PREFIX = "x-amz-meta-"

CANNED_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)
STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
)
SSE_VALUES = ("AES256", "aws:kms", "aws:kms:dsse")

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def validate_acl(acl: str | None, setting: str = "grant") -> str | None:
    if not acl:
        return None
    if acl not in CANNED_ACLS:
        raise UsageError(
            f"invalid {{setting}} {acl!r}: expected one of {', '.join(CANNED_ACLS)}", setting=setting
        )
    return acl


def has_control_chars(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _bad(message: str) -> UsageError:
    return UsageError(message, setting="headers")


def parse_header(text: str) -> tuple[str, str]:
    """Split ``NAME:VALUE`` and check the name; the value keeps inner spaces."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _TOKEN.match(name):
        raise _bad(f"malformed {{setting}} {text!r}: expected NAME:VALUE")
    if has_control_chars(value):
        raise _bad(f"malformed {{setting}} {name!r}: control characters in value")
    if name.lower().startswith(USER_METADATA_PREFIX):
        _check_metadata(text, name, value)
    elif not value:
        # S3 and aws cli store an empty user-metadata value (a flag by its name alone); an empty
        # Cache-Control, Content-Type ... means nothing and is a typo.
        raise _bad(f"malformed {{setting}} {text!r}: empty value")
    elif name.lower() not in HEADER_PARAMS:
        raise _bad(
            f"unsupported {{setting}} {name!r}: use one of {', '.join(sorted(HEADER_PARAMS))} "
            f"or {USER_METADATA_PREFIX}*"
        )
    return name, value


def _check_metadata(text: str, name: str, value: str) -> None:
    if name.lower() == USER_METADATA_PREFIX:
        raise _bad(f"malformed {{setting}} {text!r}: metadata name missing after x-amz-meta-")
    if not value.isascii():
        # boto3 refuses it for every file otherwise: S3 user metadata travels as ASCII headers.
        raise _bad(f"invalid {{setting}} {name!r}: user metadata values must be ASCII")


def header_params(headers: Iterable[str], grant: str | None = None) -> dict[str, Any]:
    """Turn the ``headers`` list (and ``grant``) into validated PutObject keyword arguments: the
    transfer code passes them to boto3 as they are."""
    params: dict[str, Any] = {}
    metadata: dict[str, str] = {}
    for text in headers:
        if not text.strip():
            continue  # a blank line of a multi-line form field (the Airflow form's Headers) says nothing
        name, value = parse_header(text)
        lower = name.lower()
        if lower.startswith(USER_METADATA_PREFIX):
            metadata[lower.removeprefix(USER_METADATA_PREFIX)] = value
        else:
            params[HEADER_PARAMS[lower]] = _check_value(HEADER_PARAMS[lower], name, value)
    if metadata:
        total = sum(len(k) + len(v) for k, v in metadata.items())
        if total > 2048:
            raise _bad(f"user metadata in {{setting}} is {total} bytes: S3 allows at most 2 KB")
        params["Metadata"] = metadata
    acl = validate_acl(grant)
    if acl:
        if "ACL" in params and params["ACL"] != acl:
            raise UsageError(
                "{setting} and the x-amz-acl of {headers} disagree", setting="grant", also=("headers",)
            )
        params["ACL"] = acl
    return params


def _check_value(param: str, name: str, value: str) -> Any:
    if param == "ACL":
        return validate_acl(value, setting="headers")
    if param == "StorageClass" and value not in STORAGE_CLASSES:
        raise _bad(f"invalid {{setting}} {name}: {value!r} is not a storage class")
    if param == "ServerSideEncryption" and value not in SSE_VALUES:
        raise _bad(f"invalid {{setting}} {name}: expected one of {', '.join(SSE_VALUES)}")
    if param == "BucketKeyEnabled":
        if value.lower() not in ("true", "false"):
            raise _bad(f"invalid {{setting}} {name}: expected true or false")
        return value.lower() == "true"
    if param == "Expires":
        try:
            return email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            raise _bad(
                f"invalid {{setting}} {name}: {value!r} is not an HTTP date "
                "(e.g. 'Wed, 21 Oct 2026 07:28:00 GMT')"
            ) from None
    return value

"""``--header``/``--grant`` validation, the edges mutation testing found unchecked: the exact
message of each refusal (it names what is allowed) and the user-metadata size limit."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_s3pput.cli import render  # the message as the shell prints it
from airflow_s3pput.errors import UsageError
from airflow_s3pput.headers import header_params, parse_header, validate_acl

ACLS = (
    "private, public-read, public-read-write, authenticated-read, aws-exec-read, "
    "bucket-owner-read, bucket-owner-full-control"
)
HEADERS = (
    "cache-control, content-disposition, content-encoding, content-language, content-type, expires, "
    "x-amz-acl, x-amz-server-side-encryption, x-amz-server-side-encryption-aws-kms-key-id, "
    "x-amz-server-side-encryption-bucket-key-enabled, x-amz-server-side-encryption-context, "
    "x-amz-storage-class, x-amz-tagging, x-amz-website-redirect-location"
)


@pytest.mark.parametrize(
    ("headers", "grant", "message"),
    [
        pytest.param((), "world", f"invalid --grant 'world': expected one of {ACLS}", id="bad-grant"),
        pytest.param(
            ("Cache-Control",), None, "malformed --header 'Cache-Control': expected NAME:VALUE", id="no-colon"
        ),
        pytest.param(
            ("X-Custom:1",), None, f"unsupported --header 'X-Custom': use one of {HEADERS} or x-amz-meta-*",
            id="unsupported",
        ),
        pytest.param(
            ("x-amz-storage-class:COLD",), None,
            "invalid --header x-amz-storage-class: 'COLD' is not a storage class", id="storage-class",
        ),
        pytest.param(
            ("X-Amz-Server-Side-Encryption:des",), None,
            "invalid --header X-Amz-Server-Side-Encryption: expected one of AES256, aws:kms, aws:kms:dsse",
            id="sse",
        ),
        pytest.param(
            ("Expires:soon",), None,
            "invalid --header Expires: 'soon' is not an HTTP date (e.g. 'Wed, 21 Oct 2026 07:28:00 GMT')",
            id="expires",
        ),
        pytest.param(
            ("x-amz-acl:private",),
            "public-read",
            "--grant and the x-amz-acl of --header disagree",
            id="acl-twice",
        ),
    ],
)  # fmt: skip
def test_refusals_say_what_is_allowed(headers: tuple[str, ...], grant: str | None, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        header_params(headers, grant)
    assert render(raised.value) == message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("true", True, id="true"),
        pytest.param("false", False, id="false"),
        pytest.param("FALSE", False, id="false-upper"),
        pytest.param("True", True, id="true-capitalised"),
    ],
)
def test_bucket_key_enabled_is_a_boolean(value: str, expected: bool) -> None:
    params = header_params([f"x-amz-server-side-encryption-bucket-key-enabled:{value}"])
    assert params == {"BucketKeyEnabled": expected}


@pytest.mark.parametrize(
    ("value_bytes", "accepted"),
    [
        pytest.param(2048 - len("k"), True, id="exactly-2-KB"),
        pytest.param(2048 - len("k") + 1, False, id="one-byte-over"),
    ],
)
def test_user_metadata_limit_is_2_kb_of_names_and_values(value_bytes: int, accepted: bool) -> None:
    headers = [f"x-amz-meta-k:{'v' * value_bytes}"]
    if accepted:
        params: dict[str, Any] = header_params(headers)
        assert params == {"Metadata": {"k": "v" * value_bytes}}
    else:
        with pytest.raises(
            UsageError, match=r"^user metadata in headers is 2049 bytes: S3 allows at most 2 KB$"
        ):
            header_params(headers)


def test_a_name_without_value_separator_is_malformed_even_if_the_name_is_valid() -> None:
    with pytest.raises(UsageError, match="expected NAME:VALUE"):
        parse_header("x-amz-meta-note")


def test_an_empty_grant_is_no_grant() -> None:
    assert validate_acl("") is None
    assert header_params([], "") == {}

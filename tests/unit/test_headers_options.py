"""``headers``/``grant`` validation and the one validated ``UploadOptions`` object."""

from __future__ import annotations

import datetime as dt
import pickle
from typing import Any

import pytest

from airflow_s3pput.cli import render  # the message as the shell prints it
from airflow_s3pput.errors import UsageError
from airflow_s3pput.etag import MIB
from airflow_s3pput.headers import CANNED_ACLS, header_params, parse_header, validate_acl
from airflow_s3pput.options import ConnectionSettings, UploadOptions


@pytest.mark.parametrize(
    ("header", "params"),
    [
        pytest.param("Cache-Control: max-age=60", {"CacheControl": "max-age=60"}, id="cache-control"),
        pytest.param(
            'Content-Disposition:attachment; filename="a b.txt"',
            {"ContentDisposition": 'attachment; filename="a b.txt"'},
            id="content-disposition",
        ),
        pytest.param("Content-Encoding:br", {"ContentEncoding": "br"}, id="content-encoding"),
        pytest.param("content-language: de-CH", {"ContentLanguage": "de-CH"}, id="content-language-lower"),
        pytest.param("Content-Type:text/x-foo", {"ContentType": "text/x-foo"}, id="content-type"),
        pytest.param(
            "Expires: Wed, 21 Oct 2026 07:28:00 GMT",
            {"Expires": dt.datetime(2026, 10, 21, 7, 28, tzinfo=dt.timezone.utc)},
            id="expires",
        ),
        pytest.param("x-amz-storage-class:STANDARD_IA", {"StorageClass": "STANDARD_IA"}, id="storage-class"),
        pytest.param(
            "x-amz-server-side-encryption:aws:kms", {"ServerSideEncryption": "aws:kms"}, id="sse-value-colon"
        ),
        pytest.param(
            "x-amz-server-side-encryption-aws-kms-key-id:arn:aws:kms:k",
            {"SSEKMSKeyId": "arn:aws:kms:k"},
            id="sse-kms-key",
        ),
        pytest.param(
            "x-amz-server-side-encryption-context:e30=", {"SSEKMSEncryptionContext": "e30="}, id="sse-context"
        ),
        pytest.param(
            "x-amz-server-side-encryption-bucket-key-enabled:TRUE",
            {"BucketKeyEnabled": True},
            id="bucket-key",
        ),
        pytest.param(
            "x-amz-website-redirect-location:/new", {"WebsiteRedirectLocation": "/new"}, id="redirect"
        ),
        pytest.param("x-amz-tagging:a=1&b=2", {"Tagging": "a=1&b=2"}, id="tagging"),
        pytest.param("x-amz-acl:public-read", {"ACL": "public-read"}, id="acl-header"),
        pytest.param("x-amz-meta-Owner: Team A", {"Metadata": {"owner": "Team A"}}, id="user-metadata"),
        pytest.param("x-amz-meta-empty:", {"Metadata": {"empty": ""}}, id="user-metadata-empty-value"),
        pytest.param("x-amz-meta-blank:   ", {"Metadata": {"blank": ""}}, id="user-metadata-blank-value"),
    ],
)
def test_header_maps_to_param(header: str, params: dict[str, Any]) -> None:
    assert header_params([header]) == params


def test_several_metadata_headers_and_grant() -> None:
    got = header_params(["x-amz-meta-a:1", "X-Amz-Meta-B:2", "Cache-Control:no-cache"], "private")
    assert got == {"Metadata": {"a": "1", "b": "2"}, "CacheControl": "no-cache", "ACL": "private"}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        pytest.param("Cache-Control", "malformed", id="no-colon"),
        pytest.param(":value", "malformed", id="no-name"),
        pytest.param("Cache Control: x", "malformed", id="space-in-name"),
        pytest.param("Cache-Control:", "empty value", id="empty-value"),
        pytest.param("Cache-Control:   ", "empty value", id="blank-value"),
        pytest.param("Cache-Control: a\nb", "control characters", id="newline"),
        pytest.param("Cache-Control: a\rb", "control characters", id="carriage-return"),
        pytest.param("Cache-Control: a\x00b", "control characters", id="nul"),
        pytest.param("Cache-Control: a\x7fb", "control characters", id="del"),
        pytest.param("X-Custom: 1", "unsupported", id="unknown"),
        pytest.param("Authorization: AWS x", "unsupported", id="authorization-refused"),
        pytest.param("Content-MD5: abc", "unsupported", id="content-md5-refused"),
        pytest.param("x-amz-meta-: v", "metadata name missing", id="metadata-no-name"),
        pytest.param("x-amz-meta-who: José", "ASCII", id="metadata-not-ascii"),
        pytest.param("x-amz-storage-class: FAST", "storage class", id="bad-storage-class"),
        pytest.param("x-amz-server-side-encryption: rot13", "expected one of", id="bad-sse"),
        pytest.param("x-amz-server-side-encryption-bucket-key-enabled: yes", "true or false", id="bad-bool"),
        pytest.param("Expires: tomorrow", "HTTP date", id="bad-date"),
        pytest.param("x-amz-acl: world-writable", "invalid headers", id="bad-acl-header"),
    ],
)
def test_bad_header_rejected(header: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        header_params([header])


def test_blank_entries_are_ignored() -> None:
    """A blank line left in the Airflow form's Headers field (one header a line) says nothing."""
    assert header_params(["Cache-Control:no-cache", "", "   "]) == {"CacheControl": "no-cache"}
    assert header_params([""]) == {}


def test_metadata_over_2kb_rejected() -> None:
    with pytest.raises(UsageError, match="2 KB"):
        header_params([f"x-amz-meta-k{i}:{'v' * 100}" for i in range(25)])


def test_grant_and_acl_header_must_agree() -> None:
    with pytest.raises(UsageError, match="disagree"):
        header_params(["x-amz-acl:private"], "public-read")
    assert header_params(["x-amz-acl:private"], "private") == {"ACL": "private"}


def test_parse_header_keeps_inner_spaces() -> None:
    assert parse_header("  Content-Disposition :  inline;  x  ") == ("Content-Disposition", "inline;  x")


@pytest.mark.parametrize("acl", [pytest.param(a, id=a) for a in CANNED_ACLS])
def test_valid_acls(acl: str) -> None:
    assert validate_acl(acl) == acl
    assert header_params([], acl) == {"ACL": acl}


@pytest.mark.parametrize(
    "acl",
    [
        pytest.param("public", id="public"),
        pytest.param("PUBLIC-READ", id="upper-case"),
        pytest.param("public-read ", id="trailing-space"),
        pytest.param("log-delivery-write", id="bucket-only-acl"),
    ],
)
def test_invalid_acls(acl: str) -> None:
    with pytest.raises(UsageError, match="invalid grant"):
        validate_acl(acl)


@pytest.mark.parametrize("acl", [pytest.param(None, id="none"), pytest.param("", id="empty")])
def test_no_acl(acl: str | None) -> None:
    assert validate_acl(acl) is None


# --- options ---------------------------------------------------------------------------------------


def options(**overrides: Any) -> UploadOptions:
    values: dict[str, Any] = {"bucket": "my-bucket", "sources": ("src",)}
    values.update(overrides)
    return UploadOptions(**values)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"bucket": ""}, "bucket is required", id="no-bucket"),
        pytest.param({"bucket": "ab"}, "not a valid bucket name", id="bucket-too-short"),
        pytest.param({"bucket": "b" * 64}, "not a valid bucket name", id="bucket-too-long"),
        pytest.param({"bucket": "My-Bucket"}, "not a valid bucket name", id="bucket-upper-case"),
        pytest.param({"bucket": "-bucket"}, "not a valid bucket name", id="bucket-leading-dash"),
        pytest.param({"bucket": "bucket-"}, "not a valid bucket name", id="bucket-trailing-dash"),
        pytest.param({"bucket": "a..b"}, "not a valid bucket name", id="bucket-double-dot"),
        pytest.param({"bucket": "a/b"}, "not a valid bucket name", id="bucket-slash"),
        pytest.param({"bucket": "s3://bucket"}, "not a valid bucket name", id="bucket-url"),
        pytest.param({"mode": "sync"}, "invalid put_mode", id="mode"),
        pytest.param({"limit": -1}, "limit must", id="negative-limit"),
        pytest.param({"processes": 0}, "processes must", id="zero-processes"),
        pytest.param({"processes": -3}, "processes must", id="negative-processes"),
        pytest.param({"processes": 1000}, "processes must", id="absurd-processes"),
        pytest.param({"threads": 0}, "threads must", id="zero-threads"),
        pytest.param({"threads": 100_000}, "threads must", id="absurd-threads"),
        pytest.param({"part_size": 5 * MIB - 1}, "part_size must", id="part-size-too-small"),
        pytest.param({"part_size": 6 * 1024 * MIB}, "part_size must", id="part-size-too-big"),
        pytest.param({"multipart_threshold": 1024}, "multipart_threshold must", id="threshold-too-small"),
        pytest.param({"gzip_level": 0}, "gzip_level must", id="gzip-level-0"),
        pytest.param({"gzip_level": 10}, "gzip_level must", id="gzip-level-10"),
        pytest.param({"content_type": "html"}, "invalid content_type", id="content-type-no-slash"),
        pytest.param({"content_type": "text/html\nX: y"}, "invalid content_type", id="content-type-newline"),
        pytest.param({"content_type": "text/html\r"}, "content_type", id="content-type-carriage-return"),
        pytest.param({"gzip_types": ("text",)}, "invalid gzip_types", id="gzip-type"),
        pytest.param({"grant": "everyone"}, "invalid grant", id="grant"),
        pytest.param({"headers": ("Bad Header",)}, "malformed headers", id="header"),
        pytest.param(
            {"gzip": True, "headers": ("Content-Encoding:br",)}, "Content-Encoding", id="gzip-vs-ce"
        ),
        pytest.param(
            {"content_type": "text/plain", "headers": ("Content-Type:text/html",)},
            "content type once",
            id="content-type-twice",
        ),
    ],
)
def test_invalid_options(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        options(**overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"endpoint_url": "localhost:9000"}, "invalid endpoint_url", id="no-scheme"),
        pytest.param({"endpoint_url": "ftp://h"}, "invalid endpoint_url", id="bad-scheme"),
        pytest.param({"endpoint_url": "http://h/a?b=c"}, "no query or fragment", id="query"),
        pytest.param({"max_attempts": 0}, "retries must", id="no-attempts"),
        pytest.param({"max_attempts": 100}, "retries must", id="absurd-retries"),
        pytest.param({"connect_timeout": 0}, "timeouts", id="zero-timeout"),
    ],
)
def test_invalid_connection(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ConnectionSettings(**overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="defaults"),
        pytest.param({"bucket": "abc"}, id="bucket-3-chars"),
        pytest.param({"bucket": "a.b-c_d9"}, id="bucket-dots-dashes"),
        pytest.param({"limit": 0}, id="limit-zero"),
        pytest.param({"processes": 64, "threads": 256}, id="max-concurrency"),
        pytest.param({"part_size": 5 * MIB, "multipart_threshold": 5 * MIB}, id="min-part"),
        pytest.param({"gzip": True, "gzip_types": ("all",)}, id="gzip-all"),
    ],
)
def test_valid_options(overrides: dict[str, Any]) -> None:
    opts = options(**overrides)
    for name, value in overrides.items():
        assert getattr(opts, name) == value, name  # kept as given, neither clamped nor dropped
    assert opts.put_params() == {}
    assert pickle.loads(pickle.dumps(opts)) == opts


def test_option_defaults_are_the_documented_ones() -> None:
    opts = options()
    assert (opts.prefix, opts.mode, opts.dry_run, opts.limit) == ("", "update", False, None)
    assert (opts.gzip, opts.gzip_level, opts.headers, opts.grant) == (False, 9, (), None)
    assert (opts.multipart_threshold, opts.part_size) == (16 * MIB, 8 * MIB)
    assert (opts.transport, opts.follow_symlinks) == ("auto", False)


def test_options_pickle_and_hide_secrets() -> None:
    connection = ConnectionSettings(access_key="AKIDEXAMPLE", secret_key="s3cr3t-value", session_token="tok")
    opts = options(connection=connection)
    assert pickle.loads(pickle.dumps(opts)) == opts
    for text in (repr(opts), str(opts)):
        assert "s3cr3t-value" not in text
        assert "tok'" not in text


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        pytest.param(0, 16 * MIB, id="empty"),
        pytest.param(10_000 * 16 * MIB, 16 * MIB, id="exactly-10000-parts"),
        pytest.param(10_000 * 16 * MIB + 1, 32 * MIB, id="one-byte-more-doubles"),
        pytest.param(10_000 * 100 * MIB, 128 * MIB, id="huge"),
    ],
)
def test_part_size_for(size: int, expected: int) -> None:
    assert options(part_size=16 * MIB).part_size_for(size) == expected


# --- --header and --grant: exact messages and boundaries


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

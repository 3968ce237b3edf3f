"""The transport contract: the same cases against both adapters (CRT, boto3) on both servers
(SeaweedFS, which lists in tree order, and moto's server, which lists like AWS).

What the engine relies on is checked here once, so a new adapter, or a server quirk, is found
by these cases rather than by a failed upload.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.bucket_check import bucket_error
from airflow_s3pput.errors import S3Error
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.testing.local_s3 import LocalS3Server, free_port
from airflow_s3pput.testing.moto_s3 import MotoS3Server
from airflow_s3pput.transport import ListPage, PartBody, SentPart, Stored, Transport
from airflow_s3pput.transport.boto3_transport import Boto3Transport
from airflow_s3pput.transport.crt_transport import CrtTransport

MiB = 1024**2
Server = LocalS3Server | MotoS3Server


def open_adapter(adapter: str, settings: ConnectionSettings, bucket: str) -> Transport:
    if adapter == "crt":
        return CrtTransport(settings, bucket)
    return Boto3Transport.open(settings, bucket, threads=4)


@pytest.fixture(params=["seaweedfs", "moto"])
def server(request: pytest.FixtureRequest) -> Server:
    name = "s3_server" if request.param == "seaweedfs" else "moto_server"
    found: Server = request.getfixturevalue(name)
    return found


@pytest.fixture
def raw(server: Server) -> Any:
    """A plain boto3 client on the same server: the reference the adapters are held against."""
    return server.client()


@pytest.fixture
def fresh_bucket(raw: Any) -> str:
    name = f"c-{uuid.uuid4().hex[:16]}"
    raw.create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["crt", "boto3"])
def transport(request: pytest.FixtureRequest, server: Server, fresh_bucket: str) -> Iterator[Transport]:
    opened = open_adapter(request.param, server.connection(), fresh_bucket)
    yield opened
    opened.close()


def all_pages(transport: Transport, prefix: str, **kwargs: Any) -> list[ListPage]:
    pages = [transport.list_page(prefix, **kwargs)]
    while pages[-1].next_token is not None:
        pages.append(transport.list_page(prefix, token=pages[-1].next_token, **kwargs))
    return pages


def raw_pages(raw: Any, bucket: str, prefix: str, **kwargs: Any) -> list[tuple[Any, ...]]:
    pages, token = [], ""
    while True:
        page = raw.list_objects_v2(
            Bucket=bucket, Prefix=prefix, **kwargs, **({"ContinuationToken": token} if token else {})
        )
        pages.append((
            [(o["Key"], o["Size"], o["ETag"].strip('"'), o["LastModified"].timestamp())
             for o in page.get("Contents", [])],
            [p["Prefix"] for p in page.get("CommonPrefixes", [])],
        ))  # fmt: skip
        token = page.get("NextContinuationToken", "")
        if not page["IsTruncated"]:
            return pages


AWKWARD = ["p/a b/c+d", "p/é/ü.txt", "p/100%/x", "p/q?x=1&y=2", "p/t~*()!'@$", "p/<&>.txt", "p/top", "other"]


@pytest.mark.parametrize(
    "kwargs",
    [pytest.param({"max_keys": 3}, id="pages-of-3"), pytest.param({"delimiter": "/"}, id="by-directory")],
)
def test_listing_pages_hold_what_the_server_lists(
    transport: Transport, raw: Any, fresh_bucket: str, kwargs: dict[str, Any]
) -> None:
    for number, key in enumerate(AWKWARD):
        raw.put_object(Bucket=fresh_bucket, Key=key, Body=b"x" * number)
    ours = [
        ([tuple(o) for o in page.objects], page.prefixes) for page in all_pages(transport, "p/", **kwargs)
    ]
    boto3_names = {"max_keys": "MaxKeys", "delimiter": "Delimiter"}
    theirs = raw_pages(raw, fresh_bucket, "p/", **{boto3_names[k]: v for k, v in kwargs.items()})
    assert ours == theirs
    listed = {key for objects, _ in ours for key, *_ in objects}
    under_p = {k for k in AWKWARD if k.startswith("p/")}
    assert listed == (under_p if "max_keys" in kwargs else {k for k in under_p if "/" not in k[2:]})


def test_head_bucket_answers_the_server_time_and_listings_when_each_object_was_written(
    transport: Transport, raw: Any, fresh_bucket: str
) -> None:
    # What counts the files an earlier try of an Airflow run landed: the plan's HeadBucket
    # time and each object's LastModified, both the server's, both to the second.
    before = transport.head_bucket()
    raw.put_object(Bucket=fresh_bucket, Key="t/written", Body=b"now")
    after = transport.head_bucket()
    assert before is not None and after is not None
    assert before == int(before) and after >= before  # the Date header: whole seconds
    (listed,) = transport.list_page("t/").objects
    assert listed.last_modified is not None
    assert int(before) <= listed.last_modified < int(after) + 1
    head = raw.head_object(Bucket=fresh_bucket, Key="t/written")
    assert listed.last_modified == head["LastModified"].timestamp()


def test_listing_starts_after_a_key(transport: Transport, raw: Any, fresh_bucket: str) -> None:
    for key in ("d/a", "d/b", "d/c"):
        raw.put_object(Bucket=fresh_bucket, Key=key, Body=b"")
    page = transport.list_page("d/", start_after="d/a")
    assert [o.key for o in page.objects] == ["d/b", "d/c"]
    assert page.next_token is None


def test_put_object_keeps_its_parameters_and_answers_the_md5(
    transport: Transport, raw: Any, fresh_bucket: str
) -> None:
    body = b"hello contract"
    params = {
        "ContentType": "text/x-test",
        "CacheControl": "max-age=60",
        "Metadata": {"origin": "contract"},
        "ContentMD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
    }
    assert transport.put_object("k/one", body, params) == Stored(hashlib.md5(body).hexdigest(), "")
    stored = raw.get_object(Bucket=fresh_bucket, Key="k/one")
    assert stored["Body"].read() == body
    assert (stored["ContentType"], stored["CacheControl"], stored["Metadata"]) == (
        "text/x-test", "max-age=60", {"origin": "contract"},
    )  # fmt: skip


def test_put_object_async_calls_back_once_with_the_etag(
    transport: Transport, raw: Any, fresh_bucket: str
) -> None:
    import threading

    outcomes: list[tuple[Stored | None, S3Error | None]] = []
    done = threading.Event()

    def callback(stored: Stored | None, error: S3Error | None) -> None:
        outcomes.append((stored, error))
        done.set()

    transport.put_object_async("k/async", b"later", {"ContentType": "text/plain"}, callback)
    assert done.wait(30)
    assert outcomes == [(Stored(hashlib.md5(b"later").hexdigest(), ""), None)]
    assert raw.get_object(Bucket=fresh_bucket, Key="k/async")["Body"].read() == b"later"


@pytest.mark.parametrize("adapter", ["crt", "boto3"])
def test_a_body_that_does_not_match_its_content_md5_is_refused_as_damaged(
    s3_server: LocalS3Server, s3_client: Any, bucket: str, adapter: str
) -> None:
    # SeaweedFS only: moto stores the body whatever its Content-MD5 says (the putter's ETag
    # check is what catches damage on such a server).
    transport = open_adapter(adapter, s3_server.connection(), bucket)
    wrong = base64.b64encode(hashlib.md5(b"other bytes").digest()).decode()
    try:
        with pytest.raises(S3Error) as raised:
            transport.put_object("k/bad", b"these bytes", {"ContentMD5": wrong})
    finally:
        transport.close()
    assert raised.value.damaged_in_transit, raised.value
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket)


def test_multipart_parts_keep_their_md5_and_the_object_its_multipart_etag(
    transport: Transport, raw: Any, fresh_bucket: str, tmp_path: Path
) -> None:
    parts = [os.urandom(5 * MiB), os.urandom(MiB)]
    path = tmp_path / "big"
    path.write_bytes(b"".join(parts))
    upload_id = transport.create_multipart("big", {"ContentType": "application/x-test"})
    fd = os.open(path, os.O_RDONLY)
    try:
        etags = [
            transport.upload_part(
                "big", upload_id, 1, PartBody(fd, 0, 5 * MiB), hashlib.md5(parts[0]).digest()
            ),
            transport.upload_part(
                "big", upload_id, 2, PartBody(fd, 5 * MiB, MiB), hashlib.md5(parts[1]).digest()
            ),
        ]
    finally:
        os.close(fd)
    joined = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    assert transport.complete_multipart("big", upload_id, [SentPart(e) for e in etags]) == Stored(
        f"{joined}-2", ""
    )
    stored = raw.get_object(Bucket=fresh_bucket, Key="big")
    assert stored["Body"].read() == b"".join(parts)
    assert stored["ContentType"] == "application/x-test"
    assert transport.open_uploads("big") == []


def test_open_uploads_are_listed_until_aborted(transport: Transport, raw: Any, fresh_bucket: str) -> None:
    upload_id = transport.create_multipart("w/open", {})
    (upload,) = transport.open_uploads("w/")
    assert (upload.key, upload.upload_id) == ("w/open", upload_id)
    # moto answers a fixed date (2010-11-10): only the format is the contract.
    assert datetime.fromisoformat(upload.initiated.replace("Z", "+00:00")).tzinfo is not None
    transport.abort_multipart("w/open", upload_id)
    assert transport.open_uploads("w/") == []
    assert "Contents" not in raw.list_objects_v2(Bucket=fresh_bucket)


def test_delete_objects_removes_the_keys_and_ignores_missing_ones(
    transport: Transport, raw: Any, fresh_bucket: str
) -> None:
    for key in ("x/1", "x/2", "x/keep"):
        raw.put_object(Bucket=fresh_bucket, Key=key, Body=b"")
    assert transport.delete_objects(["x/1", "x/2", "x/never-there", "x/<&>"]) == {}
    assert [o["Key"] for o in raw.list_objects_v2(Bucket=fresh_bucket)["Contents"]] == ["x/keep"]


@pytest.mark.parametrize("adapter", ["crt", "boto3"])
def test_a_missing_bucket_is_a_404(server: Server, adapter: str) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    transport = open_adapter(adapter, server.connection(), missing)
    try:
        with pytest.raises(S3Error) as raised:
            transport.quick().head_bucket()
    finally:
        transport.close()
    assert raised.value.status == 404
    assert str(bucket_error(raised.value, missing, "here")) == f"bucket {missing!r} does not exist at here"


@pytest.mark.parametrize("adapter", ["crt", "boto3"])
def test_a_wrong_secret_is_refused_without_showing_it(
    s3_server: LocalS3Server, bucket: str, adapter: str
) -> None:
    # SeaweedFS only: moto accepts any signature.
    transport = open_adapter(adapter, s3_server.connection(secret_key="wrong-secret-value"), bucket)
    try:
        with pytest.raises(S3Error) as raised:
            transport.list_page("")
    finally:
        transport.close()
    assert raised.value.code == "SignatureDoesNotMatch"
    assert "wrong-secret-value" not in str(raised.value)
    assert "rejected the credentials" in str(bucket_error(raised.value, bucket, "here"))


@pytest.mark.parametrize("adapter", ["crt", "boto3"])
def test_an_unreachable_endpoint_is_unreachable(adapter: str) -> None:
    settings = ConnectionSettings(
        endpoint_url=f"http://127.0.0.1:{free_port()}", access_key="a", secret_key="b", max_attempts=2,
        connect_timeout=2,
    )  # fmt: skip
    transport = open_adapter(adapter, settings, "b")
    try:
        with pytest.raises(S3Error) as raised:
            transport.head_bucket()
    finally:
        transport.close()
    assert raised.value.code == S3Error.UNREACHABLE
    assert str(bucket_error(raised.value, "b", "there")).startswith("cannot reach there")

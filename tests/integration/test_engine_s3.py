"""The engine against a real SeaweedFS with a client we can watch: requests sent, ACLs,
multipart ETags, listing by pages, aborted uploads, files that change under us."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import engine
from airflow_s3pput.bucket_check import WRITE_CHECK
from airflow_s3pput.etag import MIB
from airflow_s3pput.modes import RemoteObject
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.remote_index import RemoteIndex
from airflow_s3pput.transport.boto3_transport import Boto3Transport
from airflow_s3pput.upload_body import BytesContent, FileContent
from airflow_s3pput.walker import WalkItem
from tests.helpers import RequestLog, list_keys, make_tree

TREE = {f"d{i % 3}/sub/f{i}.txt": f"file {i}" for i in range(12)} | {"top.txt": "top"}


def opts(bucket: str, src: Path, **overrides: Any) -> UploadOptions:
    values: dict[str, Any] = {"bucket": bucket, "sources": (str(src),), "processes": 1, "threads": 4}
    values.update(overrides)
    return UploadOptions(**values)


WRITES = {
    "PutObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
}


@pytest.mark.parametrize(
    ("mode", "dry_run", "allowed", "puts"),
    [
        pytest.param(
            "stupid",
            False,
            {
                "HeadBucket",
                "CreateMultipartUpload",
                "AbortMultipartUpload",
                "ListMultipartUploads",
                "PutObject",
            },
            len(TREE),
            id="stupid-never-lists",
        ),
        pytest.param(
            "update",
            False,
            {
                "HeadBucket",
                "ListObjectsV2",
                "CreateMultipartUpload",
                "AbortMultipartUpload",
                "ListMultipartUploads",
                "PutObject",
            },
            len(TREE),
            id="update-lists-never-heads",
        ),
        pytest.param("update", True, {"HeadBucket", "ListObjectsV2"}, 0, id="dry-run-update-no-writes"),
        pytest.param("stupid", True, {"HeadBucket"}, 0, id="dry-run-stupid-only-head-bucket"),
    ],
)
def test_requests_sent(
    logged_client: tuple[Any, RequestLog],
    bucket: str,
    tmp_path: Path,
    mode: str,
    dry_run: bool,
    allowed: set[str],
    puts: int,
) -> None:
    client, log = logged_client
    src = make_tree(tmp_path / "src", TREE)
    stats = engine.upload(
        opts(bucket, src, mode=mode, dry_run=dry_run), transport=Boto3Transport(client, bucket)
    )
    assert stats.files_put == len(TREE)
    assert set(log.counts) <= allowed, log.counts
    assert log.counts["PutObject"] == puts
    if mode == "update":
        # one listing per directory (4 of them) and one for the bucket check, not one per file
        assert log.counts["ListObjectsV2"] <= 5
    if dry_run:
        assert not WRITES & set(log.counts)
        assert list_keys(client, bucket) == {}


def test_grant_is_sent_as_acl(logged_client: tuple[Any, RequestLog], bucket: str, tmp_path: Path) -> None:
    # SeaweedFS does not report canned ACLs back, so look at the requests themselves.
    client, log = logged_client
    src = make_tree(tmp_path / "src", {"small.txt": "s", "big.bin": os.urandom(6 * MIB)})
    options = opts(bucket, src, grant="public-read", multipart_threshold=5 * MIB, part_size=5 * MIB)
    stats = engine.upload(options, transport=Boto3Transport(client, bucket))
    assert stats.files_put == 2
    assert [h.get("x-amz-acl") for h in log.headers_of("PutObject")] == ["public-read"]
    # The write check's upload goes out beside the first PUTs, before or after big.bin's.
    creates = [p for op, p in log.calls if op == "CreateMultipartUpload" and WRITE_CHECK not in p["url_path"]]
    assert [p["headers"].get("x-amz-acl") for p in creates] == ["public-read"]


def test_every_put_carries_content_md5(
    logged_client: tuple[Any, RequestLog], bucket: str, tmp_path: Path
) -> None:
    client, log = logged_client
    src = make_tree(tmp_path / "src", {"small.txt": "s", "big.bin": os.urandom(6 * MIB)})
    engine.upload(
        opts(bucket, src, multipart_threshold=5 * MIB, part_size=5 * MIB),
        transport=Boto3Transport(client, bucket),
    )
    sent = log.headers_of("PutObject") + log.headers_of("UploadPart")
    assert len(sent) == 3
    assert all(h.get("Content-MD5") for h in sent)


class FailingPart:
    """Delegates to a real client but fails the second part of every multipart upload."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def upload_part(self, **kwargs: Any) -> Any:
        if kwargs["PartNumber"] == 2:
            raise ConnectionResetError("injected failure")
        return self._client.upload_part(**kwargs)


def test_failed_multipart_is_aborted(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"big.bin": os.urandom(11 * MIB), "ok.txt": "ok"})
    options = opts(bucket, src, multipart_threshold=5 * MIB, part_size=5 * MIB)
    stats = engine.upload(options, transport=Boto3Transport(FailingPart(s3_client), bucket))
    assert (stats.files_put, stats.failed) == (1, 1)
    assert stats.failures[0][0] == "big.bin"
    assert "injected failure" in stats.failures[0][1]
    assert set(list_keys(s3_client, bucket)) == {"ok.txt"}
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(lambda p: p.write_text("grown by a lot"), "changed", id="size-changed"),
        pytest.param(
            lambda p: (p.write_text("XXXX"), os.utime(p, ns=(0, p.stat().st_mtime_ns + 10**9))),
            "changed",
            id="same-size-new-mtime",
        ),
        pytest.param(lambda p: p.unlink(), "disappeared", id="deleted"),
    ],
)
@pytest.mark.parametrize("size", [pytest.param(4, id="small"), pytest.param(6 * MIB, id="multipart")])
def test_file_changed_between_walk_and_put(
    s3_client: Any,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: Any,
    message: str,
    size: int,
) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a", "victim.txt": b"v" * size, "z.txt": "z"})
    real_walk = engine.walk

    def walk_then_change(*args: Any, **kwargs: Any) -> Iterator[WalkItem]:
        for item in real_walk(*args, **kwargs):
            if item.key == "victim.txt":
                change(Path(item.path))
            yield item

    monkeypatch.setattr(engine, "walk", walk_then_change)
    options = opts(bucket, src, multipart_threshold=5 * MIB, part_size=5 * MIB)
    stats = engine.upload(options, transport=Boto3Transport(s3_client, bucket))
    assert (stats.files_put, stats.failed) == (2, 1)
    assert stats.failures[0][0] == "victim.txt"
    assert message in stats.failures[0][1]
    assert set(list_keys(s3_client, bucket)) == {"a.txt", "z.txt"}


def test_unreadable_file_fails_alone(
    s3_client: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, who reads any file: refuse the open the way chmod 000 would.
    src = make_tree(tmp_path / "src", {"a.txt": "a", "secret.txt": "s", "z.txt": "z"})
    real_open = os.open

    def deny(path: Any, *args: Any, **kwargs: Any) -> int:
        if str(path).endswith("secret.txt"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    stats = engine.upload(opts(bucket, src), transport=Boto3Transport(s3_client, bucket))
    assert (stats.files_put, stats.failed) == (2, 1)
    assert stats.failures == (("secret.txt", "cannot read: Permission denied"),)
    assert set(list_keys(s3_client, bucket)) == {"a.txt", "z.txt"}


# --- ETags as the server computes them --------------------------------------------------------------


def test_local_etags_match_the_server(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    data = os.urandom(12 * MIB + 321)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    part = 5 * MIB
    upload_id = s3_client.create_multipart_upload(Bucket=bucket, Key="big.bin")["UploadId"]
    parts = []
    for number, offset in enumerate(range(0, len(data), part), start=1):
        response = s3_client.upload_part(
            Bucket=bucket,
            Key="big.bin",
            UploadId=upload_id,
            PartNumber=number,
            Body=data[offset : offset + part],
        )
        parts.append({"PartNumber": number, "ETag": response["ETag"]})
    s3_client.complete_multipart_upload(
        Bucket=bucket, Key="big.bin", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    s3_client.put_object(Bucket=bucket, Key="small.bin", Body=data[:1000])

    server_multipart = s3_client.head_object(Bucket=bucket, Key="big.bin")["ETag"].strip('"')
    server_single = s3_client.head_object(Bucket=bucket, Key="small.bin")["ETag"].strip('"')
    assert server_multipart.endswith("-3")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert FileContent(fd, len(data), part).multipart_etag(part) == server_multipart
        assert FileContent(fd, len(data), part).matches_etag(server_multipart)
    finally:
        os.close(fd)
    # Configured otherwise, the whole-MiB split of the size into 3 parts is still found.
    assert BytesContent(data, 8 * MIB).matches_etag(server_multipart)
    assert not BytesContent(data[:-1] + b"?", part).matches_etag(server_multipart)
    assert server_single == hashlib.md5(data[:1000]).hexdigest()
    assert BytesContent(data[:1000], part).matches_etag(server_single)


# --- listing ----------------------------------------------------------------------------------------


class SmallPages:
    """Delegates to a real client but lists two keys a page, to exercise continuation."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.pages = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def list_objects_v2(self, **kwargs: Any) -> Any:
        self.pages += 1
        return self._client.list_objects_v2(**{**kwargs, "MaxKeys": 2})


def test_lookup_by_pages_in_tree_ordered_server(s3_client: Any, bucket: str) -> None:
    names = ["a.txt", "a/b", "a-b", "a0", "b", "é", "z z", "zz/x"]
    stored = {f"p/{n}": n.encode() * 3 for n in names} | {f"p/d/{i:02}": b"x" * i for i in range(9)}
    for key, data in stored.items():
        s3_client.put_object(Bucket=bucket, Key=key, Body=data)
    wanted = ["p/a.txt", "p/a0", "p/d/03", "p/d/04", "p/d/08", "p/missing", "p/d/missing", "p/zz/x", "q/none"]
    paged = SmallPages(s3_client)
    found = RemoteIndex(Boto3Transport(paged, bucket)).lookup(wanted)
    expected = {
        k: RemoteObject(
            len(stored[k]),
            hashlib.md5(stored[k]).hexdigest(),
            s3_client.head_object(Bucket=bucket, Key=k)["LastModified"].timestamp(),
        )
        for k in wanted
        if k in stored
    }
    assert found == expected
    assert paged.pages > 4  # continuation was needed

"""The CRT data plane against the real server: integrity, headers, errors, same result as boto3."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.cli import main
from airflow_s3pput.errors import S3Error
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.testing.local_s3 import LocalS3Server
from airflow_s3pput.transport.crt_transport import CrtTransport
from tests.helpers import list_keys, make_tree, no_aws_env


def sender(server: LocalS3Server, bucket: str, **more: Any) -> CrtTransport:
    return CrtTransport(server.connection(**more), bucket)


def md5_b64(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def test_a_body_that_does_not_match_its_md5_is_rejected(
    s3_server: LocalS3Server, bucket: str, s3_client: Any
) -> None:
    crt = sender(s3_server, bucket)
    try:
        with pytest.raises(S3Error, match="BadDigest"):
            crt.put_object("bad", b"payload", {"ContentMD5": md5_b64(b"another payload")})
        stored = crt.put_object("good", b"payload", {"ContentMD5": md5_b64(b"payload")})
    finally:
        crt.close()
    assert stored.etag == hashlib.md5(b"payload").hexdigest()
    assert set(list_keys(s3_client, bucket)) == {"good"}


def test_awkward_keys_round_trip(s3_server: LocalS3Server, bucket: str, s3_client: Any) -> None:
    keys = ["a b/c+d", "é/ü.txt", "100%/x", "q?x=1&y=2", "h#a;b,c=d", "t~*()!'@$"]
    crt = sender(s3_server, bucket)
    try:
        for key in keys:
            crt.put_object(key, key.encode(), {"ContentMD5": md5_b64(key.encode())})
    finally:
        crt.close()
    for key in keys:
        assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()


def test_unreachable_endpoint_fails_fast_with_a_name(unused_port: int) -> None:
    settings = ConnectionSettings(
        endpoint_url=f"http://127.0.0.1:{unused_port}", access_key="a", secret_key="b", max_attempts=2
    )
    crt = CrtTransport(settings, "some-bucket")
    try:
        with pytest.raises(S3Error, match="CONNECTION_REFUSED"):
            crt.put_object("k", b"x", {})
    finally:
        crt.close()


@pytest.fixture
def unused_port() -> int:
    from airflow_s3pput.testing.local_s3 import free_port

    return free_port()


def stored(client: Any, bucket: str, prefix: str) -> dict[str, tuple[Any, ...]]:
    result = {}
    for key in list_keys(client, bucket, prefix):
        head = client.head_object(Bucket=bucket, Key=key)
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        result[key[len(prefix) :]] = (
            hashlib.md5(body).hexdigest(),
            head["ContentType"],
            head.get("ContentEncoding"),
            head.get("CacheControl"),
            head.get("Metadata"),
        )
    return result


def test_crt_and_boto3_store_the_same_objects(
    s3_env: LocalS3Server, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    files = {
        "index.html": "<p>hi</p>" * 50,
        "data/a.json": '{"a": 1}',
        "img/x.bin": b"\x00\x01" * 999,
        "empty": "",
    }
    source = make_tree(tmp_path / "src", files)
    common = [
        "--bucket",
        bucket,
        "--gzip",
        "--header",
        "Cache-Control:max-age=60",
        "--header",
        "x-amz-meta-team:data",
    ]
    for transport in ("crt", "boto3"):
        code = main(
            [*common, "--prefix", transport, "--transport", transport, str(source)], out=io.StringIO()
        )
        assert code == 0
    crt, boto = stored(s3_client, bucket, "crt/"), stored(s3_client, bucket, "boto3/")
    assert crt == boto
    assert set(crt) == set(files)
    assert crt["index.html"][1:4] == ("text/html", "gzip", "max-age=60")
    assert crt["index.html"][4] == {"team": "data"}


def counted_sessions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import boto3.session

    sessions: list[Any] = []

    class CountedSession(boto3.session.Session):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            sessions.append(self)

    monkeypatch.setattr(boto3.session, "Session", CountedSession)
    return sessions


def crt_upload(server: LocalS3Server, bucket: str, tmp_path: Path, **connection: Any) -> int:
    from airflow_s3pput import engine
    from airflow_s3pput.options import UploadOptions

    src = make_tree(tmp_path / "src", {"a.txt": "a", "d/b.txt": "b", "big.bin": b"z" * (6 * 1024**2)})
    options = UploadOptions(
        bucket=bucket,
        sources=(str(src),),
        processes=1,
        transport="crt",
        multipart_threshold=5 * 1024**2,
        connection=ConnectionSettings(endpoint_url=server.endpoint_url, **connection),
    )
    stats = engine.upload(options)
    assert stats.failed == 0, stats.failures
    return stats.files_put


def test_a_run_resolves_profile_credentials_in_one_boto3_session(
    s3_server: LocalS3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_aws_env(monkeypatch)
    credentials = tmp_path / "credentials"
    keys = f"aws_access_key_id = {s3_server.access_key}\naws_secret_access_key = {s3_server.secret_key}\n"
    credentials.write_text("[bench]\n" + keys)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    sessions = counted_sessions(monkeypatch)
    assert crt_upload(s3_server, bucket, tmp_path, profile="bench") == 3
    # the bucket check, the listing and multipart client and the CRT's credentials: one session
    assert len(sessions) == 1


def test_a_run_with_plain_keys_needs_no_boto3_session(
    s3_env: LocalS3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = counted_sessions(monkeypatch)
    assert crt_upload(s3_env, bucket, tmp_path) == 3  # the multipart file too
    assert sessions == []


EXITING_RUN = """
import json, sys
from airflow_s3pput.engine import upload
from airflow_s3pput.option_builder import build_connection, build_options

raw = {"bucket": sys.argv[1], "source": [sys.argv[2]], "put_mode": "stupid", "processes": 1,
       "transport": "crt", "multipart_threshold": "5MiB", "part_size": "5MiB"}
stats = upload(build_options(raw, connection=build_connection({"endpoint_url": sys.argv[3]})))
print(json.dumps({"put": stats.files_put, "failed": stats.failed}))
"""


def test_a_process_that_used_the_crt_exits_cleanly(
    s3_server: LocalS3Server, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    """Small files and a streamed multipart file, then interpreter exit while the CRT's threads
    may still be winding down: no fatal error, no warning."""
    files = {f"small/{i}.txt": f"body {i}" for i in range(40)}
    src = make_tree(tmp_path / "src", files)
    (src / "big.bin").write_bytes(os.urandom(12 * 1024 * 1024))  # 3 streamed parts of 5 MiB
    env = dict(os.environ, **s3_server.env())
    done = subprocess.run(
        [sys.executable, "-c", EXITING_RUN, bucket, str(src), s3_server.endpoint_url],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert json.loads(done.stdout) == {"put": 41, "failed": 0}
    assert set(list_keys(s3_client, bucket)) == {*files, "big.bin"}

"""The boto3 transport uses every attempt it is given, however many requests are throttled at once.

botocore's ``standard`` retry mode keeps a retry quota (500 tokens, 5 a throttled retry): many
PUTs answered ``503 SlowDown`` together drain it, and then no request is retried at all. So the
transport tells botocore to make one attempt and retries under its own ``RetryPolicy``
(``transport.retry_policy``). These tests count, at a proxy in front of SeaweedFS, the attempts
that really reach the wire, and show a run under heavy throttling landing every file.
"""

from __future__ import annotations

import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from airflow_s3pput.cli import main
from airflow_s3pput.errors import S3Error
from airflow_s3pput.testing.local_s3 import LocalS3Server
from airflow_s3pput.transport.boto3_transport import Boto3Transport
from airflow_s3pput.transport.interface import Stored
from tests.helpers import list_keys

from .proxy import FAULTS_BUCKET, Fault, FaultProxy

#: 60 files x 3 retries = 180 throttled retries: botocore's quota allows 100 (500 / 5)
FILES = 60
ATTEMPTS = 4  # waits of up to 0.5 + 1 + 2 s a file: the test stays short


@pytest.mark.timeout(90)
def test_every_attempt_is_sent_when_every_put_is_throttled(
    fault_proxy: FaultProxy, s3_server: LocalS3Server
) -> None:
    settings = s3_server.connection(endpoint_url=fault_proxy.endpoint_url, max_attempts=ATTEMPTS)
    transport = Boto3Transport.open(settings, FAULTS_BUCKET, threads=FILES)
    fault_proxy.set_rules([Fault("error", status=503, method="PUT")])
    errors: list[S3Error | None] = []
    lock, done = threading.Lock(), threading.Event()

    def finished(stored: Stored | None, error: S3Error | None) -> None:
        with lock:
            errors.append(error)
            if len(errors) == FILES:
                done.set()

    try:
        for n in range(FILES):
            transport.put_object_async(f"throttled/{n}.txt", b"x", {}, finished)
        assert done.wait(60), "the PUTs did not end"
    finally:
        transport.close()
    assert all(e is not None and e.status == 503 for e in errors)
    # exactly the attempts asked for: none added by botocore, none refused by a drained quota
    assert fault_proxy.stats["faults"]["error"] == FILES * ATTEMPTS


@pytest.mark.timeout(90)
def test_botocore_alone_stops_retrying_once_its_quota_is_drained(
    fault_proxy: FaultProxy, proxy_client: Any
) -> None:
    """Why the transport retries itself: the same PUTs through botocore's own standard-mode
    retries reach the wire fewer times than asked. If this fails, botocore no longer drains a
    quota this way and its own retries could serve again (docs/upstream/botocore-retry-quota.md)."""
    client = proxy_client(
        retries={"total_max_attempts": ATTEMPTS, "mode": "standard"}, max_pool_connections=FILES
    )
    fault_proxy.set_rules([Fault("error", status=503, method="PUT")])

    def put(n: int) -> None:
        with pytest.raises(ClientError):
            client.put_object(Bucket=FAULTS_BUCKET, Key=f"quota/{n}.txt", Body=b"x")

    with ThreadPoolExecutor(FILES) as pool:
        list(pool.map(put, range(FILES)))
    assert fault_proxy.stats["faults"]["error"] < FILES * ATTEMPTS


THROTTLED_FILES = 300


@pytest.mark.timeout(120)
def test_a_run_under_heavy_throttling_lands_every_file(
    fault_proxy: FaultProxy, s3_server: LocalS3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40% of PUTs answered 503 SlowDown, far more throttled retries than botocore's quota allows:
    with the default attempts every file lands, and the run says so."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    source = tmp_path / "src"
    source.mkdir()
    for n in range(THROTTLED_FILES):
        (source / f"f{n:03d}.txt").write_bytes(b"body %d" % n)
    fault_proxy.set_rules([Fault("error", status=503, method="PUT", fraction=0.4, seed=11)])
    out, err = io.StringIO(), io.StringIO()
    argv = [
        "--bucket", FAULTS_BUCKET, "--prefix", "throttled-run/", "--endpoint-url", fault_proxy.endpoint_url,
        "--transport", "boto3", "--put", "stupid", "--json", "--quiet", str(source),
    ]  # fmt: skip
    code = main(argv, out, err)
    assert code == 0, err.getvalue()
    summary = json.loads(out.getvalue())
    assert (summary["files_put"], summary["files_failed"]) == (THROTTLED_FILES, 0)
    # far more throttled answers than botocore's quota would have let through (100 retries)
    assert fault_proxy.stats["faults"]["error"] > 100
    stored = list_keys(s3_server.client(), FAULTS_BUCKET, "throttled-run/")
    assert len(stored) == THROTTLED_FILES

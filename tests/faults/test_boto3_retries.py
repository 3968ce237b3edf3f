"""The boto3 transport uses every attempt it is given, however many requests fail at once.

botocore's standard retry mode has a retry quota (500 tokens, 5 a throttled retry): many PUTs
answered ``503 SlowDown`` together drain it, and then no request is retried at all. The
transport widens it (``boto3_transport.widen_retry_quota``); this counts, at a proxy that
answers 503 to every PUT, the attempts that really reach the wire.
"""

from __future__ import annotations

import threading

import pytest

from airflow_s3pput.errors import S3Error
from airflow_s3pput.testing.local_s3 import LocalS3Server
from airflow_s3pput.transport.boto3_transport import Boto3Transport
from airflow_s3pput.transport.port import Stored

from .proxy import FAULTS_BUCKET, Fault, FaultProxy

#: 60 files x 3 retries = 180 throttled retries: botocore's quota allows 100 (500 / 5)
FILES = 60
ATTEMPTS = 4  # backoff up to 1 + 2 + 4 s a file: the test stays short


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
    # exactly the attempts asked for: not one more (botocore's max_attempts counts retries) and
    # none refused by an emptied retry quota
    assert fault_proxy.stats["faults"]["error"] == FILES * ATTEMPTS

"""The CRT data plane has no read timeout of its own: our watchdog must end a PUT nobody answers."""

from __future__ import annotations

import time
import uuid

import pytest

from airflow_s3pput.errors import S3Error
from airflow_s3pput.testing.local_s3 import LocalS3Server
from airflow_s3pput.transport.crt_transport import CrtTransport

from .proxy import FAULTS_BUCKET, Fault, FaultProxy

pytestmark = pytest.mark.timeout(60)


def sender(s3_server: LocalS3Server, proxy: FaultProxy, **settings: float) -> CrtTransport:
    return CrtTransport(
        s3_server.connection(endpoint_url=proxy.endpoint_url, max_attempts=2, **settings),
        FAULTS_BUCKET,
    )


def test_a_blackholed_put_is_cancelled_after_its_attempts_timeouts(
    s3_server: LocalS3Server, fault_proxy: FaultProxy
) -> None:
    fault_proxy.set_rules([Fault("blackhole", method="PUT")])
    crt = sender(s3_server, fault_proxy, connect_timeout=0.5, read_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(S3Error) as raised:
        crt.put_object(f"w-{uuid.uuid4().hex}", b"never answered", {})
    elapsed = time.monotonic() - started
    crt.close()
    assert raised.value.code == "RequestTimeout"  # the watchdog's verdict, not an answer's
    assert fault_proxy.stats["faults"]["blackhole"] >= 1  # the PUT reached the proxy and hung
    # The allowance is every attempt's timeouts, 2 x (0.5 + 1.0) s, and the watchdog never cuts
    # a request short of it: a lower bound, which a busy machine cannot break.
    assert crt.sender.watchdog.seconds == 3.0
    assert elapsed >= crt.sender.watchdog.seconds, elapsed
    assert elapsed < 30, elapsed  # generous: without the watchdog the PUT hangs until pytest's timeout


def test_close_after_puts_does_not_wait_for_the_clients_shutdown_timeout(
    s3_server: LocalS3Server, fault_proxy: FaultProxy
) -> None:
    crt = sender(s3_server, fault_proxy)
    for i in range(3):
        crt.put_object(f"w-{uuid.uuid4().hex}-{i}", b"x" * i, {})
    shutdown = crt.sender.client.shutdown_event
    crt.close()
    # close() waits up to 10 s for the CRT client's shutdown: it must have returned because the
    # client did shut down (a request kept alive by the watchdog held it past that wait).
    assert shutdown.is_set()

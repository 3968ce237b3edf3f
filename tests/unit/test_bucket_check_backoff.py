"""The bucket check rides out an endpoint that is briefly away, and gives up in bounded time.

Table-driven: which ``S3Error`` is transient (asked again) and which fails at once; the backoff's
waits on a fake clock (nothing sleeps); the one line each front end gets.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_s3pput.bucket_check import PATIENCE, BucketCheck, bucket_error, speaks_plain_http, transient
from airflow_s3pput.errors import S3Error, Unavailable, UsageError
from airflow_s3pput.options import ConnectionSettings, UploadOptions
from airflow_s3pput.transport.retry_policy import RetryPolicy


class FakeClock:
    """``clock()`` and ``sleep(seconds)`` over one number: sleeping only moves it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float, stop: object = None) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def policy(self, jitter: float = 1.0) -> RetryPolicy:
        """The check's policy on this clock, with a fixed jitter (1.0: the longest waits)."""
        return dataclasses.replace(PATIENCE, clock=self.clock, sleep=self.sleep, jitter=lambda: jitter)


class Flaky:
    """A transport whose HeadBucket and CreateMultipartUpload fail with ``errors`` first; each
    failed try costs ``cost`` seconds of the fake clock (a refused connection costs little)."""

    bucket = "bkt"
    streams_parts = False

    def __init__(self, clock: FakeClock, errors: list[S3Error], cost: float = 0.01) -> None:
        self.clock = clock
        self.errors = list(errors)
        self.cost = cost
        self.heads = 0

    def quick(self) -> Flaky:
        return self

    def head_bucket(self) -> None:
        self.heads += 1
        self.clock.now += self.cost
        if self.errors:
            raise self.errors.pop(0)

    def close(self) -> None:
        pass


REFUSED = S3Error(S3Error.UNREACHABLE, "AWS_IO_SOCKET_CONNECTION_REFUSED")


def options(**connection: Any) -> UploadOptions:
    return UploadOptions(bucket="bkt", sources=("/nonexistent",), connection=ConnectionSettings(**connection))


def checked(transport: Flaky, clock: FakeClock, **connection: Any) -> None:
    opts = options(endpoint_url="http://127.0.0.1:1", **connection)
    check = BucketCheck(opts, transport, retry=clock.policy())  # type: ignore[arg-type]
    try:
        check.wait_head()
    finally:
        check.close()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(REFUSED, True, id="refused"),
        pytest.param(S3Error(S3Error.UNREACHABLE, "EndpointConnectionError"), True, id="dns-or-connect"),
        pytest.param(S3Error(S3Error.TIMEOUT, "no answer"), True, id="timeout"),
        pytest.param(S3Error("503", status=503), True, id="503-head"),
        pytest.param(S3Error("SlowDown", status=503), True, id="slow-down"),
        pytest.param(S3Error("InternalError", status=500), True, id="500"),
        pytest.param(S3Error("429", status=429), True, id="too-many-requests"),
        pytest.param(S3Error("ConnectionClosedError", "reset"), True, id="boto3-reset"),
        pytest.param(S3Error("AWS_ERROR_HTTP_CONNECTION_CLOSED"), True, id="crt-closed"),
        pytest.param(S3Error("AWS_ERROR_HTTP_RESPONSE_FIRST_BYTE_TIMEOUT"), True, id="crt-timeout"),
        pytest.param(S3Error("AWS_IO_TLS_ERROR_NEGOTIATION_FAILURE"), False, id="crt-tls"),
        pytest.param(S3Error("404", status=404), False, id="missing-bucket"),
        pytest.param(S3Error("AccessDenied", status=403), False, id="access-denied"),
        pytest.param(S3Error("SignatureDoesNotMatch", status=403), False, id="bad-secret"),
        pytest.param(S3Error("PermanentRedirect", status=301), False, id="other-region"),
        pytest.param(S3Error(S3Error.TLS_UNTRUSTED), False, id="untrusted-cert"),
        pytest.param(S3Error(S3Error.NO_CREDENTIALS), False, id="no-credentials"),
    ],
)
def test_which_errors_are_asked_again(error: S3Error, expected: bool) -> None:
    assert transient(error) is expected


def test_a_short_outage_is_ridden_out_with_growing_waits() -> None:
    clock = FakeClock()
    flaky = Flaky(clock, [REFUSED] * 4)
    checked(flaky, clock)
    assert flaky.heads == 5
    assert clock.waits == [0.5, 1.0, 2.0, 4.0]


def test_an_endpoint_that_stays_away_is_unavailable_within_the_budget() -> None:
    clock = FakeClock()
    flaky = Flaky(clock, [REFUSED] * 1000)
    with pytest.raises(Unavailable) as raised:
        checked(flaky, clock)
    # Waits double up to the cap, the last one cut to the budget: 15 s in all, not more.
    assert clock.waits[:4] == [0.5, 1.0, 2.0, 4.0] and max(clock.waits) == 4.0
    assert sum(clock.waits) + flaky.heads * flaky.cost == pytest.approx(15.0, abs=0.02)
    message = str(raised.value)
    assert message.startswith("cannot reach http://127.0.0.1:1: AWS_IO_SOCKET_CONNECTION_REFUSED")
    assert f"asked {flaky.heads} times in 15 s" in message
    assert isinstance(raised.value, UsageError)  # the CLI's one line and exit 2, as before


def test_the_waits_are_jittered_so_mapped_tasks_do_not_come_back_in_step() -> None:
    """Each wait is drawn below its ceiling (full jitter): two checks meeting the same outage
    ask again at different moments, and each still asks for the whole budget."""
    runs = []
    for _ in range(2):
        clock = FakeClock()
        retry = dataclasses.replace(PATIENCE, clock=clock.clock, sleep=clock.sleep)
        check = BucketCheck(options(), Flaky(clock, [REFUSED] * 1000), retry=retry)  # type: ignore[arg-type]
        with pytest.raises(Unavailable, match="asked"):
            check.wait_head()
        check.close()
        assert all(0 <= wait <= min(4.0, 0.5 * 2**n) for n, wait in enumerate(clock.waits))
        assert clock.now - 100.0 >= 15.0
        runs.append(clock.waits)
    assert runs[0][:3] != runs[1][:3]


def test_slow_tries_count_against_the_budget() -> None:
    clock = FakeClock()
    flaky = Flaky(clock, [S3Error(S3Error.TIMEOUT, "no answer within the read timeout")] * 1000, cost=6.0)
    with pytest.raises(Unavailable, match="not available: RequestTimeout"):
        checked(flaky, clock)
    assert flaky.heads == 3  # at 0, ~6.5 and ~13.5 s: the next would start after the budget


@pytest.mark.parametrize(
    ("error", "fragment"),
    [
        pytest.param(S3Error("404", status=404), "does not exist", id="missing-bucket"),
        pytest.param(S3Error("AccessDenied", status=403), "denied", id="access-denied"),
    ],
)
def test_what_no_retry_changes_fails_at_once(error: S3Error, fragment: str) -> None:
    clock = FakeClock()
    flaky = Flaky(clock, [error])
    with pytest.raises(UsageError, match=fragment) as raised:
        checked(flaky, clock)
    assert not isinstance(raised.value, Unavailable)
    assert flaky.heads == 1 and clock.waits == []


def test_closing_the_check_stops_its_wait() -> None:
    """Ctrl-C while the check waits out an outage: ``close`` ends the wait, not the budget."""
    gate = threading.Event()

    class Away(Flaky):
        def head_bucket(self) -> None:
            gate.set()
            raise REFUSED

    patient = dataclasses.replace(PATIENCE, backoff_base=60, backoff_cap=60)
    check = BucketCheck(options(), Away(FakeClock(), []), retry=patient)  # type: ignore[arg-type]
    check.start()
    assert gate.wait(5)
    check.close()  # returns at once: the wait is interrupted
    assert check.head is not None and check.head.done()
    with pytest.raises(Unavailable):
        check.wait_head()


@pytest.fixture
def plain_http_server() -> Iterator[int]:
    """A loopback server that answers every connection in clear HTTP, as an S3 on http:// does."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
    listener.close()
    thread.join(5)


def test_https_to_a_plain_http_endpoint_says_so(plain_http_server: int) -> None:
    endpoint = f"https://127.0.0.1:{plain_http_server}"
    assert speaks_plain_http(endpoint)
    assert not speaks_plain_http(f"http://127.0.0.1:{plain_http_server}")  # nothing to find out
    clock = FakeClock()
    flaky = Flaky(clock, [S3Error(S3Error.TLS_UNTRUSTED)])
    check = BucketCheck(options(endpoint_url=endpoint, verify=False), flaky, retry=clock.policy())  # type: ignore[arg-type]
    with pytest.raises(UsageError) as raised:
        check.wait_head()
    check.close()
    assert str(raised.value) == f"{endpoint} does not speak TLS; use http:// in endpoint_url"
    assert raised.value.render({"endpoint_url": "--endpoint-url"}).endswith("use http:// in --endpoint-url")


def test_an_untrusted_certificate_is_still_blamed_on_the_certificate() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:  # closed below: nothing answers there
        endpoint = f"https://127.0.0.1:{closed.getsockname()[1]}"
    clock = FakeClock()
    flaky = Flaky(clock, [S3Error(S3Error.TLS_UNTRUSTED)])
    check = BucketCheck(options(endpoint_url=endpoint), flaky, retry=clock.policy())  # type: ignore[arg-type]
    with pytest.raises(UsageError) as raised:
        check.wait_head()
    check.close()
    assert str(raised.value).startswith(f"TLS certificate of {endpoint} is not trusted")
    assert "TLS certificate of https://there is not trusted" in str(
        bucket_error(S3Error(S3Error.TLS_UNTRUSTED), "b", "https://there")
    )

"""The retry policy every transport applies, as streamed parts meet it: which failures are sent
again (the transient ones, never a refusal), how long the waits grow, and that a part given up
stops waiting for its next attempt."""

from __future__ import annotations

import threading

import pytest

from airflow_s3pput.errors import S3Error
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.transport.crt_http import CrtResponse
from airflow_s3pput.transport.crt_stream import StreamedParts
from airflow_s3pput.transport.file_range import FileRange
from airflow_s3pput.transport.interface import PartBody
from airflow_s3pput.transport.retry_policy import RetryPolicy, is_transient

SENT_AGAIN = [
    S3Error(S3Error.UNREACHABLE, "AWS_IO_SOCKET_CONNECTION_REFUSED"),
    S3Error(S3Error.UNREACHABLE, "AWS_ERROR_HTTP_CONNECTION_CLOSED"),
    S3Error(S3Error.UNREACHABLE, "ConnectionClosedError"),
    S3Error(S3Error.TIMEOUT, "no answer in 70 s"),
    S3Error("SlowDown", status=503),
    S3Error("InternalError", status=500),
    S3Error("502", status=502),
    S3Error("TooManyRequests", status=429),
    S3Error("RequestTimeout", status=400),
]
CALLERS = [
    S3Error("BadDigest", status=400),  # the putter reads the part again and resends it
    S3Error("AccessDenied", status=403),
    S3Error("NoSuchUpload", status=404),
    S3Error("InvalidArgument", status=400),
    S3Error("RequestTimeTooSkewed", status=403),
    S3Error(S3Error.TLS_UNTRUSTED),  # no answer, and none will come: the certificate is the fault
    S3Error(S3Error.NO_CREDENTIALS),
    S3Error("NoRegionError", "You must specify a region."),
]


@pytest.mark.parametrize(
    ("error", "transient"),
    [(e, True) for e in SENT_AGAIN] + [(e, False) for e in CALLERS],
    ids=lambda value: value.code if isinstance(value, S3Error) else "",
)
def test_only_transient_failures_are_sent_again(error: S3Error, transient: bool) -> None:
    assert is_transient(error) is transient


def test_waits_grow_to_the_cap_with_full_jitter() -> None:
    policy = RetryPolicy(10, backoff_base=0.5, backoff_cap=20.0)
    for retry, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (6, 20.0), (9, 20.0)]:
        waits = [policy.delay(retry) for _ in range(200)]
        assert all(0 <= wait <= ceiling for wait in waits)
        assert max(waits) > ceiling / 2  # spread over the whole range, not a fixed step


@pytest.mark.parametrize(
    ("error", "sent"),
    [(S3Error("SlowDown", status=503), 4), (S3Error("AccessDenied", status=403), 1)],
    ids=["transient", "refusal"],
)
def test_a_failure_is_sent_until_the_attempts_are_spent_unless_it_is_a_refusal(
    error: S3Error, sent: int
) -> None:
    calls: list[int] = []

    def send() -> None:
        calls.append(1)
        raise error

    with pytest.raises(S3Error):
        RetryPolicy(4, backoff_base=0.0).call(send)
    assert len(calls) == sent


def test_a_request_that_succeeds_on_a_later_attempt_returns_its_answer() -> None:
    failures = iter([S3Error("SlowDown", status=503), S3Error(S3Error.TIMEOUT)])

    def flaky() -> str:
        for failure in failures:
            raise failure
        return "stored"

    assert RetryPolicy(4, backoff_base=0.0).call(flaky) == "stored"


def test_a_part_given_up_stops_waiting_to_be_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (the putter sets the upload's ``stop``) during a backoff of up to 20 s: the part
    gives up with the error it had, instead of sleeping and sending it again 9 more times."""
    # waits of up to 20 s each
    policy = RetryPolicy(10, backoff_base=3600.0)
    parts = StreamedParts(
        "127.0.0.1:9", None, None, lambda: None, ConnectionSettings(max_attempts=10), policy
    )
    sent: list[FileRange] = []

    def refused(path: str, headers: list[tuple[str, str]], body: FileRange) -> CrtResponse:
        sent.append(body)
        raise S3Error("SlowDown", status=503)

    monkeypatch.setattr(parts, "_send", refused)
    stop = threading.Event()
    stop.set()
    with pytest.raises(S3Error) as raised:
        parts.upload_part("/bucket/key?partNumber=1", [], PartBody(0, 0, 10, stop))
    assert raised.value.code == "SlowDown"
    assert len(sent) == 1

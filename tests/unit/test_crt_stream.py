"""Which answers a streamed part is sent again for (the transient ones, never a refusal), and
that a part given up stops waiting for its next attempt."""

from __future__ import annotations

import threading

import pytest

from airflow_s3pput.errors import S3Error
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.transport.crt_http import CrtResponse
from airflow_s3pput.transport.crt_stream import StreamedParts, _transient
from airflow_s3pput.transport.file_range import FileRange
from airflow_s3pput.transport.port import PartBody

SENT_AGAIN = [
    S3Error(S3Error.UNREACHABLE, "AWS_IO_SOCKET_CONNECTION_REFUSED"),
    S3Error("AWS_ERROR_HTTP_CONNECTION_CLOSED", "reset"),
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
]


@pytest.mark.parametrize(
    ("error", "transient"),
    [(e, True) for e in SENT_AGAIN] + [(e, False) for e in CALLERS],
    ids=lambda value: value.code if isinstance(value, S3Error) else "",
)
def test_only_transient_failures_are_sent_again(error: S3Error, transient: bool) -> None:
    assert _transient(error) is transient


def test_a_part_given_up_stops_waiting_to_be_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (the putter sets the upload's ``stop``) during a backoff of up to 20 s: the part
    gives up with the error it had, instead of sleeping and sending it again 9 more times."""
    parts = StreamedParts("127.0.0.1:9", None, None, lambda: None, ConnectionSettings(max_attempts=10))
    sent: list[FileRange] = []

    def refused(path: str, headers: list[tuple[str, str]], body: FileRange) -> CrtResponse:
        sent.append(body)
        raise S3Error("SlowDown", status=503)

    monkeypatch.setattr(parts, "_send", refused)
    monkeypatch.setattr("airflow_s3pput.transport.crt_stream.BACKOFF_BASE", 3600.0)  # 20 s each
    stop = threading.Event()
    stop.set()
    with pytest.raises(S3Error) as raised:
        parts.upload_part("/bucket/key?partNumber=1", [], PartBody(0, 0, 10, stop))
    assert raised.value.code == "SlowDown"
    assert len(sent) == 1

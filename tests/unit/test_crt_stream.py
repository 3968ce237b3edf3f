"""Which answers a streamed part is sent again for: the transient ones, never a refusal."""

from __future__ import annotations

import pytest

from airflow_s3pput.errors import S3Error
from airflow_s3pput.transport.crt_stream import _transient

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

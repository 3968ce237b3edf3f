"""The CRT data plane sends the same headers that boto3 would for our PutObject arguments."""

from __future__ import annotations

import pytest

from airflow_s3pput.headers import header_params
from airflow_s3pput.transport.crt_http import request_headers


def test_every_supported_header_maps_back_to_its_http_name() -> None:
    given = [
        "Cache-Control:max-age=60",
        "Content-Disposition:attachment",
        "Content-Language:en",
        "Expires:Wed, 21 Oct 2026 07:28:00 GMT",
        "x-amz-storage-class:STANDARD_IA",
        "x-amz-server-side-encryption:AES256",
        "x-amz-server-side-encryption-bucket-key-enabled:true",
        "x-amz-tagging:team=data",
        "x-amz-website-redirect-location:/other",
        "x-amz-meta-owner:data",
    ]
    params = header_params(given, grant="public-read")
    sent = dict(request_headers({**params, "ContentMD5": "bWQ1", "ContentType": "text/plain"}))
    assert sent == {
        "cache-control": "max-age=60",
        "content-disposition": "attachment",
        "content-language": "en",
        "expires": "Wed, 21 Oct 2026 07:28:00 GMT",
        "x-amz-storage-class": "STANDARD_IA",
        "x-amz-server-side-encryption": "AES256",
        "x-amz-server-side-encryption-bucket-key-enabled": "true",
        "x-amz-tagging": "team=data",
        "x-amz-website-redirect-location": "/other",
        "x-amz-meta-owner": "data",
        "x-amz-acl": "public-read",
        "Content-MD5": "bWQ1",
        "content-type": "text/plain",
    }


def test_one_attempt_turns_the_crts_retries_off() -> None:
    from awscrt.s3 import S3RetryMode

    from airflow_s3pput.transport.crt_http import crt_retry_config
    from airflow_s3pput.transport.retry_policy import RetryPolicy

    # max_retries=0 is the CRT's "default" (5 retries): --retries 0 must not mean that.
    assert crt_retry_config(RetryPolicy(1)).retry_mode == S3RetryMode.NONE
    config = crt_retry_config(RetryPolicy(5, backoff_base=0.5, backoff_cap=20.0))
    assert (config.max_retries, config.retry_mode) == (4, S3RetryMode.STANDARD)
    assert (config.backoff_scale_factor_ms, config.max_backoff_secs) == (500, 20)  # the same policy


def test_request_errors_keep_the_servers_code_or_our_own_words() -> None:
    from awscrt.exceptions import AwsCrtError

    from airflow_s3pput.errors import FileChanged, S3Error
    from airflow_s3pput.transport.crt_http import _request_error

    body = b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"
    crt_error = AwsCrtError(code=0, name="AWS_ERROR_S3_INVALID_RESPONSE_STATUS", message="")
    refused = _request_error(crt_error, 503, [("X-Amz-Request-Id", "r1")], body)
    assert (refused.code, refused.message, refused.status) == ("SlowDown", "Reduce your rate", 503)
    moved = _request_error(crt_error, 301, [("X-Amz-Bucket-Region", "eu-west-1")], b"")
    assert (moved.code, moved.status, moved.region) == ("301", 301, "eu-west-1")
    unreachable = _request_error(AwsCrtError(code=0, name="AWS_IO_SOCKET_CONNECTION_REFUSED", message=""),
                                 None, None, None)  # fmt: skip
    assert unreachable.code == S3Error.UNREACHABLE
    assert unreachable.message == "AWS_IO_SOCKET_CONNECTION_REFUSED"  # the name says what failed
    spent = _request_error(AwsCrtError(code=0, name="AWS_ERROR_S3_SLOW_DOWN", message=""), None, None, None)
    assert (spent.code, spent.status) == ("503", 503)  # retries spent: only the name is left
    ours = _request_error(FileChanged("file shrank while it was uploaded (at byte 7)"), None, None, None)
    assert str(ours) == "FileChanged: file shrank while it was uploaded (at byte 7)"


def test_a_200_answer_holding_an_error_document_is_an_s3_error() -> None:
    from airflow_s3pput.errors import S3Error
    from airflow_s3pput.transport.crt_http import CrtResponse
    from airflow_s3pput.transport.crt_transport import _document

    body = b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>try again</Message></Error>"
    with pytest.raises(S3Error) as raised:
        _document(CrtResponse(200, {}, body))
    assert (raised.value.code, raised.value.message) == ("InternalError", "try again")
    done = b'<Result xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ETag>"e-2"</ETag></Result>'
    assert _document(CrtResponse(200, {}, done)).findtext("{*}ETag") == '"e-2"'

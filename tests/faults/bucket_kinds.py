"""Buckets that answer as AWS does for other kinds of bucket, simulated in front of SeaweedFS.

Each is a ``FaultProxy`` set-up (a response rewrite or a fault rule), so the real server still
stores and checks the bytes while the client sees what AWS would answer:

* ``sse_kms``: a bucket with default SSE-KMS encryption. Every object's ETag (PUT,
  CompleteMultipartUpload, HEAD, GET and listings) is an opaque value of an MD5's length, the
  same one for the same stored object, and object answers carry
  ``x-amz-server-side-encryption: aws:kms`` though the request asked for no encryption. Part
  ETags stay as SeaweedFS answers them: the client hands them back in CompleteMultipartUpload,
  whose body is signed, so the proxy could not translate them back (AWS's are opaque too, and
  s3pput never compares them with an MD5).
* ``object_lock``: refuses a PUT (object or part) without ``Content-MD5`` or a checksum header.
* ``no_checksums``: an older S3-compatible store that rejects the flexible checksum headers and
  ``aws-chunked`` bodies that boto3 sends by default since 1.36.
"""

from __future__ import annotations

import hashlib
import re

from tests.faults.proxy import Fault, FaultProxy, Request

_HEADER_ETAG = re.compile(rb'(?im)^(etag:\s*"?)([0-9a-f]{32})')
_BODY_ETAG = re.compile(rb"(<ETag>(?:&quot;|&#34;|\")?)([0-9a-f]{32})")


def opaque(md5_etag: bytes) -> bytes:
    """The ETag the KMS bucket answers for an object SeaweedFS gives ``md5_etag``: as stable as
    AWS's, never the MD5 of anything we sent."""
    return hashlib.sha256(b"kms:" + md5_etag).hexdigest()[:32].encode()


def _kms_answer(request: Request, head: bytes, body: bytes) -> tuple[bytes, bytes]:
    if "partNumber" in request.query:
        return head, body
    head = _HEADER_ETAG.sub(lambda m: m.group(1) + opaque(m.group(2)), head)
    if request.key and head.startswith(b"HTTP/1.1 2"):
        head = head[:-2] + b"x-amz-server-side-encryption: aws:kms\r\n\r\n"
    return head, _BODY_ETAG.sub(lambda m: m.group(1) + opaque(m.group(2)), body)


def sse_kms(proxy: FaultProxy) -> None:
    proxy.rewrite = _kms_answer


def _unverified_put(request: Request) -> bool:
    verified = "content-md5" in request.headers or any(
        name.startswith("x-amz-checksum-") for name in request.headers
    )
    return request.method == "PUT" and bool(request.key) and not verified


def object_lock(proxy: FaultProxy) -> None:
    proxy.set_rules([
        Fault("error", match=_unverified_put, status=400, code="InvalidRequest",
              message="Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object "
                      "requests with Object Lock parameters"),
    ])  # fmt: skip


_CHECKSUM_HEADERS = ("x-amz-checksum-", "x-amz-sdk-checksum-", "x-amz-trailer")


def _sends_checksums(request: Request) -> bool:
    return (
        any(name.startswith(_CHECKSUM_HEADERS) for name in request.headers)
        or "aws-chunked" in request.headers.get("content-encoding", "")
        or request.headers.get("x-amz-content-sha256", "").startswith("STREAMING-")
    )


def no_checksums(proxy: FaultProxy) -> None:
    proxy.set_rules([
        Fault("error", match=_sends_checksums, status=400, code="InvalidArgument",
              message="unsupported checksum or aws-chunked body"),
    ])  # fmt: skip

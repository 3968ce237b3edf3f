"""The few S3 calls s3pput makes besides single PUTs, sent through the CRT with boto3's shapes.

With plain keys (given, or in the environment) a run needs nothing from botocore: loading it and
the S3 model costs ~0.2 s of CPU before the first request, a tenth of a 5,000-file upload and
a third of an unchanged re-run. ``CrtS3Client`` answers the calls the engine and the putter make
on a boto3 client (same keyword arguments, same response dicts, ``botocore`` ``ClientError`` on
an error response) over the run's ``CrtSender``, so the bucket check, the listing and multipart
uploads (each part with its Content-MD5) go through the CRT's signing, retries and connections.
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ETree
from typing import Any
from urllib.parse import quote, unquote_plus
from xml.sax.saxutils import escape

from airflow_s3pput.crt import (
    CrtRequestError,
    CrtResponse,
    CrtSender,
    error_code_and_message,
    request_headers,
    uses_tls,
)
from airflow_s3pput.file_range import FileRange
from airflow_s3pput.listing_parser import parse_list_objects_v2
from airflow_s3pput.options import ConnectionSettings, UploadOptions, resolve_transport
from airflow_s3pput.s3client import plain_credentials

#: error names of the CRT that mean the endpoint was never reached
_UNREACHABLE = ("AWS_IO_SOCKET", "AWS_IO_DNS", "AWS_ERROR_HTTP_CONNECTION")


def open_crt_client(options: UploadOptions) -> CrtS3Client | None:
    """The run's client when the CRT carries its PUTs over plain HTTP and plain keys sign them;
    else ``None``: boto3 then resolves the credentials and makes these calls.

    Not over TLS: a certificate the CRT does not trust fails its handshake only after s2n's
    10-30 s "blinding" delay, per attempt, where boto3 says so at once.
    """
    if (
        resolve_transport(options.transport) != "crt"
        or uses_tls(options.connection)
        or plain_credentials(options.connection) is None
    ):
        return None
    return CrtS3Client(options.connection, options.bucket)


class CrtS3Client:
    """A boto3-shaped S3 client for one bucket, over the CRT (only what s3pput calls)."""

    def __init__(self, settings: ConnectionSettings, bucket: str) -> None:
        self.settings = settings
        self.bucket = bucket
        self.sender = CrtSender(settings, bucket)

    def close(self) -> None:
        self.sender.close()

    def head_bucket(self, Bucket: str) -> dict[str, Any]:
        self._call("HeadBucket", Bucket, "HEAD")
        return {}

    def list_objects_v2(
        self,
        Bucket: str,
        Prefix: str = "",
        Delimiter: str = "",
        MaxKeys: int = 1000,
        ContinuationToken: str = "",
        StartAfter: str = "",
    ) -> dict[str, Any]:
        query = {"list-type": "2", "encoding-type": "url", "max-keys": str(MaxKeys), "prefix": Prefix}
        for name, value in (("delimiter", Delimiter), ("continuation-token", ContinuationToken),
                            ("start-after", StartAfter)):  # fmt: skip
            if value:
                query[name] = value
        page = parse_list_objects_v2(self._call("ListObjectsV2", Bucket, "GET", query=query).body)
        if page.get("EncodingType") == "url":  # decoded as botocore does
            for name in ("Prefix", "Delimiter", "StartAfter"):
                if name in page:
                    page[name] = unquote_plus(page[name])
            for listed in page.get("Contents", ()):
                listed["Key"] = unquote_plus(listed["Key"])
            for common in page.get("CommonPrefixes", ()):
                common["Prefix"] = unquote_plus(common["Prefix"])
        return page

    def create_multipart_upload(self, Bucket: str, Key: str, **params: Any) -> dict[str, Any]:
        response = self._call(
            "CreateMultipartUpload",
            Bucket,
            "POST",
            Key,
            query={"uploads": ""},
            headers=request_headers(params),
        )
        return {"UploadId": _text(_document(response, "CreateMultipartUpload"), "UploadId")}

    def upload_part(
        self, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: bytes | FileRange, ContentMD5: str
    ) -> dict[str, Any]:
        query = {"partNumber": str(PartNumber), "uploadId": UploadId}
        headers = [("Content-MD5", ContentMD5)]
        response = self._call("UploadPart", Bucket, "PUT", Key, query=query, headers=headers, body=Body)
        return {"ETag": response.headers.get("etag", "")}

    def complete_multipart_upload(
        self, Bucket: str, Key: str, UploadId: str, MultipartUpload: dict[str, Any]
    ) -> dict[str, Any]:
        parts = "".join(
            f"<Part><PartNumber>{part['PartNumber']}</PartNumber><ETag>{escape(part['ETag'])}</ETag></Part>"
            for part in MultipartUpload["Parts"]
        )
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        headers = [
            ("Content-MD5", base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode())
        ]
        response = self._call(
            "CompleteMultipartUpload",
            Bucket,
            "POST",
            Key,
            query={"uploadId": UploadId},
            headers=headers,
            body=body,
        )
        return {"ETag": _text(_document(response, "CompleteMultipartUpload"), "ETag")}

    def abort_multipart_upload(self, Bucket: str, Key: str, UploadId: str) -> dict[str, Any]:
        self._call("AbortMultipartUpload", Bucket, "DELETE", Key, query={"uploadId": UploadId})
        return {}

    def list_multipart_uploads(self, Bucket: str, Prefix: str = "") -> dict[str, Any]:
        response = self._call("ListMultipartUploads", Bucket, "GET", query={"uploads": "", "prefix": Prefix})
        root = _document(response, "ListMultipartUploads")
        uploads = [
            {"Key": _text(upload, "Key"), "UploadId": _text(upload, "UploadId")}
            for upload in root.iterfind("{*}Upload")
        ]
        return {"Uploads": uploads}

    def _call(
        self,
        operation: str,
        bucket: str,
        method: str,
        key: str = "",
        *,
        query: dict[str, str] | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | FileRange | None = None,
    ) -> CrtResponse:
        if bucket != self.bucket:
            raise ValueError(f"this client serves bucket {self.bucket!r}, not {bucket!r}")
        encoded = "&".join(
            f"{quote(name, safe='')}={quote(value, safe='-_.~')}" if value else quote(name, safe="")
            for name, value in sorted((query or {}).items())
        )
        try:
            return self.sender.request(
                method, key, query=encoded, headers=headers, body=body, operation=operation
            )
        except CrtRequestError as error:
            raise self._botocore_error(error, operation) from None

    def _botocore_error(self, error: CrtRequestError, operation: str) -> Exception:
        """The exception boto3 would raise, so that callers translate errors in one place."""
        if error.status is not None:
            return _client_error(operation, error.code, error.message, error.status, error.headers)
        if error.code.startswith(_UNREACHABLE):
            from botocore.exceptions import EndpointConnectionError

            return EndpointConnectionError(endpoint_url=self.settings.endpoint_url or self.sender.host)
        return error


def _client_error(operation: str, code: str, message: str, status: int, headers: dict[str, str]) -> Exception:
    from botocore.exceptions import ClientError

    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
    }
    return ClientError(response, operation)


def _document(response: CrtResponse, operation: str) -> ETree.Element:
    root = ETree.fromstring(response.body)
    if root.tag.rpartition("}")[2] == "Error":  # S3 may answer 200 and still fail
        code, message = error_code_and_message(response.body)
        raise _client_error(operation, code, message, response.status, response.headers)
    return root


def _text(element: ETree.Element, name: str) -> str:
    return element.findtext("{*}" + name) or ""  # in any namespace, or none

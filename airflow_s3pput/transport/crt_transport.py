"""The transport over AWS's C runtime: every S3 call s3pput makes, over one ``CrtSender``.

With plain keys and plain HTTP a run then needs nothing from botocore, whose loading (the S3
model) is a large share of a short run's CPU. The requests are written here from S3's REST API
and go through the CRT's signing, retries and connection pool.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from xml.etree import ElementTree as ETree

from airflow_s3pput.errors import S3Error
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.transport.crt_http import CrtResponse, CrtSender, answer_error, request_headers
from airflow_s3pput.transport.crt_stream import StreamedParts
from airflow_s3pput.transport.interface import (
    ListPage,
    ObjectHead,
    ObjectParams,
    OpenUpload,
    PartBody,
    PutCallback,
    SentPart,
    Stored,
    Transport,
    UploadedPart,
    head_from_headers,
    http_date_seconds,
    quick_settings,
    stored_from_headers,
)
from airflow_s3pput.transport.listing_parser import page_from_xml, text
from airflow_s3pput.transport.retry_policy import RetryPolicy

#: connections to the endpoint at most (s5cmd's default worker count)
MAX_CONNECTIONS = 256


def connections_for(threads: int) -> int:
    """One connection for each request the engine keeps in flight (``engine.in_flight_limit``)."""
    return min(MAX_CONNECTIONS, 4 * threads)


class CrtTransport:
    """``Transport`` over the CRT for one bucket. ``session``: a boto3 session whose
    credentials sign the requests (roles, SSO, profiles); without one, plain keys. ``check``:
    makes the bucket check's transport (``quick``), when it must not be the CRT's."""

    streams_parts = True

    def __init__(
        self,
        settings: ConnectionSettings,
        bucket: str,
        session: Any = None,
        connections: int = 25,
        *,
        check: Callable[[], Transport] | None = None,
    ) -> None:
        self.settings = settings
        self.bucket = bucket
        self.session = session
        self.check = check
        self.sender = sender = CrtSender(settings, bucket, session, connections)
        # Parts are streamed from the file: the CRT's S3 client would hold a whole part until it ends.
        self.parts = StreamedParts(sender.host, sender.bootstrap, sender.tls_context,
                                   sender.unsigned_payload_signing, settings,
                                   RetryPolicy(settings.max_attempts))  # fmt: skip

    def quick(self) -> Transport:
        if self.check is not None:
            return self.check()
        # A CRT client's retry settings are fixed at creation: a client of its own.
        return CrtTransport(quick_settings(self.settings), self.bucket, self.session)

    def close(self) -> None:
        self.parts.close()
        self.sender.close()

    def head_bucket(self) -> float | None:
        response = self.sender.request("HEAD", operation="HeadBucket").result()
        return http_date_seconds(response.headers.get("date"))

    def list_page(
        self,
        prefix: str,
        *,
        delimiter: str = "",
        start_after: str = "",
        token: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        query = {"list-type": "2", "encoding-type": "url", "max-keys": str(max_keys), "prefix": prefix}
        if delimiter:
            query["delimiter"] = delimiter
        if token:
            query["continuation-token"] = token
        elif start_after:
            query["start-after"] = start_after
        response = self.sender.request("GET", query=query, operation="ListObjectsV2").result()
        return page_from_xml(response.body)

    def head_object(self, key: str) -> ObjectHead | None:
        try:
            response = self.sender.request(
                "HEAD", key, headers=[("x-amz-checksum-mode", "ENABLED")], operation="HeadObject"
            ).result()
        except S3Error as error:
            if error.status == 404:
                return None
            raise
        return head_from_headers(response.headers)

    def put_object(self, key: str, body: bytes, params: ObjectParams) -> Stored:
        headers = request_headers(params)
        response = self.sender.request("PUT", key, headers=headers, body=body, put_object=True).result()
        return stored_from_headers(response.headers)

    def put_object_async(self, key: str, body: bytes, params: ObjectParams, callback: PutCallback) -> None:
        def finished(response: CrtResponse | None, error: S3Error | None) -> None:
            callback(None if response is None else stored_from_headers(response.headers), error)

        self.sender.send("PUT", key, finished, headers=request_headers(params), body=body, put_object=True)

    def create_multipart(self, key: str, params: ObjectParams) -> str:
        headers = request_headers(params)
        response = self.sender.request(
            "POST", key, query={"uploads": ""}, headers=headers, operation="CreateMultipartUpload"
        ).result()
        return text(_document(response), "UploadId")

    def upload_part(
        self, key: str, upload_id: str, number: int, body: PartBody, md5: bytes, crc64nvme: str = ""
    ) -> str:
        path = self.sender.object_path(key, {"partNumber": str(number), "uploadId": upload_id})
        headers = [("Content-MD5", base64.b64encode(md5).decode())]
        if crc64nvme:
            headers.append(("x-amz-checksum-crc64nvme", crc64nvme))
        response = self.parts.upload_part(path, headers, body)
        return response.headers.get("etag", "")

    def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[SentPart], crc64nvme: str = ""
    ) -> Stored:
        listed = "".join(
            f"<Part><PartNumber>{number}</PartNumber><ETag>{_xml_text(part.etag)}</ETag>"
            + (f"<ChecksumCRC64NVME>{part.crc64nvme}</ChecksumCRC64NVME>" if part.crc64nvme else "")
            + "</Part>"
            for number, part in enumerate(parts, start=1)
        )
        document = f"<CompleteMultipartUpload>{listed}</CompleteMultipartUpload>"
        checksum = [("x-amz-checksum-crc64nvme", crc64nvme), ("x-amz-checksum-type", "FULL_OBJECT")]
        query = {"uploadId": upload_id}
        response, root = self._post(
            "CompleteMultipartUpload", key, query, document, checksum if crc64nvme else []
        )
        return stored_from_headers(response.headers, text(root, "ETag"), text(root, "ChecksumCRC64NVME"))

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self.sender.request(
            "DELETE", key, query={"uploadId": upload_id}, operation="AbortMultipartUpload"
        ).result()

    def open_uploads(self, prefix: str) -> list[OpenUpload]:
        markers = {"NextKeyMarker": "key-marker", "NextUploadIdMarker": "upload-id-marker"}
        pages = self._pages("ListMultipartUploads", "", {"uploads": "", "prefix": prefix}, markers)
        return [
            OpenUpload(text(u, "Key"), text(u, "UploadId"), text(u, "Initiated"))
            for root in pages
            for u in root.iterfind("{*}Upload")
        ]

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        markers = {"NextPartNumberMarker": "part-number-marker"}
        pages = self._pages("ListParts", key, {"uploadId": upload_id}, markers)
        return [
            UploadedPart(int(text(p, "PartNumber")), text(p, "ETag").strip('"'), int(text(p, "Size")))
            for root in pages
            for p in root.iterfind("{*}Part")
        ]

    def delete_objects(self, keys: Iterable[str]) -> dict[str, str]:
        objects = "".join(f"<Object><Key>{_xml_text(key)}</Key></Object>" for key in keys)
        if not objects:
            return {}
        _, root = self._post(
            "DeleteObjects", "", {"delete": ""}, f"<Delete><Quiet>true</Quiet>{objects}</Delete>", []
        )
        return {
            text(e, "Key"): f"{text(e, 'Code')}: {text(e, 'Message')}".strip(": ")
            for e in root.iterfind("{*}Error")
        }

    def _post(
        self, operation: str, key: str, query: dict[str, str], document: str, headers: list[tuple[str, str]]
    ) -> tuple[CrtResponse, ETree.Element]:
        """POST an XML ``document`` with the Content-MD5 S3 requires; the answer and its document."""
        body = document.encode()
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        headers = [("Content-MD5", md5), *headers]
        response = self.sender.request(
            "POST", key, query=query, headers=headers, body=body, operation=operation
        ).result()
        return response, _document(response)

    def _pages(
        self, operation: str, key: str, query: dict[str, str], markers: Mapping[str, str]
    ) -> Iterator[ETree.Element]:
        """Every page of a listing; ``markers``: the answer's next-page element -> the query
        parameter it feeds."""
        while True:
            response = self.sender.request("GET", key, query=query, operation=operation).result()
            root = _document(response)
            yield root
            if text(root, "IsTruncated") != "true":
                return
            query.update({param: text(root, name) for name, param in markers.items()})


def _xml_text(value: str) -> str:
    """``value`` as XML character data."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _document(response: CrtResponse) -> ETree.Element:
    root = ETree.fromstring(response.body)
    if root.tag.rpartition("}")[2] == "Error":  # S3 may answer 200 and still fail
        raise answer_error(response.status, response.body)
    return root

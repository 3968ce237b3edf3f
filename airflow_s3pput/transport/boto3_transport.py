"""The transport over boto3: every call through one botocore client, errors translated once.

One client per process, shared by its threads (botocore clients are thread-safe, sessions are
not). Every request is sent under the transport's ``RetryPolicy``; botocore itself makes one
attempt (``retry_policy`` says why).
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_s3pput.errors import FileChanged, S3Error
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.transport.interface import (
    ListedObject,
    ListPage,
    ObjectHead,
    ObjectParams,
    OpenUpload,
    PartBody,
    PutCallback,
    SentPart,
    Stored,
    UploadedPart,
    head_from_headers,
    http_date_seconds,
    iso_seconds,
    quick_settings,
    stored_from_headers,
)
from airflow_s3pput.transport.retry_policy import RetryPolicy

if TYPE_CHECKING:
    from boto3.session import Session
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef


T = TypeVar("T")


def make_session(settings: ConnectionSettings) -> Session:
    """A boto3 session: the settings' ``session_factory``'s (credentials that refresh), else
    explicit keys when given, else the standard AWS credential chain. A missing profile is an
    ``S3Error`` like every other failure to reach the bucket."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    if settings.session_factory is not None:
        try:
            return settings.session_factory()  # type: ignore[no-any-return]
        except Exception as exc:  # noqa: BLE001 - e.g. a worker process without Airflow's connections
            if not (settings.access_key and settings.secret_key):
                reason = f"{type(exc).__name__}: cannot make a session"
                raise S3Error(S3Error.NO_CREDENTIALS, reason) from None
            _warn_frozen(type(exc).__name__)
    try:
        return boto3.session.Session(
            profile_name=settings.profile,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            aws_session_token=settings.session_token,
            region_name=settings.region,
        )
    except ProfileNotFound as exc:
        raise S3Error(S3Error.PROFILE_NOT_FOUND, repr(exc.kwargs.get("profile"))) from None


@functools.cache  # once per process
def _warn_frozen(reason: str) -> None:
    logging.getLogger(__name__).warning(
        "s3pput: warning: credentials that refresh are not available here (%s): signing with the "
        "keys the task started with",
        reason,
    )


def make_client(settings: ConnectionSettings, pool_size: int, session: Session) -> S3Client:
    """A botocore client tuned for s3pput, from ``session`` (share it: a new session costs far
    more than a client from a used one). The connection's own botocore options (an Airflow
    connection's ``config_kwargs``: proxies, ...) apply under ours (``client_config``)."""
    from airflow_s3pput.transport.client_config import botocore_config

    style = settings.addressing_style
    if style == "auto" and settings.endpoint_url:
        style = "path"  # S3-compatible servers rarely resolve bucket subdomains
    own = dict(
        max_pool_connections=max(pool_size, 10),
        # One attempt: the transport retries under its RetryPolicy, without botocore's quota.
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        # We send our own Content-MD5, which every S3-compatible server verifies; the default
        # CRC32 on every request costs CPU and breaks some servers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        parameter_validation=False,
        # Every body we send carries a (signed) Content-MD5, so a SHA-256 of it in the signature
        # adds no protection; botocore computes one over plain HTTP unless told not to (the CRT
        # never does).
        s3={"addressing_style": style, "payload_signing_enabled": False},
        tcp_keepalive=True,
    )
    config = botocore_config(settings.client_options, own)
    with _translated():
        return session.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            use_ssl=settings.secure,
            verify=settings.verify,
            config=config,
        )


class Boto3Transport:
    """``Transport`` over one botocore client for ``bucket``.

    ``client``: made by ``make_client``, or a test's own; ``settings`` and ``session``: what it
    was made from, so that ``quick`` can make a sibling. Requests get ``settings.max_attempts``
    attempts; with a test's own client (no ``settings``) one, and the client's own retries.
    ``put_object_async`` runs the blocking PUT on ``threads`` threads of its own: boto3 has no
    asynchronous calls.
    """

    streams_parts = False  # botocore takes each part as bytes

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        threads: int = 16,
        settings: ConnectionSettings | None = None,
        session: Session | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.threads = threads
        self.settings = settings
        self.session = session
        self.retry = RetryPolicy(settings.max_attempts if settings is not None else 1)
        self._senders: ThreadPoolExecutor | None = None

    @classmethod
    def open(cls, settings: ConnectionSettings, bucket: str, threads: int) -> Boto3Transport:
        session = make_session(settings)
        # A connection for each sending thread and each multipart part worker.
        client = make_client(settings, threads + 8, session)
        return cls(client, bucket, threads=threads, settings=settings, session=session)

    def quick(self) -> Boto3Transport:
        if self.settings is None or self.session is None:  # a test's own client serves the check
            return self
        return quick_boto3(self.settings, self.bucket, self.session)

    def head_bucket(self) -> float | None:
        response = self._send(self.client.head_bucket)
        return http_date_seconds(_headers(response).get("date"))

    def list_page(
        self,
        prefix: str,
        *,
        delimiter: str = "",
        start_after: str = "",
        token: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        params: dict[str, Any] = {"Prefix": prefix, "MaxKeys": max_keys}
        if delimiter:
            params["Delimiter"] = delimiter
        if token:
            params["ContinuationToken"] = token
        elif start_after:
            params["StartAfter"] = start_after
        return page_of(self._send(self.client.list_objects_v2, **params))

    def head_object(self, key: str) -> ObjectHead | None:
        try:
            response = self._send(self.client.head_object, Key=key, ChecksumMode="ENABLED")
        except S3Error as error:
            if error.status == 404:
                return None
            raise
        return head_from_headers(_headers(response))

    def put_object(self, key: str, body: bytes, params: ObjectParams) -> Stored:
        response = self._send(self.client.put_object, Key=key, Body=body, **params)
        return stored_from_headers(_headers(response))

    def put_object_async(self, key: str, body: bytes, params: ObjectParams, callback: PutCallback) -> None:
        if self._senders is None:
            self._senders = ThreadPoolExecutor(self.threads, thread_name_prefix="s3pput-put")
        self._senders.submit(_put_and_call_back, lambda: self.put_object(key, body, params), callback)

    def create_multipart(self, key: str, params: ObjectParams) -> str:
        response = self._send(self.client.create_multipart_upload, Key=key, **params)
        return str(response["UploadId"])

    def upload_part(
        self, key: str, upload_id: str, number: int, body: PartBody, md5: bytes, crc64nvme: str = ""
    ) -> str:
        data = os.pread(body.fd, body.length, body.offset)
        if len(data) != body.length:
            raise FileChanged(f"file shrank while it was uploaded (part {number})")
        checksum: dict[str, Any] = {"ChecksumCRC64NVME": crc64nvme} if crc64nvme else {}
        response = self._send(
            self.client.upload_part,
            stop=body.stop,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ContentMD5=base64.b64encode(md5).decode(),
            **checksum,
        )
        return _unquoted(response.get("ETag", ""))

    def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[SentPart], crc64nvme: str = ""
    ) -> Stored:
        completed: list[CompletedPartTypeDef] = []
        for number, part in enumerate(parts, start=1):
            completed.append({"PartNumber": number, "ETag": part.etag})
            if part.crc64nvme:
                completed[-1]["ChecksumCRC64NVME"] = part.crc64nvme
        checksum: dict[str, Any] = (
            {"ChecksumCRC64NVME": crc64nvme, "ChecksumType": "FULL_OBJECT"} if crc64nvme else {}
        )
        response = self._send(
            self.client.complete_multipart_upload,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": completed},
            **checksum,
        )
        return stored_from_headers(
            _headers(response), str(response.get("ETag", "")), response.get("ChecksumCRC64NVME", "")
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self._send(self.client.abort_multipart_upload, Key=key, UploadId=upload_id)

    def open_uploads(self, prefix: str) -> list[OpenUpload]:
        markers = {"NextKeyMarker": "KeyMarker", "NextUploadIdMarker": "UploadIdMarker"}
        pages = self._pages(self.client.list_multipart_uploads, markers, Prefix=prefix)
        return [
            OpenUpload(u["Key"], u["UploadId"], _iso(u.get("Initiated", "")))
            for page in pages
            for u in page.get("Uploads", [])
        ]

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        markers = {"NextPartNumberMarker": "PartNumberMarker"}
        pages = self._pages(self.client.list_parts, markers, Key=key, UploadId=upload_id)
        return [
            UploadedPart(int(p["PartNumber"]), _unquoted(p["ETag"]), int(p["Size"]))
            for page in pages
            for p in page.get("Parts", [])
        ]

    def delete_objects(self, keys: Iterable[str]) -> dict[str, str]:
        objects: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys]
        if not objects:
            return {}
        delete = {"Objects": objects, "Quiet": True}
        response = self._send(self.client.delete_objects, Delete=delete)
        return {
            e["Key"]: f"{e.get('Code', '')}: {e.get('Message', '')}".strip(": ")
            for e in response.get("Errors", [])
        }

    def close(self) -> None:
        if self._senders is not None:
            self._senders.shutdown(wait=True)

    def _send(self, call: Callable[..., T], /, *, stop: threading.Event | None = None, **params: Any) -> T:
        """``call(Bucket=..., **params)`` under the retry policy, its errors as ``S3Error``."""

        def attempt() -> T:
            with _translated():
                return call(Bucket=self.bucket, **params)

        return self.retry.call(attempt, stop)

    def _pages(
        self, call: Callable[..., Any], markers: Mapping[str, str], **params: Any
    ) -> Iterator[Mapping[str, Any]]:
        """Every page of a listing; ``markers``: the answer's next-page field -> the parameter it feeds."""
        while True:
            page = self._send(call, **params)
            yield page
            if not page.get("IsTruncated"):
                return
            params.update({param: page[field] for field, param in markers.items()})


def quick_boto3(settings: ConnectionSettings, bucket: str, session: Session) -> Boto3Transport:
    """A boto3 transport of few attempts for the bucket check (``Transport.quick``)."""
    quick = quick_settings(settings)
    return Boto3Transport(make_client(quick, 10, session), bucket, threads=1, settings=quick, session=session)


def _put_and_call_back(put: Callable[[], Stored], callback: PutCallback) -> None:
    """``callback`` with what ``put()`` stored, or with the ``S3Error`` it raised."""
    try:
        stored = put()
    except S3Error as error:
        callback(None, error)
        return
    callback(stored, None)


def page_of(page: Mapping[str, Any]) -> ListPage:
    """A ListObjectsV2 result as botocore parsed it (keys URL-decoded) as a ``ListPage``."""
    objects = [
        ListedObject(
            obj["Key"],
            int(obj.get("Size", 0)),
            _unquoted(obj.get("ETag", "")),
            _seconds(obj.get("LastModified")),
        )
        for obj in page.get("Contents", ())
    ]
    prefixes = [common["Prefix"] for common in page.get("CommonPrefixes", ())]
    token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
    return ListPage(objects, prefixes, token or None)


def _seconds(moment: Any) -> float | None:
    """botocore's ``datetime`` (or a string, from a server it could not parse) as epoch seconds."""
    if moment is None:
        return None
    if hasattr(moment, "timestamp"):
        return float(moment.timestamp())
    return iso_seconds(str(moment))


def _unquoted(etag: Any) -> str:
    return str(etag).strip('"')


def _headers(response: Mapping[str, Any]) -> Mapping[str, str]:
    """The answer's HTTP headers, names in lower case (botocore's ``ResponseMetadata``)."""
    return response.get("ResponseMetadata", {}).get("HTTPHeaders", {})  # type: ignore[no-any-return]


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


@contextmanager
def _translated() -> Iterator[None]:
    """Turn what botocore raises into ``S3Error``: the one place that knows botocore's errors."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:  # the server answered
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode")
        code = str(error.get("Code") or status or "ClientError")
        region = meta.get("HTTPHeaders", {}).get("x-amz-bucket-region")
        raise S3Error(code, str(error.get("Message") or ""), status=status, region=region) from None
    except BotoCoreError as exc:
        raise S3Error(*_unanswered(exc)) from None


def _unanswered(exc: Exception) -> tuple[str, str]:
    """The code and message of an ``S3Error`` for a request that got no answer from S3."""
    from botocore import exceptions as botocore

    known = (  # the first that matches: an SSLError is a ConnectionError too
        (botocore.NoCredentialsError, S3Error.NO_CREDENTIALS, ""),
        (botocore.SSLError, S3Error.TLS_UNTRUSTED, ""),
        (botocore.ReadTimeoutError, S3Error.TIMEOUT, "no answer within the read timeout"),
        # refused, reset, closed before an answer
        ((botocore.ConnectionError, botocore.HTTPClientError), S3Error.UNREACHABLE, type(exc).__name__),
    )
    for kinds, code, message in known:
        if isinstance(exc, kinds):
            return code, message
    return type(exc).__name__, str(exc).splitlines()[0] if str(exc) else ""

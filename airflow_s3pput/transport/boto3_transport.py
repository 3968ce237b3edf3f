"""The transport over boto3: every call through one botocore client, errors translated once.

Used when awscrt is missing or ``--transport boto3`` is asked for, and for the control calls
(bucket check, listing, multipart) when the CRT carries only the PUTs (see ``choice``). One
client per process, shared by its threads (botocore clients are thread-safe, sessions are not).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_s3pput.errors import S3Error
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.transport import listing_parser
from airflow_s3pput.transport.listing_parser import page_of
from airflow_s3pput.transport.port import (
    QUICK_ATTEMPTS,
    RETRY_TOKENS,
    ListPage,
    ObjectParams,
    OpenUpload,
    PartBody,
    PutCallback,
    Stored,
)

if TYPE_CHECKING:
    from boto3.session import Session
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef


def make_session(settings: ConnectionSettings) -> Session:
    """A boto3 session: explicit keys when given, else the standard AWS credential chain.
    A missing profile is an ``S3Error`` like every other failure to reach the bucket."""
    import boto3
    from botocore.exceptions import ProfileNotFound

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


def make_client(settings: ConnectionSettings, pool_size: int, session: Session) -> S3Client:
    """A botocore client tuned for s3pput, from ``session`` (a client from a used session costs
    ~3 ms of CPU, a new session ~60 ms: share it)."""
    from botocore.config import Config

    # We never read LastModified: leave timestamps as strings, as aws-cli does (dateutil parsing
    # is a tenth of a listing's CPU).
    session._session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=lambda value: value
    )
    style = settings.addressing_style
    if style == "auto" and settings.endpoint_url:
        style = "path"  # S3-compatible servers rarely resolve bucket subdomains
    config = Config(
        max_pool_connections=max(pool_size, 10),
        # total_max_attempts counts the first attempt, as our max_attempts does (botocore's
        # max_attempts counts retries only: 10 would make 11 attempts).
        retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        # We send our own Content-MD5, which every S3-compatible server verifies; the default
        # CRC32 on every request costs CPU and breaks some servers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        parameter_validation=False,
        # Every body we send carries a (signed) Content-MD5, so a SHA-256 of it in the signature
        # adds no protection; botocore computes one over plain HTTP unless told not to, which is
        # ~0.3 s of CPU per 512 MiB (the CRT never does).
        s3={"addressing_style": style, "payload_signing_enabled": False},  # type: ignore[arg-type]
        tcp_keepalive=True,
    )
    with _translated("CreateClient"):
        client = session.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            use_ssl=settings.secure,
            verify=settings.verify,
            config=config,
        )
    listing_parser.install(client)
    widen_retry_quota(client)
    return client


def widen_retry_quota(client: S3Client) -> bool:
    """Give ``client``'s standard-mode retry handler a quota of ``RETRY_TOKENS``; ``False`` if
    this botocore keeps it elsewhere (retries then work with botocore's own quota).

    botocore has no setting for it: its handler (``botocore.retries.standard.RetryHandler``, hooked
    to ``needs-retry.s3`` under the unique id ``retry-config-s3``) keeps a ``RetryQuotaChecker``
    whose ``RetryQuota`` is replaced here. Checked against botocore 1.44 by
    ``tests/faults/test_boto3_retries.py`` (every attempt reaches the server under 503-always).
    """
    from botocore.retries import quota

    events: Any = client.meta.events
    emitter = getattr(events, "_emitter", events)
    entry = getattr(emitter, "_unique_id_handlers", {}).get("retry-config-s3")
    checker = getattr(getattr(entry["handler"] if entry else None, "__self__", None), "_retry_quota", None)
    if checker is None or not hasattr(checker, "_quota"):
        return False
    checker._quota = quota.RetryQuota(RETRY_TOKENS)
    return True


class Boto3Transport:
    """``Transport`` over one botocore client for ``bucket``.

    ``put_object_async`` runs the blocking PUT on ``threads`` threads of its own: boto3 has no
    asynchronous calls, and one dispatcher then serves both transports.
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
        """``client``: a botocore S3 client (made by ``make_client``, or a test's own);
        ``settings`` and ``session``: what it was made from, so that ``quick`` can make a sibling."""
        self.client = client
        self.bucket = bucket
        self.threads = threads
        self.settings = settings
        self.session = session
        self._senders: ThreadPoolExecutor | None = None

    @classmethod
    def open(
        cls, settings: ConnectionSettings, bucket: str, threads: int, session: Session | None = None
    ) -> Boto3Transport:
        session = session if session is not None else make_session(settings)
        # A connection for each sending thread and each multipart part worker.
        client = make_client(settings, threads + 8, session)
        return cls(client, bucket, threads=threads, settings=settings, session=session)

    def quick(self) -> Boto3Transport:
        if self.settings is None:  # a test's own client: it serves the check as it is
            return self
        settings = dataclasses.replace(
            self.settings, max_attempts=min(self.settings.max_attempts, QUICK_ATTEMPTS)
        )
        session = self.session if self.session is not None else make_session(settings)
        return Boto3Transport(make_client(settings, 10, session), self.bucket, threads=1)

    def head_bucket(self) -> None:
        with _translated("HeadBucket"):
            self.client.head_bucket(Bucket=self.bucket)

    def list_page(
        self,
        prefix: str,
        *,
        delimiter: str = "",
        start_after: str = "",
        token: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": max_keys}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        if token:
            kwargs["ContinuationToken"] = token
        elif start_after:
            kwargs["StartAfter"] = start_after
        with _translated("ListObjectsV2"):
            page = self.client.list_objects_v2(**kwargs)
        return page_of(page)

    def put_object(self, key: str, body: bytes, params: ObjectParams) -> Stored:
        with _translated("PutObject"):
            response = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **params)
        return _stored(response)

    def put_object_async(self, key: str, body: bytes, params: ObjectParams, callback: PutCallback) -> None:
        if self._senders is None:
            self._senders = ThreadPoolExecutor(self.threads, thread_name_prefix="s3pput-put")
        self._senders.submit(_call_back, lambda: self.put_object(key, body, params), callback)

    def create_multipart(self, key: str, params: ObjectParams) -> str:
        with _translated("CreateMultipartUpload"):
            response = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **params)
        return str(response["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, body: PartBody, md5: bytes) -> str:
        import base64

        from airflow_s3pput.errors import FileChanged

        data = os.pread(body.fd, body.length, body.offset)
        if len(data) != body.length:
            raise FileChanged(f"file shrank while it was uploaded (part {number})")
        with _translated("UploadPart"):
            response = self.client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                ContentMD5=base64.b64encode(md5).decode(),
            )
        return _etag(response)

    def complete_multipart(self, key: str, upload_id: str, etags: Sequence[str]) -> Stored:
        parts: list[CompletedPartTypeDef] = [
            {"PartNumber": number, "ETag": etag} for number, etag in enumerate(etags, start=1)
        ]
        with _translated("CompleteMultipartUpload"):
            response = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        return _stored(response)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        with _translated("AbortMultipartUpload"):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def open_uploads(self, prefix: str) -> list[OpenUpload]:
        uploads: list[OpenUpload] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            with _translated("ListMultipartUploads"):
                page = self.client.list_multipart_uploads(**kwargs)
            uploads += [
                OpenUpload(u["Key"], u["UploadId"], _iso(u.get("Initiated", "")))
                for u in page.get("Uploads", [])
            ]
            if not page.get("IsTruncated"):
                return uploads
            kwargs.update(KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"])

    def delete_objects(self, keys: Iterable[str]) -> dict[str, str]:
        objects: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys]
        if not objects:
            return {}
        with _translated("DeleteObjects"):
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            )
        return {
            e["Key"]: f"{e.get('Code', '')}: {e.get('Message', '')}".strip(": ")
            for e in response.get("Errors", [])
        }

    def close(self) -> None:
        if self._senders is not None:
            self._senders.shutdown(wait=True)


def _etag(response: Mapping[str, Any]) -> str:
    return str(response.get("ETag", "")).strip('"')


def _stored(response: Mapping[str, Any]) -> Stored:
    encryption = "SSE-C" if response.get("SSECustomerAlgorithm") else response.get("ServerSideEncryption", "")
    return Stored(_etag(response), str(encryption))


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _call_back(send: Callable[[], Stored], callback: PutCallback) -> None:
    try:
        stored = send()
    except S3Error as error:
        callback(None, error)
        return
    callback(stored, None)


@contextmanager
def _translated(operation: str) -> Iterator[None]:
    """Turn what botocore raises into ``S3Error``: the one place that knows botocore's errors."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
        SSLError,
    )

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode")
        code = str(error.get("Code") or status or "ClientError")
        region = meta.get("HTTPHeaders", {}).get("x-amz-bucket-region")
        raise S3Error(code, str(error.get("Message") or ""), status=status, region=region,
                      operation=operation) from None  # fmt: skip
    except NoCredentialsError:
        raise S3Error(S3Error.NO_CREDENTIALS, operation=operation) from None
    except SSLError:
        raise S3Error(S3Error.TLS_UNTRUSTED, operation=operation) from None
    except (EndpointConnectionError, ConnectTimeoutError) as exc:
        raise S3Error(S3Error.UNREACHABLE, type(exc).__name__, operation=operation) from None
    except ReadTimeoutError:
        raise S3Error(S3Error.TIMEOUT, "no answer within the read timeout", operation=operation) from None
    except BotoCoreError as exc:
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise S3Error(type(exc).__name__, text, operation=operation) from None

"""The transport interface: the S3 calls s3pput makes, shaped after this project rather than a library.

Every method raises ``S3Error`` and nothing else for a failed request. Object parameters use
S3's own names (``ContentType``, ``Metadata``, ``ACL``, ...), as ``headers.header_params``
validates them; each adapter turns them into what its library sends.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from airflow_s3pput.errors import S3Error

if TYPE_CHECKING:
    from airflow_s3pput.options import ConnectionSettings

#: S3 parameters of a new object (``ContentType``, ``Metadata``, ``ACL``, ``ContentMD5`` ...)
ObjectParams = Mapping[str, Any]
#: attempts a request of the bucket check gets at most
QUICK_ATTEMPTS = 3
#: ``callback(stored, error)``: exactly one of them is set
PutCallback = Callable[["Stored | None", S3Error | None], None]
#: an ETag S3 computes from the bytes: the hex MD5 of a single part, or ``md5-N`` of N parts
_MD5_ETAG = re.compile(r"[0-9a-f]{32}(-[0-9]+)?")


def quick_settings(settings: ConnectionSettings) -> ConnectionSettings:
    """``settings`` for the transport ``Transport.quick`` returns: at most ``QUICK_ATTEMPTS``."""
    return dataclasses.replace(settings, max_attempts=min(settings.max_attempts, QUICK_ATTEMPTS))


def iso_seconds(text: str) -> float | None:
    """An ISO 8601 time as S3 writes it (``2026-12-05T21:04:43.000Z``) as epoch seconds;
    ``None`` for an empty or unreadable one."""
    try:
        return _seconds(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


def http_date_seconds(text: str | None) -> float | None:
    """An HTTP ``Date`` header (``Sat, 05 Dec 2026 21:04:43 GMT``) as epoch seconds; ``None``
    for a missing or unreadable one."""
    try:
        return _seconds(parsedate_to_datetime(text)) if text else None
    except (TypeError, ValueError):
        return None


def _seconds(moment: datetime) -> float:
    """Epoch seconds of ``moment``, read as UTC when it names no zone."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


class Stored(NamedTuple):
    """The server's answer for an object it stored: its ETag, the encryption it says it applied
    (``aws:kms``, ``aws:kms:dsse``, ``AES256``, ``SSE-C`` for customer keys, or empty), and the
    CRC64NVME it echoed (empty when none)."""

    etag: str  # without quotes
    encryption: str = ""
    crc64nvme: str = ""

    @property
    def etag_is_md5(self) -> bool:
        """Whether the ETag is computed from the bytes: S3 answers an opaque ETag for SSE-KMS,
        DSSE-KMS and SSE-C objects, whatever the request asked for (a bucket default)."""
        return self.encryption in ("", "AES256") and _MD5_ETAG.fullmatch(self.etag.lower()) is not None

    def etag_differs(self, expected: str) -> bool:
        """Whether the server says it stored other bytes: only an ETag computed from the bytes can."""
        return self.etag_is_md5 and self.etag.lower() != expected

    def crc_differs(self, sent: str | None) -> bool:
        """Whether the server echoed another CRC64NVME than the one we sent."""
        return bool(sent and self.crc64nvme and self.crc64nvme != sent)


class ObjectHead(NamedTuple):
    """HeadObject with checksum mode: what tells whether an object holds a file's bytes when
    its ETag cannot (``checksum_lookup``)."""

    etag: str  # without quotes
    encryption: str
    #: full-object checksums by algorithm, as S3 writes them; a composite one (of the parts'
    #: checksums) is left out: it compares with nothing without the part sizes
    checksums: Mapping[str, str]


#: the checksums S3 keeps that s3pput can compute (awscrt), by S3's name
CHECKSUM_ALGORITHMS = ("CRC64NVME", "CRC32C", "CRC32")


def full_object_checksums(found: Mapping[str, str], checksum_type: str) -> dict[str, str]:
    """Of ``found`` (algorithm -> value, empty when absent), the checksums of the whole object:
    a ``COMPOSITE`` one (S3 marks it ``...-N`` too) is of the parts' checksums."""
    if checksum_type.upper() == "COMPOSITE":
        return {}
    return {algorithm: value for algorithm, value in found.items() if value and "-" not in value}


def stored_from_headers(headers: Mapping[str, str], etag: str | None = None, crc64nvme: str = "") -> Stored:
    """What an answer's headers (names in lower case) say was stored; ``etag`` and
    ``crc64nvme``: those in the answer's document, when it has one (CompleteMultipartUpload)."""
    encryption = headers.get("x-amz-server-side-encryption", "")
    if headers.get("x-amz-server-side-encryption-customer-algorithm"):
        encryption = "SSE-C"
    etag = headers.get("etag", "") if etag is None else etag
    return Stored(etag.strip('"'), encryption, crc64nvme or headers.get("x-amz-checksum-crc64nvme", ""))


def head_from_headers(headers: Mapping[str, str]) -> ObjectHead:
    """A HeadObject answer (asked with checksum mode) from its headers, names in lower case."""
    stored = stored_from_headers(headers)
    found = {a: headers.get(f"x-amz-checksum-{a.lower()}", "") for a in CHECKSUM_ALGORITHMS}
    checksums = full_object_checksums(found, headers.get("x-amz-checksum-type", ""))
    return ObjectHead(stored.etag, stored.encryption, checksums)


class ListedObject(NamedTuple):
    key: str
    size: int
    etag: str  # without quotes
    #: LastModified, epoch seconds on the server's clock (to the second); ``None`` when unsaid
    last_modified: float | None = None


class ListPage(NamedTuple):
    """One ListObjectsV2 page: objects in the server's order, "directories" when a delimiter was
    given, and the token of the next page (``None`` on the last one)."""

    objects: list[ListedObject]
    prefixes: list[str]
    next_token: str | None


class OpenUpload(NamedTuple):
    """An incomplete multipart upload, as ListMultipartUploads shows it."""

    key: str
    upload_id: str
    initiated: str  # ISO 8601, as the server wrote it


class UploadedPart(NamedTuple):
    """A part of an open multipart upload, as ListParts shows it."""

    number: int
    etag: str  # without quotes
    size: int


class SentPart(NamedTuple):
    """A part as CompleteMultipartUpload names it: its ETag and, in an upload that keeps
    checksums, its CRC64NVME (empty otherwise)."""

    etag: str
    crc64nvme: str = ""


class PartBody(NamedTuple):
    """Part of an open file: the transport reads it, so no adapter needs the bytes held twice.
    ``stop`` is set when the upload is given up (Ctrl-C, another part failed): an adapter that
    waits to send the part again stops waiting then, with the error it had."""

    fd: int
    offset: int
    length: int
    stop: threading.Event | None = None


class Lister(Protocol):
    """What a listing needs of a transport."""

    def list_page(
        self,
        prefix: str,
        *,
        delimiter: str = "",
        start_after: str = "",
        token: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        """One page (up to ``max_keys``, at most 1,000) of the keys under ``prefix``."""


class Transport(Lister, Protocol):
    """What one run (or one worker process) sends to one bucket. Thread-safe."""

    bucket: str
    #: ``upload_part`` sends the body from the file as the socket takes it, so a part on the
    #: wire does not cost its size in memory (otherwise the putter bounds the parts in flight)
    streams_parts: bool

    def quick(self) -> Transport:
        """The same bucket and credentials with at most 3 attempts a request: for the bucket
        check, so that a wrong endpoint is reported in a second, not after the run's retries."""

    def head_bucket(self) -> float | None:
        """Whether the bucket is there for these credentials; returns the server's time of the
        answer (its ``Date`` header, epoch seconds), ``None`` when it sent none."""

    def head_object(self, key: str) -> ObjectHead | None:
        """The object's ETag, encryption and checksums; ``None`` when there is no such key."""

    def put_object(self, key: str, body: bytes, params: ObjectParams) -> Stored:
        """A single-part PUT; returns what the server says it stored."""

    def put_object_async(self, key: str, body: bytes, params: ObjectParams, callback: PutCallback) -> None:
        """Start a single-part PUT; ``callback`` runs on another thread when it ends."""

    def create_multipart(self, key: str, params: ObjectParams) -> str:
        """Start a multipart upload; returns its upload id."""

    def upload_part(
        self, key: str, upload_id: str, number: int, body: PartBody, md5: bytes, crc64nvme: str = ""
    ) -> str:
        """Send one part with its Content-MD5 (and CRC64NVME, when given); returns its ETag."""

    def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[SentPart], crc64nvme: str = ""
    ) -> Stored:
        """Assemble parts 1..N; ``crc64nvme``: the whole object's, for an upload started with
        ``ChecksumAlgorithm`` CRC64NVME and ``ChecksumType`` FULL_OBJECT. Returns what the
        server says it stored."""

    def abort_multipart(self, key: str, upload_id: str) -> None: ...

    def open_uploads(self, prefix: str) -> list[OpenUpload]:
        """The incomplete multipart uploads whose key starts with ``prefix``."""

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """The parts an open multipart upload holds, in part-number order."""

    def delete_objects(self, keys: Iterable[str]) -> dict[str, str]:
        """Delete up to 1,000 keys; returns the keys that could not be deleted, with the reason."""

    def close(self) -> None: ...

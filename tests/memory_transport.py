"""An in-memory ``Transport``: S3 as a dict, listing in lexicographic order like AWS.

For fast unit tests of the putter, the listing and the engine: no server, no thread, no sleep.
It checks what a strict server checks (Content-MD5 of every PUT and part, part ETags at
completion) and can be told to fail the next calls of an operation, or to damage bodies.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_s3pput import checksums
from airflow_s3pput.errors import S3Error
from airflow_s3pput.transport import ListedObject, ListPage, ObjectParams, OpenUpload, PartBody, UploadedPart
from airflow_s3pput.transport.interface import ObjectHead, PutCallback, SentPart, Stored


@dataclass
class StoredObject:
    body: bytes
    params: dict[str, Any]
    etag: str
    #: LastModified: the transport's clock when it was stored, in whole seconds as S3 says it
    modified: float = 0.0


@dataclass
class _Upload:
    key: str
    params: dict[str, Any]
    initiated: str
    parts: dict[int, tuple[bytes, str]] = field(default_factory=dict)


class MemoryTransport:
    """``Transport`` over dicts. ``fail_next["PutObject"] = [S3Error(...), ...]`` makes the next
    PutObjects raise those errors in turn; ``damage_next["PutObject"] = n`` flips a byte of the
    next n bodies on the way (so the Content-MD5 check refuses them, as a real server does).

    ``encryption="aws:kms"`` answers as a bucket with default SSE-KMS does: every ETag (PUT,
    part, completion, listing) is an opaque value of an MD5's length, and the answers say so.

    ``clock`` is the server's: HeadBucket answers it (the ``Date`` header) and every object
    stored keeps it, in whole seconds, as its LastModified.

    Like S3 since 2025 it keeps a CRC64NVME of every object (HeadObject shows it), checks one
    a PUT sends and echoes it; ``refuse_checksums`` answers a PUT carrying one as an older
    S3-compatible store does (400 InvalidArgument)."""

    streams_parts = False

    def __init__(
        self,
        bucket: str = "bucket",
        *,
        exists: bool = True,
        page_keys: int = 1000,
        encryption: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bucket = bucket
        self.clock = clock
        self.encryption = encryption
        self.exists = exists
        self.page_keys = page_keys
        self.objects: dict[str, StoredObject] = {}
        self.uploads: dict[str, _Upload] = {}
        self.calls: Counter[str] = Counter()
        self.fail_next: dict[str, list[S3Error]] = defaultdict(list)
        self.damage_next: Counter[str] = Counter()
        #: the ETag a PUT answers, when a test wants the server to "store other bytes"
        self.wrong_etags = 0
        self.refuse_checksums = False
        self._ids = itertools.count(1)
        self.closed = False

    # -- what the tests use to set the scene ---------------------------------------------------
    def add(self, key: str, body: bytes, etag: str | None = None, modified: float | None = None) -> None:
        """Store ``body`` under ``key`` as another writer would, at ``modified`` (default: now)."""
        when = self.now() if modified is None else modified
        self.objects[key] = StoredObject(body, {}, etag or hashlib.md5(body).hexdigest(), when)

    def now(self) -> float:
        """The server's clock to the second, as S3's ``Date`` and LastModified say it."""
        return float(int(self.clock()))

    def open_upload(self, key: str, initiated: str) -> str:
        upload_id = f"u{next(self._ids)}"
        self.uploads[upload_id] = _Upload(key, {}, initiated)
        return upload_id

    # -- the protocol ----------------------------------------------------------------------------
    def quick(self) -> MemoryTransport:
        return self

    def head_bucket(self) -> float | None:
        self._enter("HeadBucket")
        if not self.exists:
            raise S3Error("404", status=404)
        return self.now()

    def list_page(
        self,
        prefix: str,
        *,
        delimiter: str = "",
        start_after: str = "",
        token: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        self._enter("ListObjectsV2")
        after = token or start_after
        objects: list[ListedObject] = []
        prefixes: list[str] = []
        limit = min(max_keys, self.page_keys)
        last = ""
        for key in sorted(k for k in self.objects if k.startswith(prefix) and k > after):
            if len(objects) + len(prefixes) == limit:
                return ListPage(objects, prefixes, last)
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                if prefixes and prefixes[-1] == common:
                    continue
                prefixes.append(common)
                last = common + "\U0010ffff"  # the next page starts past everything under it
            else:
                stored = self.objects[key]
                objects.append(ListedObject(key, len(stored.body), stored.etag, stored.modified))
                last = key
        return ListPage(objects, prefixes, None)

    def head_object(self, key: str) -> ObjectHead | None:
        self._enter("HeadObject")
        stored = self.objects.get(key)
        if stored is None:
            return None
        crc = checksums.encode(checksums.crc64nvme(stored.body))
        return ObjectHead(stored.etag, self.encryption, {"CRC64NVME": crc})

    def put_object(self, key: str, body: bytes, params: ObjectParams) -> Stored:
        self._enter("PutObject")
        sent_crc = params.get(checksums.PARAM)
        if sent_crc is not None and self.refuse_checksums:
            raise S3Error("InvalidArgument", "unsupported checksum header", status=400)
        body = self._received("PutObject", body)
        _check_md5(body, params.get("ContentMD5"))
        _check_crc(body, sent_crc)
        crc = checksums.encode(checksums.crc64nvme(body))
        etag = self._etag(hashlib.md5(body).hexdigest())
        self.objects[key] = StoredObject(body, dict(params), etag, self.now())
        if self.wrong_etags:
            self.wrong_etags -= 1
            return Stored("0" * 32, self.encryption)
        return Stored(etag, self.encryption, crc)

    def _etag(self, md5_etag: str) -> str:
        """The ETag this bucket answers for bytes whose MD5-based ETag is ``md5_etag``."""
        if not self.encryption or self.encryption == "AES256":
            return md5_etag
        return os.urandom(16).hex() + md5_etag[32:]

    def put_object_async(self, key: str, body: bytes, params: ObjectParams, callback: PutCallback) -> None:
        try:
            stored = self.put_object(key, body, params)
        except S3Error as error:
            callback(None, error)
            return
        callback(stored, None)

    def create_multipart(self, key: str, params: ObjectParams) -> str:
        self._enter("CreateMultipartUpload")
        if "ChecksumAlgorithm" in params and self.refuse_checksums:
            raise S3Error("InvalidArgument", "unsupported checksum header", status=400)
        upload_id = f"u{next(self._ids)}"
        self.uploads[upload_id] = _Upload(key, dict(params), "2026-01-01T00:00:00.000Z")
        return upload_id

    def upload_part(
        self, key: str, upload_id: str, number: int, body: PartBody, md5: bytes, crc64nvme: str = ""
    ) -> str:
        self._enter("UploadPart")
        data = self._received("UploadPart", os.pread(body.fd, body.length, body.offset))
        _check_md5(data, base64.b64encode(md5).decode())
        _check_crc(data, crc64nvme)
        etag = self._etag(hashlib.md5(data).hexdigest())
        self._upload(upload_id).parts[number] = (data, etag)
        return etag

    def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[SentPart], crc64nvme: str = ""
    ) -> Stored:
        self._enter("CompleteMultipartUpload")
        upload = self._upload(upload_id)
        if [upload.parts[n][1] for n in sorted(upload.parts)] != [p.etag.strip('"') for p in parts]:
            raise S3Error("InvalidPart", status=400)
        body = b"".join(upload.parts[n][0] for n in sorted(upload.parts))
        _check_crc(body, crc64nvme)
        digests = b"".join(hashlib.md5(upload.parts[n][0]).digest() for n in sorted(upload.parts))
        etag = self._etag(hashlib.md5(digests).hexdigest() + f"-{len(upload.parts)}")
        self.objects[key] = StoredObject(body, upload.params, etag, self.now())
        del self.uploads[upload_id]
        return Stored(etag, self.encryption, crc64nvme)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self._enter("AbortMultipartUpload")
        self._upload(upload_id)
        del self.uploads[upload_id]

    def open_uploads(self, prefix: str) -> list[OpenUpload]:
        self._enter("ListMultipartUploads")
        return [
            OpenUpload(u.key, upload_id, u.initiated)
            for upload_id, u in sorted(self.uploads.items(), key=lambda item: item[1].key)
            if u.key.startswith(prefix)
        ]

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        self._enter("ListParts")
        upload = self._upload(upload_id)
        return [UploadedPart(n, etag, len(data)) for n, (data, etag) in sorted(upload.parts.items())]

    def delete_objects(self, keys: Iterable[str]) -> dict[str, str]:
        self._enter("DeleteObjects")
        for key in keys:
            self.objects.pop(key, None)
        return {}

    def close(self) -> None:
        self.closed = True

    # -- inside ----------------------------------------------------------------------------------
    def _enter(self, operation: str) -> None:
        self.calls[operation] += 1
        if self.fail_next[operation]:
            raise self.fail_next[operation].pop(0)

    def _received(self, operation: str, body: bytes) -> bytes:
        if self.damage_next[operation] and body:
            self.damage_next[operation] -= 1
            return bytes([body[0] ^ 0xFF]) + body[1:]
        return body

    def _upload(self, upload_id: str) -> _Upload:
        if upload_id not in self.uploads:
            raise S3Error("NoSuchUpload", status=404)
        return self.uploads[upload_id]


def _check_md5(body: bytes, content_md5: object) -> None:
    if content_md5 is not None and base64.b64encode(hashlib.md5(body).digest()).decode() != content_md5:
        raise S3Error(
            "BadDigest", "The Content-MD5 you specified did not match what we received.", status=400
        )


def _check_crc(body: bytes, crc64nvme: str | None) -> None:
    if crc64nvme and checksums.encode(checksums.crc64nvme(body)) != crc64nvme:
        raise S3Error(
            "BadDigest", "The CRC64NVME you specified did not match the calculated checksum.", status=400
        )

"""One large file in parallel parts: start (or carry on) a multipart upload, send the parts,
complete it, and abort it on any failure, so that no half-written object or open upload stays.

Each part carries its Content-MD5 and CRC64NVME, and the completion the whole object's CRC, so
the server checks every byte; the ETag it answers is compared with the one computed here when
it is computed from the bytes. Every upload started is written in the journal until it ends, so
a later run can abort it if this process is killed, or carry it on (``resumable``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from airflow_s3pput import checksums
from airflow_s3pput.checksums import ChecksumSupport
from airflow_s3pput.errors import IntegrityError, Interrupted, S3Error
from airflow_s3pput.etag import multipart_etag
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.transport import PartBody, SentPart, Stored, Transport, UploadedPart
from airflow_s3pput.upload_journal import UploadJournal

MAX_PART_WORKERS = 8
#: bytes of parts on the wire at most, over all the large files of a process, when the transport
#: holds each part whole (boto3 does; the CRT streams them): the README's memory bound
PART_BYTES_IN_FLIGHT = 48 * 1024 * 1024
#: part workers that hash the next parts while the wire is full: hashing streams through a
#: small buffer, so the memory budget above does not count it, and a part that gets a slot on
#: the wire is sent at once instead of being hashed first
PARTS_HASHED_AHEAD = 2
#: how often a waiting multipart upload looks whether Ctrl-C was pressed (seconds)
CANCEL_POLL = 0.1


class Part(NamedTuple):
    """A part on the server: its ETag, and the MD5, CRC64NVME and length of its bytes."""

    etag: str
    md5: bytes
    crc: int
    length: int


class Landed(NamedTuple):
    """A finished upload: the server's answer, the ETag computed here from the parts, and the
    bytes of the parts an earlier run had sent."""

    stored: Stored
    etag: str
    resumed: int


@dataclass
class _Upload:
    """One multipart upload under way."""

    key: str
    #: whether its parts and completion carry CRC64NVME: one started here does when the store
    #: takes checksums; one carried on tries, and drops them at the first refusal
    checksummed: bool
    id: str = ""
    #: set when it failed or was cancelled: send no more parts
    stop: threading.Event = field(default_factory=threading.Event)


class MultipartUploads:
    """The multipart uploads of one putter, over one pool of part workers."""

    def __init__(
        self,
        options: UploadOptions,
        transport: Transport,
        journal: UploadJournal,
        checksum: ChecksumSupport,
        cancelled: threading.Event,
    ) -> None:
        self.options = options
        self.transport = transport
        self.journal = journal
        self.checksum = checksum
        self.cancelled = cancelled
        streamed = transport.streams_parts  # then a part on the wire costs no memory
        by_memory = MAX_PART_WORKERS if streamed else PART_BYTES_IN_FLIGHT // options.part_size
        on_wire = max(2, min(options.threads, MAX_PART_WORKERS, by_memory))
        self._wire_slots = threading.BoundedSemaphore(on_wire)
        # The pool starts its threads with the first part: a run without large files has none.
        self.pool = ThreadPoolExecutor(on_wire + PARTS_HASHED_AHEAD, thread_name_prefix="s3pput-part")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def upload(
        self, fd: int, size: int, key: str, params: dict[str, Any], before_completing: Callable[[], None]
    ) -> Landed:
        """Upload ``size`` bytes of ``fd`` in parts, carrying on an open upload of the key whose
        parts are provably these bytes. ``before_completing`` raises if the file changed."""
        part_size = self.options.part_size_for(size)
        spans = [(offset, min(part_size, size - offset)) for offset in range(0, size, part_size)]
        upload = _Upload(key, self.checksum.on)
        landed = self._start(upload, params, fd, spans)
        try:
            parts = self._send_parts(upload, fd, spans, landed)
            before_completing()
            stored, sent_crc = self._complete(upload, parts)
        except BaseException:
            self.abort(key, upload.id)
            raise
        self.journal.finished(upload.id)
        expected = multipart_etag([p.md5 for p in parts])
        if stored.etag_differs(expected):
            raise IntegrityError(f"server ETag {stored.etag} does not match the uploaded parts ({expected})")
        if stored.crc_differs(sent_crc):
            raise IntegrityError(
                f"server CRC64NVME {stored.crc64nvme} does not match the parts' ({sent_crc})"
            )
        return Landed(stored, expected, sum(part.length for part in landed.values()))

    def _start(
        self, upload: _Upload, params: dict[str, Any], fd: int, spans: list[tuple[int, int]]
    ) -> dict[int, Part]:
        """Carry on an open upload (``resumable``) or start one; the parts it already holds."""
        resumed = self.resumable(upload.key, fd, spans) if self.options.resume else None
        if resumed is not None:
            upload.id, landed = resumed
            return landed
        intent = self.journal.starting(upload.key)
        upload.id = self._create(upload, params)
        self.journal.started(intent, upload.key, upload.id)
        return {}

    def resumable(
        self, key: str, fd: int, spans: list[tuple[int, int]]
    ) -> tuple[str, dict[int, Part]] | None:
        """An open upload of ``key`` whose every part is the same byte range of this file (its
        ETag that range's MD5), whoever started it, with its parts. A run of this host still
        going keeps its own; a left one of ours that holds other bytes (the file changed) is
        aborted; another tool's is left alone. The object gets the headers the upload was
        started with (ListParts does not show them): the same settings when a killed run of
        this DAG or command started it."""
        for upload_id in self._open_uploads_newest_first(key):
            owner = self.journal.owner(upload_id)
            if owner == "running":
                continue
            try:
                parts = self.transport.list_parts(key, upload_id)
            except S3Error:
                continue
            landed = _our_parts(parts, fd, spans)
            if landed is not None and (landed or owner == "left"):
                self.journal.adopt(key, upload_id)
                return upload_id, landed
            if owner == "left":
                self.abort(key, upload_id)
        return None

    def _open_uploads_newest_first(self, key: str) -> list[str]:
        """The ids of the open uploads of ``key`` itself (not of keys it prefixes); none when
        they cannot be listed: the upload then starts afresh."""
        try:
            uploads = [u for u in self.transport.open_uploads(key) if u.key == key]
        except S3Error:
            return []
        return [u.upload_id for u in sorted(uploads, key=lambda u: u.initiated, reverse=True)]

    def abort(self, key: str, upload_id: str) -> None:
        # Best effort: the error that made us abort is the one to report. An abort that could
        # not be sent stays in the journal, and a later run sends it.
        with contextlib.suppress(S3Error):
            self.transport.abort_multipart(key, upload_id)
            self.journal.finished(upload_id)

    def _create(self, upload: _Upload, params: dict[str, Any]) -> str:
        """Start an upload whose parts carry their CRC64NVME and whose object keeps the
        whole's, unless the store refuses checksums."""
        if upload.checksummed:
            try:
                return self.transport.create_multipart(upload.key, {**params, **checksums.MULTIPART_PARAMS})
            except S3Error as error:
                if not error.refuses_header:
                    raise
                self.checksum.refused(error)
                upload.checksummed = False
        return self.transport.create_multipart(upload.key, params)

    def _send_parts(
        self, upload: _Upload, fd: int, spans: list[tuple[int, int]], landed: dict[int, Part]
    ) -> list[Part]:
        """Every part in order: those ``landed`` already, and the others sent in parallel."""
        sending: dict[int, Future[Part]] = {}
        for number, (offset, length) in enumerate(spans, start=1):
            if number not in landed:
                body = PartBody(fd, offset, length, upload.stop)
                sending[number] = self.pool.submit(self._send_part, upload, number, body)
        self._wait_for_parts(set(sending.values()), upload.stop)
        return [landed[n] if n in landed else sending[n].result() for n in range(1, len(spans) + 1)]

    def _wait_for_parts(self, pending: set[Future[Part]], stop: threading.Event) -> None:
        """On a failed part or Ctrl-C, parts not on the wire are dropped and the upload stops
        once the parts on the wire are done."""
        while pending:
            done, pending = wait(pending, timeout=CANCEL_POLL, return_when=FIRST_EXCEPTION)
            failures = [error for f in done if (error := f.exception()) is not None]
            if failures or self.cancelled.is_set():
                stop.set()
                for future in pending:
                    future.cancel()
                wait(pending)
                raise failures[0] if failures else Interrupted(None)

    def _send_part(self, upload: _Upload, number: int, body: PartBody) -> Part:
        """Send a part again while its bytes arrive damaged, up to the run's attempts."""
        md5, crc = checksums.md5_and_crc64nvme(body.fd, body.offset, body.length)  # before a slot
        attempts = self.options.connection.max_attempts
        with self._wire_slots:
            for attempt in range(1, attempts + 1):
                if upload.stop.is_set():
                    raise Interrupted(None)  # the upload is being aborted: this part is moot
                try:
                    return Part(self._upload_part(upload, number, body, md5, crc), md5, crc, body.length)
                except S3Error as error:
                    if not error.damaged_in_transit or attempt == attempts:
                        raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _upload_part(self, upload: _Upload, number: int, body: PartBody, md5: bytes, crc: int) -> str:
        """UploadPart with the part's CRC64NVME, or without once the upload refuses it (one
        carried on that was started without)."""
        if upload.checksummed:
            try:
                return self.transport.upload_part(
                    upload.key, upload.id, number, body, md5, checksums.encode(crc)
                )
            except S3Error as error:
                if not error.refuses_header:
                    raise
                upload.checksummed = False
        return self.transport.upload_part(upload.key, upload.id, number, body, md5, "")

    def _complete(self, upload: _Upload, parts: list[Part]) -> tuple[Stored, str]:
        """CompleteMultipartUpload with the checksums as the parts were sent, then the other way
        if the server refuses: an upload carried on may have been started by an older run.
        Returns the answer and the whole object's CRC64NVME sent."""
        whole = checksums.encode(checksums.combined([(p.crc, p.length) for p in parts]))
        try:
            return self._send_completion(upload, parts, whole if upload.checksummed else "")
        except S3Error as error:
            if not error.refuses_header:
                raise
        return self._send_completion(upload, parts, "" if upload.checksummed else whole)

    def _send_completion(self, upload: _Upload, parts: list[Part], whole_crc: str) -> tuple[Stored, str]:
        sent = [SentPart(p.etag, checksums.encode(p.crc) if whole_crc else "") for p in parts]
        return self.transport.complete_multipart(upload.key, upload.id, sent, whole_crc), whole_crc


def _our_parts(parts: list[UploadedPart], fd: int, spans: list[tuple[int, int]]) -> dict[int, Part] | None:
    """The parts, if each is the same byte range of ``fd`` (same length, its ETag the MD5 of
    those bytes); ``None`` if any is not. An opaque part ETag (SSE-KMS) proves nothing."""
    landed: dict[int, Part] = {}
    for part in parts:
        if not 1 <= part.number <= len(spans) or part.size != spans[part.number - 1][1]:
            return None
        md5, crc = checksums.md5_and_crc64nvme(fd, spans[part.number - 1][0], part.size)
        if part.etag.lower() != md5.hex():  # listed without quotes (the interface's contract)
            return None
        landed[part.number] = Part(part.etag, md5, crc, part.size)
    return landed

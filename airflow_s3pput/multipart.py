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
    """A part on the server: its ETag, and the MD5 and CRC64NVME of its bytes."""

    etag: str
    md5: bytes
    crc: int


class Landed(NamedTuple):
    """A finished upload: the server's answer, the ETag computed here from the parts, and the
    bytes of the parts an earlier run had sent."""

    stored: Stored
    etag: str
    resumed: int


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
        #: sends of one part whose bytes arrived damaged, before the file is failed
        self.attempts = options.connection.max_attempts
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        #: parts on the wire at once (set with the pool), within PART_BYTES_IN_FLIGHT
        self._wire_slots = threading.BoundedSemaphore(1)

    @property
    def pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                streamed = self.transport.streams_parts  # then a part on the wire costs no memory
                by_memory = MAX_PART_WORKERS if streamed else PART_BYTES_IN_FLIGHT // self.options.part_size
                on_wire = max(2, min(self.options.threads, MAX_PART_WORKERS, by_memory))
                self._wire_slots = threading.BoundedSemaphore(on_wire)
                self._pool = ThreadPoolExecutor(
                    on_wire + PARTS_HASHED_AHEAD, thread_name_prefix="s3pput-part"
                )
            return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def upload(
        self, fd: int, size: int, key: str, params: dict[str, Any], before_completing: Callable[[], None]
    ) -> Landed:
        """Upload ``size`` bytes of ``fd`` in parts, carrying on an open upload of the key whose
        parts are provably these bytes. ``before_completing`` raises if the file changed."""
        part_size = self.options.part_size_for(size)
        checksummed = _Checksummed(self.checksum.on)
        resumed = self.resumable(key, fd, size, part_size)
        if resumed is not None:
            upload_id, landed = resumed
        else:
            intent = self.journal.starting(key)
            upload_id, landed = self._create(key, params, checksummed), {}
            self.journal.started(intent, key, upload_id)
        stop = threading.Event()  # this upload failed or was cancelled: send no more parts
        try:
            futures: list[Future[Part]] = []
            for number, offset in enumerate(range(0, size, part_size), start=1):
                if number in landed:
                    futures.append(_done(landed[number]))
                else:
                    body = PartBody(fd, offset, min(part_size, size - offset), stop)
                    futures.append(
                        self.pool.submit(self._send_part, key, upload_id, number, body, checksummed)
                    )
            parts = self._wait_for_parts(futures, stop)
            before_completing()
            whole = checksums.combined(
                [(p.crc, _part_length(n, part_size, size)) for n, p in enumerate(parts, 1)]
            )
            stored, sent_crc = self._complete(key, upload_id, parts, checksums.encode(whole), checksummed)
        except BaseException:
            self.abort(key, upload_id)
            raise
        self.journal.finished(upload_id)
        expected = multipart_etag([p.md5 for p in parts])
        if stored.etag_differs(expected):
            raise IntegrityError(f"server ETag {stored.etag} does not match the uploaded parts ({expected})")
        if stored.crc_differs(sent_crc):
            raise IntegrityError(
                f"server CRC64NVME {stored.crc64nvme} does not match the parts' ({sent_crc})"
            )
        return Landed(stored, expected, sum(_part_length(n, part_size, size) for n in landed))

    def resumable(self, key: str, fd: int, size: int, part_size: int) -> tuple[str, dict[int, Part]] | None:
        """An open upload of ``key`` to carry on, with its parts: every part it holds must be the
        same byte range of this file (its ETag is that range's MD5), whoever started it. Another
        run of this host that is still going keeps its own; one of ours that holds other bytes
        (the file changed since) is aborted; another tool's is left alone. The object gets the
        headers the upload was started with (ListParts does not show them): those of the run
        that started it, the same settings when it was a killed run of this DAG or command."""
        if not self.options.resume:
            return None
        for upload_id in self._open_uploads_newest_first(key):
            owner = self.journal.owner(upload_id)
            if owner == "running":
                continue
            try:
                parts = self.transport.list_parts(key, upload_id)
            except S3Error:
                continue
            landed = _our_parts(parts, fd, size, part_size)
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

    def _create(self, key: str, params: dict[str, Any], checksummed: _Checksummed) -> str:
        """Start an upload whose parts carry their CRC64NVME and whose object keeps the
        whole's, unless the store refuses checksums."""
        if checksummed.on:
            try:
                return self.transport.create_multipart(key, {**params, **checksums.MULTIPART_PARAMS})
            except S3Error as error:
                if not error.refuses_header:
                    raise
                self.checksum.refused(error)
                checksummed.on = False
        return self.transport.create_multipart(key, params)

    def _wait_for_parts(self, futures: list[Future[Part]], stop: threading.Event) -> list[Part]:
        """The parts in order; on a failed part or Ctrl-C, parts not on the wire are dropped and
        the upload stops once the parts on the wire are done."""
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=CANCEL_POLL, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done) or self.cancelled.is_set():
                stop.set()
                for future in pending:
                    future.cancel()
                wait(pending)
                for future in done:
                    if future.exception() is not None:
                        raise future.exception()  # type: ignore[misc]
                raise Interrupted(None)
        return [f.result() for f in futures]

    def _send_part(
        self, key: str, upload_id: str, number: int, body: PartBody, checksummed: _Checksummed
    ) -> Part:
        md5, crc = checksums.md5_and_crc64nvme(body.fd, body.offset, body.length)  # before a slot
        with self._wire_slots:
            for attempt in range(1, self.attempts + 1):
                if body.stop is not None and body.stop.is_set():
                    raise Interrupted(None)  # the upload is being aborted: this part is moot
                sent_crc = checksums.encode(crc) if checksummed.on else ""
                try:
                    return Part(
                        self.transport.upload_part(key, upload_id, number, body, md5, sent_crc), md5, crc
                    )
                except S3Error as error:
                    if sent_crc and error.refuses_header:
                        checksummed.on = False  # an upload carried on that was started without
                    elif not (error.damaged_in_transit and attempt < self.attempts):
                        raise
        raise S3Error("InvalidRequest", f"part {number} refused {self.attempts} times")

    def _complete(
        self, key: str, upload_id: str, parts: list[Part], whole_crc: str, checksummed: _Checksummed
    ) -> tuple[Stored, str]:
        """CompleteMultipartUpload, with the checksums when the parts carried them; an upload
        carried on that refuses them (started without, by an older run) is completed without.
        Returns the answer and the CRC64NVME sent."""
        for with_crc in (checksummed.on, not checksummed.on):
            sent = [SentPart(p.etag, checksums.encode(p.crc) if with_crc else "") for p in parts]
            crc = whole_crc if with_crc else ""
            try:
                return self.transport.complete_multipart(key, upload_id, sent, crc), crc
            except S3Error as error:
                if with_crc != checksummed.on or not error.refuses_header:
                    raise
        raise AssertionError("unreachable")  # the second way returns or raises


class _Checksummed:
    """Whether an upload's parts and completion carry CRC64NVME: one started here does when
    the store takes checksums; one carried on tries, and drops them at the first refusal."""

    def __init__(self, on: bool) -> None:
        self.on = on


def _part_length(number: int, part_size: int, size: int) -> int:
    return min(part_size, size - (number - 1) * part_size)


def _our_parts(parts: list[UploadedPart], fd: int, size: int, part_size: int) -> dict[int, Part] | None:
    """The parts, if each is the same byte range of ``fd`` (same length, its ETag the MD5 of
    those bytes); ``None`` if any is not. An opaque part ETag (SSE-KMS) proves nothing."""
    count = -(-size // part_size)
    landed: dict[int, Part] = {}
    for part in parts:
        if not 1 <= part.number <= count or part.size != _part_length(part.number, part_size, size):
            return None
        md5, crc = checksums.md5_and_crc64nvme(fd, (part.number - 1) * part_size, part.size)
        if part.etag.lower() != md5.hex():  # listed without quotes (the interface's contract)
            return None
        landed[part.number] = Part(part.etag, md5, crc)
    return landed


def _done(part: Part) -> Future[Part]:
    future: Future[Part] = Future()
    future.set_result(part)
    return future

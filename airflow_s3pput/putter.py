"""Upload one file: the unit of work of the dispatcher.

``Putter.put(task)`` never raises: whatever happens to a file becomes a ``PutResult``, so one
bad file never stops the others (s3transfer keeps the same split: the task body is small, the
exception capture lives in one wrapper, ``Putter._guard``).

Integrity: every PutObject and UploadPart carries the Content-MD5 of the bytes we read, and a
PutObject their CRC64NVME too (``checksums``), so a body corrupted in transit is rejected by the
server. A store that refuses the checksum header (older S3-compatible ones) is served Content-MD5
alone from its first refusal on, with one warning. Where the answer's ETag is computed from the
bytes (no SSE-KMS or SSE-C named in the answer, an MD5-shaped value) it is checked against the MD5
(or the multipart ETag) we computed, and an echoed CRC64NVME against ours; an opaque ETag is not
damage. A transfer damaged on the
way (the server's digest check failed, or its ETag says it stored other bytes) is sent again like
any transient fault, up to the run's attempts. The file is read once; if its size or mtime
changed since the walk, or while we read it, the file is reported as failed instead of storing a
half-old mix. A failed multipart
upload is aborted, so no orphaned parts are left behind.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, TypeVar

from airflow_s3pput import checksums
from airflow_s3pput.checksum_lookup import ChecksumLookup
from airflow_s3pput.content import (
    BytesContent,
    Content,
    FileContent,
    guess_content_type,
    gzip_bytes,
    gzip_to_tempfile,
    should_gzip,
)
from airflow_s3pput.digest_record import DigestRecord, Lookup
from airflow_s3pput.errors import FileChanged, IntegrityError, Interrupted, S3Error, describe_error
from airflow_s3pput.etag import multipart_etag
from airflow_s3pput.modes import (
    PUT_ALWAYS,
    PUT_CHANGED,
    SKIP_SAME_CHECKSUM,
    SKIP_UNCHANGED,
    Decision,
    RemoteObject,
    get_mode,
)
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.stats import PutResult
from airflow_s3pput.transport import PartBody, SentPart, Stored, Transport, UploadedPart
from airflow_s3pput.upload_journal import UploadJournal, journal_for

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
INTERRUPTED = "interrupted before its upload started"
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PutTask:
    """One file to consider, with what the listing found under its key (picklable)."""

    path: str
    key: str
    size: int
    mtime_ns: int
    remote: RemoteObject | None = None


@dataclass(frozen=True, slots=True)
class SinglePut:
    """A file read, compared and found worth a single PutObject: what to send."""

    task: PutTask
    data: bytes
    md5_hex: str
    params: dict[str, Any]  # with the CRC64NVME, unless the store refuses it
    decision: Decision
    seen: Lookup  # digest record: what is remembered once the server has the bytes

    def result(self) -> PutResult:
        """The file's result once the server has the bytes."""
        return PutResult(self.task.path, self.task.key, "put", self.decision.reason, len(self.data),
                         looked_up=self.decision.looked_up)  # fmt: skip


class Putter:
    """Uploads files through one transport, with a pool of part uploaders for large files."""

    def __init__(
        self,
        options: UploadOptions,
        transport: Transport,
        journal: UploadJournal | None = None,
        record: DigestRecord | None = None,
    ) -> None:
        """``journal``: where the multipart uploads started here are written down until they
        end (default: the user's cache directory), so that a later run can abort them if this
        process is killed. ``record``: the run's digest record (default: this putter opens
        and closes its own)."""
        self.options = options
        self.transport = transport
        self.journal = journal if journal is not None else journal_for(options)
        #: set on Ctrl-C: files not started fail as interrupted, multipart uploads are aborted
        self.cancelled = threading.Event()
        self.mode = get_mode(options.mode)
        self.params = options.put_params()
        #: sends of one request whose bytes arrived damaged, before the file is failed
        self.attempts = options.connection.max_attempts
        self._part_pool: ThreadPoolExecutor | None = None
        self._part_pool_lock = threading.Lock()
        #: parts on the wire at once (set with the pool), within PART_BYTES_IN_FLIGHT
        self._wire_slots = threading.BoundedSemaphore(1)
        self.own_record = record is None
        self.record = DigestRecord.open(options) if record is None else record  # off unless update
        #: cleared at the store's first refusal of the checksum header
        self.send_checksums = True
        self.lookup = ChecksumLookup(transport)

    @property
    def part_pool(self) -> ThreadPoolExecutor:
        with self._part_pool_lock:
            if self._part_pool is None:
                streamed = self.transport.streams_parts  # then a part on the wire costs no memory
                by_memory = MAX_PART_WORKERS if streamed else PART_BYTES_IN_FLIGHT // self.options.part_size
                on_wire = max(2, min(self.options.threads, MAX_PART_WORKERS, by_memory))
                self._wire_slots = threading.BoundedSemaphore(on_wire)
                workers = on_wire + PARTS_HASHED_AHEAD
                self._part_pool = ThreadPoolExecutor(workers, thread_name_prefix="s3pput-part")
            return self._part_pool

    def close(self) -> None:
        if self._part_pool is not None:
            self._part_pool.shutdown(wait=True)
        if self.own_record:
            self.record.close()

    def put(self, task: PutTask) -> PutResult:
        """Upload one file and wait for it; never raises."""
        prepared = self._start(task)
        if isinstance(prepared, PutResult):
            return prepared
        return self._guard(task, self._send, prepared)

    def put_async(self, task: PutTask, done: Callable[[PutResult], None]) -> None:
        """Like ``put`` for a file below the multipart threshold: the file is read and
        compared in this thread, the PUT completes on the transport's callback."""
        prepared = self._start(task)
        if isinstance(prepared, PutResult):
            done(prepared)
            return
        self._send_async(prepared, done, attempt=1)

    def _start(self, task: PutTask) -> PutResult | SinglePut:
        """The file read and compared: a final result, or the single PUT to send."""
        if self.cancelled.is_set():
            return PutResult(task.path, task.key, "fail", error=INTERRUPTED)
        return self._guard(task, self._prepare, task)

    def _send_async(self, put: SinglePut, done: Callable[[PutResult], None], attempt: int) -> None:
        def finished(stored: Stored | None, error: S3Error | None) -> None:
            outcome = self._guard(put.task, self._finish, put, stored, error)
            if outcome is _CHECKSUM_REFUSED:
                self._send_async(self._without_checksum(put, error), done, attempt)
            elif outcome is _DAMAGED and attempt < self.attempts:
                self._send_async(put, done, attempt + 1)
            else:
                done(outcome if isinstance(outcome, PutResult) else self._damaged_result(put, error))

        try:
            self.transport.put_object_async(put.task.key, put.data, put.params, finished)
        except Exception as exc:  # noqa: BLE001 - could not start (e.g. the CRT): this file failed
            done(PutResult(put.task.path, put.task.key, "fail", error=describe_error(exc)))

    @staticmethod
    def _guard(task: PutTask, step: Callable[..., T], *args: Any) -> T | PutResult:
        """Run one step for ``task``; whatever goes wrong becomes that file's failure."""
        try:
            return step(*args)
        except FileChanged as exc:
            return PutResult(task.path, task.key, "fail", error=str(exc))
        except Interrupted:
            return PutResult(
                task.path, task.key, "fail", error="interrupted: its multipart upload was aborted"
            )
        except FileNotFoundError:
            return PutResult(
                task.path, task.key, "fail", error="file disappeared before upload", retryable=False
            )
        except OSError as exc:
            why = f"cannot read: {exc.strerror or exc}"
            return PutResult(task.path, task.key, "fail", error=why, retryable=False)
        except Exception as exc:  # noqa: BLE001 - every other failure is this file's, reported
            return PutResult(task.path, task.key, "fail", error=describe_error(exc))

    def _prepare(self, task: PutTask) -> PutResult | SinglePut:
        """Read and compare a file: a final result, or a single PUT ready to send.

        Large files are uploaded here, in parts, and come back as a final result.
        """
        # digest record: a file whose stat and remembered digest match the listing is not opened
        seen = self.record.look(task.path, task.key, task.remote)
        if seen.unchanged:
            return PutResult(task.path, task.key, "skip", SKIP_UNCHANGED.reason)
        fd = os.open(task.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            _check_unchanged(fd, task, "since it was listed")
            gz = self.options.gzip and should_gzip(
                task.key, self._content_type(task.key), self.options.gzip_types
            )
            if self.options.dry_run and not self.mode.needs_listing and not gz:
                # Nothing to compare and nothing to send: no need to read the file.
                return PutResult(task.path, task.key, "put", PUT_ALWAYS.reason, task.size)
            if task.size < self.options.multipart_threshold:
                return self._prepare_small(fd, task, gz, seen)
            return self._put_large(fd, task, gz, seen)
        finally:
            os.close(fd)

    def _content_type(self, key: str) -> str:
        return self.options.content_type or guess_content_type(key)

    def _object_params(self, key: str, gz: bool) -> dict[str, Any]:
        """The headers of a new object. Only for files that are put: a skipped file needs none."""
        params = {"ContentType": self._content_type(key), **self.params}
        if gz:
            params["ContentEncoding"] = "gzip"
        return params

    def _decide(self, task: PutTask, content: Content, seen: Lookup, digest: Callable[[], str]) -> Decision:
        """The mode's decision, or "unchanged" where the digest record knows the listed object
        holds these very bytes, or where its checksum says so (``checksum_lookup``): on a bucket
        whose ETags are opaque, only they can tell."""
        remote = task.remote
        if remote is not None and seen.entry is not None and seen.same_as(digest(), remote):
            return SKIP_UNCHANGED
        decision = self.mode.decide(content, remote)
        if (
            decision is PUT_CHANGED
            and remote is not None
            and remote.size == content.stored_size
            and self.lookup.worth_asking(remote.etag)
        ):
            same = self.lookup.same_content(task.key, remote.etag, content.chunks())
            return SKIP_SAME_CHECKSUM if same else replace(PUT_CHANGED, looked_up=True)
        return decision

    def _prepare_small(self, fd: int, task: PutTask, gz: bool, seen: Lookup) -> PutResult | SinglePut:
        data = _read_exactly(fd, task.size)
        _check_unchanged(fd, task, "while it was read")
        seen.confirm(fd)  # digest record
        if gz:
            data = gzip_bytes(data, self.options.gzip_level)
        content = BytesContent(data, self.options.part_size_for(len(data)))
        decision = self._decide(task, content, seen, lambda: content.md5.hex())
        if not decision.put:
            if decision.reason == SKIP_UNCHANGED.reason and task.remote is not None:
                seen.remember(len(data), content.md5.hex(), task.remote.etag)
            return PutResult(task.path, task.key, "skip", decision.reason, looked_up=decision.looked_up)
        if self.options.dry_run:
            return PutResult(
                task.path, task.key, "put", decision.reason, len(data), looked_up=decision.looked_up
            )
        params = {"ContentMD5": base64.b64encode(content.md5).decode(), **self._object_params(task.key, gz)}
        if self.send_checksums:
            params[checksums.PARAM] = checksums.encode(checksums.crc64nvme(data))
        return SinglePut(task, data, content.md5.hex(), params, decision, seen)

    def _send(self, put: SinglePut) -> PutResult:
        error: S3Error | None = None
        for _ in range(self.attempts):
            stored: Stored | None = None
            try:
                stored, error = self.transport.put_object(put.task.key, put.data, put.params), None
            except S3Error as exc:
                error = exc
            outcome = self._finish(put, stored, error)  # raises what sending again cannot cure
            if isinstance(outcome, PutResult):
                return outcome
            if outcome is _CHECKSUM_REFUSED:
                return self._send(self._without_checksum(put, error))
        return self._damaged_result(put, error)

    def _finish(self, put: SinglePut, stored: Stored | None, error: S3Error | None) -> PutResult | _Resend:
        """The file's result from the server's answer; ``_DAMAGED`` when sending it again may
        help, ``_CHECKSUM_REFUSED`` when the store does not take the CRC64NVME header."""
        if error is not None:
            if error.damaged_in_transit:
                return _DAMAGED
            if checksums.PARAM in put.params and error.refuses_header:
                return _CHECKSUM_REFUSED
            raise error
        if stored is not None and _answer_differs(stored, put.md5_hex, put.params.get(checksums.PARAM)):
            return _DAMAGED
        if stored is not None:
            put.seen.remember(len(put.data), put.md5_hex, stored.etag)
        return put.result()

    def _without_checksum(self, put: SinglePut, error: S3Error | None) -> SinglePut:
        """``put`` with Content-MD5 alone, and the putter's later PUTs too: the store refused
        the CRC64NVME header."""
        self._checksums_refused(error)
        return replace(put, params={k: v for k, v in put.params.items() if k != checksums.PARAM})

    def _checksums_refused(self, error: S3Error | None) -> None:
        if self.send_checksums:
            self.send_checksums = False
            log.warning("s3pput: warning: the server refused a request carrying %s (%s): Content-MD5 "
                        "alone guards the bytes from now on", checksums.HEADER, error)  # fmt: skip

    def _damaged_result(self, put: SinglePut, error: S3Error | None) -> PutResult:
        why = str(error) if error is not None else "the server's ETag does not match the bytes sent"
        return PutResult(put.task.path, put.task.key, "fail",
                         error=f"damaged in transit {self.attempts} times: {why}")  # fmt: skip

    def _put_large(self, fd: int, task: PutTask, gz: bool, seen: Lookup) -> PutResult:
        spool = gzip_to_tempfile(fd, self.options.gzip_level) if gz else None
        try:
            if spool is not None:
                _check_unchanged(fd, task, "while it was compressed")
            source_fd = spool.fileno() if spool is not None else fd
            size = os.fstat(source_fd).st_size
            part_size = self.options.part_size_for(size)
            content = FileContent(source_fd, size, part_size)
            decision = self._decide(task, content, seen, lambda: content.multipart_etag(part_size))
            if not decision.put:
                if decision.reason == SKIP_UNCHANGED.reason and task.remote is not None:
                    seen.confirm(fd)
                    seen.remember(size, content.multipart_etag(part_size), task.remote.etag)
                return PutResult(task.path, task.key, "skip", decision.reason, looked_up=decision.looked_up)
            if self.options.dry_run:
                return PutResult(
                    task.path, task.key, "put", decision.reason, size, looked_up=decision.looked_up
                )
            params = self._object_params(task.key, gz)
            stored, digest, resumed = self._multipart(
                source_fd, size, task, params, verify_fd=None if spool else fd
            )
            seen.confirm(fd)
            seen.remember(size, digest, stored.etag)
            return PutResult(task.path, task.key, "put", decision.reason, size, resumed=resumed,
                             looked_up=decision.looked_up)  # fmt: skip
        finally:
            if spool is not None:
                spool.close()

    def _multipart(
        self, fd: int, size: int, task: PutTask, params: dict[str, Any], verify_fd: int | None
    ) -> tuple[Stored, str, int]:
        """Upload ``size`` bytes of ``fd`` in parts, carrying on an open upload of the key whose
        parts are provably these bytes; return the server's answer, the ETag computed here from
        the parts, and the bytes of the parts that had landed before."""
        key = task.key
        part_size = self.options.part_size_for(size)
        checksummed = _Checksummed(self.send_checksums)
        resumed = self._resumable(key, fd, size, part_size)
        if resumed is not None:
            upload_id, landed = resumed
        else:
            intent = self.journal.starting(key)
            upload_id, landed = self._create(key, params, checksummed), {}
            self.journal.started(intent, key, upload_id)
        stop = threading.Event()  # this upload failed or was cancelled: send no more parts
        try:
            futures = [
                _landed(landed[number])
                if number in landed
                else self.part_pool.submit(
                    self._upload_part,
                    key,
                    upload_id,
                    number,
                    PartBody(fd, offset, min(part_size, size - offset), stop),
                    checksummed,
                )
                for number, offset in enumerate(range(0, size, part_size), start=1)
            ]
            parts = self._wait_for_parts(futures, stop)
            if verify_fd is not None:
                _check_unchanged(verify_fd, task, "while it was uploaded")
            whole = checksums.combined(
                [(p.crc, _part_length(n, part_size, size)) for n, p in enumerate(parts, 1)]
            )
            stored, sent_crc = self._complete(key, upload_id, parts, checksums.encode(whole), checksummed)
        except BaseException:
            self._abort(key, upload_id)
            raise
        self.journal.finished(upload_id)
        expected = multipart_etag([p.md5 for p in parts])
        if _answer_differs(stored, expected, sent_crc):
            raise IntegrityError(
                f"server ETag {stored.etag} does not match the uploaded parts ({expected})"
                if _etag_differs(stored, expected)
                else f"server CRC64NVME {stored.crc64nvme} does not match the uploaded parts ({sent_crc})"
            )
        return stored, expected, sum(_part_length(n, part_size, size) for n in landed)

    def _create(self, key: str, params: dict[str, Any], checksummed: _Checksummed) -> str:
        """Start an upload whose parts carry their CRC64NVME and whose object keeps the
        whole's, unless the store refuses checksums."""
        if checksummed.on:
            try:
                return self.transport.create_multipart(key, {**params, **checksums.MULTIPART_PARAMS})
            except S3Error as error:
                if not error.refuses_header:
                    raise
                self._checksums_refused(error)
                checksummed.on = False
        return self.transport.create_multipart(key, params)

    def _complete(
        self, key: str, upload_id: str, parts: list[_Part], whole_crc: str, checksummed: _Checksummed
    ) -> tuple[Stored, str]:
        """CompleteMultipartUpload, with the checksums when the parts carried them; an upload
        carried on that refuses them (started without, by an older run) is completed without.
        Returns the answer and the CRC64NVME sent."""
        for with_crc in (checksummed.on, not checksummed.on):
            sent = [SentPart(p.etag, checksums.encode(p.crc) if with_crc else "") for p in parts]
            try:
                crc = whole_crc if with_crc else ""
                return self.transport.complete_multipart(key, upload_id, sent, crc), crc
            except S3Error as error:
                if with_crc != checksummed.on or not error.refuses_header:
                    raise
        raise AssertionError("unreachable")  # the second way returns or raises

    def _resumable(self, key: str, fd: int, size: int, part_size: int) -> tuple[str, _Parts] | None:
        """An open upload of ``key`` to carry on, with its parts: every part it holds must be the
        same byte range of this file (its ETag is that range's MD5), whoever started it. Another
        run of this host that is still going keeps its own; one of ours that holds other bytes
        (the file changed since) is aborted; another tool's is left alone. The object gets the
        headers the upload was started with (ListParts does not show them): those of the run
        that started it, the same settings when it was a killed run of this DAG or command."""
        if not self.options.resume:
            return None
        try:
            uploads = [u for u in self.transport.open_uploads(key) if u.key == key]
        except S3Error:
            return None  # the upload starts afresh
        for upload in sorted(uploads, key=lambda u: u.initiated, reverse=True):
            owner = self.journal.owner(upload.upload_id)
            if owner == "running":
                continue
            try:
                parts = self.transport.list_parts(key, upload.upload_id)
            except S3Error:
                continue
            landed = _our_parts(parts, fd, size, part_size)
            if landed is not None and (landed or owner == "left"):
                self.journal.adopt(key, upload.upload_id)
                return upload.upload_id, landed
            if owner == "left":
                self._abort(key, upload.upload_id)
        return None

    def _wait_for_parts(self, futures: list[Future[_Part]], stop: threading.Event) -> list[_Part]:
        """The parts in order; on a failed part or Ctrl-C, parts not on the wire
        are dropped and the upload stops once the parts on the wire are done (a part at most:
        about a second)."""
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

    def _upload_part(
        self, key: str, upload_id: str, number: int, body: PartBody, checksummed: _Checksummed
    ) -> _Part:
        md5, crc = checksums.md5_and_crc64nvme(body.fd, body.offset, body.length)  # before a slot
        with self._wire_slots:
            for attempt in range(1, self.attempts + 1):
                if body.stop is not None and body.stop.is_set():
                    raise Interrupted(None)  # the upload is being aborted: this part is moot
                sent_crc = checksums.encode(crc) if checksummed.on else ""
                try:
                    return _Part(
                        self.transport.upload_part(key, upload_id, number, body, md5, sent_crc), md5, crc
                    )
                except S3Error as error:
                    if sent_crc and error.refuses_header:
                        checksummed.on = False  # an upload carried on that was started without
                    elif not (error.damaged_in_transit and attempt < self.attempts):
                        raise
        raise S3Error("InvalidRequest", f"part {number} refused {self.attempts} times")

    def _abort(self, key: str, upload_id: str) -> None:
        # Best effort: the error that made us abort is the one to report. An abort that could
        # not be sent stays in the journal, and a later run sends it.
        with contextlib.suppress(S3Error):
            self.transport.abort_multipart(key, upload_id)
            self.journal.finished(upload_id)


class _Part(NamedTuple):
    """A part on the server: its ETag, and the MD5 and CRC64NVME of its bytes."""

    etag: str
    md5: bytes
    crc: int


#: part number -> the parts an upload already holds
_Parts = dict[int, _Part]


class _Checksummed:
    """Whether an upload's parts and completion carry CRC64NVME: one started here does when
    the store takes checksums; one carried on tries, and drops them at the first refusal."""

    def __init__(self, on: bool) -> None:
        self.on = on


def _part_length(number: int, part_size: int, size: int) -> int:
    return min(part_size, size - (number - 1) * part_size)


def _our_parts(parts: list[UploadedPart], fd: int, size: int, part_size: int) -> _Parts | None:
    """The parts, if each is the same byte range of ``fd`` (same length, its ETag the MD5 of
    those bytes); ``None`` if any is not. An opaque part ETag (SSE-KMS) proves nothing."""
    count = -(-size // part_size)
    landed: _Parts = {}
    for part in parts:
        if not 1 <= part.number <= count or part.size != _part_length(part.number, part_size, size):
            return None
        md5, crc = checksums.md5_and_crc64nvme(fd, (part.number - 1) * part_size, part.size)
        if part.etag.lower() != md5.hex():  # listed without quotes (the port's contract)
            return None
        landed[part.number] = _Part(part.etag, md5, crc)
    return landed


def _landed(part: _Part) -> Future[_Part]:
    future: Future[_Part] = Future()
    future.set_result(part)
    return future


class _Resend:
    """What ``Putter._finish`` says when a PUT should be sent again: its bytes arrived damaged
    (``_DAMAGED``), or the store refused the checksum header (``_CHECKSUM_REFUSED``)."""


_DAMAGED = _Resend()
_CHECKSUM_REFUSED = _Resend()


def _etag_differs(stored: Stored, expected: str) -> bool:
    """Whether the server says it stored other bytes: only an ETag computed from the bytes can."""
    return stored.etag_is_md5 and stored.etag.lower() != expected


def _answer_differs(stored: Stored, md5_hex: str, crc64nvme: str | None) -> bool:
    """Whether the answer says other bytes were stored: by its ETag, or by the CRC64NVME it
    echoed for the one we sent."""
    return _etag_differs(stored, md5_hex) or bool(
        crc64nvme and stored.crc64nvme and stored.crc64nvme != crc64nvme
    )


def _read_exactly(fd: int, size: int) -> bytes:
    chunks = []
    offset = 0
    while offset < size:
        data = os.pread(fd, size - offset, offset)
        if not data:
            raise FileChanged("file shrank while it was read")
        chunks.append(data)
        offset += len(data)
    if os.pread(fd, 1, size):
        raise FileChanged("file grew while it was read")
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _check_unchanged(fd: int, task: PutTask, when: str) -> None:
    st = os.fstat(fd)
    if st.st_size != task.size or st.st_mtime_ns != task.mtime_ns:
        raise FileChanged(f"file changed {when} (size {task.size} -> {st.st_size})")

"""Upload one file: the unit of work of the dispatcher.

``Putter.put(task)`` never raises: whatever happens to a file becomes a ``PutResult``, so one
bad file never stops the others (s3transfer keeps the same split: the task body is small, the
exception capture lives in one wrapper, ``Putter._guard``).

The file is read once; if its size or mtime changed since the walk, or while it was read, it
fails rather than storing a half-old mix. A PutObject carries the Content-MD5 and CRC64NVME of
the bytes read, so the server refuses a body damaged on the way; an answer's ETag computed from
the bytes (no SSE-KMS or SSE-C named) and an echoed CRC are checked too, and a damaged transfer
is sent again up to the run's attempts. Large files go up in parts (``multipart``).
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from airflow_s3pput import checksums
from airflow_s3pput.checksum_lookup import ChecksumLookup
from airflow_s3pput.checksums import ChecksumSupport
from airflow_s3pput.digest_record import DigestRecord, Lookup
from airflow_s3pput.errors import FileChanged, Interrupted, S3Error, describe_error
from airflow_s3pput.modes import (
    PUT_ALWAYS,
    PUT_CHANGED,
    SKIP_SAME_CHECKSUM,
    SKIP_UNCHANGED,
    Decision,
    RemoteObject,
    get_mode,
)
from airflow_s3pput.multipart import MultipartUploads
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.stats import PutResult
from airflow_s3pput.transport import Stored, Transport
from airflow_s3pput.upload_body import (
    BytesContent,
    Content,
    FileContent,
    guess_content_type,
    gzip_bytes,
    gzip_to_tempfile,
    should_gzip,
)
from airflow_s3pput.upload_journal import UploadJournal, journal_for

INTERRUPTED = "interrupted before its upload started"
T = TypeVar("T")


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
        #: set on Ctrl-C: files not started fail as interrupted, multipart uploads are aborted
        self.cancelled = threading.Event()
        self.mode = get_mode(options.mode)
        self.params = options.put_params()
        #: sends of one request whose bytes arrived damaged, before the file is failed
        self.attempts = options.connection.max_attempts
        self.own_record = record is None
        self.record = DigestRecord.open(options) if record is None else record  # off unless update
        self.checksum = ChecksumSupport()
        self.lookup = ChecksumLookup(transport)
        journal = journal if journal is not None else journal_for(options)
        self.multipart = MultipartUploads(options, transport, journal, self.checksum, self.cancelled)

    def close(self) -> None:
        self.multipart.close()
        if self.own_record:
            self.record.close()

    def put(self, task: PutTask) -> PutResult:
        """Upload one file and wait for it; never raises."""
        finished: Future[PutResult] = Future()
        self.put_async(task, finished.set_result)
        return finished.result()

    def put_async(self, task: PutTask, done: Callable[[PutResult], None]) -> None:
        """Upload one file; ``done`` gets its result. The file is read and compared in this
        thread (a large one is uploaded here), a PUT completes on the transport's callback."""
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
        if seen.same_as(digest, remote):
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

    def _unsent(
        self, task: PutTask, decision: Decision, size: int, seen: Lookup, digest: Callable[[], str]
    ) -> PutResult | None:
        """The result of a file that is not sent: skipped (the digest record remembers an
        unchanged one's ``digest``), or put in a dry run; ``None`` when it is to be sent."""
        if not decision.put:
            if decision.reason == SKIP_UNCHANGED.reason and task.remote is not None:
                seen.remember(size, digest(), task.remote.etag)
            return PutResult(task.path, task.key, "skip", decision.reason, looked_up=decision.looked_up)
        if self.options.dry_run:
            return PutResult(task.path, task.key, "put", decision.reason, size, looked_up=decision.looked_up)
        return None

    def _prepare_small(self, fd: int, task: PutTask, gz: bool, seen: Lookup) -> PutResult | SinglePut:
        data = _read_exactly(fd, task.size)
        _check_unchanged(fd, task, "while it was read")
        seen.confirm(fd)  # digest record
        if gz:
            data = gzip_bytes(data, self.options.gzip_level)
        content = BytesContent(data, self.options.part_size_for(len(data)))
        decision = self._decide(task, content, seen, lambda: content.md5.hex())
        unsent = self._unsent(task, decision, len(data), seen, lambda: content.md5.hex())
        if unsent is not None:
            return unsent
        params = {"ContentMD5": base64.b64encode(content.md5).decode(), **self._object_params(task.key, gz)}
        if self.checksum.on:
            params[checksums.PARAM] = checksums.encode(checksums.crc64nvme(data))
        return SinglePut(task, data, content.md5.hex(), params, decision, seen)

    def _finish(self, put: SinglePut, stored: Stored | None, error: S3Error | None) -> PutResult | _Resend:
        """The file's result from the server's answer; ``_DAMAGED`` when sending it again may
        help, ``_CHECKSUM_REFUSED`` when the store does not take the CRC64NVME header."""
        if error is not None:
            if error.damaged_in_transit:
                return _DAMAGED
            if checksums.PARAM in put.params and error.refuses_header:
                return _CHECKSUM_REFUSED
            raise error
        assert stored is not None  # the callback's contract: exactly one of them is set
        if stored.etag_differs(put.md5_hex) or stored.crc_differs(put.params.get(checksums.PARAM)):
            return _DAMAGED
        put.seen.remember(len(put.data), put.md5_hex, stored.etag)
        return put.result()

    def _without_checksum(self, put: SinglePut, error: S3Error | None) -> SinglePut:
        """``put`` with Content-MD5 alone, and the putter's later PUTs too: the store refused
        the CRC64NVME header."""
        self.checksum.refused(error)
        return replace(put, params={k: v for k, v in put.params.items() if k != checksums.PARAM})

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
            seen.confirm(fd)  # the file was read, if at all, by the decision
            unsent = self._unsent(task, decision, size, seen, lambda: content.multipart_etag(part_size))
            if unsent is not None:
                return unsent
            params = self._object_params(task.key, gz)
            # A gzipped file goes up from its spool, made whole first: the file may change since.
            unchanged = (
                (lambda: None) if spool else (lambda: _check_unchanged(fd, task, "while it was uploaded"))
            )
            landed = self.multipart.upload(source_fd, size, task.key, params, unchanged)
            seen.confirm(fd)
            seen.remember(size, landed.etag, landed.stored.etag)
            return PutResult(task.path, task.key, "put", decision.reason, size, resumed=landed.resumed,
                             looked_up=decision.looked_up)  # fmt: skip
        finally:
            if spool is not None:
                spool.close()


class _Resend:
    """What ``Putter._finish`` says when a PUT should be sent again: its bytes arrived damaged
    (``_DAMAGED``), or the store refused the checksum header (``_CHECKSUM_REFUSED``)."""


_DAMAGED = _Resend()
_CHECKSUM_REFUSED = _Resend()


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

"""Upload one file: the unit of work that a worker thread runs.

``Putter.put(task)`` never raises: whatever happens to a file becomes a ``PutResult``, so one
bad file never stops the others (s3transfer keeps the same split: the task body is small, the
exception capture lives in one wrapper, ``Putter.put``).

Integrity: every PutObject and UploadPart carries the Content-MD5 of the bytes we read, so a body
corrupted in transit is rejected by the server; the ETag it answers is checked against the MD5
(or the multipart ETag) we computed. The file is read once; if its size or mtime changed since
the walk, or while we read it, the file is reported as failed instead of storing a half-old mix.
A failed multipart upload is aborted, so no orphaned parts are left behind.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_s3pput.content import (
    BytesContent,
    FileContent,
    guess_content_type,
    gzip_bytes,
    gzip_to_tempfile,
    should_gzip,
)
from airflow_s3pput.crt import CrtRequestError, CrtSender
from airflow_s3pput.crt_client import CrtS3Client, open_crt_client
from airflow_s3pput.digest_record import DigestRecord, Lookup
from airflow_s3pput.errors import FileChanged, IntegrityError
from airflow_s3pput.etag import md5_range, multipart_etag
from airflow_s3pput.file_range import FileRange
from airflow_s3pput.modes import PUT_ALWAYS, SKIP_UNCHANGED, RemoteObject, get_mode
from airflow_s3pput.options import UploadOptions, resolve_transport
from airflow_s3pput.s3client import make_client, make_session
from airflow_s3pput.stats import PutResult

MAX_PART_WORKERS = 8
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
    params: dict[str, Any]
    reason: str


class Putter:
    """Uploads files with one S3 client and a pool of part uploaders (one per process)."""

    def __init__(self, options: UploadOptions, client: Any = None, session: Any = None) -> None:
        """``client`` and the boto3 ``session`` it came from are made here when not given (a
        ``CrtS3Client`` instead, when ``crt_client`` says no session is needed); the CRT data
        plane takes its credentials from the same session, or is the CRT client's own."""
        self.options = options
        self.mode = get_mode(options.mode)
        self.params = options.put_params()
        self._own_client: CrtS3Client | None = None
        if client is None and session is None:
            client = self._own_client = open_crt_client(options)
        if client is None:
            session = session if session is not None else make_session(options.connection)
            client = make_client(options.connection, options.threads + MAX_PART_WORKERS, session)
        self.client = client
        self.session = session
        self._part_pool: ThreadPoolExecutor | None = None
        # Single PUTs go through the CRT data plane when chosen; multipart uploads through `client`.
        self.uses_crt = not options.dry_run and resolve_transport(options.transport) == "crt"
        self._sender: CrtSender | None = None
        self._sender_lock = threading.Lock()
        # An ETag only equals the MD5 when the server stores the bytes as sent.
        self.etag_is_md5 = self.params.get("ServerSideEncryption", "AES256") == "AES256"
        self.record = DigestRecord.open(options)  # digest record: off unless update mode

    @property
    def sender(self) -> CrtSender:
        """The CRT data plane, started by the first PUT: a run that puts nothing never pays for it."""
        if isinstance(self.client, CrtS3Client):
            return self.client.sender  # one CRT client serves the run's control calls and PUTs
        with self._sender_lock:
            if self._sender is None:
                self._sender = CrtSender(self.options.connection, self.options.bucket, self.session)
            return self._sender

    @property
    def part_pool(self) -> ThreadPoolExecutor:
        if self._part_pool is None:
            workers = max(2, min(self.options.threads, MAX_PART_WORKERS))
            self._part_pool = ThreadPoolExecutor(workers, thread_name_prefix="s3pput-part")
        return self._part_pool

    def close(self) -> None:
        if self._part_pool is not None:
            self._part_pool.shutdown(wait=True)
        if self._sender is not None:
            self._sender.close()
        if self._own_client is not None:
            self._own_client.close()
        self.record.close()  # digest record

    def put(self, task: PutTask) -> PutResult:
        """Upload one file and wait for it; never raises."""
        prepared = self._guard(task, self._prepare, task)
        if isinstance(prepared, PutResult):
            return prepared
        return self._guard(task, self._send, prepared)

    def put_async(self, task: PutTask, done: Callable[[PutResult], None]) -> None:
        """Like ``put`` for a file below the multipart threshold: the file is read and
        compared in this thread, the PUT itself completes on the CRT's callback."""
        prepared = self._guard(task, self._prepare, task)
        if isinstance(prepared, PutResult):
            done(prepared)
            return
        if not self.uses_crt:
            done(self._guard(task, self._send, prepared))
            return
        sender = self._guard(task, lambda: self.sender)
        if isinstance(sender, PutResult):  # the CRT could not start
            done(sender)
            return

        def finished(response: dict[str, str] | None, error: Exception | None) -> None:
            done(self._guard(task, self._finish, prepared, response, error))

        sender.put_async(task.key, prepared.data, prepared.params, finished)

    @staticmethod
    def _guard(task: PutTask, step: Callable[..., T], *args: Any) -> T | PutResult:
        """Run one step for ``task``; whatever goes wrong becomes that file's failure."""
        try:
            return step(*args)
        except FileChanged as exc:
            return PutResult(task.path, task.key, "fail", error=str(exc))
        except FileNotFoundError:
            return PutResult(task.path, task.key, "fail", error="file disappeared before upload")
        except OSError as exc:
            return PutResult(task.path, task.key, "fail", error=f"cannot read: {exc.strerror or exc}")
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

    def _prepare_small(self, fd: int, task: PutTask, gz: bool, seen: Lookup) -> PutResult | SinglePut:
        data = _read_exactly(fd, task.size)
        _check_unchanged(fd, task, "while it was read")
        if gz:
            data = gzip_bytes(data, self.options.gzip_level)
        content = BytesContent(data, self.options.part_size_for(len(data)))
        decision = self.mode.decide(content, task.remote)
        seen.remember(fd, content, with_md5=decision.put)  # digest record
        if not decision.put:
            return PutResult(task.path, task.key, "skip", decision.reason)
        if self.options.dry_run:
            return PutResult(task.path, task.key, "put", decision.reason, len(data))
        params = {"ContentMD5": base64.b64encode(content.md5).decode(), **self._object_params(task.key, gz)}
        return SinglePut(task, data, content.md5.hex(), params, decision.reason)

    def _send(self, put: SinglePut) -> PutResult:
        if self.uses_crt:
            response = self.sender.put_object(put.task.key, put.data, put.params)
        else:
            response = self.client.put_object(
                Bucket=self.options.bucket, Key=put.task.key, Body=put.data, **put.params
            )
        return self._finish(put, response, None)

    def _finish(self, put: SinglePut, response: dict[str, Any] | None, error: Exception | None) -> PutResult:
        if error is not None:
            raise error
        assert response is not None
        self._check_etag(response, put.md5_hex)
        return PutResult(put.task.path, put.task.key, "put", put.reason, len(put.data))

    def _put_large(self, fd: int, task: PutTask, gz: bool, seen: Lookup) -> PutResult:
        spool = gzip_to_tempfile(fd, self.options.gzip_level) if gz else None
        try:
            if spool is not None:
                _check_unchanged(fd, task, "while it was compressed")
            source_fd = spool.fileno() if spool is not None else fd
            size = os.fstat(source_fd).st_size
            content = FileContent(source_fd, size, self.options.part_size_for(size))
            decision = self.mode.decide(content, task.remote)
            if not decision.put:
                seen.remember(fd, content)  # digest record
                return PutResult(task.path, task.key, "skip", decision.reason)
            if self.options.dry_run:
                return PutResult(task.path, task.key, "put", decision.reason, size)
            params = self._object_params(task.key, gz)
            etag = self._multipart(source_fd, size, task, params, verify_fd=None if spool else fd)
            seen.remember(fd, content, multipart=etag)  # digest record
            return PutResult(task.path, task.key, "put", decision.reason, size)
        finally:
            if spool is not None:
                spool.close()

    def _multipart(
        self, fd: int, size: int, task: PutTask, extra: dict[str, Any], verify_fd: int | None
    ) -> tuple[int, str]:
        """Upload ``size`` bytes of ``fd`` in parts; return the part size and the local ETag."""
        bucket, key = self.options.bucket, task.key
        part_size = self.options.part_size_for(size)
        self._abort_leftovers(key)
        upload_id = self.client.create_multipart_upload(Bucket=bucket, Key=key, **extra)["UploadId"]
        try:
            futures = [
                self.part_pool.submit(
                    self._upload_part, fd, key, upload_id, number, offset, min(part_size, size - offset)
                )
                for number, offset in enumerate(range(0, size, part_size), start=1)
            ]
            parts = [f.result() for f in futures]
            if verify_fd is not None:
                _check_unchanged(verify_fd, task, "while it was uploaded")
            response = self.client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag, _ in parts]},
            )
        except BaseException:
            self._abort(key, upload_id)
            raise
        etag = multipart_etag([digest for _, _, digest in parts])
        self._check_etag(response, etag)
        return part_size, etag

    def _upload_part(
        self, fd: int, key: str, upload_id: str, number: int, offset: int, length: int
    ) -> tuple[int, str, bytes]:
        body: bytes | FileRange
        if isinstance(self.client, CrtS3Client):  # the CRT copies the body: let it read the file
            digest, body = md5_range(fd, offset, length), FileRange(fd, offset, length)
        else:
            body = os.pread(fd, length, offset)
            if len(body) != length:
                raise FileChanged(f"file shrank while it was uploaded (part {number})")
            digest = hashlib.md5(body, usedforsecurity=False).digest()
        response = self.client.upload_part(
            Bucket=self.options.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            ContentMD5=base64.b64encode(digest).decode(),
        )
        return number, response["ETag"], digest

    def _abort_leftovers(self, key: str) -> None:
        """Abort the open multipart uploads of ``key`` that an earlier run could not abort.

        When the server was unreachable at the time, a failed upload's abort failed as well;
        its parts would be kept (and billed) forever. Best effort, like ``_abort``.
        """
        with contextlib.suppress(Exception):
            listing = self.client.list_multipart_uploads(Bucket=self.options.bucket, Prefix=key)
            for upload in listing.get("Uploads", []):
                if upload["Key"] == key:
                    self._abort(key, upload["UploadId"])

    def _abort(self, key: str, upload_id: str) -> None:
        # Best effort: the error that made us abort is the one to report.
        with contextlib.suppress(Exception):
            self.client.abort_multipart_upload(Bucket=self.options.bucket, Key=key, UploadId=upload_id)

    def _check_etag(self, response: dict[str, Any], expected: str) -> None:
        etag = str(response.get("ETag", "")).strip('"').lower()
        if self.etag_is_md5 and etag and etag != expected:
            raise IntegrityError(f"server ETag {etag} does not match the uploaded bytes ({expected})")


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


def describe_error(exc: BaseException) -> str:
    """One line for a failed request, without request details that could carry secrets."""
    from botocore.exceptions import ClientError

    if isinstance(exc, CrtRequestError):
        return str(exc)
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = error.get("Message") or ""
        return f"{code}: {message}".strip().rstrip(":")
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""A journal of the multipart uploads this machine started and did not finish.

An upload whose process was killed (``kill -9``, a lost Airflow worker, a second Ctrl-C) stays
open on the server, and its parts are stored and billed until someone aborts it. Listing the
bucket's open uploads cannot tell ours from another writer's; this journal can: a run aborts
the uploads that a process of this host started under its prefix, never finished, and that is
no longer running; nothing else (two mapped tasks on one worker never abort each other's).
Such an upload under another prefix of the bucket is aborted once it is ``STALE_AFTER_SECONDS``
old: a DAG writing ``exports/{{ ds }}/`` never runs the same prefix again, while a retry of the
task that left it (minutes later) may still resume it until then. Uploads a lost host started
are that host's: an S3 lifecycle rule with ``AbortIncompleteMultipartUpload`` covers them (see
the README).

One append-only file per endpoint and bucket in the cache directory, one JSON line a record;
each record is one ``write`` under ``O_APPEND``, so runs in parallel (two mapped tasks on one
worker) never interleave a line. A journal that cannot be written or read only means that no
leftover is aborted: it is never a reason to fail an upload.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import NamedTuple

from airflow_s3pput.cache_dir import cache_dir
from airflow_s3pput.errors import S3Error
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.transport import Transport
from airflow_s3pput.walker import KeyRange

#: rewrite the journal without its finished records once it holds this many lines
COMPACT_LINES = 10_000
#: a gone run's upload under another prefix than the run's is aborted once it is this old
STALE_AFTER_SECONDS = 24 * 3600


#: the runs of this process that are still going (a run that ended leaves only leftovers)
_RUNNING: set[str] = set()


def journal_for(options: UploadOptions) -> UploadJournal:
    """The journal of the run's endpoint and bucket, in the user's cache directory."""
    return UploadJournal(
        cache_dir(options.cache_dir), options.connection.endpoint_url or "aws", options.bucket
    )


class UploadJournal:
    """The journal as one run (of one process) writes it; ``close`` when the run ends."""

    def __init__(self, directory: Path, endpoint: str, bucket: str) -> None:
        name = hashlib.sha256(f"{endpoint}\n{bucket}".encode()).hexdigest()[:24]
        self.path = directory / f"open-uploads-{name}.jsonl"
        self.run = os.urandom(16).hex()
        _RUNNING.add(self.run)

    def close(self) -> None:
        _RUNNING.discard(self.run)

    def starting(self, key: str) -> str:
        """Before CreateMultipartUpload: its answer can be lost (a reset after the server
        acted), and then only this intent says that the key's new open upload is ours."""
        token = "intent-" + os.urandom(16).hex()
        self._start(token, key)
        return token

    def started(self, token: str, key: str, upload_id: str) -> None:
        self._start(upload_id, key)
        self.finished(token)

    def finished(self, upload_id: str) -> None:
        self._append({"op": "end", "id": upload_id})

    def adopt(self, key: str, upload_id: str) -> None:
        """This run carries on an upload another process started (it is resumed): it is
        written down as this run's from now on."""
        self._start(upload_id, key)

    def owner(self, upload_id: str) -> str:
        """Whose ``upload_id`` is: ``"running"`` (a run of this host still going, not this
        one), ``"left"`` (a run of this host that ended without finishing it), or ``"unknown"``
        (another host's, another tool's, or this run's own)."""
        entry = self._open_uploads().get(upload_id)
        if entry is None or entry.owner.endswith(f":{self.run}"):
            return "unknown"
        return "left" if _gone(entry.owner) else "running"

    def leftovers(
        self, prefix: str, key_range: KeyRange = KeyRange(), stale_before: float | None = None
    ) -> list[tuple[str, str]]:
        """(key, upload id) of the uploads that no record says ended, whose process, on this
        host, is gone, and that are under ``prefix`` in ``key_range`` or, with ``stale_before``,
        were started before that time. An id that starts with ``intent-`` stands for an upload
        whose id never reached us (see ``starting``)."""
        return [
            (entry.key, upload_id)
            for upload_id, entry in self._open_uploads().items()
            if (
                (entry.key.startswith(prefix) and entry.key in key_range)
                or (stale_before is not None and entry.at < stale_before)
            )
            and _gone(entry.owner)
        ]

    def claimed(self) -> set[str]:
        """The upload ids some record still holds open, whoever's."""
        return set(self._open_uploads())

    def compact(self) -> None:
        """Drop the finished records, once the file has grown (under a lock: one compactor)."""
        with contextlib.suppress(OSError), open(self.path, encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if sum(1 for _ in handle) < COMPACT_LINES:
                return
            still_open = self._open_uploads()
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text("".join(
                json.dumps({"op": "start", "id": upload_id, **entry._asdict()}) + "\n"
                for upload_id, entry in still_open.items()
            ))  # fmt: skip
            os.replace(temporary, self.path)

    def _start(self, upload_id: str, key: str) -> None:
        owner = f"{_this_process()}:{self.run}"
        self._append({"op": "start", "id": upload_id, "key": key, "owner": owner, "at": int(time.time())})

    def _open_uploads(self) -> dict[str, _Entry]:
        entries: dict[str, _Entry] = {}
        with contextlib.suppress(OSError), open(self.path, encoding="utf-8") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                    if record["op"] == "start":
                        # A record without a time (an older version's) counts as old.
                        at = float(record.get("at", 0))
                        entries[record["id"]] = _Entry(str(record["key"]), str(record["owner"]), at)
                    else:
                        entries.pop(record["id"], None)
                except (ValueError, KeyError, TypeError):
                    continue  # a torn or foreign line: skip it, never guess
        return entries

    def _append(self, record: dict[str, object]) -> None:
        line = (json.dumps(record) + "\n").encode()
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


class _Entry(NamedTuple):
    key: str
    owner: str
    at: float  # when it was started, seconds since the epoch


def abort_leftovers(
    transport: Transport, journal: UploadJournal, prefix: str, key_range: KeyRange = KeyRange()
) -> None:
    """Abort the multipart uploads that a killed process or a failed run of this host left
    open (see the module's docstring) and that this run did not carry on: those under
    ``prefix`` in the run's ``key_range``, and stale ones under any prefix. Best effort: it
    never fails the run."""
    leftovers = journal.leftovers(prefix, key_range, stale_before=time.time() - STALE_AFTER_SECONDS)
    claimed = journal.claimed() if leftovers else set()
    for key, upload_id in leftovers:
        try:
            _abort(transport, key, upload_id, claimed)
        except S3Error as exc:
            if not exc.no_such_upload:
                continue  # not answered now: the next run tries again
        journal.finished(upload_id)
    journal.compact()


def _abort(transport: Transport, key: str, upload_id: str, claimed: set[str]) -> None:
    """Abort ``upload_id``, or for an intent (the CreateMultipartUpload answer was lost, so
    the journal has no id), the key's one open upload if no record claims it."""
    if not upload_id.startswith("intent-"):
        transport.abort_multipart(key, upload_id)
        return
    candidates = [u.upload_id for u in transport.open_uploads(key) if u.key == key]
    if len(candidates) == 1 and candidates[0] not in claimed:
        transport.abort_multipart(key, candidates[0])


def _process_started(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, from /proc), or None if it is not running.
    A zombie is not running: a killed run's worker processes may wait unreaped for ever where
    the container's first process reaps no orphans."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else fields[19]
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)  # no /proc (macOS): alive or not, without the start time
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


def _this_process() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_started(pid) or ''}"


def _gone(owner: str) -> bool:
    """Whether the run that wrote ``owner`` has ended: its process has (a pid reused by
    another process has another start time), or, in this very process, the run did. Another
    host's processes are never judged gone from here."""
    try:
        host, pid_text, started, run = owner.rsplit(":", 3)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    now = _process_started(pid)
    if pid == os.getpid() and now == started:
        return run not in _RUNNING
    return now is None or (bool(started) and bool(now) and now != started)

"""The digest record: what we know each file's object holds, so an unchanged file is never read.

``update`` decides by content, which would make each re-run read the whole tree. Like git's
index, restic's parent snapshot and borg's files cache, this module remembers per file its stat
(device, inode, size, mtime, ctime), the digest of the bytes we store for it (their MD5, or the
multipart ETag at our part size) and the ETag of the object that holds those bytes (the answer
to our PUT, or the listed ETag they matched): an MD5, an ``md5-N``, or an opaque value from an
SSE-KMS, SSE-C or DSSE-KMS bucket.

One predicate decides (``vouches``): a file whose stat is the recorded one, listed with the
recorded size and ETag, is unchanged, and is not opened. The decision stays content-exact:

* ctime cannot be set by users: a same-size edit with its mtime restored changes ctime; a file
  replaced by a rename, copied back or moved to another device has another inode or device.
* Racy records are not trusted (git's "racy clean" rule): a record is used only when the file's
  mtime and ctime are older, by ``RACY_MARGIN_NS``, than the moment its stat was taken before
  the read, so a later change within the same timestamp tick cannot hide.
* A listed ETag other than the recorded one means someone else wrote the object: the file is
  read and compared (or put) as if nothing were recorded.
* Every failure means "read the file", never "skip it": a missing record, one from another
  scope, a locked, unreadable or corrupt database (set aside and recreated, with one warning).

Where: one SQLite database per user, ``digests-v2.sqlite`` in the cache directory. Records are
keyed by a scope (machine, endpoint, bucket, prefix and the gzip settings, which change the
stored bytes) and the S3 key. Writes are buffered and committed in short transactions; WAL mode
and a busy timeout let several runs (mapped tasks on one worker) share the database.

Usage::

    record = DigestRecord.open(options)        # off for dry runs, add and stupid modes
    skip = record.unchanged(entries, remote)   # the engine: a walk group's unchanged keys
    seen = record.look(path, key, listed)      # the putter: stat before opening the file
    seen.confirm(fd)                           # after the read: the file is the one looked at
    seen.same_as(read_digest, listed)          # the bytes and the object are the recorded ones
    seen.remember(stored_size, digest, etag)   # after the put (or the match) of those bytes
    record.close()
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from airflow_s3pput.cache_dir import cache_dir
from airflow_s3pput.walker import FileEntry, join_key

if TYPE_CHECKING:
    from airflow_s3pput.modes import RemoteObject
    from airflow_s3pput.options import UploadOptions

log = logging.getLogger(__name__)

RECORD_FILE = "digests-v2.sqlite"
#: a record is trusted only when the file's timestamps are this much older than its stat: more
#: than the coarsest timestamp granularity in common use (FAT's 2 s; ext4, xfs and tmpfs stamp
#: with the kernel's coarse clock). A record too fresh is simply re-made on the next run.
RACY_MARGIN_NS = 2_000_000_000
#: buffered records are committed every this many records or seconds, whichever comes first
FLUSH_ROWS = 500
FLUSH_SECONDS = 1.0
#: how long a write waits for another run's transaction
BUSY_TIMEOUT_SECONDS = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    scope INTEGER NOT NULL,
    key TEXT NOT NULL,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    sampled_ns INTEGER NOT NULL,
    stored_size INTEGER NOT NULL,
    digest TEXT NOT NULL,
    etag TEXT NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID
"""
_COLUMNS = "dev, ino, size, mtime_ns, ctime_ns, sampled_ns, stored_size, digest, etag"
# One query for a whole walk group: the keys travel as one JSON array, whatever their number.
_SELECT_KEYS = f"""
SELECT key, {_COLUMNS} FROM digests
WHERE scope = ? AND key IN (SELECT value FROM json_each(?))
"""
_UPSERT = f"INSERT OR REPLACE INTO digests (scope, key, {_COLUMNS}) VALUES ({', '.join('?' * 11)})"


def _i64(value: int) -> int:
    """An unsigned 64-bit stat field (st_dev, st_ino) as the signed integer SQLite stores."""
    return value - (1 << 64) if value >= 1 << 63 else value


class FileStat(NamedTuple):
    """What identifies a file's content without reading it. The path is not part of it: a
    device and inode name one file on a machine (a hard link is the same content)."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        return cls(_i64(st.st_dev), _i64(st.st_ino), st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    @classmethod
    def of_entry(cls, e: FileEntry) -> FileStat:
        return cls(_i64(e.dev), _i64(e.ino), e.size, e.mtime_ns, e.ctime_ns)

    def racy(self, sampled_ns: int) -> bool:
        """Whether a change after ``sampled_ns`` could leave these timestamps unchanged."""
        return max(self.mtime_ns, self.ctime_ns) >= sampled_ns - RACY_MARGIN_NS


@dataclass(frozen=True, slots=True)
class Entry:
    """One file's record: its stat when read, the digest of the bytes we store for it, and the
    ETag of the object that holds those bytes."""

    stat: FileStat
    sampled_ns: int  # when the stat was taken, before the read
    stored_size: int  # after gzip
    digest: str  # hex MD5, or ``md5-N`` for a file sent in parts
    etag: str  # as the server gives it, without quotes, in lower case

    def row(self, key: str, scope: int) -> tuple[object, ...]:
        return (scope, key, *self.stat, self.sampled_ns, self.stored_size, self.digest, self.etag)

    @classmethod
    def from_row(cls, row: tuple[object, ...]) -> Entry:
        """A stored row's entry (without scope and key); TypeError or ValueError if malformed."""
        stat = FileStat(*(int(v) for v in row[:5]))  # type: ignore[call-overload]
        return cls(stat, int(row[5]), int(row[6]), str(row[7]), str(row[8]))  # type: ignore[call-overload]


def vouches(entry: Entry, stat: FileStat, listed: RemoteObject) -> bool:
    """Whether ``entry`` is the record of this very file, unchanged since (and not racy), and the
    listed object is the one that holds its bytes: then the file need not be read."""
    return entry.stat == stat and not stat.racy(entry.sampled_ns) and _holds(listed, entry)


def _holds(listed: RemoteObject, entry: Entry) -> bool:
    """Whether ``listed`` is the object ``entry`` records as holding its bytes."""
    return listed.size == entry.stored_size and _etag(listed.etag) == entry.etag


def _etag(etag: str) -> str:
    return etag.strip('"').lower()


@dataclass(slots=True)
class Lookup:
    """One file as seen just before it is opened: its stat (None: the record is off or the file
    could not be stat'ed) and its record if there is one.

    ``unchanged``: the record vouches for the file, which need not be opened. ``intact``: the
    file read is the one looked at (see ``confirm``).
    """

    _record: DigestRecord
    key: str
    sampled_ns: int
    stat: FileStat | None
    entry: Entry | None = None
    unchanged: bool = False
    intact: bool = field(default=False, init=False)

    def confirm(self, fd: int) -> None:
        """After the read: whether the open file ``fd`` is the one looked at, unchanged since.
        Only then is what was read from it remembered."""
        with contextlib.suppress(OSError):
            self.intact = self.stat is not None and FileStat.of(os.fstat(fd)) == self.stat

    def same_as(self, read_digest: Callable[[], str], listed: RemoteObject | None) -> bool:
        """Whether ``listed`` is the object recorded as holding this file's bytes and the bytes
        are still those (``read_digest`` reads them, only then): a file touched without a
        change, on any kind of bucket."""
        entry = self.entry
        if entry is None or listed is None or not _holds(listed, entry):
            return False
        return read_digest() == entry.digest

    def remember(self, stored_size: int, digest: str, etag: str) -> None:
        """Record that the object ``etag`` holds the bytes read (``digest``). Never raises: a
        record that cannot be written is only a cache miss."""
        stat = self.stat
        if stat is None or not self.intact or not etag or stat.racy(self.sampled_ns):
            return  # a racy record would never be trusted: do not write it
        self._record.store(self.key, Entry(stat, self.sampled_ns, stored_size, digest, _etag(etag)))


class DigestRecord:
    """The record of one run's scope in the per-user database; thread-safe. One per process:
    the engine opens it and hands it to the putter of its own process."""

    def __init__(
        self, path: Path | None, scope: str, *, trust: bool = True, clock: Callable[[], int] = time.time_ns
    ) -> None:
        """``path`` None: a record that is off (every file is read, nothing is written).
        ``trust`` False (``--rehash``): read every file, but still record what was hashed."""
        self.path = path
        # The scope as the 64-bit integer that keys its records.
        self.scope = int.from_bytes(hashlib.sha256(scope.encode()).digest()[:8], "big", signed=True)
        self.trust = trust
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[object, ...]] = {}
        self._last_flush = time.monotonic()
        if path is not None:
            try:
                self._db, self._identity = _open(path)
            except (sqlite3.Error, OSError) as exc:
                _warn_once("open", f"digest record off: cannot open {path} ({exc}); files are read")

    @classmethod
    def open(cls, options: UploadOptions) -> DigestRecord:
        """The record ``options`` call for: off for dry runs, modes other than ``update`` and
        ``digest_cache=False``; off, with one warning, when its directory is not usable."""
        if not options.digest_cache or options.dry_run or options.mode != "update":
            return cls(None, "")
        try:
            directory = cache_dir(options.cache_dir)
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except (OSError, RuntimeError) as exc:  # RuntimeError: no home directory
            _warn_once("cache-dir", f"digest record off: cannot use its directory ({exc}); files are read")
            return cls(None, "")
        return cls(directory / RECORD_FILE, scope_of(options), trust=not options.rehash)

    @property
    def enabled(self) -> bool:
        return self._db is not None

    def unchanged(self, entries: Iterable[FileEntry], remote: Mapping[str, RemoteObject]) -> set[str]:
        """The keys of a walk group that need not be read: the record vouches for each, with
        the stat the walk took. One query for the group; any database error means "read them"."""
        if not self.trust:
            return set()
        walked = {e.key: e for e in entries if e.key in remote and e.ctime_ns}  # 0: no stat taken
        records = self._fetch(list(walked))
        return {
            key
            for key, entry in records.items()
            if vouches(entry, FileStat.of_entry(walked[key]), remote[key])
        }

    def look(self, path: str, key: str, remote: RemoteObject | None = None) -> Lookup:
        """Stat the file at ``path`` (uploaded as ``key``) and fetch its record when there is
        an object to compare with."""
        sampled_ns = self.clock()  # before the stat: see FileStat.racy
        stat = None
        if self.enabled:
            with contextlib.suppress(OSError):  # not vouched for: opening it reports the problem
                stat = FileStat.of(os.stat(path))
        if stat is None or remote is None:  # nothing recorded to compare: the file is read
            return Lookup(self, key, sampled_ns, stat)
        # With --rehash (trust off) the record still tells, once the file is read, whether the
        # listed object holds these bytes: on a bucket with opaque ETags nothing else can.
        entry = self._fetch([key]).get(key)
        unchanged = self.trust and entry is not None and vouches(entry, stat, remote)
        return Lookup(self, key, sampled_ns, stat, entry, unchanged)

    def _fetch(self, keys: list[str]) -> dict[str, Entry]:
        try:
            with self._lock:
                if not keys or self._db is None:
                    return {}
                rows = self._db.execute(_SELECT_KEYS, (self.scope, json.dumps(keys))).fetchall()
        except sqlite3.Error as exc:
            self._failed(exc)
            return {}
        entries = {}
        for row in rows:
            with contextlib.suppress(TypeError, ValueError):  # a row written by something else
                entries[str(row[0])] = Entry.from_row(row[1:])
        return entries

    def store(self, key: str, entry: Entry) -> None:
        """Buffer ``entry`` as the record of ``key``, for the next ``flush``. Never commits here:
        the putter stores from the transport's callback threads, and a commit there stalls the
        transport's event loop."""
        if not self.enabled:
            return
        with self._lock:
            self._pending[key] = entry.row(key, self.scope)

    def flush_if_due(self) -> None:
        """``flush`` once ``FLUSH_ROWS`` records wait or ``FLUSH_SECONDS`` have passed: the
        run's own thread calls this as results arrive."""
        with self._lock:
            due = len(self._pending) >= FLUSH_ROWS or time.monotonic() - self._last_flush >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        """Commit the buffered records in one short transaction."""
        try:
            with self._lock:
                rows, self._pending = list(self._pending.values()), {}
                self._last_flush = time.monotonic()
                if rows and self._db is not None:
                    # IMMEDIATE: the write lock is taken (or waited for) before anything is
                    # read, so another run's commit never turns this one into an error.
                    self._db.execute("BEGIN IMMEDIATE")
                    with self._db:  # commits, or rolls back on any error
                        self._db.executemany(_UPSERT, rows)
        except sqlite3.Error as exc:
            self._failed(exc)
        except (OverflowError, ValueError):
            pass  # a value SQLite cannot hold: those records are lost, nothing else

    def close(self) -> None:
        """Commit what is buffered and close the database; the record is off afterwards."""
        self.flush()
        with self._lock:
            if self._db is not None:
                self._db.close()
            self._db = None

    def _failed(self, exc: sqlite3.Error) -> None:
        """A lookup or commit failed: a damaged database is set aside (the next run starts a new
        one) and the record is off for this run; a busy one costs only the lookups that failed."""
        if not _is_corrupt(exc):
            _warn_once("busy", f"digest record: {exc}; the files concerned are read again")
            return
        with self._lock:
            if self._db is None:
                return
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
            self._pending.clear()
        if self.path is not None:
            _set_aside(self.path, exc, self._identity)


def _open(path: Path) -> tuple[sqlite3.Connection, tuple[int, int]]:
    """``_connect``; a damaged database is set aside and a new one started in its place."""
    try:
        return _connect(path)
    except sqlite3.Error as exc:
        if not _is_corrupt(exc):
            raise
        _set_aside(path, exc, None)
        return _connect(path)


def _connect(path: Path) -> tuple[sqlite3.Connection, tuple[int, int]]:
    """The database at ``path``, and the identity (device, inode) of the file opened."""
    if not path.exists():
        # Created private: the record lists the user's file names.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        # WAL: readers never wait for a writer. NORMAL: a commit does not fsync (a cache may
        # lose its last records on power loss; it stays consistent).
        _switch_to_wal(db)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        # Read the table once: a damaged file fails here, where it is set aside, not mid-run.
        db.execute("SELECT count(*) FROM (SELECT 1 FROM digests LIMIT 1)").fetchone()
        st = os.stat(path)
    except BaseException:
        db.close()
        raise
    return db, (st.st_dev, st.st_ino)


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """SQLite answers a journal-mode switch that races another connection's with SQLITE_BUSY at
    once, without its busy handler (two runs creating the record together): wait here instead."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchone()
            return
        except sqlite3.OperationalError as exc:
            if not _is_kind(exc, (5,), ("locked",)) or time.monotonic() > deadline:  # SQLITE_BUSY
                raise
            time.sleep(0.01)


def _is_corrupt(exc: sqlite3.Error) -> bool:
    return _is_kind(exc, (11, 26), ("malformed", "not a database"))  # SQLITE_CORRUPT, SQLITE_NOTADB


def _is_kind(exc: sqlite3.Error, codes: tuple[int, ...], words: tuple[str, ...]) -> bool:
    """Whether ``exc``'s primary result code is one of ``codes``; on Python < 3.11, which has no
    error code, whether its message holds one of ``words``."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (int(code) & 0xFF) in codes
    text = str(exc).lower()
    return any(word in text for word in words)


def _set_aside(path: Path, exc: sqlite3.Error, identity: tuple[int, int] | None) -> None:
    """Rename a damaged database (and its WAL) out of the way, unless another run already did
    and started a new one (``identity``: the file we opened)."""
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}-{os.getpid()}")
    try:
        st = os.stat(path)
        if identity is not None and (st.st_dev, st.st_ino) != identity:
            return
        os.replace(path, aside)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{path}{suffix}", f"{aside}{suffix}")
    except OSError:
        pass
    _warn_once(
        "corrupt", f"digest record {path} is damaged ({exc}): set aside as {aside.name}; files are read"
    )


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(kind: str, message: str) -> None:
    with _warned_lock:
        if kind in _warned:
            return
        _warned.add(kind)
    log.warning("s3pput: warning: %s", message)


@lru_cache(maxsize=1)
def machine_id() -> str:
    """This machine: its host name and, where there is one, its systemd/dbus machine id."""
    ident = ""
    for candidate in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError):
            ident = Path(candidate).read_text().strip()
        if ident:
            break
    return f"{socket.gethostname()}/{ident}"


def scope_of(options: UploadOptions) -> str:
    """What a remembered digest is valid for: the machine (inode numbers are per machine), the
    destination (endpoint, bucket, prefix) and what changes the stored bytes (gzip settings)."""
    gzip = [options.gzip_level, sorted(options.gzip_types), options.content_type] if options.gzip else None
    scope = {
        "machine": machine_id(),
        "endpoint": (options.connection.endpoint_url or "").rstrip("/").lower(),
        "bucket": options.bucket,
        "prefix": join_key(options.prefix, ""),
        "gzip": gzip,
    }
    return json.dumps(scope, sort_keys=True)


__all__ = ["DigestRecord", "Entry", "FileStat", "Lookup", "scope_of", "vouches"]

"""The digest record: what we hashed, per file, so that an unchanged file is never read twice.

``update`` decides by content: it compares the MD5 (or multipart ETag) of the bytes we would
store with the listed object's ETag. Reading every file for that makes each re-run read the
whole tree (measured: 2 GiB read, 1.5 s, for a 4 x 512 MiB + 2,000-file tree where s5cmd's
size-and-mtime ``sync`` reads nothing). Like git's index, restic's parent snapshot and borg's
files cache, this module remembers, per file, its identity and stat (device, inode, size,
mtime, ctime) with the digests computed from its bytes. A file whose stat is identical to its
record is compared by the remembered digest, without reading it; anything else is read and
hashed as before. The decision stays content-exact because:

* ctime cannot be set by users: a same-size edit with its mtime restored (``touch -r``,
  ``os.utime``) changes ctime, so the record no longer matches; a file replaced by a rename,
  copied back or moved to another device has another inode or device.
* Racy records are not trusted (git's "racy clean" rule): a record is used only when the file's
  mtime and ctime are older, by ``RACY_MARGIN_NS``, than the moment its stat was taken before the
  read. A later change within the same timestamp tick would leave the stat unchanged; with the
  margin, any later change gets a timestamp the record does not hold. A file with a timestamp
  in the future (clock skew) is never trusted.
* Every failure means "read the file", never "skip it": a missing record, one from another
  scope, a locked, unreadable or corrupt database (set aside and recreated, with one warning).

Where: one SQLite database per user, ``digests-v1.sqlite`` in ``--cache-dir``, else
``$S3PPUT_CACHE_DIR``, else ``$XDG_CACHE_HOME/s3pput``, else ``~/.cache/s3pput``. Records are
keyed by a scope (machine, endpoint, bucket, prefix and the gzip settings, which change the
stored bytes) and the S3 key, so that runs elsewhere never share an answer. The walk yields
keys in sorted order, so records are read in key order (a walk group's at once, or
``WINDOW_ROWS`` at a time ahead of the putter's lookups), and no run loads the record into
memory. Writes are buffered and committed in short transactions
(every ``FLUSH_ROWS`` records or ``FLUSH_SECONDS``); WAL mode and a busy timeout let several runs
(two mapped tasks on one worker) share the database.

Usage: the engine asks for a walk group at once, with the stat the walk took; the putter asks
for each file it is then given, with a stat of its own::

    record = DigestRecord.open(options)            # off for dry runs, add and stupid modes
    skip = record.unchanged(entries, remote)       # the engine: keys not to hand to the putter
    seen = record.look(path, key, remote)          # the putter: before opening the file
    if seen.unchanged: ...                         # skip: the remembered digest is the ETag
    seen.remember(fd, content)                     # after hashing what was read from fd
    record.close()
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow_s3pput.cache_dir import cache_dir
from airflow_s3pput.walker import FileEntry, join_key

if TYPE_CHECKING:
    from airflow_s3pput.content import Content
    from airflow_s3pput.modes import RemoteObject
    from airflow_s3pput.options import UploadOptions

log = logging.getLogger(__name__)

RECORD_FILE = "digests-v1.sqlite"
#: a record is trusted only when the file's timestamps are this much older than its stat: more
#: than the coarsest timestamp granularity in common use (FAT's 2 s; ext4, xfs and tmpfs stamp
#: with the kernel's coarse clock, one tick of 1-10 ms). A record too fresh is simply re-made on
#: the next run.
RACY_MARGIN_NS = 2_000_000_000
#: records read ahead in one query: one query per file costs ~10 us (a read transaction each);
#: one per 512 files, ~0.02 us a file (measured on 100,000 lookups)
WINDOW_ROWS = 512
#: buffered records are committed every this many records or seconds, whichever comes first
FLUSH_ROWS = 500
FLUSH_SECONDS = 1.0
#: how long a write waits for another run's transaction (each is a few milliseconds)
BUSY_TIMEOUT_SECONDS = 10.0
#: SQLite result codes that mean the file is damaged or not a database
_CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB

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
    md5 TEXT,
    multipart TEXT NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID
"""
_COLUMNS = "dev, ino, size, mtime_ns, ctime_ns, sampled_ns, stored_size, md5, multipart"
#: the records of the keys from ``?`` on, in key order: the walk asks for keys in that order
_SELECT_FROM = f"SELECT key, {_COLUMNS} FROM digests WHERE scope = ? AND key >= ? ORDER BY key LIMIT ?"
_SELECT_ONE = f"SELECT key, {_COLUMNS} FROM digests WHERE scope = ? AND key = ?"
_COUNT_UP_TO = "SELECT count(*) FROM (SELECT 1 FROM digests WHERE scope = ? LIMIT ?)"
#: the keys of a walk group whose record vouches for them, NUL-separated: ``_row_vouches`` in
#: SQL. ``?1`` is a JSON object, key -> "dev ino size mtime_ns ctime_ns listed-size listed-MD5"
#: (integers as text compare as the integers do). CROSS JOIN fixes the loop order (the group
#: outside, each record found by its primary key): left to itself, SQLite scanned the scope's
#: records for each entry (minutes for 100,000). 1,000 entries take ~3 ms, during which the
#: GIL is free.
_SELECT_UNCHANGED = """
SELECT group_concat(d.key, char(0))
FROM json_each(?1) AS e CROSS JOIN digests AS d ON d.scope = ?2 AND d.key = e.key
WHERE e.value = d.dev || ' ' || d.ino || ' ' || d.size || ' ' || d.mtime_ns || ' ' || d.ctime_ns
      || ' ' || d.stored_size || ' ' || d.md5
  AND max(d.mtime_ns, d.ctime_ns) < d.sampled_ns - ?3
"""
#: the records (not racy) of the keys in ``?2``..``?3``, at most ``?5``: "key \1 signature" (as
#: ``_SELECT_UNCHANGED``'s, with the stored MD5), NUL-separated, and how many there were
_SELECT_RANGE = """
SELECT count(*), group_concat(item, char(0)) FROM (
  SELECT key || char(1) || dev || ' ' || ino || ' ' || size || ' ' || mtime_ns || ' ' || ctime_ns
         || ' ' || stored_size || ' ' || md5 AS item
  FROM digests WHERE scope = ?1 AND key >= ?2 AND key <= ?3
    AND max(mtime_ns, ctime_ns) < sampled_ns - ?4
  ORDER BY key LIMIT ?5
)
"""
#: records read at most per key of a group by ``_SELECT_RANGE``
RANGE_ROWS_PER_KEY = 2
_RANGE_SLACK = 64
#: the same for listed multipart ETags: "... listed-size md5-N", found among the record's
_SELECT_UNCHANGED_MULTIPART = """
SELECT group_concat(key, char(0)) FROM (
  SELECT d.key AS key, e.value AS listed, d.multipart AS multipart,
         d.dev || ' ' || d.ino || ' ' || d.size || ' ' || d.mtime_ns || ' ' || d.ctime_ns
         || ' ' || d.stored_size || ' ' AS stat
  FROM json_each(?1) AS e CROSS JOIN digests AS d ON d.scope = ?2 AND d.key = e.key
  WHERE max(d.mtime_ns, d.ctime_ns) < d.sampled_ns - ?3
) WHERE substr(listed, 1, length(stat)) = stat
    AND instr(' ' || multipart || ' ', ':' || substr(listed, length(stat) + 1) || ' ') > 0
"""
#: the listed ETags the statement above compares: an MD5, or a multipart ETag (``md5-N``)
_ETAG = re.compile(r"[0-9a-f]{32}(-[0-9]+)?")
_UPSERT = f"INSERT OR REPLACE INTO digests (scope, key, {_COLUMNS}) VALUES ({', '.join('?' * 11)})"
#: a stored row without its scope and key: ``FileStat`` fields, then these
_SAMPLED, _STORED_SIZE, _MD5, _MULTIPART = 5, 6, 7, 8

Row = tuple[Any, ...]


_I64_LIMIT = 1 << 63


def _i64(value: int) -> int:
    """An unsigned 64-bit stat field (st_dev, st_ino) as the signed integer SQLite stores."""
    return value - (1 << 64) if value >= _I64_LIMIT else value


def _unchanged_by_key(
    reader: sqlite3.Connection, query: str, scope: int, group: dict[str, str], found: set[str]
) -> None:
    """Add to ``found`` the keys of ``group`` (key -> signature) that ``query`` vouches for."""
    (text,) = reader.execute(query, (json.dumps(group), scope, RACY_MARGIN_NS)).fetchone()
    found.update(text.split("\0") if text else ())


def _unchanged_in_range(
    reader: sqlite3.Connection, scope: int, group: dict[str, str], found: set[str]
) -> bool:
    """``_unchanged_by_key`` for listed MD5s, by reading the records of the group's key range in
    one statement and comparing signatures here: 0.17 s instead of 0.25 s of SQL for 100,000,
    and no JSON to write. False (nothing added) when the range holds many more records than the
    group (of files no longer there, or left out by --exclude): memory holds at most
    ``RANGE_ROWS_PER_KEY`` rows a key."""
    limit = RANGE_ROWS_PER_KEY * len(group) + _RANGE_SLACK
    count, text = reader.execute(
        _SELECT_RANGE, (scope, min(group), max(group), RACY_MARGIN_NS, limit)
    ).fetchone()
    if count >= limit:
        return False
    for item in text.split("\0") if text else ():
        key, _, signature = item.rpartition("\1")  # a signature holds no \1; a key might
        if group.get(key) == signature:
            found.add(key)
    return True


class FileStat(NamedTuple):
    """What identifies a file's content without reading it (a tuple: it compares with a row).

    The path is not part of it: a device and inode name one file on a machine, whatever the
    path to it (a hard link or a bind mount is the same content).
    """

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        return cls(_i64(st.st_dev), _i64(st.st_ino), st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def racy(self, sampled_ns: int) -> bool:
        """Whether a change after ``sampled_ns`` could leave these timestamps unchanged."""
        return max(self.mtime_ns, self.ctime_ns) >= sampled_ns - RACY_MARGIN_NS


def _multipart_etags(text: str) -> dict[int, str]:
    parts = {}
    for item in text.split():
        part_size, _, etag = item.partition(":")
        parts[int(part_size)] = etag
    return parts


def _row_vouches(row: Row, stat: FileStat, remote: RemoteObject) -> bool:
    """Whether a stored row is the record of this very file (and not a racy one) and its
    digest is the listed object's ETag: then the file need not be read. The hot path of an
    unchanged re-run, so it works on the row as stored."""
    if row[:5] != stat or stat.racy(row[_SAMPLED]) or remote.size != row[_STORED_SIZE]:
        return False
    etag = remote.etag.strip('"').lower()
    if "-" not in etag:
        return bool(etag == row[_MD5])
    return etag in _multipart_etags(str(row[_MULTIPART])).values()


@dataclass(frozen=True, slots=True)
class Entry:
    """One file's record: its stat when read, and the digests of the bytes we store for it."""

    stat: FileStat
    sampled_ns: int  # when the stat was taken, before the read
    stored_size: int  # after gzip
    md5: str | None  # hex
    multipart: dict[int, str]  # part size -> multipart ETag (``md5-N``)

    def vouches_for(self, stat: FileStat) -> bool:
        return stat == self.stat and not stat.racy(self.sampled_ns)

    def row(self, key: str, scope: int) -> Row:
        multipart = " ".join(f"{size}:{etag}" for size, etag in sorted(self.multipart.items()))
        return (scope, key, *self.stat, self.sampled_ns, self.stored_size, self.md5, multipart)

    @classmethod
    def from_row(cls, row: Row) -> Entry:
        """The entry of a stored row (without scope and key); a row of the wrong shape or types
        (written by something else) raises TypeError or ValueError."""
        stat = FileStat(*(int(v) for v in row[:5]))
        md5 = str(row[_MD5]) if row[_MD5] else None
        parts = _multipart_etags(str(row[_MULTIPART]))
        return cls(stat, int(row[_SAMPLED]), int(row[_STORED_SIZE]), md5, parts)


class Lookup:
    """One file as seen just before it is opened: its stat and what the record says of it.

    ``unchanged`` is true when the record vouches for the file and its digest is the listed
    object's ETag: the file need not be read. ``remember`` stores what was hashed.
    """

    __slots__ = ("_record", "_row", "key", "sampled_ns", "stat", "unchanged")

    def __init__(
        self,
        record: DigestRecord | None,
        key: str,
        sampled_ns: int,
        stat: FileStat | None,
        row: Row | None,
        unchanged: bool = False,
    ) -> None:
        self._record = record
        self.key = key
        self.sampled_ns = sampled_ns
        self.stat = stat
        self._row = row
        self.unchanged = unchanged

    def remember(
        self, fd: int, content: Content, *, with_md5: bool = False, multipart: tuple[int, str] | None = None
    ) -> None:
        """Record the digests ``content`` computed from the open file ``fd`` (``with_md5``:
        compute its MD5 first, for a file that is put with a Content-MD5 anyway), plus
        ``multipart`` = (part size, ETag) of an upload in parts. Never raises: a record that
        cannot be written is only a cache miss."""
        record, stat = self._record, self.stat
        if record is None or stat is None or stat.racy(self.sampled_ns):
            return  # a racy record would never be trusted: do not write it
        if with_md5:
            content.md5  # noqa: B018 - computes and keeps it: the put sends it as Content-MD5
        md5, parts = content.known_digests()
        if multipart is not None:
            parts[multipart[0]] = multipart[1]
        if md5 is None and not parts:
            return
        try:
            if FileStat.of(os.fstat(fd)) != stat:
                return  # another file than the one looked at, or changed while it was read
        except OSError:
            return
        entry = Entry(stat, self.sampled_ns, content.stored_size, md5.hex() if md5 else None, parts)
        try:
            old = Entry.from_row(self._row) if self._row is not None else None
        except (TypeError, ValueError):
            old = None
        record.store(self.key, _merged(old, entry))


def _merged(old: Entry | None, new: Entry) -> Entry:
    """``new`` with the digests of a trusted ``old`` record of the same bytes (say, another
    part size's ETag), so that a file uploaded by two tools is not read again for either."""
    if old is None or not old.vouches_for(new.stat) or old.stored_size != new.stored_size:
        return new
    if old.md5 and new.md5 and old.md5 != new.md5:
        _warn_once(
            "content-without-stat",
            "a file's content changed while its stat did not: this filesystem does not track "
            "changes; use --no-digest-cache for it",
        )
        return new
    parts = {**old.multipart, **new.multipart}
    return Entry(new.stat, new.sampled_ns, new.stored_size, new.md5 or old.md5, parts)


_NOT_LOOKED = Lookup(None, "", 0, None, None)
_UNCHANGED = Lookup(None, "", 0, None, None, unchanged=True)


class DigestRecord:
    """The record of one run's scope in the per-user database; thread-safe.

    Lookups share one connection under a lock (each is one indexed query of a few
    microseconds); records are buffered and committed by a second connection, so a commit that
    waits for another run's transaction never blocks a lookup. Each process opens its own.
    """

    def __init__(
        self,
        path: Path | None,
        scope: str,
        *,
        trust: bool = True,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """``path`` None: a record that is off (every file is read, nothing is written).
        ``trust`` False (``--rehash``): read every file, but still record what was hashed."""
        self.path = path
        self.scope = scope_id(scope)
        self.trust = trust
        self.clock = clock
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: dict[str, tuple[object, ...]] = {}
        # The rows of the keys in [_window_first, _window_last] (last None: to the scope's end).
        self._window: dict[str, tuple[Any, ...]] = {}
        self._window_first: str | None = None
        self._window_last: str | None = None
        self._last_flush = time.monotonic()
        self._finalizer: Any = None  # multiprocessing.util.Finalize
        if path is not None:
            self._open(path)

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
        return self._reader is not None

    # -- the two calls of the putter ---------------------------------------------------------

    def look(self, path: str, key: str, remote: RemoteObject | None) -> Lookup:
        """Stat the file at ``path`` (uploaded as ``key``) and, when there is a listed object to
        compare with, consult the record. A file that cannot be stat'ed is simply not vouched
        for: opening it reports the problem."""
        if self._reader is None:
            return _NOT_LOOKED
        sampled_ns = self.clock()  # before the stat: see FileStat.racy
        try:
            stat = FileStat.of(os.stat(path))
        except OSError:
            return _NOT_LOOKED
        row = self._fetch_row(key) if remote is not None and self.trust else None
        if row is not None and remote is not None and _row_vouches(row, stat, remote):
            return _UNCHANGED
        return Lookup(self, key, sampled_ns, stat, row)

    def unchanged(self, entries: Iterable[FileEntry], remote: Mapping[str, RemoteObject]) -> set[str]:
        """The keys of ``entries`` that need not be read: the stat the walk took of each is the
        one recorded (and the record is not racy) and the remembered digest is the listed ETag.

        The engine asks this for a walk group before any file becomes a put task, so that an
        unchanged file costs neither a second stat nor a trip through the putter (on 100,000
        unchanged files, measured here: ``look`` for each of them took 2.0 s of a 10.6 s
        profiled run). The comparison runs inside SQLite, one statement per group: fetching a
        row releases and retakes the GIL, and with the next group's listing parsed on another
        thread, 100,000 row fetches cost 1.5 s of main-thread time (0.2 s alone). Memory holds
        the group. Entries without a stat identity, or listed with an ETag that is not an MD5
        or a multipart ETag, are not vouched for (the putter then looks at them one by one);
        any database error means "read them".
        """
        if self._reader is None or not self.trust:
            return set()
        single: dict[str, str] = {}
        multipart: dict[str, str] = {}
        is_etag, get = _ETAG.fullmatch, remote.get
        for e in entries:  # once per file: _i64 inlined (0.3 s of Python per 100,000 before)
            listed = get(e.key)
            if listed is None or not e.ctime_ns:
                continue
            etag = listed.etag.strip('"').lower()
            if is_etag(etag):
                dev, ino = e.dev, e.ino
                if dev >= _I64_LIMIT:
                    dev -= 1 << 64
                if ino >= _I64_LIMIT:
                    ino -= 1 << 64
                signature = f"{dev} {ino} {e.size} {e.mtime_ns} {e.ctime_ns} {listed.size} {etag}"
                (multipart if "-" in etag else single)[e.key] = signature
        found: set[str] = set()
        with self._read_lock:
            reader = self._reader
            if reader is None:
                return found
            try:
                if single and not _unchanged_in_range(reader, self.scope, single, found):
                    _unchanged_by_key(reader, _SELECT_UNCHANGED, self.scope, single, found)
                if multipart:
                    _unchanged_by_key(reader, _SELECT_UNCHANGED_MULTIPART, self.scope, multipart, found)
            except sqlite3.Error as exc:
                problem = exc
            else:
                return found
        self._failed(problem)
        return set()

    def holds_more_than(self, count: int) -> bool:
        """Whether this scope's record holds more than ``count`` files (read up to there: ~1 ms
        for 10,000); false when the record is off or cannot be read."""
        with self._read_lock:
            reader = self._reader
            if reader is None:
                return False
            try:
                (held,) = reader.execute(_COUNT_UP_TO, (self.scope, count + 1)).fetchone()
            except sqlite3.Error:
                return False  # the lookups meet the problem and report it
        return bool(held > count)

    def fetch(self, key: str) -> Entry | None:
        """The stored record of ``key`` in this scope, if any (and readable)."""
        row = self._fetch_row(key)
        try:
            return Entry.from_row(row) if row is not None else None
        except (TypeError, ValueError):
            return None

    def _fetch_row(self, key: str) -> Row | None:
        """The stored row of ``key``, from the window of rows read ahead.

        Rows are read ahead, ``WINDOW_ROWS`` at a time from the key asked for, and kept until a
        later key outside them is asked for; a key before the window (threads finish out of
        order) is one query of its own. Memory holds one window whatever the record's size.
        """
        with self._read_lock:
            first, last = self._window_first, self._window_last
            if first is not None and key >= first and (last is None or key <= last):
                return self._window.get(key)
            reader = self._reader
            if reader is None:
                return None
            try:
                if first is not None and key < first:
                    rows = reader.execute(_SELECT_ONE, (self.scope, key)).fetchall()
                else:
                    rows = reader.execute(_SELECT_FROM, (self.scope, key, WINDOW_ROWS)).fetchall()
                    self._window = {r[0]: r[1:] for r in rows}
                    self._window_first = key
                    self._window_last = rows[-1][0] if len(rows) == WINDOW_ROWS else None
            except sqlite3.Error as exc:
                problem = exc
            else:
                return tuple(rows[0][1:]) if rows and rows[0][0] == key else None
        self._failed(problem)
        return None

    def store(self, key: str, entry: Entry) -> None:
        """Buffer ``entry`` as the record of ``key``; committed soon, in a batch."""
        if not self.enabled:
            return
        try:
            row = entry.row(key, self.scope)
        except (OverflowError, ValueError):
            return
        with self._pending_lock:
            self._pending[key] = row
            due = len(self._pending) >= FLUSH_ROWS or time.monotonic() - self._last_flush >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        """Commit the buffered records in one short transaction."""
        with self._pending_lock:
            rows = list(self._pending.values())
            self._pending.clear()
            self._last_flush = time.monotonic()
        if not rows:
            return
        problem: sqlite3.Error | None = None
        with self._write_lock:
            writer = self._writer
            if writer is None:
                return
            try:
                writer.execute("BEGIN IMMEDIATE")
                try:
                    writer.executemany(_UPSERT, rows)
                    writer.execute("COMMIT")
                except BaseException:
                    writer.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                problem = exc
            except (OverflowError, ValueError):
                pass  # a value SQLite cannot hold: those records are lost, nothing else
        if problem is not None:
            self._failed(problem)

    def close(self) -> None:
        """Commit what is buffered and close the database; the record is off afterwards."""
        if self._finalizer is not None:
            self._finalizer.cancel()
            self._finalizer = None
        self.flush()
        with self._read_lock, self._write_lock:
            for connection in (self._reader, self._writer):
                if connection is not None:
                    connection.close()
            self._reader = self._writer = None

    # -- opening, and what goes wrong --------------------------------------------------------

    def _open(self, path: Path) -> None:
        for attempt in (1, 2):
            try:
                self._reader, self._writer = _connect(path)
                st = os.stat(path)
                self._identity = (st.st_dev, st.st_ino)
                break
            except sqlite3.Error as exc:
                self._close_quietly()
                if attempt == 1 and _is_corrupt(exc):
                    _set_aside(path, exc, None)
                    continue
                _warn_once("open", f"digest record off: cannot open {path} ({exc}); files are read")
                return
            except OSError as exc:
                self._close_quietly()
                _warn_once("open", f"digest record off: cannot open {path} ({exc}); files are read")
                return
        # A worker process of the pool is never closed: commit its last records when it exits.
        # Such a process has imported multiprocessing; a one-process run (which closes its
        # record) need not pay the ~12 ms the import costs.
        mp_util = sys.modules.get("multiprocessing.util")
        if mp_util is not None:
            self._finalizer = mp_util.Finalize(self, DigestRecord.flush, (self,), exitpriority=10)

    def _failed(self, exc: sqlite3.Error) -> None:
        """A lookup or commit failed: a damaged database is set aside (the next run starts a new
        one) and the record is off for this run; a busy one costs only the lookups that failed."""
        if not _is_corrupt(exc):
            _warn_once("busy", f"digest record: {exc}; the files concerned are read again")
            return
        with self._read_lock, self._write_lock:
            if self._reader is None:
                return
            self._close_quietly()
            self._window, self._window_first = {}, None
        if self.path is not None:
            _set_aside(self.path, exc, self._identity)
        with self._pending_lock:
            self._pending.clear()

    def _close_quietly(self) -> None:
        for connection in (self._reader, self._writer):
            if connection is not None:
                with contextlib.suppress(sqlite3.Error):
                    connection.close()
        self._reader = self._writer = None


def _connect(path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    if not path.exists():
        # Created private: the record lists the user's file names.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600))
    connections = []
    for _ in range(2):
        connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        connections.append(connection)
        if len(connections) == 1:
            # WAL: readers never wait for a writer. NORMAL: a commit does not fsync (a cache may
            # lose its last records on power loss; it stays consistent).
            connection.execute("PRAGMA journal_mode=WAL").fetchone()
            connection.execute(_SCHEMA)
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("SELECT count(*) FROM (SELECT 1 FROM digests LIMIT 1)").fetchone()
    return connections[0], connections[1]


def _is_corrupt(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _CORRUPT_CODES
    text = str(exc).lower()  # Python < 3.11 has no error code
    return "malformed" in text or "not a database" in text


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
        try:
            with open(candidate) as f:
                ident = f.read().strip()
        except OSError:
            continue
        if ident:
            break
    return f"{socket.gethostname()}/{ident}"


def scope_of(options: UploadOptions) -> str:
    """What a remembered digest is valid for: the machine (inode numbers are per machine), the
    destination (endpoint, bucket, prefix) and what changes the stored bytes (gzip settings)."""
    gzip = [options.gzip_level, sorted(options.gzip_types), options.content_type] if options.gzip else None
    endpoint = (options.connection.endpoint_url or "").rstrip("/").lower()
    scope = {
        "machine": machine_id(),
        "endpoint": endpoint,
        "bucket": options.bucket,
        "prefix": join_key(options.prefix, ""),
        "gzip": gzip,
    }
    return json.dumps(scope, sort_keys=True)


def scope_id(scope: str) -> int:
    """A scope as the 64-bit integer that keys its records."""
    return int.from_bytes(hashlib.sha256(scope.encode()).digest()[:8], "big", signed=True)


__all__ = ["DigestRecord", "Entry", "FileStat", "Lookup", "scope_of"]

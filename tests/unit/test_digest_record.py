"""The digest record on its own: a real SQLite file in ``tmp_path``, real files, real stats.

The clock is injected (``LATER``: ten seconds from now) so that a file written by the test a
moment ago is old enough to be trusted; the racy tests use the real clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import multiprocessing
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import digest_record
from airflow_s3pput.cache_dir import cache_dir
from airflow_s3pput.content import BytesContent, FileContent
from airflow_s3pput.digest_record import (
    RECORD_FILE,
    DigestRecord,
    Entry,
    FileStat,
    scope_of,
)
from airflow_s3pput.etag import MIB
from airflow_s3pput.modes import RemoteObject
from airflow_s3pput.options import ConnectionSettings, UploadOptions
from airflow_s3pput.walker import FileEntry, walk

SCOPE = "test-scope"
PART = 5 * MIB


def later() -> int:
    return time.time_ns() + 10 * 10**9


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the record's once-per-process warnings afresh."""
    monkeypatch.setattr(digest_record, "_warned", set())


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def look_and_remember(record: DigestRecord, path: Path, key: str, remote: RemoteObject | None = None) -> bool:
    """What the putter does for a small file: look, and when not skipped, read and remember."""
    seen = record.look(str(path), key, remote)
    if seen.unchanged:
        return True
    fd = os.open(path, os.O_RDONLY)
    try:
        seen.remember(fd, BytesContent(os.pread(fd, 1 << 20, 0), PART), with_md5=True)
        return False
    finally:
        os.close(fd)


def skips(record: DigestRecord, path: Path, key: str, remote: RemoteObject) -> bool:
    return record.look(str(path), key, remote).unchanged


# -- round trip ------------------------------------------------------------------------------


def test_round_trip_small_file(tmp_path: Path) -> None:
    data = b"hello digest record\n" * 10
    src = write(tmp_path / "src" / "a.txt", data)
    db = tmp_path / "cache" / RECORD_FILE
    db.parent.mkdir()
    record = DigestRecord(db, SCOPE, clock=later)
    assert not look_and_remember(record, src, "a.txt")  # nothing recorded yet: read
    record.close()

    record = DigestRecord(db, SCOPE, clock=later)
    try:
        assert skips(record, src, "a.txt", RemoteObject(len(data), md5_hex(data)))
        assert skips(record, src, "a.txt", RemoteObject(len(data), f'"{md5_hex(data).upper()}"'))
        assert not skips(record, src, "a.txt", RemoteObject(len(data), md5_hex(b"other")))
        assert not skips(record, src, "a.txt", RemoteObject(len(data) + 1, md5_hex(data)))
        assert not skips(record, src, "other-key", RemoteObject(len(data), md5_hex(data)))
        fd = os.open(src, os.O_RDONLY)
        try:
            assert not record.look(str(src), "a.txt", None).unchanged  # no remote: put
        finally:
            os.close(fd)
    finally:
        record.close()


def test_the_record_tells_whether_its_scope_holds_more_than_a_count(tmp_path: Path) -> None:
    db = tmp_path / RECORD_FILE
    record = DigestRecord(db, SCOPE, clock=later)
    other = DigestRecord(db, "another scope", clock=later)
    try:
        entry = Entry(FileStat(1, 2, 3, 4, 5), 10**18, 3, md5_hex(b"abc"), {})
        for i in range(3):
            record.store(f"k{i}", entry)
            other.store(f"k{i}", entry)
            other.store(f"more{i}", entry)
        record.flush()
        other.flush()
        assert record.holds_more_than(2) and not record.holds_more_than(3)
        assert other.holds_more_than(5) and not other.holds_more_than(6)
    finally:
        record.close()
        other.close()
    assert not record.holds_more_than(0)  # closed: off
    assert not DigestRecord(None, SCOPE).holds_more_than(0)


def test_round_trip_multipart_etag_and_merge(tmp_path: Path) -> None:
    """A multipart ETag is remembered with its part size; a second one (another tool's part
    size) is added to the trusted record of the same bytes, not swapped for it."""
    data = os.urandom(2 * PART + 123)
    src = write(tmp_path / "big.bin", data)
    db = tmp_path / RECORD_FILE
    fd = os.open(src, os.O_RDONLY)
    try:
        record = DigestRecord(db, SCOPE, clock=later)
        content = FileContent(fd, len(data), PART)
        ours = content.multipart_etag(PART)
        record.look(str(src), "big", None).remember(fd, content, multipart=(PART, ours))
        record.flush()
        assert record.look(str(src), "big", RemoteObject(len(data), ours)).unchanged
        theirs = FileContent(fd, len(data), PART).multipart_etag(6 * MIB)  # a tool with MiB-rounded parts
        remote = RemoteObject(len(data), theirs)
        seen = record.look(str(src), "big", remote)
        assert not seen.unchanged
        content = FileContent(fd, len(data), PART)
        assert content.matches_etag(theirs)  # what the putter does: hash, match, skip
        seen.remember(fd, content)
        record.close()
        record = DigestRecord(db, SCOPE, clock=later)
        assert record.look(str(src), "big", remote).unchanged
        assert record.look(str(src), "big", RemoteObject(len(data), ours)).unchanged
        assert not record.look(str(src), "big", RemoteObject(len(data), md5_hex(data))).unchanged
        record.close()
    finally:
        os.close(fd)


def test_nothing_hashed_nothing_recorded(tmp_path: Path) -> None:
    src = write(tmp_path / "f", b"abc")
    record = DigestRecord(tmp_path / RECORD_FILE, SCOPE, clock=later)
    fd = os.open(src, os.O_RDONLY)
    try:
        record.look(str(src), "f", None).remember(fd, BytesContent(b"abc", PART))  # no digest computed
        record.flush()
        assert record.fetch("f") is None
    finally:
        os.close(fd)
        record.close()


# -- what makes a record stale ---------------------------------------------------------------

BASE = FileStat(dev=1, ino=2, size=3, mtime_ns=10**18, ctime_ns=10**18)
ENTRY = Entry(BASE, sampled_ns=10**18 + 5 * 10**9, stored_size=3, md5="ab" * 16, multipart={})


@pytest.mark.parametrize(
    "stat",
    [
        pytest.param(BASE._replace(dev=9), id="other-device"),
        pytest.param(BASE._replace(ino=9), id="other-inode"),
        pytest.param(BASE._replace(size=4), id="other-size"),
        pytest.param(BASE._replace(mtime_ns=BASE.mtime_ns + 1), id="mtime"),
        pytest.param(BASE._replace(ctime_ns=BASE.ctime_ns + 1), id="ctime"),
    ],
)
def test_any_stat_difference_voids_the_record(stat: FileStat) -> None:
    assert ENTRY.vouches_for(BASE)  # the control: the same file is vouched for
    assert not ENTRY.vouches_for(stat)


@pytest.mark.parametrize(
    ("mtime_ns", "ctime_ns", "trusted"),
    [
        pytest.param(10**18, 10**18, True, id="old-enough"),
        pytest.param(10**18 + 3 * 10**9 + 1, 10**18, False, id="mtime-within-margin"),
        pytest.param(10**18, 10**18 + 3 * 10**9 + 1, False, id="ctime-within-margin"),
        pytest.param(10**18 + 5 * 10**9, 10**18, False, id="mtime-same-tick"),
        pytest.param(10**18 + 60 * 10**9, 10**18, False, id="mtime-in-the-future"),
        pytest.param(0, 10**18, True, id="mtime-long-ago"),
    ],
)
def test_racy_records_are_not_trusted(mtime_ns: int, ctime_ns: int, trusted: bool) -> None:
    stat = BASE._replace(mtime_ns=mtime_ns, ctime_ns=ctime_ns)
    entry = dataclasses.replace(ENTRY, stat=stat)
    assert entry.vouches_for(stat) is trusted


def test_a_file_just_written_is_not_recorded(tmp_path: Path) -> None:
    """With the real clock, a file younger than the margin is read on the next run too."""
    src = write(tmp_path / "fresh", b"fresh")
    db = tmp_path / RECORD_FILE
    record = DigestRecord(db, SCOPE)
    look_and_remember(record, src, "fresh")
    record.close()
    record = DigestRecord(db, SCOPE, clock=later)
    try:
        assert record.fetch("fresh") is None
        assert not skips(record, src, "fresh", RemoteObject(5, md5_hex(b"fresh")))
    finally:
        record.close()


def test_a_file_with_a_future_mtime_is_never_recorded(tmp_path: Path) -> None:
    src = write(tmp_path / "skewed", b"skewed")
    future = time.time_ns() + 3600 * 10**9
    os.utime(src, ns=(future, future))
    record = DigestRecord(tmp_path / RECORD_FILE, SCOPE, clock=later)
    try:
        look_and_remember(record, src, "skewed")
        record.flush()
        assert record.fetch("skewed") is None
    finally:
        record.close()


def test_a_file_changed_while_read_is_not_recorded(tmp_path: Path) -> None:
    src = write(tmp_path / "f", b"before")
    record = DigestRecord(tmp_path / RECORD_FILE, SCOPE, clock=later)
    fd = os.open(src, os.O_RDONLY)
    try:
        seen = record.look(str(src), "f", None)
        content = BytesContent(os.pread(fd, 100, 0), PART)
        os.chmod(src, 0o600)  # a change of ctime between the look and the remember
        seen.remember(fd, content, with_md5=True)
        record.flush()
        assert record.fetch("f") is None
    finally:
        os.close(fd)
        record.close()


def test_a_file_replaced_between_look_and_open_is_not_recorded(tmp_path: Path) -> None:
    src = write(tmp_path / "f", b"first")
    record = DigestRecord(tmp_path / RECORD_FILE, SCOPE, clock=later)
    try:
        seen = record.look(str(src), "f", None)
        write(tmp_path / "f.new", b"other").replace(src)  # same size, another inode
        fd = os.open(src, os.O_RDONLY)
        try:
            seen.remember(fd, BytesContent(os.pread(fd, 100, 0), PART), with_md5=True)
        finally:
            os.close(fd)
        record.flush()
        assert record.fetch("f") is None
    finally:
        record.close()


def test_lookups_read_ahead_in_key_order_whatever_the_order_asked(tmp_path: Path) -> None:
    """Rows come a window at a time from the key asked for; keys asked out of order, keys with
    no record between recorded ones and keys past the last one are all answered right."""
    src = write(tmp_path / "f", b"windowed")
    db = tmp_path / RECORD_FILE
    record = DigestRecord(db, SCOPE, clock=later)
    recorded = {f"k{i:05d}" for i in range(0, 3000, 2)}
    for key in sorted(recorded):
        look_and_remember(record, src, key)
    record.close()
    keys = [f"k{i:05d}" for i in range(3200)]
    shuffled = keys[:]
    random.Random(7).shuffle(shuffled)
    nearly_sorted = [k for pair in zip(keys[1::2], keys[::2], strict=True) for k in pair]  # threads race
    remote = RemoteObject(8, md5_hex(b"windowed"))
    for order in (keys, shuffled, nearly_sorted, list(reversed(keys))):
        record = DigestRecord(db, SCOPE, clock=later)
        try:
            found = {k for k in order if skips(record, src, k, remote)}
            assert len(record._window) <= digest_record.WINDOW_ROWS
        finally:
            record.close()
        assert found == recorded


# -- scopes ----------------------------------------------------------------------------------


def options(**changes: Any) -> UploadOptions:
    base: dict[str, Any] = {
        "bucket": "bucket-a",
        "sources": ("/src",),
        "prefix": "p",
        "connection": ConnectionSettings(endpoint_url="http://127.0.0.1:8333"),
    }
    return UploadOptions(**{**base, **changes})


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"bucket": "bucket-b"}, id="bucket"),
        pytest.param({"connection": ConnectionSettings(endpoint_url="http://127.0.0.1:9000")}, id="endpoint"),
        pytest.param({"connection": ConnectionSettings()}, id="aws"),
        pytest.param({"prefix": "q"}, id="prefix"),
        pytest.param({"gzip": True}, id="gzip"),
    ],
)
def test_records_of_another_scope_are_not_seen(tmp_path: Path, changes: dict[str, Any]) -> None:
    data = b"scoped content"
    src = write(tmp_path / "f.txt", data)
    db = tmp_path / RECORD_FILE
    remote = RemoteObject(len(data), md5_hex(data))
    first = DigestRecord(db, scope_of(options()), clock=later)
    look_and_remember(first, src, "p/f.txt")
    first.close()
    same = DigestRecord(db, scope_of(options(threads=3, part_size=8 * MIB)), clock=later)
    other = DigestRecord(db, scope_of(options(**changes)), clock=later)
    try:
        assert skips(same, src, "p/f.txt", remote)  # the control: settings that keep the bytes
        assert not skips(other, src, "p/f.txt", remote)
    finally:
        same.close()
        other.close()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param({"gzip": True, "gzip_level": 9}, {"gzip": True, "gzip_level": 1}, id="gzip-level"),
        pytest.param({"gzip": True}, {"gzip": True, "gzip_types": ("all",)}, id="gzip-types"),
        pytest.param({"gzip": True}, {"gzip": True, "content_type": "text/plain"}, id="content-type"),
    ],
)
def test_gzip_settings_are_part_of_the_scope(first: dict[str, Any], second: dict[str, Any]) -> None:
    assert scope_of(options(**first)) != scope_of(options(**second))
    # Without gzip the level cannot change the stored bytes: the same scope.
    assert scope_of(options(gzip_level=1)) == scope_of(options(gzip_level=9))


def test_another_machine_has_another_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    here = scope_of(options())
    monkeypatch.setattr(digest_record, "machine_id", lambda: "elsewhere/1234")
    assert scope_of(options()) != here


# -- where the record lives, and when it is off ----------------------------------------------


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("S3PPUT_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == tmp_path / "home" / ".cache" / "s3pput"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: absolute only
    assert cache_dir() == tmp_path / "home" / ".cache" / "s3pput"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "s3pput"
    monkeypatch.setenv("S3PPUT_CACHE_DIR", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(str(tmp_path / "flag")) == tmp_path / "flag"


@pytest.mark.parametrize(
    ("changes", "on"),
    [
        pytest.param({}, True, id="update"),
        pytest.param({"dry_run": True}, False, id="dry-run"),
        pytest.param({"mode": "add"}, False, id="add"),
        pytest.param({"mode": "stupid"}, False, id="stupid"),
        pytest.param({"digest_cache": False}, False, id="no-digest-cache"),
    ],
)
def test_open_is_off_where_the_record_has_no_use(tmp_path: Path, changes: dict[str, Any], on: bool) -> None:
    record = DigestRecord.open(options(cache_dir=str(tmp_path / "c"), **changes))
    try:
        assert record.enabled is on
        assert (tmp_path / "c" / RECORD_FILE).exists() is on
    finally:
        record.close()


def test_the_record_is_private(tmp_path: Path) -> None:
    record = DigestRecord.open(options(cache_dir=str(tmp_path / "c")))
    record.close()
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "c" / RECORD_FILE).stat().st_mode & 0o777 == 0o600


def test_rehash_reads_everything_and_records_anew(tmp_path: Path) -> None:
    data = b"rehash me"
    src = write(tmp_path / "f", data)
    db = tmp_path / RECORD_FILE
    remote = RemoteObject(len(data), md5_hex(data))
    record = DigestRecord(db, SCOPE, clock=later)
    look_and_remember(record, src, "f")
    record.close()
    rehash = DigestRecord(db, SCOPE, trust=False, clock=lambda: later() + 10**9)
    assert not look_and_remember(rehash, src, "f", remote)  # read although recorded
    rehash.close()
    record = DigestRecord(db, SCOPE, clock=later)
    try:
        entry = record.fetch("f")
        assert entry is not None and entry.md5 == md5_hex(data)
        assert skips(record, src, "f", remote)
    finally:
        record.close()


def test_unusable_cache_dir_turns_the_record_off_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = write(tmp_path / "not-a-dir", b"x")
    with caplog.at_level(logging.WARNING, logger="airflow_s3pput.digest_record"):
        record = DigestRecord.open(options(cache_dir=str(blocker / "sub")))
        again = DigestRecord.open(options(cache_dir=str(blocker / "sub")))
    assert not record.enabled and not again.enabled
    src = write(tmp_path / "f", b"abc")
    assert not look_and_remember(record, src, "f", RemoteObject(3, md5_hex(b"abc")))
    assert len(caplog.records) == 1, caplog.text
    assert "digest record off" in caplog.text and "\n" not in caplog.records[0].getMessage()


# -- damage ----------------------------------------------------------------------------------


def test_corrupt_database_is_set_aside_and_recreated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / RECORD_FILE
    db.write_bytes(b"this is not a database" * 100)
    src = write(tmp_path / "f", b"abc")
    with caplog.at_level(logging.WARNING, logger="airflow_s3pput.digest_record"):
        record = DigestRecord(db, SCOPE, clock=later)
    assert record.enabled
    assert not look_and_remember(record, src, "f", RemoteObject(3, md5_hex(b"abc")))
    record.close()
    aside = [p.name for p in tmp_path.iterdir() if p.name.startswith(f"{RECORD_FILE}.corrupt-")]
    assert len(aside) == 1, aside
    assert len(caplog.records) == 1 and "set aside" in caplog.text
    record = DigestRecord(db, SCOPE, clock=later)
    try:
        assert skips(record, src, "f", RemoteObject(3, md5_hex(b"abc")))
    finally:
        record.close()


def test_corruption_found_during_a_run_means_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / RECORD_FILE
    src = write(tmp_path / "f", b"abc")
    record = DigestRecord(db, SCOPE, clock=later)
    for i in range(3000):  # enough rows for several B-tree pages
        look_and_remember(record, src, f"k{i:05d}")
    record.close()
    record = DigestRecord(db, SCOPE, clock=later)
    assert record.enabled
    with open(db, "r+b") as f:  # damage every page but the first, under the open record
        f.seek(4096)
        f.write(os.urandom(os.path.getsize(db) - 4096))
    remote = RemoteObject(3, md5_hex(b"abc"))
    with caplog.at_level(logging.WARNING, logger="airflow_s3pput.digest_record"):
        # Pages already in the connection's cache still answer (rightly); the first damaged one
        # turns the record off for the rest of the run.
        skipped = [skips(record, src, f"k{i:05d}", remote) for i in range(0, 3000, 7)]
    record.close()
    assert not record.enabled
    assert not skipped[-1]
    assert "set aside" in caplog.text
    assert not db.exists()
    fresh = DigestRecord(db, SCOPE, clock=later)
    try:
        assert fresh.fetch("k00000") is None
    finally:
        fresh.close()


# -- concurrency -----------------------------------------------------------------------------


def test_threads_share_one_record(tmp_path: Path) -> None:
    files = [write(tmp_path / "src" / f"f{i:03d}", f"file {i}".encode()) for i in range(200)]
    record = DigestRecord(tmp_path / RECORD_FILE, SCOPE, clock=later)
    errors: list[BaseException] = []

    def work(part: list[Path]) -> None:
        try:
            for path in part:
                look_and_remember(record, path, path.name, RemoteObject(1, "0" * 32))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(files[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record.close()
    assert errors == []
    record = DigestRecord(tmp_path / RECORD_FILE, SCOPE, clock=later)
    try:
        for path in files:
            assert skips(
                record, path, path.name, RemoteObject(path.stat().st_size, md5_hex(path.read_bytes()))
            )
    finally:
        record.close()


def _writer(db: str, src: str, keys: list[str], close: bool) -> None:
    """A process that remembers ``keys``; without ``close`` it exits like a pool worker."""
    record = DigestRecord(Path(db), SCOPE, clock=later)
    for key in keys:
        look_and_remember(record, Path(src), key)
    if close:
        record.close()


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    src = write(tmp_path / "f", b"shared")
    db = tmp_path / RECORD_FILE
    spawn = multiprocessing.get_context("spawn")
    # Overlapping key sets, each large enough for several batched commits.
    keys_a = [f"k{i:05d}" for i in range(0, 4000)]
    keys_b = [f"k{i:05d}" for i in range(2000, 6000)]
    procs = [spawn.Process(target=_writer, args=(str(db), str(src), keys, True)) for keys in (keys_a, keys_b)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    with sqlite3.connect(db) as connection:
        (rows,) = connection.execute("SELECT count(*) FROM digests").fetchone()
        (check,) = connection.execute("PRAGMA integrity_check").fetchone()
    assert rows == 6000
    assert check == "ok"
    record = DigestRecord(db, SCOPE, clock=later)
    try:
        assert skips(record, src, "k05999", RemoteObject(6, md5_hex(b"shared")))
    finally:
        record.close()


def test_a_worker_process_commits_its_last_records_when_it_exits(tmp_path: Path) -> None:
    src = write(tmp_path / "f", b"tail")
    db = tmp_path / RECORD_FILE
    proc = multiprocessing.get_context("spawn").Process(
        target=_writer, args=(str(db), str(src), ["a", "b", "c"], False)
    )
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    record = DigestRecord(db, SCOPE, clock=later)
    try:
        assert all(record.fetch(k) is not None for k in ("a", "b", "c"))
    finally:
        record.close()


def test_a_hard_link_elsewhere_is_the_same_file(tmp_path: Path) -> None:
    """The record holds no path: another path to the same inode is the same content, and a
    path whose name is not UTF-8 needs no special care."""
    src = write(tmp_path / "f", b"linked")
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9"
    os.link(src, raw)  # before the record: a new link changes the inode's ctime
    record = DigestRecord(tmp_path / RECORD_FILE, SCOPE, clock=later)
    try:
        look_and_remember(record, src, "k")
        record.flush()
        assert skips(record, Path(os.fsdecode(raw)), "k", RemoteObject(6, md5_hex(b"linked")))
    finally:
        record.close()


# -- a walk group at once (the engine's call) ------------------------------------------------


def recorded_group(
    tmp_path: Path, count: int = 6
) -> tuple[DigestRecord, list[FileEntry], dict[str, RemoteObject]]:
    """``count`` files recorded as the putter records them, then walked: the record (open with
    a clock that trusts them), the walk's entries and the listing that matches them."""
    datas = {f"d/f{i}": os.urandom(100 + i) for i in range(count)}
    for key, data in datas.items():
        write(tmp_path / "src" / key, data)
    db = tmp_path / RECORD_FILE
    writer = DigestRecord(db, SCOPE, clock=later)
    for key in datas:
        assert not look_and_remember(writer, tmp_path / "src" / key, key)
    writer.close()
    entries = [e for e in walk([str(tmp_path / "src")]) if isinstance(e, FileEntry)]
    remote = {key: RemoteObject(len(data), md5_hex(data)) for key, data in datas.items()}
    return DigestRecord(db, SCOPE, clock=later), entries, remote


def test_unchanged_vouches_for_a_walk_group_by_the_walks_stat(tmp_path: Path) -> None:
    record, entries, remote = recorded_group(tmp_path)
    try:
        assert [e.key for e in entries] == sorted(remote)  # the walk's order: key order
        assert record.unchanged(entries, remote) == set(remote)
        # A key beyond the group's range and records of other keys change nothing.
        assert record.unchanged(entries[2:4], remote) == {entries[2].key, entries[3].key}
    finally:
        record.close()


def _moved(entry: FileEntry, **delta: int) -> FileEntry:
    return entry._replace(**{name: getattr(entry, name) + d for name, d in delta.items()})


def test_unchanged_reads_a_range_crowded_with_other_records_key_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, entries, remote = recorded_group(tmp_path, count=8)
    calls: list[str] = []
    by_key, in_range = digest_record._unchanged_by_key, digest_record._unchanged_in_range

    def noted_by_key(*args: Any) -> None:
        calls.append("by key")
        by_key(*args)

    def noted_in_range(*args: Any) -> bool:
        answered = in_range(*args)
        calls.append(f"in range: {answered}")
        return answered

    monkeypatch.setattr(digest_record, "_unchanged_by_key", noted_by_key)
    monkeypatch.setattr(digest_record, "_unchanged_in_range", noted_in_range)
    try:
        ends = [entries[0], entries[-1]]  # the range between them holds 6 other records
        assert record.unchanged(ends, remote) == {e.key for e in ends}
        assert calls == ["in range: True"]
        monkeypatch.setattr(digest_record, "RANGE_ROWS_PER_KEY", 0)
        monkeypatch.setattr(digest_record, "_RANGE_SLACK", 4)  # at most 4 rows: too few here
        calls.clear()
        assert record.unchanged(ends, remote) == {e.key for e in ends}
        assert calls == ["in range: False", "by key"]
    finally:
        record.close()


def test_unchanged_tells_keys_apart_whatever_characters_they_hold(tmp_path: Path) -> None:
    names = ["d/a", "d/a\x01b", "d/a b", "d/é\x02"]
    datas = {name: os.urandom(50) for name in names}
    for key, data in datas.items():
        write(tmp_path / "src" / key, data)
    writer = DigestRecord(tmp_path / RECORD_FILE, SCOPE, clock=later)
    for key in datas:
        assert not look_and_remember(writer, tmp_path / "src" / key, key)
    writer.close()
    entries = [e for e in walk([str(tmp_path / "src")]) if isinstance(e, FileEntry)]
    record = DigestRecord(tmp_path / RECORD_FILE, SCOPE, clock=later)
    try:
        remote = {key: RemoteObject(len(data), md5_hex(data)) for key, data in datas.items()}
        assert record.unchanged(entries, remote) == set(names)
        remote["d/a"] = RemoteObject(50, md5_hex(b"other"))  # a neighbour's digest vouches for nothing else
        assert record.unchanged(entries, remote) == set(names) - {"d/a"}
    finally:
        record.close()


@pytest.mark.parametrize(
    "stale",
    [
        pytest.param(lambda e: _moved(e, dev=1), id="other-device"),
        pytest.param(lambda e: _moved(e, ino=1), id="other-inode"),
        pytest.param(lambda e: _moved(e, size=1), id="other-size"),
        pytest.param(lambda e: _moved(e, mtime_ns=1), id="mtime"),
        pytest.param(lambda e: _moved(e, ctime_ns=1), id="ctime"),
        pytest.param(lambda e: FileEntry(e.path, e.key, e.size, e.mtime_ns), id="no-identity"),
    ],
)
def test_unchanged_refuses_an_entry_whose_stat_differs(tmp_path: Path, stale: Any) -> None:
    record, entries, remote = recorded_group(tmp_path)
    target = entries[3]
    try:
        found = record.unchanged([*entries[:3], stale(target), *entries[4:]], remote)
        assert found == set(remote) - {target.key}
    finally:
        record.close()


@pytest.mark.parametrize(
    "listed",
    [
        pytest.param(lambda r: RemoteObject(r.size, "0" * 32), id="other-etag"),
        pytest.param(lambda r: RemoteObject(r.size + 1, r.etag), id="other-size"),
        pytest.param(None, id="not-listed"),
    ],
)
def test_unchanged_refuses_an_entry_the_listing_contradicts(tmp_path: Path, listed: Any) -> None:
    record, entries, remote = recorded_group(tmp_path)
    key = entries[0].key
    if listed is None:
        del remote[key]
    else:
        remote[key] = listed(remote[key])
    try:
        assert record.unchanged(entries, remote) == {e.key for e in entries[1:]}
    finally:
        record.close()


def test_unchanged_trusts_no_racy_record(tmp_path: Path) -> None:
    record, entries, remote = recorded_group(tmp_path)
    target = entries[1]
    stat = FileStat(target.dev, target.ino, target.size, target.mtime_ns, target.ctime_ns)
    known = record.fetch(target.key)
    assert known is not None
    # Its stat was taken in the same tick as the file's last change: a later change could hide.
    record.store(target.key, dataclasses.replace(known, stat=stat, sampled_ns=target.ctime_ns))
    record.flush()
    try:
        assert record.unchanged(entries, remote) == set(remote) - {target.key}
    finally:
        record.close()


def test_unchanged_answers_in_any_order_and_nothing_when_rehashing_or_off(tmp_path: Path) -> None:
    record, entries, remote = recorded_group(tmp_path)
    db = record.path
    try:
        assert record.unchanged(entries[::-1], remote) == set(remote)
    finally:
        record.close()
    assert db is not None
    for why, record in {
        "--rehash": DigestRecord(db, SCOPE, clock=later, trust=False),
        "off": DigestRecord(None, SCOPE),
    }.items():
        try:
            assert record.unchanged(entries, remote) == set(), why
        finally:
            record.close()


@pytest.mark.parametrize(
    ("listed", "vouched"),
    [
        pytest.param("{etag}", True, id="its-multipart-etag"),
        pytest.param('"{etag}"', True, id="quoted"),
        pytest.param("{ETAG}", True, id="upper-case"),
        pytest.param("{md5}-4", False, id="other-part-count"),
        pytest.param("{etag} 1:{etag}", False, id="not-an-etag"),
        pytest.param("{md5}", False, id="md5-of-parts-alone"),
    ],
)
def test_unchanged_compares_multipart_etags(tmp_path: Path, listed: str, vouched: bool) -> None:
    data = os.urandom(1000)
    path = write(tmp_path / "src" / "big.bin", data)
    db = tmp_path / RECORD_FILE
    md5 = "cd" * 16
    etag = f"{md5}-3"
    record = DigestRecord(db, SCOPE, clock=later)
    seen = record.look(str(path), "big.bin", None)
    assert seen.stat is not None
    record.store(
        "big.bin",
        Entry(seen.stat, seen.sampled_ns, len(data), None, {PART: etag, 2 * PART: "ef" * 16 + "-2"}),
    )
    record.close()
    (entry,) = walk([str(tmp_path / "src")])
    assert isinstance(entry, FileEntry)
    record = DigestRecord(db, SCOPE, clock=later)
    text = listed.replace("{etag}", etag).replace("{ETAG}", etag.upper()).replace("{md5}", md5)
    try:
        assert record.unchanged([entry], {"big.bin": RemoteObject(len(data), text)}) == (
            {"big.bin"} if vouched else set()
        )
        # The control: the record's other part size's ETag is vouched for too.
        assert record.unchanged([entry], {"big.bin": RemoteObject(len(data), "ef" * 16 + "-2")}) == {
            "big.bin"
        }
    finally:
        record.close()


@pytest.mark.parametrize("query", ["_SELECT_UNCHANGED", "_SELECT_UNCHANGED_MULTIPART"])
def test_a_group_finds_each_record_by_its_primary_key(tmp_path: Path, query: str) -> None:
    """The loop order of the group's statement: the group outside, one primary-key search per
    entry inside (the other order scans the whole scope for every entry of the group)."""
    record = DigestRecord(tmp_path / RECORD_FILE, SCOPE)
    try:
        assert record._reader is not None
        plan = [
            row[3]
            for row in record._reader.execute(
                "EXPLAIN QUERY PLAN " + getattr(digest_record, query), ("{}", record.scope, 0)
            )
        ]
    finally:
        record.close()
    assert plan[0].startswith("SCAN e"), plan
    assert any(step.startswith("SEARCH d USING PRIMARY KEY (scope=? AND key=?)") for step in plan), plan

"""The digest record on its own: a real SQLite file in ``tmp_path``, real files, real stats.

The clock is injected (``LATER``: ten seconds from now) so that a file written by the test a
moment ago is old enough to be trusted; the racy tests use the real clock. The putter's side is
played by ``look_and_remember``; the whole loop on a memory bucket (plain or SSE-KMS) is in
``test_digest_record_memory.py``.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import digest_record, pool
from airflow_s3pput.cache_dir import cache_dir
from airflow_s3pput.digest_record import (
    RECORD_FILE,
    DigestRecord,
    Entry,
    FileStat,
    scope_of,
    vouches,
)
from airflow_s3pput.etag import MIB
from airflow_s3pput.modes import RemoteObject
from airflow_s3pput.options import ConnectionSettings, UploadOptions
from airflow_s3pput.putter import PutTask, Putter
from airflow_s3pput.upload_body import FileContent
from airflow_s3pput.walker import FileEntry, walk
from tests.memory_transport import MemoryTransport

SCOPE = "test-scope"
PART = 5 * MIB
OPAQUE = "8f3a1c9be0d2474aa6c1f0e59b7d3e21"  # an SSE-KMS ETag: no digest of anything


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


def look_and_remember(
    record: DigestRecord, path: Path, key: str, remote: RemoteObject | None = None, etag: str | None = None
) -> bool:
    """What the putter does for a small file: look, and when not skipped, read, confirm and
    remember what the server answered (``etag``; by default a plain bucket's: the MD5)."""
    seen = record.look(str(path), key, remote)
    if seen.unchanged:
        return True
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, 1 << 20, 0)
        seen.confirm(fd)
        seen.remember(len(data), md5_hex(data), md5_hex(data) if etag is None else etag)
        return False
    finally:
        os.close(fd)


def skips(record: DigestRecord, path: Path, key: str, remote: RemoteObject) -> bool:
    return record.look(str(path), key, remote).unchanged


def recorded(record: DigestRecord, path: Path, key: str) -> Entry | None:
    """The record of ``key`` as the putter finds it: looked up for a listed object."""
    seen = record.look(str(path), key, RemoteObject(0, ""))
    assert seen.stat is not None  # looked at: the record is on and the file is there
    return seen.entry


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


@pytest.mark.parametrize(
    ("answered", "listed", "vouched"),
    [
        pytest.param("{md5}", "{md5}", True, id="md5"),
        pytest.param("{md5}", '"{MD5}"', True, id="md5-quoted-upper-case"),
        pytest.param("{md5}-3", "{md5}-3", True, id="multipart"),
        pytest.param(OPAQUE, OPAQUE, True, id="opaque"),
        pytest.param('"' + OPAQUE.upper() + '"', OPAQUE, True, id="opaque-answered-quoted-upper-case"),
        # The record holds the server's ETag, not our digest: an object rewritten by another
        # tool (a new opaque ETag) is not vouched for, whatever its size.
        pytest.param(OPAQUE, "{md5}", False, id="opaque-recorded-md5-listed"),
        pytest.param(OPAQUE, "0" * 32, False, id="another-opaque-etag"),
        pytest.param("{md5}", "{md5}-1", False, id="md5-recorded-multipart-listed"),
    ],
)
def test_the_record_vouches_for_the_etag_the_server_answered(
    tmp_path: Path, answered: str, listed: str, vouched: bool
) -> None:
    data = b"any etag shape\n" * 7
    md5 = md5_hex(data)
    src = write(tmp_path / "f", data)
    db = tmp_path / RECORD_FILE
    record = DigestRecord(db, SCOPE, clock=later)
    look_and_remember(record, src, "f", etag=answered.replace("{md5}", md5))
    record.close()
    record = DigestRecord(db, SCOPE, clock=later)
    try:
        text = listed.replace("{md5}", md5).replace("{MD5}", md5.upper())
        assert skips(record, src, "f", RemoteObject(len(data), text)) is vouched
        assert not skips(record, src, "f", RemoteObject(len(data) + 1, text))  # the control: size
    finally:
        record.close()


def test_round_trip_multipart_one_etag_per_record(tmp_path: Path) -> None:
    """A file sent in parts is recorded with the multipart ETag at our part size as its digest
    and the ETag of the object that holds it. Found to match an object another tool uploaded
    in other parts, its record names that object's ETag instead: one object, one ETag."""
    data = os.urandom(2 * PART + 123)
    src = write(tmp_path / "big.bin", data)
    db = tmp_path / RECORD_FILE
    fd = os.open(src, os.O_RDONLY)
    try:
        record = DigestRecord(db, SCOPE, clock=later)
        content = FileContent(fd, len(data), PART)
        ours = content.multipart_etag(PART)
        seen = record.look(str(src), "big", None)
        seen.confirm(fd)
        seen.remember(len(data), ours, ours)
        record.flush()
        entry = recorded(record, src, "big")
        assert entry is not None and (entry.digest, entry.etag) == (ours, ours)
        assert record.look(str(src), "big", RemoteObject(len(data), ours)).unchanged
        theirs = content.multipart_etag(6 * MIB)  # a tool with other parts
        remote = RemoteObject(len(data), theirs)
        seen = record.look(str(src), "big", remote)
        assert not seen.unchanged and seen.entry == entry
        # the object is not the recorded one: no need to read the bytes to say so
        assert not seen.same_as(lambda: pytest.fail("read for an object not recorded"), remote)
        assert content.matches_etag(theirs)  # what the putter does: hash, match, skip
        seen.confirm(fd)
        seen.remember(len(data), ours, theirs)
        record.close()
        record = DigestRecord(db, SCOPE, clock=later)
        assert record.look(str(src), "big", remote).unchanged
        assert not record.look(str(src), "big", RemoteObject(len(data), ours)).unchanged
        assert not record.look(str(src), "big", RemoteObject(len(data), md5_hex(data))).unchanged
        record.close()
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("confirm", "etag"),
    [
        pytest.param(False, "ab" * 16, id="not-confirmed"),
        pytest.param(True, "", id="no-etag"),
    ],
)
def test_nothing_confirmed_nothing_recorded(tmp_path: Path, confirm: bool, etag: str) -> None:
    """A read not confirmed (the putter failed before) or a server answer without an ETag
    leaves no record."""
    src = write(tmp_path / "f", b"abc")
    record = DigestRecord(tmp_path / RECORD_FILE, SCOPE, clock=later)
    fd = os.open(src, os.O_RDONLY)
    try:
        seen = record.look(str(src), "f", None)
        if confirm:
            seen.confirm(fd)
        seen.remember(3, md5_hex(b"abc"), etag)
        record.flush()
        assert recorded(record, src, "f") is None
    finally:
        os.close(fd)
        record.close()


@pytest.mark.parametrize(
    ("digest", "listed", "same"),
    [
        pytest.param("ab" * 16, RemoteObject(3, OPAQUE), True, id="same-bytes-same-object"),
        pytest.param("ab" * 16, RemoteObject(3, f'"{OPAQUE.upper()}"'), True, id="quoted-upper-case"),
        pytest.param("cd" * 16, RemoteObject(3, OPAQUE), False, id="other-bytes"),
        pytest.param("ab" * 16, RemoteObject(3, "0" * 32), False, id="other-object"),
        pytest.param("ab" * 16, RemoteObject(4, OPAQUE), False, id="other-size"),
    ],
)
def test_same_as_needs_the_recorded_bytes_in_the_recorded_object(
    tmp_path: Path, digest: str, listed: RemoteObject, same: bool
) -> None:
    """The putter's test for a file read although recorded (touched, say): on a bucket with
    opaque ETags only the record can tell that the object holds these bytes."""
    src = write(tmp_path / "f", b"abc")
    record = DigestRecord(tmp_path / RECORD_FILE, SCOPE, clock=later)
    try:
        seen = record.look(str(src), "f", None)
        assert seen.stat is not None
        record.store("f", Entry(seen.stat._replace(mtime_ns=1), seen.sampled_ns, 3, "ab" * 16, OPAQUE))
        record.flush()
        seen = record.look(str(src), "f", listed)
        assert not seen.unchanged  # another mtime: the record does not vouch, the file is read
        assert seen.same_as(lambda: digest, listed) is same
        assert not record.look(str(src), "other", listed).same_as(lambda: digest, listed)  # no record
    finally:
        record.close()


# -- what makes a record stale ---------------------------------------------------------------

BASE = FileStat(dev=1, ino=2, size=3, mtime_ns=10**18, ctime_ns=10**18)
ENTRY = Entry(BASE, sampled_ns=10**18 + 5 * 10**9, stored_size=3, digest="ab" * 16, etag=OPAQUE)
LISTED = RemoteObject(3, OPAQUE)


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
    assert vouches(ENTRY, BASE, LISTED)  # the control: the same file is vouched for
    assert not vouches(ENTRY, stat, LISTED)


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
    assert vouches(entry, stat, LISTED) is trusted


@pytest.mark.parametrize(
    ("listed", "vouched"),
    [
        pytest.param(LISTED, True, id="the-recorded-object"),
        pytest.param(RemoteObject(3, f'"{OPAQUE.upper()}"'), True, id="quoted-upper-case"),
        pytest.param(RemoteObject(3, "ab" * 16), False, id="the-digest-is-not-the-etag"),
        pytest.param(RemoteObject(3, "0" * 32), False, id="another-object"),
        pytest.param(RemoteObject(4, OPAQUE), False, id="another-size"),
    ],
)
def test_the_listing_must_show_the_recorded_object(listed: RemoteObject, vouched: bool) -> None:
    assert vouches(ENTRY, BASE, listed) is vouched


def test_a_file_just_written_is_not_recorded(tmp_path: Path) -> None:
    """With the real clock, a file younger than the margin is read on the next run too."""
    src = write(tmp_path / "fresh", b"fresh")
    db = tmp_path / RECORD_FILE
    record = DigestRecord(db, SCOPE)
    look_and_remember(record, src, "fresh")
    record.close()
    record = DigestRecord(db, SCOPE, clock=later)
    try:
        assert recorded(record, src, "fresh") is None
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
        assert recorded(record, src, "skewed") is None
    finally:
        record.close()


def test_a_file_changed_while_read_is_not_recorded(tmp_path: Path) -> None:
    src = write(tmp_path / "f", b"before")
    record = DigestRecord(tmp_path / RECORD_FILE, SCOPE, clock=later)
    fd = os.open(src, os.O_RDONLY)
    try:
        seen = record.look(str(src), "f", None)
        data = os.pread(fd, 100, 0)
        os.chmod(src, 0o600)  # a change of ctime between the look and the end of the read
        seen.confirm(fd)
        seen.remember(len(data), md5_hex(data), md5_hex(data))
        record.flush()
        assert recorded(record, src, "f") is None
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
            data = os.pread(fd, 100, 0)
            seen.confirm(fd)
            seen.remember(len(data), md5_hex(data), md5_hex(data))
        finally:
            os.close(fd)
        record.flush()
        assert recorded(record, src, "f") is None
    finally:
        record.close()


def test_lookups_answer_many_keys_in_any_order(tmp_path: Path) -> None:
    """Keys asked out of order, keys with no record between recorded ones and keys past the
    last one are all answered right, one by one (the putter) and as a group (the engine)."""
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
    remote = RemoteObject(8, md5_hex(b"windowed"))
    st = src.stat()
    for order in (keys, shuffled, list(reversed(keys))):
        record = DigestRecord(db, SCOPE, clock=later)
        try:
            assert {k for k in order[::7] if skips(record, src, k, remote)} == recorded & set(order[::7])
            entries = [
                FileEntry(str(src), k, 8, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_ctime_ns) for k in order
            ]
            assert record.unchanged(entries, dict.fromkeys(keys, remote)) == recorded
        finally:
            record.close()


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
        entry = recorded(record, src, "f")
        assert entry is not None and entry.digest == md5_hex(data)
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
        assert recorded(fresh, src, "k00000") is None
    finally:
        fresh.close()


def test_a_busy_database_costs_only_the_records_it_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run holds a write transaction longer than the busy timeout: lookups still
    answer (WAL), the commits that waited are lost with one warning, and the record stays on."""
    monkeypatch.setattr(digest_record, "BUSY_TIMEOUT_SECONDS", 0.2)
    db = tmp_path / RECORD_FILE
    files = {name: write(tmp_path / name, name.encode()) for name in ("a", "b", "c", "d")}
    remote = {name: RemoteObject(1, md5_hex(name.encode())) for name in files}
    record = DigestRecord(db, SCOPE, clock=later)
    look_and_remember(record, files["a"], "a")
    record.flush()
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with caplog.at_level(logging.WARNING, logger="airflow_s3pput.digest_record"):
            assert skips(record, files["a"], "a", remote["a"])
            look_and_remember(record, files["b"], "b")
            record.flush()  # waits 0.2 s, then gives up
            look_and_remember(record, files["c"], "c")
            record.flush()
        other.execute("COMMIT")
    finally:
        other.close()
    assert len(caplog.records) == 1 and "locked" in caplog.text, caplog.text
    assert record.enabled
    look_and_remember(record, files["d"], "d")
    record.close()
    record = DigestRecord(db, SCOPE, clock=later)
    try:
        assert {k for k in files if skips(record, files[k], k, remote[k])} == {"a", "d"}
        assert not any(tmp_path.glob(f"{RECORD_FILE}.corrupt-*"))
    finally:
        record.close()


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


def _writer(db: str, src: str, keys: list[str]) -> None:
    """A process that remembers ``keys``."""
    record = DigestRecord(Path(db), SCOPE, clock=later)
    for key in keys:
        look_and_remember(record, Path(src), key)
    record.close()


def _opener(db: str, results: Any) -> None:
    """A process that opens (creating if need be) the record and says whether it is on."""
    record = DigestRecord(Path(db), SCOPE, clock=later)
    results.put(record.enabled)
    record.close()


def test_runs_that_create_the_record_together_all_open_it(tmp_path: Path) -> None:
    # SQLite answers a journal-mode switch racing another with "database is locked" at once,
    # without waiting: once in a few dozen fresh databases opened by four processes together.
    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    for round_ in range(100):
        db = tmp_path / f"r{round_}" / RECORD_FILE
        db.parent.mkdir()
        procs = [fork.Process(target=_opener, args=(str(db), results)) for _ in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
            assert proc.exitcode == 0
        assert [results.get(timeout=10) for _ in procs] == [True] * 4, f"round {round_}"


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    src = write(tmp_path / "f", b"shared")
    db = tmp_path / RECORD_FILE
    spawn = multiprocessing.get_context("spawn")
    # Overlapping key sets, each large enough for several batched commits.
    keys_a = [f"k{i:05d}" for i in range(0, 4000)]
    keys_b = [f"k{i:05d}" for i in range(2000, 6000)]
    procs = [spawn.Process(target=_writer, args=(str(db), str(src), keys)) for keys in (keys_a, keys_b)]
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


def test_a_worker_process_commits_what_it_learnt_after_each_list_of_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker process is never closed (the pool ends it): ``pool._run_tasks`` commits its
    putter's records before it answers, well within the record's own flush interval."""
    monkeypatch.setattr(digest_record, "RACY_MARGIN_NS", 50_000_000)
    monkeypatch.setattr(digest_record, "FLUSH_SECONDS", 3600.0)
    files = {f"f{i}": write(tmp_path / "src" / f"f{i}", os.urandom(10 + i)) for i in range(3)}
    time.sleep(0.1)
    options = UploadOptions(bucket="bucket", sources=(str(tmp_path / "src"),), cache_dir=str(tmp_path / "c"))
    putter = Putter(options, MemoryTransport())
    monkeypatch.setattr(pool, "_worker", (putter, ThreadPoolExecutor(2)))
    try:
        tasks = [PutTask(str(p), k, p.stat().st_size, p.stat().st_mtime_ns) for k, p in files.items()]
        assert [r.action for r in pool._run_tasks(tasks)] == ["put"] * 3
        reader = DigestRecord(tmp_path / "c" / RECORD_FILE, scope_of(options))
        try:
            # committed, the putter still open
            assert all(recorded(reader, p, k) is not None for k, p in files.items())
        finally:
            reader.close()
    finally:
        putter.close()


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


def test_unchanged_tells_keys_apart_whatever_characters_they_hold(tmp_path: Path) -> None:
    names = ["d/a", "d/a\x01b", "d/a b", "d/é\x02", 'd/😀 "q"']
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
    known = recorded(record, Path(target.path), target.key)
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
        pytest.param("{digest}", False, id="the-digest-of-the-bytes"),
    ],
)
def test_unchanged_compares_the_recorded_etag(tmp_path: Path, listed: str, vouched: bool) -> None:
    """A walk group's file recorded as sent in parts: the listing must show the recorded
    object's ETag, whatever the digest of the bytes."""
    data = os.urandom(1000)
    path = write(tmp_path / "src" / "big.bin", data)
    db = tmp_path / RECORD_FILE
    md5 = "cd" * 16
    etag = f"{md5}-3"
    record = DigestRecord(db, SCOPE, clock=later)
    seen = record.look(str(path), "big.bin", None)
    assert seen.stat is not None
    record.store("big.bin", Entry(seen.stat, seen.sampled_ns, len(data), "ef" * 16 + "-3", etag))
    record.close()
    (entry,) = walk([str(tmp_path / "src")])
    assert isinstance(entry, FileEntry)
    record = DigestRecord(db, SCOPE, clock=later)
    text = listed.replace("{etag}", etag).replace("{ETAG}", etag.upper()).replace("{md5}", md5)
    text = text.replace("{digest}", "ef" * 16 + "-3")
    try:
        assert record.unchanged([entry], {"big.bin": RemoteObject(len(data), text)}) == (
            {"big.bin"} if vouched else set()
        )
    finally:
        record.close()


def test_a_group_finds_each_record_by_its_primary_key(tmp_path: Path) -> None:
    """The group's statement: one primary-key search per key of the group (a scan of the
    scope for each key would cost minutes for 100,000 files)."""
    record = DigestRecord(tmp_path / RECORD_FILE, SCOPE)
    try:
        assert record._db is not None
        plan = [
            row[3]
            for row in record._db.execute(
                "EXPLAIN QUERY PLAN " + digest_record._SELECT_KEYS, (record.scope, "[]")
            )
        ]
    finally:
        record.close()
    assert any(step.startswith("SEARCH digests USING PRIMARY KEY (scope=? AND key=?)") for step in plan), plan
    assert not any(step.startswith("SCAN digests") for step in plan), plan

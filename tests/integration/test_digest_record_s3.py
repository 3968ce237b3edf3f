"""The digest record in real runs against SeaweedFS: unchanged files are not read again, and
every way a record can be stale leads to reading the file, never to a wrong skip.

Reads are counted in this process (``ReadCounter``: every read of file content goes through
``os.pread``/``os.preadv``); the CLI runs in-process with one process. Where content changes,
the test also checks that the new bytes landed, so a wrong skip fails twice.

Trees are made a moment before the first run; a record younger than the racy margin would not
be written, so most tests shrink the margin to 50 ms and wait 0.1 s after making a tree.
``test_fresh_files_are_read_again_until_old_enough`` runs with the real margin.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import digest_record, engine
from airflow_s3pput.digest_record import RECORD_FILE
from tests.helpers import CliRun, CliRunner, ReadCounter, make_tree

MIB = 1024 * 1024
MARGIN_NS = 50_000_000
#: multipart from 5 MiB in 5 MiB parts: BIG goes up in 3 parts
MULTIPART = ("--multipart-threshold", "5MiB", "--part-size", "5MiB")
BIG = "video/big.bin"


@pytest.fixture
def short_margin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digest_record, "RACY_MARGIN_NS", MARGIN_NS)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> ReadCounter:
    return ReadCounter(monkeypatch)


def settle() -> None:
    """Let the files just written become older than the (shortened) racy margin."""
    time.sleep(2 * MARGIN_NS / 1e9)


def tree_files() -> dict[str, bytes | str]:
    files: dict[str, bytes | str] = {f"docs/page-{i:02d}.txt": os.urandom(200 + i) for i in range(12)}
    files["top.bin"] = os.urandom(4096)
    files[BIG] = os.urandom(11 * MIB)
    return files


def upload(cli: CliRunner, cache: Path, bucket: str, src: Path, *extra: str) -> CliRun:
    run = cli("--bucket", bucket, "--cache-dir", str(cache), "--json", "-v", *MULTIPART, *extra, str(src))
    assert run.code == 0, run.err
    return run


def put_keys(run: CliRun) -> set[str]:
    """The keys a ``-v --json`` run put (its per-file lines are on stderr)."""
    return {line.split(" -> ", 1)[1] for line in run.err.splitlines() if line.startswith("put ")}


def body(client: Any, bucket: str, key: str) -> bytes:
    data: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def edit_same_size(path: Path, *, keep_mtime: bool = True) -> bytes:
    """Overwrite a few bytes in place (in the middle: another part of a multipart file) and put
    the mtime back, as ``touch -r`` would; returns the new content."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    with open(path, "r+b") as f:
        f.seek(middle)
        f.write(data[middle : middle + 4])
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns or not keep_mtime
    return bytes(data)


@pytest.mark.usefixtures("short_margin")
def test_unchanged_rerun_reads_nothing(
    cli: CliRunner, bucket: str, tmp_path: Path, cache: Path, reads: ReadCounter
) -> None:
    files = tree_files()
    src = make_tree(tmp_path / "src", files)
    settle()
    first = upload(cli, cache, bucket, src)
    assert first.summary["files_put"] == len(files)
    assert (cache / RECORD_FILE).exists()
    total = sum(len(v) for v in files.values() if isinstance(v, bytes))
    assert sum(reads.read(src / k) for k in files) >= total  # the first run read everything

    reads.reset()
    again = upload(cli, cache, bucket, src)
    assert again.summary["files_put"] == 0
    assert again.summary["files_skipped"] == len(files)
    assert {k: reads.read(src / k) for k in files if reads.read(src / k)} == {}

    for flag in ("--rehash", "--no-digest-cache"):
        reads.reset()
        forced = upload(cli, cache, bucket, src, flag)
        assert forced.summary["files_skipped"] == len(files), flag
        assert all(reads.read(src / k) >= len(files[k]) for k in files), flag


@pytest.mark.usefixtures("short_margin")
def test_same_size_edits_with_mtime_restored_put_exactly_those_files(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path, cache: Path, reads: ReadCounter
) -> None:
    files = tree_files()
    src = make_tree(tmp_path / "src", files)
    settle()
    upload(cli, cache, bucket, src)
    small = "docs/page-05.txt"
    new_small = edit_same_size(src / small)
    new_big = edit_same_size(src / BIG)
    reads.reset()
    run = upload(cli, cache, bucket, src)
    assert put_keys(run) == {small, BIG}
    assert run.summary["files_skipped"] == len(files) - 2
    assert body(s3_client, bucket, small) == new_small
    assert body(s3_client, bucket, BIG) == new_big
    untouched = [k for k in files if k not in (small, BIG)]
    assert [k for k in untouched if reads.read(src / k)] == []


@pytest.mark.usefixtures("short_margin")
def test_edits_across_several_lookup_groups_put_exactly_those_files(
    cli: CliRunner,
    s3_client: Any,
    bucket: str,
    tmp_path: Path,
    cache: Path,
    reads: ReadCounter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine decides a walk group while the next one is listed, and skips a group's
    unchanged files by the walk's stat: with groups of 10 keys, 95 files in 3 directories make
    10 groups; same-size edits with the mtime restored in the first, a middle and the last
    group and a file made anew are put; a file whose mode changed (its ctime with it) is read
    again and skipped; nothing else is read."""
    monkeypatch.setattr(engine, "LOOKUP_GROUP", 10)
    files: dict[str, bytes | str] = {f"d{i % 3}/f-{i:03d}.bin": os.urandom(50 + i) for i in range(95)}
    src = make_tree(tmp_path / "src", files)
    settle()
    assert upload(cli, cache, bucket, src).summary["files_put"] == len(files)
    ordered = sorted(files)
    edited = {ordered[0], ordered[47], ordered[-1]}
    new_bodies = {key: edit_same_size(src / key) for key in edited}
    _replace_by_rename(src / ordered[60], os.urandom(len(files[ordered[60]])))
    (src / ordered[20]).chmod(0o600)
    reads.reset()
    run = upload(cli, cache, bucket, src)
    assert put_keys(run) == edited | {ordered[60]}
    assert run.summary["files_skipped"] == len(files) - 4
    for key, data in new_bodies.items():
        assert body(s3_client, bucket, key) == data
    read_again = {k for k in ordered if reads.read(src / k)}
    assert read_again == edited | {ordered[60], ordered[20]}


def _rewrite(path: Path, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.write(data)


def _replace_by_rename(path: Path, data: bytes) -> None:
    st = path.stat()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)


def _truncate_and_regrow(path: Path, data: bytes) -> None:
    st = path.stat()
    os.truncate(path, 0)
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _rewrite_keep_mtime(path: Path, data: bytes) -> None:
    st = path.stat()
    _rewrite(path, data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _touch(path: Path, data: bytes) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def _copy_back(path: Path, data: bytes) -> None:
    """The same bytes and mtime in a new inode (``cp -p`` then ``mv``)."""
    tmp = path.with_name(path.name + ".copy")
    shutil.copy2(path, tmp)
    os.replace(tmp, path)


OLD_MTIME = 978307200 * 10**9  # 2001-01-01


@pytest.mark.usefixtures("short_margin")
@pytest.mark.parametrize(
    "key", [pytest.param("docs/page-03.txt", id="small"), pytest.param(BIG, id="multipart")]
)
@pytest.mark.parametrize(
    ("change", "content_changes", "old_mtime"),
    [
        pytest.param(_rewrite_keep_mtime, True, False, id="edited-mtime-restored"),
        pytest.param(_replace_by_rename, True, False, id="replaced-by-rename"),
        pytest.param(_truncate_and_regrow, True, False, id="truncated-and-regrown"),
        pytest.param(_rewrite_keep_mtime, True, True, id="mtime-long-ago-edited-restored"),
        pytest.param(_touch, False, False, id="touched-same-content"),
        pytest.param(_copy_back, False, False, id="copied-to-new-inode-same-content"),
    ],
)
def test_a_stale_record_means_the_file_is_read(
    cli: CliRunner,
    s3_client: Any,
    bucket: str,
    tmp_path: Path,
    cache: Path,
    reads: ReadCounter,
    key: str,
    change: Callable[[Path, bytes], None],
    content_changes: bool,
    old_mtime: bool,
) -> None:
    files = tree_files()
    src = make_tree(tmp_path / "src", files)
    if old_mtime:
        os.utime(src / key, ns=(OLD_MTIME, OLD_MTIME))
    settle()
    upload(cli, cache, bucket, src)
    original = (src / key).read_bytes()
    new = bytes(b ^ 0x5A for b in original) if content_changes else original
    change(src / key, new)
    assert (src / key).read_bytes() == new and len(new) == len(original)
    reads.reset()
    run = upload(cli, cache, bucket, src)
    assert reads.read(src / key) >= len(new)  # the record did not vouch for the file: read
    assert put_keys(run) == ({key} if content_changes else set())
    assert body(s3_client, bucket, key) == new
    assert [k for k in files if k != key and reads.read(src / k)] == []


@pytest.fixture
def other_device_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on another filesystem than ``tmp_path`` when the machine has one (/dev/shm is
    tmpfs); else one beside it, and the move changes only the inodes (``test_..._device``)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != tmp_path.stat().st_dev:
        path = shm / f"s3pput-test-{uuid.uuid4().hex}"
    else:
        path = tmp_path / "elsewhere"
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.usefixtures("short_margin")
def test_tree_moved_to_another_device_is_read_again(
    cli: CliRunner,
    s3_client: Any,
    bucket: str,
    tmp_path: Path,
    cache: Path,
    reads: ReadCounter,
    other_device_dir: Path,
) -> None:
    """SOURCE is a symlink whose target moves to another filesystem with the same names,
    sizes and mtimes: the paths the walk sees are the same, the devices and inodes are not."""
    files = tree_files()
    make_tree(tmp_path / "here", files)
    link = tmp_path / "src"
    link.symlink_to(tmp_path / "here")
    settle()
    upload(cli, cache, bucket, link)
    shutil.copytree(tmp_path / "here", other_device_dir, copy_function=shutil.copy2)
    changed = edit_same_size(other_device_dir / "top.bin")
    link.unlink()
    link.symlink_to(other_device_dir)
    reads.reset()
    run = upload(cli, cache, bucket, link)
    assert put_keys(run) == {"top.bin"}
    assert body(s3_client, bucket, "top.bin") == changed
    assert all(reads.read(link / k) >= len(files[k]) for k in files)


@pytest.mark.usefixtures("short_margin")
def test_a_file_with_its_mtime_in_the_future_is_always_read(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path, cache: Path, reads: ReadCounter
) -> None:
    files = tree_files()
    src = make_tree(tmp_path / "src", files)
    future = time.time_ns() + 86400 * 10**9  # a clock a day ahead wrote it
    os.utime(src / "top.bin", ns=(future, future))
    settle()
    upload(cli, cache, bucket, src)
    reads.reset()
    unchanged = upload(cli, cache, bucket, src)
    assert put_keys(unchanged) == set()
    assert reads.read(src / "top.bin") == len(files["top.bin"])
    assert [k for k in files if k != "top.bin" and reads.read(src / k)] == []
    new = edit_same_size(src / "top.bin")
    assert put_keys(upload(cli, cache, bucket, src)) == {"top.bin"}
    assert body(s3_client, bucket, "top.bin") == new


@pytest.mark.usefixtures("short_margin")
def test_a_record_from_another_bucket_is_not_used(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path, cache: Path, reads: ReadCounter
) -> None:
    files = tree_files()
    src = make_tree(tmp_path / "src", files)
    settle()
    upload(cli, cache, bucket, src)
    other = f"t-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=other)
    for key, value in files.items():  # same keys and sizes, other bytes
        assert isinstance(value, bytes)
        s3_client.put_object(Bucket=other, Key=key, Body=bytes(b ^ 1 for b in value))
    reads.reset()
    run = upload(cli, cache, other, src)
    assert put_keys(run) == set(files)
    assert all(reads.read(src / k) >= len(files[k]) for k in files)
    assert body(s3_client, other, BIG) == files[BIG]
    reads.reset()
    assert put_keys(upload(cli, cache, other, src)) == set()  # the other bucket's own record
    assert [k for k in files if reads.read(src / k)] == []


@pytest.mark.usefixtures("short_margin")
def test_a_gzip_record_is_not_used_without_gzip(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path, cache: Path
) -> None:
    text = "the same line again\n" * 500
    src = make_tree(tmp_path / "src", {"notes.txt": text})
    settle()
    upload(cli, cache, bucket, src, "--gzip")
    assert s3_client.head_object(Bucket=bucket, Key="notes.txt")["ContentEncoding"] == "gzip"
    assert put_keys(upload(cli, cache, bucket, src, "--gzip")) == set()  # its own scope: skipped
    # The gzipped object has the record's stored size and MD5: only the scope tells them apart.
    run = upload(cli, cache, bucket, src)
    assert put_keys(run) == {"notes.txt"}
    assert body(s3_client, bucket, "notes.txt") == text.encode()


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(("--dry-run",), id="dry-run"),
        pytest.param(("--put", "add"), id="add"),
        pytest.param(("--put", "stupid"), id="stupid"),
        pytest.param(("--no-digest-cache",), id="no-digest-cache"),
    ],
)
def test_runs_that_need_no_record_do_not_make_one(
    cli: CliRunner, bucket: str, tmp_path: Path, cache: Path, extra: tuple[str, ...]
) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a", "b/c.txt": "c"})
    upload(cli, cache, bucket, src, *extra)
    assert not (cache / RECORD_FILE).exists()


def test_fresh_files_are_read_again_until_old_enough(
    cli: CliRunner, bucket: str, tmp_path: Path, cache: Path, reads: ReadCounter
) -> None:
    """The real racy margin: files written just before a run are not recorded by it."""
    files = {f"f{i}.txt": os.urandom(100) for i in range(5)}
    src = make_tree(tmp_path / "src", dict(files))
    made = time.monotonic()
    upload(cli, cache, bucket, src)
    reads.reset()
    assert put_keys(upload(cli, cache, bucket, src)) == set()
    assert all(reads.read(src / k) == 100 for k in files)  # too fresh to be trusted: read
    time.sleep(max(0.0, made + digest_record.RACY_MARGIN_NS / 1e9 + 0.2 - time.monotonic()))
    upload(cli, cache, bucket, src)  # old enough now: recorded
    reads.reset()
    assert put_keys(upload(cli, cache, bucket, src)) == set()
    assert [k for k in files if reads.read(src / k)] == []


def test_worker_processes_record_what_they_read(
    cli: CliRunner, bucket: str, tmp_path: Path, cache: Path
) -> None:
    """Spawned workers open their own record and commit it after each list of tasks (they are
    never closed), and the second run skips by those records. The workers use the real margin:
    the files are made old enough by waiting."""
    files = {f"d{i % 3}/f{i:02d}.txt": os.urandom(64) for i in range(30)}
    src = make_tree(tmp_path / "src", dict(files))
    time.sleep(digest_record.RACY_MARGIN_NS / 1e9 + 0.2)
    first = upload(cli, cache, bucket, src, "--processes", "2", "--transport", "boto3")
    assert first.summary["files_put"] == len(files)
    with sqlite3.connect(cache / RECORD_FILE) as connection:
        keys = {row[0] for row in connection.execute("SELECT key FROM digests")}
    assert keys == set(files)
    again = upload(cli, cache, bucket, src, "--processes", "2", "--transport", "boto3")
    assert again.summary["files_skipped"] == len(files)

"""The putter against the in-memory transport: integrity, retries of damaged transfers, aborts."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.errors import S3Error
from airflow_s3pput.etag import MIB
from airflow_s3pput.modes import RemoteObject
from airflow_s3pput.options import ConnectionSettings, UploadOptions
from airflow_s3pput.putter import PutTask, Putter
from airflow_s3pput.stats import PutResult
from tests.memory_transport import MemoryTransport


def options(tmp_path: Path, **overrides: Any) -> UploadOptions:
    values: dict[str, Any] = {
        "bucket": "bucket",
        "sources": (str(tmp_path),),
        "multipart_threshold": 5 * MIB,
        "part_size": 5 * MIB,
        "connection": ConnectionSettings(max_attempts=3),
    }
    return UploadOptions(**{**values, **overrides})


def task_for(path: Path, key: str, remote: RemoteObject | None = None) -> PutTask:
    st = path.stat()
    return PutTask(str(path), key, st.st_size, st.st_mtime_ns, remote)


def put_both_ways(putter: Putter, task: PutTask) -> list[PutResult]:
    """``put`` and ``put_async`` of the same task: the two paths must agree."""
    results = [putter.put(task)]
    done = threading.Event()
    putter.put_async(task, lambda result: (results.append(result), done.set()))
    assert done.wait(10)
    return results


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.txt"
    path.write_bytes(b"some text")
    return path


@pytest.fixture
def large(tmp_path: Path) -> Path:
    path = tmp_path / "large.bin"
    path.write_bytes(os.urandom(11 * MIB))
    return path


def test_a_small_file_is_stored_with_its_md5_and_type(tmp_path: Path, small: Path) -> None:
    transport = MemoryTransport()
    results = put_both_ways(Putter(options(tmp_path), transport), task_for(small, "k.txt"))
    assert [(r.action, r.reason, r.bytes) for r in results] == [("put", "new", 9)] * 2
    stored = transport.objects["k.txt"]
    assert stored.body == b"some text"
    assert stored.params["ContentType"] == "text/plain"
    assert stored.etag == hashlib.md5(b"some text").hexdigest()


@pytest.mark.parametrize("damaged", [pytest.param(1, id="once"), pytest.param(2, id="twice")])
def test_a_body_damaged_on_the_way_is_sent_again(tmp_path: Path, small: Path, damaged: int) -> None:
    transport = MemoryTransport()
    putter = Putter(options(tmp_path), transport)  # 3 attempts
    for result in (putter.put(task_for(small, "a")),):
        assert (result.action, result.error) == ("put", "")
    transport.damage_next["PutObject"] = damaged
    done: list[PutResult] = []
    putter.put_async(task_for(small, "b"), done.append)
    assert [(r.action, r.error) for r in done] == [("put", "")]
    assert transport.calls["PutObject"] == 1 + 1 + damaged
    assert transport.objects["b"].body == b"some text"


def test_a_body_damaged_every_time_fails_after_the_runs_attempts(tmp_path: Path, small: Path) -> None:
    transport = MemoryTransport()
    transport.damage_next["PutObject"] = 6
    results = put_both_ways(Putter(options(tmp_path), transport), task_for(small, "k"))
    assert [r.action for r in results] == ["fail", "fail"]
    for result in results:
        assert "damaged in transit 3 times" in result.error and "BadDigest" in result.error, result.error
    assert transport.calls["PutObject"] == 6
    assert "k" not in transport.objects


def test_an_etag_that_is_not_our_md5_is_sent_again(tmp_path: Path, small: Path) -> None:
    transport = MemoryTransport()
    transport.wrong_etags = 1
    result = Putter(options(tmp_path), transport).put(task_for(small, "k"))
    assert (result.action, transport.calls["PutObject"]) == ("put", 2)


def test_errors_that_sending_again_cannot_cure_are_not_repeated(tmp_path: Path, small: Path) -> None:
    transport = MemoryTransport()
    transport.fail_next["PutObject"] = [S3Error("AccessDenied", "no", status=403)] * 2
    results = put_both_ways(Putter(options(tmp_path), transport), task_for(small, "k"))
    assert [(r.action, r.error) for r in results] == [("fail", "AccessDenied: no")] * 2
    assert transport.calls["PutObject"] == 2  # once per path: no retry of our own


def test_a_large_file_goes_up_in_parts_with_a_multipart_etag(tmp_path: Path, large: Path) -> None:
    transport = MemoryTransport()
    transport.damage_next["UploadPart"] = 1  # one part damaged once: that part is sent again
    result = Putter(options(tmp_path), transport).put(task_for(large, "big"))
    assert (result.action, result.bytes) == ("put", 11 * MIB)
    assert transport.objects["big"].body == large.read_bytes()
    assert transport.objects["big"].etag.endswith("-3")
    assert transport.calls["UploadPart"] == 3 + 1
    assert transport.uploads == {}


def test_a_failed_part_aborts_the_upload(tmp_path: Path, large: Path) -> None:
    transport = MemoryTransport()
    transport.fail_next["UploadPart"] = [S3Error("InternalError", status=500)]
    result = Putter(options(tmp_path), transport).put(task_for(large, "big"))
    assert result.action == "fail" and result.error == "InternalError"
    assert "big" not in transport.objects
    assert transport.uploads == {}
    assert transport.calls["AbortMultipartUpload"] == 1


def test_another_writers_open_upload_of_the_same_key_is_left_alone(tmp_path: Path, large: Path) -> None:
    transport = MemoryTransport()
    theirs = transport.open_upload("big", "2020-01-01T00:00:00Z")  # not in our journal
    assert Putter(options(tmp_path), transport).put(task_for(large, "big")).action == "put"
    assert list(transport.uploads) == [theirs]


@pytest.mark.parametrize(
    ("mode", "remote", "action", "reason"),
    [
        pytest.param("update", "same", "skip", "unchanged", id="update-same"),
        pytest.param("update", "other", "put", "changed", id="update-other"),
        pytest.param("add", "other", "skip", "exists", id="add-exists"),
        pytest.param("stupid", "same", "put", "always", id="stupid-always"),
    ],
)
def test_the_mode_decides_from_the_listed_object(
    tmp_path: Path, small: Path, mode: str, remote: str, action: str, reason: str
) -> None:
    transport = MemoryTransport()
    etag = hashlib.md5(small.read_bytes() if remote == "same" else b"other txt").hexdigest()
    listed = RemoteObject(small.stat().st_size, etag)
    results = put_both_ways(Putter(options(tmp_path, mode=mode), transport), task_for(small, "k", listed))
    assert [(r.action, r.reason) for r in results] == [(action, reason)] * 2
    assert transport.calls["PutObject"] == (2 if action == "put" else 0)


def test_a_dry_run_sends_nothing(tmp_path: Path, small: Path, large: Path) -> None:
    transport = MemoryTransport()
    putter = Putter(options(tmp_path, dry_run=True), transport)
    results = put_both_ways(putter, task_for(small, "s")) + put_both_ways(putter, task_for(large, "l"))
    assert {r.action for r in results} == {"put"}
    assert sum(transport.calls.values()) == 0


class _WireCounter(MemoryTransport):
    """Holds the parts on the wire until ``full`` of them are there and the part workers have
    hashed ``hashed_wanted`` parts (or a second passed); records what it saw."""

    def __init__(self, full: int, hashed_wanted: int) -> None:
        super().__init__()
        self.full, self.hashed_wanted = full, hashed_wanted
        self.on_wire = self.most = self.hashed = self.hashed_while_full = 0
        self.changed = threading.Condition()

    def count_hash(self) -> None:
        with self.changed:
            self.hashed += 1
            self.changed.notify_all()

    def upload_part(self, *args: Any) -> str:
        with self.changed:
            self.on_wire += 1
            self.most = max(self.most, self.on_wire)
            self.changed.notify_all()
            self.changed.wait_for(
                lambda: self.on_wire >= self.full and self.hashed >= self.hashed_wanted, timeout=1
            )
            if self.on_wire >= self.full and not self.hashed_while_full:  # the first time
                self.hashed_while_full = self.hashed
        try:
            return super().upload_part(*args)
        finally:
            with self.changed:
                self.on_wire -= 1


def test_parts_are_hashed_ahead_while_the_wire_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three threads: three parts on the wire at once, never more, and meanwhile the next two
    are hashed, so that a slot that frees is filled at once."""
    from airflow_s3pput import checksums

    path = tmp_path / "many-parts.bin"
    path.write_bytes(os.urandom(8 * 5 * MIB))
    transport = _WireCounter(full=3, hashed_wanted=5)
    real_digests = checksums.md5_and_crc64nvme

    def counted(*args: Any) -> tuple[bytes, int]:
        digests = real_digests(*args)
        transport.count_hash()
        return digests

    monkeypatch.setattr(checksums, "md5_and_crc64nvme", counted)
    putter = Putter(options(tmp_path, threads=3), transport)
    result = putter.put(task_for(path, "big"))
    putter.close()
    assert result.action == "put"
    assert transport.objects["big"].body == path.read_bytes()
    assert transport.most == 3
    assert transport.hashed_while_full == 5

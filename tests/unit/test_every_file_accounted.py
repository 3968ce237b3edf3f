"""Every file the walk yields ends as put, skipped or failed, whatever the concurrency.

A run once ended at the first directory holding more files than ``threads`` x 4 and reported
"files put 0", exit 0: the in-flight room was smaller than the lists sent to the dispatcher.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import engine
from airflow_s3pput.etag import MIB
from airflow_s3pput.putter import PutTask
from airflow_s3pput.stats import PutResult
from tests.helpers import make_tree
from tests.memory_transport import MemoryTransport
from tests.unit.test_engine_memory import opts

SHAPES = {
    "one crowded directory": {f"d/f{i:03}.txt": f"file {i}" for i in range(70)},
    "many small directories": {f"d{i % 9}/e{i % 3}/f{i:03}.txt": f"f{i}" for i in range(70)},
    "flat with a large file": {f"f{i:03}.txt": "x" * i for i in range(30)} | {"big.bin": "b" * (6 * MIB)},
}


@pytest.mark.parametrize("threads", range(1, 9))
@pytest.mark.parametrize("shape", SHAPES)
def test_every_walked_file_is_put_whatever_the_thread_count(tmp_path: Path, threads: int, shape: str) -> None:
    tree = SHAPES[shape]
    src = make_tree(tmp_path / "src", tree)
    transport = MemoryTransport()
    stats = engine.upload(opts(src, threads=threads), transport=transport)
    assert (stats.files_put, stats.failed) == (len(tree), 0)
    assert set(transport.objects) == set(tree)
    rerun = engine.upload(opts(src, threads=threads), transport=transport)
    assert (rerun.files_put, rerun.files_skipped, rerun.failed) == (0, len(tree), 0)


@pytest.mark.parametrize("threads", [1, 3])
def test_a_dry_run_counts_every_file(tmp_path: Path, threads: int) -> None:
    src = make_tree(tmp_path / "src", SHAPES["one crowded directory"])
    stats = engine.upload(opts(src, threads=threads, dry_run=True), transport=MemoryTransport())
    assert stats.files_put == 70


@pytest.mark.parametrize("threads", [1, 2, 16])
def test_limit_puts_exactly_the_limit(tmp_path: Path, threads: int) -> None:
    src = make_tree(tmp_path / "src", SHAPES["one crowded directory"])
    transport = MemoryTransport()
    stats = engine.upload(opts(src, threads=threads, limit=23), transport=transport)
    assert (stats.files_put, stats.failed, len(transport.objects)) == (23, 0, 23)


def test_single_put_bodies_in_flight_stay_within_the_byte_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lists are cut by bytes too: 17 files below the multipart threshold are never all held
    at once (a list of 16 used to go whatever its size)."""
    tree = {f"f{i:02}.bin": "x" * (4 * MIB) for i in range(17)}
    src = make_tree(tmp_path / "src", tree)
    monkeypatch.setattr(engine, "BODY_BYTES_IN_FLIGHT", 10 * MIB)
    peak = [0]
    original = engine._Run._drain

    def drain(self: Any, *, block: bool) -> None:
        peak[0] = max(peak[0], self.in_flight_bytes)
        original(self, block=block)

    monkeypatch.setattr(engine._Run, "_drain", drain)
    stats = engine.upload(opts(src), transport=MemoryTransport())
    assert stats.files_put == 17
    assert 0 < peak[0] <= 10 * MIB


class _LosesOneResult:
    """A dispatcher that drops the last task of every list: the run must not end green."""

    chunk_size = 16

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def submit(self, tasks: list[PutTask]) -> Future[list[PutResult]]:
        outer: Future[list[PutResult]] = Future()
        inner = self.inner.submit(tasks)
        inner.add_done_callback(lambda f: outer.set_result(f.result()[:-1]))
        return outer

    def cancel(self) -> None:
        self.inner.cancel()

    def close(self) -> None:
        self.inner.close()


def test_a_run_that_loses_track_of_files_fails_loudly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_tree(tmp_path / "src", SHAPES["one crowded directory"])
    real = engine.make_dispatcher
    monkeypatch.setattr(engine, "make_dispatcher", lambda *a: _LosesOneResult(real(*a)))
    stats = engine.upload(opts(src), transport=MemoryTransport())
    lost = 70 - stats.files_put
    assert lost > 0 and stats.failed == lost and not stats.ok
    assert any("got no result" in error for _, error in stats.failures)

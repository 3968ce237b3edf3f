"""Batches are contiguous key ranges that together hold every walked key exactly once."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from airflow_s3pput.planner import Batch, plan_batches
from airflow_s3pput.walker import FileEntry, WalkError, walk
from tests.helpers import make_tree


def entries(keys: list[str], size: int = 10) -> list[FileEntry]:
    return [FileEntry(f"/src/{k}", k, size, 0) for k in sorted(keys)]


@pytest.mark.parametrize(
    ("count", "max_files", "max_bytes", "max_batches", "expected"),
    [
        pytest.param(10, 3, 10**9, 100, [3, 3, 3, 1], id="by-files"),
        pytest.param(10, 100, 35, 100, [3, 3, 3, 1], id="by-bytes"),
        pytest.param(10, 1, 10**9, 4, [3, 3, 3, 1], id="merged-to-cap"),
        pytest.param(10, 100, 10**9, 5, [10], id="one-batch"),
        pytest.param(0, 3, 10**9, 5, [], id="empty"),
    ],
)
def test_batch_bounds(
    count: int, max_files: int, max_bytes: int, max_batches: int, expected: list[int]
) -> None:
    keys = [f"k{i:03d}" for i in range(count)]
    batches = plan_batches(entries(keys), max_files=max_files, max_bytes=max_bytes, max_batches=max_batches)
    assert [b.files for b in batches] == expected
    assert len(batches) <= max_batches
    assert sum(b.bytes for b in batches) == 10 * count


def test_a_file_larger_than_max_bytes_gets_a_batch_of_its_own() -> None:
    items = [FileEntry("/a", "a", 5, 0), FileEntry("/b", "b", 500, 0), FileEntry("/c", "c", 5, 0)]
    batches = plan_batches(items, max_files=10, max_bytes=100, max_batches=10)
    assert [(b.first_key, b.last_key) for b in batches] == [("a", "a"), ("b", "b"), ("c", "c")]


def test_ranges_chain_end_to_end_and_cover_every_key() -> None:
    keys = sorted({"".join(random.Random(i).choices("ab/.-é0", k=6)) for i in range(300)})
    batches = plan_batches(entries(keys), max_files=17, max_bytes=10**9, max_batches=1024)
    assert batches[0].after is None and batches[-1].last is None
    for before, after in itertools.pairwise(batches):
        assert after.after == before.last == before.last_key
    for key in [*keys, "", "\uffff", "zzz", "a"]:
        assert sum(key in b.key_range for b in batches) == 1, key


def test_walk_errors_are_planned_like_files() -> None:
    items: list[FileEntry | WalkError] = [FileEntry("/a", "a", 1, 0), WalkError("/b", "b", "broken symlink")]
    (batch,) = plan_batches(items, max_files=10, max_bytes=10, max_batches=1)
    assert batch.files == 2 and batch.bytes == 1


def test_limit_plans_only_the_first_files_and_closes_the_last_range() -> None:
    batches = plan_batches(
        entries([f"k{i}" for i in range(10)]), max_files=4, max_bytes=10**9, max_batches=9, limit=6
    )
    assert sum(b.files for b in batches) == 6
    assert batches[-1].last == "k5"


def test_descriptor_round_trips_and_does_not_grow_with_its_files() -> None:
    small = Batch(3, "a" * 1024, "b" * 1024, "a" * 1024 + "x", "b" * 1024, 1, 10)
    huge = Batch(3, "a" * 1024, "b" * 1024, "a" * 1024 + "x", "b" * 1024, 10**9, 10**15)
    assert Batch.from_dict(huge.to_dict()) == huge
    assert len(str(huge.to_dict())) - len(str(small.to_dict())) < 40  # only the counts grow


def test_rewalking_each_batch_reproduces_the_full_walk(tmp_path: Path) -> None:
    files = {f"d{i % 5}/{'x' * (i % 3)}f{i}.txt": "." * i for i in range(60)}
    files.update({"a.txt": "a", "a/b": "b", "a-b": "c", "é/1": "d"})
    source = make_tree(tmp_path / "src", files)
    full = [item.key for item in walk([str(source)], "pre/")]
    batches = plan_batches(walk([str(source)], "pre/"), max_files=7, max_bytes=10**9, max_batches=1024)
    rewalked = [item.key for b in batches for item in walk([str(source)], "pre/", key_range=b.key_range)]
    assert rewalked == full
    assert [b.files for b in batches] == [
        len(list(walk([str(source)], "pre/", key_range=b.key_range))) for b in batches
    ]

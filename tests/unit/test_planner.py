"""Batches are contiguous key ranges that together hold every walked key exactly once."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from airflow_s3pput.errors import UsageError
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.planner import Batch, BatchBounds, plan, plan_batches
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


# --- batch planning: each bound on its own


def sized(sizes: list[int]) -> list[FileEntry]:
    return [FileEntry(f"/src/k{i:02d}", f"k{i:02d}", size, 0) for i, size in enumerate(sizes)]


@pytest.mark.parametrize(
    "bounds",
    [
        pytest.param({"max_files": 0, "max_bytes": 10, "max_batches": 10}, id="no-files"),
        pytest.param({"max_files": 10, "max_bytes": 0, "max_batches": 10}, id="no-bytes"),
        pytest.param({"max_files": 10, "max_bytes": 10, "max_batches": 0}, id="no-batches"),
    ],
)
def test_each_bound_must_be_positive(bounds: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"^batch bounds must be positive$"):
        plan_batches(sized([1]), **bounds)


def test_the_smallest_bounds_are_valid() -> None:
    batches = plan_batches(sized([1, 1]), max_files=1, max_bytes=1, max_batches=1)
    assert [(b.files, b.bytes) for b in batches] == [(2, 2)]


def test_a_batch_may_hold_exactly_max_bytes() -> None:
    batches = plan_batches(sized([5, 5, 5]), max_files=10, max_bytes=10, max_batches=10)
    assert [(b.first_key, b.last_key, b.bytes) for b in batches] == [("k00", "k01", 10), ("k02", "k02", 5)]


def test_batches_are_numbered_from_zero() -> None:
    batches = plan_batches(sized([1] * 5), max_files=2, max_bytes=100, max_batches=10)
    assert [b.index for b in batches] == [0, 1, 2]


def test_merged_batches_keep_the_first_and_last_key_of_what_they_merged() -> None:
    batches = plan_batches(sized([1] * 6), max_files=1, max_bytes=100, max_batches=2)
    assert [(b.index, b.after, b.last, b.first_key, b.last_key, b.files) for b in batches] == [
        (0, None, "k02", "k00", "k02", 3),
        (1, "k02", None, "k03", "k05", 3),
    ]
    assert [(b.first_key, b.last_key) for b in batches] == [("k00", "k02"), ("k03", "k05")]


def test_a_limited_plan_closes_its_last_range() -> None:
    (batch,) = plan_batches(sized([1] * 5), max_files=10, max_bytes=100, max_batches=10, limit=3)
    assert (batch.after, batch.last, batch.files) == (None, "k02", 3)


@pytest.mark.parametrize(
    ("bounds", "setting"),
    [
        pytest.param({"files": 0}, "batch_size", id="no-files"),
        pytest.param({"bytes": 0}, "batch_bytes", id="no-bytes"),
        pytest.param({"max_batches": 0}, "max_batches", id="no-batches"),
    ],
)
def test_batch_bounds_name_the_setting_that_is_out_of_range(bounds: dict[str, int], setting: str) -> None:
    with pytest.raises(UsageError, match=r"must be 1 or more, not 0$") as caught:
        BatchBounds(**bounds)
    assert str(caught.value) == f"{setting} must be 1 or more, not 0"


def test_batch_bounds_of_one_are_valid() -> None:
    bounds = BatchBounds(files=1, bytes=1, max_batches=1)
    assert (bounds.files, bounds.bytes, bounds.max_batches) == (1, 1, 1)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Six files of 10 bytes, ``a0.txt`` .. ``a4.txt`` and ``b.log``, in a directory."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a0.txt", "a1.txt", "a2.txt", "a3.txt", "a4.txt", "b.log"):
        (src / name).write_bytes(b"0123456789")
    return src


def test_plan_walks_the_sources_with_the_prefix_and_the_selection(tree: Path) -> None:
    options = UploadOptions(bucket="b-1", sources=(str(tree),), prefix="p/", exclude=("a1.txt",), limit=4)
    batches = plan(options, BatchBounds(files=3, bytes=100))
    assert [(b.first_key, b.last_key, b.files, b.bytes) for b in batches] == [
        ("p/a0.txt", "p/a3.txt", 3, 30),
        ("p/a4.txt", "p/a4.txt", 1, 10),
    ]
    assert batches[-1].last == "p/a4.txt"  # limited: the last range is closed


def test_plan_bounds_each_batch_by_bytes(tree: Path) -> None:
    options = UploadOptions(bucket="b-1", sources=(str(tree),))
    assert [b.files for b in plan(options, BatchBounds(bytes=25))] == [2, 2, 2]


@pytest.mark.parametrize(
    ("bounds_cap", "cap", "expected"),
    [
        pytest.param(None, None, [1] * 6, id="default-cap-1024"),
        pytest.param(2, None, [3, 3], id="bounds-cap"),
        pytest.param(None, 3, [2, 2, 2], id="caller-cap"),
        pytest.param(2, 3, [3, 3], id="bounds-cap-wins"),
    ],
)
def test_plan_caps_the_batch_count(
    tree: Path, bounds_cap: int | None, cap: int | None, expected: list[int]
) -> None:
    options = UploadOptions(bucket="b-1", sources=(str(tree),))
    batches = plan(options, BatchBounds(files=1, max_batches=bounds_cap), max_batches=cap)
    assert [b.files for b in batches] == expected


def test_plan_refuses_a_missing_source(tmp_path: Path) -> None:
    options = UploadOptions(bucket="b-1", sources=(str(tmp_path / "nope"),))
    with pytest.raises(UsageError, match="does not exist"):
        plan(options)

"""Batch planning, the edges mutation testing found unchecked: each bound checked on its own,
a batch filled to exactly ``max_bytes``, batch numbers, and the keys of merged batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_s3pput.errors import UsageError
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.planner import BatchBounds, plan, plan_batches
from airflow_s3pput.walker import FileEntry


def entries(sizes: list[int]) -> list[FileEntry]:
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
        plan_batches(entries([1]), **bounds)


def test_the_smallest_bounds_are_valid() -> None:
    batches = plan_batches(entries([1, 1]), max_files=1, max_bytes=1, max_batches=1)
    assert [(b.files, b.bytes) for b in batches] == [(2, 2)]


def test_a_batch_may_hold_exactly_max_bytes() -> None:
    batches = plan_batches(entries([5, 5, 5]), max_files=10, max_bytes=10, max_batches=10)
    assert [(b.first_key, b.last_key, b.bytes) for b in batches] == [("k00", "k01", 10), ("k02", "k02", 5)]


def test_batches_are_numbered_from_zero() -> None:
    batches = plan_batches(entries([1] * 5), max_files=2, max_bytes=100, max_batches=10)
    assert [b.index for b in batches] == [0, 1, 2]


def test_merged_batches_keep_the_first_and_last_key_of_what_they_merged() -> None:
    batches = plan_batches(entries([1] * 6), max_files=1, max_bytes=100, max_batches=2)
    assert [(b.index, b.after, b.last, b.first_key, b.last_key, b.files) for b in batches] == [
        (0, None, "k02", "k00", "k02", 3),
        (1, "k02", None, "k03", "k05", 3),
    ]
    assert [(b.first_key, b.last_key) for b in batches] == [("k00", "k02"), ("k03", "k05")]


def test_a_limited_plan_closes_its_last_range() -> None:
    (batch,) = plan_batches(entries([1] * 5), max_files=10, max_bytes=100, max_batches=10, limit=3)
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

"""Batch planning, the edges mutation testing found unchecked: each bound checked on its own,
a batch filled to exactly ``max_bytes``, batch numbers, and the keys of merged batches."""

from __future__ import annotations

import pytest

from airflow_s3pput.planner import plan_batches
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

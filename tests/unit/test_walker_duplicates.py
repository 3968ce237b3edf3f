"""Two SOURCEs that map to one key are refused before anything is uploaded (issue 13, item 1).

The walk merges the SOURCEs in key order, so two items with one key are neighbours: the merged
walk raises ``DuplicateKeyError`` (a ``UsageError``) on the second, and ``check_unique_keys``
runs that walk once, streaming, before an upload, only when more than one SOURCE is given.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_s3pput.errors import UsageError
from airflow_s3pput.planner import plan_batches
from airflow_s3pput.walker import (
    DuplicateKeyError,
    KeyRange,
    Selection,
    check_unique_keys,
    walk,
)
from tests.helpers import make_tree


def trees(tmp_path: Path) -> tuple[Path, Path]:
    one = make_tree(tmp_path / "one", {"a.txt": "1", "d/same.txt": "one", "m.txt": "1"})
    two = make_tree(tmp_path / "two", {"b.txt": "2", "d/same.txt": "two", "z.txt": "2"})
    return one, two


def test_two_directories_with_one_relative_path(tmp_path: Path) -> None:
    one, two = trees(tmp_path)
    with pytest.raises(DuplicateKeyError) as caught:
        list(walk([str(one), str(two)], "pre"))
    message = str(caught.value)
    assert "\n" not in message
    assert "'pre/d/same.txt'" in message
    assert str(one / "d" / "same.txt") in message and str(two / "d" / "same.txt") in message
    assert isinstance(caught.value, UsageError)  # the CLI's exit 2, the plan's failure
    with pytest.raises(DuplicateKeyError, match=r"pre/d/same\.txt"):
        check_unique_keys([str(one), str(two)], "pre")


def test_file_source_and_directory_holding_that_name(tmp_path: Path) -> None:
    single = make_tree(tmp_path / "solo", {"report.csv": "a"}) / "report.csv"
    directory = make_tree(tmp_path / "dir", {"report.csv": "b", "other.csv": "c"})
    with pytest.raises(DuplicateKeyError, match=r"report\.csv") as caught:
        check_unique_keys([str(single), str(directory)], "")
    assert str(single) in str(caught.value) and str(directory / "report.csv") in str(caught.value)


def test_same_source_twice_is_one_source(tmp_path: Path) -> None:
    # ``s3pput d d/``: one directory, not two that clash on every key (issue 27, point 7).
    one, _ = trees(tmp_path)
    check_unique_keys([str(one), str(one) + "/"], "")
    assert [i.key for i in walk([str(one), str(one) + "/"])] == ["a.txt", "d/same.txt", "m.txt"]


def test_distinct_keys_pass_and_the_walk_is_unchanged(tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one", {"a.txt": "1", "d/x": "1"})
    two = make_tree(tmp_path / "two", {"b.txt": "2", "d/y": "2"})
    check_unique_keys([str(one), str(two)], "p")
    assert [i.key for i in walk([str(one), str(two)], "p")] == ["p/a.txt", "p/b.txt", "p/d/x", "p/d/y"]


def test_a_duplicate_hidden_by_the_filter_is_none(tmp_path: Path) -> None:
    one, two = trees(tmp_path)
    check_unique_keys([str(one), str(two)], "", Selection(exclude=("*/same.txt",)))


def test_only_the_key_range_is_checked(tmp_path: Path) -> None:
    # A mapped batch checks its own key range: the plan already checked the whole walk.
    one, two = trees(tmp_path)
    sources = [str(one), str(two)]
    check_unique_keys(sources, "", key_range=KeyRange(None, "b.txt"))
    check_unique_keys(sources, "", key_range=KeyRange("m.txt", None))
    with pytest.raises(DuplicateKeyError):
        check_unique_keys(sources, "", key_range=KeyRange("b.txt\0", "d/zzz"))


def test_one_source_is_not_walked_by_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one, _ = trees(tmp_path)

    def no_scandir(path: str) -> None:
        raise AssertionError(f"walked {path}")

    monkeypatch.setattr(os, "scandir", no_scandir)
    check_unique_keys([str(one)], "")


def test_errors_of_two_directories_are_not_duplicates(tmp_path: Path) -> None:
    # Two directory errors with one key ("d/loop/") are two failures, not a duplicate.
    one, two = trees(tmp_path)
    for root in (one, two):
        (root / "d" / "loop").symlink_to("../d")
    selection = Selection(exclude=("*/same.txt",), follow_dir_symlinks=True)
    items = list(walk([str(one), str(two)], "", selection))
    assert [i.key for i in items].count("d/loop/") == 2


def test_the_plan_fails_on_a_duplicate(tmp_path: Path) -> None:
    one, two = trees(tmp_path)
    with pytest.raises(DuplicateKeyError, match=r"d/same\.txt"):
        plan_batches(walk([str(one), str(two)], ""), max_files=10, max_bytes=10**9, max_batches=10)


def test_the_message_names_both_files_and_the_way_out(tmp_path: Path) -> None:
    one, two = trees(tmp_path)
    with pytest.raises(DuplicateKeyError) as caught:
        check_unique_keys([str(one), str(two)])  # no prefix: the keys are the relative paths
    assert str(caught.value) == (
        f"two SOURCEs map to key 'd/same.txt': {str(one / 'd' / 'same.txt')!r} and "
        f"{str(two / 'd' / 'same.txt')!r} (one would overwrite the other; exclude one or upload "
        "them under different prefixes)"
    )

"""``--delete``: the merge-join, the per-directory listing in either server order, the rules
(filters, key ranges, failures, dry run) and the DeleteObjects batches, against an in-memory
bucket that lists like S3 (lexicographic) or like SeaweedFS (tree order)."""

from __future__ import annotations

import random
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.options import UploadOptions
from airflow_s3pput.stats import PutResult
from airflow_s3pput.sync_delete import (
    DELETE_BATCH,
    UnsortedKeys,
    _Bounds,
    _remote_keys,
    delete_extraneous,
    extraneous_keys,
)
from airflow_s3pput.transport.boto3_transport import Boto3Transport
from airflow_s3pput.walker import KeyRange
from tests.helpers import make_tree


class FakeBucket:
    """ListObjectsV2 with ``Delimiter="/"`` and DeleteObjects over a set of keys.

    ``order="lex"`` lists like S3 and moto: entries by key, a subdirectory as ``name/``;
    ``order="tree"`` like SeaweedFS: by name, a subdirectory as ``name``, and ``StartAfter``
    compared by name. Pages of ``page`` entries, whatever ``MaxKeys`` asks.
    """

    def __init__(self, keys: Iterable[str], order: str = "lex", page: int = 3) -> None:
        self.keys = set(keys)
        self.order = order
        self.page = page
        self.errors: dict[str, str] = {}
        self.list_calls = 0
        self.delete_batches: list[list[str]] = []
        self.fail_listing_of: str | None = None

    def list_objects_v2(
        self,
        Bucket: str,
        Prefix: str = "",
        Delimiter: str = "",
        MaxKeys: int = 1000,
        StartAfter: str = "",
        ContinuationToken: str = "",
    ) -> dict[str, Any]:
        assert Delimiter == "/"
        self.list_calls += 1
        if self.fail_listing_of == Prefix:
            raise RuntimeError("listing failed")
        files: set[str] = set()
        dirs: dict[str, str] = {}  # name -> its greatest key
        for key in self.keys:
            if key.startswith(Prefix):
                rest = key[len(Prefix) :]
                if "/" in rest:
                    name = rest.split("/", 1)[0]
                    dirs[name] = max(dirs.get(name, ""), key)
                else:
                    files.add(rest)
        entries = [(n, False) for n in files] + [(n, True) for n in dirs]
        if self.order == "lex":
            entries.sort(key=lambda e: e[0] + ("/" if e[1] else ""))

            def after(entry: tuple[str, bool]) -> bool:
                name, is_dir = entry
                return (dirs[name] if is_dir else Prefix + name) > StartAfter
        else:
            entries.sort(key=lambda e: e[0])

            def after(entry: tuple[str, bool]) -> bool:
                return not StartAfter or entry[0] > StartAfter[len(Prefix) :]

        if ContinuationToken:
            start = int(ContinuationToken)
        else:
            start = next((i for i, e in enumerate(entries) if after(e)), len(entries))
        chunk = entries[start : start + min(self.page, MaxKeys)]
        end = start + len(chunk)
        return {
            "Contents": [{"Key": Prefix + n, "Size": 1} for n, is_dir in chunk if not is_dir],
            "CommonPrefixes": [{"Prefix": Prefix + n + "/"} for n, is_dir in chunk if is_dir],
            "IsTruncated": end < len(entries),
            "NextContinuationToken": str(end),
        }

    def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:
        keys = [obj["Key"] for obj in Delete["Objects"]]
        assert len(keys) <= 1000 and Delete.get("Quiet") is True
        self.delete_batches.append(keys)
        errors = []
        for key in keys:
            if key in self.errors:
                errors.append({"Key": key, "Code": self.errors[key], "Message": "no"})
            else:
                self.keys.discard(key)
        return {"Errors": errors}


def tree_safe(keys: Iterable[str]) -> set[str]:
    """Keys a tree-ordered server can hold: no key is also a directory of another."""
    keys = set(keys)
    return {k for k in keys if not any(other.startswith(k + "/") for other in keys)}


# --- the merge-join ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "remote", "expected"),
    [
        pytest.param([], [], [], id="both-empty"),
        pytest.param([], ["a", "b"], ["a", "b"], id="no-local-file"),
        pytest.param(["a", "b"], [], [], id="nothing-listed"),
        pytest.param(["a", "b"], ["a", "b"], [], id="same"),
        pytest.param(["b"], ["a", "b", "c"], ["a", "c"], id="around"),
        pytest.param(["a", "c", "e"], ["b", "d", "f"], ["b", "d", "f"], id="interleaved"),
        pytest.param(["a-b", "a/x"], ["a-b", "a.c", "a/x", "a/y"], ["a.c", "a/y"], id="tricky-order"),
        pytest.param(["x"], ["a", "x", "z"], ["a", "z"], id="one-local"),
    ],
)
def test_extraneous_keys(local: list[str], remote: list[str], expected: list[str]) -> None:
    assert list(extraneous_keys(local, remote)) == expected


@pytest.mark.parametrize(
    ("local", "remote", "decided"),
    [
        pytest.param(["a", "c"], ["b", "a"], ["b"], id="remote-backwards"),
        pytest.param(["a", "a"], ["b"], [], id="local-repeats"),
        pytest.param(["d", "c"], ["a", "e"], ["a"], id="local-backwards"),
    ],
)
def test_unsorted_streams_stop_the_join(local: list[str], remote: list[str], decided: list[str]) -> None:
    got: list[str] = []
    with pytest.raises(UnsortedKeys):
        got.extend(extraneous_keys(local, remote))
    assert got == decided  # only keys decided before the disorder was seen


# --- the listing in both orders --------------------------------------------------------------------

ALPHABET = ["a", "b", "-", ".", " ", "!", "0", "~", "é"]


def random_keys(rng: random.Random, count: int) -> set[str]:
    keys = set()
    for _ in range(count):
        parts = [
            "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(1, 3))
        ]
        keys.add("p/" + "/".join(parts))
    return tree_safe(keys)


def random_range(rng: random.Random, keys: list[str]) -> KeyRange:
    ordered = sorted(keys)

    def bound() -> str | None:
        choice = rng.random()
        if choice < 0.25:
            return None
        key = rng.choice(ordered)
        return key if choice < 0.6 else key[: rng.randint(2, len(key))] + rng.choice(ALPHABET)

    first, last = bound(), bound()
    if first is not None and last is not None and first > last:
        first, last = last, first
    return KeyRange(first, last)


@pytest.mark.parametrize("order", ["lex", "tree"])
@pytest.mark.parametrize("seed", range(40))
def test_listing_is_lexicographic_and_in_range_in_both_orders(order: str, seed: int) -> None:
    rng = random.Random(seed)
    keys = random_keys(rng, 60)
    key_range = random_range(rng, list(keys))
    bucket = FakeBucket(keys, order, page=rng.choice([1, 2, 3, 1000]))
    with ThreadPoolExecutor(4) as executor:
        got = list(_remote_keys(Boto3Transport(bucket, "b"), "p/", key_range, executor))
    assert got == sorted(k for k in keys if k in key_range), (key_range, order)


@pytest.mark.parametrize("order", ["lex", "tree"])
def test_listing_skips_what_is_outside_the_range(order: str) -> None:
    keys = {f"p/big/{i:05}" for i in range(300)} | {f"p/other/{i}" for i in range(50)}
    bucket = FakeBucket(keys, order, page=10)
    with ThreadPoolExecutor(4) as executor:
        in_range = KeyRange("p/big/00100", "p/big/00119")
        got = list(_remote_keys(Boto3Transport(bucket, "b"), "p/", in_range, executor))
    assert got == [f"p/big/{i:05}" for i in range(100, 120)]
    # the root, then the one directory, from just before 00100 until past 00119: no full listing
    assert bucket.list_calls <= 1 + 3


@pytest.mark.parametrize(
    ("prefix", "first", "last", "start_after", "past", "not_past"),
    [
        pytest.param("p/", "p/abc/x", "p/abd", "p/ab", ["abe", "b"], ["abd", "abd-x", "ab"], id="plain"),
        pytest.param("p/", "p/a-c", None, "", [], ["zzz"], id="low-char-second"),
        pytest.param("p/", "p/ab-c", "p/ab", "p/a", ["ab0", "abc"], ["ab", "ab-", "ab!x"], id="low-char"),
        pytest.param("p/", "q/x", "o/x", "", [], ["a"], id="bounds-outside-prefix"),
    ],
)
def test_bounds(
    prefix: str,
    first: str | None,
    last: str | None,
    start_after: str,
    past: list[str],
    not_past: list[str],
) -> None:
    bounds = _Bounds(prefix, KeyRange(first, last))
    assert bounds.start_after == start_after
    assert all(bounds.past_last(name) for name in past)
    assert not any(bounds.past_last(name) for name in not_past)


# --- the rules, end to end over a local tree -------------------------------------------------------


def options(src: Path, **overrides: Any) -> UploadOptions:
    values: dict[str, Any] = {"bucket": "b-1", "sources": (str(src),), "prefix": "p", "delete": True}
    return UploadOptions(**{**values, **overrides})


def run(bucket: FakeBucket, opts: UploadOptions, **kwargs: Any) -> tuple[Any, list[PutResult]]:
    results: list[PutResult] = []
    stats = delete_extraneous(Boto3Transport(bucket, "b-1"), opts, record=results.append, **kwargs)
    return stats, results


@pytest.mark.parametrize("order", ["lex", "tree"])
def test_deletes_what_has_no_local_file(tmp_path: Path, order: str) -> None:
    src = make_tree(tmp_path / "src", {"a-c": "1", "a/x": "1", "keep.log": "1", "d/e/f.txt": "1"})
    remote = {
        "p/a-c",
        "p/a/x",
        "p/a/gone",
        "p/a.gone",
        "p/d/e/f.txt",
        "p/d/old/x",
        "p/zzz",
        "other/x",
        "p/old.log",
    }
    bucket = FakeBucket(tree_safe(remote | {"p/dir/"}), order)
    stats, results = run(bucket, options(src, exclude=("*.log",)))
    gone = {"p/a/gone", "p/a.gone", "p/d/old/x", "p/zzz"}
    assert {r.key for r in results if r.action == "delete"} == gone
    assert (stats.deleted, stats.failed) == (4, 0)
    # kept: local files, keys outside PREFIX, keys the filter hides, the directory marker
    assert bucket.keys == tree_safe(remote | {"p/dir/"}) - gone
    assert len(bucket.delete_batches) == 1


def test_dry_run_deletes_nothing(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a": "1"})
    bucket = FakeBucket({"p/a", "p/b", "p/c/d"})
    stats, results = run(bucket, options(src, dry_run=True))
    assert [(r.key, r.action, r.reason) for r in results] == [
        ("p/b", "delete", "dry-run"),
        ("p/c/d", "delete", "dry-run"),
    ]
    assert stats.deleted == 2
    assert bucket.delete_batches == [] and bucket.keys == {"p/a", "p/b", "p/c/d"}


def test_nothing_is_deleted_after_a_failed_upload(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a": "1"})
    bucket = FakeBucket({"p/a", "p/b"})
    stats, results = run(bucket, options(src), failed_uploads=1)
    assert results == [] and bucket.list_calls == 0 and bucket.keys == {"p/a", "p/b"}
    assert stats.skipped and stats.deleted == 0


def test_a_walk_error_stops_the_join_there(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a": "1", "m": "1"})
    (src / "c").symlink_to(tmp_path / "nowhere")  # a broken symlink: a WalkError keyed p/c
    bucket = FakeBucket({"p/a", "p/b", "p/c", "p/d", "p/m", "p/z"})
    stats, results = run(bucket, options(src))
    assert [r.key for r in results if r.action == "delete"] == ["p/b"]  # decided before p/c
    failures = [r for r in results if r.action == "fail"]
    assert [f.key for f in failures] == ["p/c"] and "broken symlink" in failures[0].error
    assert (stats.deleted, stats.failed) == (1, 1)
    assert bucket.keys == {"p/a", "p/c", "p/d", "p/m", "p/z"}


def test_a_failed_listing_is_a_failure_and_deletes_nothing_after_it(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a": "1"})
    bucket = FakeBucket({"p/a", "p/b", "p/c/x"})
    bucket.fail_listing_of = "p/c/"
    stats, results = run(bucket, options(src))
    assert [(r.key, r.action) for r in results] == [("s3://b-1/p/", "fail"), ("p/b", "delete")]
    assert "--delete stopped: RuntimeError: listing failed" in results[0].error
    assert (stats.deleted, stats.failed) == (1, 1)
    assert bucket.keys == {"p/a", "p/c/x"}


def test_batches_of_1000_and_per_key_errors(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"keep": "1"})
    extra = {f"p/x/{i:05}" for i in range(2 * DELETE_BATCH + 500)}
    bucket = FakeBucket(extra | {"p/keep"}, page=1000)
    bucket.errors = {"p/x/00007": "AccessDenied", "p/x/02100": "InternalError"}
    stats, results = run(bucket, options(src))
    assert [len(b) for b in bucket.delete_batches] == [1000, 1000, 500]
    assert (stats.deleted, stats.failed) == (len(extra) - 2, 2)
    failed = {r.key: r.error for r in results if r.action == "fail"}
    assert failed == {
        "p/x/00007": "cannot delete: AccessDenied: no",
        "p/x/02100": "cannot delete: InternalError: no",
    }
    assert bucket.keys == {"p/keep", "p/x/00007", "p/x/02100"}


def test_a_failed_delete_request_fails_each_of_its_keys(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"keep": "1"})
    bucket = FakeBucket({"p/keep", "p/a", "p/b"})

    def broken(**_: Any) -> dict[str, Any]:
        from botocore.exceptions import EndpointConnectionError

        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    bucket.delete_objects = broken  # type: ignore[method-assign]
    stats, results = run(bucket, options(src))
    assert (stats.deleted, stats.failed) == (0, 2)
    assert all("cannot delete: Unreachable" in r.error for r in results)


def test_only_inside_the_key_range(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"c": "1"})
    bucket = FakeBucket({"p/a", "p/b", "p/c", "p/d", "p/e"})
    stats, _ = run(bucket, options(src), key_range=KeyRange("p/b", "p/d"))
    assert bucket.keys == {"p/a", "p/c", "p/e"}
    assert stats.deleted == 2


def test_include_hides_the_rest(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.html": "1", "b.css": "1"})
    bucket = FakeBucket({"p/a.html", "p/old.html", "p/b.css", "p/old.css", "p/img/x.png"})
    run(bucket, options(src, include=("*.html",)))
    assert bucket.keys == {"p/a.html", "p/b.css", "p/old.css", "p/img/x.png"}


def test_limit_is_refused() -> None:
    from airflow_s3pput.errors import UsageError

    with pytest.raises(UsageError, match="delete cannot be combined with limit"):
        UploadOptions(bucket="b-1", sources=("x",), delete=True, limit=3)

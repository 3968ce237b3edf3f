"""The walker: keys, order, selection, symlinks, bad paths as values, key-range pruning."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import walker
from airflow_s3pput.cli import render  # the message as the shell prints it
from airflow_s3pput.errors import UsageError
from airflow_s3pput.walker import (
    FileEntry,
    KeyRange,
    Selection,
    WalkError,
    WalkItem,
    check_sources,
    join_key,
    walk,
)
from tests.helpers import make_tree, run_unprivileged


def keys(items: list[WalkItem]) -> list[str]:
    return [i.key for i in items]


def files(items: list[WalkItem]) -> list[str]:
    return [i.key for i in items if isinstance(i, FileEntry)]


def errors(items: list[WalkItem]) -> dict[str, str]:
    return {i.key: i.message for i in items if isinstance(i, WalkError)}


@pytest.mark.parametrize(
    ("prefix", "relative", "expected"),
    [
        pytest.param("", "a/b.txt", "a/b.txt", id="empty-prefix-no-leading-slash"),
        pytest.param("p", "a.txt", "p/a.txt", id="plain-prefix"),
        pytest.param("p/", "a.txt", "p/a.txt", id="prefix-trailing-slash-no-double"),
        pytest.param("p//", "a.txt", "p/a.txt", id="prefix-two-trailing-slashes"),
        pytest.param("/p/", "a.txt", "p/a.txt", id="prefix-leading-slash-dropped"),
        pytest.param("/", "a.txt", "a.txt", id="slash-only-prefix"),
        pytest.param("x/y", "z", "x/y/z", id="nested-prefix"),
    ],
)
def test_join_key(prefix: str, relative: str, expected: str) -> None:
    assert join_key(prefix, relative) == expected


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        pytest.param("", ["a.txt", "d/b.txt"], id="empty"),
        pytest.param("p", ["p/a.txt", "p/d/b.txt"], id="plain"),
        pytest.param("p/", ["p/a.txt", "p/d/b.txt"], id="trailing-slash"),
        pytest.param("/p/q/", ["p/q/a.txt", "p/q/d/b.txt"], id="leading-and-trailing-slash"),
    ],
)
def test_walk_keys_with_prefix(tmp_path: Path, prefix: str, expected: list[str]) -> None:
    make_tree(tmp_path, {"a.txt": "a", "d/b.txt": "b"})
    assert keys(list(walk([str(tmp_path)], prefix))) == expected


TRICKY = [
    "a.txt",
    "a/b.c",
    "a/b/c",
    "a-b",
    "a b",
    "a0",
    "a!/x",
    "ab/c",
    "A",
    "Z/z",
    "_",
    "~tilde",
    "é.txt",
    "e/é/ü ß.bin",
    "日本語/ファイル.txt",
    "emoji 🎉.txt",
    "space dir/with space.txt",
    "empty",
    "x/y/z/deep.txt",
    "x.y",
    "x-/1",
]


def test_walk_key_order_is_sorted_keys(tmp_path: Path) -> None:
    tree: dict[str, bytes | str] = {name: f"content of {name}" for name in TRICKY}
    tree["empty"] = b""
    make_tree(tmp_path, tree)
    items = list(walk([str(tmp_path)], "pre"))
    got = keys(items)
    assert got == sorted(got)
    assert set(got) == {f"pre/{name}" for name in tree}
    assert not errors(items)
    sizes = {i.key: i.size for i in items if isinstance(i, FileEntry)}
    assert sizes["pre/empty"] == 0
    assert sizes["pre/emoji 🎉.txt"] == len(b"content of emoji \xf0\x9f\x8e\x89.txt")


def test_single_file_source(tmp_path: Path) -> None:
    make_tree(tmp_path, {"dir/report 1.csv": "x,y\n"})
    items = list(walk([str(tmp_path / "dir" / "report 1.csv")], "out/"))
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, FileEntry)
    assert (item.key, item.size) == ("out/report 1.csv", 4)
    assert item.path == str(tmp_path / "dir" / "report 1.csv")


def test_several_sources_are_merged_in_key_order(tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one", {"b.txt": "1", "d/x": "1", "m": "1"})
    two = make_tree(tmp_path / "two", {"a.txt": "2", "d/y": "2", "z": "2"})
    single = make_tree(tmp_path / "three", {"c.txt": "3"}) / "c.txt"
    got = keys(list(walk([str(one), str(two), str(single)], "")))
    assert got == ["a.txt", "b.txt", "c.txt", "d/x", "d/y", "m", "z"]


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        pytest.param((), (), ["a.log", "a.txt", "d/b.log", "d/b.txt", "d/e/c.txt"], id="everything"),
        pytest.param(("*.txt",), (), ["a.txt", "d/b.txt", "d/e/c.txt"], id="include-basename-any-depth"),
        pytest.param((), ("*.log",), ["a.txt", "d/b.txt", "d/e/c.txt"], id="exclude-basename-any-depth"),
        pytest.param(("d/*",), (), ["d/b.log", "d/b.txt", "d/e/c.txt"], id="include-relative-path"),
        pytest.param(("*.txt",), ("d/e/*",), ["a.txt", "d/b.txt"], id="include-then-exclude"),
        pytest.param(("*.txt", "*.log"), ("a.*",), ["d/b.log", "d/b.txt", "d/e/c.txt"], id="several"),
        pytest.param(("nothing",), (), [], id="include-matches-nothing"),
    ],
)
def test_include_exclude(
    tmp_path: Path, include: tuple[str, ...], exclude: tuple[str, ...], expected: list[str]
) -> None:
    make_tree(tmp_path, {k: "x" for k in ("a.log", "a.txt", "d/b.log", "d/b.txt", "d/e/c.txt")})
    assert keys(list(walk([str(tmp_path)], "", Selection(include, exclude)))) == expected


def test_include_applies_to_single_file_source(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.log": "x"})
    assert list(walk([str(tmp_path / "a.log")], "", Selection(exclude=("*.log",)))) == []


def test_file_symlink_is_followed(tmp_path: Path) -> None:
    make_tree(tmp_path / "outside", {"target.bin": b"12345"})
    src = make_tree(tmp_path / "src", {"real.txt": "r"})
    (src / "link.bin").symlink_to(tmp_path / "outside" / "target.bin")
    (src / "inside.txt").symlink_to(src / "real.txt")
    items = list(walk([str(src)], "", Selection(follow_dir_symlinks=True)))
    assert [(i.key, i.size) for i in items if isinstance(i, FileEntry)] == [
        ("inside.txt", 1),
        ("link.bin", 5),
        ("real.txt", 1),
    ]
    # Without --follow-symlinks, only the link that leaves SOURCE is refused.
    items = list(walk([str(src)]))
    assert [i.key for i in items if isinstance(i, FileEntry)] == ["inside.txt", "real.txt"]
    assert [(i.key, i.message) for i in items if isinstance(i, WalkError)] == [
        ("link.bin", "symlink to a file outside SOURCE (see --follow-symlinks)")
    ]


def _tree_with_dir_links(tmp_path: Path) -> Path:
    make_tree(tmp_path / "other", {"o.txt": "o"})
    src = make_tree(tmp_path / "src", {"a/f.txt": "f"})
    (src / "b").symlink_to(tmp_path / "other", target_is_directory=True)
    (src / "a" / "up").symlink_to(src, target_is_directory=True)  # a loop back to the root
    return src


@pytest.mark.timeout(20)
def test_dir_symlinks_not_followed_by_default(tmp_path: Path) -> None:
    items = list(walk([str(_tree_with_dir_links(tmp_path))]))
    assert keys(items) == ["a/f.txt"]


@pytest.mark.timeout(20)
def test_dir_symlinks_followed_and_loops_reported(tmp_path: Path) -> None:
    items = list(walk([str(_tree_with_dir_links(tmp_path))], "", Selection(follow_dir_symlinks=True)))
    assert files(items) == ["a/f.txt", "b/o.txt"]
    errs = errors(items)
    assert len(errs) == 1
    [(key, message)] = errs.items()
    assert key.startswith("a/up")
    assert "loop" in message
    assert keys(items) == sorted(keys(items))


def test_bad_paths_are_walk_errors(tmp_path: Path) -> None:
    src = make_tree(tmp_path, {"good.txt": "g", "z.txt": "z"})
    (src / "broken").symlink_to(tmp_path / "missing")
    os.mkfifo(src / "fifo")
    items = list(walk([str(src)]))
    assert files(items) == ["good.txt", "z.txt"]
    errs = errors(items)
    assert set(errs) == {"broken", "fifo"}
    assert "broken symlink" in errs["broken"]
    assert "FIFO" in errs["fifo"]
    assert keys(items) == sorted(keys(items))


def test_non_utf8_name_is_a_printable_walk_error(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a.txt": "a", "z.txt": "z"})
    with open(os.path.join(os.fsencode(tmp_path), b"bad-\xff.txt"), "wb") as f:
        f.write(b"x")
    items = list(walk([str(tmp_path)]))
    assert files(items) == ["a.txt", "z.txt"]
    [bad] = [i for i in items if isinstance(i, WalkError)]
    assert "UTF-8" in bad.message
    # What is reported must be printable and JSON-safe: no lone surrogates.
    bad.path.encode("utf-8")
    bad.key.encode("utf-8")
    assert "bad-" in bad.key
    assert keys(items) == sorted(keys(items))


@pytest.mark.parametrize(
    ("prefix", "parts"),
    [
        pytest.param("", ["d" * 250] * 4 + ["f" * 30], id="deep-path"),
        pytest.param("p" * 1000, ["f" * 30], id="long-prefix"),
    ],
)
def test_key_over_1024_bytes_is_a_walk_error(tmp_path: Path, prefix: str, parts: list[str]) -> None:
    make_tree(tmp_path, {"ok.txt": "o", "/".join(parts): "x"})
    items = list(walk([str(tmp_path)], prefix))
    errs = [i for i in items if isinstance(i, WalkError)]
    assert len(errs) == 1
    assert "1024" in errs[0].message
    short = [i for i in items if isinstance(i, FileEntry)]
    assert [i.key.rsplit("/", 1)[-1] for i in short] == ["ok.txt"]


def test_key_of_exactly_1024_bytes_is_fine(tmp_path: Path) -> None:
    make_tree(tmp_path, {"f" * 20: "x"})
    [item] = list(walk([str(tmp_path)], "p" * 1003))  # 1003 + "/" + 20 = 1024
    assert isinstance(item, FileEntry)
    assert len(item.key.encode()) == 1024


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda p: p / "missing", "does not exist", id="missing"),
        pytest.param(lambda p: (os.mkfifo(p / "fifo"), p / "fifo")[1], "neither", id="fifo"),
    ],
)
def test_check_sources_rejects(tmp_path: Path, make: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_sources([str(make(tmp_path))])  # type: ignore[operator]


def test_check_sources_needs_one() -> None:
    with pytest.raises(UsageError, match="no source given"):
        check_sources([])


# --- key ranges -------------------------------------------------------------------------------


def _range_tree(tmp_path: Path) -> Path:
    rng = random.Random(7)
    names = ["a", "a.b", "a-b", "a0", "b", "é", "zz", "a b"]
    tree: dict[str, bytes] = {}
    for _ in range(160):
        depth = rng.randint(1, 4)
        tree["/".join(rng.choice(names) + rng.choice(["", "1", ".x"]) for _ in range(depth))] = b"."
    # A file whose name is also used as a directory elsewhere would clash: drop those paths.
    dirs = {"/".join(k.split("/")[:n]) for k in tree for n in range(1, k.count("/") + 1)}
    tree = {k: v for k, v in tree.items() if k not in dirs}
    tree["a/loop.txt"] = b"sorts before the loop directory's own key"
    src = make_tree(tmp_path / "src", tree)
    (src / "a" / "broken").symlink_to(tmp_path / "nowhere")
    os.mkfifo(src / "b.fifo")
    (src / "a" / "loop").symlink_to(src, target_is_directory=True)
    return src


def _random_bound(rng: random.Random, all_keys: list[str]) -> str | None:
    choice = rng.random()
    if choice < 0.15:
        return None
    key = rng.choice(all_keys)
    if choice < 0.5:
        return key
    if choice < 0.65:
        return key + "\0"
    if choice < 0.8:
        return key.rsplit("/", 1)[0] + "/"
    return key[: rng.randint(0, len(key))]


def test_key_range_walk_is_exact_subset_of_full_walk(tmp_path: Path) -> None:
    src = _range_tree(tmp_path)
    selection = Selection(follow_dir_symlinks=True)
    full = list(walk([str(src)], "p/", selection))
    all_keys = keys(full)
    assert all_keys == sorted(all_keys)
    assert errors(full)  # the range walk must place errors too
    rng = random.Random(11)
    for _ in range(300):
        first, last = _random_bound(rng, all_keys), _random_bound(rng, all_keys)
        key_range = KeyRange(first, last)
        expected = [i for i in full if i.key in key_range]
        assert list(walk([str(src)], "p/", selection, key_range)) == expected, key_range


def test_chained_ranges_cover_every_item_once(tmp_path: Path) -> None:
    # The planner chains ranges (after + "\0", last]: each item of the full walk, including
    # errors for whole directories, must come out of exactly one of them.
    src = _range_tree(tmp_path)
    selection = Selection(follow_dir_symlinks=True)
    full = list(walk([str(src)], "", selection))
    rng = random.Random(3)
    for _ in range(20):
        cuts = sorted(rng.sample(range(len(full)), 6))
        lasts = [full[c].key for c in cuts]
        bounds = list(zip([None, *lasts], [*lasts, None], strict=True))
        ranges = [KeyRange(None if a is None else a + "\0", b) for a, b in bounds]
        pieces = [item for r in ranges for item in walk([str(src)], "", selection, r)]
        assert pieces == full


@pytest.mark.parametrize(
    ("key_range", "dir_key", "may_hold"),
    [
        pytest.param(KeyRange(), "d", True, id="unbounded"),
        pytest.param(KeyRange(last="d"), "d", False, id="last-is-dir-name"),
        pytest.param(KeyRange(last="d/"), "d", True, id="last-is-dir-slash"),
        pytest.param(KeyRange(first="d0"), "d", False, id="first-after-every-child"),
        pytest.param(KeyRange(first="d/zzz"), "d", True, id="first-inside"),
        pytest.param(KeyRange(first="d.txt", last="d.txt"), "d", False, id="sibling-file-only"),
    ],
)
def test_may_hold_dir(key_range: KeyRange, dir_key: str, may_hold: bool) -> None:
    assert key_range.may_hold_dir(dir_key) is may_hold


def test_unlistable_directory_is_one_walk_error_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root reads any directory, so refuse the listing the way a permission problem would.
    src = make_tree(tmp_path, {"a.txt": "a", "locked/x.txt": "x", "locked.txt": "l", "m/y.txt": "y"})
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(walk([str(src)], "p"))
    assert keys(items) == ["p/a.txt", "p/locked.txt", "p/locked/", "p/m/y.txt"]
    assert errors(items) == {"p/locked/": "cannot list directory: Permission denied"}
    # Ranges that touch the directory report it once, in the range that holds its key.
    assert errors(list(walk([str(src)], "p", key_range=KeyRange(None, "p/locked.txt")))) == {}
    assert errors(list(walk([str(src)], "p", key_range=KeyRange("p/locked.txt\0", None)))) == {
        "p/locked/": "cannot list directory: Permission denied"
    }


#: Walks argv[1] as ``nobody`` and prints what it found as JSON.
_WALK_UNPRIVILEGED = """
import json, sys
from airflow_s3pput.walker import FileEntry, walk
list(walk([sys.argv[1]]))  # every lazy import before the privileges go
drop_privileges()
items = list(walk([sys.argv[1]]))
print(json.dumps({
    "euid": os.geteuid(),
    "files": [i.key for i in items if isinstance(i, FileEntry)],
    "errors": {i.key: i.message for i in items if not isinstance(i, FileEntry)},
}))
"""


def test_unreadable_directory_for_real() -> None:
    """A directory the user may not list, refused by the kernel: one walk error, the rest walked."""
    root = Path(tempfile.mkdtemp(prefix="s3pput-walk-"))  # reachable by nobody, unlike tmp_path
    try:
        root.chmod(0o755)
        src = make_tree(root / "src", {"a.txt": "a", "locked/x.txt": "x", "open/y.txt": "y"})
        (src / "locked").chmod(0)
        child = run_unprivileged(_WALK_UNPRIVILEGED, str(src))
        as_me = files(list(walk([str(src)])))  # in this process too, so that mutmut runs this test
    finally:
        (root / "src" / "locked").chmod(0o755)
        shutil.rmtree(root)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result["euid"] != 0
    assert result["files"] == ["a.txt", "open/y.txt"]
    assert result["errors"] == {"locked/": "cannot list directory: Permission denied"}
    assert set(result["files"]) <= set(as_me)


# --- the walker: range and prefix boundaries, base names


def only_error(items: list[WalkItem]) -> WalkError:
    (error,) = [i for i in items if isinstance(i, WalkError)]
    return error


@pytest.mark.parametrize(
    ("key", "key_range", "inside"),
    [
        pytest.param("a", KeyRange("a", None), True, id="first-is-inclusive"),
        pytest.param("b", KeyRange(None, "b"), True, id="last-is-inclusive"),
        pytest.param("a", KeyRange("a\0", None), False, id="just-above-first"),
        pytest.param("b\0", KeyRange(None, "b"), False, id="just-past-last"),
    ],
)
def test_key_range_bounds(key: str, key_range: KeyRange, inside: bool) -> None:
    assert (key in key_range) is inside


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        pytest.param("Xdata", "Xdata/f", id="prefix-starting-with-X"),
        pytest.param("dataX/", "dataX/f", id="prefix-ending-with-X"),
        pytest.param("/X/", "X/f", id="slashes-around-X"),
    ],
)
def test_join_key_strips_slashes_only(prefix: str, expected: str) -> None:
    assert join_key(prefix, "f") == expected


def test_a_directory_walked_under_a_prefix_ending_in_a_letter_keeps_it(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"f": "f", "d/g": "g"})
    assert files(list(walk([str(src)], "dataX"))) == ["dataX/d/g", "dataX/f"]


@pytest.mark.parametrize(
    ("relative", "selection", "wanted"),
    [
        pytest.param("d/e/x.log", Selection(include=("x*",)), False, id="a-base-name-glob-is-the-top-only"),
        pytest.param("d/e/x.log", Selection(include=("*x*",)), True, id="star-crosses-directories"),
        pytest.param("d/a b.log", Selection(include=("*/a*",)), True, id="with-space"),
        pytest.param("d/e/x.log", Selection(exclude=("x.log",)), True, id="exclude-top-name-keeps-deep"),
        pytest.param("x.log", Selection(exclude=("x.log",)), False, id="exclude-top-name"),
        pytest.param("d/e/x.log", Selection(include=("e*",)), False, id="a-directory-name-is-no-path"),
    ],
)
def test_globs_match_the_relative_path(relative: str, selection: Selection, wanted: bool) -> None:
    assert selection.wants(relative) is wanted


# --- sources ---------------------------------------------------------------------------------------


def test_check_sources_accepts_files_and_directories(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    check_sources([str(src), str(src / "a.txt")])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda root: [], "no SOURCE given", id="none"),
        pytest.param(lambda root: [str(root / "nope")], "SOURCE '{root}/nope' does not exist", id="missing"),
        pytest.param(
            lambda root: [str(root / "fifo")],
            "SOURCE '{root}/fifo' is neither a regular file nor a directory",
            id="fifo",
        ),
    ],
)
def test_check_sources_refusals(tmp_path: Path, make: Callable[[Path], list[str]], message: str) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UsageError) as raised:
        check_sources(make(tmp_path))
    assert render(raised.value) == message.format(root=tmp_path)
    assert raised.value.setting == "source"  # the canonical name, which each front end spells


_CHECK_UNPRIVILEGED = """
import json, sys
from airflow_s3pput.errors import UsageError
from airflow_s3pput.walker import check_sources
check_sources([sys.argv[1]])  # as root: every lazy import before the privileges go
drop_privileges()
try:
    check_sources([sys.argv[1]])
    print(json.dumps({"euid": os.geteuid(), "error": None}))
except UsageError as exc:
    print(json.dumps({"euid": os.geteuid(), "error": str(exc)}))
"""


def test_check_sources_refuses_a_source_the_user_cannot_read() -> None:
    root = Path(tempfile.mkdtemp(prefix="s3pput-check-"))  # reachable by nobody, unlike tmp_path
    try:
        root.chmod(0o755)
        secret = root / "secret.txt"
        secret.write_text("s")
        secret.chmod(0)
        check_sources([str(root)])  # in this process too, so that mutmut runs this test
        child = run_unprivileged(_CHECK_UNPRIVILEGED, str(secret))
    finally:
        shutil.rmtree(root)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result["euid"] != 0
    assert result["error"] == f"source '{secret}' is not readable"  # the setting's own name


def test_two_sources_are_merged_in_key_order(tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one", {"x.txt": "x", "z.txt": "z"})
    two = make_tree(tmp_path / "two", {"y.txt": "y"})
    items = list(walk([str(one), str(two)], "p"))
    assert [(i.key, i.path) for i in items] == [
        ("p/x.txt", str(one / "x.txt")),
        ("p/y.txt", str(two / "y.txt")),
        ("p/z.txt", str(one / "z.txt")),
    ]


# --- directories -----------------------------------------------------------------------------------


def failing_identity(monkeypatch: pytest.MonkeyPatch, failing: Path) -> None:
    """Make the directory identity (one ``stat``) of ``failing`` fail as a permission problem."""
    real = walker._identity

    def identity(path: str) -> tuple[int, int]:
        if os.path.abspath(path) == str(failing):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(walker, "_identity", identity)


def test_a_source_whose_identity_cannot_be_read_is_still_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_tree(tmp_path / "src", {"d/x.txt": "x", "y.txt": "y"})
    failing_identity(monkeypatch, src)
    assert files(list(walk([str(src)]))) == ["d/x.txt", "y.txt"]


def test_a_subdirectory_that_cannot_be_stat_ed_is_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_tree(tmp_path / "src", {"d/x.txt": "x", "e/y.txt": "y"})
    failing_identity(monkeypatch, src / "d")
    items = list(walk([str(src)]))
    assert files(items) == ["e/y.txt"]
    assert only_error(items) == WalkError(str(src / "d"), "d/", "cannot list directory: Permission denied")


def test_a_symlink_loop_is_one_error(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"d/x.txt": "x"})
    (src / "d" / "loop").symlink_to(src)
    items = list(walk([str(src)], selection=Selection(follow_dir_symlinks=True)))
    assert files(items) == ["d/x.txt"]
    assert only_error(items) == WalkError(
        str(src / "d" / "loop"), "d/loop/", "symlink loop: directory already being walked"
    )


def test_a_directory_below_the_range_does_not_end_the_walk(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a/x.txt": "x", "b.txt": "b", "c/y.txt": "y"})
    assert files(list(walk([str(src)], key_range=KeyRange("b", None)))) == ["b.txt", "c/y.txt"]


@pytest.mark.parametrize(
    ("prefix", "key"), [pytest.param("", "", id="no-prefix"), pytest.param("p", "p/", id="prefix")]
)
def test_an_unlistable_source_is_one_error_keyed_by_the_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefix: str, key: str
) -> None:
    src = make_tree(tmp_path / "src", {"x.txt": "x"})
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if str(path) == str(src):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert list(walk([str(src)], prefix)) == [
        WalkError(str(src), key, "cannot list directory: Permission denied")
    ]


class _Unknowable:
    """A directory entry whose type cannot be read (``lstat`` fails, as on some network disks)."""

    def __init__(self, entry: os.DirEntry[str]) -> None:
        self.name, self.path = entry.name, entry.path

    def is_symlink(self) -> bool:
        raise PermissionError(13, "Permission denied", self.path)

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        raise PermissionError(13, "Permission denied", self.path)


class _Listing:
    def __init__(self, entries: list[Any]) -> None:
        self.entries = entries

    def __enter__(self) -> Iterator[Any]:
        return iter(self.entries)

    def __exit__(self, *exc: object) -> None:
        return None


def test_an_entry_whose_type_cannot_be_read_is_taken_for_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_tree(tmp_path / "src", {"f.txt": "data"})
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        with real_scandir(path) as it:
            return _Listing([_Unknowable(e) for e in it])

    monkeypatch.setattr(os, "scandir", scandir)
    (item,) = walk([str(src)])
    st = os.stat(src / "f.txt")
    assert item == FileEntry(
        str(src / "f.txt"), "f.txt", 4, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_ctime_ns
    )


# --- files -----------------------------------------------------------------------------------------


def test_a_file_entry_carries_its_size_mtime_and_identity(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"f.txt": "12345"})
    os.utime(src / "f.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    st = os.stat(src / "f.txt")  # the identity and ctime the digest record compares
    assert list(walk([str(src)])) == [
        FileEntry(
            str(src / "f.txt"), "f.txt", 5, 1_600_000_000_123_456_789, st.st_dev, st.st_ino, st.st_ctime_ns
        )
    ]


def test_a_symlink_outside_source_in_a_subdirectory_is_an_error(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"sub/in.txt": "i"})
    outside = make_tree(tmp_path / "outside", {"f.txt": "f"})
    (src / "sub" / "link").symlink_to(outside / "f.txt")
    items = list(walk([str(src)]))
    assert files(items) == ["sub/in.txt"]
    assert only_error(items) == WalkError(
        str(src / "sub" / "link"), "sub/link", "symlink to a file outside SOURCE (see --follow-symlinks)"
    )


def test_a_symlink_inside_a_source_whose_name_ends_in_a_space_is_inside(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src ", {"f.txt": "f"})
    (src / "link").symlink_to(src / "f.txt")
    assert files(list(walk([str(src)]))) == ["f.txt", "link"]


def failing_stat(monkeypatch: pytest.MonkeyPatch, failing: Path, error: OSError) -> None:
    real_stat = os.stat

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(path) == str(failing):
            raise error
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        pytest.param(FileNotFoundError(2, "No such file or directory"), "file disappeared", id="disappeared"),
        pytest.param(PermissionError(13, "Permission denied"), "cannot stat: Permission denied", id="stat"),
    ],
)
def test_a_file_that_cannot_be_stat_ed_is_an_error_with_its_path_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, message: str
) -> None:
    src = make_tree(tmp_path / "src", {"d/f.txt": "f", "g.txt": "g"})
    failing_stat(monkeypatch, src / "d" / "f.txt", error)
    items = list(walk([str(src)], "p"))
    assert files(items) == ["p/g.txt"]
    assert only_error(items) == WalkError(str(src / "d" / "f.txt"), "p/d/f.txt", message)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda path: path.symlink_to(path.parent / "gone"), "broken symlink", id="broken-symlink"
        ),
        pytest.param(
            lambda path: os.mkfifo(path), "not a regular file (FIFO, socket or device): skipped", id="fifo"
        ),
    ],
)
def test_special_files_are_errors_with_their_path_key_and_words(
    tmp_path: Path, make: Callable[[Path], None], message: str
) -> None:
    src = make_tree(tmp_path / "src", {"ok.txt": "o"})
    make(src / "odd")
    items = list(walk([str(src)], "p"))
    assert files(items) == ["p/ok.txt"]
    assert only_error(items) == WalkError(str(src / "odd"), "p/odd", message)


def test_a_key_over_1024_bytes_is_an_error_with_its_path_and_key(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"name.txt": "n"})
    prefix = "p" * 1020
    (error,) = walk([str(src)], prefix)
    assert error == WalkError(
        str(src / "name.txt"), f"{prefix}/name.txt", "key is 1029 bytes: S3 allows at most 1024"
    )


def test_a_name_that_is_not_utf8_is_an_error_in_words(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"ok.txt": "o"})
    with open(os.path.join(os.fsencode(src), b"bad\xff.txt"), "wb") as handle:
        handle.write(b"b")
    items = list(walk([str(src)]))
    assert files(items) == ["ok.txt"]
    error = only_error(items)
    assert (error.key, error.message) == (
        "bad\\xff.txt",
        "file name is not valid UTF-8: S3 keys must be UTF-8",
    )


def test_only_a_doubled_slash_inside_the_prefix_is_warned_about() -> None:
    from airflow_s3pput.walker import doubled_slash_warning

    assert doubled_slash_warning("a//b") is not None
    assert doubled_slash_warning("exports//2026-12-05/") is not None
    for fine in ("", "/", "a/b", "/a/b/", "//a/b//"):  # join_key drops the ends' slashes
        assert doubled_slash_warning(fine) is None, fine

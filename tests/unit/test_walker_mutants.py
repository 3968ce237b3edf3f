"""The walker, the edges mutation testing found unchecked: range and prefix boundaries, base-name
globs, more than one SOURCE, and every kind of bad path reported with its path, key and words."""

from __future__ import annotations

import json
import os
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


def files(items: list[WalkItem]) -> list[str]:
    return [i.key for i in items if isinstance(i, FileEntry)]


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

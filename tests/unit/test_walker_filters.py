"""``--include``/``--exclude`` as aws cli applies them, and the walk's other quiet decisions:
a SOURCE given twice, directory symlinks not followed.

aws cli's rule (``aws s3 cp help``, "Use of Exclude and Include Filters"; its
``awscli/customizations/s3/filters.py``): every file is included to begin with, the filters apply
in the order given and the last one that matches decides; a glob is matched with ``fnmatch``
against the path under the source directory, so ``*`` also matches ``/``.
"""

from __future__ import annotations

import fnmatch
import itertools
from pathlib import Path

import pytest

from airflow_s3pput.walker import (
    FileEntry,
    Selection,
    WalkNotes,
    distinct_sources,
    ineffective_includes,
    walk,
)
from tests.helpers import make_tree

TREE = ("k.txt", "a.log", "keep/k.txt", "keep/b.log", "keep/deep/c.txt", "logs/x.log", "logs/keep.log")


def keys(src: Path, selection: Selection) -> list[str]:
    return [i.key for i in walk([str(src)], "", selection) if isinstance(i, FileEntry)]


def aws_cli_wants(relative: str, rules: list[tuple[str, str]]) -> bool:
    """aws cli's filter, restated: the last matching rule decides, include when none matches."""
    wanted = True
    for kind, glob in rules:
        if fnmatch.fnmatchcase(relative, glob):
            wanted = kind == "include"
    return wanted


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        pytest.param(
            [("exclude", "*"), ("include", "*.txt")],
            ["k.txt", "keep/deep/c.txt", "keep/k.txt"],
            id="exclude-all-then-include-txt",
        ),
        pytest.param(
            [("include", "*.txt"), ("exclude", "*")], [], id="include-then-exclude-all-selects-nothing"
        ),
        pytest.param([("include", "*.txt")], list(sorted(TREE)), id="include-alone-changes-nothing"),
        pytest.param(
            [("exclude", "k.txt")], sorted(set(TREE) - {"k.txt"}), id="top-name-excludes-the-top-file-only"
        ),
        pytest.param(
            [("exclude", "*/k.txt")], sorted(set(TREE) - {"keep/k.txt"}), id="star-slash-name-the-deeper-ones"
        ),
        pytest.param(
            [("exclude", "*k.txt")], sorted(set(TREE) - {"k.txt", "keep/k.txt"}), id="star-name-every-depth"
        ),
        pytest.param(
            [("exclude", "logs/*"), ("include", "logs/keep.log")],
            sorted(set(TREE) - {"logs/x.log"}),
            id="exclude-a-directory-but-one-file",
        ),
        pytest.param(
            [("exclude", "*"), ("include", "keep/*"), ("exclude", "*.log")],
            ["keep/deep/c.txt", "keep/k.txt"],
            id="three-steps",
        ),
        pytest.param([("exclude", "K.TXT")], list(sorted(TREE)), id="case-sensitive"),
    ],
)
def test_filters_apply_in_order_and_the_last_match_wins(
    tmp_path: Path, rules: list[tuple[str, str]], expected: list[str]
) -> None:
    src = make_tree(tmp_path / "src", dict.fromkeys(TREE, "x"))
    assert keys(src, Selection(rules=rules)) == expected
    assert expected == sorted(k for k in TREE if aws_cli_wants(k, rules))


def test_the_lists_form_keeps_its_meaning(tmp_path: Path) -> None:
    """The Airflow operators' ``include``/``exclude`` lists: only the includes, minus the excludes."""
    src = make_tree(tmp_path / "src", dict.fromkeys(TREE, "x"))
    selection = Selection(include=("*.log",), exclude=("logs/x*",))
    assert keys(src, selection) == ["a.log", "keep/b.log", "logs/keep.log"]


def test_a_file_source_is_matched_by_its_name(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.log": "x"})
    rules = [("exclude", "*"), ("include", "*.log")]
    assert [i.key for i in walk([str(src / "a.log")], "", Selection(rules=rules))] == ["a.log"]
    assert list(walk([str(src / "a.log")], "", Selection(rules=[("exclude", "a.log")]))) == []


def test_a_filter_kind_is_include_or_exclude() -> None:
    with pytest.raises(ValueError, match="'include' or 'exclude'"):
        Selection(rules=[("only", "*")])


GLOBS = ("*", "*.txt", "keep/*", "*.log", "k.txt")


@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_every_rule_list_selects_what_aws_cli_selects(length: int) -> None:
    """Every rule list of this length over a few globs, in every order."""
    for kinds in itertools.product(("include", "exclude"), repeat=length):
        for globs in itertools.product(GLOBS, repeat=length):
            rules = list(zip(kinds, globs, strict=True))
            selection = Selection(rules=rules)
            for path in TREE:
                assert selection.wants(path) == aws_cli_wants(path, rules), (rules, path)


def test_ineffective_includes_are_those_before_any_exclude() -> None:
    assert ineffective_includes([("include", "a"), ("include", "b"), ("exclude", "*"), ("include", "c")]) == [
        "a",
        "b",
    ]
    assert ineffective_includes([("exclude", "*"), ("include", "a")]) == []


# --- a SOURCE given twice ------------------------------------------------------------------------


def test_a_source_given_twice_is_walked_once(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "d", {"a.txt": "a", "s/b.txt": "b"})
    (tmp_path / "link").symlink_to(src)
    again = [str(src), str(src) + "/", str(tmp_path / "." / "d"), str(tmp_path / "link")]
    assert distinct_sources(again) == [str(src)]
    assert [i.key for i in walk(again)] == ["a.txt", "s/b.txt"]


def test_a_file_given_beside_its_directory_is_put_once(tmp_path: Path) -> None:
    src = make_tree(tmp_path / "d", {"a.txt": "a", "b.txt": "b"})
    assert [i.key for i in walk([str(src), str(src / "a.txt")])] == ["a.txt", "b.txt"]


# --- directory symlinks --------------------------------------------------------------------------


def test_the_walk_counts_the_directory_symlinks_it_does_not_follow(tmp_path: Path) -> None:
    make_tree(tmp_path / "elsewhere", {"x.txt": "x"})
    src = make_tree(tmp_path / "src", {"a.txt": "a", "d/b.txt": "b"})
    (src / "to-elsewhere").symlink_to(tmp_path / "elsewhere")
    (src / "d" / "up").symlink_to(src)
    (src / "file-link.txt").symlink_to(src / "a.txt")
    notes = WalkNotes()
    assert [i.key for i in walk([str(src)], notes=notes)] == ["a.txt", "d/b.txt", "file-link.txt"]
    assert notes.dir_symlinks == 2
    followed = WalkNotes()
    list(walk([str(src)], selection=Selection(follow_dir_symlinks=True), notes=followed))
    assert followed.dir_symlinks == 0

"""Stream the files under SOURCE as ``FileEntry`` values, in S3 key order.

Keys are ``PREFIX/relative/path``. Each directory's entries are sorted so that keys come out in
lexicographic (S3) order: that lets a batch be a key range (``first``..``last``), re-walked later
without listing its paths.

Two SOURCEs mapping two files to one key would make one silently overwrite the other, so the
merged walk raises ``DuplicateKeyError``. One file named twice (``d d/``, or a file beside its
directory) is walked and put once. The merge is in key order, so duplicates are neighbours.

Problems with single paths (unreadable directory, broken link, FIFO, a name that is not UTF-8, a
key over 1,024 bytes) are ``WalkError`` values: one bad path never stops the walk. They keep the
key order too (a directory's error is keyed ``dir/``), so each is reported by one key range.
"""

from __future__ import annotations

import fnmatch
import heapq
import itertools
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from airflow_s3pput.errors import UsageError

MAX_KEY_BYTES = 1024


class FileEntry(NamedTuple):
    """A file the walk found, with the stat it took: ``dev``, ``ino`` and ``ctime_ns`` let the
    digest record vouch for an unchanged file without a second stat (0: unknown, never vouched
    for). A named tuple, as one is made per file: cheaper than a frozen dataclass."""

    path: str
    key: str
    size: int
    mtime_ns: int
    dev: int = 0
    ino: int = 0
    ctime_ns: int = 0


@dataclass(frozen=True, slots=True)
class WalkError:
    path: str
    key: str
    message: str


WalkItem = FileEntry | WalkError


@dataclass(frozen=True, slots=True)
class KeyRange:
    """Inclusive range of keys; ``None`` means unbounded on that side."""

    first: str | None = None
    last: str | None = None

    def __contains__(self, key: str) -> bool:
        return not self.below(key) and not self.above(key)

    def below(self, key: str) -> bool:
        return self.first is not None and key < self.first

    def above(self, key: str) -> bool:
        return self.last is not None and key > self.last

    def may_hold_dir(self, dir_key: str) -> bool:
        """Whether any key under ``dir_key/`` can fall in the range (prunes the walk)."""
        # Every key under the directory lies in [dir_key + "/", dir_key + "0"): "0" follows "/".
        return not self.above(dir_key + "/") and (self.first is None or dir_key + "0" > self.first)


def join_key(prefix: str, relative: str) -> str:
    """``prefix`` + ``/`` + ``relative`` without a leading or doubled slash."""
    prefix = prefix.lstrip("/")
    if not prefix:
        return relative
    return prefix.rstrip("/") + "/" + relative


def doubled_slash_warning(prefix: str) -> str | None:
    """What to tell a user whose prefix holds ``//``, which ``join_key`` keeps inside it."""
    if "//" not in prefix.strip("/"):
        return None
    return (
        f"prefix {prefix!r} holds '//': S3 keeps it in the keys, but SeaweedFS and some other "
        "S3-compatible stores collapse it, and then update finds none of the objects it put"
    )


FILTER_KINDS = ("include", "exclude")


@dataclass(frozen=True)
class Selection:
    """What to pick from the tree: include/exclude globs and the symlink policy.

    A glob is matched (``fnmatch``, case-sensitive) against the path relative to SOURCE, as aws
    cli matches its filters: ``*`` also matches ``/``, so ``*.log`` is a log at any depth,
    ``k.txt`` only the one at the top. A file SOURCE is matched by its name.

    ``rules`` are ``(kind, glob)`` filters applied as aws cli applies ``--exclude`` and
    ``--include``: every file starts included and the last matching rule wins.
    ``include`` and ``exclude`` (the Airflow operators' keywords) are the rules ``exclude *,
    include..., exclude...``, applied before ``rules``.

    ``follow_dir_symlinks`` (``--follow-symlinks``) walks into directory symlinks and lets file
    symlinks point outside SOURCE; without it, such a file symlink is a ``WalkError``.
    """

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    follow_dir_symlinks: bool = False
    rules: Sequence[tuple[str, str]] = ()

    def __post_init__(self) -> None:
        for kind, _ in self.rules:
            if kind not in FILTER_KINDS:
                raise ValueError(f"a filter is 'include' or 'exclude', not {kind!r}")

    @cached_property
    def _compiled(self) -> tuple[tuple[bool, Callable[[str], object]], ...]:
        """The rules in the order they apply, as (include?, glob), compiled once: ``wants`` runs
        once per file."""
        ordered = [(True, glob) for glob in self.include] + [(False, glob) for glob in self.exclude]
        ordered += [(kind == "include", glob) for kind, glob in self.rules]
        return tuple((include, re.compile(fnmatch.translate(glob)).match) for include, glob in ordered)

    @property
    def filters(self) -> bool:
        """Whether any file can be left out."""
        return bool(self._compiled)

    def wants(self, relative: str) -> bool:
        wanted = not self.include
        for include, match in self._compiled:
            # The last match wins: only a rule of the other kind can change the verdict.
            if include != wanted and match(relative):
                wanted = include
        return wanted


def ineffective_includes(rules: Sequence[tuple[str, str]]) -> list[str]:
    """The include globs that come before any exclude: they change nothing."""
    return [glob for kind, glob in itertools.takewhile(lambda rule: rule[0] == "include", rules)]


@dataclass
class WalkNotes:
    """What a walk passed over without an item in its stream, for the summary to say."""

    #: symlinks to directories not walked into (no ``--follow-symlinks``)
    dir_symlinks: int = 0


def distinct_sources(sources: Sequence[str]) -> list[str]:
    """``sources`` without the ones that name an earlier one's file or directory again
    (``d`` and ``d/``, ``./d``, a symlink to ``d``): walked twice, each file would clash with
    itself as a duplicate key."""
    first_naming: dict[str, str] = {}
    for source in sources:
        first_naming.setdefault(os.path.realpath(source), source)
    return list(first_naming.values())


def check_sources(sources: Sequence[str]) -> None:
    """Fail early, with one line, on a SOURCE that does not exist or is not a file/directory."""
    if not sources:
        raise UsageError("no {setting} given", setting="source")
    for source in sources:
        if problem := _source_problem(source):
            raise UsageError(f"{{setting}} {source!r} {problem}", setting="source")


def _source_problem(source: str) -> str | None:
    try:
        mode = os.stat(source).st_mode
    except (OSError, ValueError):  # what ``os.path.exists`` takes for "does not exist"
        return "does not exist"
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        return "is neither a regular file nor a directory"
    if not os.access(source, os.R_OK):
        return "is not readable"
    return None


class DuplicateKeyError(UsageError):
    """Two SOURCEs hold files that map to one key."""


def check_unique_keys(
    sources: Sequence[str],
    prefix: str = "",
    selection: Selection = Selection(),
    key_range: KeyRange = KeyRange(),
) -> None:
    """Raise ``DuplicateKeyError`` if two of ``sources`` map a file to one key in ``key_range``.

    One streaming walk before the upload, so that nothing is uploaded when it fails. A mapped
    Airflow batch checks only its own key range: its plan walked, and so checked, the whole tree.
    """
    if len(sources) > 1:
        for _ in walk(sources, prefix, selection, key_range):
            pass


def walk(
    sources: Sequence[str],
    prefix: str = "",
    selection: Selection = Selection(),
    key_range: KeyRange = KeyRange(),
    notes: WalkNotes | None = None,
) -> Iterator[WalkItem]:
    """Yield every file under ``sources`` in key order, restricted to ``key_range``; ``notes``,
    when given, counts what the walk passes over in silence."""
    sources = distinct_sources(sources)
    roots = tuple(os.path.realpath(s) for s in sources)
    notes = notes if notes is not None else WalkNotes()
    walker = _Walk(selection, key_range, roots, notes)
    streams = [walker.source(s, prefix) for s in sources]
    if len(streams) == 1:
        yield from streams[0]
    else:
        yield from _refuse_duplicates(heapq.merge(*streams, key=lambda item: item.key))


def _refuse_duplicates(items: Iterator[WalkItem]) -> Iterator[WalkItem]:
    """Pass the merged walk through, raising on the second of two items with one file key.

    Directory errors (keys ending in ``/``, or the empty key of an unreadable SOURCE) are not
    files: two of them are two failures, reported as such.
    """
    previous: WalkItem | None = None
    for item in items:
        if previous is not None and item.key == previous.key and item.key and not item.key.endswith("/"):
            if _same_file(previous, item):
                continue  # one file named twice (``d`` and ``d/f``): it is put once
            raise DuplicateKeyError(
                f"two SOURCEs map to key {item.key!r}: {previous.path!r} and {item.path!r} "
                "(one would overwrite the other; exclude one or upload them under different prefixes)"
            )
        previous = item
        yield item


def _same_file(one: WalkItem, other: WalkItem) -> bool:
    return (
        isinstance(one, FileEntry)
        and isinstance(other, FileEntry)
        and one.ino != 0
        and (one.dev, one.ino) == (other.dev, other.ino)
    )


@dataclass
class _Walk:
    """What the walk of every SOURCE and every directory in it shares."""

    selection: Selection
    key_range: KeyRange
    roots: tuple[str, ...]
    notes: WalkNotes

    def source(self, source: str, prefix: str) -> Iterator[WalkItem]:
        source = os.path.abspath(source)
        if os.path.isdir(source):
            try:
                ancestors = {_identity(source)}
            except OSError:
                ancestors = set()  # listing it reports the problem
            yield from self.walk(source, "", join_key(prefix, ""), ancestors)
            return
        name = os.path.basename(source)
        item = _file_item(source, name, join_key(prefix, name))
        if item is not None and item.key in self.key_range and self.selection.wants(name):
            yield item

    def walk(
        self, path: str, relative: str, head: str, ancestors: set[tuple[int, int]]
    ) -> Iterator[WalkItem]:
        """The items of directory ``path`` (``relative`` to SOURCE, its keys starting with
        ``head``: ``""`` or ``dir/``) in key order, its subdirectories' in place."""
        try:
            children = self._sorted_children(path)
        except OSError as exc:
            yield from self._dir_problem(path, head, f"cannot list directory: {exc.strerror or exc}")
            return
        for name, entry, is_dir in children:
            key = head + name
            if is_dir:
                if self.key_range.may_hold_dir(key):
                    yield from self._subdir(entry, relative + entry.name + "/", key + "/", ancestors)
            elif self.key_range.above(key):
                return  # sorted: nothing after this can be in range
            elif (item := self._file(entry, relative + entry.name, key)) is not None:
                yield item

    def _sorted_children(self, path: str) -> list[tuple[str, os.DirEntry[str], bool]]:
        """(printable name, entry, is a directory to walk), in key order."""
        with os.scandir(path) as it:
            children = [(_printable(e.name), e, _is_walkable_dir(e, self.selection)) for e in it]
        # Sorting by name + "/" for directories puts keys in plain lexicographic order.
        children.sort(key=lambda child: child[0] + "/" if child[2] else child[0])
        return children

    def _subdir(
        self, entry: os.DirEntry[str], relative: str, head: str, ancestors: set[tuple[int, int]]
    ) -> Iterator[WalkItem]:
        try:
            identity = _identity(entry.path)
        except OSError as exc:
            yield from self._dir_problem(entry.path, head, f"cannot list directory: {exc.strerror or exc}")
            return
        if identity in ancestors:
            yield from self._dir_problem(entry.path, head, "symlink loop: directory already being walked")
            return
        yield from self.walk(entry.path, relative, head, ancestors | {identity})

    def _dir_problem(self, path: str, head: str, message: str) -> Iterator[WalkError]:
        """An error for a whole directory, keyed ``dir/`` so that it sorts where its files would."""
        error = WalkError(_printable(path), head, message)
        if error.key in self.key_range:
            yield error

    def _file(self, entry: os.DirEntry[str], relative: str, key: str) -> WalkItem | None:
        """The file's item, or ``None`` when it is not selected (or a directory symlink not
        followed, which is counted)."""
        if self.key_range.below(key) or not self.selection.wants(relative):
            return None
        item = _file_item(entry.path, relative, key)
        if item is None:
            self.notes.dir_symlinks += 1  # a directory symlink not followed
        elif (
            not self.selection.follow_dir_symlinks
            and isinstance(item, FileEntry)
            and _links_outside(entry, self.roots)
        ):
            item = WalkError(item.path, item.key, "symlink to a file outside SOURCE (see --follow-symlinks)")
        return item


def _identity(path: str) -> tuple[int, int]:
    """What tells a directory from another whatever the path to it: one stat, where realpath
    would take one per path component."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _is_walkable_dir(entry: os.DirEntry[str], selection: Selection) -> bool:
    try:
        if entry.is_symlink():
            return selection.follow_dir_symlinks and entry.is_dir(follow_symlinks=True)
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _file_item(path: str, relative: str, key: str) -> WalkItem | None:
    """Stat one path; ``None`` for directory symlinks that are not followed."""
    if not _is_utf8(relative):
        return WalkError(
            _printable(path), _printable(key), "file name is not valid UTF-8: S3 keys must be UTF-8"
        )
    key_bytes = len(key.encode("utf-8"))
    if key_bytes > MAX_KEY_BYTES:
        return WalkError(path, key, f"key is {key_bytes} bytes: S3 allows at most {MAX_KEY_BYTES}")
    try:
        st = os.stat(path)  # follows file symlinks on purpose
    except FileNotFoundError:
        return WalkError(path, key, "broken symlink" if os.path.islink(path) else "file disappeared")
    except OSError as exc:
        return WalkError(path, key, f"cannot stat: {exc.strerror or exc}")
    if stat.S_ISDIR(st.st_mode):
        return None  # a directory symlink we chose not to follow
    if not stat.S_ISREG(st.st_mode):
        return WalkError(path, key, "not a regular file (FIFO, socket or device): skipped")
    return FileEntry(path, key, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_ctime_ns)


def _links_outside(entry: os.DirEntry[str], roots: tuple[str, ...]) -> bool:
    """Whether ``entry`` is a symlink whose target is under none of the SOURCE ``roots``."""
    try:
        if not entry.is_symlink():
            return False
    except OSError:
        return False
    real = os.path.realpath(entry.path)
    return not any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _is_utf8(text: str) -> bool:
    # Names that are not UTF-8 arrive with lone surrogates (surrogateescape), which cannot encode.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    """``text`` with the bad bytes of a name that is not UTF-8 shown as ``\\xNN``: keys are built
    from these, so a bad name still sorts in place and prints without error."""
    if _is_utf8(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")

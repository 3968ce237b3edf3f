"""``--delete``: remove the keys under PREFIX that no local file maps to, after an upload.

What ``aws s3 sync --delete``, ``s5cmd sync --delete`` and ``rclone sync`` do, with these rules:

- Only keys a listing showed are deleted, and only inside the run's key range (an Airflow batch
  deletes inside its own range; the batches cover the key space end to end).
- Nothing is deleted when any file of that key range failed (an unreadable directory would
  otherwise look like a deleted one), nor after the first error of the walk made here.
- Keys that ``--include``/``--exclude`` leave out are kept: a filter hides files from a run, it
  does not declare them gone. So are directory markers (keys ending in ``/``).
- ``--dry-run`` reports ``would delete KEY`` and sends no DeleteObjects.

How: a merge-join of two ascending key streams, the walk of SOURCE and the listing of PREFIX,
so that memory stays flat however many keys there are. S3 and moto list in lexicographic
order, SeaweedFS in tree order (a directory ``a`` before a file ``a-b``, whose key sorts
first), so the bucket is listed one "directory" at a time (``Delimiter="/"``) and each
directory's entries are sorted the way the walker sorts a directory's files (a subdirectory as
``name/``): every server then gives the same lexicographic stream, and memory holds the
directories on the current path, as the walk does. Subdirectories are listed a few ahead,
concurrently. Within a key range, ``StartAfter`` and an early stop skip the part of a directory
outside the range (with bounds that are safe in both listing orders, see ``_Bounds``).

Deletions go out in DeleteObjects requests of up to 1,000 keys; each key's error is a failure
of the run, counted and reported like a failed upload.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from airflow_s3pput.errors import S3Error, describe_error
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.remote_index import pages
from airflow_s3pput.stats import PutResult
from airflow_s3pput.transport import Transport
from airflow_s3pput.walker import KeyRange, Selection, WalkError, join_key, walk

#: keys in one DeleteObjects request (S3's maximum)
DELETE_BATCH = 1000
#: directories listed ahead of the merge, and the threads that list them
LIST_AHEAD = 8

Record = Callable[[PutResult], None]


@dataclass(frozen=True)
class DeleteStats:
    """What one ``delete_extraneous`` did: keys deleted (or, in a dry run, to delete), keys that
    failed to delete, and why nothing was looked at, if so."""

    deleted: int = 0
    failed: int = 0
    skipped: str = ""


class UnsortedKeys(Exception):
    """A key stream of the merge-join went backwards: nothing after it can be decided."""


def extraneous_keys(local: Iterable[str], remote: Iterable[str]) -> Iterator[str]:
    """The keys of ``remote`` that are not in ``local``; both must be strictly ascending.

    A merge-join: one pass over each, memory for two keys. Raises ``UnsortedKeys`` (after
    yielding only keys decided correctly) as soon as either stream goes backwards.
    """
    local_keys = _ascending(local, "local")
    current = next(local_keys, None)
    for key in _ascending(remote, "remote"):
        while current is not None and current < key:
            current = next(local_keys, None)
        if current != key:
            yield key


def _ascending(keys: Iterable[str], name: str) -> Iterator[str]:
    previous: str | None = None
    for key in keys:
        if previous is not None and key <= previous:
            raise UnsortedKeys(f"{name} keys out of order: {previous!r} then {key!r}")
        previous = key
        yield key


def delete_extraneous(
    transport: Transport,
    options: UploadOptions,
    key_range: KeyRange = KeyRange(),
    *,
    failed_uploads: int = 0,
    record: Record | None = None,
) -> DeleteStats:
    """Delete the keys under ``options.prefix`` in ``key_range`` that no local file maps to.

    ``transport`` lists and deletes. ``failed_uploads``
    is the number of files of this key range that failed: any, and nothing is deleted. Each
    deleted key (``action="delete"``) and each failure (``action="fail"``) goes to ``record``.
    """
    report: Record = record or (lambda result: None)
    if failed_uploads:
        return DeleteStats(skipped=f"{failed_uploads} files failed: nothing deleted")
    selection = options.selection()
    root = join_key(options.prefix, "")
    deleter = _Deleter(transport, options.dry_run, report)
    local = _local_keys(walk(options.sources, options.prefix, selection, key_range))
    with ThreadPoolExecutor(LIST_AHEAD, thread_name_prefix="s3pput-delete-list") as listers:
        remote = _wanted(_remote_keys(transport, root, key_range, listers), root, selection)
        # The keys sent so far were decided against a local key above them: they stay right
        # whatever stops the join, and are flushed below.
        try:
            for key in extraneous_keys(local, remote):
                deleter.add(key)
        except _WalkStopped as stop:
            error = stop.error
            report(PutResult(error.path, error.key, "fail", error=f"{error.message} (--delete stopped here)"))
            deleter.failed += 1
        except Exception as exc:  # noqa: BLE001 - a failed listing or an unsorted stream: stop
            where = f"s3://{options.bucket}/{root}"
            report(PutResult("", where, "fail", error=f"--delete stopped: {describe_error(exc)}"))
            deleter.failed += 1
    deleter.flush()
    return DeleteStats(deleted=deleter.deleted, failed=deleter.failed)


class _WalkStopped(Exception):
    def __init__(self, error: WalkError) -> None:
        super().__init__(error.message)
        self.error = error


def _local_keys(items: Iterable[Any]) -> Iterator[str]:
    """The walk's keys, up to its first ``WalkError``: that key is yielded as a fence (it decides
    the remote keys below it), then ``_WalkStopped`` is raised. Past a path that could not be
    read, a missing local file proves nothing, and an early end of this stream would make every
    later key look extraneous."""
    for item in items:
        yield item.key
        if isinstance(item, WalkError):
            raise _WalkStopped(item)


def _wanted(keys: Iterable[str], root: str, selection: Selection) -> Iterator[str]:
    """The listed keys ``--delete`` may remove: not a directory marker, not hidden by a filter."""
    for key in keys:
        if not key.endswith("/") and selection.wants(key[len(root) :]):
            yield key


class _Deleter:
    """Sends DeleteObjects for up to ``DELETE_BATCH`` keys at a time and reports each key."""

    def __init__(self, transport: Transport, dry_run: bool, report: Record) -> None:
        self.transport = transport
        self.dry_run = dry_run
        self.report = report
        self.pending: list[str] = []
        self.deleted = 0
        self.failed = 0

    def add(self, key: str) -> None:
        self.pending.append(key)
        if len(self.pending) >= DELETE_BATCH:
            self.flush()

    def flush(self) -> None:
        keys, self.pending = self.pending, []
        if not keys:
            return
        errors: dict[str, str] = {}
        if not self.dry_run:
            try:
                errors = self.transport.delete_objects(keys)
            except S3Error as exc:  # the request failed: so did each of its keys
                errors = dict.fromkeys(keys, describe_error(exc))
        reason = "dry-run" if self.dry_run else "extraneous"
        for key in keys:
            if key in errors:
                self.failed += 1
                self.report(PutResult("", key, "fail", error=f"cannot delete: {errors[key] or 'error'}"))
            else:
                self.deleted += 1
                self.report(PutResult("", key, "delete", reason))


# --- the listing, one directory at a time, in lexicographic order --------------------------------


#: a listed key, or the prefix ``dir/`` of a subdirectory, and whether it is one: sorted by
#: that key, as the walker sorts a directory (a subdirectory as ``name/``)
_Entry = tuple[str, bool]


def _remote_keys(transport: Transport, root: str, key_range: KeyRange, executor: Executor) -> Iterator[str]:
    """Every key under ``root`` within ``key_range``, ascending, whatever order the server lists."""
    yield from _walk_listing(
        transport, executor.submit(_list_dir, transport, root, key_range), key_range, executor
    )


def _walk_listing(
    transport: Transport, listing: Future[list[_Entry]], key_range: KeyRange, executor: Executor
) -> Iterator[str]:
    entries = listing.result()
    subdirs = (key for key, is_dir in entries if is_dir and key_range.may_hold_dir(key[:-1]))
    ahead: deque[tuple[str, Future[list[_Entry]]]] = deque()

    def list_more() -> None:
        for subdir in itertools.islice(subdirs, LIST_AHEAD - len(ahead)):
            ahead.append((subdir, executor.submit(_list_dir, transport, subdir, key_range)))

    list_more()
    for key, is_dir in entries:
        if not is_dir:
            if key in key_range:
                yield key
        elif ahead and ahead[0][0] == key:  # else pruned: it holds no key of the range
            _, future = ahead.popleft()
            list_more()
            yield from _walk_listing(transport, future, key_range, executor)


def _list_dir(transport: Transport, prefix: str, key_range: KeyRange) -> list[_Entry]:
    """The files and subdirectories directly under ``prefix`` that may be in ``key_range``,
    sorted by the walker's rule (so that their keys come out in lexicographic order)."""
    bounds = _Bounds(prefix, key_range)
    entries: list[_Entry] = []
    for page in pages(transport, prefix, delimiter="/", start_after=bounds.start_after):
        listed = [(obj.key, False) for obj in page.objects if obj.key != prefix]  # not its marker
        listed += [(sub, True) for sub in page.prefixes]
        entries += listed
        if any(bounds.past_last(key[len(prefix) :].rstrip("/")) for key, _ in listed):
            break
    entries.sort()
    return entries


class _Bounds:
    """Where the listing of one directory may start and stop, for a key range, correctly for
    servers that list entries by name (SeaweedFS: a subdirectory ``a`` sorts as ``a``) and for
    those that list by key (S3: it sorts as ``a/``).

    The trouble is a name followed by a character below ``/`` (`` !"#$%&'()*+,-.``): ``a-b``
    sorts before ``a/x`` as a key but after ``a`` as a name. So ``StartAfter`` is the first
    key's name cut before its first such character and by one more character: every entry
    with a key in the range has a greater name, and a greater key. And the listing stops at an
    entry whose name is above the last key's name without continuing it with such a character:
    all its keys, and those of every later entry in either order, are past the range.
    """

    def __init__(self, prefix: str, key_range: KeyRange) -> None:
        first = _name_under(prefix, key_range.first) or ""
        cut = next((i for i, c in enumerate(first) if c < "/"), len(first))
        self.start_after = prefix + first[: cut - 1] if cut > 1 else ""
        self.last_name = _name_under(prefix, key_range.last)

    def past_last(self, name: str) -> bool:
        last = self.last_name
        if last is None or name <= last:
            return False
        continues_low = name.startswith(last) and len(name) > len(last) and name[len(last)] < "/"
        return not continues_low


def _name_under(prefix: str, key: str | None) -> str | None:
    """The name of the entry directly under ``prefix`` that holds ``key``, if one does."""
    if key is None or not key.startswith(prefix):
        return None
    return key[len(prefix) :].split("/", 1)[0]

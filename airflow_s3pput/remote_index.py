"""Learn what the bucket holds for a group of keys by listing, not one HEAD per key.

A group of keys spread over several directories is looked up with one flat listing of their
common prefix, when that holds at most ``FLAT_LISTING_MAX_OBJECTS`` (order does not matter there:
the whole prefix is read). Otherwise keys are grouped by their parent "directory" and each
directory is listed with ``Delimiter="/"``, starting just before the group's first key and
stopping after its last one: within one directory, servers that list in tree order rather than
S3's lexicographic order (SeaweedFS does) agree with S3, so stopping early is safe there.
Memory holds the keys asked for and the one flat listing kept for the run (``RemoteIndex``).

A flat attempt over a few directories may read no more pages than listing them one by one
would take requests (``_flat_budget``): when the prefix is too crowded, the attempt cost at
most what it tried to save, once per prefix.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, wait

from airflow_s3pput.modes import RemoteObject
from airflow_s3pput.transport import Lister, ListPage

#: a group spread over this many directories is looked up with one flat listing of their
#: common prefix (1,000 keys a request), split by subdirectory, instead of one listing per
#: directory ...
FLAT_LISTING_MIN_DIRS = 20
#: ... unless that prefix holds more objects than this
FLAT_LISTING_MAX_OBJECTS = 10_000
#: a flat listing of a prefix with this many subdirectories or fewer lists them concurrently
SPLIT_LISTING_MAX_DIRS = 16
#: objects a listing request asks for (S3's maximum)
LIST_PAGE_KEYS = 1000


def parent_prefix(key: str) -> str:
    cut = key.rfind("/")
    return key[: cut + 1] if cut >= 0 else ""


class RemoteIndex:
    """What the bucket holds, learnt group by group over one run.

    A complete flat listing is kept (one at a time, at most ``FLAT_LISTING_MAX_OBJECTS``) and
    answers every later group under its prefix: a tree of many small directories is then
    listed once per run rather than once per group. A prefix found too crowded for a
    flat listing is remembered, and so are its parents, so the attempt is not repeated.
    ``prefetch`` starts the flat listing of the run's prefix before the first group is known, so
    that it overlaps the walk.

    With an ``executor``, directories are listed concurrently (transports are thread-safe):
    a tree of many small folders is otherwise a chain of round trips. ``lookup`` may be called
    from several threads (the engine looks up two groups at once); a flat listing one lookup
    is making is waited for, not made twice, by another that it would answer.
    """

    def __init__(self, transport: Lister, executor: Executor | None = None) -> None:
        self.transport = transport
        self.executor = executor
        self._listed_prefix: str | None = None
        self._listed: dict[str, RemoteObject] = {}
        #: prefixes found to hold more objects than a flat listing of them was allowed: the
        #: largest such allowance, per prefix
        self._crowded: dict[str, int] = {}
        self._prefetch: tuple[str, Future[dict[str, RemoteObject] | None]] | None = None
        #: flat listings being made, by prefix (done when they are kept or found crowded)
        self._listing_now: dict[str, Future[None]] = {}
        self._lock = threading.Lock()

    def prefetch(self, prefix: str, hints: Iterable[str] = ()) -> None:
        """Start the flat listing of ``prefix`` (under which every key looked up must be);
        ``hints``: its subdirectories the walk will have (see ``_list_flat``)."""
        future: Future[dict[str, RemoteObject] | None] = Future()

        def run() -> None:
            try:
                future.set_result(_list_flat(self.transport, prefix, self.executor, tuple(hints)))
            except BaseException as exc:  # noqa: BLE001 - the first lookup raises it
                future.set_exception(exc)

        threading.Thread(target=run, name="s3pput-prefetch", daemon=True).start()
        self._prefetch = (prefix, future)

    def close(self) -> None:
        """Wait for a prefetch no lookup asked for (a run with nothing to look up)."""
        if self._prefetch is not None:
            wait([self._prefetch[1]])

    def lookup(self, keys: Iterable[str]) -> dict[str, RemoteObject]:
        """Return the listed size, ETag and LastModified of each of ``keys`` in the bucket."""
        self._take_prefetch()
        by_dir: dict[str, set[str]] = defaultdict(set)
        for key in keys:
            by_dir[parent_prefix(key)].add(key)
        listing = self._flat_listing(_common_dir(by_dir), len(by_dir))
        if listing is not None:
            return {key: listing[key] for wanted in by_dir.values() for key in wanted if key in listing}
        found: dict[str, RemoteObject] = {}
        each = map if self.executor is None or len(by_dir) == 1 else self.executor.map
        for listed in each(lambda item: _list_dir(self.transport, *item), by_dir.items()):
            found.update(listed)
        return found

    def _take_prefetch(self) -> None:
        """Wait for the prefetch and keep its listing; its error is raised by the lookups that
        waited for it, and later ones list on their own."""
        with self._lock:
            pending = self._prefetch
        if pending is None:
            return
        prefix, future = pending
        try:
            listing = future.result()
        except BaseException:
            with self._lock:
                if self._prefetch is pending:
                    self._prefetch = None
            raise
        with self._lock:
            if self._prefetch is pending:
                self._prefetch = None
                self._keep(prefix, listing, FLAT_LISTING_MAX_OBJECTS)

    def _flat_listing(self, prefix: str, dirs: int) -> dict[str, RemoteObject] | None:
        """Every object under ``prefix`` from the listing kept, else from a new one worth trying
        for a group over ``dirs`` directories; ``None`` if there is none or the prefix holds too
        many objects for one."""
        while True:
            with self._lock:
                if self._listed_prefix is not None and prefix.startswith(self._listed_prefix):
                    return self._listed
                making = next((f for p, f in self._listing_now.items() if prefix.startswith(p)), None)
                if making is None:
                    budget = _flat_budget(dirs)
                    if not budget or self._known_crowded(prefix, budget):
                        return None
                    mine: Future[None] = Future()
                    self._listing_now[prefix] = mine
                    break
            wait([making])  # then look again: it is kept, or its prefix is known crowded
        listing: dict[str, RemoteObject] | None = None
        try:
            if dirs >= FLAT_LISTING_MIN_DIRS:
                listing = _list_flat(self.transport, prefix, self.executor)
            else:
                # Page after page, without the split's first request by delimiter: a prefix of
                # one page (the usual case here) is then one request, not one per subdirectory.
                listing = _list_pages(self.transport, prefix, _Budget(budget))
            with self._lock:
                self._keep(prefix, listing, budget)
        finally:
            with self._lock:
                del self._listing_now[prefix]
            mine.set_result(None)
        return listing

    def _known_crowded(self, prefix: str, budget: int) -> bool:
        """Whether ``prefix`` is known to hold more than half ``budget`` objects (it or a prefix
        under it was found so; a prefix under a crowded one may be small). Asking again only
        with twice the allowance bounds the pages spent on one prefix."""
        return 2 * self._crowded.get(prefix, 0) > budget

    def _keep(self, prefix: str, listing: dict[str, RemoteObject] | None, budget: int) -> None:
        if listing is None:
            # The parents hold at least as much: one lookup per group, whatever the count.
            for parent in _parents(prefix):
                self._crowded[parent] = max(budget, self._crowded.get(parent, 0))
        else:
            self._listed_prefix, self._listed = prefix, listing


def _parents(prefix: str) -> Iterator[str]:
    """``prefix`` and the directory prefixes above it, up to the empty one."""
    yield prefix
    while prefix:
        prefix = parent_prefix(prefix[:-1])
        yield prefix


def _flat_budget(dirs: int) -> int:
    """The objects a flat listing for a group over ``dirs`` directories may read: as many pages
    as listing the directories one by one takes requests (at least), all it may hold from
    ``FLAT_LISTING_MIN_DIRS`` on; 0 for one directory, whose own listing reads only the range
    wanted. A tree of many small directories is then read a page of 1,000 at a time rather than
    a request per directory."""
    if dirs < 2:
        return 0
    if dirs >= FLAT_LISTING_MIN_DIRS:
        return FLAT_LISTING_MAX_OBJECTS
    return min(FLAT_LISTING_MAX_OBJECTS, dirs * LIST_PAGE_KEYS)


def _common_dir(prefixes: Iterable[str]) -> str:
    common = os.path.commonprefix(list(prefixes))  # noqa: RUF071 - keys are strings, not paths
    return common[: common.rfind("/") + 1]


def _list_flat(
    transport: Lister, prefix: str, executor: Executor | None = None, hints: Sequence[str] = ()
) -> dict[str, RemoteObject] | None:
    """Everything under ``prefix``, or ``None`` if it holds more than ``FLAT_LISTING_MAX_OBJECTS``.

    With an ``executor``, a prefix of a few subdirectories has them listed concurrently: a
    listing is a chain of page requests, and each subdirectory is a chain of its own. The
    prefix's first page by delimiter says which subdirectories there are. Those in ``hints``
    (the local tree's, ``prefix + name + "/"``) are listed beside that page rather than after
    it: an unchanged re-run of a tree of a few directories is then one round trip, not two,
    which the far-S3 re-run target needs (BENCHMARKS.md). A hint the bucket does not have costs
    one empty listing, never a wrong answer.
    """
    budget = _Budget(FLAT_LISTING_MAX_OBJECTS)
    if executor is None:
        return _list_pages(transport, prefix, budget)
    early = _list_hinted(transport, prefix, executor, hints, budget)
    top = transport.list_page(prefix, delimiter="/", max_keys=LIST_PAGE_KEYS)
    if top.next_token is not None or len(top.prefixes) > SPLIT_LISTING_MAX_DIRS:
        # A budget of its own: the hinted listings have charged the first one.
        return _list_pages(transport, prefix, _Budget(FLAT_LISTING_MAX_OBJECTS))
    # Not truncated, the page holds every object directly under the prefix: only the
    # subdirectories are left to list (none, for a prefix without any).
    found = _objects(top)
    if not budget.take(len(found)):
        return None
    parts = [early.get(d) or executor.submit(_list_pages, transport, d, budget) for d in top.prefixes]
    for part in parts:
        listed = part.result()
        if listed is None:
            return None
        found.update(listed)
    return found


def _list_hinted(
    transport: Lister, prefix: str, executor: Executor, hints: Sequence[str], budget: _Budget
) -> dict[str, Future[dict[str, RemoteObject] | None]]:
    """Start listing the subdirectories of ``prefix`` among ``hints``, when they are few."""
    subdirs = [h for h in hints if h.startswith(prefix) and h[len(prefix) :].count("/") == 1]
    if len(subdirs) > SPLIT_LISTING_MAX_DIRS:
        return {}
    return {d: executor.submit(_list_pages, transport, d, budget) for d in subdirs}


def pages(
    transport: Lister, prefix: str, *, delimiter: str = "", start_after: str = ""
) -> Iterator[ListPage]:
    """ListObjectsV2 pages, the next one fetched only when asked for."""
    page = transport.list_page(prefix, delimiter=delimiter, start_after=start_after, max_keys=LIST_PAGE_KEYS)
    yield page
    while page.next_token is not None:
        page = transport.list_page(
            prefix, delimiter=delimiter, token=page.next_token, max_keys=LIST_PAGE_KEYS
        )
        yield page


def _list_pages(transport: Lister, prefix: str, budget: _Budget) -> dict[str, RemoteObject] | None:
    found: dict[str, RemoteObject] = {}
    for page in pages(transport, prefix):
        if not budget.take(len(page.objects)):
            return None
        found.update(_objects(page))
    return found


class _Budget:
    """How many more listed objects one flat listing may hold, shared by its threads."""

    def __init__(self, objects: int) -> None:
        self.left = objects
        self.lock = threading.Lock()

    def take(self, objects: int) -> bool:
        with self.lock:
            self.left -= objects
            return self.left >= 0


def _objects(page: ListPage) -> dict[str, RemoteObject]:
    return {key: RemoteObject(size, etag, modified) for key, size, etag, modified in page.objects}


def _list_dir(transport: Lister, prefix: str, wanted: set[str]) -> dict[str, RemoteObject]:
    first, last = min(wanted), max(wanted)
    # StartAfter is exclusive: start from a string just below the first key.
    start_after = first[:-1]
    found: dict[str, RemoteObject] = {}
    start_after = start_after if len(start_after) > len(prefix) else ""
    for page in pages(transport, prefix, delimiter="/", start_after=start_after):
        found.update((key, obj) for key, obj in _objects(page).items() if key in wanted)
        if page.objects and page.objects[-1].key > last:
            break  # past the last key we look for
    return found

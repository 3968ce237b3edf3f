"""Learn what the bucket holds for a group of keys by listing, not one HEAD per key.

A group of keys spread over several directories is looked up with one flat listing of their
common prefix, when that holds at most a few thousand objects (order does not matter there:
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
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

    def prefetch(self, prefix: str, subdirs: Iterable[str] = (), *, crowded: bool = False) -> None:
        """Start the flat listing of ``prefix`` (under which every key looked up must be);
        ``subdirs``: prefixes directly under it that the walk will have (see ``_list_flat``).
        ``crowded``: the prefix likely holds too many objects: only find out whether it is empty
        (one request for one key), so that a first upload is still answered by one request."""
        future: Future[dict[str, RemoteObject] | None] = Future()
        hints = tuple(subdirs)

        def run() -> None:
            try:
                if crowded:
                    page = self.transport.list_page(prefix, max_keys=1)
                    future.set_result({} if not page.objects and not page.prefixes else None)
                    return
                future.set_result(_list_flat(self.transport, prefix, self.executor, hints))
            except BaseException as exc:  # noqa: BLE001 - the first lookup raises it
                future.set_exception(exc)

        threading.Thread(target=run, name="s3pput-prefetch", daemon=True).start()
        self._prefetch = (prefix, future)

    def close(self) -> None:
        """Wait for a prefetch no lookup asked for (a run with nothing to look up)."""
        if self._prefetch is not None:
            wait([self._prefetch[1]])

    def lookup(self, keys: Iterable[str]) -> dict[str, RemoteObject]:
        """Return the listed size and ETag of each of ``keys`` that exists in the bucket."""
        self._take_prefetch()
        by_dir: dict[str, set[str]] = defaultdict(set)
        for key in keys:
            by_dir[parent_prefix(key)].add(key)
        listing = self._flat_listing(_common_dir(by_dir), len(by_dir))
        if listing is not None:
            return {key: listing[key] for wanted in by_dir.values() for key in wanted if key in listing}
        found: dict[str, RemoteObject] = {}
        if self.executor is None or len(by_dir) == 1:
            listings: Iterable[dict[str, RemoteObject]] = (
                _list_dir(self.transport, prefix, wanted) for prefix, wanted in by_dir.items()
            )
        else:
            listings = self.executor.map(lambda item: _list_dir(self.transport, *item), by_dir.items())
        for listing in listings:
            found.update(listing)
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
    wanted. On the 100,000 small files of ``benchmarks.digest_record_bench many`` (groups over 5
    directories of 200 files) this lists 100 pages instead of 500: SeaweedFS spent 2.4 s instead
    of 3.0 s of CPU on them, s3pput 1.0 s instead of 1.4 s."""
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
    subdirectories in ``hints`` (the local tree's, ``prefix + name + "/"``) are listed beside
    the prefix's own page rather than after it: an unchanged re-run of a tree of ten directories
    25 ms away then lists in one round trip instead of two (each on a new connection, which
    costs one more). The answer is the same: the page says which subdirectories exist, the
    hinted ones that do not are empty, the others are listed after it.

    Hints one level deeper (``prefix + name + "/" + sub + "/"``) split a hinted subdirectory
    the same way, in the same round, as long as the round holds at most ``LISTING_ROUND``
    requests: the 2,000 files in 10 directories of the 2 GiB tree (``small/``) were two pages
    in a row, 100-110 ms here, and are 11 requests side by side, 45-80 ms. Only this thread
    waits for answers, so the executor's threads never wait for one another.
    """
    budget = _Budget(FLAT_LISTING_MAX_OBJECTS)
    if executor is not None:
        early, shares = _start_hinted(transport, executor, prefix, hints, budget)
        try:
            top = transport.list_page(prefix, delimiter="/", max_keys=LIST_PAGE_KEYS)
            found = _split(transport, executor, prefix, top, budget, early, shares)
            if not isinstance(found, _NotSplit):
                return found
        finally:
            budget.stop()  # hinted listings nobody waits for end at their next page
        budget = _Budget(FLAT_LISTING_MAX_OBJECTS)
    return _list_pages(transport, prefix, budget)


#: requests a flat listing sends at once for its hints (the prefix's own page aside)
LISTING_ROUND = SPLIT_LISTING_MAX_DIRS


class _NotSplit:
    """What ``_split`` answers for a page too long or too wide to split by."""


_NOT_SPLIT = _NotSplit()
#: a hinted directory's listing started early: its page by delimiter (split hints) or all of it
_Early = Future[ListPage] | Future[dict[str, RemoteObject] | None]


def _start_hinted(
    transport: Lister, executor: Executor, prefix: str, hints: Sequence[str], budget: _Budget
) -> tuple[dict[str, _Early], dict[str, _Budget]]:
    """Start the listings of the hinted subdirectories of ``prefix``: a subdirectory with hinted
    subdirectories of its own by its page and theirs, while the round has room; the rest whole."""
    subdirs = [h for h in hints if _is_subdir(h, prefix)]
    if len(subdirs) > LISTING_ROUND:
        return {}, {}
    deeper = {d: [h for h in hints if _is_subdir(h, d)] for d in subdirs}
    room = LISTING_ROUND - len(subdirs)
    early: dict[str, _Early] = {}
    shares: dict[str, _Budget] = {}  # those of the listings one level deeper
    for d in subdirs:
        inner = deeper[d]
        if inner and len(inner) <= room:
            room -= len(inner)
            early[d] = executor.submit(transport.list_page, d, delimiter="/", max_keys=LIST_PAGE_KEYS)
            for h in inner:
                shares[h] = _Budget(0, parent=budget)
                early[h] = executor.submit(_list_pages, transport, h, shares[h])
        else:
            early[d] = executor.submit(_list_pages, transport, d, budget)
    return early, shares


def _split(
    transport: Lister,
    executor: Executor,
    prefix: str,
    top: ListPage,
    budget: _Budget,
    early: Mapping[str, _Early],
    shares: Mapping[str, _Budget],
) -> dict[str, RemoteObject] | _NotSplit | None:
    """Everything under ``prefix`` from its page by delimiter ``top`` and the listings of its
    subdirectories (started early, or now); ``_NOT_SPLIT`` for a page that is not the whole
    prefix's first level (truncated) or names too many subdirectories."""
    # Not truncated, the page holds every object directly under the prefix: only the
    # subdirectories are left to list (none, for a prefix without any).
    if top.next_token is not None or len(top.prefixes) > SPLIT_LISTING_MAX_DIRS:
        return _NOT_SPLIT
    found: dict[str, RemoteObject] = {}
    _collect(top, None, found)
    if not budget.take(len(found)):
        return None
    futures = [early.get(d) or executor.submit(_list_pages, transport, d, budget) for d in top.prefixes]
    for d, future in zip(top.prefixes, futures, strict=True):
        part: dict[str, RemoteObject] | ListPage | _NotSplit | None = future.result()
        if isinstance(part, ListPage):  # a hinted subdirectory's own page: split it in turn
            part = _split(transport, executor, d, part, budget, early, shares)
            if isinstance(part, _NotSplit):
                # Listed whole after all: the listings started for its hinted subdirectories
                # are stopped, and what they took is given back, so that the budget counts
                # each object once.
                _discard({h: early[h] for h in shares if _is_subdir(h, d)}, shares)
                part = _list_pages(transport, d, budget)
        if part is None or isinstance(part, _NotSplit):
            return None
        found.update(part)
    return found


def _discard(listings: Mapping[str, _Early], shares: Mapping[str, _Budget]) -> None:
    """Stop ``listings`` (started with ``shares``), wait for them, and give back their shares."""
    for hint in listings:
        shares[hint].stop()
    for hint, listing in listings.items():
        listing.exception()  # waits; an error is not ours to report: the answer is not used
        shares[hint].give_back()


def _is_subdir(hint: str, prefix: str) -> bool:
    rest = hint[len(prefix) :]
    return hint.startswith(prefix) and rest.endswith("/") and rest.count("/") == 1 and len(rest) > 1


def _pages(
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
    for page in _pages(transport, prefix):
        if not budget.take(len(page.objects)):
            return None
        _collect(page, None, found)
    return found


class _Budget:
    """How many more listed objects one flat listing may hold, shared by its threads. A share
    (``parent``) takes from its parent and can give back what it took, for a listing whose
    answer is not used (see ``_split``)."""

    def __init__(self, objects: int, parent: _Budget | None = None) -> None:
        self.left = objects
        self.parent = parent
        self.taken = 0
        self.lock = threading.Lock()

    def take(self, objects: int) -> bool:
        if self.parent is not None:
            with self.lock:
                if self.left < 0:
                    return False  # stopped
                self.taken += objects
            return self.parent.take(objects)
        with self.lock:
            self.left -= objects
            return self.left >= 0

    def stop(self) -> None:
        """Make every further ``take`` fail: the listings still running stop at their next page."""
        with self.lock:
            self.left = -1

    def give_back(self) -> None:
        """A share whose listing has ended: return what it took to the parent."""
        with self.lock:
            taken, self.taken = self.taken, 0
        if self.parent is not None:
            with self.parent.lock:
                self.parent.left += taken


def _collect(page: ListPage, wanted: set[str] | None, found: dict[str, RemoteObject]) -> None:
    """Add the page's objects (those in ``wanted``, unless that is ``None``) to ``found``."""
    for key, size, etag in page.objects:
        if wanted is None or key in wanted:
            found[key] = RemoteObject(size, etag)


def _list_dir(transport: Lister, prefix: str, wanted: set[str]) -> dict[str, RemoteObject]:
    first, last = min(wanted), max(wanted)
    # StartAfter is exclusive: start from a string just below the first key.
    start_after = first[:-1]
    found: dict[str, RemoteObject] = {}
    pages = _pages(
        transport, prefix, delimiter="/", start_after=start_after if len(start_after) > len(prefix) else ""
    )
    for page in pages:
        _collect(page, wanted, found)
        if page.objects and page.objects[-1].key > last:
            break  # past the last key we look for
    return found

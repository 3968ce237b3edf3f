"""The upload engine: walk -> list what exists -> put in parallel -> count.

``upload(options)`` is the whole job for the CLI and for one Airflow batch (``key_range``).
It streams: the walk is consumed a group at a time, each group's remote state is learnt by
listing, and at most ``in_flight_limit`` files are queued to the workers, so memory stays flat
however many files SOURCE holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, CancelledError, Executor, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from airflow_s3pput.bucket_check import BucketCheck, Gate, ListingBesideCheck, connect
from airflow_s3pput.digest_record import DigestRecord
from airflow_s3pput.errors import Interrupted, describe_error
from airflow_s3pput.modes import SKIP_UNCHANGED, RemoteObject, get_mode
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.pool import Dispatcher, make_dispatcher
from airflow_s3pput.putter import INTERRUPTED, PutTask
from airflow_s3pput.remote_index import SPLIT_LISTING_MAX_DIRS, RemoteIndex
from airflow_s3pput.stats import EARLIER_TRY, PutResult, Stats, StatsCollector
from airflow_s3pput.sync_delete import delete_extraneous
from airflow_s3pput.transport import Transport
from airflow_s3pput.upload_journal import abort_leftovers, journal_for
from airflow_s3pput.walker import (
    FileEntry,
    KeyRange,
    WalkError,
    WalkNotes,
    check_sources,
    check_unique_keys,
    join_key,
    walk,
)

#: files whose remote state one listing round covers
LOOKUP_GROUP = 1000
#: walk groups looked up at once, ahead of the group being decided: the lookups are a chain of
#: round trips, mostly waiting for the server, which one at a time leaves the walk waiting
LOOKAHEAD_GROUPS = 2
#: directories listed at once: as many as a flat listing splits a prefix into (see
#: ``remote_index._list_flat``), so that a tree of that many top directories is one round of requests
LISTING_THREADS = SPLIT_LISTING_MAX_DIRS
#: bytes of single-PUT bodies in flight at most (each is held in memory until its PUT ends, and
#: the CRT copies it into a buffer of its own: 64 MiB of memory for them, the README's bound);
#: small files never come near it
BODY_BYTES_IN_FLIGHT = 24 * 1024 * 1024


ResultCallback = Callable[[PutResult], None]
#: a walk group's look-ahead: its listed objects and the keys found unchanged (see _look_ahead)
Ahead = Future[tuple[dict[str, RemoteObject], set[str]]] | None
T = TypeVar("T")


def upload(
    options: UploadOptions,
    *,
    key_range: KeyRange = KeyRange(),
    on_result: ResultCallback | None = None,
    transport: Transport | None = None,
    landed_since: float | None = None,
) -> Stats:
    """Upload what ``options`` selects (within ``key_range``) and return the run's ``Stats``.

    Raises ``UsageError`` (before anything is uploaded) for bad sources or an unusable bucket.
    ``transport`` replaces the one ``open_transport`` would choose and keeps the work in this
    process (tests: a recording or in-memory transport, moto's client). ``landed_since``: for
    a retry, when the run this try belongs to began, on the server's clock (epoch seconds; the
    Airflow plan's HeadBucket time): a file skipped because its object was written since then
    is counted as put, by an earlier try (``landed_earlier``). ``None`` (the CLI): skipped.

    Everything the run opens is closed here, in the reverse order of opening: the dispatcher
    (its last uploads), the look-ahead, the index and its listing threads, the bucket check (its
    abort is written in the journal), the digest record and the journal, the transport. A second
    Ctrl-C while the first one's uploads finish leaves what is on the wire: those closes that
    wait for it are skipped.
    """
    check_sources(options.sources)
    check_unique_keys(options.sources, options.prefix, options.selection(), key_range)
    abandoned = False

    def unless_abandoned(close: Callable[[], None]) -> Callable[[], None]:
        return lambda: None if abandoned else close()

    with contextlib.ExitStack() as opened:
        if transport is None:
            transport = connect(options)
            opened.callback(unless_abandoned(transport.close))
        else:
            options = dataclasses.replace(options, processes=1)
        journal = opened.enter_context(contextlib.closing(journal_for(options)))
        digests = opened.enter_context(contextlib.closing(DigestRecord.open(options)))
        check = BucketCheck(options, transport, journal=journal)
        opened.callback(unless_abandoned(check.close))
        # HeadBucket beside the walk and the listing: its failure (a bad endpoint or
        # credentials, a missing bucket) is one line before any answer is used.
        check.start()
        listers = opened.enter_context(ThreadPoolExecutor(LISTING_THREADS, thread_name_prefix="s3pput-list"))
        index = RemoteIndex(ListingBesideCheck(check, transport), listers)
        opened.callback(index.close)
        lookahead = opened.enter_context(
            ThreadPoolExecutor(LOOKAHEAD_GROUPS, thread_name_prefix="s3pput-lookahead")
        )
        if get_mode(options.mode).needs_listing:
            # While the walk starts: an empty prefix costs one request, and every lookup is
            # then answered from it.
            base = join_key(options.prefix, "")
            index.prefetch(base, _listing_hints(options.sources, base))
        dispatcher = make_dispatcher(options, transport, journal, digests)
        opened.callback(unless_abandoned(dispatcher.close))
        gate = Gate(check, dry_run=options.dry_run)
        landed_since = None if options.dry_run else landed_since
        run = _Run(options, dispatcher, on_result, index, lookahead, digests, gate, landed_since)
        notes = WalkNotes()
        try:
            run.feed(walk(options.sources, options.prefix, options.selection(), key_range, notes))
        except KeyboardInterrupt:
            abandoned = True
            raise
        run.account_for_every_file()
        check.wait_head()  # a run with nothing to walk
        if not options.dry_run:
            # After the run, which carried on those of its own files (see MultipartUploads.resumable).
            # Within its key range: another batch's leftovers are its own to carry on.
            abort_leftovers(transport, journal, join_key(options.prefix, ""), key_range)
        if options.delete:  # --delete: after this range's uploads, which must all have landed
            delete_extraneous(
                transport, options, key_range, failed_uploads=run.collector.failed, record=run.record
            )
        return dataclasses.replace(run.collector.freeze(), dir_symlinks_skipped=notes.dir_symlinks)
    raise AssertionError("unreachable")  # the with block returns or raises


class _Run:
    def __init__(
        self,
        options: UploadOptions,
        dispatcher: Dispatcher,
        on_result: ResultCallback | None,
        remote: RemoteIndex,
        lookahead: Executor,
        digests: DigestRecord,
        gate: Gate,
        landed_since: float | None,
    ) -> None:
        self.options = options
        self.landed_since = landed_since
        self.list_remote = get_mode(options.mode).needs_listing
        self.gate = gate
        self.dispatcher = dispatcher
        self.on_result = on_result
        self.collector = StatsCollector(dry_run=options.dry_run)
        self.pending: dict[Future[list[PutResult]], list[PutTask]] = {}
        self.in_flight = 0
        self.in_flight_limit = options.processes * options.threads * 4
        self.in_flight_bytes = 0
        #: files the walk yielded (paths it could not use included), and whether --limit ended it
        self.walked = 0
        self.stopped_at_limit = False
        self.remote = remote
        #: where the next walk groups are looked up (see ``_grouped``)
        self.lookahead = lookahead
        self.digests = digests

    def record(self, result: PutResult, listed: RemoteObject | None = None, *, files: int = 1) -> None:
        """Count ``result`` (of a file whose key held ``listed``; see ``landed_earlier``), for
        ``files`` files (see ``StatsCollector.add``)."""
        result = landed_earlier(result, listed, self.landed_since)
        self.collector.add(result, files=files)
        if self.on_result is not None:
            self.on_result(result)

    def body_bytes(self, tasks: list[PutTask]) -> int:
        """What ``tasks`` hold in memory while in flight: single PUT bodies (parts of large
        files are bounded by the putter's part pool)."""
        return sum(t.size for t in tasks if t.size < self.options.multipart_threshold)

    def chunks(self, tasks: list[PutTask]) -> Iterator[list[PutTask]]:
        """``tasks`` cut into the lists handed to the dispatcher: each fits in flight on its
        own, by count and by body bytes (a single file may exceed the byte budget alone), so a
        run with nothing in flight can always send its next list."""
        size = 1 if self.options.limit is not None else min(self.dispatcher.chunk_size, self.in_flight_limit)
        chunk: list[PutTask] = []
        chunk_bytes = 0
        for task in tasks:
            body = self.body_bytes([task])
            if chunk and (len(chunk) == size or chunk_bytes + body > BODY_BYTES_IN_FLIGHT):
                yield chunk
                chunk, chunk_bytes = [], 0
            chunk.append(task)
            chunk_bytes += body
        if chunk:
            yield chunk

    def must_wait(self, tasks: list[PutTask]) -> bool:
        """Whether ``tasks`` must wait for what is in flight: never when nothing is."""
        if not self.pending:
            return False
        over_count = self.in_flight + len(tasks) > self.in_flight_limit
        over_bytes = self.in_flight_bytes + self.body_bytes(tasks) > BODY_BYTES_IN_FLIGHT
        return over_count or over_bytes or self.at_limit()

    def at_limit(self) -> bool:
        """``--limit`` files are put or on their way (a failed or skipped one makes room)."""
        limit = self.options.limit
        return limit is not None and self.collector.files_put + self.in_flight >= limit

    def surely_put(self, task: PutTask) -> bool:
        """Whether ``task`` is put whatever its content: its key is not in the bucket (or the mode
        never looks). An unchanged re-run has no such task, and sends no write check: a file
        changed under an existing key is put without it (denied, it fails and is reported)."""
        return not self.list_remote or task.remote is None

    def feed(self, items: Iterator[FileEntry | WalkError]) -> None:
        """Put what the walk yields. Whatever stops it (Ctrl-C, SIGTERM, an Airflow timeout or
        "mark failed", an error) stops feeding, lets what is on the wire finish and aborts the
        multipart uploads still open; Ctrl-C then raises ``Interrupted`` with what landed, the
        rest goes on as raised. A second Ctrl-C stops waiting."""
        try:
            self._feed(items)
        except BaseException as stop:
            self.dispatcher.cancel()
            while self.pending:
                self._drain(block=True)
            if isinstance(stop, KeyboardInterrupt):
                raise Interrupted(self.collector.freeze()) from None
            raise

    def _feed(self, items: Iterator[FileEntry | WalkError]) -> None:
        for group, listed in self._grouped(items):
            self.gate.wait_head()  # nothing is reported before HeadBucket passed
            self.walked += len(group)
            for tasks in self.chunks(self._tasks(group, listed)):
                while self.must_wait(tasks):
                    self._drain(block=True)
                if self.at_limit():
                    self.stopped_at_limit = True
                    return
                self._send(tasks)
            self._drain(block=False)
        while self.pending:
            self._drain(block=True)

    def _send(self, tasks: list[PutTask]) -> None:
        if self.gate.wants_new_keys and any(self.surely_put(t) for t in tasks):
            self.gate.before_new_keys()  # the write check goes out beside these PUTs
        self.pending[self.dispatcher.submit(tasks)] = tasks
        self.in_flight += len(tasks)
        self.in_flight_bytes += self.body_bytes(tasks)

    def account_for_every_file(self) -> None:
        """Every file the walk yielded ends as put, skipped or failed. A run that cannot say so
        for some of them must not end green: they are counted as failed, in one line."""
        if self.stopped_at_limit:
            return  # the files after the limit were never meant to be put
        missing = self.walked - self.collector.files_done
        if missing:
            message = f"internal error: {missing} of {self.walked} files got no result"
            self.record(PutResult("", "", "fail", error=message, retryable=False), files=missing)

    def _grouped(
        self, items: Iterator[FileEntry | WalkError]
    ) -> Iterator[tuple[list[FileEntry | WalkError], Ahead]]:
        """Walk groups, each with the lookup of its remote state, started ``LOOKAHEAD_GROUPS``
        groups ahead: the next groups are walked and listed while this one is decided, instead of
        waiting for each lookup in turn. Memory holds ``LOOKAHEAD_GROUPS + 1`` groups."""
        ahead: deque[tuple[list[FileEntry | WalkError], Ahead]] = deque()
        for group in _batched(items, LOOKUP_GROUP):
            entries = [item for item in group if isinstance(item, FileEntry)]
            listed = (
                self.lookahead.submit(self._look_ahead, entries) if self.list_remote and entries else None
            )
            if len(ahead) == LOOKAHEAD_GROUPS:
                yield ahead.popleft()
            ahead.append((group, listed))
        while ahead:
            yield ahead.popleft()

    def _look_ahead(self, entries: list[FileEntry]) -> tuple[dict[str, RemoteObject], set[str]]:
        """A group's listed objects, and the keys the digest record vouches for among them:
        asked on the look-ahead thread, where the record's work runs beside the walk."""
        remote = self.remote.lookup([e.key for e in entries])
        return remote, self.digests.unchanged(entries, remote) if remote else set()

    def _tasks(self, group: list[FileEntry | WalkError], listed: Ahead) -> list[PutTask]:
        entries = []
        for item in group:
            if isinstance(item, WalkError):
                # A path the walk cannot use stays so on a retry: the batch fails at once.
                self.record(PutResult(item.path, item.key, "fail", error=item.message, retryable=False))
            else:
                entries.append(item)
        remote: dict[str, RemoteObject] = {}
        unchanged: set[str] = set()
        if listed is not None:
            try:
                remote, unchanged = listed.result()
            except Exception as exc:  # noqa: BLE001 - without the listing we cannot decide
                message = f"cannot list existing objects: {describe_error(exc)}"
                for entry in entries:
                    self.record(PutResult(entry.path, entry.key, "fail", error=message))
                return []
        tasks = []
        for e in entries:
            if e.key in unchanged:
                self.record(PutResult(e.path, e.key, "skip", SKIP_UNCHANGED.reason), remote.get(e.key))
            else:
                tasks.append(PutTask(e.path, e.key, e.size, e.mtime_ns, remote.get(e.key)))
        return tasks

    def _drain(self, *, block: bool) -> None:
        if not self.pending:
            return
        done, _ = wait(self.pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            tasks = self.pending.pop(future)
            self.in_flight -= len(tasks)
            self.in_flight_bytes -= self.body_bytes(tasks)
            results = _results(future, tasks)
            self.gate.confirm(results)  # the first results wait for the write check's verdict
            listed = {t.key: t.remote for t in tasks}
            for result in results:
                self.record(result, listed.get(result.key))
        self.digests.flush_if_due()  # here, not on the transport's threads (DigestRecord.store)


def _results(future: Future[list[PutResult]], tasks: list[PutTask]) -> list[PutResult]:
    """What a finished list gave: each of its files fails if the list never ran or was lost."""
    try:
        return future.result()
    except CancelledError:  # Ctrl-C before a worker process took the list
        error = INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - e.g. a worker process killed: its files failed
        error = f"worker failed: {describe_error(exc)}"
    return [PutResult(t.path, t.key, "fail", error=error) for t in tasks]


def landed_earlier(result: PutResult, remote: RemoteObject | None, since: float | None) -> PutResult:
    """``result``, or, for a file skipped because of what its key holds (unchanged, exists),
    the same file counted as put by an earlier try of this run (reason ``EARLIER_TRY``, its
    bytes those listed) when that object was written at or after ``since``.

    A retried Airflow put finds what its failed try landed; without this rule those files would
    read "skipped: unchanged" and the run's summary would count fewer files put than it landed.
    S3 says LastModified to the second, and ``since`` (the plan's HeadBucket ``Date``) is whole
    seconds too: an object written in the very second of ``since`` counts as landed by this run.
    None of the run's own files is missed so; the price is that an object another writer stored
    in that second before the run began, or while it went on, counts as put too.

    ==================  ============================  ===========  ===================
    result              listed object                 ``since``    counted as
    ==================  ============================  ===========  ===================
    put, fail, delete   -                             -            as it is
    skip                missing, or no LastModified   -            skip
    skip                written before ``since``      set          skip
    skip                written at or after it        set          put (earlier try)
    skip                -                             ``None``     skip
    ==================  ============================  ===========  ===================
    """
    if since is None or result.action != "skip" or remote is None or remote.last_modified is None:
        return result
    if math.floor(remote.last_modified) < math.floor(since):
        return result
    return result._replace(action="put", reason=EARLIER_TRY, bytes=remote.size)


def _listing_hints(sources: Iterable[str], base: str) -> set[str]:
    """The prefixes of the directories directly in the SOURCE directories: the listing's hints."""
    hints: set[str] = set()
    for source in sources:
        try:
            with os.scandir(source) as entries:
                hints.update(base + e.name + "/" for e in entries if e.is_dir())
        except OSError:
            continue  # a file SOURCE, or one the walk reports
    return hints


def _batched(items: Iterator[T], size: int) -> Iterator[list[T]]:
    while batch := list(itertools.islice(items, size)):
        yield batch

"""The listing index and the whole engine against the in-memory transport: no server."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import bucket_check, engine, remote_index
from airflow_s3pput.errors import S3Error, UsageError
from airflow_s3pput.etag import MIB
from airflow_s3pput.modes import RemoteObject
from airflow_s3pput.options import ConnectionSettings, UploadOptions
from airflow_s3pput.remote_index import RemoteIndex
from airflow_s3pput.stats import PutResult
from tests.helpers import make_tree
from tests.memory_transport import MemoryTransport

TREE = {f"d{i % 4}/f{i:02}.txt": f"file {i}" for i in range(20)} | {"top.txt": "top"}


def opts(src: Path, **overrides: Any) -> UploadOptions:
    values: dict[str, Any] = {
        "bucket": "bucket",
        "sources": (str(src),),
        "threads": 4,
        "multipart_threshold": 5 * MIB,
        "part_size": 5 * MIB,
        "connection": ConnectionSettings(max_attempts=3),
    }
    return UploadOptions(**{**values, **overrides})


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src", TREE)


def test_a_first_upload_puts_every_file_without_listing_an_empty_prefix(src: Path) -> None:
    transport = MemoryTransport()
    stats = engine.upload(opts(src, prefix="p"), transport=transport)
    assert (stats.files_put, stats.failed) == (len(TREE), 0)
    assert {k: o.body.decode() for k, o in transport.objects.items()} == {
        f"p/{k}": v for k, v in TREE.items()
    }
    # the prefix's page and, beside it, its 4 local subdirectories: all empty, nothing else listed
    assert transport.calls["ListObjectsV2"] == 1 + 4
    assert transport.uploads == {}  # the write check left nothing


def test_an_unchanged_rerun_lists_once_and_puts_nothing(src: Path) -> None:
    transport = MemoryTransport()
    engine.upload(opts(src), transport=transport)
    transport.calls.clear()
    stats = engine.upload(opts(src), transport=transport)
    assert (stats.files_put, stats.skipped) == (0, {"unchanged": len(TREE)})
    assert transport.calls["PutObject"] == 0
    # one flat listing: the prefix by directory, then its 4 subdirectories side by side
    assert transport.calls["ListObjectsV2"] == 1 + 4


class _TopPageWaits(MemoryTransport):
    """Answers the prefix's own page only once every local subdirectory's listing has arrived:
    a run that lists them after that page would wait for ever (the guard turns it into a fail)."""

    def __init__(self, subdirs: set[str]) -> None:
        super().__init__()
        self.waiting = set(subdirs)
        self.arrived = threading.Event()
        self.lock = threading.Lock()
        self.listing = False

    def list_page(self, prefix: str, **kwargs: Any) -> Any:
        if self.listing:
            with self.lock:
                self.waiting.discard(prefix)
                if not self.waiting:
                    self.arrived.set()
            if prefix == "" and kwargs.get("delimiter") == "/":
                assert self.arrived.wait(10), f"not listed beside the prefix: {sorted(self.waiting)}"
        return super().list_page(prefix, **kwargs)


def test_the_local_subdirectories_are_listed_beside_the_prefix(src: Path) -> None:
    transport = _TopPageWaits({f"d{i}/" for i in range(4)})
    engine.upload(opts(src), transport=transport)
    transport.listing = True
    transport.calls.clear()
    (src / "d2" / "f02.txt").write_text("file Y")
    stats = engine.upload(opts(src), transport=transport)
    assert (stats.files_put, stats.skipped) == (1, {"unchanged": len(TREE) - 1})
    assert transport.calls["ListObjectsV2"] == 1 + 4


@pytest.mark.parametrize("hints", [(), ("p/big/", "p/gone/", "p/big/a0/", "q/")], ids=["split", "hinted"])
@pytest.mark.parametrize("page", [2, 3, 5, 1000])
@pytest.mark.parametrize("limit", [10, 22, 10_000])
def test_a_listing_split_by_subdirectory_finds_what_a_sequential_one_finds(
    monkeypatch: pytest.MonkeyPatch, page: int, limit: int, hints: tuple[str, ...]
) -> None:
    """Split by the prefix's page, with hints the bucket has, hints it lacks and a subdirectory
    no hint named: the same answer as page after page."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(remote_index, "LIST_PAGE_KEYS", page)
    monkeypatch.setattr(remote_index, "FLAT_LISTING_MAX_OBJECTS", limit)
    transport = MemoryTransport()
    keys = ["p/top", "p/big/direct", "q/outside"] + [f"p/big/a{a}/f{f}" for a in range(4) for f in range(4)]
    stored(transport, keys + [f"p/small/f{f}" for f in range(3)])
    with ThreadPoolExecutor(3) as executor:
        hinted = remote_index._list_flat(transport, "p/", executor, hints)
    assert hinted == remote_index._list_flat(transport, "p/")
    assert (hinted is None) == (limit < 21)


def test_a_subdirectory_only_the_bucket_has_is_listed_after_the_prefix(src: Path) -> None:
    transport = MemoryTransport()
    engine.upload(opts(src), transport=transport)
    transport.add("remote-only/x.txt", b"x")
    transport.calls.clear()
    stats = engine.upload(opts(src), transport=transport)
    assert (stats.files_put, stats.skipped) == (0, {"unchanged": len(TREE)})
    assert transport.calls["ListObjectsV2"] == 1 + 4 + 1


def test_a_changed_file_is_put_again(src: Path) -> None:
    transport = MemoryTransport()
    engine.upload(opts(src), transport=transport)
    (src / "d1" / "f05.txt").write_text("file X")  # same size, other bytes
    stats = engine.upload(opts(src), transport=transport)
    assert (stats.files_put, stats.skipped) == (1, {"unchanged": len(TREE) - 1})
    assert transport.objects["d1/f05.txt"].body == b"file X"


def test_a_missing_bucket_is_one_line_before_any_put(src: Path) -> None:
    transport = MemoryTransport(exists=False)
    with pytest.raises(UsageError, match="bucket 'bucket' does not exist"):
        engine.upload(opts(src), transport=transport)
    assert transport.calls["PutObject"] == 0
    # some servers create a bucket on a CreateMultipartUpload: the write check waits for HEAD
    assert transport.calls["CreateMultipartUpload"] == 0


def test_a_missing_bucket_is_one_line_with_nothing_to_upload(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="bucket 'bucket' does not exist"):
        engine.upload(opts(empty), transport=MemoryTransport(exists=False))


class _Unreachable(MemoryTransport):
    """An endpoint nobody answers at; ``quick()`` is a sibling with the check's few attempts."""

    def __init__(self, *, is_quick: bool = False) -> None:
        super().__init__()
        self.fail_next["HeadBucket"] = [S3Error(S3Error.UNREACHABLE, "refused")] * 100
        self.fail_next["ListObjectsV2"] = [S3Error(S3Error.UNREACHABLE, "refused")] * 100
        self.sibling = self if is_quick else _Unreachable(is_quick=True)

    def quick(self) -> MemoryTransport:
        return self.sibling


def test_a_dead_endpoint_is_one_line_without_the_listings_retries(
    src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing runs beside HeadBucket: until HEAD passed it asks with the check's attempts,
    so a dead endpoint ends the run with the check's line, not after the run's retries."""
    quick = dataclasses.replace(bucket_check.PATIENCE, backoff_base=0.01, backoff_cap=0.02, budget=0.1)
    check = functools.partial(bucket_check.BucketCheck, retry=quick)
    monkeypatch.setattr(engine, "BucketCheck", check)
    transport = _Unreachable()
    with pytest.raises(UsageError, match="refused"):
        engine.upload(opts(src), transport=transport)
    assert transport.sibling.calls["HeadBucket"] >= 2  # the outage was ridden out for a while
    assert transport.sibling.calls["ListObjectsV2"] >= 1
    assert transport.calls["ListObjectsV2"] == 0  # the run's own (retrying) transport: never


def test_an_unchanged_rerun_sends_no_write_check(src: Path) -> None:
    transport = MemoryTransport()
    engine.upload(opts(src), transport=transport)
    assert transport.calls["CreateMultipartUpload"] == 1  # the first upload's check
    transport.calls.clear()
    (src / "d1" / "f05.txt").write_text("file X")  # under a key that exists: put unchecked
    stats = engine.upload(opts(src), transport=transport)
    assert (stats.files_put, transport.calls["CreateMultipartUpload"]) == (1, 0)
    (src / "new.txt").write_text("new")
    transport.calls.clear()
    stats = engine.upload(opts(src), transport=transport)
    assert (stats.files_put, transport.calls["CreateMultipartUpload"]) == (1, 1)
    assert transport.uploads == {}


def test_the_write_check_aborts_stale_checks_of_killed_runs_only(src: Path) -> None:
    transport = MemoryTransport()
    stale = transport.open_upload("p/.s3pput-write-check-old", "2020-01-01T00:00:00.000Z")
    fresh = transport.open_upload("p/.s3pput-write-check-running", "2999-01-01T00:00:00.000Z")
    users = transport.open_upload("p/big.bin", "2020-01-01T00:00:00.000Z")  # someone else's upload
    bucket_check.check_bucket(opts(src, prefix="p"), transport)
    assert set(transport.uploads) == {fresh, users}
    assert stale not in transport.uploads


def test_a_write_check_that_another_run_aborted_is_not_an_error(src: Path) -> None:
    transport = MemoryTransport()
    transport.fail_next["AbortMultipartUpload"] = [S3Error("NoSuchUpload", status=404)]
    bucket_check.check_bucket(opts(src), transport)  # no exception


def test_a_write_check_whose_abort_failed_is_aborted_by_the_next_run(src: Path, tmp_path: Path) -> None:
    """The server dropped out while the check was aborted (the fault suite's restarted server):
    the journal holds the check's upload, and the next run sends its abort."""
    transport = MemoryTransport()
    transport.fail_next["AbortMultipartUpload"] = [S3Error("ServiceUnavailable", status=503)]
    options = opts(src, prefix="p", cache_dir=str(tmp_path / "cache"))
    assert engine.upload(options, transport=transport).files_put == len(TREE)
    (left,) = transport.uploads.values()
    assert left.key.startswith("p/.s3pput-write-check-")
    engine.upload(options, transport=transport)  # an unchanged re-run: it sends no check itself
    assert transport.uploads == {}


def test_a_bucket_that_refuses_writes_is_one_line_not_a_failure_per_file(src: Path) -> None:
    """The write check goes out beside the first PUTs; their failures wait for its verdict."""
    transport = MemoryTransport()
    denied = S3Error("AccessDenied", status=403)
    transport.fail_next["CreateMultipartUpload"] = [denied]
    transport.fail_next["PutObject"] = [denied] * len(TREE)
    reported: list[PutResult] = []
    with pytest.raises(UsageError, match=r"refused a write .* may read the bucket but not write to it"):
        engine.upload(opts(src), transport=transport, on_result=reported.append)
    assert reported == []
    assert transport.objects == {}


def test_a_refused_write_check_is_overruled_by_a_put_that_landed(src: Path) -> None:
    """A check refused while PUTs land (a policy on multipart uploads only, a throttled check):
    the bucket took the files, and the run goes on."""
    transport = MemoryTransport()
    transport.fail_next["CreateMultipartUpload"] = [S3Error("AccessDenied", status=403)]
    stats = engine.upload(opts(src), transport=transport)
    assert (stats.files_put, stats.failed) == (len(TREE), 0)


def test_a_dry_run_writes_nothing(src: Path) -> None:
    transport = MemoryTransport()
    stats = engine.upload(opts(src, dry_run=True), transport=transport)
    assert stats.files_put == len(TREE)
    assert set(transport.calls) <= {"HeadBucket", "ListObjectsV2"}


def test_limit_puts_no_more_than_asked(src: Path) -> None:
    transport = MemoryTransport()
    stats = engine.upload(opts(src, limit=3), transport=transport)
    assert stats.files_put == 3 and len(transport.objects) == 3


def test_failures_are_counted_and_the_rest_lands(src: Path) -> None:
    transport = MemoryTransport()
    transport.fail_next["PutObject"] = [S3Error("AccessDenied", status=403)] * 2
    stats = engine.upload(opts(src), transport=transport)
    assert (stats.files_put, stats.failed) == (len(TREE) - 2, 2)
    assert all(error == "AccessDenied" for _, error in stats.failures)


def test_a_listing_that_fails_fails_its_files_not_the_run(src: Path) -> None:
    transport = MemoryTransport()
    engine.upload(opts(src), transport=transport)
    # the check's listing succeeds, the run's listing fails
    real = transport.list_page
    calls = []

    def list_page(prefix: str, **kwargs: Any) -> Any:
        calls.append(prefix)
        if len(calls) == 2:
            raise S3Error("InternalError", status=500)
        return real(prefix, **kwargs)

    transport.list_page = list_page  # type: ignore[method-assign]
    stats = engine.upload(opts(src), transport=transport)
    assert stats.failed == len(TREE)
    assert all("cannot list existing objects: InternalError" in error for _, error in stats.failures)


# -- RemoteIndex: the listing strategy, counted ----------------------------------------------------


def stored(transport: MemoryTransport, keys: list[str]) -> dict[str, RemoteObject]:
    for key in keys:
        transport.add(key, key.encode(), modified=STORED_AT)
    return {key: RemoteObject(len(key), hashlib.md5(key.encode()).hexdigest(), STORED_AT) for key in keys}


#: LastModified of the objects ``stored`` adds
STORED_AT = 1_700_000_000.0


def test_a_group_over_many_directories_is_answered_by_one_flat_listing() -> None:
    transport = MemoryTransport(page_keys=7)
    keys = [f"p/d{d:02}/f{f}" for d in range(remote_index.FLAT_LISTING_MIN_DIRS) for f in range(2)]
    expected = stored(transport, keys)
    index = RemoteIndex(transport)
    assert index.lookup([*keys, "p/d00/missing"]) == expected
    pages = transport.calls["ListObjectsV2"]
    assert pages == -(-len(keys) // 7)  # one pass over the prefix, page by page
    assert index.lookup(keys[:3]) == {k: expected[k] for k in keys[:3]}
    assert transport.calls["ListObjectsV2"] == pages  # the kept listing answers later groups


def test_a_crowded_prefix_is_listed_directory_by_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_index, "FLAT_LISTING_MAX_OBJECTS", 10)
    transport = MemoryTransport()
    keys = [f"p/d{d:02}/f{f}" for d in range(remote_index.FLAT_LISTING_MIN_DIRS) for f in range(2)]
    expected = stored(transport, keys)
    assert RemoteIndex(transport).lookup(keys) == expected
    # one flat attempt given up, then one listing per directory
    assert transport.calls["ListObjectsV2"] == 1 + remote_index.FLAT_LISTING_MIN_DIRS


class CountingFlat(MemoryTransport):
    """Counts the requests that list without a delimiter (flat) and with one (by directory)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.flat: list[str] = []
        self.by_dir: list[str] = []

    def list_page(self, prefix: str, *, delimiter: str = "", **kwargs: Any) -> Any:
        (self.by_dir if delimiter else self.flat).append(prefix)
        return super().list_page(prefix, delimiter=delimiter, **kwargs)


def test_a_group_over_a_few_directories_is_one_flat_page_not_one_listing_each() -> None:
    transport = CountingFlat()
    keys = [f"p/day/part-{d}/f{f}" for d in range(5) for f in range(3)]
    expected = stored(transport, keys)
    index = RemoteIndex(transport)
    assert index.lookup(keys[:9]) == {k: expected[k] for k in keys[:9]}  # parts 0-2
    assert index.lookup(keys[9:]) == {k: expected[k] for k in keys[9:]}  # parts 3-4: kept listing
    assert transport.flat == ["p/day/"] and transport.by_dir == []


def test_a_crowded_prefix_costs_a_few_directories_at_most_what_listing_them_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remote_index, "LIST_PAGE_KEYS", 2)  # a group over 3 directories may read 3 pages
    transport = CountingFlat()
    keys = [f"p/d{d}/f{f}" for d in range(6) for f in range(4)]
    expected = stored(transport, keys)
    index = RemoteIndex(transport)
    first = keys[2:10]  # d0 f2 .. d2 f1: 3 directories
    assert index.lookup(first) == {k: expected[k] for k in first}
    assert len(transport.flat) == 4  # 3 pages within the budget, the 4th over it: given up
    assert sorted(set(transport.by_dir)) == ["p/d0/", "p/d1/", "p/d2/"]  # pages of 2
    later = keys[12:20]  # 2 directories: the prefix is known crowded, no flat attempt again
    assert index.lookup(later) == {k: expected[k] for k in later}
    assert len(transport.flat) == 4


def test_a_flat_attempt_is_retried_only_with_twice_the_allowance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote_index, "LIST_PAGE_KEYS", 2)
    transport = CountingFlat()
    keys = [f"p/d{d:02}/f{f}" for d in range(8) for f in range(2)]  # 16 objects under p/
    expected = stored(transport, keys)
    index = RemoteIndex(transport)
    index.lookup(keys[:4])  # 2 directories: budget 4, p/ is crowded
    index.lookup(keys[4:10])  # 3 directories: budget 6, not twice 4: by directory only
    attempts = len(transport.flat)
    assert index.lookup(keys) == expected  # 8 directories: budget 16, fits
    assert len(transport.flat) == attempts + 8  # 8 pages of 2


class MaxKeysLog(CountingFlat):
    """Also remembers the ``max_keys`` of each request."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_keys: list[int] = []

    def list_page(self, prefix: str, *, delimiter: str = "", **kwargs: Any) -> Any:
        self.max_keys.append(kwargs.get("max_keys", 1000))
        return super().list_page(prefix, delimiter=delimiter, **kwargs)


def test_a_flat_listing_in_flight_is_waited_for_by_a_lookup_it_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inside, release, second_waits = threading.Event(), threading.Event(), threading.Event()

    class Blocking(CountingFlat):
        def list_page(self, prefix: str, **kwargs: Any) -> Any:
            inside.set()
            assert release.wait(30)
            return super().list_page(prefix, **kwargs)

    real_wait = remote_index.wait

    def noted_wait(futures: Any, *args: Any, **kwargs: Any) -> Any:
        second_waits.set()
        return real_wait(futures, *args, **kwargs)

    monkeypatch.setattr(remote_index, "wait", noted_wait)
    transport = Blocking()
    keys = [f"p/day/part-{d}/f{f}" for d in range(4) for f in range(2)]
    expected = stored(transport, keys)
    index = RemoteIndex(transport)
    answers: dict[str, Any] = {}
    first = threading.Thread(target=lambda: answers.update(a=index.lookup(keys[:4])))
    second = threading.Thread(target=lambda: answers.update(b=index.lookup(keys[4:])))
    first.start()
    assert inside.wait(30)  # the first lookup's flat listing of p/day/ is on its way
    second.start()
    assert second_waits.wait(30)  # the second waits for it rather than listing p/day/ too
    release.set()
    first.join(30)
    second.join(30)
    assert answers == {"a": {k: expected[k] for k in keys[:4]}, "b": {k: expected[k] for k in keys[4:]}}
    assert transport.flat == ["p/day/"] and transport.by_dir == []


def test_a_directory_listing_stops_after_the_last_key_wanted() -> None:
    transport = MemoryTransport(page_keys=2)
    keys = [f"p/f{i:02}" for i in range(20)]
    expected = stored(transport, keys)
    assert RemoteIndex(transport).lookup(["p/f03", "p/f04"]) == {k: expected[k] for k in ("p/f03", "p/f04")}
    # pages of 2 from just below f03: [f00 f01] [f02 f03] [f04 f05], and no further
    assert transport.calls["ListObjectsV2"] == 3


def test_a_lost_create_answer_is_cleaned_up_only_when_its_upload_is_the_one_unclaimed(tmp_path: Path) -> None:
    from airflow_s3pput.upload_journal import UploadJournal, abort_leftovers

    transport = MemoryTransport()
    dead = UploadJournal(tmp_path, "e", "bucket")
    dead.starting("p/lost.bin")  # CreateMultipartUpload sent, answer lost: no id in the journal
    dead.starting("p/shared.bin")
    dead.close()  # that run ended
    lost = transport.open_upload("p/lost.bin", "2026-01-01T00:00:00Z")  # what the server made of it
    ours_too = transport.open_upload("p/shared.bin", "2026-01-01T00:00:00Z")
    theirs = transport.open_upload("p/shared.bin", "2026-01-01T00:00:00Z")  # another writer, same key
    journal = UploadJournal(tmp_path, "e", "bucket")
    abort_leftovers(transport, journal, "p/")
    assert set(transport.uploads) == {ours_too, theirs}  # two candidates: neither is provably ours
    assert lost not in transport.uploads
    assert journal.leftovers("p/") == []


class _Check:
    """A bucket check that records what the gate asked of it."""

    def __init__(self, refused: UsageError | None = None) -> None:
        self.calls: list[str] = []
        self.refused = refused

    def wait_head(self) -> None:
        self.calls.append("head")

    def start_write_check(self) -> None:
        self.calls.append("write check")

    def write_failure(self) -> UsageError | None:
        self.calls.append("verdict")
        return self.refused


@pytest.mark.parametrize(
    ("dry_run", "steps", "calls", "state"),
    [
        pytest.param(False, ["head"], ["head"], "HEAD_PASSED", id="head-only"),
        pytest.param(False, ["head", "new", "new"], ["head", "write check"], "WRITE_CHECK_SENT",
                     id="check-once"),
        pytest.param(False, ["new", "confirm", "confirm"], ["head", "write check", "verdict"], "CONFIRMED",
                     id="verdict-once"),
        pytest.param(False, ["head", "confirm"], ["head"], "HEAD_PASSED", id="no-verdict-before-a-check"),
        pytest.param(True, ["new", "confirm"], ["head"], "CONFIRMED", id="dry-run-sends-no-check"),
    ],
)  # fmt: skip
def test_the_gate_goes_through_its_states_once(
    dry_run: bool, steps: list[str], calls: list[str], state: str
) -> None:
    check = _Check()
    gate = bucket_check.Gate(check, dry_run=dry_run)  # type: ignore[arg-type]
    landed = [PutResult("p", "k", "put")]
    actions = {"head": gate.wait_head, "new": gate.before_new_keys, "confirm": lambda: gate.confirm(landed)}
    for step in steps:
        actions[step]()
    assert check.calls == calls
    assert gate.state is bucket_check.GateState[state]


def test_a_refused_write_check_fails_the_first_results_unless_one_landed() -> None:
    refused = UsageError("refused a write")
    gate = bucket_check.Gate(_Check(refused), dry_run=False)  # type: ignore[arg-type]
    gate.before_new_keys()
    with pytest.raises(UsageError, match="refused a write"):
        gate.confirm([PutResult("p", "k", "fail", error="AccessDenied")])
    gate = bucket_check.Gate(_Check(refused), dry_run=False)  # type: ignore[arg-type]
    gate.before_new_keys()
    gate.confirm([PutResult("p", "k", "put"), PutResult("q", "j", "fail")])  # the bucket took one

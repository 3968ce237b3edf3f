"""A retry counts the files an earlier try of its run landed as put (``landed_since``), not as
skipped: the rule by itself, then the whole engine against the in-memory transport."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import engine
from airflow_s3pput.bucket_check import check_bucket
from airflow_s3pput.engine import landed_earlier
from airflow_s3pput.errors import S3Error
from airflow_s3pput.modes import RemoteObject
from airflow_s3pput.stats import EARLIER_TRY, PutResult, Stats
from tests.helpers import make_tree
from tests.memory_transport import MemoryTransport
from tests.unit.test_engine_memory import TREE, opts

SINCE = 1_000.7  # the plan's HeadBucket time; S3 says it to the second: 1000
SKIP = PutResult("/src/a", "a", "skip", "unchanged")


@pytest.mark.parametrize(
    ("result", "remote", "since", "expected"),
    [
        pytest.param(SKIP, RemoteObject(3, "e", 1_001.0), SINCE, "put", id="written-after"),
        pytest.param(SKIP, RemoteObject(3, "e", 1_000.0), SINCE, "put", id="written-in-the-same-second"),
        pytest.param(SKIP, RemoteObject(3, "e", 999.0), SINCE, "skip", id="written-before"),
        pytest.param(SKIP, RemoteObject(3, "e", None), SINCE, "skip", id="no-last-modified"),
        pytest.param(SKIP, None, SINCE, "skip", id="not-listed"),
        pytest.param(SKIP, RemoteObject(3, "e", 1_001.0), None, "skip", id="no-since-the-cli"),
        pytest.param(
            SKIP._replace(reason="exists"), RemoteObject(3, "e", 1_001.0), SINCE, "put", id="add-exists"
        ),
        pytest.param(SKIP._replace(action="fail"), RemoteObject(3, "e", 1_001.0), SINCE, "fail", id="failed"),
    ],
)
def test_a_skipped_file_whose_object_was_written_since_the_run_began_counts_as_put(
    result: PutResult, remote: RemoteObject | None, since: float | None, expected: str
) -> None:
    counted = landed_earlier(result, remote, since)
    assert counted.action == expected
    if expected == "put":
        assert (counted.reason, counted.bytes, counted.key) == (EARLIER_TRY, 3, "a")
    else:
        assert counted == result


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src", TREE)


def options(src: Path, tmp_path: Path, **overrides: Any) -> Any:
    return opts(src, prefix="p", cache_dir=str(tmp_path / "cache"), **overrides)


def test_a_retry_counts_what_its_failed_try_landed_as_put(src: Path, tmp_path: Path) -> None:
    clock = Clock(1_000.4)
    transport = MemoryTransport(clock=clock)
    since = transport.head_bucket()  # the plan's check, before any put
    # The first try: one PUT refused, the other files land (in the plan's second, then later).
    transport.fail_next["PutObject"] = [S3Error("AccessDenied", status=403)]
    first = engine.upload(options(src, tmp_path), transport=transport, landed_since=since)
    assert (first.files_put, first.failed, first.files_landed_earlier) == (len(TREE) - 1, 1, 0)
    clock.now = 1_005.0
    retry = engine.upload(options(src, tmp_path), transport=transport, landed_since=since)
    assert (retry.files_put, retry.failed, retry.skipped) == (len(TREE), 0, {})
    assert retry.put_reasons == {"new": 1, EARLIER_TRY: len(TREE) - 1}
    assert retry.files_landed_earlier == len(TREE) - 1
    assert retry.bytes_put == sum(len(body) for body in TREE.values())
    assert "files put      21 (20 by an earlier try)\n" in retry.table()
    assert Stats.from_dict(retry.to_dict()).files_landed_earlier == len(TREE) - 1  # through XCom
    # The CLI (no landed_since), or the next run (a later plan): skipped as unchanged.
    assert engine.upload(options(src, tmp_path), transport=transport).skipped == {"unchanged": len(TREE)}
    clock.now = 1_010.0
    later = transport.head_bucket()
    again = engine.upload(options(src, tmp_path), transport=transport, landed_since=later)
    assert (again.files_put, again.skipped) == (0, {"unchanged": len(TREE)})


@pytest.mark.parametrize("digest_cache", [True, False], ids=["record-vouches", "content-compared"])
def test_objects_from_before_the_run_stay_skipped(src: Path, tmp_path: Path, digest_cache: bool) -> None:
    # Both ways to "unchanged": the digest record vouching (the engine skips the file before it
    # is a put task) and the putter reading the file and comparing its MD5 with the ETag.
    clock = Clock(999.9)
    transport = MemoryTransport(clock=clock)
    engine.upload(options(src, tmp_path, digest_cache=digest_cache), transport=transport)  # a run before
    written_in_the_plans_second = "d1/f01.txt"
    clock.now = 1_000.2
    transport.add(f"p/{written_in_the_plans_second}", TREE[written_in_the_plans_second].encode())
    stats = engine.upload(
        options(src, tmp_path, digest_cache=digest_cache), transport=transport, landed_since=SINCE
    )
    assert stats.skipped == {"unchanged": len(TREE) - 1}
    assert stats.put_reasons == {EARLIER_TRY: 1}  # at 1000, as SINCE is: the run's own


def test_add_mode_counts_an_existing_key_written_since_as_put(src: Path, tmp_path: Path) -> None:
    clock = Clock(1_001.0)
    transport = MemoryTransport(clock=clock)
    transport.add("p/top.txt", b"an older object", modified=990.0)
    transport.add("p/d0/f00.txt", b"by the failed try", modified=1_001.0)
    stats = engine.upload(options(src, tmp_path, mode="add"), transport=transport, landed_since=SINCE)
    assert stats.skipped == {"exists": 1}
    assert stats.put_reasons == {"new": len(TREE) - 2, EARLIER_TRY: 1}


def test_a_dry_run_counts_nothing_as_landed(src: Path, tmp_path: Path) -> None:
    transport = MemoryTransport(clock=Clock(1_001.0))
    engine.upload(options(src, tmp_path), transport=transport)
    stats = engine.upload(options(src, tmp_path, dry_run=True), transport=transport, landed_since=SINCE)
    assert (stats.files_put, stats.skipped) == (0, {"unchanged": len(TREE)})


def test_the_bucket_check_answers_the_servers_time(src: Path, tmp_path: Path) -> None:
    # What the Airflow plan records in each batch for the puts' landed_since.
    transport = MemoryTransport(clock=Clock(1_000.7))
    assert check_bucket(options(src, tmp_path), transport) == 1_000.0

"""Stats (merge, dict round trip, table), the progress meter with an injected clock."""

from __future__ import annotations

import json

import pytest

from airflow_s3pput.progress import Progress
from airflow_s3pput.stats import MAX_FAILURES_KEPT, PutResult, Stats, StatsCollector


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def collect(results: list[PutResult], seconds: float = 2.0, dry_run: bool = False) -> Stats:
    clock = FakeClock()
    collector = StatsCollector(dry_run=dry_run, clock=clock)
    for result in results:
        collector.add(result)
    clock.now += seconds
    return collector.freeze()


RESULTS = [
    PutResult("/s/a", "a", "put", "new", 100),
    PutResult("/s/b", "b", "put", "changed", 50),
    PutResult("/s/c", "c", "skip", "unchanged"),
    PutResult("/s/d", "d", "skip", "unchanged"),
    PutResult("/s/e", "e", "skip", "exists"),
    PutResult("/s/f", "f", "fail", error="boom"),
    PutResult("/s/g", "", "fail", error="bad name"),
]


def test_collector_counts() -> None:
    stats = collect(RESULTS)
    assert (stats.files_put, stats.bytes_put, stats.files_skipped, stats.failed) == (2, 150, 3, 2)
    assert stats.put_reasons == {"new": 1, "changed": 1}
    assert stats.skipped == {"unchanged": 2, "exists": 1}
    assert stats.failures == (("f", "boom"), ("/s/g", "bad name"))  # path when there is no key
    assert stats.seconds == 2.0
    assert stats.files_per_second == 1.0
    assert stats.bytes_per_second == 75.0
    assert not stats.ok


def test_empty_run() -> None:
    stats = collect([], seconds=0.0)
    assert stats.ok
    assert (stats.files_per_second, stats.bytes_per_second) == (0.0, 0.0)
    assert "files put      0" in stats.table()


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        pytest.param(
            Stats(files_put=1, bytes_put=10, put_reasons={"new": 1}, started=5.0, finished=7.0),
            Stats(files_put=2, bytes_put=5, put_reasons={"new": 1, "changed": 1}, started=4.0, finished=6.0),
            Stats(
                files_put=3,
                bytes_put=15,
                put_reasons={"new": 2, "changed": 1},
                started=4.0,
                finished=7.0,
                batches=2,
            ),
            id="counts-add-span-covers-both",
        ),
        pytest.param(
            Stats(skipped={"unchanged": 2}, failed=1, failures=(("k", "e"),), started=0.0, finished=3.0),
            Stats(skipped={"exists": 1, "unchanged": 1}, started=2.0, finished=4.0, dry_run=True),
            Stats(
                skipped={"unchanged": 3, "exists": 1},
                failed=1,
                failures=(("k", "e"),),
                started=2.0,  # an unset start (0.0, an empty batch) does not count
                finished=4.0,
                batches=2,
                dry_run=True,
            ),
            id="skips-failures-unset-start",
        ),
    ],
)
def test_merge(left: Stats, right: Stats, expected: Stats) -> None:
    assert left.merge(right) == expected


def test_merge_all() -> None:
    parts = [collect(RESULTS[i : i + 2]) for i in range(0, len(RESULTS), 2)]
    total = Stats.merge_all(parts)
    whole = collect(RESULTS)
    assert (total.files_put, total.bytes_put, total.skipped, total.failed) == (
        whole.files_put,
        whole.bytes_put,
        whole.skipped,
        whole.failed,
    )
    assert total.batches == 4
    assert Stats.merge_all([]) == Stats(batches=0)


def test_failures_are_capped_everywhere() -> None:
    many = [PutResult(f"/p{i}", f"k{i}", "fail", error="e") for i in range(MAX_FAILURES_KEPT + 5)]
    stats = collect(many)
    assert stats.failed == MAX_FAILURES_KEPT + 5
    assert len(stats.failures) == MAX_FAILURES_KEPT
    merged = stats.merge(stats)
    assert merged.failed == 2 * (MAX_FAILURES_KEPT + 5)
    assert len(merged.failures) == MAX_FAILURES_KEPT
    assert len(merged.to_dict()["failures"]) == MAX_FAILURES_KEPT
    assert f"... and {merged.failed - MAX_FAILURES_KEPT} more failures" in merged.table()


@pytest.mark.parametrize(
    "stats",
    [
        pytest.param(Stats(), id="empty"),
        pytest.param(collect(RESULTS), id="mixed"),
        pytest.param(collect(RESULTS, dry_run=True).merge(collect(RESULTS[:1])), id="merged-dry-run"),
    ],
)
def test_dict_round_trip_is_json_safe(stats: Stats) -> None:
    data = json.loads(json.dumps(stats.to_dict()))
    assert Stats.from_dict(data) == stats
    assert data["files_skipped"] == stats.files_skipped


def test_to_dict_fields() -> None:
    data = collect(RESULTS).to_dict()
    assert data["files_put"] == 2
    assert data["files_failed"] == 2
    assert data["skipped"] == {"exists": 1, "unchanged": 2}
    assert data["failures"][0] == {"key": "f", "error": "boom"}
    assert data["seconds"] == 2.0
    assert data["files_per_second"] == 1.0
    assert data["bytes_per_second"] == 75.0


def test_table() -> None:
    table = collect(RESULTS).table()
    lines = table.splitlines()
    assert lines[0].split() == ["files", "put", "2"]
    assert "files skipped  3 (1 exists, 2 unchanged)" in table
    assert "files failed   2" in table
    assert "bytes put      150 (150 B)" in table
    assert "seconds        2.00" in table
    assert "files/s        1.0" in table
    assert "bytes/s        75 (75 B/s)" in table
    assert "FAILED f: boom" in table
    assert "batches" not in table


def test_table_dry_run_and_batches() -> None:
    table = Stats(files_put=3, bytes_put=3 * 1024 * 1024, dry_run=True, batches=3).table()
    assert "files to put" in table
    assert "bytes to put   3,145,728 (3.0 MiB)" in table
    assert "batches        3" in table


def test_table_batches_row_told_by_the_caller_comes_before_the_failures() -> None:
    lines = collect(RESULTS).table(batches="4 planned, 1 missing").splitlines()
    at = lines.index("batches        4 planned, 1 missing")
    assert lines[at - 1].startswith("bytes/s") and lines[at + 1].startswith("FAILED ")


# --- progress ---------------------------------------------------------------------------------------


def test_progress_due_follows_the_clock() -> None:
    clock = FakeClock(0.0)
    progress = Progress(interval=0.5, clock=clock)
    assert not progress.due()
    clock.now = 0.4
    assert not progress.due()
    clock.now = 0.5
    assert progress.due()
    assert not progress.due()  # shown just now
    clock.now = 1.2
    assert progress.due()


def test_progress_line_counts_rate_and_eta() -> None:
    clock = FakeClock(10.0)
    progress = Progress(total_files=10, clock=clock)
    for result in RESULTS[:5]:
        progress.add(result)
    progress.add(PutResult("/x", "x", "fail", error="e"))
    clock.now = 12.0
    line = progress.line()
    assert line.startswith("6/10 files (2 put, 3 skipped, 1 failed)")
    assert "3 files/s" in line
    assert "ETA 1s" in line


def test_progress_line_without_total_or_time() -> None:
    clock = FakeClock(5.0)
    progress = Progress(clock=clock)
    progress.add(PutResult("/a", "a", "put", "new", 2 * 1048576))
    line = progress.line()  # no time has passed: no division by zero
    assert line.startswith("1 files (1 put, 0 skipped, 0 failed), 2.0 MiB")
    assert "ETA" not in line

"""Stats (merge, dict round trip, table), summaries, retryable failures, the progress meter."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from airflow_s3pput.progress import Progress
from airflow_s3pput.stats import (
    MAX_BATCH_ERRORS_KEPT,
    MAX_FAILURES_KEPT,
    BatchReport,
    PutResult,
    Stats,
    StatsCollector,
    Summary,
    one_line,
    summarize,
    where,
)
from airflow_s3pput.walker import Selection, WalkError, walk


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
    assert "files would put  3" in table
    assert "bytes would put  3,145,728 (3.0 MiB)" in table
    assert "batches          3" in table
    assert " put " not in table.replace("would put", "")  # a dry run puts nothing
    assert "/s" not in table  # and transfers nothing: no rates


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


# --- honest numbers: timestamps, wall and task time, dry runs ------------------------------------


def test_timestamps_are_iso_and_read_back() -> None:
    stats = collect(RESULTS)
    data = stats.to_dict()
    assert data["started"] == "1970-01-01T00:16:40.000+00:00"
    assert data["finished"] == "1970-01-01T00:16:42.000+00:00"
    assert Stats.from_dict(data) == stats
    legacy = {**data, "started": 1000.0, "finished": 1002.0}  # an older report's epoch floats
    assert Stats.from_dict(legacy).seconds == 2.0
    assert Stats().to_dict()["started"] is None


def test_wall_time_and_summed_task_time() -> None:
    first = collect(RESULTS[:3], seconds=2.0)  # 1000 .. 1002
    late = dataclasses.replace(collect(RESULTS[3:], seconds=1.0), started=1300.0, finished=1301.0)
    merged = first.merge(late)  # e.g. a batch retried minutes later
    assert merged.seconds == 301.0  # wall: first start to last end
    assert merged.task_seconds == 3.0  # what the batches spent working
    table = merged.table()
    assert "wall seconds   301.00" in table and "task seconds   3.00" in table


def test_dry_run_dict_says_would_put_and_has_no_rates() -> None:
    data = collect(RESULTS, dry_run=True).to_dict()
    assert (data["files_would_put"], data["bytes_would_put"], data["would_put_reasons"]) == (
        2, 150, {"changed": 1, "new": 1},
    )  # fmt: skip
    assert not any(key.startswith(("files_put", "bytes_put", "put_")) for key in data)
    assert "files_per_second" not in data and "bytes_per_second" not in data


def test_dry_run_progress_says_would_put() -> None:
    clock = FakeClock(0.0)
    progress = Progress(total_files=3, clock=clock, dry_run=True)
    progress.add(PutResult("/a", "a", "put", "new", 10 * 1048576))
    clock.now = 1.0
    line = progress.line()
    assert line.startswith("1/3 files (1 would put, 0 skipped, 0 failed), 10.0 MiB would put")
    assert "MiB/s" not in line


# --- the reduce: summarize -------------------------------------------------------------------------


def report(index: int, files: int, results: list[PutResult] | None, error: str = "") -> BatchReport:
    stats = None if results is None else collect(results)
    return BatchReport(index, f"k{index}", files_planned=files, stats=stats, error=error)


def test_summary_of_batches_that_all_landed() -> None:
    summary = summarize([report(1, 2, RESULTS[2:4]), report(0, 2, RESULTS[:2])], bucket="b", prefix="p/")
    assert summary.ok and summary.batches == 2 and summary.batches_missing == 0
    assert summary.files_planned == 4 and summary.warnings == ()
    data = summary.to_dict()
    assert (data["files_put"], data["files_skipped"], data["bucket"], data["prefix"]) == (2, 2, "b", "p/")
    assert summary.event_extra() == {
        "files_put": 2, "bytes_put": 150, "files_skipped": 2, "bucket": "b", "prefix": "p/", "batches": 2,
        "finished": "1970-01-01T00:16:42.000+00:00",
    }  # fmt: skip


def test_summary_carries_each_failed_batch_error() -> None:
    reports = [
        report(0, 2, RESULTS[:2]),
        report(1, 3, None, error="bucket 'b' does not exist at http://h"),
        report(2, 1, None),  # died before reporting
        report(3, 2, RESULTS[5:7], error="2 of the batch's 2 files failed"),
    ]
    summary = summarize(reports)
    assert not summary.ok and summary.batches_missing == 2
    assert [index for index, _, _ in summary.batch_errors] == [1, 2, 3]
    message = summary.failure_message()
    assert message.startswith("2 files failed, 2 of 4 batches did not finish: ")
    assert "batch 1 (k1): bucket 'b' does not exist at http://h" in message
    assert "batch 2 (k2): did not report: its task died or never ran" in message
    assert "\n" not in message
    assert "BATCH 1 k1: bucket 'b' does not exist" in summary.table()
    round_trip = [BatchReport.from_dict(json.loads(json.dumps(r.to_dict()))) for r in reports]
    assert round_trip == reports


def test_summary_warns_when_the_accounting_differs_from_the_plan() -> None:
    summary = summarize([report(0, 7, RESULTS[:5])])
    assert summary.ok  # every file that was there landed; the tree changed in between
    (warning,) = summary.warnings
    assert "7 files" in warning and "accounted for 5" in warning and "SOURCE changed" in warning
    assert f"WARNING {warning}" in summary.table()


def test_a_batch_stopped_midway_counts_what_it_put_and_still_fails_the_run() -> None:
    # A put whose execution_timeout fired after two of its five files landed: what it put is
    # counted, the batch did not finish, and no warning blames SOURCE for the three never reached.
    timed_out = BatchReport(1, "k1", 5, collect(RESULTS[:2]), "AirflowTaskTimeout: Timeout", stopped=True)
    summary = summarize([report(0, 2, RESULTS[2:4]), timed_out])
    assert not summary.ok and summary.warnings == ()
    assert (summary.stats.files_put, summary.batches_missing, summary.batches_stopped) == (2, 0, 1)
    assert summary.failure_message() == (
        "0 files failed, 1 of 2 batches did not finish: batch 1 (k1): AirflowTaskTimeout: Timeout"
    )
    assert "2 planned, 0 missing, 1 stopped midway" in summary.table()
    assert summary.to_dict()["batches_stopped"] == 1
    assert BatchReport.from_dict(json.loads(json.dumps(timed_out.to_dict()))) == timed_out


# --- which failures a retry can change -----------------------------------------------------------


def test_walk_failures_are_not_retryable(tmp_path: Path) -> None:
    """Every failure the real walker reports is one a retry meets again (``PERMANENT_ERRORS``)."""
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "fifo")
    (src / "broken").symlink_to(tmp_path / "nowhere")
    (tmp_path / "outside.txt").write_text("x")
    (src / "leaves").symlink_to(tmp_path / "outside.txt")
    (src / "loop").symlink_to(src)
    os.close(os.open(os.path.join(os.fsencode(src), b"bad-\xff"), os.O_CREAT | os.O_WRONLY))
    deep = src.joinpath(*(letter * 250 for letter in "klmno"))  # a key over S3's 1,024 bytes
    deep.mkdir(parents=True)
    (deep / "file.txt").write_text("deep")
    errors = [
        item
        for item in walk([str(src)], selection=Selection(follow_dir_symlinks=True))
        if isinstance(item, WalkError)
    ]
    errors += [item for item in walk([str(src)]) if isinstance(item, WalkError) and "outside" in item.message]
    messages = {e.message.split(":")[0].split(" (")[0] for e in errors}
    assert len(messages) >= 6, messages  # fifo, broken, outside, loop, not UTF-8, key too long
    for item in errors:
        result = PutResult(item.path, item.key, "fail", error=item.message)  # as the engine records it
        assert not result.can_retry, item.message


@pytest.mark.parametrize(
    "error",
    [
        pytest.param("file changed since it was listed (size 3 -> 4)", id="changed"),
        pytest.param("file disappeared before upload", id="disappeared"),
        pytest.param("SlowDown: Please reduce your request rate", id="server"),
        pytest.param("worker failed: BrokenProcessPool", id="worker"),
        pytest.param("cannot list existing objects: 503", id="listing"),
    ],
)
def test_transient_failures_are_retryable(error: str) -> None:
    assert PutResult("/p", "k", "fail", error=error).can_retry
    assert not PutResult("/p", "k", "fail", error=error, retryable=False).can_retry  # a producer's word wins
    assert not PutResult("/p", "k", "fail", error="cannot read: Permission denied").can_retry


def test_directory_symlinks_not_followed_are_counted_apart_from_files() -> None:
    # Issue 27, point 7: the summary says how many directory symlinks the walk passed over.
    one, two = Stats(files_put=1, dir_symlinks_skipped=2), Stats(dir_symlinks_skipped=3)
    merged = one.merge(two)
    assert merged.dir_symlinks_skipped == 5 and merged.files_done == 1
    data = json.loads(json.dumps(merged.to_dict()))
    assert data["dir_symlinks_not_followed"] == 5
    assert Stats.from_dict(data) == merged
    assert "dir symlinks   5 not followed (see --follow-symlinks)" in merged.table()
    assert "dir symlinks" not in Stats(files_put=1).table()
    assert Stats.from_dict({k: v for k, v in Stats().to_dict().items() if "symlinks" not in k}) == Stats()


# --- stats: rounding, defaults and merging


def test_merging_runs_that_never_started_keeps_no_start() -> None:
    assert Stats().merge(Stats()).started == 0.0
    assert Stats(started=5.0).merge(Stats()).started == 5.0


def test_to_dict_rounds_seconds_to_ms_and_rates_to_tenths() -> None:
    stats = Stats(files_put=1, bytes_put=1, started=100.0, finished=103.00049)
    data = stats.to_dict()
    assert data["seconds"] == 3.0
    assert (data["files_per_second"], data["bytes_per_second"]) == (0.3, 0.3)
    stats = Stats(files_put=2, bytes_put=2000, started=100.0, finished=101.23456)
    data = stats.to_dict()
    assert data["seconds"] == 1.235
    assert (data["files_per_second"], data["bytes_per_second"]) == (1.6, 1620.0)


def test_from_dict_fills_in_what_a_minimal_dict_leaves_out() -> None:
    stats = Stats.from_dict({"files_put": 1, "bytes_put": 2, "files_failed": 0})
    assert stats == Stats(files_put=1, bytes_put=2)
    assert (stats.put_reasons, stats.skipped, stats.failures) == ({}, {}, ())
    assert (stats.started, stats.finished, stats.batches, stats.dry_run) == (0.0, 0.0, 1, False)


@pytest.mark.parametrize(
    ("bytes_put", "shown"),
    [
        pytest.param(1023, "1,023 (1023 B)", id="bytes"),
        pytest.param(1024, "1,024 (1.0 KiB)", id="one-kib"),
        pytest.param(1536, "1,536 (1.5 KiB)", id="kib"),
        pytest.param(1024**2, "1,048,576 (1.0 MiB)", id="one-mib"),
        pytest.param(3 * 1024**3 // 2, "1,610,612,736 (1.5 GiB)", id="gib"),
        pytest.param(2 * 1024**4, "2,199,023,255,552 (2.0 TiB)", id="tib"),
        pytest.param(1024**5, "1,125,899,906,842,624 (1024.0 TiB)", id="tib-is-the-largest-unit"),
    ],
)
def test_table_shows_bytes_in_binary_units(bytes_put: int, shown: str) -> None:
    assert f"bytes put      {shown}" in Stats(bytes_put=bytes_put).table().splitlines()


def test_table_says_none_skipped_and_no_more_failures_than_there_are() -> None:
    table = Stats(failed=1, failures=(("k", "boom"),)).table()
    assert "files skipped  0 (none)" in table.splitlines()
    assert table.splitlines()[-1] == "FAILED k: boom"
    assert "more failures" not in table


def test_collector_counts_reasons_and_keeps_dry_run() -> None:
    collector = StatsCollector(clock=lambda: 1.0)
    for key in ("a", "b"):
        collector.add(PutResult(f"/{key}", key, "put", "new", 1))
    assert collector.freeze().put_reasons == {"new": 2}
    assert collector.freeze().dry_run is False
    assert StatsCollector(dry_run=True).freeze().dry_run is True


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param("plain name.txt", "plain name.txt", id="printable"),
        pytest.param("back\\slash 'quote'", "back\\slash 'quote'", id="backslash-and-quotes-kept"),
        pytest.param("é ü ✓", "é ü ✓", id="unicode-printable"),
        pytest.param("a\nb", "a\\nb", id="newline"),
        pytest.param("tab\there", "tab\\there", id="tab"),
        pytest.param("nul\x00", "nul\\x00", id="nul"),
        pytest.param("\x1b[31mred", "\\x1b[31mred", id="escape"),
        pytest.param("", "", id="empty"),
    ],
)
def test_one_line_escapes_control_characters(text: str, shown: str) -> None:
    assert one_line(text) == shown


def test_to_dict_rounds_task_seconds_to_ms() -> None:
    assert Stats(task_seconds=1.23456).to_dict()["task_seconds"] == 1.235


def test_from_dict_reads_an_empty_timestamp_as_unset() -> None:
    stats = Stats.from_dict(
        {"files_put": 0, "bytes_put": 0, "files_failed": 0, "started": "", "finished": ""}
    )
    assert (stats.started, stats.finished) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("dry_run", "row"),
    [pytest.param(False, "files deleted", id="deleted"), pytest.param(True, "files to delete", id="dry-run")],
)
def test_table_shows_deletions_after_the_failures(dry_run: bool, row: str) -> None:
    names = [line.split("  ")[0] for line in Stats(deleted=3, dry_run=dry_run).table().splitlines()]
    assert names[2:5] == ["files failed", row, "bytes would put" if dry_run else "bytes put"]


def test_collector_task_seconds_is_the_time_it_counted() -> None:
    ticks = iter([10.0, 10.25])
    assert StatsCollector(clock=lambda: next(ticks)).freeze().task_seconds == 0.25


def test_where_names_the_file_and_its_key() -> None:
    assert where(PutResult("/src/a\nb", "p/a\nb", "fail")) == "/src/a\\nb -> p/a\\nb"
    assert where(PutResult("", "p/gone", "delete")) == "p/gone"


def test_a_batch_report_without_label_or_plan_reads_as_empty() -> None:
    report = BatchReport.from_dict({"batch": 3})
    assert (report.index, report.label, report.files_planned, report.stats, report.error) == (
        3,
        "",
        0,
        None,
        "",
    )


def failed_batches(count: int) -> list[BatchReport]:
    return [BatchReport(i, f"k{i}", 1, Stats(failed=1), error=f"boom {i}") for i in range(count)]


def test_summary_to_dict_adds_the_run_to_the_merged_stats() -> None:
    summary = summarize(
        [BatchReport(0, "a .. b", 2, Stats(files_put=2)), BatchReport(1, "c\nd", 1, error="died")],
        bucket="b-1",
        prefix="p/",
    )
    data = summary.to_dict()
    assert data["files_put"] == 2
    assert {k: data[k] for k in ("batches", "batches_missing", "files_planned", "bucket", "prefix")} == {
        "batches": 2,
        "batches_missing": 1,
        "files_planned": 3,
        "bucket": "b-1",
        "prefix": "p/",
    }
    assert data["batch_errors"] == [{"batch": 1, "label": "c\nd", "error": "died"}]
    assert data["warnings"] == []


def test_summary_table_has_the_stats_then_the_warnings_then_the_batch_errors() -> None:
    summary = Summary(
        stats=Stats(files_put=1, batches=1),
        batches=2,
        files_planned=1,
        batch_errors=((1, "c\nd", "died"),),
        batches_missing=1,
        warnings=("SOURCE changed",),
    )
    lines = summary.table().split("\n")
    assert "batches        2 planned, 1 missing" in lines
    assert lines[0].startswith("files put")
    assert lines[-2:] == ["WARNING SOURCE changed", "BATCH 1 c\\nd: died"]


@pytest.mark.parametrize(
    ("summary", "message"),
    [
        pytest.param(Summary(Stats(failed=1), 1, 1), "1 files failed", id="files-only"),
        pytest.param(
            Summary(Stats(), 3, 3, ((0, "a", "x"), (2, "c\nd", "y")), batches_missing=1),
            "0 files failed, 1 of 3 batches did not finish: batch 0 (a): x; batch 2 (c\\nd): y",
            id="batches",
        ),
    ],
)
def test_failure_message(summary: Summary, message: str) -> None:
    assert summary.failure_message() == message


def test_summarize_keeps_the_first_batch_errors_and_counts_the_rest() -> None:
    kept = summarize(failed_batches(MAX_BATCH_ERRORS_KEPT))
    assert len(kept.batch_errors) == MAX_BATCH_ERRORS_KEPT and kept.warnings == ()
    more = summarize(failed_batches(MAX_BATCH_ERRORS_KEPT + 3))
    assert [index for index, _, _ in more.batch_errors] == list(range(MAX_BATCH_ERRORS_KEPT))
    assert more.warnings == ("3 more batch errors not shown",)
    assert (more.bucket, more.prefix) == ("", "")

"""Stats, the details mutation testing found unchecked: rounding in the summary, the defaults
of an older or smaller XCom dict, the table's units and the one-line escaping of names."""

from __future__ import annotations

import pytest

from airflow_s3pput.stats import (
    MAX_BATCH_ERRORS_KEPT,
    BatchReport,
    PutResult,
    Stats,
    StatsCollector,
    Summary,
    one_line,
    summarize,
    where,
)


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

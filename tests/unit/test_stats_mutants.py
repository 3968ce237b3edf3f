"""Stats, the details mutation testing found unchecked: rounding in the summary, the defaults
of an older or smaller XCom dict, the table's units and the one-line escaping of names."""

from __future__ import annotations

import pytest

from airflow_s3pput.stats import PutResult, Stats, StatsCollector, one_line


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

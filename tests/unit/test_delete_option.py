"""``--delete`` at the edges: the flag, the option, and the ``deleted`` count in ``Stats``."""

from __future__ import annotations

import io

import pytest

from airflow_s3pput.cli import Reporter, build_parser, options_from_args
from airflow_s3pput.stats import PutResult, Stats, StatsCollector


def test_flag_sets_the_option() -> None:
    assert options_from_args(build_parser().parse_args(["--bucket", "b-1", "--delete", "x"])).delete
    assert not options_from_args(build_parser().parse_args(["--bucket", "b-1", "x"])).delete


def test_deleted_is_counted_merged_and_round_trips() -> None:
    collector = StatsCollector()
    collector.add(PutResult("", "p/old", "delete", "extraneous"))
    collector.add(PutResult("", "p/older", "delete", "extraneous"))
    collector.add(PutResult("", "p/locked", "fail", error="cannot delete: AccessDenied"))
    stats = collector.freeze()
    assert (stats.deleted, stats.failed, stats.files_put, stats.files_skipped) == (2, 1, 0, 0)
    assert not stats.ok
    data = stats.to_dict()
    assert data["files_deleted"] == 2
    assert Stats.from_dict(data).deleted == 2
    assert stats.merge(Stats(deleted=3)).deleted == 5
    assert Stats.from_dict({"files_put": 0, "bytes_put": 0, "files_failed": 0}).deleted == 0  # older XComs
    assert "\nfiles deleted  2\n" in stats.table()
    assert "deleted" not in Stats().table()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["--dry-run"], "would delete p/old\n", id="dry-run"),
        pytest.param(["--verbose"], "delete p/old\n", id="verbose"),
        pytest.param([], "", id="quiet-by-default"),
    ],
)
def test_reporter_prints_deletions(argv: list[str], expected: str) -> None:
    args = build_parser().parse_args(["--bucket", "b-1", "--delete", *argv, "x"])
    out, err = io.StringIO(), io.StringIO()
    reporter = Reporter(args, out, err)
    reporter(PutResult("", "p/old", "delete", "dry-run"))
    reporter(PutResult("", "p/locked", "fail", error="cannot delete: AccessDenied: no"))
    assert out.getvalue() == expected
    assert err.getvalue() == "s3pput: failed p/locked: cannot delete: AccessDenied: no\n"

"""How many listing requests `add` and `update` spend to learn what the bucket holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_s3pput import engine
from airflow_s3pput.remote import FLAT_LISTING_MIN_DIRS
from tests.conftest import make_tree

from .conftest import RequestLog
from .test_engine_s3 import opts

#: more directories than FLAT_LISTING_MIN_DIRS, a few files each
WIDE = {f"d{i:02d}/f{j}.txt": f"{i}-{j}" for i in range(FLAT_LISTING_MIN_DIRS + 10) for j in range(3)}


def test_an_empty_prefix_is_not_listed_file_by_file(
    logged_client: tuple[Any, RequestLog], bucket: str, tmp_path: Path
) -> None:
    client, log = logged_client
    src = make_tree(tmp_path / "src", WIDE)
    stats = engine.upload(opts(bucket, src, prefix="fresh"), client=client)
    assert stats.files_put == len(WIDE)
    assert log.counts["ListObjectsV2"] == 1  # the bucket check found the prefix empty


def test_many_small_directories_are_listed_flat_and_still_compared(
    logged_client: tuple[Any, RequestLog], bucket: str, tmp_path: Path
) -> None:
    client, log = logged_client
    src = make_tree(tmp_path / "src", WIDE)
    engine.upload(opts(bucket, src, prefix="wide"), client=client)
    (src / "d07" / "f1.txt").write_text("changed, and longer")
    log.calls.clear()
    stats = engine.upload(opts(bucket, src, prefix="wide"), client=client)
    assert stats.put_reasons == {"changed": 1}
    assert stats.skipped == {"unchanged": len(WIDE) - 1}
    # the bucket check and one flat listing, not one listing per directory
    assert log.counts["ListObjectsV2"] == 2, log.counts


def test_a_crowded_prefix_falls_back_to_listing_directory_by_directory(
    logged_client: tuple[Any, RequestLog], bucket: str, tmp_path: Path, monkeypatch: Any
) -> None:
    from airflow_s3pput import remote

    monkeypatch.setattr(remote, "FLAT_LISTING_MAX_PAGES", 1)
    client, log = logged_client
    src = make_tree(tmp_path / "src", WIDE)
    engine.upload(opts(bucket, src, prefix="crowd"), client=client)
    monkeypatch.setattr(remote, "LIST_PAGE_KEYS", len(WIDE) // 2)  # the prefix holds two pages
    log.calls.clear()
    stats = engine.upload(opts(bucket, src, prefix="crowd"), client=client)
    assert stats.skipped == {"unchanged": len(WIDE)}
    assert log.counts["ListObjectsV2"] >= 1 + FLAT_LISTING_MIN_DIRS

"""Two SOURCEs that map to one key: exit 2 with one line naming the key and both paths, and
nothing uploaded (issue 13, item 1), on SeaweedFS and moto."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import CliRunner, S3Endpoint, assert_usage_error, list_keys, make_tree


@pytest.mark.parametrize("mode", ["update", "stupid"])
def test_two_directories_with_one_relative_path(
    any_cli: CliRunner, any_s3: S3Endpoint, any_bucket: str, tmp_path: Path, mode: str
) -> None:
    one = make_tree(tmp_path / "one", {"a.txt": "1", "site/index.html": "one"})
    two = make_tree(tmp_path / "two", {"b.txt": "2", "site/index.html": "two"})
    run = any_cli("--bucket", any_bucket, "--prefix", "www", "--put", mode, str(one), str(two))
    assert_usage_error(
        run, "'www/site/index.html'", str(one / "site" / "index.html"), str(two / "site" / "index.html")
    )
    assert list_keys(any_s3.client(), any_bucket) == {}  # a.txt sorts first: still not uploaded


def test_file_source_and_directory_holding_that_name(
    any_cli: CliRunner, any_s3: S3Endpoint, any_bucket: str, tmp_path: Path
) -> None:
    single = make_tree(tmp_path / "solo", {"index.html": "a"}) / "index.html"
    directory = make_tree(tmp_path / "dir", {"index.html": "b", "about.html": "c"})
    run = any_cli("--bucket", any_bucket, str(single), str(directory))
    assert_usage_error(run, "'index.html'", str(single), str(directory / "index.html"))
    assert list_keys(any_s3.client(), any_bucket) == {}


def test_distinct_sources_still_upload(
    any_cli: CliRunner, any_s3: S3Endpoint, any_bucket: str, tmp_path: Path
) -> None:
    one = make_tree(tmp_path / "one", {"a.txt": "1", "site/index.html": "one"})
    two = make_tree(tmp_path / "two", {"b.txt": "2", "site/about.html": "two"})
    run = any_cli("--bucket", any_bucket, "--json", str(one), str(two))
    assert run.code == 0, run.err
    assert run.summary["files_put"] == 4
    landed = set(list_keys(any_s3.client(), any_bucket))
    assert landed == {"a.txt", "b.txt", "site/about.html", "site/index.html"}

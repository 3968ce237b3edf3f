"""``--delete`` end to end on SeaweedFS (tree-ordered listing) and moto (lists like AWS):
extraneous keys go, filtered and outside keys stay, a dry run deletes nothing, a failure
deletes nothing, ``--limit`` is refused, a batch deletes only inside its own key range."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from airflow_s3pput.engine import upload
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.planner import plan_batches
from airflow_s3pput.walker import walk
from tests.helpers import CliRunner, S3Endpoint, assert_usage_error, list_keys, make_tree

#: names whose keys sort differently in a tree-ordered listing: "a" (a directory) lists before
#: "a-b" and "a.txt" on SeaweedFS, after them as keys
TREE: dict[str, bytes | str] = {
    "a-b": "1",
    "a.txt": "1",
    "a/x.html": "1",
    "a/y/z.html": "1",
    "b b/c.txt": "1",
    "keep.log": "local log",
    "é/ü.txt": "1",
}


def seed(client: Any, bucket: str, keys: set[str]) -> None:
    for key in sorted(keys):
        client.put_object(Bucket=bucket, Key=key, Body=b"remote only")


def test_delete_removes_extraneous_keys_and_keeps_the_rest(
    any_cli: CliRunner, any_s3: S3Endpoint, any_bucket: str, tmp_path: Path
) -> None:
    client = any_s3.client()
    src = make_tree(tmp_path / "src", TREE)
    extraneous = {"site/a-a", "site/a.old", "site/a/gone.html", "site/a/y/old/q", "site/zz", "site/b b/d"}
    kept = {"site/old.log", "site/dir/", "other/x", "sitemap.xml", "site-b/x"}  # filtered, marker, outside
    seed(client, any_bucket, extraneous | kept)
    run = any_cli(
        "--bucket", any_bucket, "--prefix", "site", "--delete", "--exclude", "*.log", "--json", str(src)
    )  # fmt: skip
    assert run.code == 0, run.err
    summary = run.summary
    assert summary["files_deleted"] == len(extraneous)
    assert summary["files_put"] == len(TREE) - 1  # keep.log is excluded
    assert set(list_keys(client, any_bucket)) == kept | {f"site/{k}" for k in TREE if k != "keep.log"}

    again = any_cli(
        "--bucket", any_bucket, "--prefix", "site", "--delete", "--exclude", "*.log", "--json", str(src)
    )
    assert again.code == 0 and again.summary["files_deleted"] == 0 and again.summary["files_put"] == 0


def test_dry_run_prints_would_delete_and_deletes_nothing(
    any_cli: CliRunner, any_s3: S3Endpoint, any_bucket: str, tmp_path: Path
) -> None:
    client = any_s3.client()
    src = make_tree(tmp_path / "src", {"a.txt": "1"})
    seed(client, any_bucket, {"p/a.txt", "p/old/1", "p/old-2"})
    run = any_cli("--bucket", any_bucket, "--prefix", "p", "--delete", "--dry-run", str(src))
    assert run.code == 0, run.err
    assert "would delete p/old-2\n" in run.out and "would delete p/old/1\n" in run.out
    assert re.search(r"^files to delete +2$", run.out, re.M), run.out
    assert set(list_keys(client, any_bucket)) == {"p/a.txt", "p/old/1", "p/old-2"}


def test_nothing_is_deleted_when_a_file_failed(
    any_cli: CliRunner, any_s3: S3Endpoint, any_bucket: str, tmp_path: Path
) -> None:
    client = any_s3.client()
    src = make_tree(tmp_path / "src", {"a.txt": "1"})
    (src / "broken").symlink_to(tmp_path / "nowhere")
    seed(client, any_bucket, {"p/old"})
    run = any_cli("--bucket", any_bucket, "--prefix", "p", "--delete", "--json", str(src))
    assert run.code == 1
    assert run.summary["files_failed"] == 1 and run.summary["files_deleted"] == 0
    assert set(list_keys(client, any_bucket)) == {"p/a.txt", "p/old"}


def test_more_than_one_delete_request(
    any_cli: CliRunner, any_s3: S3Endpoint, any_bucket: str, tmp_path: Path
) -> None:
    client = any_s3.client()
    src = make_tree(tmp_path / "src", {f"d{i % 7}/f{i:04}": "" for i in range(1100)})
    assert any_cli("--bucket", any_bucket, "--prefix", "p", str(src)).code == 0
    for path in src.rglob("f*"):
        if path.name != "f0000":
            path.unlink()
    run = any_cli("--bucket", any_bucket, "--prefix", "p", "--delete", "--json", str(src))
    assert run.code == 0, run.err
    assert run.summary["files_deleted"] == 1099
    assert set(list_keys(client, any_bucket)) == {"p/d0/f0000"}


def test_limit_is_refused(any_cli: CliRunner, any_bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "1"})
    run = any_cli("--bucket", any_bucket, "--delete", "--limit", "1", str(src))
    assert_usage_error(run, "--delete cannot be combined with --limit")


def test_each_batch_deletes_only_inside_its_key_range(
    any_s3: S3Endpoint, any_bucket: str, tmp_path: Path
) -> None:
    client = any_s3.client()
    src = make_tree(tmp_path / "src", {f"{c}/f": "1" for c in "bdfh"})
    seed(client, any_bucket, {"p/a", "p/c", "p/e/x", "p/g", "p/i", "p/j/k"})
    batches = plan_batches(walk([str(src)], "p"), max_files=2, max_bytes=10**9, max_batches=10)
    assert [(b.after, b.last) for b in batches] == [(None, "p/d/f"), ("p/d/f", None)]
    options = UploadOptions(
        bucket=any_bucket, sources=(str(src),), prefix="p", delete=True, connection=any_s3.connection()
    )
    first = upload(options, key_range=batches[0].key_range)
    assert first.deleted == 2  # p/a and p/c, below p/d/f; the second batch's keys untouched
    assert set(list_keys(client, any_bucket)) == {"p/b/f", "p/d/f", "p/e/x", "p/g", "p/i", "p/j/k"}
    second = upload(options, key_range=batches[1].key_range)
    assert second.deleted == 4
    assert set(list_keys(client, any_bucket)) == {f"p/{c}/f" for c in "bdfh"}
    assert first.merge(second).to_dict()["files_deleted"] == 6

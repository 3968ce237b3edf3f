"""The ``s3pput_upload`` example DAG through real Airflow against a real SeaweedFS."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.helpers import RunDag, list_keys, make_tree


def sample_files(count: int) -> dict[str, bytes]:
    return {f"d{i % 4}/sub{i % 3}/f{i:04d}.txt": f"file {i}\n".encode() * (i % 7 + 1) for i in range(count)}


def conf(source: Path, bucket: str, **more: Any) -> dict[str, Any]:
    return {"source": str(source), "bucket": bucket, "prefix": "up", **more}


def test_upload_lands_every_object_and_reduces_totals(
    run_upload_dag: RunDag, tmp_path: Path, bucket: str, s3_client: Any
) -> None:
    files = sample_files(45)
    source = make_tree(tmp_path / "src", files)
    result = run_upload_dag(conf(source, bucket, batch_size=10))
    assert result.exit_code == 0, result.log[-3000:]

    plan = result.xcoms("upload.plan")[0]
    assert len(plan) == 5
    assert result.count("upload.put", "success") == len(plan)
    summary = result.summary
    assert summary["files_put"] == 45 and summary["files_failed"] == 0
    assert summary["bytes_put"] == sum(len(b) for b in files.values())
    assert summary["batches"] == 5 and summary["batches_missing"] == 0
    stored = list_keys(s3_client, bucket, "up/")
    assert set(stored) == {f"up/{k}" for k in files}
    for key, body in files.items():
        assert stored[f"up/{key}"]["ETag"].strip('"') == hashlib.md5(body).hexdigest()

    # A run that went well logs no error line (a missing XCom was one, for every batch).
    assert "XCom not found" not in result.log and "[error" not in result.log, result.log[-3000:]
    # Each batch is named by its key range and file count, from the plan's descriptor.
    names = result.map_names("upload.put")
    assert names[0] == f"up/{sorted(files)[0]} .. up/{sorted(files)[9]} (10 files)"
    assert summary["started"].endswith("+00:00") and summary["seconds"] >= 0 and summary["task_seconds"] > 0

    again = run_upload_dag(conf(source, bucket, batch_size=10))
    assert again.exit_code == 0
    assert again.summary["files_put"] == 0
    assert again.summary["skipped"] == {"unchanged": 45}


def test_failing_file_fails_the_run_and_is_reported(
    run_upload_dag: RunDag, tmp_path: Path, bucket: str, s3_client: Any
) -> None:
    source = make_tree(tmp_path / "src", sample_files(12))
    os.mkfifo(source / "d1" / "a-fifo")
    result = run_upload_dag(conf(source, bucket, batch_size=5))
    assert result.exit_code != 0
    assert result.states[("upload.reduce", -1)] == "failed"
    assert result.count("upload.put", "failed") == 1
    assert result.count("upload.put", "success") == 2
    # A FIFO stays a FIFO: the batch fails at once, its two retries unused, named as planned.
    (failed,) = [i for (t, i), s in result.states.items() if t == "upload.put" and s == "failed"]
    assert result.try_numbers("upload.put")[failed] == 1
    assert result.map_names("upload.put")[failed].endswith("(5 files)")
    assert f"failed {source / 'd1' / 'a-fifo'} -> up/d1/a-fifo: not a regular file" in result.log
    assert "for reasons no retry changes" in result.log
    # The failed batch still reported its stats, so the good files are counted and landed.
    (pushed,) = result.xcoms("upload.put", "s3pput_report")
    assert pushed["batch"] == failed and pushed["stats"]["files_failed"] == 1
    assert "1 of the batch's 5 files failed" in pushed["error"]
    assert "up/d1/a-fifo" in json.dumps(pushed["stats"]["failures"])
    assert len(list_keys(s3_client, bucket, "up/")) == 12
    # `dags test` prints the task logs: the reduce table lists the failure, and leaves the summary.
    assert "FAILED up/d1/a-fifo" in result.log
    (summary,) = result.xcoms("upload.reduce", "s3pput_summary")
    assert summary["files_failed"] == 1 and summary["batch_errors"][0]["batch"] == failed


def test_batches_are_capped_at_max_map_length(run_upload_dag: RunDag, tmp_path: Path, bucket: str) -> None:
    source = make_tree(tmp_path / "src", sample_files(20))
    result = run_upload_dag(conf(source, bucket, batch_size=1), env={"AIRFLOW__CORE__MAX_MAP_LENGTH": "4"})
    assert result.exit_code == 0, result.log[-3000:]
    plan = result.xcoms("upload.plan")[0]
    assert len(plan) <= 4
    assert sum(b["files"] for b in plan) == 20
    assert result.summary["files_put"] == 20


@pytest.mark.slow
def test_xcoms_stay_small_for_a_20000_file_dry_run(
    run_upload_dag: RunDag, tmp_path: Path, bucket: str, s3_client: Any
) -> None:
    source = tmp_path / "src"
    for d in range(20):
        folder = source / f"dir{d:02d}"
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f"file{i:04d}.bin").touch()
    result = run_upload_dag(conf(source, bucket, dry_run=True, batch_size=2500))
    assert result.exit_code == 0, result.log[-3000:]
    assert result.summary["files_would_put"] == 20000 and result.summary["dry_run"] is True
    assert "files_put" not in result.summary and "bytes_per_second" not in result.summary
    progress = [line for line in result.log.splitlines() if "progress: " in line]
    assert progress and all("would put" in line and "MiB/s" not in line for line in progress), progress
    assert "(2,500 would put, 0 skipped, 0 failed)" in result.log
    assert list_keys(s3_client, bucket) == {}
    total = sum(
        len(json.dumps(v))
        for task in ("upload.plan", "upload.put", "upload.reduce")
        for v in result.xcoms(task)
    )
    assert total < 100_000, total


def test_connection_from_airflow_not_from_the_environment(
    run_upload_dag: RunDag, tmp_path: Path, bucket: str, s3_server: LocalS3Server
) -> None:
    """Credentials and endpoint come from the Airflow connection; no secret reaches the log."""
    source = make_tree(tmp_path / "src", sample_files(3))
    result = run_upload_dag(conf(source, bucket))
    assert result.exit_code == 0
    assert s3_server.secret_key not in result.log
    xcoms = json.dumps([result.xcoms(t) for t in ("upload.plan", "upload.put", "upload.reduce")])
    assert s3_server.secret_key not in xcoms and s3_server.access_key not in xcoms


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        pytest.param(
            {"put_mode": "sideways"},
            "Invalid input for param put_mode: 'sideways' is not one of ['add', 'stupid', 'update']",
            id="form-refuses-mode",
        ),
        pytest.param({"batch_size": 0}, "Invalid input for param batch_size", id="form-refuses-batch-size"),
        pytest.param(
            {"headers": ["X-Bogus:1"]}, "s3pput: unsupported headers 'X-Bogus'", id="operator-refuses-header"
        ),
        pytest.param(
            {"source": "/nonexistent/s3pput"},
            "s3pput: source '/nonexistent/s3pput' does not exist",
            id="operator-refuses-source",
        ),
    ],
)
def test_bad_params_fail_with_a_clear_message(
    run_upload_dag: RunDag, tmp_path: Path, bucket: str, bad: dict[str, Any], message: str
) -> None:
    source = make_tree(tmp_path / "src", sample_files(2))
    result = run_upload_dag({**conf(source, bucket), **bad})
    assert result.exit_code != 0
    assert message in result.log, result.log[-2500:]


def test_delete_removes_extraneous_keys_batch_by_batch_and_spares_a_failed_batchs_range(
    run_upload_dag: RunDag, tmp_path: Path, bucket: str, s3_client: Any
) -> None:
    """``delete`` through the mapped batches: each deletes the keys of its own key range that no
    file maps to (the ranges cover the key space end to end, so keys before the first file and
    after the last one are someone's), and a batch with a failed file deletes nothing."""
    files = {f"d{d}/f{i}.txt": f"{d}{i}".encode() for d in range(4) for i in range(5)}
    source = make_tree(tmp_path / "src", files)
    assert run_upload_dag(conf(source, bucket, batch_size=5)).exit_code == 0
    extra = ["up/a-first", "up/d0/f2b.txt", "up/d1/old.txt", "up/d2/f9.txt", "up/d3/zz.txt", "up/zz-last"]
    for key in [*extra, "other/keep.txt"]:
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"x")

    result = run_upload_dag(conf(source, bucket, batch_size=5, delete=True))
    assert result.exit_code == 0, result.log[-3000:]
    assert len(result.xcoms("upload.plan")[0]) == 4
    assert result.summary["files_deleted"] == len(extra)
    assert set(list_keys(s3_client, bucket)) == {f"up/{k}" for k in files} | {"other/keep.txt"}

    # A FIFO fails its batch (the one holding d1/a-fifo .. d1/f3.txt, and so the range of
    # d1/again.txt): that range keeps its extraneous key, the other batches delete theirs.
    os.mkfifo(source / "d1" / "a-fifo")
    for key in ("up/d0/again.txt", "up/d1/again.txt", "up/d3/again.txt"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"x")
    failed = run_upload_dag(conf(source, bucket, batch_size=5, delete=True))
    assert failed.exit_code != 0
    (summary,) = failed.xcoms("upload.reduce", "s3pput_summary")  # a failed reduce's summary
    assert summary["files_failed"] == 1
    remaining = set(list_keys(s3_client, bucket, "up/"))
    assert "up/d1/again.txt" in remaining
    assert not {"up/d0/again.txt", "up/d3/again.txt"} & remaining


def long_keys(count: int) -> dict[str, str]:
    """Hive-style keys of about 150 characters: a mapped put's name of two of them exceeds the
    250 characters of ``task_instance.rendered_map_index``."""
    partition = "/".join(f"{name}=value-of-the-{name}" for name in ("region", "dataset", "day"))
    return {f"{partition}/part-{i:05d}-c000-0123456789abcdef0123456789abcdef.snappy.parquet": f"{i}\n"
            for i in range(count)}  # fmt: skip


def test_long_keys_give_put_names_that_fit_the_database(
    run_upload_dag: RunDag, tmp_path: Path, bucket: str, s3_client: Any
) -> None:
    files = long_keys(6)
    assert all(140 <= len(f"up/{key}") <= 160 for key in files)
    source = make_tree(tmp_path / "src", files)
    result = run_upload_dag(conf(source, bucket, batch_size=3))
    assert result.exit_code == 0, result.log[-3000:]
    assert result.count("upload.put", "success") == 2
    names = result.map_names("upload.put")
    keys = sorted(f"up/{key}" for key in files)
    for index, name in names.items():
        assert name is not None and len(name) <= 250, name
        # Both ends of both keys stay readable: where the range starts and the files' names.
        first, last = keys[3 * index], keys[3 * index + 2]
        assert name.startswith(first[:50]) and name.endswith(f"{last[-50:]} (3 files)"), name
        assert first[-40:] in name and "…" in name
    assert set(list_keys(s3_client, bucket, "up/")) == set(keys)


def test_delete_with_an_emptied_source_deletes_what_is_under_the_prefix(
    run_upload_dag: RunDag, tmp_path: Path, bucket: str, s3_client: Any
) -> None:
    source = make_tree(tmp_path / "src", {"a.txt": "a", "d/b.txt": "b", "d/c.txt": "c"})
    s3_client.put_object(Bucket=bucket, Key="other/keep.txt", Body=b"not under the prefix")
    first = run_upload_dag(conf(source, bucket, delete=True))
    assert first.exit_code == 0, first.log[-3000:]
    assert set(list_keys(s3_client, bucket, "up/")) == {"up/a.txt", "up/d/b.txt", "up/d/c.txt"}
    for path in (source / "a.txt", source / "d" / "b.txt", source / "d" / "c.txt"):
        path.unlink()

    emptied = run_upload_dag(conf(source, bucket, delete=True))
    assert emptied.exit_code == 0, emptied.log[-3000:]
    assert emptied.count("upload.put", "success") == 1  # one delete-only batch
    assert emptied.map_names("upload.put") == {0: "nothing to put: delete extraneous keys"}
    summary = emptied.summary
    assert summary["files_deleted"] == 3 and summary["files_put"] == 0 and summary["files_failed"] == 0
    assert list_keys(s3_client, bucket, "up/") == {}
    assert set(list_keys(s3_client, bucket)) == {"other/keep.txt"}

    # Without delete an empty SOURCE still plans nothing and touches nothing.
    s3_client.put_object(Bucket=bucket, Key="up/stale.txt", Body=b"stale")
    plain = run_upload_dag(conf(source, bucket))
    assert plain.exit_code == 0, plain.log[-3000:]
    assert plain.xcoms("upload.plan") == [[]]
    assert set(list_keys(s3_client, bucket, "up/")) == {"up/stale.txt"}


def test_a_blank_line_in_the_headers_field_is_ignored(
    run_upload_dag: RunDag, tmp_path: Path, bucket: str, s3_client: Any
) -> None:
    source = make_tree(tmp_path / "src", {"a.txt": "a"})
    # The form's Headers field, one header a line, with an empty line left in it.
    result = run_upload_dag(conf(source, bucket, headers=["Cache-Control:no-cache", "", "  "]))
    assert result.exit_code == 0, result.log[-3000:]
    assert s3_client.head_object(Bucket=bucket, Key="up/a.txt")["CacheControl"] == "no-cache"

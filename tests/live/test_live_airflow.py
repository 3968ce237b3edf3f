"""``s3pput_upload`` end to end through a live Airflow, triggered the way the UI's form does it.

Each run goes through the public REST API only: ``POST /api/v2/dags/s3pput_upload/dagRuns``
with ``{"logical_date": null, "conf": {...}}``, then task instances, XComs and logs are read
back through the same API. Only the bucket is checked directly, with boto3.
"""

from __future__ import annotations

import os
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.live_airflow import LiveAirflow
from tests.helpers import list_keys

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
#: four batches of 150 files; each holds one 8 MiB file so that a batch takes a moment
DIRS = 4
FILES_PER_DIR = 150
BIG_FILE = 8 * MIB


def make_batched_tree(root: Path, seed: int = 11) -> dict[str, int]:
    """``d0/`` .. ``d3/``, each one 8 MiB file and 149 small ones; returns relative path -> size."""
    rng = random.Random(seed)
    sizes: dict[str, int] = {}
    for d in range(DIRS):
        folder = root / f"d{d}"
        folder.mkdir(parents=True)
        (folder / "big.bin").write_bytes(rng.randbytes(BIG_FILE))
        sizes[f"d{d}/big.bin"] = BIG_FILE
        for i in range(FILES_PER_DIR - 1):
            body = rng.randbytes(rng.randint(100, 4000))
            (folder / f"f-{i:03d}.json").write_bytes(body)
            sizes[f"d{d}/f-{i:03d}.json"] = len(body)
    return sizes


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def max_concurrency(intervals: list[tuple[datetime, datetime]]) -> int:
    """The largest number of intervals open at one instant (end before start on ties)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_upload_maps_batches_in_parallel(
    live_airflow: LiveAirflow, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    sizes = make_batched_tree(tmp_path / "src")
    conf = {
        "source": str(tmp_path / "src"),
        "bucket": bucket,
        "prefix": "live/",
        "put_mode": "update",
        "batch_size": FILES_PER_DIR,
        "headers": ["x-amz-meta-origin:live-test"],
    }
    response = live_airflow.trigger(conf)
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    assert response.json()["conf"] == conf

    run = live_airflow.wait_for_run(run_id)
    tis = live_airflow.task_instances(run_id)
    states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in tis}
    assert run["state"] == "success", f"run {run_id}: {states}"

    # plan -> 4 mapped puts -> reduce, all succeeded
    puts = sorted((ti for ti in tis if ti["task_id"] == "upload.put"), key=lambda ti: ti["map_index"])
    assert [ti["map_index"] for ti in puts] == list(range(DIRS))
    assert set(states.values()) == {"success"}, states

    # The mapped instances overlapped in time: LocalExecutor ran them side by side.
    intervals = [(_time(ti["start_date"]), _time(ti["end_date"])) for ti in puts]
    peak = max_concurrency(intervals)
    span = max(e for _, e in intervals) - min(s for s, _ in intervals)
    print(f"\nput instances: {len(puts)}, at most {peak} at once, {span.total_seconds():.1f}s in all")
    for ti in puts:
        print(f"  [{ti['map_index']}] {ti['start_date']} .. {ti['end_date']} {ti['rendered_map_index']}")
    assert peak >= 2, f"mapped put instances never overlapped: {intervals}"

    # Each instance is named by its key range, the label of the batch the plan gave it.
    plan = live_airflow.xcom(run_id, "upload.plan")
    assert len(plan) == DIRS
    for ti, batch in zip(puts, plan, strict=True):
        assert (
            ti["rendered_map_index"]
            == f"{batch['first_key']} .. {batch['last_key']} ({batch['files']} files)"
        )
        d = ti["map_index"]
        assert ti["rendered_map_index"] == f"live/d{d}/big.bin .. live/d{d}/f-148.json (150 files)"

    # Every object landed, with its size and metadata.
    landed = list_keys(s3_client, bucket)
    assert {k: v["Size"] for k, v in landed.items()} == {f"live/{rel}": n for rel, n in sizes.items()}
    head = s3_client.head_object(Bucket=bucket, Key="live/d2/f-007.json")
    assert head["Metadata"] == {"origin": "live-test"}

    # The reduce task's summary, read through the REST API.
    summary = live_airflow.xcom(run_id, "upload.reduce")
    assert summary["files_put"] == len(sizes)
    assert summary["bytes_put"] == sum(sizes.values())
    assert summary["files_skipped"] == 0
    assert summary["files_failed"] == 0
    assert summary["failures"] == []
    assert summary["batches"] == DIRS
    assert summary["batches_missing"] == 0
    assert summary["files_planned"] == len(sizes)

    # What users see in the log view: a progress line and a summary per batch, the run's table.
    put_log = live_airflow.log(run_id, "upload.put", map_index=1)
    assert "progress: 150/150 files (150 put, 0 skipped, 0 failed)" in put_log, put_log
    assert "files/s" in put_log
    assert "batch 1 summary" in put_log
    reduce_log = live_airflow.log(run_id, "upload.reduce")
    assert "s3pput summary" in reduce_log, reduce_log
    assert "files put" in reduce_log and "600" in reduce_log
    assert "4 planned, 0 missing" in reduce_log

    # Again in update mode, as one batch: every file is skipped as unchanged, nothing is put.
    rerun = live_airflow.trigger({**conf, "batch_size": 1000})
    assert rerun.status_code == 200, rerun.text
    rerun_id = rerun.json()["dag_run_id"]
    assert live_airflow.wait_for_run(rerun_id)["state"] == "success"
    again = live_airflow.xcom(rerun_id, "upload.reduce")
    assert (again["files_put"], again["files_skipped"], again["files_failed"]) == (0, len(sizes), 0)
    assert (again["batches"], again["batches_missing"]) == (1, 0)


@pytest.mark.parametrize(
    ("conf", "names"),
    [
        pytest.param({"put_mode": "nope"}, ["put_mode", "nope"], id="mode-not-in-enum"),
        pytest.param({"batch_size": "abc"}, ["batch_size", "abc"], id="batch-size-not-integer"),
        pytest.param({"batch_size": 0}, ["batch_size"], id="batch-size-below-minimum"),
        pytest.param({"bucket": ""}, ["bucket"], id="bucket-empty"),
        pytest.param({"headers": "Cache-Control:x"}, ["headers"], id="headers-not-a-list"),
    ],
)
def test_invalid_params_are_refused(
    live_airflow: LiveAirflow, tmp_path: Path, conf: dict[str, Any], names: list[str]
) -> None:
    before = live_airflow.api("GET", "/dags/s3pput_upload/dagRuns", params={"limit": 1})["total_entries"]
    response = live_airflow.trigger({"source": str(tmp_path), "bucket": "whatever", **conf})
    assert response.status_code in (400, 422), response.text
    detail = str(response.json()["detail"])
    for name in names:
        assert name in detail, detail
    after = live_airflow.api("GET", "/dags/s3pput_upload/dagRuns", params={"limit": 1})["total_entries"]
    assert after == before, "a refused trigger must not create a run"


def test_failing_files_fail_the_run_and_show_in_the_reduce_log(
    live_airflow: LiveAirflow, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(5):
        (source / f"ok-{i}.txt").write_text(f"fine {i}\n")
    (source / "dangling-link").symlink_to(tmp_path / "does-not-exist")
    os.mkfifo(source / "named-pipe")

    conf = {"source": str(source), "bucket": bucket, "prefix": "bad", "batch_size": 3}
    response = live_airflow.trigger(conf)
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]

    run = live_airflow.wait_for_run(run_id)
    states = live_airflow.task_states(run_id)
    assert run["state"] == "failed", states
    assert states[("upload.plan", -1)] == "success"
    assert states[("upload.reduce", -1)] == "failed"
    put_states = sorted(str(state) for (task, _), state in states.items() if task == "upload.put")
    assert "failed" in put_states and "success" in put_states, put_states

    # The failed batch keeps its key-range name, and its log names each bad file as it fails.
    tis = {ti["map_index"]: ti for ti in live_airflow.task_instances(run_id) if ti["task_id"] == "upload.put"}
    assert tis[0]["state"] == "failed"
    assert tis[0]["rendered_map_index"] == "bad/dangling-link .. bad/ok-0.txt (3 files)"
    assert tis[0]["try_number"] == 1  # a broken symlink and a FIFO stay so: no retry is spent on them
    put_log = live_airflow.log(run_id, "upload.put", map_index=0)
    assert f"failed {source / 'dangling-link'} -> bad/dangling-link: broken symlink" in put_log, put_log
    assert "AirflowFailException: s3pput: 2 of the batch's 3 files failed, for reasons no retry" in put_log

    # The good files landed all the same: one bad path never stops the others.
    assert sorted(list_keys(s3_client, bucket)) == [f"bad/ok-{i}.txt" for i in range(5)]

    # The failed batches reported their stats, and the reduce log names each bad file.
    reduce_log = live_airflow.log(run_id, "upload.reduce")
    assert "FAILED bad/dangling-link: broken symlink" in reduce_log, reduce_log
    assert "FAILED bad/named-pipe: not a regular file" in reduce_log, reduce_log
    assert (
        "s3pput: 2 files failed: batch 0 (bad/dangling-link .. bad/ok-0.txt (3 files)): "
        "2 of the batch's 3 files failed" in reduce_log
    ), reduce_log
    assert "XCom not found" not in live_airflow.log(run_id, "upload.reduce")


def test_listens_on_loopback_only(live_airflow: LiveAirflow) -> None:
    """The api-server is the only listener, on 127.0.0.1; no log server on all interfaces."""
    from airflow_s3pput.testing.live_airflow import listening_sockets

    sockets = listening_sockets(live_airflow.home, live_airflow.mark)
    port = int(live_airflow.base_url.rsplit(":", 1)[1])
    assert sockets, "found no listening socket at all: the check is broken"
    assert {(address, p) for _, address, p in sockets} == {("127.0.0.1", port)}, sockets

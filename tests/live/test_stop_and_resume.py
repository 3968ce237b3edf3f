"""A put task stopped mid-file, through a live Airflow (LocalExecutor): "mark failed" stops its
upload within seconds and leaves no multipart upload open; a task process killed (as on a lost
worker) is retried, and the retry carries on the large file from the parts that landed."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.live_airflow import LiveAirflow
from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.faults.proxy import Fault, FaultProxy
from tests.live.test_recovery import task_process, wait_for

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
PART = 8 * MIB  # the default part size
CONNECTION = "s3pput_held"
DAG = "s3pput_upload"


def part_number(request: Any) -> int:
    return int(request.query.get("partNumber", ["0"])[0])


def hold_parts_from(proxy: FaultProxy, first: int, seconds: float) -> None:
    """Parts before ``first`` land at once; from it on, each answer is held ``seconds`` (the
    server has stored the part by then: only the client waits)."""
    proxy.set_rules([Fault("delay", seconds=seconds, match=lambda r: part_number(r) >= first)])


@pytest.fixture
def held_parts(live_airflow: LiveAirflow, s3_server: LocalS3Server) -> Iterator[FaultProxy]:
    """A recording proxy in front of SeaweedFS, as a connection (``hold_parts_from`` sets it)."""
    with FaultProxy(upstream=("127.0.0.1", s3_server.port), record=True) as proxy:
        extra = {"endpoint_url": proxy.endpoint_url, "region_name": "us-east-1"}
        body = {"connection_id": CONNECTION, "conn_type": "aws", "login": s3_server.access_key,
                "password": s3_server.secret_key, "extra": json.dumps(extra)}  # fmt: skip
        live_airflow.api("POST", "/connections", json=body)
        try:
            yield proxy
        finally:
            live_airflow.request("DELETE", f"/api/v2/connections/{CONNECTION}")


def big_source(tmp_path: Path, parts: int = 8) -> tuple[Path, bytes]:
    source = tmp_path / "src"
    source.mkdir()
    body = b"".join(os.urandom(64 * 1024) * (PART // (64 * 1024)) for _ in range(parts))  # parts differ
    (source / "big.bin").write_bytes(body)
    return source, body


def parts_landed(proxy: FaultProxy) -> int:
    return sum(1 for r in proxy.recorded if "partNumber" in r.query and r.status == 200)


def running_put(live: LiveAirflow, run_id: str) -> dict[str, Any] | None:
    tis = [ti for ti in live.task_instances(run_id) if ti["task_id"] == "upload.put"]
    return tis[0] if tis and tis[0]["state"] == "running" else None


def open_uploads(client: Any, bucket: str, prefix: str) -> list[str]:
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])]


@pytest.mark.timeout(300)
def test_mark_failed_stops_the_put_and_aborts_its_upload(
    live_airflow: LiveAirflow, held_parts: FaultProxy, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    live, proxy = live_airflow, held_parts
    source, _ = big_source(tmp_path, parts=32)
    hold_parts_from(proxy, 3, seconds=6.0)  # a wave of 8 parts every 6 s: far from all 32
    conf = {"source": str(source), "bucket": bucket, "prefix": "held", "aws_conn_id": CONNECTION}
    run_id = live.trigger_run(conf)
    ti = wait_for("the put task never ran", lambda: running_put(live, run_id))
    wait_for("no part landed", lambda: parts_landed(proxy) >= 2)
    process = wait_for("no process runs the put task", lambda: task_process(live, ti["id"]))
    response = live.request(
        "PATCH",
        f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/upload.put/{ti['map_index']}",
        json={"new_state": "failed"},
    )
    assert response.status_code == 200, response.text
    marked = time.monotonic()
    wait_for("the task process outlived its stop", lambda: not process.is_running(), timeout=60)
    stopped_in = time.monotonic() - marked
    wait_for("the multipart upload was left open", lambda: not open_uploads(s3_client, bucket, "held/"), 30)
    sent = sum(1 for r in proxy.recorded if "partNumber" in r.query)
    print(f"\nmarked failed: the put stopped {stopped_in:.1f}s later, {sent} of 32 parts sent")
    assert sent < 32  # stopped, not waited out
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="held/").get("Contents", [])
    assert [o["Key"] for o in listed] == []
    run = live.wait_for_run(run_id, timeout=120)
    assert run["state"] == "failed"


@pytest.mark.timeout(400)
def test_a_killed_put_task_resumes_its_large_file_on_retry(
    live_airflow: LiveAirflow, held_parts: FaultProxy, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    live, proxy = live_airflow, held_parts
    source, body = big_source(tmp_path, parts=8)
    # Parts 1-4 land; 5-8 are refused (503, not stored) until the task has been killed.
    proxy.set_rules([Fault("error", status=503, match=lambda r: part_number(r) >= 5)])
    conf = {"source": str(source), "bucket": bucket, "prefix": "resumed", "aws_conn_id": CONNECTION}
    run_id = live.trigger_run(conf)
    ti = wait_for("the put task never ran", lambda: running_put(live, run_id))
    wait_for("half the parts never landed", lambda: parts_landed(proxy) >= 4, timeout=120)
    wait_for("the other parts were never tried", lambda: proxy.stats["faults"].get("error", 0) >= 4)
    process = wait_for("no process runs the put task", lambda: task_process(live, ti["id"]))
    os.kill(process.pid, signal.SIGKILL)  # the task dies mid-file, as on a lost worker
    landed_before = parts_landed(proxy)
    proxy.clear()
    before = len(proxy.recorded)
    run = live.wait_for_run(run_id, timeout=300)
    assert run["state"] == "success", live.task_states(run_id)
    (put,) = [t for t in live.task_instances(run_id) if t["task_id"] == "upload.put"]
    assert put["try_number"] == 2, put
    sent = sum(r.body_size or 0 for r in proxy.recorded[before:] if "partNumber" in r.query)
    print(f"\nkilled with {landed_before} of 8 parts landed: the retry sent {sent // MIB} MiB of 64")
    assert landed_before == 4
    assert sent <= (8 - landed_before + 2) * PART  # the missing parts, and those on the wire
    assert sent <= 0.6 * len(body)
    summary = live.xcom(run_id, "upload.reduce")
    assert summary["bytes_resumed"] >= (landed_before - 2) * PART, summary
    assert s3_client.get_object(Bucket=bucket, Key="resumed/big.bin")["Body"].read() == body
    assert open_uploads(s3_client, bucket, "resumed/") == []

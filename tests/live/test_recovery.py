"""A put task lost mid-batch costs a retry, not the run: the example DAG's retries at work.

Through a live Airflow (LocalExecutor): the batch's task process is killed (SIGKILL, by its pid)
while its PUTs are held by a slow proxy; the supervisor reports the try failed, Airflow retries
it after the DAG's ``retry_delay`` and the retry completes the batch, skipping what landed.
A worker host that disappears is found later, after ``[scheduler]
task_instance_heartbeat_timeout`` (300 s by default); the README says how to shorten both.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from airflow_s3pput.testing.live_airflow import LiveAirflow, our_processes
from airflow_s3pput.testing.local_airflow import EXAMPLE_DAGS
from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.faults.proxy import Fault, FaultProxy
from tests.helpers import list_keys

pytestmark = pytest.mark.slow

CONNECTION = "s3pput_slow"


def retry_delay() -> float:
    """The example DAG's ``RETRY_DELAY``, in seconds."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("s3pput_upload_example", EXAMPLE_DAGS / "s3pput_upload.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return float(module.RETRY_DELAY.total_seconds())


def task_process(live: LiveAirflow, ti_id: str) -> psutil.Process | None:
    """The process running task instance ``ti_id`` (Airflow titles it ``airflow worker -- ID``)."""
    for proc in our_processes(live.home, live.mark):
        try:
            if f"airflow worker -- {ti_id}" in " ".join(proc.cmdline()):
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def wait_for(what: str, check: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.3)
    return found


@pytest.mark.timeout(400)
def test_a_killed_put_task_is_retried_and_completes_the_batch(
    live_airflow: LiveAirflow, s3_server: LocalS3Server, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    live = live_airflow
    source = tmp_path / "src"
    source.mkdir()
    for i in range(4):
        (source / f"part-{i}.csv").write_text(f"{i},{i * i}\n")
    with FaultProxy(upstream=("127.0.0.1", s3_server.port)) as proxy:
        proxy.set_rules([Fault("delay", seconds=5, method="PUT", key="slow/*")])
        extra = {"endpoint_url": proxy.endpoint_url, "region_name": "us-east-1"}
        body = {"connection_id": CONNECTION, "conn_type": "aws", "login": s3_server.access_key,
                "password": s3_server.secret_key, "extra": json.dumps(extra)}  # fmt: skip
        live.api("POST", "/connections", json=body)
        try:
            conf = {"source": str(source), "bucket": bucket, "prefix": "slow", "aws_conn_id": CONNECTION}
            response = live.trigger(conf)
            assert response.status_code == 200, response.text
            run_id = response.json()["dag_run_id"]

            def running_put() -> dict[str, Any] | None:
                tis = [ti for ti in live.task_instances(run_id) if ti["task_id"] == "upload.put"]
                return tis[0] if tis and tis[0]["state"] == "running" else None

            ti = wait_for("the put task never ran", running_put)
            wait_for("no PUT reached the proxy", lambda: proxy.stats["faults"].get("delay", 0) >= 1)
            process = wait_for("no process runs the put task", lambda: task_process(live, ti["id"]))
            os.kill(process.pid, signal.SIGKILL)  # the task dies mid-PUT, as on a lost worker
            killed = time.monotonic()

            run = live.wait_for_run(run_id, timeout=240)
            recovered = time.monotonic() - killed
        finally:
            live.request("DELETE", f"/api/v2/connections/{CONNECTION}")
    states = live.task_states(run_id)
    assert run["state"] == "success", states
    (put,) = [t for t in live.task_instances(run_id) if t["task_id"] == "upload.put"]
    assert put["try_number"] == 2, put  # the killed try, then the retry that finished the batch
    delay = retry_delay()
    print(f"\nkilled put task: the run succeeded {recovered:.1f}s later (retry_delay {delay:.0f}s)")
    assert recovered >= delay  # the retry waited out the delay: it is the retry that finished
    assert sorted(list_keys(s3_client, bucket, "slow/")) == [f"slow/part-{i}.csv" for i in range(4)]
    summary = live.xcom(run_id, "upload.reduce")
    assert summary["files_failed"] == 0 and summary["batches_missing"] == 0
    assert summary["files_planned"] == 4

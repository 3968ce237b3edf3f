"""A put cleared over the REST API (one map index, with the reduce downstream of it) runs again in
the same run: the files it had landed count as put by this run, not as skipped."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.live_airflow import LiveAirflow
from tests.helpers import list_keys, make_tree

pytestmark = pytest.mark.slow


def test_a_cleared_put_counts_the_files_it_had_landed_as_put(
    live_airflow: LiveAirflow, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    live = live_airflow
    source = make_tree(tmp_path / "src", {f"f{i:02d}.txt": f"file {i}\n" for i in range(9)})
    conf = {"source": str(source), "bucket": bucket, "prefix": "cleared/", "batch_size": 3}
    run_id = live.trigger_run(conf)
    assert live.wait_for_run(run_id)["state"] == "success"
    assert live.xcom(run_id, "upload.reduce")["files_put"] == 9

    body = {
        "dry_run": False,
        "dag_run_id": run_id,
        "task_ids": [["upload.put", 1]],
        "only_failed": False,
        "include_downstream": True,
        "reset_dag_runs": True,
    }
    cleared = live.api("POST", f"/dags/{live.dag_id}/clearTaskInstances", json=body)
    assert {(ti["task_id"], ti["map_index"]) for ti in cleared["task_instances"]} == {
        ("upload.put", 1),
        ("upload.reduce", -1),
    }
    deadline = time.monotonic() + 60
    while max(t["try_number"] for t in live.task_tries(run_id, "upload.put", map_index=1)) < 2:
        assert time.monotonic() < deadline, live.task_states(run_id)
        time.sleep(0.5)
    assert live.wait_for_run(run_id)["state"] == "success"

    # The cleared batch found its three files landed since the plan: put by this run.
    summary = live.xcom(run_id, "upload.reduce")
    assert (summary["files_put"], summary["files_skipped"]) == (9, 0), summary
    assert summary["put_reasons"] == {"new": 6, "earlier try": 3}
    assert len(list_keys(s3_client, bucket, "cleared/")) == 9

"""A mapped put task that fails once is retried by Airflow and completes its batch idempotently."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_airflow import airflow_env, dags_test, read_xcoms, task_states
from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.faults.proxy import Fault, FaultProxy
from tests.helpers import list_keys, make_tree

DAG_ID = "s3pput_retry"
RETRY_DAG = f'''
from datetime import timedelta

from airflow.sdk import DAG

from airflow_s3pput.provider import s3pput_task_group

with DAG(dag_id="{DAG_ID}", schedule=None, catchup=False, render_template_as_native_obj=True) as dag:
    s3pput_task_group(
        group_id="upload",
        source="{{{{ dag_run.conf['source'] }}}}",
        bucket="{{{{ dag_run.conf['bucket'] }}}}",
        prefix="r",
        batch_size=5,
        put_kwargs={{"retries": 1, "retry_delay": timedelta(0)}},
    )
'''


def try_numbers(home: Path, task_id: str) -> dict[int, int]:
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute(
            "SELECT map_index, try_number FROM task_instance WHERE dag_id = ? AND task_id = ?",
            (DAG_ID, task_id),
        ).fetchall()
    return dict(rows)


@pytest.mark.timeout(300)
def test_a_batch_that_fails_once_is_completed_by_its_retry(
    airflow_home: Path, s3_server: LocalS3Server, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    files = {f"f{i:04d}.txt": f"file {i}\n".encode() * (i + 1) for i in range(12)}
    source = make_tree(tmp_path / "src", files)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "s3pput_retry.py").write_text(RETRY_DAG)
    with FaultProxy(upstream=("127.0.0.1", s3_server.port)) as proxy:
        # The first PUT of f0006 is refused for good (403 is not retried): batch 1 (f0005..f0009)
        # fails its first try with f0005 and f0007..f0009 stored, and its retry puts f0006 alone.
        proxy.set_rules([Fault("error", status=403, method="PUT", key="r/f0006.txt", count=1)])
        connection = {
            "conn_type": "aws",
            "login": s3_server.access_key,
            "password": s3_server.secret_key,
            "extra": {"endpoint_url": proxy.endpoint_url, "region_name": "us-east-1"},
        }
        env = airflow_env(
            airflow_home,
            s3_server,
            dags_folder=dags,
            extra={"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection)},
        )
        log = tmp_path / f"dag-{uuid.uuid4().hex[:8]}.log"
        code = dags_test(env, DAG_ID, {"source": str(source), "bucket": bucket}, log)
        fired = proxy.stats["faults"]["error"]
    text = log.read_text(errors="replace")
    assert fired == 1, text[-3000:]
    assert code == 0, text[-3000:]
    states = task_states(airflow_home, DAG_ID)
    assert {s for (t, _), s in states.items() if t == "upload.put"} == {"success"}
    assert try_numbers(airflow_home, "upload.put") == {0: 1, 1: 2, 2: 1}
    assert f"failed {source / 'f0006.txt'} -> r/f0006.txt: AccessDenied" in text
    assert "may land when the batch is retried" in text  # a server's refusal: worth a retry

    summary = read_xcoms(airflow_home, DAG_ID, "upload.reduce")[0]
    # Batch 1 reports its successful try: f0006 put, its four neighbours skipped as unchanged.
    assert summary["files_failed"] == 0 and summary["batches_missing"] == 0
    assert summary["files_put"] == 12 - 4 and summary["skipped"] == {"unchanged": 4}
    assert summary["files_planned"] == 12
    stored = list_keys(s3_client, bucket, "r/")
    assert {k: v["ETag"].strip('"') for k, v in stored.items()} == {
        f"r/{name}": hashlib.md5(body).hexdigest() for name, body in files.items()
    }
    # The connection's secret never reaches the task logs or XComs.
    xcoms = [read_xcoms(airflow_home, DAG_ID, t, k) for t in ("upload.plan", "upload.put", "upload.reduce")
             for k in ("return_value", "s3pput_report")]  # fmt: skip
    assert s3_server.secret_key not in text + json.dumps(xcoms)
    logs = "".join(p.read_text(errors="replace") for p in (airflow_home / "logs").rglob("*") if p.is_file())
    assert s3_server.secret_key not in logs

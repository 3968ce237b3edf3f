"""A mapped put task that fails once is retried by Airflow and completes its batch idempotently,
and the run's summary counts every file the run landed, whichever try put it; a put stopped by its
``execution_timeout`` reports the files it got to."""

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
from tests.helpers import DagRunResult, RunDag, list_keys, make_tree

DAG_ID = "s3pput_retry"
RETRY_DAG = f'''
from datetime import timedelta

from airflow.sdk import DAG, Asset

from airflow_s3pput.provider import s3pput_task_group

with DAG(dag_id="{DAG_ID}", schedule=None, catchup=False, render_template_as_native_obj=True) as dag:
    s3pput_task_group(
        group_id="upload",
        source="{{{{ dag_run.conf['source'] }}}}",
        bucket="{{{{ dag_run.conf['bucket'] }}}}",
        prefix="r",
        batch_size=5,
        put_kwargs={{"retries": 1, "retry_delay": timedelta(0)}},
        outlets=[Asset("s3://retried/r")],
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
    # Batch 1 reports its successful try: f0006 put, and its four neighbours, which the failed
    # try landed, counted as put by that earlier try (not "skipped: unchanged").
    assert summary["files_failed"] == 0 and summary["batches_missing"] == 0
    assert summary["files_put"] == 12 and summary["skipped"] == {}
    assert summary["put_reasons"] == {"new": 12 - 4, "earlier try": 4}
    assert summary["files_planned"] == 12
    assert "files put      12 (4 by an earlier try)" in text
    # The asset event says what the run landed.
    result = DagRunResult(DAG_ID, code, text, states, airflow_home)
    ((asset, extra),) = [(e["asset"], e["extra"]) for e in result.asset_events()]
    assert asset == "s3://retried/r"
    assert (extra["files_put"], extra["files_skipped"]) == (12, 0)
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


TIMEOUT_DAG_ID = "s3pput_put_timeout"
TIMEOUT_DAG = f'''
from datetime import timedelta

from airflow.sdk import DAG

from airflow_s3pput.provider import s3pput_task_group

with DAG(dag_id="{TIMEOUT_DAG_ID}", schedule=None, catchup=False, render_template_as_native_obj=True) as dag:
    s3pput_task_group(
        group_id="upload",
        source="{{{{ dag_run.conf['source'] }}}}",
        bucket="{{{{ dag_run.conf['bucket'] }}}}",
        prefix="t",
        batch_size=100,
        put_kwargs={{"execution_timeout": timedelta(seconds=4)}},
    )
'''


@pytest.mark.timeout(300)
def test_a_put_stopped_by_its_execution_timeout_reports_the_files_it_put(
    run_dag: RunDag, s3_server: LocalS3Server, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    files = {f"f{i:04d}.txt": f"file {i}\n".encode() for i in range(21)}
    source = make_tree(tmp_path / "src", files)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "s3pput_put_timeout.py").write_text(TIMEOUT_DAG)
    with FaultProxy(upstream=("127.0.0.1", s3_server.port)) as proxy:
        # The server stores f0010 at once but its answer comes after the put's 4 s timeout: the
        # timeout fires while that PUT is on the wire, with the other 20 files landed.
        proxy.set_rules([Fault("delay", seconds=10, method="PUT", key="t/f0010.txt", count=1)])
        connection = {
            "conn_type": "aws",
            "login": s3_server.access_key,
            "password": s3_server.secret_key,
            "extra": {"endpoint_url": proxy.endpoint_url, "region_name": "us-east-1"},
        }
        result = run_dag(
            TIMEOUT_DAG_ID,
            {"source": str(source), "bucket": bucket},
            env={"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection)},
            dags_folder=dags,
        )
        delayed = proxy.stats["faults"]["delay"]
    text = result.log
    assert delayed == 1, text[-3000:]
    assert result.exit_code != 0
    assert result.states[("upload.put", 0)] == "failed", result.states
    assert "AirflowTaskTimeout" in text
    assert len(list_keys(s3_client, bucket, "t/")) == 21

    (report,) = result.xcoms("upload.put", "s3pput_report")
    assert report["stopped"] is True and report["error"].startswith("AirflowTaskTimeout")
    # Every file landed: a stop lets what is on the wire finish (engine._Run.feed), so f0010 too.
    assert (report["stats"]["files_put"], report["stats"]["files_failed"]) == (21, 0)
    (summary,) = result.xcoms("upload.reduce", "s3pput_summary")
    assert summary["files_put"] == report["stats"]["files_put"]
    assert (summary["batches_missing"], summary["batches_stopped"]) == (0, 1)
    assert summary["warnings"] == []  # no "SOURCE changed" for the files it never reached
    ((index, error),) = [(e["batch"], e["error"]) for e in summary["batch_errors"]]
    assert index == 0 and error.startswith("AirflowTaskTimeout")
    assert "did not report" not in text
    assert result.asset_events() == []

"""The small tree through the example DAG ``s3pput_upload``, against the bare CLI on the same tree.

Two ways to run the DAG:

* ``airflow dags test`` (in-process, tasks one after another): the wall time of the command,
  Airflow's own start-up included, as a user would see it;
* a real Airflow: api-server, scheduler (LocalExecutor, mapped put tasks in parallel),
  dag-processor and triggerer, the components ``airflow standalone`` runs, started one by one
  in process groups of their own. The DAG run is triggered through the REST API as the UI's
  form does; its wall time is from the POST to the API reporting the run finished, and the
  task instances' own durations show where it went.

Each DAG run writes to a fresh prefix and is verified like the CLI runs: the reduce task's summary
and the object count under the prefix. Airflow's start-up and ``db migrate`` are not counted.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_s3pput.testing.live_airflow import AirflowAPIError, LiveAirflow
from airflow_s3pput.testing.local_airflow import LocalAirflow
from airflow_s3pput.testing.local_s3 import LocalS3Server
from benchmarks.measure import run_measured
from benchmarks.tools import client_env, s3pput_argv
from benchmarks.verify import list_prefix

DAG_ID = "s3pput_upload"
REDUCE = "upload.reduce"
PUT = "upload.put"
PARALLELISM = 4
STARTUP_TIMEOUT = 180.0
RUN_TIMEOUT = 600.0
#: the example DAG's default batch size (``operators.DEFAULT_BATCH_FILES``; not imported here:
#: that would import Airflow into the benchmark's own process)
DEFAULT_BATCH = 10_000
#: batch sizes tried under the scheduler (files per mapped put task); the default comes again
#: last: the first DAG run of a fresh Airflow pays cold-start costs
BATCH_SIZES = (DEFAULT_BATCH, 1000, 2500, DEFAULT_BATCH)
USERNAME = "bench"


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _verify(
    client: Any, bucket: str, prefix: str, files: int, summary: dict[str, Any] | None
) -> tuple[bool, str]:
    objects = list_prefix(client, bucket, prefix).objects
    if objects != files:
        return False, f"{objects} objects under the prefix, expected {files}"
    if not summary:
        return False, "no summary from the reduce task"
    if summary.get("files_failed"):
        return False, f"{summary['files_failed']} files failed"
    if summary.get("files_put", 0) + summary.get("files_skipped", 0) != files:
        return (
            False,
            f"summary counts {summary.get('files_put')} put + {summary.get('files_skipped')} skipped",
        )
    return True, ""


def run(
    s3: LocalS3Server,
    bucket: str,
    tree: Any,
    workdir: Path,
    client: Any,
    *,
    standalone: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    result: dict[str, Any] = {"dags_test": [], "standalone": [], "notes": []}
    home = workdir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        airflow = LocalAirflow.prepare(s3, home, username=USERNAME, parallelism=PARALLELISM)
    except RuntimeError as exc:
        result["error"] = str(exc)
        return result
    result["migrate_seconds"] = time.monotonic() - started

    cli_env = client_env(s3.env())
    cli_walls: list[float] = []

    def bare_cli(n: int) -> None:
        prefix = f"airflow-cli/{n}"
        m = run_measured(
            s3pput_argv(s3.endpoint_url)(tree.root, bucket, prefix), cli_env, timeout=RUN_TIMEOUT
        )
        ok = m.ok and list_prefix(client, bucket, prefix).objects == tree.files
        log(f"  [airflow] bare CLI             {m.wall:7.2f}s wall {'ok' if ok else 'FAILED'}")
        if ok:
            cli_walls.append(m.wall)

    bare_cli(0)
    # -- airflow dags test ------------------------------------------------------------------
    prefix = "airflow-dags-test/0"
    conf: dict[str, Any] = {"source": str(tree.root), "bucket": bucket, "prefix": prefix}
    argv = [str(Path(sys.executable).parent / "airflow"), "dags", "test", DAG_ID, "-c", json.dumps(conf)]
    m = run_measured(argv, airflow.env, timeout=RUN_TIMEOUT)
    (home / "dags-test.log").write_text(m.stdout_tail + "\n" + m.stderr_tail)
    from airflow_s3pput.testing.local_airflow import read_xcoms, task_states

    summaries = read_xcoms(home, DAG_ID, REDUCE)
    ok, why = _verify(client, bucket, prefix, tree.files, summaries[0] if summaries else None)
    ok = ok and m.ok
    puts = [s for (task, _), s in task_states(home, DAG_ID).items() if task == PUT]
    record: dict[str, Any] = {
        "label": f"batch_size {DEFAULT_BATCH} (default)",
        "wall": m.wall,
        "cpu": m.cpu,
        "verified": ok,
        "error": why or (f"exit {m.returncode}" if not m.ok else ""),
        "put_tasks": len(puts),
    }
    result["dags_test"].append(record)
    log(
        f"  [airflow] dags test            {m.wall:7.2f}s wall {'ok' if ok else 'FAILED: ' + record['error']}"
    )
    bare_cli(1)

    # -- a real scheduler -------------------------------------------------------------------
    if standalone:
        leftovers: list[str] = []
        try:
            with airflow.running(startup_timeout=STARTUP_TIMEOUT, leftovers=leftovers) as live:
                result["standalone_ready_seconds"] = live.startup_seconds
                log(f"  [airflow] scheduler ready in {live.startup_seconds:.1f}s")
                for n, batch_size in enumerate(BATCH_SIZES):
                    prefix = f"airflow-scheduler/{n}"
                    conf = {
                        "source": str(tree.root),
                        "bucket": bucket,
                        "prefix": prefix,
                        "batch_size": batch_size,
                    }
                    label = f"batch_size {batch_size}" + (" (default)" if batch_size == DEFAULT_BATCH else "")
                    if batch_size in BATCH_SIZES[:n]:
                        label += ", again"
                    result["standalone"].append(
                        _scheduled_run(live, client, bucket, prefix, tree.files, conf, label, log)
                    )
                bare_cli(2)
        except Exception as exc:  # noqa: BLE001 - reported in the table, the rest of the bench goes on
            result["error"] = f"scheduler run failed: {type(exc).__name__}: {exc} (logs were in {home})"
            log(f"  [airflow] {result['error']}")
        if leftovers:
            log(f"  [airflow] WARNING: Airflow processes outlived their groups (killed): {leftovers}")
    result["cli_walls"] = cli_walls
    result["cli_wall"] = statistics.median(cli_walls) if cli_walls else None
    result["notes"].append(
        f"Scheduler settings: LocalExecutor, parallelism {PARALLELISM}, SQLite; each mapped put task "
        "runs the engine with the operator's defaults in its own task process."
    )
    return result


def _scheduled_run(
    live: LiveAirflow,
    client: Any,
    bucket: str,
    prefix: str,
    files: int,
    conf: dict[str, Any],
    label: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    started = time.monotonic()
    run_id = live.trigger_run(conf, DAG_ID)
    try:
        run = live.wait_for_run(run_id, timeout=RUN_TIMEOUT, dag_id=DAG_ID, poll=0.25)
    except AirflowAPIError:  # still running at the deadline: recorded as it is, not verified
        run = live.run(run_id, DAG_ID)
    wall = time.monotonic() - started
    durations: dict[str, Any] = {}
    for ti in live.task_instances(run_id, DAG_ID):
        durations.setdefault(ti["task_id"], []).append(
            _seconds(ti.get("start_date"), ti.get("end_date")) or 0.0
        )
    summary = None
    with contextlib.suppress(Exception):  # no summary: reported below
        summary = live.xcom(run_id, REDUCE, dag_id=DAG_ID)
    ok, why = _verify(client, bucket, prefix, files, summary)
    ok = ok and run["state"] == "success"
    record = {
        "label": label,
        "wall": wall,
        "state": run["state"],
        "dag_run_seconds": _seconds(run.get("start_date"), run.get("end_date")),
        "queued_seconds": _seconds(run.get("queued_at"), run.get("start_date")),
        "plan_seconds": (durations.get("upload.plan") or [None])[0],
        "reduce_seconds": (durations.get(REDUCE) or [None])[0],
        "put_durations": durations.get(PUT, []),
        "verified": ok,
        "error": why or ("" if run["state"] == "success" else f"run {run['state']}"),
    }
    puts = record["put_durations"]
    log(
        f"  [airflow] scheduler {label:<26} {wall:7.2f}s wall, run {record['dag_run_seconds'] or 0:.1f}s, "
        f"plan {record['plan_seconds'] or 0:.1f}s, {len(puts)} puts {min(puts, default=0):.1f}-{max(puts, default=0):.1f}s, "
        f"reduce {record['reduce_seconds'] or 0:.1f}s {'ok' if ok else 'FAILED: ' + record['error']}"
    )
    return record

"""Scale: s3pput at 100,000 and 1,000,000 files, from the CLI and through Airflow.

Three parts, each runnable alone (``run.py --only scale --scale-parts cli``), so that no single
command runs for long; their results accumulate in ``.bench/scale-latest.json`` and become the
"Scale" section of BENCHMARKS.md:

``cli``
    The 5,000-file tree (``workloads.make_small``) and a 100,000-file tree of the same kind
    (1-8 KiB files, 500 folders), interleaved: first upload into a fresh prefix, then the update
    re-run over it, for each tree, the 5,000-file runs ``--reps`` times around the single
    100,000-file ones. Wall, files/s, peak RSS of the process tree.
``airflow``
    The 100,000-file tree through the example DAG ``s3pput_upload`` on a real scheduler
    (LocalExecutor, 4 slots, SQLite; the DAG's default batch size, 10,000 files: 10 mapped
    puts), triggered through the REST API, against the bare CLI on the same tree just before (one
    run: at 100,000 files each takes minutes). Each task's own process is sampled for its peak RSS.
``plan``
    A 1,000,000-file tree of 64-byte files through the same DAG with ``dry_run``: the plan task's
    peak RSS (against the plan of the 100,000-file tree, when the ``airflow`` part ran), the
    total size of the run's XComs (read from Airflow's database), and the run's wall time.

The trees go to ``--scale-dir`` (kept and reused across parts when given; a temporary directory,
deleted at the end, otherwise). Every upload is verified by listing its prefix.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from airflow_s3pput.testing.live_airflow import MARKER, LiveAirflow, running_airflow
from airflow_s3pput.testing.local_airflow import live_airflow_env, migrate
from airflow_s3pput.testing.local_s3 import LocalS3Server, LoopbackS3, free_port
from benchmarks import workloads
from benchmarks.measure import run_measured
from benchmarks.tools import client_env, s3pput_argv
from benchmarks.verify import list_prefix

PARTS = ("cli", "airflow", "plan")
SCALE_FILES = 100_000
REFERENCE_FILES = 5_000
PLAN_FILES = 1_000_000
PARALLELISM = 4
RUN_TIMEOUT = 900.0
DAG_ID = "s3pput_upload"
#: the issue's targets
RSS_LIMIT = 100 * workloads.MIB
RATE_TOLERANCE = 0.15
AIRFLOW_LIMIT = 1.25
XCOM_LIMIT = 100_000

Log = Callable[[str], None]


# -- trees ------------------------------------------------------------------------------------


def _tree(base: Path, name: str, files: int, make: Callable[[Path], int], log: Log) -> workloads.Tree:
    """``base/name`` made by ``make(root) -> bytes``, or reused when a finished one is there."""
    root = base / name
    manifest = base / f"{name}.json"
    if manifest.exists() and root.is_dir():
        made = json.loads(manifest.read_text())
        if made.get("files") == files:
            log(f"  reusing {name}: {files:,} files at {root}")
            return workloads.Tree(name, root, files, int(made["bytes"]))
    shutil.rmtree(root, ignore_errors=True)
    started = time.monotonic()
    size = make(root)
    manifest.write_text(json.dumps({"files": files, "bytes": size}))
    took = time.monotonic() - started
    log(f"  generated {name}: {files:,} files, {size / workloads.MIB:,.1f} MiB in {took:.0f}s")
    return workloads.Tree(name, root, files, size)


def small_tree(base: Path, files: int, log: Log) -> workloads.Tree:
    return _tree(
        base, f"small-{files}", files, lambda root: workloads.write_small_files(root, files, seed=1), log
    )


def tiny_tree(base: Path, files: int, log: Log) -> workloads.Tree:
    # make_tiny_files writes base/tiny-N, the directory _tree expects
    return _tree(base, f"tiny-{files}", files, lambda root: workloads.make_tiny_files(base, files).bytes, log)


# -- the CLI ------------------------------------------------------------------------------------


def _cli_run(
    s3: LoopbackS3, client: Any, bucket: str, tree: workloads.Tree, prefix: str, kind: str
) -> dict[str, Any]:
    m = run_measured(
        s3pput_argv(s3.endpoint_url)(tree.root, bucket, prefix), client_env(s3.env()), timeout=RUN_TIMEOUT
    )
    listing = list_prefix(client, bucket, prefix)
    return {
        "tree": tree.files,
        "kind": kind,
        "prefix": prefix,
        "wall": m.wall,
        "cpu": m.cpu,
        "peak_rss_tree": m.peak_rss_tree,
        "files_per_second": tree.files / m.wall if m.wall else None,
        "verified": m.ok and listing.objects == tree.files and listing.bytes == tree.bytes,
        "returncode": m.returncode,
        "stderr_tail": m.stderr_tail[-500:],
    }


def _log_cli(log: Log, run: dict[str, Any]) -> None:
    log(
        f"  [scale cli] {run['tree']:>7,} files {run['kind']:<6} {run['wall']:7.2f}s "
        f"{run['files_per_second']:8,.0f} files/s {run['peak_rss_tree'] / workloads.MIB:6.1f} MiB "
        f"{'ok' if run['verified'] else 'FAILED: ' + run['stderr_tail'][-200:]}"
    )


def cli_part(s3: LocalS3Server, client: Any, bucket: str, base: Path, reps: int, log: Log) -> dict[str, Any]:
    reference = small_tree(base, REFERENCE_FILES, log)
    big = small_tree(base, SCALE_FILES, log)
    subprocess.run(["sync"], check=False)
    runs: list[dict[str, Any]] = []

    def both(tree: workloads.Tree, rep: int) -> None:
        prefix = f"scale-cli/{tree.files}/r{rep}"
        for kind in ("first", "update"):
            run = _cli_run(s3, client, bucket, tree, prefix, kind)
            run["rep"] = rep
            runs.append(run)
            _log_cli(log, run)

    # 5k, 100k, 5k, 5k: the reference rate is a median of runs before and after the big one.
    both(reference, 0)
    both(big, 0)
    for rep in range(1, max(reps, 1)):
        both(reference, rep)
    return {
        "runs": runs,
        "trees": {str(t.files): {"files": t.files, "bytes": t.bytes} for t in (reference, big)},
    }


# -- Airflow ------------------------------------------------------------------------------------


class TaskMemorySampler(threading.Thread):
    """Peak RSS of each Airflow task process, by task-instance id, sampled at ~10 Hz.

    A task runs in a process titled ``airflow worker -- <ti id>`` (the task SDK's
    ``setproctitle``); its ``VmHWM`` is the process's own exact high-water mark, so a sample
    shortly before it exits holds its peak.
    """

    TITLE = "airflow worker -- "

    def __init__(self) -> None:
        super().__init__(daemon=True, name="task-memory")
        self.peaks: dict[str, int] = {}
        self.stop_event = threading.Event()

    def sample(self) -> None:
        for proc in psutil.process_iter(["cmdline"]):
            title = " ".join(proc.info.get("cmdline") or ())
            if not title.startswith(self.TITLE):
                continue
            ti_id = title[len(self.TITLE) :].split()[0] if title[len(self.TITLE) :].strip() else ""
            try:
                with open(f"/proc/{proc.pid}/status", "rb") as f:
                    for line in f:
                        if line.startswith(b"VmHWM:"):
                            hwm = int(line.split()[1]) * 1024
                            self.peaks[ti_id] = max(self.peaks.get(ti_id, 0), hwm)
                            break
            except (OSError, ValueError, IndexError):
                continue

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(0.1)


@contextlib.contextmanager
def local_airflow(s3: LocalS3Server, workdir: Path, log: Log) -> Iterator[LiveAirflow]:
    """A real scheduler with the LocalExecutor (the ``airflow standalone`` components), SQLite."""
    home = workdir / f"airflow-{uuid.uuid4().hex[:8]}"
    home.mkdir(parents=True)
    port, password, mark = free_port(), secrets.token_urlsafe(12), uuid.uuid4().hex
    env = live_airflow_env(
        home, s3, port=port, users={"bench": password}, parallelism=PARALLELISM, extra={MARKER: mark}
    )
    migrate(env, home / "migrate.log")
    leftovers: list[str] = []
    with running_airflow(
        env,
        home,
        base_url=f"http://127.0.0.1:{port}",
        username="bench",
        password=password,
        mark=mark,
        startup_timeout=180,
        leftovers=leftovers,
    ) as live:
        log(f"  Airflow (LocalExecutor, {PARALLELISM} slots) ready in {live.startup_seconds:.1f}s")
        yield live
    if leftovers:
        log(f"  WARNING: Airflow processes outlived their groups (killed): {leftovers}")


def xcom_bytes(home: Path, run_id: str) -> dict[str, int]:
    """Bytes of the run's XCom values, by task id (Airflow's SQLite database)."""
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, sum(length(CAST(value AS BLOB))) FROM xcom"
            " WHERE dag_id = ? AND run_id = ? GROUP BY task_id",
            (DAG_ID, run_id),
        ).fetchall()
    return {task_id: int(size or 0) for task_id, size in rows}


def dag_run(live: LiveAirflow, conf: dict[str, Any], sampler: TaskMemorySampler) -> dict[str, Any]:
    """Trigger a run, wait for it, and collect its tasks' durations and peak memory."""
    started = time.monotonic()
    run_id = live.trigger_run(conf)
    run = live.wait_for_run(run_id, timeout=RUN_TIMEOUT, poll=0.25)
    wall = time.monotonic() - started
    tis = live.task_instances(run_id)
    tasks: dict[str, list[dict[str, Any]]] = {}
    for ti in tis:
        tasks.setdefault(ti["task_id"], []).append(
            {
                "map_index": ti["map_index"],
                "duration": ti.get("duration"),
                "peak_rss": sampler.peaks.get(ti["id"]),
            }
        )
    summary = live.xcom(run_id, "upload.reduce") if run["state"] == "success" else None
    return {
        "run_id": run_id,
        "state": run["state"],
        "wall": wall,
        "tasks": tasks,
        "summary": summary,
        "xcom_bytes": xcom_bytes(live.home, run_id),
    }


def _peak(run: dict[str, Any], task_id: str) -> int | None:
    peaks = [t["peak_rss"] for t in run["tasks"].get(task_id, []) if t["peak_rss"]]
    return max(peaks) if peaks else None


def airflow_part(
    s3: LocalS3Server, client: Any, bucket: str, base: Path, workdir: Path, log: Log
) -> dict[str, Any]:
    tree = small_tree(base, SCALE_FILES, log)
    subprocess.run(["sync"], check=False)
    cli: list[dict[str, Any]] = []

    def bare_cli(n: int) -> None:
        run = _cli_run(s3, client, bucket, tree, f"scale-airflow-cli/{n}", "first")
        cli.append(run)
        _log_cli(log, run)

    result: dict[str, Any] = {"tree": {"files": tree.files, "bytes": tree.bytes}, "parallelism": PARALLELISM}
    sampler = TaskMemorySampler()
    sampler.start()
    try:
        with local_airflow(s3, workdir, log) as live:
            bare_cli(0)
            prefix = "scale-airflow/0"
            run = dag_run(live, {"source": str(tree.root), "bucket": bucket, "prefix": prefix}, sampler)
            listing = list_prefix(client, bucket, prefix)
            run["verified"] = (
                run["state"] == "success"
                and listing.objects == tree.files
                and bool(run["summary"])
                and run["summary"]["files_failed"] == 0
            )
            puts = run["tasks"].get("upload.put", [])
            log(
                f"  [scale airflow] {tree.files:,} files, {len(puts)} puts: {run['wall']:.1f}s wall, "
                f"plan peak {(_peak(run, 'upload.plan') or 0) / workloads.MIB:.0f} MiB, "
                f"put peak {(_peak(run, 'upload.put') or 0) / workloads.MIB:.0f} MiB "
                f"{'ok' if run['verified'] else 'FAILED: ' + run['state']}"
            )
            result["dag"] = run
    finally:
        sampler.stop_event.set()
        sampler.join()
    result["cli"] = cli
    return result


def plan_part(
    s3: LocalS3Server, client: Any, bucket: str, base: Path, workdir: Path, log: Log
) -> dict[str, Any]:
    tree = tiny_tree(base, PLAN_FILES, log)
    subprocess.run(["sync"], check=False)
    sampler = TaskMemorySampler()
    sampler.start()
    try:
        with local_airflow(s3, workdir, log) as live:
            prefix = "scale-plan/0"
            conf = {"source": str(tree.root), "bucket": bucket, "prefix": prefix, "dry_run": True}
            run = dag_run(live, conf, sampler)
    finally:
        sampler.stop_event.set()
        sampler.join()
    written = list_prefix(client, bucket, prefix).objects
    summary = run["summary"] or {}
    run["verified"] = run["state"] == "success" and written == 0 and summary.get("files_put") == tree.files
    total = sum(run["xcom_bytes"].values())
    log(
        f"  [scale plan] dry run over {tree.files:,} files: {run['wall']:.1f}s wall, "
        f"{len(run['tasks'].get('upload.put', []))} puts, "
        f"plan peak {(_peak(run, 'upload.plan') or 0) / workloads.MIB:.0f} MiB, "
        f"XComs {total:,} bytes (plan {run['xcom_bytes'].get('upload.plan', 0):,}) "
        f"{'ok' if run['verified'] else 'FAILED'}"
    )
    return {"tree": {"files": tree.files, "bytes": tree.bytes}, "dag": run, "objects_written": written}


def run_parts(
    parts: list[str],
    s3: LocalS3Server,
    bucket: str,
    scale_dir: Path | None,
    workdir: Path,
    reps: int,
    log: Log,
) -> dict[str, Any]:
    """Run the selected parts; each result carries its own time stamp."""
    base = scale_dir or (workdir / "scale-trees")
    base.mkdir(parents=True, exist_ok=True)
    client = s3.client()
    results: dict[str, Any] = {}
    for part in parts:
        log(f"scale: {part}")
        started = time.monotonic()
        load_start = os.getloadavg()[0]
        if part == "cli":
            results[part] = cli_part(s3, client, bucket, base, reps, log)
        elif part == "airflow":
            results[part] = airflow_part(s3, client, bucket, base, workdir, log)
        else:
            results[part] = plan_part(s3, client, bucket, base, workdir, log)
        results[part]["seconds"] = time.monotonic() - started
        # The machine is shared: the load says how far this part's absolute times can be trusted.
        results[part]["loadavg"] = [load_start, os.getloadavg()[0]]
        results[part]["stamp"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if scale_dir is None:
        shutil.rmtree(base, ignore_errors=True)
    return results

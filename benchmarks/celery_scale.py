"""A million files through Celery, beside the CLI on the same tree: ``make bench-celery``.

Issue 25, point 4. One tree of small files (``scale.small_tree``: 1-8 KiB of random bytes, 500
folders), one SeaweedFS on loopback (``LocalS3Server``) and Airflow's distributed set-up
(``celery_stack``: CeleryExecutor, Postgres, Redis, two Celery workers with two slots each).
Four runs, alternated:

1. ``cli first``: the ``s3pput`` CLI uploads the tree into prefix ``cli/``;
2. ``dag first``: the example DAG ``s3pput_upload`` with its defaults, triggered through the REST
   API, uploads it into prefix ``dag/`` (plan -> mapped puts on both workers -> reduce);
3. ``cli re-run`` and 4. ``dag re-run``: the same commands again over the unchanged tree.

For each run: wall (the CLI: spawn to exit; the DAG: trigger to the run's end, polled through the
REST API), files/s, the objects under the prefix by a listing (count and bytes; after the first
uploads), the exit code or run state, what the summary says was put and skipped. For the CLI its
peak RSS (the largest summed VmRSS of its process tree, and its largest process's VmHWM). For the
DAG: the peak RSS of every task, sampled in the Celery workers' process trees (a task runs in a
process titled ``airflow worker -- <task instance id>``; its VmHWM is its exact high-water mark,
its descendants are summed in), the max over the put tasks and how many were sampled; the bytes of
every XCom of the run (``octet_length`` of the value's JSON text in Postgres); the rows the run
added to the metadata database (every table counted before the trigger and after the end; the
idle scheduler's own writes in that window count too), with the tables that grew most.

Both the CLI and Airflow's tasks start with an empty digest record and upload journal
(``S3PPUT_CACHE_DIR`` in the work directory), so a first upload hashes every file and a re-run
uses its own record. The Airflow stack stays up (idle) while the CLI runs. At 1,000,000 files the
tree, the two uploads and the records need about 15 GB of free disk.

The load average at the start goes into the output; the benchmark refuses to start when the
1-minute load is 1.5 or more (``--ignore-load`` runs it anyway, for a functional check: figures
taken under load are not results). Every process it starts is stopped by its pid or process
group, also on Ctrl-C, SIGTERM or an error.

Usage::

    .venv/bin/python -m benchmarks.celery_scale --files 1000000          # make bench-celery
    .venv/bin/python -m benchmarks.celery_scale --files 20000 --ignore-load --keep   # a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from airflow_s3pput.testing.celery_stack import DB_NAME, DB_USER, CeleryStack, celery_stack
from airflow_s3pput.testing.local_s3 import LocalS3Server
from benchmarks import workloads
from benchmarks.measure import process_memory
from benchmarks.scale import small_tree
from benchmarks.tools import client_env, s3pput_argv
from benchmarks.verify import list_prefix

BUCKET = "bench"
DAG_ID = "s3pput_upload"
PLAN, PUT, REDUCE = "upload.plan", "upload.put", "upload.reduce"
MAX_LOAD = 1.5
TASK_TITLE = "airflow worker -- "
SAMPLE_INTERVAL = 0.1
MIB = workloads.MIB


def log(message: str) -> None:
    print(message, flush=True)


# -- memory: process trees sampled from /proc ------------------------------------------------------


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


@dataclass
class TreePeak:
    """One process tree's peaks: the largest summed VmRSS seen, the largest process VmHWM."""

    tree_rss: int = 0
    process_hwm: int = 0

    def add(self, pids: Iterable[int]) -> None:
        total = 0
        for pid in pids:
            rss, hwm = process_memory(pid)
            total += rss
            self.process_hwm = max(self.process_hwm, hwm)
        self.tree_rss = max(self.tree_rss, total)

    @property
    def peak(self) -> int:
        return max(self.tree_rss, self.process_hwm)


class Sampler(threading.Thread):
    """Every ``SAMPLE_INTERVAL`` seconds, call ``sample()``; stopped by ``close()``."""

    def __init__(self, sample: Callable[[], None]) -> None:
        super().__init__(daemon=True, name="memory-sampler")
        self._sample = sample
        self._done = threading.Event()
        self.start()

    def run(self) -> None:
        while not self._done.is_set():
            self._sample()
            self._done.wait(SAMPLE_INTERVAL)

    def close(self) -> None:
        self._done.set()
        self.join()
        self._sample()  # the last word: processes that are still there


class TaskPeaks:
    """Peak memory of each Airflow task process under the Celery workers, by task-instance id."""

    def __init__(self, worker_pids: Callable[[], Iterable[int]]) -> None:
        self.worker_pids = worker_pids
        self.peaks: dict[str, TreePeak] = {}

    def sample(self) -> None:
        for worker in self.worker_pids():
            for proc in _descendants(worker):
                try:
                    title = " ".join(proc.cmdline())
                except psutil.Error:
                    continue
                if not title.startswith(TASK_TITLE):
                    continue
                ti_id = title[len(TASK_TITLE) :].strip().split(" ")[0]
                pids = [proc.pid, *(child.pid for child in _descendants(proc.pid))]
                self.peaks.setdefault(ti_id, TreePeak()).add(pids)


# -- the CLI ------------------------------------------------------------------------------------------


@dataclass
class CliRun:
    returncode: int
    wall: float
    peak: TreePeak
    summary: dict[str, Any] | None
    stderr_tail: str


def run_cli(argv: Sequence[str], env: Mapping[str, str], workdir: Path, timeout: float) -> CliRun:
    """Run the CLI in a session of its own, sample its tree; its group is killed on any way out."""
    out_path, err_path = workdir / "cli.out", workdir / "cli.err"
    peak = TreePeak()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        sampler = Sampler(lambda: peak.add([proc.pid, *(c.pid for c in _descendants(proc.pid))]))
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            wall = time.monotonic() - started
            if proc.poll() is None:  # a timeout, Ctrl-C or an error here: end what we started
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=15)
            sampler.close()
    summary = None
    lines = out_path.read_text(errors="replace").strip().splitlines()
    with contextlib.suppress(ValueError, IndexError):
        summary = json.loads(lines[-1])
    return CliRun(proc.returncode, wall, peak, summary, err_path.read_text(errors="replace")[-500:])


# -- the metadata database ------------------------------------------------------------------------------


@contextlib.contextmanager
def metadata_db(stack: CeleryStack) -> Iterator[Any]:
    import psycopg2

    conn = psycopg2.connect(
        host="127.0.0.1",
        port=stack.postgres.port,
        user=DB_USER,
        password=stack.postgres.password,
        dbname=DB_NAME,
        connect_timeout=10,
    )
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def row_counts(stack: CeleryStack) -> dict[str, int]:
    """Rows of every table of the metadata database (exact counts)."""
    from psycopg2 import sql

    with metadata_db(stack) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        tables = [name for (name,) in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            counts[table] = int(cursor.fetchone()[0])
    return counts


def xcom_bytes(stack: CeleryStack, run_id: str) -> dict[str, int]:
    """Bytes of the run's XCom values (their JSON text), by task id."""
    with metadata_db(stack) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT task_id, coalesce(sum(octet_length(value::text)), 0) FROM xcom"
            " WHERE dag_id = %s AND run_id = %s GROUP BY task_id",
            (DAG_ID, run_id),
        )
        return {task_id: int(size) for task_id, size in cursor.fetchall()}


# -- runs ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    """One run's figures, for the table and the JSON beside it."""

    name: str
    kind: str  # "first" or "re-run"
    wall: float
    files: int
    ok: bool
    state: str  # exit code or run state
    files_put: int | None = None
    files_skipped: int | None = None
    files_failed: int | None = None
    listed_objects: int | None = None
    listed_bytes: int | None = None
    peak_rss: int | None = None  # the CLI's tree, or the largest put task's
    detail: dict[str, Any] = field(default_factory=dict)
    load_before: float = 0.0

    @property
    def files_per_second(self) -> float:
        return self.files / self.wall if self.wall else 0.0


def _summary_counts(result: Result, summary: Mapping[str, Any] | None) -> None:
    if summary:
        result.files_put = summary.get("files_put")
        result.files_skipped = summary.get("files_skipped")
        result.files_failed = summary.get("files_failed")


def _verify_listing(result: Result, client: Any, prefix: str, tree: workloads.Tree) -> None:
    started = time.monotonic()
    listing = list_prefix(client, BUCKET, prefix)
    result.detail["listing_seconds"] = round(time.monotonic() - started, 1)
    result.listed_objects, result.listed_bytes = listing.objects, listing.bytes
    result.ok = result.ok and listing.objects == tree.files and listing.bytes == tree.bytes


def _check_counts(result: Result, tree: workloads.Tree) -> None:
    """A first upload puts every file; a re-run over the unchanged tree skips every file."""
    expected = (tree.files, 0) if result.kind == "first" else (0, tree.files)
    result.ok = (
        result.ok and (result.files_put, result.files_skipped) == expected and result.files_failed == 0
    )


def cli_run(
    s3: LocalS3Server, client: Any, tree: workloads.Tree, work: Path, kind: str, timeout: float
) -> Result:
    env = {**client_env(s3.env()), "S3PPUT_CACHE_DIR": str(work / "cache-cli")}
    argv = s3pput_argv(s3.endpoint_url, ["--json"])(tree.root, BUCKET, "cli")
    load = os.getloadavg()[0]
    run = run_cli(argv, env, work, timeout)
    result = Result(
        "s3pput CLI", kind, run.wall, tree.files, run.returncode == 0, f"exit {run.returncode}",
        peak_rss=run.peak.peak, load_before=load,
        detail={"peak_tree_rss": run.peak.tree_rss, "max_process_hwm": run.peak.process_hwm},
    )  # fmt: skip
    _summary_counts(result, run.summary)
    _check_counts(result, tree)
    if kind == "first":
        _verify_listing(result, client, "cli", tree)
    if not result.ok:
        result.detail["stderr_tail"] = run.stderr_tail
    return result


def dag_run(
    stack: CeleryStack,
    client: Any,
    tree: workloads.Tree,
    kind: str,
    timeout: float,
    batch_size: int | None,
) -> Result:
    live = stack.live
    conf: dict[str, Any] = {"source": str(tree.root), "bucket": BUCKET, "prefix": "dag"}
    if batch_size:
        conf["batch_size"] = batch_size
    load = os.getloadavg()[0]
    before = row_counts(stack)
    tasks = TaskPeaks(lambda: [proc.pid for name, proc in live.processes.items() if name in stack.workers])
    sampler = Sampler(tasks.sample)
    try:
        started = time.monotonic()
        run_id = live.trigger_run(conf)
        run = live.wait_for_run(run_id, timeout=timeout, poll=0.25)
        wall = time.monotonic() - started
    finally:
        sampler.close()
    after = row_counts(stack)
    grown = {t: after.get(t, 0) - before.get(t, 0) for t in after}
    grown = {t: n for t, n in sorted(grown.items(), key=lambda item: -item[1]) if n}
    tis = live.task_instances(run_id)
    per_task: dict[str, list[dict[str, Any]]] = {}
    for ti in sorted(tis, key=lambda t: (t["task_id"], t["map_index"])):
        peak = tasks.peaks.get(ti["id"])
        per_task.setdefault(ti["task_id"], []).append(
            {"map_index": ti["map_index"], "state": ti["state"], "hostname": ti["hostname"],
             "duration": ti.get("duration"), "peak_rss": peak.peak if peak else None}
        )  # fmt: skip
    puts = per_task.get(PUT, [])
    put_peaks = [p["peak_rss"] for p in puts if p["peak_rss"]]
    summary = live.xcom(run_id, REDUCE) if run["state"] == "success" else None
    xcoms = xcom_bytes(stack, run_id)
    result = Result(
        "DAG via Celery", kind, wall, tree.files, run["state"] == "success", str(run["state"]),
        peak_rss=max(put_peaks) if put_peaks else None, load_before=load,
        detail={
            "run_id": run_id,
            "puts": len(puts),
            "puts_sampled": len(put_peaks),
            "puts_per_worker": dict(Counter(p["hostname"] for p in puts)),
            "files_per_put": -(-tree.files // len(puts)) if puts else None,
            "plan_peak_rss": _one_peak(per_task.get(PLAN)),
            "reduce_peak_rss": _one_peak(per_task.get(REDUCE)),
            "xcom_bytes": sum(xcoms.values()),
            "xcom_bytes_by_task": xcoms,
            "db_rows_added": sum(grown.values()),
            "db_rows_by_table": grown,
            "tasks": per_task,
        },
    )  # fmt: skip
    _summary_counts(result, summary)
    _check_counts(result, tree)
    if kind == "first":
        _verify_listing(result, client, "dag", tree)
    return result


def _one_peak(rows: list[dict[str, Any]] | None) -> int | None:
    peaks = [row["peak_rss"] for row in rows or () if row["peak_rss"]]
    return max(peaks) if peaks else None


# -- the report ------------------------------------------------------------------------------------------


def _mib(value: int | None) -> str:
    return "-" if not value else f"{value / MIB:,.0f}"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def table(meta: Mapping[str, Any], results: Sequence[Result]) -> str:
    tree = meta["tree"]
    load = meta["load_at_start"]
    quiet = "" if load < MAX_LOAD else f" (≥ {MAX_LOAD}: NOT QUIET, these figures are not results)"
    lines = [
        f"{tree['files']:,} small files ({tree['bytes'] / MIB:,.0f} MiB, 1-8 KiB each), CeleryExecutor "
        f"(Postgres, Redis, {meta['workers']} workers x {meta['concurrency']} slots), SeaweedFS on "
        f"loopback, {meta['cpus']} cores; load average at the start {load:.2f}{quiet}, at the end "
        f"{meta['load_at_end']:.2f}; {meta['seconds']:,.0f} s in all; {meta['when']}",
        "",
        "| run | wall s | files/s | put / skipped / failed | listed objects, MiB | state "
        "| peak RSS MiB | puts (sampled) | XCom bytes | DB rows added |",
        "|---|---:|---:|---|---|---|---:|---|---:|---:|",
    ]
    for r in results:
        d = r.detail
        counts = f"{_count(r.files_put)} / {_count(r.files_skipped)} / {_count(r.files_failed)}"
        listed = (
            f"{_count(r.listed_objects)}, {_mib(r.listed_bytes)}" if r.listed_objects is not None else "-"
        )
        if "puts" in d:
            peak = f"{_mib(r.peak_rss)} per put (plan {_mib(d['plan_peak_rss'])}, reduce {_mib(d['reduce_peak_rss'])})"
            puts = f"{d['puts']} ({d['puts_sampled']})"
            xcom, rows = f"{d['xcom_bytes']:,}", f"{d['db_rows_added']:,}"
        else:
            peak, puts, xcom, rows = f"{_mib(r.peak_rss)} (CLI tree)", "-", "-", "-"
        state = r.state + ("" if r.ok else " **FAILED**")
        lines.append(
            f"| {r.name} {r.kind} | {r.wall:,.1f} | {r.files_per_second:,.0f} | {counts} | {listed} | {state} "
            f"| {peak} | {puts} | {xcom} | {rows} |"
        )
    lines.append("")
    for r in results:
        if r.detail.get("db_rows_by_table"):
            top = ", ".join(f"{t} {n:,}" for t, n in list(r.detail["db_rows_by_table"].items())[:5])
            lines.append(f"- {r.name} {r.kind}: DB rows by table (top 5): {top}")
        if r.detail.get("puts_per_worker"):
            spread = ", ".join(f"{w} {n}" for w, n in sorted(r.detail["puts_per_worker"].items()))
            lines.append(
                f"- {r.name} {r.kind}: {r.detail['puts']} puts of ≤ {r.detail['files_per_put']:,} files; "
                f"per worker: {spread}; XCom bytes by task: {r.detail['xcom_bytes_by_task']}"
            )
    ratio = _ratios(results)
    if ratio:
        lines.append(f"- DAG wall ÷ CLI wall: {ratio}")
    return "\n".join(lines)


def _ratios(results: Sequence[Result]) -> str:
    walls = {(r.name, r.kind): r.wall for r in results if r.ok}
    parts = []
    for kind in ("first", "re-run"):
        cli, dag = walls.get(("s3pput CLI", kind)), walls.get(("DAG via Celery", kind))
        if cli and dag:
            parts.append(f"{kind} {dag / cli:.2f}x")
    return ", ".join(parts)


# -- main ----------------------------------------------------------------------------------------------


class Interrupts:
    """Ctrl-C and SIGTERM: the first one unwinds (every ``with`` stops what it started); the
    ones after it must not break off that clean-up half-way."""

    def __init__(self) -> None:
        self.count = 0
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt(signal.Signals(signum).name)
        print("celery_scale: still stopping what it started, please wait", file=sys.stderr, flush=True)


def measure(args: argparse.Namespace, load: float, work: Path) -> tuple[dict[str, Any], list[Result]]:
    tree_base = Path(args.tree_dir) if args.tree_dir else work / "trees"
    tree_base.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tree = small_tree(tree_base, args.files, log)
    subprocess.run(["sync"], check=False)
    log(f"tree ready after {time.monotonic() - started:.0f}s: {tree.root}")
    results: list[Result] = []
    meta: dict[str, Any] = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_at_start": load,
        "cpus": os.cpu_count(),
        "tree": {"files": tree.files, "bytes": tree.bytes},
        "workers": len(args.workers),
        "concurrency": args.concurrency,
        "batch_size": args.batch_size,
    }
    with LocalS3Server(bucket=BUCKET) as s3:
        client = s3.client()
        up = time.monotonic()
        config = {"S3PPUT_CACHE_DIR": str(work / "cache-airflow")}
        leftovers: list[str] = []
        with celery_stack(
            s3, work / "airflow", workers=args.workers, concurrency=args.concurrency, config=config,
            leftovers=leftovers,
        ) as stack:  # fmt: skip
            log(f"Celery stack ready in {time.monotonic() - up:.0f}s (logs in {stack.home})")
            # Alternated: cli first, dag first, cli re-run, dag re-run.
            for kind, how in [(kind, how) for kind in ("first", "re-run") for how in ("cli", "dag")]:
                name = f"{how} {kind}"
                log(f"{name} ... (load {os.getloadavg()[0]:.2f})")
                if how == "cli":
                    result = cli_run(s3, client, tree, work, kind, args.run_timeout)
                else:
                    result = dag_run(stack, client, tree, kind, args.run_timeout, args.batch_size)
                results.append(result)
                listed = result.detail.get("listing_seconds")
                log(
                    f"  {name}: {result.wall:,.1f}s, {result.files_per_second:,.0f} files/s, {result.state}, "
                    f"put {_count(result.files_put)} skipped {_count(result.files_skipped)}, "
                    f"peak {_mib(result.peak_rss)} MiB {'ok' if result.ok else 'FAILED'}"
                    + (f"; listed in {listed}s" if listed is not None else "")
                )
        if leftovers:
            log(f"WARNING: processes outlived their groups and were killed by pid: {leftovers}")
    meta["seconds"] = time.monotonic() - started
    meta["load_at_end"] = os.getloadavg()[0]
    return meta, results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000_000, help="small files (default 1,000,000)")
    parser.add_argument("--tree-dir", help="keep the tree here and reuse it on the next run")
    parser.add_argument("--workdir", help="parent of the temporary work directory (default: the system's)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (tree, Airflow logs)")
    parser.add_argument("--output", default=".bench/celery-scale.md", help="the Markdown table (and .json)")
    parser.add_argument("--batch-size", type=int, default=None, help="files per put (default: the DAG's)")
    parser.add_argument("--concurrency", type=int, default=2, help="task slots per worker (default 2)")
    parser.add_argument("--run-timeout", type=float, default=3600.0, help="seconds per run (default 3600)")
    parser.add_argument("--ignore-load", action="store_true", help="run even when the machine is busy")
    args = parser.parse_args(argv)
    args.workers = ("worker-1", "worker-2")
    load = os.getloadavg()[0]
    if load >= MAX_LOAD and not args.ignore_load:
        print(f"celery_scale: load average {load:.2f} ≥ {MAX_LOAD}: not quiet, not started (--ignore-load)",
              file=sys.stderr)  # fmt: skip
        return 2
    log(f"load average at the start: {load:.2f}" + ("" if load < MAX_LOAD else " (NOT QUIET: not a result)"))
    Interrupts()
    work = Path(tempfile.mkdtemp(prefix="s3pput-celery-scale-", dir=args.workdir))
    try:
        meta, results = measure(args, load, work)
    except KeyboardInterrupt:
        print("celery_scale: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            log(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = table(meta, results)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n")
    raw = {"meta": meta, "results": [{**asdict(r), "files_per_second": r.files_per_second} for r in results]}
    output.with_suffix(".json").write_text(json.dumps(raw, indent=2))
    print("\n" + text + f"\n\nwritten: {output} (raw: {output.with_suffix('.json')})")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

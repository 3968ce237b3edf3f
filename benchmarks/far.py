"""The far-S3 latency sweep: s3pput and its peers through a proxy that delays every chunk.

Usage (no ``make`` needed; run from the repository root with the project's interpreter)::

    .venv/bin/python -m benchmarks.far --quick               # smoke run at 25 ms, < 1 min
    .venv/bin/python -m benchmarks.far --delays 0            # one delay per command keeps each
    .venv/bin/python -m benchmarks.far --delays 5            #   under 10 minutes on this machine
    .venv/bin/python -m benchmarks.far --delays 25
    .venv/bin/python -m benchmarks.far --delays 100          # fewer files and reps by default
    .venv/bin/python -m benchmarks.far --render              # only rewrite the tables (far-results.md, BENCHMARKS.md)

What one command does:

1. start SeaweedFS (``weed mini``) on 127.0.0.1 and, per delay, a :class:`LatencyProxy` in front
   of it (``latency_proxy.py``: N ms each way, and one round trip more for a new connection);
2. generate the trees (``workloads.py``'s generators): ``small`` (2,000 files of 1-8 KiB),
   ``update`` (the same tree again, unchanged), ``large`` (one 512 MiB file), ``mixed`` (2,000
   small files and 3 of 100 MiB);
3. per workload and repetition, run every tool once through the proxy, in an order rotated each
   repetition (A B C D, B C D A, ...), each into a fresh prefix, with its default settings
   (``tools.py``'s command lines: ``s3pput`` with no tuning flag, ``s5cmd cp``/``sync``,
   ``aws s3 cp --recursive``/``sync``, ``rclone copy``); measure wall, CPU of the process tree
   and peak RSS (``measure.py``), list the prefix straight at the server and check the object
   count and bytes (a run that exits non-zero or leaves the wrong objects is not counted);
   At 0 ms, ``s5cmd-direct`` (s5cmd straight at the server) shows what the proxy itself costs;
4. from the proxy: the most connections the tool held open at once, the most requests in
   flight, and its start-up: the requests before its first upload and how many of them ran one
   after the other (each costs a round trip of 2 x delay);
5. write the raw data to ``.bench/far/sweep-<delay>ms-<stamp>.json`` and rewrite
   ``benchmarks/far-results.md`` from every raw file there (``far_report.py``; the newest file
   wins for each delay and workload; generated: do not commit it), and the "Far S3: latency
   sweep" section of ``BENCHMARKS.md`` from the same files (``report.splice_far``; the rest of the
   document is left as ``run.py`` wrote it, and ``run.py`` keeps this section). A ``--quick`` run,
   or one with a ``--raw-dir`` of its own, writes a copy beside its raw files
   (``.bench/far/quick/BENCHMARKS.md``) and leaves the repository's alone.

At 100 ms each way a small-file run of a peer that keeps 10 requests in flight lasts about a
minute, so that delay defaults to ``--far-files 1000`` and ``--far-reps 2``; the table says so.
The machine is shared and noisy: the ratios within one command are what counts.
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from airflow_s3pput.testing.local_s3 import LocalS3Server
from benchmarks import far_report, report, workloads
from benchmarks.bounded import stop_children_on_sigterm
from benchmarks.latency_proxy import LatencyProxy, ProxyStats, RequestRecord
from benchmarks.measure import run_measured
from benchmarks.tools import Tool, make_tools
from benchmarks.verify import Listing, list_prefix, rewritten

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


BUCKET = "far"
DELAYS = (0.0, 5.0, 25.0, 100.0)
WORKLOADS = ("small", "update", "large", "mixed")
TOOLS = ("s3pput", "s5cmd", "aws-cli", "rclone")
DIRECT = "s5cmd-direct"  # at 0 ms only: s5cmd without the proxy
FAR_DELAY = 100.0  # from this delay on, --far-files and --far-reps apply
RUN_TIMEOUT = 420.0
RAW_DIR = REPO / ".bench" / "far"
OUTPUT = HERE / "far-results.md"
BENCHMARKS = REPO / "BENCHMARKS.md"


def log(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--delays", default=",".join(f"{d:g}" for d in DELAYS), help="ms each way, comma list")
    p.add_argument("--reps", type=int, default=3, help="repetitions per workload and tool (default 3)")
    p.add_argument("--files", type=int, default=2000, help="small files (default 2,000)")
    p.add_argument("--far-files", type=int, default=1000, help=f"small files from {FAR_DELAY:g} ms on")
    p.add_argument("--far-reps", type=int, default=2, help=f"repetitions from {FAR_DELAY:g} ms on")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list of " + ", ".join(WORKLOADS))
    p.add_argument("--tools", default=",".join(TOOLS), help="comma list (default: " + ", ".join(TOOLS) + ")")
    p.add_argument("--quick", action="store_true", help="25 ms only, tiny trees, 1 rep (< 1 min)")
    p.add_argument("--raw-dir", type=Path, default=None, help="where the raw JSON goes (.bench/far/)")
    p.add_argument("--output", type=Path, default=None, help="the Markdown (benchmarks/far-results.md)")
    p.add_argument(
        "--benchmarks",
        type=Path,
        default=None,
        help="the document whose far-S3 section is rewritten (BENCHMARKS.md; with --quick or "
        "--raw-dir, a copy of it beside the raw files)",
    )
    p.add_argument("--render", action="store_true", help="only rewrite the Markdown from the raw files")
    p.add_argument("--workdir", type=Path, default=None, help="parent of the temporary trees")
    args = p.parse_args(argv)
    try:
        args.delay_list = [float(d) for d in args.delays.split(",") if d]
    except ValueError:
        p.error(f"--delays: not a comma list of numbers: {args.delays}")
    if any(d < 0 for d in args.delay_list):
        p.error("--delays must be >= 0")
    args.workload_list = [w for w in WORKLOADS if w in args.workloads.split(",")]
    unknown = set(args.workloads.split(",")) - set(WORKLOADS)
    if unknown:
        p.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    if "update" in args.workload_list and "small" not in args.workload_list:
        p.error("the update workload re-runs the small one: select small as well")
    if min(args.reps, args.far_reps, args.files, args.far_files) < 1:
        p.error("--reps, --far-reps, --files and --far-files must be at least 1")
    if args.quick:
        args.delay_list = [25.0] if "--delays" not in (argv or sys.argv) else args.delay_list
        args.reps = args.far_reps = 1
        args.files = args.far_files = 50
    # a smoke run keeps its files apart, so that it never mixes into the real tables
    args.raw_dir = args.raw_dir or (RAW_DIR / "quick" if args.quick else RAW_DIR)
    args.output = args.output or (args.raw_dir / "far-results.md" if args.quick else OUTPUT)
    # BENCHMARKS.md itself only from the default raw files: a smoke run, or one with raw files of
    # its own (an experiment), writes a copy beside them
    own_raw = args.quick or args.raw_dir.resolve() != RAW_DIR.resolve()
    args.benchmarks = args.benchmarks or (args.raw_dir / "BENCHMARKS.md" if own_raw else BENCHMARKS)
    return args


def write_tables(args: argparse.Namespace) -> None:
    """far-results.md (sweep and faults) and the sweep's section of BENCHMARKS.md, from the raw
    files. A quick run's copy of BENCHMARKS.md starts from the repository's, which it never touches."""
    far_report.write(args.raw_dir, args.output)
    target: Path = args.benchmarks
    base = target if target.exists() else BENCHMARKS
    document = base.read_text() if base.exists() else ""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(report.splice_far(document, report.far_section(far_report.render_sweep(args.raw_dir))))
    log(f"tables: {args.output}, sweep section of {target}")


class Sizes:
    """The trees of one command: small-file count, large file and mixed tree."""

    def __init__(self, quick: bool) -> None:
        self.large_bytes = 20 * workloads.MIB if quick else 512 * workloads.MIB
        self.mixed_small = 50 if quick else 2000
        self.mixed_large = 1 if quick else 3
        self.mixed_large_bytes = 20 * workloads.MIB if quick else 100 * workloads.MIB


class Sweep:
    """One command's sweep: the server, the trees, the tools; every run recorded."""

    def __init__(self, args: argparse.Namespace, s3: LocalS3Server, workdir: Path) -> None:
        self.args = args
        self.s3 = s3
        self.workdir = workdir
        self.client = s3.client()
        self.sizes = Sizes(args.quick)
        self.trees: dict[str, workloads.Tree] = {}
        self.keys: dict[str, frozenset[str]] = {}
        self.runs: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.versions: dict[str, str] = {}

    # -- trees ----------------------------------------------------------------------------

    def small_tree(self, files: int) -> workloads.Tree:
        name = f"small-{files}"
        if name not in self.trees:
            root = self.workdir / "trees" / name
            total = workloads.write_small_files(root, files, seed=1)
            self._add(workloads.Tree(name, root, files, total))
        return self.trees[name]

    def other_tree(self, workload: str) -> workloads.Tree:
        if workload not in self.trees:
            base = self.workdir / "trees"
            if workload == "large":
                tree = workloads.make_large(base, self.sizes.large_bytes)
            else:
                tree = workloads.make_mixed(
                    base, self.sizes.mixed_small, self.sizes.mixed_large, self.sizes.mixed_large_bytes
                )
            self._add(tree)
        return self.trees[workload]

    def _add(self, tree: workloads.Tree) -> None:
        self.trees[tree.name] = tree
        self.keys[tree.name] = frozenset(
            p.relative_to(tree.root).as_posix() for p in tree.root.rglob("*") if p.is_file()
        )
        subprocess.run(["sync"], check=False)
        log(f"tree {tree.name}: {tree.files:,} files, {tree.bytes / workloads.MIB:,.1f} MiB")

    # -- runs -----------------------------------------------------------------------------

    def tools_for(self, proxy: LatencyProxy) -> list[Tool]:
        env = {**self.s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}
        tools, notes = make_tools(proxy.endpoint_url, env, self.workdir)
        wanted = [t for t in self.args.tools.split(",") if t]
        for note in notes:
            if note.split(":", 1)[0] in wanted and note not in self.notes:
                self.notes.append(note)
        chosen = [t for t in tools if t.name in wanted]
        if proxy.delay_ms == 0 and "s5cmd" in wanted:
            # s5cmd straight at the server beside s5cmd through the proxy: what the proxy costs
            direct, _ = make_tools(self.s3.endpoint_url, self.s3.env(), self.workdir)
            chosen += [dataclasses.replace(t, name=DIRECT) for t in direct if t.name == "s5cmd"]
        for tool in chosen:
            self.versions[tool.name] = tool.version
        return chosen

    def warm_up(self, tree: workloads.Tree) -> None:
        """One unmeasured upload straight to the server: it grows its volumes on first writes."""
        tools, _ = make_tools(self.s3.endpoint_url, self.s3.env(), self.workdir)
        tool = next((t for t in tools if t.name == "s5cmd"), tools[0])
        m = run_measured(tool.upload(tree.root, BUCKET, f"warmup/{tree.name}"), tool.env, timeout=RUN_TIMEOUT)
        log(f"  [{tree.name}] warm-up upload with {tool.name}: {m.wall:.2f}s (not counted)")

    def measure(
        self,
        proxy: LatencyProxy,
        workload: str,
        tool: Tool,
        rep: int,
        argv: list[str],
        tree: workloads.Tree,
        prefix: str,
        before: Listing | None = None,
    ) -> dict[str, Any]:
        proxy.reset_stats()
        spawned = time.monotonic()
        m = run_measured(argv, tool.env, timeout=RUN_TIMEOUT)
        ended = spawned + m.wall
        time.sleep(0.05)  # the proxy sees the last close a moment after the exit
        stats = proxy.stats()
        listing = list_prefix(self.client, BUCKET, prefix)
        record: dict[str, Any] = {
            "delay_ms": proxy.delay_ms,
            "workload": workload,
            "tool": tool.name,
            "rep": rep,
            "prefix": prefix,
            "tree": tree.name,
            "returncode": m.returncode,
            "timed_out": m.timed_out,
            "wall": m.wall,
            "cpu": m.cpu,
            "peak_rss_tree": m.peak_rss_tree,
            "max_rss_process": m.max_rss_process,
            "objects": listing.objects,
            "expected_objects": tree.files,
            "object_bytes": listing.bytes,
            "expected_bytes": tree.bytes,
            "proxy": proxy_summary(stats, spawned, ended, self.upload_test(prefix, tree)),
        }
        record["verified"] = m.ok and listing.objects == tree.files and listing.bytes == tree.bytes
        if before is not None:
            record["rewritten"] = rewritten(before, listing)
        if not record["verified"]:
            record["stderr_tail"] = (m.stderr_tail or m.stdout_tail)[-1500:]
        px = record["proxy"]
        status = "ok" if record["verified"] else f"FAILED (exit {m.returncode}, {listing.objects} objects)"
        extra = f", rewrote {record['rewritten']}" if before is not None else ""
        first = px["first_upload_ms"]
        log(
            f"  [{proxy.delay_ms:g}ms {workload} r{rep}] {tool.name:<8} {m.wall:7.2f}s wall "
            f"{m.cpu:6.2f}s cpu "
            f"{m.peak_rss_tree / workloads.MIB:6.1f} MiB  conns {px['max_open']:>3} in-flight "
            f"{px['max_in_flight']:>3} reqs {px['requests']:>5} proxy-cpu {px['proxy_cpu_seconds']:5.2f}s"
            + (
                f" first-upload {first:6.0f}ms after {px['serial_before_first_upload']} serial"
                if first
                else ""
            )
            + f"  {status}{extra}"
        )
        if not record["verified"]:
            for line in record["stderr_tail"].strip().splitlines()[-5:]:
                log(f"      | {line}")
        self.runs.append(record)
        return record

    def upload_test(self, prefix: str, tree: workloads.Tree) -> Callable[[RequestRecord], bool]:
        """Picks the requests that write one of the tree's files (a PUT, or a multipart start)."""
        base = f"/{BUCKET}/{prefix}/"
        keys = self.keys[tree.name]

        def is_upload(record: RequestRecord) -> bool:
            if record.method not in ("PUT", "POST"):
                return False
            path = unquote(record.target.partition("?")[0])
            return path.startswith(base) and path[len(base) :] in keys

        return is_upload

    def run_delay(self, delay: float, save: Callable[[], None]) -> None:
        """Every workload at ``delay``; ``save`` after each one (a killed command keeps them)."""
        far = delay >= FAR_DELAY
        reps = self.args.far_reps if far else self.args.reps
        files = self.args.far_files if far else self.args.files
        with LatencyProxy(("127.0.0.1", self.s3.port), delay_ms=delay) as proxy:
            tools = self.tools_for(proxy)
            log(f"delay {delay:g} ms each way via {proxy.endpoint_url}: {', '.join(t.name for t in tools)}")
            for workload in self.args.workload_list:
                tree = (
                    self.small_tree(files) if workload in ("small", "update") else self.other_tree(workload)
                )
                if workload != "update":
                    self.warm_up(tree)
                for rep in range(reps):
                    shift = rep % len(tools)
                    for tool in tools[shift:] + tools[:shift]:
                        stamp = f"d{delay:g}/{tool.name}/r{rep}"
                        if workload == "update":
                            prefix = f"small/{stamp}"
                            first = [
                                r
                                for r in self.runs
                                if r["workload"] == "small"
                                and r["tool"] == tool.name
                                and r["rep"] == rep
                                and r["delay_ms"] == delay
                            ]
                            if not first or not first[0]["verified"]:
                                log(f"  [update r{rep}] {tool.name}: skipped, its first upload failed")
                                continue
                            before = list_prefix(self.client, BUCKET, prefix)
                            argv = tool.resync(tree.root, BUCKET, prefix)
                            self.measure(proxy, workload, tool, rep, argv, tree, prefix, before)
                        else:
                            prefix = f"{workload}/{stamp}"
                            argv = tool.upload(tree.root, BUCKET, prefix)
                            self.measure(proxy, workload, tool, rep, argv, tree, prefix)
                save()


def proxy_summary(
    stats: ProxyStats, spawned: float, ended: float, is_upload: Callable[[RequestRecord], bool]
) -> dict[str, Any]:
    """What the proxy saw of one run, as JSON: connections, requests, start-up round trips."""
    start = stats.start_up(is_upload)
    answered = [r.answered for r in stats.requests if r.answered is not None]
    lists = [r for r in stats.requests if r.method == "GET" and _is_listing(r.target)]
    first_conn = stats.first_connection
    return {
        "connections": stats.connections,
        "max_open": stats.max_open,
        "max_in_flight": stats.max_in_flight,
        "requests": len(stats.requests),
        "methods": stats.methods(),
        "lists": len(lists),
        "serial_lists": stats.serial_chain(lists),
        "serial_all": stats.serial_chain(stats.requests),
        "bytes_up": stats.bytes_up,
        "bytes_down": stats.bytes_down,
        "unparsed_connections": stats.unparsed,
        "proxy_cpu_seconds": stats.cpu_seconds,
        "spawn_to_first_connection_ms": None if first_conn is None else (first_conn - spawned) * 1000,
        "first_upload_ms": start["first_upload_ms"],
        "before_first_upload": start["before"],
        "serial_before_first_upload": start["serial"],
        "last_answer_to_exit_ms": (ended - max(answered)) * 1000 if answered else None,
    }


def _is_listing(target: str) -> bool:
    path, _, query = target.partition("?")
    return path.strip("/").count("/") == 0 and ("list-type" in query or "prefix" in query)


def summary_lines(runs: list[dict[str, Any]]) -> list[str]:
    """Median walls per delay and workload, and s3pput / s5cmd, for the log."""
    lines = []
    groups: dict[tuple[float, str], dict[str, list[float]]] = {}
    for run in runs:
        if run["verified"]:
            group = groups.setdefault((run["delay_ms"], run["workload"]), {})
            group.setdefault(run["tool"], []).append(run["wall"])
    for (delay, workload), by_tool in sorted(groups.items()):
        medians = {tool: statistics.median(walls) for tool, walls in by_tool.items()}
        cells = "  ".join(f"{tool} {wall:.2f}s" for tool, wall in medians.items())
        ratio = ""
        if "s3pput" in medians and medians.get("s5cmd"):
            ratio = f"  s3pput/s5cmd {medians['s3pput'] / medians['s5cmd']:.2f}x"
        lines.append(f"{delay:g} ms {workload:<7} {cells}{ratio}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        write_tables(args)
        return 0
    stop_children_on_sigterm()
    started = time.monotonic()
    # s3pput is installed editable: compiled once here, as a user's pip install ships it
    compileall.compile_dir(str(REPO / "airflow_s3pput"), quiet=1)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    args.raw_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="s3pput-far-", dir=args.workdir))
    failed = 0
    try:
        with LocalS3Server(bucket=BUCKET) as s3:
            sweep = Sweep(args, s3, workdir)
            log(f"far-S3 sweep ({'quick' if args.quick else 'full'}), SeaweedFS at {s3.endpoint_url}")
            for delay in args.delay_list:
                delay_started = time.monotonic()
                raw = args.raw_dir / f"sweep-{delay:g}ms-{stamp}{'-quick' if args.quick else ''}.json"

                def save(delay: float = delay, raw: Path = raw, delay_started: float = delay_started) -> None:
                    runs = [r for r in sweep.runs if r["delay_ms"] == delay]
                    far = delay >= FAR_DELAY
                    results = {
                        "kind": "sweep",
                        "stamp": stamp,
                        "quick": args.quick,
                        "delay_ms": delay,
                        "reps": args.far_reps if far else args.reps,
                        "small_files": args.far_files if far else args.files,
                        "sizes": vars(sweep.sizes),
                        "workloads": sorted({r["workload"] for r in runs}, key=WORKLOADS.index),
                        "tools": sweep.versions,
                        "notes": sweep.notes,
                        "engine": far_report.engine_version(REPO),
                        "loadavg": list(os.getloadavg()),
                        "seconds": time.monotonic() - delay_started,
                        "runs": runs,
                    }
                    raw.write_text(json.dumps(results, indent=1, default=str))

                sweep.run_delay(delay, save)
                failed += sum(1 for r in sweep.runs if r["delay_ms"] == delay and not r["verified"])
                log(f"raw data: {raw}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_tables(args)
    log("")
    for line in summary_lines(sweep.runs):
        log(line)
    log(f"\n{time.monotonic() - started:.0f}s in all")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

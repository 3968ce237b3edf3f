"""``make bench``: s3pput against its peers on a local SeaweedFS, side by side, in one run.

Usage::

    .venv/bin/python -m benchmarks.run                 # full run (~15-20 min), writes BENCHMARKS.md
    .venv/bin/python -m benchmarks.run --quick         # smoke version (< 1 min), writes .bench/quick/
    .venv/bin/python -m benchmarks.run --reps 5 --workloads small,update --no-airflow
    .venv/bin/python -m benchmarks.run --only scale                   # only the Scale section
    .venv/bin/python -m benchmarks.run --only scale --scale-parts cli --scale-dir /tmp/trees --keep

What one run does:

1. start SeaweedFS (``weed mini``) on 127.0.0.1 with generated credentials and a bucket;
2. generate the workloads (see ``workloads.py``) in a temporary directory;
3. for each workload and repetition, run every tool once, in an order rotated each repetition
   (A/B/C, B/C/A, ...), each into a fresh prefix; measure wall time, CPU of the client's process
   tree and its peak RSS (``measure.py``), then list the prefix and check the object count and
   bytes (``verify.py``): a run that exits non-zero or leaves the wrong objects is not counted;
4. the ``update`` workload re-runs every tool over the prefix it filled in ``small``: nothing
   changed, so nothing should be written (the listing's LastModified stamps are compared);
5. s3pput's peak RSS on dry runs over 5k and 200k files; an exploratory sweep of
   ``--processes``/``--threads``; the 5,000-file tree through the example DAG under Airflow
   (``airflow dags test`` and a real scheduler) against the bare CLI (``airflow_bench.py``);
6. scale (``scale.py``): 100,000 files from the CLI and through Airflow, a 1,000,000-file
   dry-run plan; ``--only scale`` runs just that, part by part if asked (``--scale-parts``),
   and rewrites only the "Scale" section of BENCHMARKS.md (``scale_report.py``);
7. write the raw data to ``.bench/results-<stamp>.json`` and the tables to ``BENCHMARKS.md``
   (keeping its Scale section when this run measured none).

The machine is shared and noisy: the ratios between tools within one run are the figures that
count, never one absolute time.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow_s3pput.testing.local_s3 import LocalS3Server, find_weed
from benchmarks import airflow_bench, report, scale, scale_report, workloads
from benchmarks.measure import run_measured
from benchmarks.tools import Tool, client_env, make_tools, s3pput_argv
from benchmarks.verify import list_prefix, rewritten

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


BUCKET = "bench"
WORKLOADS = ("small", "update", "large", "mixed")
RUN_TIMEOUT = 900.0


def sweep_settings(s3pput_help: str) -> list[tuple[str, list[str]]]:
    """The exploratory s3pput settings tried on the small tree: (label, extra CLI arguments).

    When the CLI offers a choice of data plane (``--transport``), each is swept on its own.
    """
    settings: list[tuple[str, list[str]]] = [("defaults", [])]
    transports = ["crt", "boto3"] if "--transport" in s3pput_help else [None]
    for transport in transports:
        base = ["--transport", transport] if transport else []
        name = f"--transport {transport} " if transport else ""
        if transport == "crt":
            grid = [(1, 32), (1, 64), (1, 128), (2, 64)]
        else:
            grid = [(1, 16), (2, 16), (4, 16), (2, 8), (2, 32), (1, 32)]
        for processes, threads in grid:
            settings.append(
                (
                    f"{name}--processes {processes} --threads {threads}",
                    [*base, "--processes", str(processes), "--threads", str(threads)],
                )
            )
    settings.append(("defaults, --put stupid", ["--put", "stupid"]))
    return settings


def log(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3, help="repetitions per workload and tool (default 3)")
    p.add_argument("--quick", action="store_true", help="small trees, 1 repetition, no sweep or Airflow")
    p.add_argument("--output", type=Path, default=None, help="Markdown file to write (default BENCHMARKS.md)")
    p.add_argument("--raw-dir", type=Path, default=None, help="where the raw JSON goes (default .bench/)")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list of " + ", ".join(WORKLOADS))
    p.add_argument("--tools", default="", help="comma list of tools (default: every available one)")
    p.add_argument("--no-memory", action="store_true", help="skip the dry-run memory measurement")
    p.add_argument("--no-settings", action="store_true", help="skip the s3pput settings sweep")
    p.add_argument("--no-airflow", action="store_true", help="skip the Airflow measurements")
    p.add_argument("--no-standalone", action="store_true", help="Airflow: only `airflow dags test`")
    p.add_argument("--settings-reps", type=int, default=1, help="repetitions of each sweep setting")
    p.add_argument("--workdir", type=Path, default=None, help="parent of the temporary workload trees")
    p.add_argument("--keep", action="store_true", help="keep the generated trees")
    p.add_argument("--only", choices=["scale"], default=None, help="run only this part (see --scale-parts)")
    p.add_argument("--no-scale", action="store_true", help="skip the scale part")
    p.add_argument(
        "--scale-parts",
        default=",".join(scale.PARTS),
        help="comma list of " + ", ".join(scale.PARTS) + " (default: all)",
    )
    p.add_argument(
        "--scale-dir",
        type=Path,
        default=None,
        help="where the scale trees go and are reused from (default: a temporary directory)",
    )
    p.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="RESULTS_JSON",
        help="only re-write the Markdown from a raw results file",
    )
    args = p.parse_args(argv)
    if args.quick:
        if "--reps" not in (argv or sys.argv):
            args.reps = 1
        args.no_settings = True
        args.no_airflow = True
        args.no_scale = True
    # --scale-parts "" with --only scale: measure nothing, re-write the section from the kept results
    unknown_parts = {p for p in args.scale_parts.split(",") if p} - set(scale.PARTS)
    if unknown_parts:
        p.error(f"unknown scale parts: {', '.join(sorted(unknown_parts))}")
    if args.reps < 1:
        p.error("--reps must be at least 1")
    unknown = set(args.workloads.split(",")) - set(WORKLOADS)
    if unknown:
        p.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    return args


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def engine_version() -> str:
    """The commit of the s3pput under test, whether its sources differ from it, and a digest of
    those sources (other engineers may change them while a run goes on)."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = bool(_git("status", "--porcelain", "--", "airflow_s3pput"))
    digest = hashlib.sha256()
    for path in sorted((REPO / "airflow_s3pput").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return (
        commit + (" + uncommitted engine changes" if dirty else "") + f" (sources {digest.hexdigest()[:10]})"
    )


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    except OSError:
        pass
    weed = "unknown"
    with contextlib.suppress(OSError, IndexError, RuntimeError, subprocess.TimeoutExpired):
        weed = (
            subprocess.run([find_weed(), "version"], capture_output=True, text=True, timeout=30, check=False)
            .stdout.strip()
            .splitlines()[0]
        )
    return {
        "engine": engine_version(),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "ram_bytes": ram,
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "seaweedfs": weed,
        "loadavg_start": os.getloadavg(),
    }


class Bench:
    def __init__(self, args: argparse.Namespace, s3: LocalS3Server, workdir: Path) -> None:
        self.args = args
        self.s3 = s3
        self.workdir = workdir
        self.client = s3.client()
        tools, self.notes = make_tools(s3.endpoint_url, s3.env(), workdir)
        wanted = [t for t in args.tools.split(",") if t]
        self.tools: list[Tool] = [t for t in tools if not wanted or t.name in wanted]
        self.sizes = workloads.Sizes.quick() if args.quick else workloads.Sizes.full()
        self.trees: dict[str, workloads.Tree] = {}
        self.runs: list[dict[str, Any]] = []

    # -- workloads ------------------------------------------------------------------------

    def generate(self, selected: Sequence[str]) -> dict[str, float]:
        timings: dict[str, float] = {}
        base = self.workdir / "trees"
        base.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        if "small" in selected or "update" in selected:
            self.trees["small"] = workloads.make_small(base, self.sizes.small_files)
        if "large" in selected:
            self.trees["large"] = workloads.make_large(base, self.sizes.large_bytes)
        if "mixed" in selected:
            self.trees["mixed"] = workloads.make_mixed(
                base, self.sizes.mixed_small, self.sizes.mixed_large, self.sizes.mixed_large_bytes
            )
        timings["generate_seconds"] = time.monotonic() - started
        # Let the page cache settle: every tool then reads the trees from memory alike.
        subprocess.run(["sync"], check=False)
        for tree in self.trees.values():
            log(
                f"tree {tree.name}: {tree.files:,} files, {tree.bytes / workloads.MIB:,.1f} MiB at {tree.root}"
            )
        return timings

    def measure(
        self,
        workload: str,
        tool: Tool,
        rep: int,
        argv: list[str],
        tree: workloads.Tree,
        prefix: str,
        before: Any = None,
    ) -> dict[str, Any]:
        m = run_measured(argv, tool.env, timeout=RUN_TIMEOUT)
        listing = list_prefix(self.client, BUCKET, prefix)
        record: dict[str, Any] = {
            "workload": workload,
            "tool": tool.name,
            "rep": rep,
            "prefix": prefix,
            **m.to_dict(),
            "objects": listing.objects,
            "expected_objects": tree.files,
            "object_bytes": listing.bytes,
            "expected_bytes": tree.bytes,
        }
        record["verified"] = m.ok and listing.objects == tree.files and listing.bytes == tree.bytes
        if before is not None:
            record["rewritten"] = rewritten(before, listing)
        status = "ok" if record["verified"] else f"FAILED (exit {m.returncode}, {listing.objects} objects)"
        extra = f", rewrote {record['rewritten']}" if before is not None else ""
        log(
            f"  [{workload} r{rep}] {tool.name:<14} {m.wall:7.2f}s wall {m.cpu:7.2f}s cpu "
            f"{m.peak_rss_tree / workloads.MIB:7.1f} MiB  {status}{extra}"
        )
        if not record["verified"]:
            tail = (m.stderr_tail or m.stdout_tail).strip().splitlines()[-5:]
            for line in tail:
                log(f"      | {line}")
        self.runs.append(record)
        return record

    def warm_up(self, workload: str, tree: workloads.Tree) -> None:
        """One unmeasured upload first: the server grows its volumes on the first writes, a cost
        that would otherwise fall on whichever tool happens to run first."""
        tool = next((t for t in self.tools if t.name == "s5cmd"), self.tools[0])
        prefix = f"warmup/{workload}"
        m = run_measured(tool.upload(tree.root, BUCKET, prefix), tool.env, timeout=RUN_TIMEOUT)
        log(f"  [{workload}] warm-up upload with {tool.name}: {m.wall:.2f}s (not counted)")

    def run_workload(self, workload: str) -> None:
        tree = self.trees["small" if workload == "update" else workload]
        log(f"workload {workload}: {tree.files:,} files, {tree.bytes / workloads.MIB:,.1f} MiB")
        if workload != "update":
            self.warm_up(workload, tree)
        for rep in range(self.args.reps):
            shift = rep % len(self.tools)
            order = self.tools[shift:] + self.tools[:shift]
            for tool in order:
                if workload == "update":
                    prefix = f"small/{tool.name}/r{rep}"
                    first = [
                        r
                        for r in self.runs
                        if r["workload"] == "small" and r["tool"] == tool.name and r["rep"] == rep
                    ]
                    if not first or not first[0]["verified"]:
                        log(f"  [update r{rep}] {tool.name}: skipped, its first upload failed")
                        continue
                    before = list_prefix(self.client, BUCKET, prefix)
                    self.measure(
                        workload, tool, rep, tool.resync(tree.root, BUCKET, prefix), tree, prefix, before
                    )
                else:
                    prefix = f"{workload}/{tool.name}/r{rep}"
                    self.measure(workload, tool, rep, tool.upload(tree.root, BUCKET, prefix), tree, prefix)

    # -- s3pput only ----------------------------------------------------------------------

    def memory(self) -> list[dict[str, Any]]:
        results = []
        base = self.workdir / "tiny"
        env = client_env(self.s3.env())
        for count in self.sizes.dry_run_files:
            started = time.monotonic()
            tree = workloads.make_tiny_files(base, count)
            made = time.monotonic() - started
            prefix = f"memory/{count}"
            argv = s3pput_argv(self.s3.endpoint_url, ["--dry-run", "--put", "stupid"])(
                tree.root, BUCKET, prefix
            )
            m = run_measured(argv, env, timeout=RUN_TIMEOUT)
            written = list_prefix(self.client, BUCKET, prefix).objects
            record = {"files": count, "generate_seconds": made, **m.to_dict(), "objects_written": written}
            record["verified"] = m.ok and written == 0
            log(
                f"  [memory] dry run over {count:,} files: {m.wall:.1f}s wall, peak RSS "
                f"{m.peak_rss_tree / workloads.MIB:.1f} MiB (largest process {m.max_rss_process / workloads.MIB:.1f} MiB)"
                f"{'' if record['verified'] else ' FAILED'}"
            )
            results.append(record)
            shutil.rmtree(tree.root, ignore_errors=True)
        return results

    def settings(self) -> list[dict[str, Any]]:
        tree = self.trees["small"]
        s5cmd = next((t for t in self.tools if t.name == "s5cmd"), None)
        env = client_env(self.s3.env())
        results: list[dict[str, Any]] = []
        plan: list[tuple[str, list[str] | None]] = []
        help_text = subprocess.run(
            [str(Path(sys.executable).parent / "s3pput"), "--help"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        for _rep in range(self.args.settings_reps):
            for i, (label, extra) in enumerate(sweep_settings(help_text)):
                if s5cmd is not None and i % 3 == 0:
                    plan.append(("s5cmd", None))
                plan.append((label, extra))
        if s5cmd is not None:
            plan.append(("s5cmd", None))
        for n, (label, planned) in enumerate(plan):
            prefix = f"settings/{n:02d}"
            if planned is None:
                assert s5cmd is not None
                m = run_measured(s5cmd.upload(tree.root, BUCKET, prefix), s5cmd.env, timeout=RUN_TIMEOUT)
            else:
                m = run_measured(
                    s3pput_argv(self.s3.endpoint_url, planned)(tree.root, BUCKET, prefix),
                    env,
                    timeout=RUN_TIMEOUT,
                )
            listing = list_prefix(self.client, BUCKET, prefix)
            verified = m.ok and listing.objects == tree.files
            results.append({"setting": label, "prefix": prefix, **m.to_dict(), "verified": verified})
            log(
                f"  [settings] {label:<30} {m.wall:7.2f}s wall {m.cpu:7.2f}s cpu {'ok' if verified else 'FAILED'}"
            )
        return results


def merge_scale(raw_dir: Path, measured: dict[str, Any]) -> dict[str, Any]:
    """The latest result of each scale part: this run's, else the one kept in ``raw_dir``."""
    latest = raw_dir / "scale-latest.json"
    kept = json.loads(latest.read_text()) if latest.exists() else {}
    merged = {
        part: (measured.get(part) or kept[part]) for part in scale.PARTS if part in measured or part in kept
    }
    latest.write_text(json.dumps(merged, indent=1, default=str))
    return merged


def scale_failures(measured: dict[str, Any]) -> list[str]:
    failed = []
    for name, part in measured.items():
        runs = part.get("runs", []) + part.get("cli", []) + ([part["dag"]] if "dag" in part else [])
        failed += [f"{name}: {r.get('kind') or r.get('state')}" for r in runs if not r.get("verified")]
    return failed


def only_scale(args: argparse.Namespace) -> int:
    """``--only scale``: the selected parts, then the Scale section spliced into BENCHMARKS.md."""
    raw_dir = args.raw_dir or (REPO / ".bench")
    raw_dir.mkdir(parents=True, exist_ok=True)
    output = args.output or REPO / "BENCHMARKS.md"
    workdir = Path(tempfile.mkdtemp(prefix="s3pput-bench-", dir=args.workdir))
    parts = [p for p in scale.PARTS if p in args.scale_parts.split(",")]
    log(
        f"s3pput scale benchmark ({', '.join(parts) or 'nothing: re-writing the section'}), work in {workdir}"
    )
    measured: dict[str, Any] = {}
    try:
        if parts:
            with LocalS3Server(bucket=BUCKET) as s3:
                measured = scale.run_parts(parts, s3, BUCKET, args.scale_dir, workdir, args.reps, log)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    merged = merge_scale(raw_dir, measured)
    section = scale_report.render(merged)
    document = output.read_text() if output.exists() else "# Benchmarks\n"
    output.write_text(scale_report.splice(document, section))
    log(f"\nraw data: {raw_dir / 'scale-latest.json'}\nsection written to {output}\n\n{section}")
    failed = scale_failures(measured)
    for failure in failed:
        log(f"FAILED {failure}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only == "scale":
        return only_scale(args)
    if args.render:
        rendered = json.loads(args.render.read_text())
        (args.output or REPO / "BENCHMARKS.md").write_text(report.render(rendered))
        log(report.summary(rendered))
        return 0
    started = time.monotonic()
    # s3pput is installed editable here, and PYTHONDONTWRITEBYTECODE (set on some machines) would
    # make every run recompile it (~40 ms); a user's ``pip install`` ships compiled bytecode.
    compileall.compile_dir(str(REPO / "airflow_s3pput"), quiet=1)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    raw_dir = args.raw_dir or (REPO / ".bench" / ("quick" if args.quick else ""))
    output = args.output or (raw_dir / "BENCHMARKS.md" if args.quick else REPO / "BENCHMARKS.md")
    raw_dir.mkdir(parents=True, exist_ok=True)
    selected = [w for w in WORKLOADS if w in args.workloads.split(",")]
    results: dict[str, Any] = {
        "stamp": stamp,
        "quick": args.quick,
        "reps": args.reps,
        "workloads": selected,
        "machine": machine_info(),
    }
    workdir = Path(tempfile.mkdtemp(prefix="s3pput-bench-", dir=args.workdir))
    log(f"s3pput benchmark ({'quick' if args.quick else 'full'}), work in {workdir}")
    try:
        with LocalS3Server(bucket=BUCKET) as s3:
            bench = Bench(args, s3, workdir)
            log(f"SeaweedFS at {s3.endpoint_url}; tools: {', '.join(t.name for t in bench.tools)}")
            for note in bench.notes:
                log(f"  note: {note}")
            results["tools"] = {t.name: {"version": t.version, "note": t.note} for t in bench.tools}
            results["notes"] = bench.notes
            results["sizes"] = bench.sizes.__dict__
            results.update(bench.generate(selected))
            results["trees"] = {n: {"files": t.files, "bytes": t.bytes} for n, t in bench.trees.items()}
            for workload in selected:
                bench.run_workload(workload)
            results["runs"] = bench.runs
            if not args.no_memory:
                log("memory: s3pput dry runs")
                results["memory"] = bench.memory()
            if not args.no_settings and "small" in bench.trees:
                log("settings: s3pput sweep on the small tree")
                results["settings"] = bench.settings()
            if not args.no_airflow and "small" in bench.trees:
                log("airflow: the small tree through the example DAG")
                results["airflow"] = airflow_bench.run(
                    s3,
                    BUCKET,
                    bench.trees["small"],
                    workdir,
                    bench.client,
                    standalone=not args.no_standalone,
                    log=log,
                )
            if not args.no_scale:
                parts = [p for p in scale.PARTS if p in args.scale_parts.split(",")]
                log(f"scale: {', '.join(parts)}")
                results["scale"] = scale.run_parts(parts, s3, BUCKET, args.scale_dir, workdir, args.reps, log)
    finally:
        if args.keep:
            log(f"kept the trees in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["machine"]["engine_end"] = engine_version()
    results["total_seconds"] = time.monotonic() - started
    raw = raw_dir / f"results-{stamp}.json"
    raw.write_text(json.dumps(results, indent=1, default=str))
    (raw_dir / "results-latest.json").write_text(json.dumps(results, indent=1, default=str))
    text = report.render(results)
    # The Scale section: this run's, else the one the document already had.
    previous = output.read_text() if output.exists() else ""
    if results.get("scale"):
        text = scale_report.splice(text, scale_report.render(merge_scale(raw_dir, results["scale"])))
    elif scale_report.extract(previous):
        text = scale_report.splice(text, scale_report.extract(previous) or "")
    if report.extract_far(previous):  # the far-S3 sweep is written by benchmarks.far only
        text = report.splice_far(text, report.extract_far(previous) or "")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    log(f"\nraw data: {raw}\ntables: {output}  ({results['total_seconds']:.0f}s in all)\n")
    log(report.summary(results))
    failed = [r for r in results.get("runs", []) if not r["verified"]]
    return 1 if failed or scale_failures(results.get("scale", {})) else 0


if __name__ == "__main__":
    sys.exit(main())

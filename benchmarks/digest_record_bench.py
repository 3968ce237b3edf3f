"""Unchanged re-runs with and without the digest record (issue 16), against ``s5cmd sync``.

Usage::

    .venv/bin/python -m benchmarks.digest_record_bench tree        # 4 x 512 MiB + 2,000 files
    .venv/bin/python -m benchmarks.digest_record_bench many        # 100,000 small files
    .venv/bin/python -m benchmarks.digest_record_bench tree --big-mib 64 --reps 2   # smaller

Each scenario starts SeaweedFS on loopback, generates its tree (random bytes, seeded), waits
until the files are older than the record's racy margin, uploads the tree once with s3pput
(which fills the record), then re-runs, alternating, over the unchanged tree and that prefix:

* ``s3pput`` — update with the digest record;
* ``s3pput --no-digest-cache`` — update as before the record: every file is read;
* ``s5cmd sync`` — size and mtime only (not content-exact), the speed to match;
* ``s3pput at REV`` — with ``--baseline REV`` (default ``b7b5fa0``, the code issue 16 was
  filed against: no record, and none of the listing work that came with it): the issue's
  "today's time", measured in this run from a git worktree of REV on this venv's packages.

The ``many`` tree holds files of 1-8 KiB (as the ``small`` workload), or 64 bytes with ``--tiny``.
For each run: wall time, CPU time (user + system), bytes read by the process (``rchar`` of
``/proc/PID/io``: every ``read`` call, sockets and imports included, read from the exited, not
yet reaped process),
``read_bytes`` (what came from the disk rather than the page cache), peak RSS (VmHWM, sampled),
and files put. Medians over ``--reps``; the ratios of the record's wall time to that of the run
without it and to the baseline's are printed with them. The run without the record shares the
listing, the walk and start-up with the record's, and they bound its ratio: on this machine
SeaweedFS spends ~2 s of CPU on the 100 listing pages, on the same two cores. Results print as a table and as
JSON on the last line.

The package's bytecode is compiled first, as a wheel install compiles it: the editable install
of a checkout has none, and with ``PYTHONDONTWRITEBYTECODE`` (set here) every run would compile
all of s3pput again (~0.1 s of a 2,000-file re-run, measured). ``s3pput --version`` is timed
too: the start-up (interpreter and imports) that no re-run goes below.

``--profile DIR``: after the timed re-runs, each s3pput variant runs once more under cProfile
(``DIR/<variant>.prof``; the main thread, which walks, looks up, decides and waits for the
listing) and once with ``-X importtime``; the top functions and imports are printed.
"""

from __future__ import annotations

import argparse
import compileall
import io
import json
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from airflow_s3pput.digest_record import RACY_MARGIN_NS, RECORD_FILE
from airflow_s3pput.testing.local_s3 import LocalS3Server
from benchmarks import workloads
from benchmarks.tools import client_env

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


BIN = Path(sys.executable).parent
#: the commit issue 16 was filed against (before the digest record)
BASELINE = "b7b5fa0"
BUCKET = "bench"
MIB = 1024 * 1024


@dataclass
class Run:
    label: str
    wall: float
    cpu: float  # user + system of the process and the children it waited for
    rchar: int
    read_bytes: int
    peak_rss: int
    files_put: int
    returncode: int


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def run(label: str, argv: Sequence[str], env: Mapping[str, str]) -> tuple[Run, str]:
    """Run ``argv`` to completion; its I/O counters are read before the process is reaped."""
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        proc = subprocess.Popen(list(argv), env=dict(env), stdout=out, stderr=subprocess.STDOUT)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _hwm(proc.pid))
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, still a zombie
        wall = time.monotonic() - started
        done.set()
        sampler.join()
        io = {}
        with open(f"/proc/{proc.pid}/io") as f:
            for line in f:
                name, _, value = line.partition(":")
                io[name] = int(value)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(label, wall, cpu, io["rchar"], io["read_bytes"], peak[0], -1, proc.returncode), text


def s3pput(endpoint: str, prefix: str, cache: Path, src: Path, *extra: str) -> list[str]:
    return [
        str(BIN / "s3pput"),
        "--endpoint-url",
        endpoint,
        "--bucket",
        BUCKET,
        "--prefix",
        prefix,
        "--cache-dir",
        str(cache),
        "--json",
        "--quiet",
        *extra,
        str(src),
    ]


def s5cmd(endpoint: str, verb: str, src: Path, prefix: str) -> list[str]:
    return [str(BIN / "s5cmd"), "--endpoint-url", endpoint, verb, f"{src}/", f"s3://{BUCKET}/{prefix}/"]


def files_put(label: str, text: str) -> int:
    if label.endswith("--version"):
        return 0
    if label.startswith("s5cmd"):
        return sum(1 for line in text.splitlines() if line.startswith("cp "))
    summary = json.loads(text.strip().splitlines()[-1])
    return int(summary["files_put"])


def profile(label: str, argv: Sequence[str], env: Mapping[str, str], out_dir: Path, top: int = 25) -> None:
    """Run ``argv`` (an s3pput command line) under cProfile, then with ``-X importtime``, and
    print where its main thread spent its time and which imports cost the most."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    prof = out_dir / f"{name}.prof"
    script, *rest = argv
    timed, _ = run(
        f"{label} (cProfile)", [sys.executable, "-m", "cProfile", "-o", str(prof), script, *rest], env
    )
    print(f"\n== {label} under cProfile: {timed.wall:.2f}s wall, {timed.cpu:.2f}s CPU ({prof}) ==")
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(str(prof), stream=text).sort_stats(order).print_stats(top)
        body = text.getvalue()
        print(f"-- by {order}\n" + body[body.find("ncalls") :].rstrip())
    done = subprocess.run(
        [sys.executable, "-X", "importtime", script, *rest],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    imports = []
    for line in done.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[1].strip().isdigit():
            imports.append((int(fields[1]), fields[2].rstrip()))
    # Nested imports are indented by two spaces a level, after the one space of the column.
    total = sum(us for us, module in imports if not module.startswith("  "))
    print(f"-- imports: {total / 1000:.0f} ms in all (top-level modules); the costliest, cumulative:")
    for us, module in sorted(imports, reverse=True)[:top]:
        print(f"  {us / 1000:7.1f} ms {module}")


def baseline_s3pput(checkout: Path, endpoint: str, prefix: str, src: Path) -> list[str]:
    """The s3pput of ``checkout`` (found first on the path, before the venv's editable finder),
    as ``s3pput`` above but without ``--cache-dir``: it kept no record."""
    argv = s3pput(endpoint, prefix, Path(), src)
    at = argv.index("--cache-dir")
    del argv[at : at + 2]
    program = f"import sys; sys.path.insert(0, {str(checkout)!r}); from airflow_s3pput.cli import main; sys.exit(main())"
    return [sys.executable, "-c", program, *argv[1:]]


def _baseline_checkout(rev: str, base: Path) -> Path:
    """A detached worktree of ``rev`` under ``base`` (removed with it; pruned from git below)."""
    checkout = base / f"s3pput-{rev}"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(checkout), rev], check=True
    )
    compileall.compile_dir(str(checkout / "airflow_s3pput"), quiet=1)
    return checkout


def make_tree(args: argparse.Namespace, base: Path) -> tuple[Path, int, int]:
    if args.scenario == "tree":
        root = base / "tree"
        total = workloads.write_small_files(root / "small", args.small, seed=1)
        for i in range(args.big):
            workloads.write_big_file(root / "big" / f"blob-{i}.bin", args.big_mib * MIB, seed=10 + i)
            total += args.big_mib * MIB
        return root, args.small + args.big, total
    root = base / "many"
    if args.tiny:
        return root, args.many, workloads.make_tiny_files(root, args.many).bytes
    return root, args.many, workloads.write_small_files(root, args.many, seed=1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", choices=("tree", "many"))
    parser.add_argument("--big", type=int, default=4, help="large files in the tree (default 4)")
    parser.add_argument("--big-mib", type=int, default=512, help="size of each large file (default 512)")
    parser.add_argument("--small", type=int, default=2000, help="small files in the tree (default 2000)")
    parser.add_argument("--many", type=int, default=100_000, help="files of the 'many' scenario")
    parser.add_argument("--tiny", action="store_true", help="'many' files of 64 bytes instead of 1-8 KiB")
    parser.add_argument("--reps", type=int, default=3, help="re-runs of each client (default 3)")
    parser.add_argument("--workdir", default=None, help="where the tree goes (default: a temp dir)")
    parser.add_argument(
        "--profile", metavar="DIR", default=None, help="then profile each s3pput re-run once (see above)"
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        default=BASELINE,
        help=f"s3pput revision to time beside (default {BASELINE}; '' for none)",
    )
    args = parser.parse_args(argv)

    compileall.compile_dir(str(REPO / "airflow_s3pput"), quiet=1)
    with (
        tempfile.TemporaryDirectory(prefix="dr-bench-", dir=args.workdir) as tmp,
        LocalS3Server(bucket=BUCKET) as s3,
    ):
        base = Path(tmp)
        env = client_env(s3.env())
        t0 = time.monotonic()
        src, files, total = make_tree(args, base)
        print(f"tree: {files} files, {total / MIB:.0f} MiB in {time.monotonic() - t0:.1f}s", flush=True)
        time.sleep(RACY_MARGIN_NS / 1e9 + 0.5)  # older than the racy margin: recordable
        cache = base / "cache"
        first, text = run("s3pput first upload", s3pput(s3.endpoint_url, "a", cache, src), env)
        first.files_put = files_put(first.label, text)
        print(f"s3pput first upload: {first.wall:.2f}s, {first.files_put} put", flush=True)
        record = cache / RECORD_FILE
        print(f"digest record: {record.stat().st_size / files:.0f} bytes per file", flush=True)

        baseline = _baseline_checkout(args.baseline, base) if args.baseline else None
        clients = {
            "s3pput --version": [str(BIN / "s3pput"), "--version"],
            "s3pput (record)": s3pput(s3.endpoint_url, "a", cache, src),
            "s3pput --no-digest-cache": s3pput(s3.endpoint_url, "a", cache, src, "--no-digest-cache"),
            # The objects s3pput put are newer than the files: to s5cmd, nothing to do either.
            "s5cmd sync": s5cmd(s3.endpoint_url, "sync", src, "a"),
        }
        if baseline is not None:
            clients[f"s3pput at {args.baseline}"] = baseline_s3pput(baseline, s3.endpoint_url, "a", src)
        runs: dict[str, list[Run]] = {label: [] for label in clients}
        for rep in range(args.reps):
            turn = rep % len(clients)
            order = list(clients)[turn:] + list(clients)[:turn]
            for label in order:
                result, text = run(label, clients[label], env)
                result.files_put = files_put(label, text) if result.returncode == 0 else -1
                runs[label].append(result)
                print(
                    f"  {label:26s} {result.wall:6.2f}s cpu {result.cpu:5.2f}s "
                    f"rchar {result.rchar / MIB:8.1f} MiB "
                    f"disk {result.read_bytes / MIB:7.1f} MiB rss {result.peak_rss / MIB:6.1f} MiB "
                    f"put {result.files_put} rc {result.returncode}",
                    flush=True,
                )
        if args.profile:
            for label, argv in clients.items():
                if label.startswith("s3pput") and not label.endswith("--version") and " at " not in label:
                    profile(label, argv, env, Path(args.profile))

    if args.baseline:
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=False)
    print(f"\nmedians over {args.reps} re-runs of an unchanged tree of {files} files, {total / MIB:.0f} MiB")
    header = ("wall s", "cpu s", "read MiB", "% tree", "RSS MiB", "put")
    print(f"{'client':26s} " + " ".join(f"{h:>8s}" for h in header))
    summary = {}
    for label, results in runs.items():
        wall = statistics.median(r.wall for r in results)
        cpu = statistics.median(r.cpu for r in results)
        rchar = statistics.median(r.rchar for r in results)
        rss = statistics.median(r.peak_rss for r in results)
        put = max(r.files_put for r in results)
        share = f"{100 * rchar / total:.1f}%"
        print(f"{label:26s} {wall:8.2f} {cpu:8.2f} {rchar / MIB:8.1f} {share:>8s} {rss / MIB:8.1f} {put:8d}")
        summary[label] = {
            "wall": wall,
            "cpu": cpu,
            "rchar": rchar,
            "rss": rss,
            "put": put,
            "runs": [asdict(r) for r in results],
        }
    with_record, without = (
        statistics.median(r.wall for r in runs[k]) for k in ("s3pput (record)", "s3pput --no-digest-cache")
    )
    print(f"record / no record, wall: {with_record / without:.2f}x")
    if args.baseline:
        today = statistics.median(r.wall for r in runs[f"s3pput at {args.baseline}"])
        print(f"record / s3pput at {args.baseline} (issue 16's today), wall: {with_record / today:.2f}x")
    print(json.dumps({"scenario": args.scenario, "files": files, "bytes": total, "results": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

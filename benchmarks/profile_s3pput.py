"""Where s3pput's CPU goes on the small-files workload (a) and its update re-run (b).

Usage::

    .venv/bin/python benchmarks/profile_s3pput.py [--files 5000] [--py-spy PATH] [-- EXTRA s3pput ARGS]

Starts SeaweedFS, generates the small tree, then for (a) a first upload and (b) an update re-run:

1. runs s3pput plainly and reports wall, CPU, and CPU per thread name (sampled from
   ``/proc/PID/task/*/stat``: Python threads and native threads such as the CRT's event loops
   alike), so CPU spent outside Python shows up too;
2. if py-spy is available (``pip install py-spy``; not a project dependency), runs it again under
   ``py-spy record --gil --subprocesses`` and prints ``profile_summary.py``'s breakdown of the
   samples that held the GIL: the Python-level cost per category and the top functions.

Profiles go to ``.bench/profile/``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from airflow_s3pput.testing.local_s3 import LocalS3Server
from benchmarks import workloads
from benchmarks.profile_summary import summarise
from benchmarks.tools import client_env, s3pput_argv
from benchmarks.verify import list_prefix

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


BUCKET = "bench"
TICK = os.sysconf("SC_CLK_TCK")


def thread_group(comm: str) -> str:
    """Collapse numbered thread names (``s3pput_3``, ``AwsEventLoop 2``) into one group."""
    return re.sub(r"[\s_-]*\d+$", "", comm) or comm


class ThreadCpu(threading.Thread):
    """Samples utime+stime of every thread of a process tree; keeps each thread's last value."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.threads: dict[tuple[int, int], tuple[str, float]] = {}
        self.stop_event = threading.Event()

    def pids(self) -> list[int]:
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
        return found

    def sample(self) -> None:
        for pid in self.pids():
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                        stat = f.read().decode("utf-8", "replace")
                except OSError:
                    continue
                comm = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2 :].split()
                cpu = (int(fields[11]) + int(fields[12])) / TICK
                role = "main" if pid == self.pid else "worker"
                self.threads[(pid, int(tid))] = (f"{role}: {thread_group(comm)}", cpu)

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(0.05)


def run_plain(argv: list[str], env: dict[str, str]) -> tuple[float, float, dict[str, float]]:
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sampler = ThreadCpu(proc.pid)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    sampler.stop_event.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        print(proc.stderr.read().decode()[-2000:] if proc.stderr else "", file=sys.stderr)
    by_group: dict[str, float] = {}
    for name, cpu in sampler.threads.values():
        by_group[name] = by_group.get(name, 0.0) + cpu
    return wall, usage.ru_utime + usage.ru_stime, by_group


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=5000)
    p.add_argument("--py-spy", default=shutil.which("py-spy"), help="py-spy binary (default: on PATH)")
    p.add_argument("--rate", type=int, default=200)
    p.add_argument("extra", nargs="*", help="extra s3pput arguments (after --)")
    args = p.parse_args()
    out_dir = REPO / ".bench" / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="s3pput-profile-"))
    try:
        tree = workloads.make_small(work, args.files)
        with LocalS3Server(bucket=BUCKET) as s3:
            env = client_env(s3.env())
            client = s3.client()
            argv = s3pput_argv(s3.endpoint_url, args.extra)
            # warm the server up (volume growth) with an unmeasured upload
            subprocess.run(argv(tree.root, BUCKET, "warmup"), env=env, check=False, capture_output=True)
            for n, spy in enumerate([False, True] if args.py_spy else [False]):
                prefix = f"profile/{n}"
                for phase in ("a-upload", "b-update"):
                    if spy:
                        raw = out_dir / f"{phase}.txt"
                        cmd = [
                            args.py_spy,
                            "record",
                            "--gil",
                            "--subprocesses",
                            "--rate",
                            str(args.rate),
                            "--format",
                            "raw",
                            "-o",
                            str(raw),
                            "--",
                            *argv(tree.root, BUCKET, prefix),
                        ]
                        subprocess.run(cmd, env=env, check=False, capture_output=True)
                        print(f"\n== {phase} under py-spy --gil ==")
                        print(summarise(str(raw), 20))
                    else:
                        wall, cpu, groups = run_plain(argv(tree.root, BUCKET, prefix), env)
                        objects = list_prefix(client, BUCKET, prefix).objects
                        print(
                            f"\n== {phase}: {wall:.2f}s wall, {cpu:.2f}s CPU "
                            f"({1000 * cpu / tree.files:.2f} ms/file), {objects} objects =="
                        )
                        total = sum(groups.values()) or 1
                        for name, value in sorted(groups.items(), key=lambda kv: -kv[1])[:12]:
                            print(f"  {value:6.2f}s {100 * value / total:5.1f}%  {name}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

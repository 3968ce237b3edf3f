"""Run one client command as a subprocess and measure it: wall time, CPU of its tree, peak RSS.

* wall: monotonic time from spawn to exit.
* CPU: ``os.wait4`` of the child, user + system. Linux folds the usage of every descendant that
  was waited for into its parent's, so worker processes (s3pput's pool) count as well.
* RSS: two figures, from ``/proc/PID/status`` of every process of the tree (found with psutil
  when installed, by scanning ``/proc`` otherwise), sampled at ~20 Hz. ``peak_rss_tree`` is the
  largest *sum* of VmRSS over the tree: what the job costs the machine. ``max_rss_process`` is
  the largest VmHWM (a process's own exact high-water mark) seen in the tree. wait4's
  ``ru_maxrss`` is not used: Linux carries the forking parent's high-water mark over ``exec``,
  so it reports the harness's own size for any small child.

The command runs in its own session, so a timeout ends exactly the processes it started
(``killpg`` on the group of the pid we spawned).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

try:  # psutil is optional: /proc is read directly without it
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None

SAMPLE_INTERVAL = 0.05


@dataclass
class Measurement:
    argv: list[str]
    returncode: int
    wall: float
    cpu_user: float
    cpu_sys: float
    peak_rss_tree: int  # bytes
    max_rss_process: int  # bytes
    timed_out: bool
    stdout_tail: str
    stderr_tail: str

    @property
    def cpu(self) -> float:
        return self.cpu_user + self.cpu_sys

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cpu"] = self.cpu
        return data


def _tree_pids_proc(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc (without psutil)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: the fields we want follow the last ')'
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def _tree_pids_psutil(pid: int) -> list[int]:
    try:
        return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.Error:
        return [pid]


def process_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in bytes; zeros once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


class _RssSampler(threading.Thread):
    """Samples the tree's summed VmRSS and each process's VmHWM (its own exact peak)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.pid = pid
        self.peak = 0
        self.hwm: dict[int, int] = {}
        self.stop_event = threading.Event()
        self.pids = _tree_pids_psutil if psutil is not None else _tree_pids_proc

    def sample(self) -> None:
        total = 0
        for pid in self.pids(self.pid):
            rss, hwm = process_memory(pid)
            total += rss
            if hwm > self.hwm.get(pid, 0):
                self.hwm[pid] = hwm
        self.peak = max(self.peak, total)

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(SAMPLE_INTERVAL)


def _tail(path: str, limit: int = 4000) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - limit))
        return f.read().decode("utf-8", "replace")


def run_measured(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 900.0,
    cwd: str | None = None,
) -> Measurement:
    """Run ``argv`` to completion and return its ``Measurement`` (never raises on failure)."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.monotonic()
            proc = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
            sampler = _RssSampler(proc.pid)
            sampler.start()
            timed_out = threading.Event()

            def _kill() -> None:
                timed_out.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

            timer = threading.Timer(timeout, _kill)
            timer.start()
            try:
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                timer.cancel()
            wall = time.monotonic() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            sampler.stop_event.set()
            sampler.join()
        return Measurement(
            argv=list(argv),
            returncode=proc.returncode,
            wall=wall,
            cpu_user=usage.ru_utime,
            cpu_sys=usage.ru_stime,
            peak_rss_tree=sampler.peak,
            max_rss_process=max(sampler.hwm.values(), default=0),
            timed_out=timed_out.is_set(),
            stdout_tail=_tail(out_path),
            stderr_tail=_tail(err_path),
        )

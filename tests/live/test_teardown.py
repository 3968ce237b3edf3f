"""The live fixture's teardown finds and stops processes that escaped its process groups.

No Airflow here: a stand-in component starts a child in a session of its own (as Airflow's
task processes leave their parent's group) and the teardown must report and kill it.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from airflow_s3pput.testing.live_airflow import MARKER, our_processes, stop_processes

COMPONENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=%s)
print(child.pid, flush=True)
time.sleep(120)
"""


def _start(home: Path, mark: str, *, child_escapes: bool) -> tuple[subprocess.Popen[bytes], int]:
    env = {MARKER: mark, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(
        [sys.executable, "-c", COMPONENT % child_escapes],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    return proc, child


def test_a_child_in_its_own_session_is_reported_and_killed(tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    proc, child = _start(tmp_path, mark, child_escapes=True)
    assert {p.pid for p in our_processes(tmp_path, mark)} == {proc.pid, child}

    leftovers = stop_processes({"scheduler": proc}, tmp_path, mark, grace=1.0)

    assert [int(line.split()[0]) for line in leftovers] == [child]
    deadline = time.monotonic() + 10
    while _running(child):
        assert time.monotonic() < deadline, "the leftover was not killed"
        time.sleep(0.1)
    assert our_processes(tmp_path, mark) == []


def test_a_child_in_the_group_goes_with_it(tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    proc, child = _start(tmp_path, mark, child_escapes=False)

    assert stop_processes({"scheduler": proc}, tmp_path, mark, grace=1.0) == []
    assert proc.returncode is not None
    assert not _running(child)
    assert our_processes(tmp_path, mark) == []


def _running(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False

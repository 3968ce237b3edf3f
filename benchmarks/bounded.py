"""End a benchmark command cleanly when ``timeout`` (or anyone) sends it SIGTERM.

Python's default for SIGTERM ends the process at once: ``with`` blocks do not unwind, so the
S3 server and the client being measured (each in a session of its own) would run on, orphaned.
:func:`stop_children_on_sigterm` kills the process group of each child this process started in
its own session (found by parent pid, never by name), then raises ``SystemExit`` so that the
servers' and proxies' context managers stop what they started.
"""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType


def _children(parent: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rfind(b")") + 2 :].split()[1]) == parent:
            found.append(int(name))
    return found


def _stop(signum: int, frame: FrameType | None) -> None:
    for pid in _children(os.getpid()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:  # a session of its own: a client or a server we started
                os.killpg(pid, signal.SIGKILL)
    raise SystemExit(128 + signum)


def stop_children_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, _stop)

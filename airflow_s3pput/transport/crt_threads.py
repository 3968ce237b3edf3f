"""Keep one Python thread state on each CRT thread, instead of one per call into Python.

A CRT event-loop thread has no Python thread state of its own. For every call into Python (each
~16 KiB read of a streamed part's body, each answer's headers, body and end) awscrt's
``PyGILState_Ensure`` creates one, with its 16 KiB frame stack mapped, and the matching
``PyGILState_Release`` destroys it again. A 512 MiB upload made 33,000 of these pairs (one
``mmap``/``munmap`` each): 2.25 s of CPU, 0.95 s of it in the kernel, where s5cmd takes 1.43 s.
With the state kept, 1.5 s (0.44 s in the kernel).

One more ``PyGILState_Ensure``, never released, made from within a callback keeps the state as
long as the thread lives: a handful of threads per process. awscrt calls into Python only while
the interpreter is initialized and not finalizing, and finalizing frees these states.
"""

from __future__ import annotations

import io
import os
import threading

_kept: set[int] = set()
# A forked child has none of the parent's threads; a new CRT thread of its own may get the ident
# of one that was kept (and would then go without).
os.register_at_fork(after_in_child=_kept.clear)


def keep_thread_state() -> None:
    """Call first thing in a callback the CRT runs on one of its own threads. Not on a thread
    Python started: it has a lasting state already, and a CRT thread started after it ended may
    get its ident, and then go without."""
    ident = threading.get_ident()
    if ident in _kept:
        return
    import ctypes  # here: a run that never calls back (a dry run) does not import it

    _kept.add(ident)
    ctypes.pythonapi.PyGILState_Ensure()


class BodyBytes(io.BytesIO):
    """A request body in memory that keeps the state of the CRT thread reading it: the S3
    client reads small bodies on threads that run none of our callbacks (5,000 small files:
    5,000 thread states created and destroyed on one thread)."""

    def readinto1(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        # awscrt reads with readinto1 when a stream has it (io.InputStream._read_into_memoryview)
        keep_thread_state()
        return super().readinto1(buffer)


def kept_threads() -> int:
    """How many threads keep their state (for tests)."""
    return len(_kept)

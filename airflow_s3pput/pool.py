"""Run ``PutTask`` lists on a pool: threads in this process, or processes each with threads.

Both dispatchers take lists of tasks and give futures of lists of results, so the engine does
not care which one runs. Worker processes get only picklable inputs (the options and the tasks)
and build their one S3 client inside the child, as s3transfer's ``processpool`` does: nothing
boto is picklable, and a client must not cross a fork. They start with ``spawn``, which is safe
in a process that already runs threads (an Airflow task does).
"""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Protocol

from airflow_s3pput.options import UploadOptions
from airflow_s3pput.putter import PutTask, Putter
from airflow_s3pput.stats import PutResult


class Dispatcher(Protocol):
    #: how many tasks go into one submitted list
    chunk_size: int

    def submit(self, tasks: list[PutTask]) -> Future[list[PutResult]]: ...

    def close(self) -> None: ...


class ThreadDispatcher:
    """All work in this process: one client, ``threads`` workers."""

    chunk_size = 1

    def __init__(self, options: UploadOptions, client: Any = None) -> None:
        self.putter = Putter(options, client)
        self.pool = ThreadPoolExecutor(options.threads, thread_name_prefix="s3pput")

    def submit(self, tasks: list[PutTask]) -> Future[list[PutResult]]:
        return self.pool.submit(lambda: [self.putter.put(t) for t in tasks])

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.putter.close()


class ProcessDispatcher:
    """``processes`` worker processes, each with its own client and ``threads`` workers."""

    def __init__(self, options: UploadOptions) -> None:
        # Enough tasks per submission to amortise the pickling round trip, few enough that
        # every thread of every process has work.
        self.chunk_size = max(1, options.threads)
        self.pool = ProcessPoolExecutor(
            options.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(options,),
        )

    def submit(self, tasks: list[PutTask]) -> Future[list[PutResult]]:
        return self.pool.submit(_run_tasks, tasks)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


_worker: tuple[Putter, ThreadPoolExecutor] | None = None


def _init_worker(options: UploadOptions) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and shuts us down
    _worker = (Putter(options), ThreadPoolExecutor(options.threads, thread_name_prefix="s3pput"))


def _run_tasks(tasks: list[PutTask]) -> list[PutResult]:
    assert _worker is not None, "worker process not initialised"
    putter, threads = _worker
    return list(threads.map(putter.put, tasks))


def make_dispatcher(options: UploadOptions, client: Any = None) -> Dispatcher:
    if options.processes == 1 or client is not None:
        return ThreadDispatcher(options, client)
    return ProcessDispatcher(options)

"""Run ``PutTask`` lists: in this process on the transport's own concurrency, or in processes.

Both dispatchers take lists of tasks and give futures of lists of results, so the engine does
not care which one runs. Worker processes get only picklable inputs (the options and the tasks)
and open their own transport inside the child, as s3transfer's ``processpool`` does: nothing
boto or CRT is picklable, and a client must not cross a fork. They start with ``spawn``, which is
safe in a process that already runs threads (an Airflow task does).
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from airflow_s3pput.digest_record import DigestRecord
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.putter import PutTask, Putter
from airflow_s3pput.stats import PutResult
from airflow_s3pput.transport import Transport, open_transport
from airflow_s3pput.upload_journal import UploadJournal


class Dispatcher(Protocol):
    #: how many tasks go into one submitted list
    chunk_size: int

    def submit(self, tasks: list[PutTask]) -> Future[list[PutResult]]: ...

    def cancel(self) -> None:
        """Ctrl-C: what has not started fails as interrupted; multipart uploads are aborted.
        Every submitted future still completes."""
        ...

    def close(self) -> None: ...


class InProcessDispatcher:
    """One thread reads, compares and starts PUTs; the transport completes them on its own
    threads (the CRT's event loop, or boto3's sending threads).

    With no worker thread per request, the Python cost of a small file is its read, its MD5 and
    two callbacks, which is what lets one process keep up with s5cmd. Multipart uploads (blocking
    calls) run on helper threads.
    """

    chunk_size = 16

    def __init__(
        self, options: UploadOptions, transport: Transport, journal: UploadJournal, record: DigestRecord
    ) -> None:
        self.putter = Putter(options, transport, journal, record)
        self.threshold = options.multipart_threshold
        self.large = ThreadPoolExecutor(max(2, min(options.threads, 8)), thread_name_prefix="s3pput-large")

    def submit(self, tasks: list[PutTask]) -> Future[list[PutResult]]:
        future: Future[list[PutResult]] = Future()
        results: dict[int, PutResult] = {}
        lock = threading.Lock()

        def store(index: int, result: PutResult) -> None:
            with lock:
                results[index] = result
                last = len(results) == len(tasks)
            if last:
                future.set_result([results[i] for i in range(len(tasks))])

        for index, task in enumerate(tasks):
            done = functools.partial(store, index)
            if task.size >= self.threshold:
                self.large.submit(self._put_blocking, task, done)
            else:
                self.putter.put_async(task, done)
        return future

    def _put_blocking(self, task: PutTask, done: Callable[[PutResult], None]) -> None:
        done(self.putter.put(task))

    def cancel(self) -> None:
        self.putter.cancelled.set()

    def close(self) -> None:
        self.large.shutdown(wait=True)
        self.putter.close()


class ProcessDispatcher:
    """``processes`` worker processes, each with its own transport and ``threads`` workers."""

    def __init__(self, options: UploadOptions) -> None:
        # Imported here: a one-process run (the CRT's default) never needs multiprocessing.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

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

    def cancel(self) -> None:
        # Lists not started are cancelled (their files then fail as interrupted); the workers
        # ignore SIGINT and finish the list they hold.
        self.pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


_worker: tuple[Putter, ThreadPoolExecutor] | None = None


def _init_worker(options: UploadOptions) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and shuts us down
    _worker = (
        Putter(options, open_transport(options)),
        ThreadPoolExecutor(options.threads, thread_name_prefix="s3pput"),
    )


def _run_tasks(tasks: list[PutTask]) -> list[PutResult]:
    assert _worker is not None, "worker process not initialised"
    putter, threads = _worker
    results = list(threads.map(putter.put, tasks))
    putter.record.flush()  # a worker process is never closed: what it learnt is committed now
    return results


def make_dispatcher(
    options: UploadOptions, transport: Transport, journal: UploadJournal, record: DigestRecord
) -> Dispatcher:
    """The run's own transport, journal and digest record in this process for one process,
    else worker processes (each opens its own)."""
    if options.processes == 1:
        return InProcessDispatcher(options, transport, journal, record)
    return ProcessDispatcher(options)

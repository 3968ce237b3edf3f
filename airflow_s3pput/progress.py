"""A progress meter over ``PutResult`` values: counts, rate and, when the total is known, ETA.

The CLI redraws its line on a terminal; an Airflow task logs it every few seconds. The clock is
injected so tests need no sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from airflow_s3pput.stats import PutResult


class Progress:
    def __init__(
        self,
        *,
        total_files: int | None = None,
        total_bytes: int | None = None,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self._last_shown = self.started
        self.done = 0
        self.put = 0
        self.skipped = 0
        self.failed = 0
        self.bytes = 0

    def add(self, result: PutResult) -> None:
        self.done += 1
        if result.action == "put":
            self.put += 1
            self.bytes += result.bytes
        elif result.action == "skip":
            self.skipped += 1
        else:
            self.failed += 1

    def due(self) -> bool:
        """True at most once per ``interval``: time to show the line again."""
        now = self.clock()
        if now - self._last_shown >= self.interval:
            self._last_shown = now
            return True
        return False

    def line(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        done = f"{self.done:,}" + (f"/{self.total_files:,}" if self.total_files else "")
        text = (
            f"{done} files ({self.put:,} put, {self.skipped:,} skipped, {self.failed:,} failed), "
            f"{self.bytes / 1048576:,.1f} MiB, {rate:,.0f} files/s, "
            f"{self.bytes / 1048576 / elapsed:,.1f} MiB/s"
        )
        if self.total_files and rate > 0 and self.done < self.total_files:
            text += f", ETA {(self.total_files - self.done) / rate:,.0f}s"
        return text

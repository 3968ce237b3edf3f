"""A progress meter over ``PutResult`` values: counts, rate and, when the total is known, ETA.

The CLI redraws its line on a terminal; an Airflow task logs it every few seconds. The clock is
injected so tests need no sleeping. A dry run's line says "would put" and shows no MiB/s: it
transfers nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from airflow_s3pput.stats import PutResult, StatsCollector


class Progress:
    def __init__(
        self,
        *,
        total_files: int | None = None,
        interval: float = 0.5,
        dry_run: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total_files = total_files
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self._last_shown = self.started
        self.dry_run = dry_run
        self.counts = StatsCollector(dry_run=dry_run)

    def add(self, result: PutResult) -> None:
        self.counts.add(result)

    @property
    def done(self) -> int:
        return self.counts.freeze().files_done

    def due(self) -> bool:
        """True at most once per ``interval``: time to show the line again."""
        now = self.clock()
        if now - self._last_shown >= self.interval:
            self._last_shown = now
            return True
        return False

    def line(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        stats = self.counts.freeze()
        done = stats.files_done
        rate = done / elapsed
        mib = stats.bytes_put / 1048576
        text = f"{done:,}" + (f"/{self.total_files:,}" if self.total_files else "")
        put = "would put" if self.dry_run else "put"
        text += (
            f" files ({stats.files_put:,} {put}, {stats.files_skipped:,} skipped, "
            f"{stats.failed:,} failed), {mib:,.1f} MiB {put}, {rate:,.0f} files/s"
        )
        if not self.dry_run:
            text += f", {mib / elapsed:,.1f} MiB/s"
        if self.total_files and rate > 0 and done < self.total_files:
            text += f", ETA {(self.total_files - done) / rate:,.0f}s"
        return text

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
        self.started = self._last_shown = clock()
        self.counts = StatsCollector(dry_run=dry_run)

    def add(self, result: PutResult) -> None:
        self.counts.add(result)

    @property
    def done(self) -> int:
        return self.counts.files_done

    def due(self) -> bool:
        """True at most once per ``interval``: time to show the line again."""
        now = self.clock()
        if now - self._last_shown < self.interval:
            return False
        self._last_shown = now
        return True

    def line(self) -> str:
        stats = self.counts.freeze()
        elapsed = max(self.clock() - self.started, 1e-9)
        done, total = stats.files_done, self.total_files
        rate = done / elapsed
        mib = stats.bytes_put / 2**20
        put = "would put" if stats.dry_run else "put"
        counted = f"{done:,}/{total:,}" if total else f"{done:,}"
        files = f"{stats.files_put:,} {put}, {stats.files_skipped:,} skipped, {stats.failed:,} failed"
        parts = [f"{counted} files ({files})", f"{mib:,.1f} MiB {put}", f"{rate:,.0f} files/s"]
        if not stats.dry_run:
            parts.append(f"{mib / elapsed:,.1f} MiB/s")
        if total and rate > 0 and done < total:
            parts.append(f"ETA {(total - done) / rate:,.0f}s")
        return ", ".join(parts)

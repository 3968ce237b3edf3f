"""Run statistics as one immutable value: per-file results are counted by ``StatsCollector``;
``Stats`` values from many batches (Airflow's mapped tasks) combine with ``merge``.

``to_dict`` is small and JSON-safe whatever the file count (only the first
``MAX_FAILURES_KEPT`` failures are kept with their messages), so it can travel through XCom.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_FAILURES_KEPT = 20


@dataclass(frozen=True, slots=True)
class PutResult:
    """What happened to one file. ``action`` is ``put``, ``skip`` or ``fail``, or ``delete``
    for a key removed by ``--delete`` (``path`` is then empty)."""

    path: str
    key: str
    action: str
    reason: str = ""
    bytes: int = 0
    error: str = ""


@dataclass(frozen=True)
class Stats:
    files_put: int = 0
    bytes_put: int = 0
    put_reasons: Mapping[str, int] = field(default_factory=dict)
    skipped: Mapping[str, int] = field(default_factory=dict)
    failed: int = 0
    failures: tuple[tuple[str, str], ...] = ()
    started: float = 0.0
    finished: float = 0.0
    batches: int = 1
    dry_run: bool = False
    deleted: int = 0  # keys removed by --delete (in a dry run, to remove)

    @property
    def files_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def seconds(self) -> float:
        return max(self.finished - self.started, 0.0)

    @property
    def files_per_second(self) -> float:
        return self.files_put / self.seconds if self.seconds else 0.0

    @property
    def bytes_per_second(self) -> float:
        return self.bytes_put / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def merge(self, other: Stats) -> Stats:
        """Combine two runs: counts add up, the time span covers both."""
        starts = [s for s in (self.started, other.started) if s]
        return Stats(
            files_put=self.files_put + other.files_put,
            bytes_put=self.bytes_put + other.bytes_put,
            put_reasons=dict(Counter(self.put_reasons) + Counter(other.put_reasons)),
            skipped=dict(Counter(self.skipped) + Counter(other.skipped)),
            failed=self.failed + other.failed,
            failures=(self.failures + other.failures)[:MAX_FAILURES_KEPT],
            started=min(starts) if starts else 0.0,
            finished=max(self.finished, other.finished),
            batches=self.batches + other.batches,
            dry_run=self.dry_run or other.dry_run,
            deleted=self.deleted + other.deleted,
        )

    @classmethod
    def merge_all(cls, parts: Iterable[Stats]) -> Stats:
        total: Stats | None = None
        for part in parts:
            total = part if total is None else total.merge(part)
        return total if total is not None else Stats(batches=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files_put": self.files_put,
            "bytes_put": self.bytes_put,
            "put_reasons": dict(sorted(self.put_reasons.items())),
            "files_skipped": self.files_skipped,
            "skipped": dict(sorted(self.skipped.items())),
            "files_failed": self.failed,
            "failures": [{"key": k, "error": e} for k, e in self.failures],
            "started": self.started,
            "finished": self.finished,
            "seconds": round(self.seconds, 3),
            "files_per_second": round(self.files_per_second, 1),
            "bytes_per_second": round(self.bytes_per_second, 1),
            "batches": self.batches,
            "dry_run": self.dry_run,
            "files_deleted": self.deleted,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stats:
        return cls(
            files_put=int(data["files_put"]),
            bytes_put=int(data["bytes_put"]),
            put_reasons=dict(data.get("put_reasons", {})),
            skipped=dict(data.get("skipped", {})),
            failed=int(data["files_failed"]),
            failures=tuple((f["key"], f["error"]) for f in data.get("failures", ())),
            started=float(data.get("started", 0.0)),
            finished=float(data.get("finished", 0.0)),
            batches=int(data.get("batches", 1)),
            dry_run=bool(data.get("dry_run", False)),
            deleted=int(data.get("files_deleted", 0)),
        )

    def table(self, batches: str | None = None) -> str:
        """A human summary, one fact a line, the way s3-parallel-put ended its runs.

        ``batches`` replaces the batch count's value (the Airflow reduce says how many were
        planned and missing)."""
        skipped = ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items())) or "none"
        rows = [
            ("files put" if not self.dry_run else "files to put", f"{self.files_put:,}"),
            ("files skipped", f"{self.files_skipped:,} ({skipped})"),
            ("files failed", f"{self.failed:,}"),
            (
                "bytes put" if not self.dry_run else "bytes to put",
                f"{self.bytes_put:,} ({_human(self.bytes_put)})",
            ),
            ("seconds", f"{self.seconds:.2f}"),
            ("files/s", f"{self.files_per_second:,.1f}"),
            ("bytes/s", f"{self.bytes_per_second:,.0f} ({_human(self.bytes_per_second)}/s)"),
        ]
        if self.deleted:
            rows.insert(3, ("files deleted" if not self.dry_run else "files to delete", f"{self.deleted:,}"))
        if batches is not None or self.batches != 1:
            rows.append(("batches", batches or f"{self.batches:,}"))
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        lines += [f"FAILED {one_line(key)}: {error}" for key, error in self.failures]
        if self.failed > len(self.failures):
            lines.append(f"... and {self.failed - len(self.failures)} more failures")
        return "\n".join(lines)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


class StatsCollector:
    """Counts ``PutResult`` values as they arrive; ``freeze`` gives the ``Stats``."""

    def __init__(self, *, dry_run: bool = False, clock: Any = time.time) -> None:
        self._clock = clock
        self.started = clock()
        self.dry_run = dry_run
        self.files_put = 0
        self.bytes_put = 0
        self.put_reasons: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.failed = 0
        self.failures: list[tuple[str, str]] = []
        self.deleted = 0

    def add(self, result: PutResult) -> None:
        if result.action == "put":
            self.files_put += 1
            self.bytes_put += result.bytes
            self.put_reasons[result.reason] += 1
        elif result.action == "skip":
            self.skipped[result.reason] += 1
        elif result.action == "delete":
            self.deleted += 1
        else:
            self.failed += 1
            if len(self.failures) < MAX_FAILURES_KEPT:
                self.failures.append((result.key or result.path, result.error))

    def freeze(self) -> Stats:
        return Stats(
            files_put=self.files_put,
            bytes_put=self.bytes_put,
            put_reasons=dict(self.put_reasons),
            skipped=dict(self.skipped),
            failed=self.failed,
            failures=tuple(self.failures),
            started=self.started,
            finished=self._clock(),
            dry_run=self.dry_run,
            deleted=self.deleted,
        )


def one_line(text: str) -> str:
    """``text`` with newlines and other control characters escaped, so that it prints on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)

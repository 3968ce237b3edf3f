"""Run statistics as one immutable value: ``StatsCollector`` counts the per-file results,
``Stats`` values from many batches (Airflow's mapped tasks) combine with ``merge``, and
``summarize`` turns the batches' reports into the run's ``Summary`` (the reduce stage).

``to_dict`` stays small and JSON-safe whatever the file count (only the first
``MAX_FAILURES_KEPT`` failures keep their messages), so it can travel through XCom. Timestamps
in it are ISO 8601 (UTC). A dry run's dict says ``would_put`` where a real run says ``put``, and
carries no transfer rates: it transferred nothing.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, NamedTuple

MAX_FAILURES_KEPT = 20
MAX_BATCH_ERRORS_KEPT = 20
#: the put reason of a file that an earlier try of the same Airflow run landed: a retry found it
#: in the bucket, written since the run began (``engine.landed_earlier``)
EARLIER_TRY = "earlier try"

#: How the failures that trying again cannot change begin: the walk's (a FIFO, a symlink that
#: leaves SOURCE or leads nowhere, a loop, a name S3 cannot take, an unlistable directory) and
#: the reader's (a file we may not read). A retried Airflow batch would meet them again.
PERMANENT_ERRORS = (
    "not a regular file",
    "symlink to a file outside SOURCE",
    "symlink loop",
    "broken symlink",
    "file name is not valid UTF-8",
    "key is ",
    "cannot stat:",
    "cannot list directory:",
    "cannot read:",
)


class PutResult(NamedTuple):
    """What happened to one file: ``action`` is ``put``, ``skip`` or ``fail``, or ``delete`` for
    a key removed by ``--delete`` (``path`` is then empty). A named tuple: one is made per file,
    and it is cheaper than a dataclass.

    ``retryable`` says whether trying the file again may end otherwise; ``None`` leaves it to
    ``can_retry``.
    """

    path: str
    key: str
    action: str
    reason: str = ""
    bytes: int = 0
    error: str = ""
    retryable: bool | None = None
    #: of ``bytes``, those an earlier run had sent (its multipart upload was carried on)
    resumed: int = 0
    #: the object's checksum was asked for to compare (``checksum_lookup``)
    looked_up: bool = False

    @property
    def can_retry(self) -> bool:
        """Whether a retry may change this failure (transient: a server error, a changed file)."""
        if self.retryable is not None:
            return self.retryable
        return not self.error.startswith(PERMANENT_ERRORS)


@dataclass(frozen=True)
class Stats:
    files_put: int = 0
    bytes_put: int = 0
    put_reasons: Mapping[str, int] = field(default_factory=dict)
    skipped: Mapping[str, int] = field(default_factory=dict)
    failed: int = 0
    failures: tuple[tuple[str, str], ...] = ()
    started: float = 0.0  # epoch seconds of the first file's start; 0.0: unknown
    finished: float = 0.0
    batches: int = 1
    dry_run: bool = False
    deleted: int = 0  # keys removed by --delete (in a dry run, to remove)
    #: seconds the runs took, summed: differs from ``seconds`` (the wall time) once merged
    task_seconds: float = 0.0
    #: directory symlinks the walk did not follow (no ``--follow-symlinks``): not files, so apart
    dir_symlinks_skipped: int = 0
    #: of ``bytes_put``, those already on the server from an upload that was carried on
    bytes_resumed: int = 0
    #: HEADs for an object's checksum, where its ETag could not tell (``checksum_lookup``)
    checksum_lookups: int = 0

    @property
    def files_landed_earlier(self) -> int:
        """Of ``files_put``, those an earlier try of this run put (a retry found them landed)."""
        return self.put_reasons.get(EARLIER_TRY, 0)

    @property
    def files_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def seconds(self) -> float:
        """Wall time: from the first start to the last end."""
        return max(self.finished - self.started, 0.0) if self.started else 0.0

    @property
    def files_done(self) -> int:
        """Files accounted for: put (or would be), skipped or failed."""
        return self.files_put + self.files_skipped + self.failed

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
        """Combine two runs: the wall time spans both, every other number adds up."""
        starts = [s for s in (self.started, other.started) if s]
        merged: dict[str, Any] = {
            "started": min(starts, default=0.0),
            "finished": max(self.finished, other.finished),
            "put_reasons": dict(Counter(self.put_reasons) + Counter(other.put_reasons)),
            "skipped": dict(Counter(self.skipped) + Counter(other.skipped)),
            "failures": (self.failures + other.failures)[:MAX_FAILURES_KEPT],
            "dry_run": self.dry_run or other.dry_run,
        }
        for name in (f.name for f in fields(Stats) if f.name not in merged):
            merged[name] = getattr(self, name) + getattr(other, name)
        return Stats(**merged)

    @classmethod
    def merge_all(cls, parts: Iterable[Stats]) -> Stats:
        # Stats(batches=0) is no run at all: merged with a run, it leaves that run as it is.
        return functools.reduce(cls.merge, parts, cls(batches=0))

    def to_dict(self) -> dict[str, Any]:
        put = "would_put" if self.dry_run else "put"
        data: dict[str, Any] = {
            f"files_{put}": self.files_put,
            f"bytes_{put}": self.bytes_put,
            f"{put}_reasons": dict(sorted(self.put_reasons.items())),
            "files_skipped": self.files_skipped,
            "skipped": dict(sorted(self.skipped.items())),
            "files_failed": self.failed,
            "failures": [{"key": k, "error": e} for k, e in self.failures],
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "seconds": round(self.seconds, 3),
            "task_seconds": round(self.task_seconds, 3),
            "files_deleted": self.deleted,
            "dir_symlinks_not_followed": self.dir_symlinks_skipped,
            "bytes_resumed": self.bytes_resumed,
            "checksum_lookups": self.checksum_lookups,
        }
        if not self.dry_run:
            data["files_per_second"] = round(self.files_per_second, 1)
            data["bytes_per_second"] = round(self.bytes_per_second, 1)
        return {**data, "batches": self.batches, "dry_run": self.dry_run}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stats:
        dry_run = bool(data.get("dry_run", False))
        put = "would_put" if dry_run else "put"
        return cls(
            files_put=int(data[f"files_{put}"]),
            bytes_put=int(data[f"bytes_{put}"]),
            put_reasons=dict(data.get(f"{put}_reasons", {})),
            skipped=dict(data.get("skipped", {})),
            failed=int(data["files_failed"]),
            failures=tuple((f["key"], f["error"]) for f in data.get("failures", ())),
            started=_epoch(data.get("started")),
            finished=_epoch(data.get("finished")),
            batches=int(data.get("batches", 1)),
            dry_run=dry_run,
            deleted=int(data.get("files_deleted", 0)),
            task_seconds=float(data.get("task_seconds", 0.0)),
            dir_symlinks_skipped=int(data.get("dir_symlinks_not_followed", 0)),
            bytes_resumed=int(data.get("bytes_resumed", 0)),
            checksum_lookups=int(data.get("checksum_lookups", 0)),
        )

    def table(self, batches: str | None = None) -> str:
        """A human summary, one fact a line, the way s3-parallel-put ended its runs. ``batches``
        replaces the batch count's value (the Airflow reduce says how many were planned and
        missing)."""
        put = "would put" if self.dry_run else "put"
        rows = [*self._file_rows(put), *self._transfer_rows(put), *self._time_rows(batches)]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        lines += [f"FAILED {one_line(key)}: {error}" for key, error in self.failures]
        if self.failed > len(self.failures):
            lines.append(f"... and {self.failed - len(self.failures)} more failures")
        return "\n".join(lines)

    def _file_rows(self, put: str) -> Iterator[tuple[str, str]]:
        earlier = f" ({self.files_landed_earlier:,} by an earlier try)" if self.files_landed_earlier else ""
        skipped = ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items())) or "none"
        yield f"files {put}", f"{self.files_put:,}{earlier}"
        yield "files skipped", f"{self.files_skipped:,} ({skipped})"
        yield "files failed", f"{self.failed:,}"
        if self.dir_symlinks_skipped:
            yield "dir symlinks", f"{self.dir_symlinks_skipped:,} not followed (see --follow-symlinks)"
        if self.deleted:
            yield "files to delete" if self.dry_run else "files deleted", f"{self.deleted:,}"

    def _transfer_rows(self, put: str) -> Iterator[tuple[str, str]]:
        yield f"bytes {put}", _bytes(self.bytes_put)
        if self.bytes_resumed:
            yield "bytes resumed", f"{_bytes(self.bytes_resumed)} sent by an earlier run"
        if self.checksum_lookups:
            yield "checksum lookups", f"{self.checksum_lookups:,} (objects whose ETag could not tell)"

    def _time_rows(self, batches: str | None) -> Iterator[tuple[str, str]]:
        """Merged batches show their wall and summed task time, and how many there were."""
        merged = batches is not None or self.batches != 1
        if merged:
            yield "wall seconds", f"{self.seconds:.2f} (first start to last end)"
            yield "task seconds", f"{self.task_seconds:.2f} (summed over the batches)"
        else:
            yield "seconds", f"{self.seconds:.2f}"
        if not self.dry_run:
            yield "files/s", f"{self.files_per_second:,.1f}"
            yield "bytes/s", f"{self.bytes_per_second:,.0f} ({_human(self.bytes_per_second)}/s)"
        if merged:
            yield "batches", batches or f"{self.batches:,}"


def _iso(epoch: float) -> str | None:
    if not epoch:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="milliseconds")


def _epoch(value: object) -> float:
    """An ISO timestamp (or epoch seconds, as older reports held) as epoch seconds; 0.0 if unset."""
    if value in (None, ""):
        return 0.0
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp()
    return float(value)  # type: ignore[arg-type]


def _human(n: float) -> str:
    """``n`` bytes in binary units, from ``1023 B`` and ``1.5 KiB`` up to TiB."""
    if abs(n) < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if abs(n) < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} TiB"


def _bytes(n: int) -> str:
    return f"{n:,} ({_human(n)})"


class StatsCollector:
    """Counts ``PutResult`` values as they arrive; ``freeze`` gives the ``Stats``."""

    def __init__(self, *, dry_run: bool = False, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.started = clock()
        self.dry_run = dry_run
        self.files_put = self.bytes_put = self.bytes_resumed = 0
        self.failed = self.deleted = self.checksum_lookups = 0
        self.put_reasons: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.failures: list[tuple[str, str]] = []

    @property
    def files_done(self) -> int:
        """Files accounted for so far (see ``Stats.files_done``)."""
        return self.files_put + sum(self.skipped.values()) + self.failed

    def add(self, result: PutResult, *, files: int = 1) -> None:
        """Count ``result``; a failure may stand for several ``files`` (the engine's one line for
        files that got no result of their own)."""
        self.checksum_lookups += result.looked_up
        if result.action == "put":
            self.files_put += 1
            self.bytes_put += result.bytes
            self.bytes_resumed += result.resumed
            self.put_reasons[result.reason] += 1
        elif result.action == "skip":
            self.skipped[result.reason] += 1
        elif result.action == "delete":
            self.deleted += 1
        else:
            self.failed += files
            if len(self.failures) < MAX_FAILURES_KEPT:
                self.failures.append((result.key or result.path, result.error))

    def freeze(self) -> Stats:
        finished = self._clock()
        return Stats(
            files_put=self.files_put,
            bytes_put=self.bytes_put,
            put_reasons=dict(self.put_reasons),
            skipped=dict(self.skipped),
            failed=self.failed,
            failures=tuple(self.failures),
            started=self.started,
            finished=finished,
            dry_run=self.dry_run,
            deleted=self.deleted,
            task_seconds=max(finished - self.started, 0.0),
            bytes_resumed=self.bytes_resumed,
            checksum_lookups=self.checksum_lookups,
        )


def where(result: PutResult) -> str:
    """``PATH -> KEY`` on one line, or just ``KEY`` for a key without a local file (``--delete``)."""
    if not result.path:
        return one_line(result.key)
    return f"{one_line(result.path)} -> {one_line(result.key)}"


def one_line(text: str) -> str:
    """``text`` with newlines and other control characters escaped, so that it prints on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# -- the reduce stage: the batches' reports into the run's summary -------------------------------


@dataclass(frozen=True)
class BatchReport:
    """What one planned batch reported: its stats, and why it failed when it did. A batch whose
    task died before reporting has neither (``stats is None`` and no ``error``)."""

    index: int
    label: str
    files_planned: int = 0  # what the plan put in it, so that the summary can check the accounting
    stats: Stats | None = None
    error: str = ""
    #: the try was stopped (a timeout, a kill, an error) before it accounted for every file; its
    #: ``stats`` are what it did until then
    stopped: bool = False

    @property
    def failure(self) -> str:
        """Why the batch failed: its error, or that it never reported; empty if it did not fail."""
        if self.stats is None and not self.error:
            return "did not report: its task died or never ran"
        return self.error

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.index,
            "label": self.label,
            "files_planned": self.files_planned,
            "stats": None if self.stats is None else self.stats.to_dict(),
            "error": self.error,
            "stopped": self.stopped,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchReport:
        stats = data.get("stats")
        return cls(
            index=int(data["batch"]),
            label=str(data.get("label", "")),
            files_planned=int(data.get("files_planned", 0)),
            stats=None if stats is None else Stats.from_dict(stats),
            error=str(data.get("error") or ""),
            stopped=bool(data.get("stopped", False)),
        )


@dataclass(frozen=True)
class Summary:
    """The run of a planned upload: the merged stats of the batches that reported, and what did not."""

    stats: Stats
    batches: int
    files_planned: int
    #: (index, label, error) of each batch that failed or never reported, in batch order
    batch_errors: tuple[tuple[int, str, str], ...] = ()
    batches_missing: int = 0
    #: batches whose try was stopped midway: counted in ``stats`` for what they did
    batches_stopped: int = 0
    warnings: tuple[str, ...] = ()
    bucket: str = ""
    prefix: str = ""

    @property
    def ok(self) -> bool:
        return self.stats.ok and not self.batches_missing and not self.batch_errors

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.stats.to_dict(),
            "batches": self.batches,
            "batches_missing": self.batches_missing,
            "batches_stopped": self.batches_stopped,
            "files_planned": self.files_planned,
            "batch_errors": [
                {"batch": index, "label": label, "error": error} for index, label, error in self.batch_errors
            ],
            "warnings": list(self.warnings),
            "bucket": self.bucket,
            "prefix": self.prefix,
        }

    def table(self) -> str:
        stopped = f", {self.batches_stopped:,} stopped midway" if self.batches_stopped else ""
        batches = f"{self.batches:,} planned, {self.batches_missing:,} missing{stopped}"
        lines = [self.stats.table(batches=batches)]
        lines += [f"WARNING {warning}" for warning in self.warnings]
        lines += [f"BATCH {index} {one_line(label)}: {error}" for index, label, error in self.batch_errors]
        return "\n".join(lines)

    def failure_message(self) -> str:
        """One line for a run that is not ``ok``: the counts, then each failed batch's error."""
        unfinished = self.batches_missing + self.batches_stopped
        missing = f", {unfinished} of {self.batches} batches did not finish" if unfinished else ""
        text = f"{self.stats.failed} files failed{missing}"
        errors = "; ".join(
            f"batch {index} ({one_line(label)}): {error}" for index, label, error in self.batch_errors
        )
        return f"{text}: {errors}" if errors else text

    def event_extra(self) -> dict[str, Any]:
        """What an asset event says about a successful upload: small, and no secret."""
        return {
            "files_put": self.stats.files_put,
            "bytes_put": self.stats.bytes_put,
            "files_skipped": self.stats.files_skipped,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "batches": self.batches,
            "finished": _iso(self.stats.finished),
        }


def summarize(reports: Sequence[BatchReport], *, bucket: str = "", prefix: str = "") -> Summary:
    """Merge the reports of a run's planned batches, in batch order, into its ``Summary``.

    A batch with no stats is missing; a batch with an error carries it into the summary (the
    first ``MAX_BATCH_ERRORS_KEPT``); a batch stopped midway counts what it did.
    """
    reports = sorted(reports, key=lambda r: r.index)
    reported = [(r, r.stats) for r in reports if r.stats is not None]
    errors = [(r.index, r.label, r.failure) for r in reports if r.failure]
    return Summary(
        stats=Stats.merge_all(stats for _, stats in reported),
        batches=len(reports),
        files_planned=sum(r.files_planned for r in reports),
        batch_errors=tuple(errors[:MAX_BATCH_ERRORS_KEPT]),
        batches_missing=len(reports) - len(reported),
        batches_stopped=sum(r.stopped for r, _ in reported),
        warnings=_warnings(reported, len(errors)),
        bucket=bucket,
        prefix=prefix,
    )


def _warnings(reported: list[tuple[BatchReport, Stats]], errors: int) -> tuple[str, ...]:
    """Files the finished batches did not account for (SOURCE changed between the plan and the
    puts), and the batch errors not shown."""
    finished = [(r, stats) for r, stats in reported if not r.stopped]
    planned = sum(r.files_planned for r, _ in finished)
    done = sum(stats.files_done for _, stats in finished)
    warnings = []
    if done != planned:
        warnings.append(
            f"the plan gave the batches that finished {planned:,} files and they accounted for "
            f"{done:,}: SOURCE changed between the plan and the puts"
        )
    if errors > MAX_BATCH_ERRORS_KEPT:
        warnings.append(f"{errors - MAX_BATCH_ERRORS_KEPT} more batch errors not shown")
    return tuple(warnings)

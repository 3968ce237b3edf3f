"""Split the walk of SOURCE into batches: contiguous key ranges bounded by files and bytes.

A ``Batch`` names its range by two keys, not by its files, so its descriptor (an Airflow XCom)
stays small whatever it holds. The ranges ``(after, last]`` are chained end to end, the first
open below and, when the whole walk was planned, the last open above: every key the walk yields
belongs to exactly one batch, so even a path that fails to walk is reported by one batch.
Rather than exceed ``max_batches`` (Airflow's ``[core] max_map_length``), neighbours merge.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from airflow_s3pput.errors import UsageError
from airflow_s3pput.etag import MIB
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.walker import FileEntry, KeyRange, WalkItem, check_sources, walk

#: files per batch by default: enough to spread a mapped task's start-up cost over many files,
#: few enough that a large tree still fans out over the workers
DEFAULT_BATCH_FILES = 10_000
#: bytes per batch by default: a batch of large files still ends within minutes on one worker
DEFAULT_BATCH_BYTES = 4096 * MIB
#: the batch cap when the caller has none: Airflow's default ``[core] max_map_length``
DEFAULT_MAX_BATCHES = 1024


@dataclass(frozen=True)
class BatchBounds:
    """How big one batch may grow, and how many batches there may be (``None``: the caller's cap)."""

    files: int = DEFAULT_BATCH_FILES
    bytes: int = DEFAULT_BATCH_BYTES
    max_batches: int | None = None

    def __post_init__(self) -> None:
        limits = {"batch_size": self.files, "batch_bytes": self.bytes, "max_batches": self.max_batches}
        for setting, value in limits.items():
            if value is not None and value < 1:
                raise UsageError(f"{{setting}} must be 1 or more, not {value}", setting=setting)


@dataclass(frozen=True)
class Batch:
    index: int
    after: str | None  # exclusive lower bound; None: from the start
    last: str | None  # inclusive upper bound; None: to the end
    first_key: str
    last_key: str
    files: int
    bytes: int

    @property
    def key_range(self) -> KeyRange:
        # Keys never contain NUL, so after + "\0" is the smallest key above ``after``.
        return KeyRange(None if self.after is None else self.after + "\0", self.last)

    @property
    def label(self) -> str:
        """The batch in words: its first and last key (the provider shortens long ones), its file count."""
        keys = self.first_key if self.first_key == self.last_key else f"{self.first_key} .. {self.last_key}"
        return f"{keys} ({self.files} file{'' if self.files == 1 else 's'})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Batch:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass
class _Open:
    first_key: str
    last_key: str
    files: int = 0
    bytes: int = 0


def plan(
    options: UploadOptions, bounds: BatchBounds = BatchBounds(), *, max_batches: int | None = None
) -> list[Batch]:
    """Walk what ``options`` selects and split it into batches within ``bounds``.

    ``bounds.max_batches`` caps the count, else ``max_batches``, else ``DEFAULT_MAX_BATCHES``.
    Raises ``UsageError`` for a SOURCE that cannot be walked at all.
    """
    check_sources(options.sources)
    items = walk(options.sources, options.prefix, options.selection())
    return plan_batches(
        items,
        max_files=bounds.files,
        max_bytes=bounds.bytes,
        max_batches=bounds.max_batches or max_batches or DEFAULT_MAX_BATCHES,
        limit=options.limit,
    )


def plan_batches(
    items: Iterable[WalkItem],
    *,
    max_files: int,
    max_bytes: int,
    max_batches: int,
    limit: int | None = None,
) -> list[Batch]:
    """Group the walk into batches of at most ``max_files`` files and ``max_bytes`` bytes."""
    if max_files < 1 or max_bytes < 1 or max_batches < 1:
        raise ValueError("batch bounds must be positive")
    groups, complete = _groups(items, max_files, max_bytes, limit)
    groups = _merge_to(groups, max_batches)
    batches = []
    after: str | None = None
    for index, group in enumerate(groups):
        last = None if index == len(groups) - 1 and complete else group.last_key
        batches.append(Batch(index, after, last, group.first_key, group.last_key, group.files, group.bytes))
        after = group.last_key
    return batches


def _groups(
    items: Iterable[WalkItem], max_files: int, max_bytes: int, limit: int | None
) -> tuple[list[_Open], bool]:
    """The walk (its first ``limit`` items) cut into groups within the bounds, and whether it was
    read to its end."""
    groups: list[_Open] = []
    current: _Open | None = None
    walked = iter(items)
    for item in itertools.islice(walked, limit):
        size = item.size if isinstance(item, FileEntry) else 0
        if current is None or current.files >= max_files or current.bytes + size > max_bytes:
            current = _Open(item.key, item.key)
            groups.append(current)
        current.last_key = item.key
        current.files += 1
        current.bytes += size
    return groups, next(walked, None) is None


def _merge_to(groups: list[_Open], max_batches: int) -> list[_Open]:
    if len(groups) <= max_batches:
        return groups
    per = math.ceil(len(groups) / max_batches)
    merged = []
    for start in range(0, len(groups), per):
        run = groups[start : start + per]
        merged.append(
            _Open(run[0].first_key, run[-1].last_key, sum(g.files for g in run), sum(g.bytes for g in run))
        )
    return merged

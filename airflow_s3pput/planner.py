"""Split the walk of SOURCE into batches: contiguous key ranges bounded by files and bytes.

A ``Batch`` names its range by two keys, not by its files, so its descriptor stays the same
small size whatever it holds (it travels through Airflow XCom). The ranges are half open,
``(after, last]``, chained end to end, with the first open below and — when the whole walk was
planned — the last open above: every key the walk yields belongs to exactly one batch, so even a
path that fails to walk is reported by the batch that re-walks it.

When more batches than ``max_batches`` (Airflow's ``[core] max_map_length``) would be needed,
neighbouring batches are merged rather than failing the run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from airflow_s3pput.walker import FileEntry, KeyRange, WalkItem


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
        """How the batch is named in the Airflow UI: its first and last key."""
        if self.first_key == self.last_key:
            return self.first_key
        return f"{self.first_key} .. {self.last_key}"

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
    groups: list[_Open] = []
    current: _Open | None = None
    complete = True
    for seen, item in enumerate(items):
        if limit is not None and seen >= limit:
            complete = False
            break
        size = item.size if isinstance(item, FileEntry) else 0
        if (
            current is None
            or current.files >= max_files
            or (current.bytes + size > max_bytes and current.files)
        ):
            current = _Open(item.key, item.key)
            groups.append(current)
        current.last_key = item.key
        current.files += 1
        current.bytes += size
    groups = _merge_to(groups, max_batches)
    batches = []
    after: str | None = None
    for index, group in enumerate(groups):
        is_last = index == len(groups) - 1
        last = None if is_last and complete else group.last_key
        batches.append(Batch(index, after, last, group.first_key, group.last_key, group.files, group.bytes))
        after = group.last_key
    return batches


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

"""The benchmark's source trees, generated from a seed (random bytes: nothing compresses).

=========  ===============================================  ==========================
workload   tree                                             what it stresses
=========  ===============================================  ==========================
small      5,000 files of 1-8 KiB in nested folders         per-request overhead
update     the ``small`` tree again, nothing changed         deciding what to skip
large      one 512 MiB file                                  multipart throughput
mixed      2,000 small files + 3 files of 100 MiB           both at once
=========  ===============================================  ==========================

``--quick`` shrinks every tree so that the whole run takes well under a minute.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Tree:
    """A generated source directory and what it holds."""

    name: str
    root: Path
    files: int
    bytes: int


@dataclass(frozen=True)
class Sizes:
    small_files: int
    large_bytes: int
    mixed_small: int
    mixed_large: int
    mixed_large_bytes: int
    dry_run_files: tuple[int, ...]  # trees for the memory (dry run) measurement

    @classmethod
    def full(cls) -> Sizes:
        return cls(5000, 512 * MIB, 2000, 3, 100 * MIB, (5000, 200_000))

    @classmethod
    def quick(cls) -> Sizes:
        return cls(300, 40 * MIB, 200, 2, 20 * MIB, (1000, 5000))


def small_file_path(root: Path, i: int) -> Path:
    # Three levels: 10 top folders x 10 x 5 leaves, 10 files per leaf for 5,000 files.
    return (
        root
        / f"area-{i % 10:02d}"
        / f"day-{(i // 10) % 10:02d}"
        / f"part-{(i // 100) % 5}"
        / f"obj-{i:06d}.dat"
    )


def write_small_files(
    root: Path, count: int, seed: int, *, min_size: int = KIB, max_size: int = 8 * KIB
) -> int:
    rng = random.Random(seed)
    total = 0
    made: set[Path] = set()
    for i in range(count):
        path = small_file_path(root, i)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        body = rng.randbytes(rng.randint(min_size, max_size))
        with open(path, "wb") as f:
            f.write(body)
        total += len(body)
    return total


def write_big_file(path: Path, size: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    chunk = 8 * MIB
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(chunk, left)
            f.write(rng.randbytes(n))
            left -= n


def make_small(base: Path, count: int) -> Tree:
    root = base / "small"
    total = write_small_files(root, count, seed=1)
    return Tree("small", root, count, total)


def make_large(base: Path, size: int) -> Tree:
    root = base / "large"
    write_big_file(root / "blob-512.bin", size, seed=2)
    return Tree("large", root, 1, size)


def make_mixed(base: Path, small: int, large: int, large_bytes: int) -> Tree:
    root = base / "mixed"
    total = write_small_files(root, small, seed=3)
    for i in range(large):
        write_big_file(root / "video" / f"clip-{i}.bin", large_bytes, seed=10 + i)
        total += large_bytes
    return Tree("mixed", root, small + large, total)


def make_tiny_files(base: Path, count: int) -> Tree:
    """Many 64-byte files for the dry-run memory measurement (cheap to create at 200k)."""
    root = base / f"tiny-{count}"
    made: set[Path] = set()
    for i in range(count):
        # 1,000 files per folder, in 2 levels, like a large export job would lay them out
        path = root / f"batch-{i // 10000:03d}" / f"leaf-{(i // 1000) % 10}" / f"t-{i:07d}.txt"
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"%063d\n" % i)
        finally:
            os.close(fd)
    return Tree(f"tiny-{count}", root, count, 64 * count)

"""Fill the compose stack's SOURCE volume with sample files, once, so s3pput_upload has work to do.

Run by the ``s3pput-seed`` service of docker/docker-compose.yml:

    python /opt/s3pput/docker/seed_source.py /data/outgoing --files 5000 --large 2

Small text files spread over sub-directories (enough for several batches, so the mapped put tasks
spread over both Celery workers), plus a few large files that take the multipart path. The content
is deterministic, so a second upload in ``update`` mode skips everything. A non-empty destination
is left alone: the seed never overwrites what a user put there.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

MIB = 1024 * 1024


def _text(index: int, size: int) -> bytes:
    line = f"s3pput sample file {index:07d} " + hashlib.sha256(str(index).encode()).hexdigest() + "\n"
    data = line.encode() * (size // len(line) + 1)
    return data[:size]


def seed(
    dest: Path, *, files: int, dirs: int = 50, size: int = 4096, large: int = 0, large_mib: int = 16
) -> int:
    """Write the sample tree under ``dest``; return the number of files written (0 if non-empty)."""
    if dest.exists() and any(dest.iterdir()):
        return 0
    written = 0
    for index in range(files):
        path = dest / f"dir-{index % max(dirs, 1):03d}" / f"file-{index:07d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_text(index, size))
        written += 1
    block = hashlib.sha256(b"s3pput").digest() * (MIB // 32)  # 1 MiB, deterministic
    for index in range(large):
        path = dest / "large" / f"blob-{index:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            for part in range(large_mib):
                out.write(block[: MIB - 1] + bytes([(index + part) % 256]))
        written += 1
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--files", type=int, default=5000, help="small files (default 5000)")
    parser.add_argument("--dirs", type=int, default=50, help="sub-directories (default 50)")
    parser.add_argument("--size", type=int, default=4096, help="bytes per small file (default 4096)")
    parser.add_argument("--large", type=int, default=2, help="large files (default 2)")
    parser.add_argument("--large-mib", type=int, default=16, help="MiB per large file (default 16)")
    args = parser.parse_args(argv)
    if min(args.files, args.dirs, args.size, args.large, args.large_mib) < 0:
        parser.error("counts and sizes must not be negative")

    written = seed(
        args.dest,
        files=args.files,
        dirs=args.dirs,
        size=args.size,
        large=args.large,
        large_mib=args.large_mib,
    )
    if written:
        print(f"seed_source: wrote {written} files under {args.dest}")
    else:
        print(f"seed_source: {args.dest} is not empty, left as it is")
    return 0


if __name__ == "__main__":
    sys.exit(main())

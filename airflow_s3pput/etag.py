"""Local ETags: the MD5 of single-part objects and the ``md5(part md5s)-N`` of multipart ones."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from airflow_s3pput.errors import FileChanged

MIB = 1024 * 1024
_READ = 1024 * 1024


def iter_chunks(fd: int, offset: int, length: int, chunk: int = _READ) -> Iterator[bytes]:
    """Read ``length`` bytes at ``offset`` from ``fd`` with ``pread``, ``chunk`` at a time."""
    end = offset + length
    while offset < end:
        data = os.pread(fd, min(chunk, end - offset), offset)
        if not data:
            raise FileChanged(f"file shrank while it was read (at byte {offset})")
        offset += len(data)
        yield data


def md5_range(fd: int, offset: int, length: int) -> bytes:
    digest = hashlib.md5(usedforsecurity=False)
    for data in iter_chunks(fd, offset, length):
        digest.update(data)
    return digest.digest()


def multipart_etag(part_digests: list[bytes]) -> str:
    """The ETag S3 gives an object uploaded in parts with these MD5s."""
    return hashlib.md5(b"".join(part_digests), usedforsecurity=False).hexdigest() + f"-{len(part_digests)}"


def candidate_part_sizes(size: int, parts: int, configured: int) -> list[int]:
    """Part sizes that split ``size`` bytes into exactly ``parts`` parts, most likely first.

    Uploaders use our configured size, a whole number of MiB (aws cli, s5cmd, rclone), or
    the exact ceiling division; try those instead of every possible size.
    """
    if parts <= 0 or size <= 0:
        return []
    exact = -(-size // parts)
    in_mib = -(-exact // MIB) * MIB
    seen: list[int] = []
    for candidate in (configured, in_mib, exact):
        if candidate > 0 and -(-size // candidate) == parts and candidate not in seen:
            seen.append(candidate)
    return seen

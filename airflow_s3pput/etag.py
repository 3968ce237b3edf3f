"""Local ETags: the MD5 of single-part objects and the ``md5(part md5s)-N`` of multipart ones,
and the part sizes that other uploaders use, so that ``update`` recognises their objects."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence

from airflow_s3pput.errors import FileChanged

MIB = 1024 * 1024


def iter_chunks(fd: int, offset: int, length: int, chunk: int = MIB) -> Iterator[bytes]:
    """Read ``length`` bytes at ``offset`` from ``fd`` with ``pread``, ``chunk`` at a time."""
    end = offset + length
    while offset < end:
        data = os.pread(fd, min(chunk, end - offset), offset)
        if not data:
            raise FileChanged(f"file shrank while it was read (at byte {offset})")
        offset += len(data)
        yield data


def multipart_etag(part_digests: list[bytes]) -> str:
    """The ETag S3 gives an object uploaded in parts with these MD5s."""
    return hashlib.md5(b"".join(part_digests), usedforsecurity=False).hexdigest() + f"-{len(part_digests)}"


#: S3's limit on the parts of one upload, which makes every uploader grow its part size
MAX_PARTS = 10_000
#: s3pput's default ``--part-size`` (grown by doubling past 10,000 parts: ``options.part_size_for``)
S3PPUT_PART_SIZE = 8 * MIB
#: what s3pput used before: objects it wrote then are recognised too
S3PPUT_EARLIER_PART_SIZE = 16 * MIB
#: aws cli's ``multipart_chunksize`` and boto3's ``upload_file`` (s3transfer, ``TransferConfig``),
#: also the part size of AWS's CRT S3 client (aws cli v2 with ``preferred_transfer_client = crt``)
AWS_PART_SIZE = 8 * MIB
#: s5cmd's ``--part-size`` (``defaultPartSize = 50`` MiB in ``command/cp.go``)
S5CMD_PART_SIZE = 50 * MIB
#: rclone's ``--s3-chunk-size``
RCLONE_PART_SIZE = 5 * MIB


def doubled_to_fit(part_size: int, size: int) -> int:
    """Double ``part_size`` until ``size`` fits in 10,000 parts: s3transfer's
    ``ChunksizeAdjuster`` (aws cli, boto3 ``upload_file``) and s3pput's ``part_size_for``."""
    while -(-size // part_size) > MAX_PARTS:
        part_size *= 2
    return part_size


def aws_sdk_go_part_size(part_size: int, size: int) -> int:
    """aws-sdk-go's ``s3manager`` (s5cmd): past 10,000 parts, ``size // 10000 + 1``."""
    return size // MAX_PARTS + 1 if size // part_size >= MAX_PARTS else part_size


def crt_part_size(part_size: int, size: int) -> int:
    """AWS's CRT S3 client (``aws_s3_calculate_optimal_mpu_part_size_and_num_parts``): at
    least ``ceil(size / 10000)``."""
    return max(part_size, -(-size // MAX_PARTS))


def rclone_part_size(part_size: int, size: int) -> int:
    """rclone's ``fs/chunksize.Calculator``: past 10,000 parts, ``size / 10000`` rounded up to
    a MiB, one MiB more when that still makes exactly 10,000 parts with a remainder."""
    required = size // part_size
    if required < MAX_PARTS or (required == MAX_PARTS and size % part_size == 0):
        return part_size
    chunk = -(-(size // MAX_PARTS) // MIB) * MIB
    if size // chunk == MAX_PARTS and size % MAX_PARTS != 0:
        chunk += MIB
    return chunk


def candidate_part_size_sets(size: int, parts: int, configured: int) -> list[list[int]]:
    """The part sizes to try for an object of ``size`` bytes written in ``parts`` parts, in two
    sets: what uploaders use at their default settings, then generic guesses.

    A multipart ETag (``md5(part md5s)-N``) can only be recomputed knowing the part size. The
    first set holds the uploaders' defaults, grown as each grows them past 10,000 parts: ours
    (``configured``, s3pput's default and its earlier one), aws cli and boto3 ``upload_file``,
    the AWS CRT, s5cmd and rclone. These rarely give the same N for one size, so an unchanged
    file is usually recognised with one MD5 of its content. The second set, read only when the
    first matched nothing, holds the fewest whole MiB that give N parts (tools configured in
    MiB) and the exact ceiling division. Sizes that do not give exactly N parts are left out;
    for one part, one size stands for all.
    """
    if parts <= 0 or size <= 0:
        return []
    exact = -(-size // parts)
    defaults = [
        configured,
        doubled_to_fit(S3PPUT_PART_SIZE, size),
        doubled_to_fit(S3PPUT_EARLIER_PART_SIZE, size),
        doubled_to_fit(AWS_PART_SIZE, size),
        crt_part_size(AWS_PART_SIZE, size),
        aws_sdk_go_part_size(S5CMD_PART_SIZE, size),
        rclone_part_size(RCLONE_PART_SIZE, size),
    ]
    first = _cutting_into(parts, size, defaults)
    second = [c for c in _cutting_into(parts, size, [-(-exact // MIB) * MIB, exact]) if c not in first]
    if parts == 1:  # the whole content whatever the size: every candidate gives the same ETag
        return [(first + second)[:1]]
    return [candidates for candidates in (first, second) if candidates]


def _cutting_into(parts: int, size: int, part_sizes: list[int]) -> list[int]:
    """The part sizes, each once and in order, that cut ``size`` bytes into exactly ``parts``
    (a part size of 0 stands for none configured)."""
    return [p for p in dict.fromkeys(part_sizes) if p > 0 and -(-size // p) == parts]


class PartHasher:
    """The multipart ETag of a byte stream cut into parts of ``part_size``, fed in any chunks.

    The part MD5s go into a running MD5 as each part ends, so memory stays flat whatever the
    part count; several hashers fed the same chunks give several candidates' ETags in one read.
    """

    __slots__ = ("_filled", "_outer", "_part", "_parts", "part_size")

    def __init__(self, part_size: int) -> None:
        self.part_size = part_size
        self._outer = hashlib.md5(usedforsecurity=False)
        self._part = hashlib.md5(usedforsecurity=False)
        self._filled = 0
        self._parts = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            room = self.part_size - self._filled
            if len(view) < room:
                self._part.update(view)
                self._filled += len(view)
                return
            self._part.update(view[:room])
            view = view[room:]
            self._end_part()

    def _end_part(self) -> None:
        self._outer.update(self._part.digest())
        self._parts += 1
        self._part = hashlib.md5(usedforsecurity=False)
        self._filled = 0

    def etag(self) -> str:
        """The ETag of everything fed so far (call once, at the end)."""
        if self._filled or not self._parts:
            self._end_part()
        return f"{self._outer.hexdigest()}-{self._parts}"


def multipart_etags(chunks: Iterable[bytes | memoryview], part_sizes: Sequence[int]) -> list[str]:
    """The multipart ETag for each of ``part_sizes``, from ONE pass over ``chunks``."""
    hashers = [PartHasher(part_size) for part_size in part_sizes]
    for chunk in chunks:
        for hasher in hashers:
            hasher.update(chunk)
    return [hasher.etag() for hasher in hashers]

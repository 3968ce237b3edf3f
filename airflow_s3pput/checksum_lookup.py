"""Whether an object holds a file's bytes when its listed ETag cannot say: ask for its checksum.

On a bucket with SSE-KMS, DSSE-KMS or SSE-C the ETag is opaque, and an object another tool wrote
in parts of an unknown size has an ETag no guess recomputes: where the digest record remembers
nothing of it, ``update`` would put such an object of the file's size again. One HeadObject
with checksum mode reads its full-object checksum instead (CRC64NVME, which S3 keeps for every
object written since 2025, or a CRC32C/CRC32 another SDK sent) to compare with the file's; a
composite checksum or none: the file is put.

An MD5-shaped ETag on a plain bucket is an MD5, and one that differs means other bytes: a HEAD
would be wasted. The listing cannot tell those from SSE-KMS ones (both are 32 hex digits), so
the first answer naming no KMS or customer encryption turns look-ups of MD5-shaped ETags off.
"""

from __future__ import annotations

from collections.abc import Iterable

from airflow_s3pput.checksums import full_object_checksum
from airflow_s3pput.errors import S3Error
from airflow_s3pput.transport.interface import Stored, Transport


class ChecksumLookup:
    """The look-ups of one putter, from its threads without a lock: the one flag they share
    only ever turns on, and a thread that misses it sends one HEAD more."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        #: an answer showed this bucket's MD5-shaped ETags are MD5s
        self._md5_etags = False

    def worth_asking(self, listed_etag: str) -> bool:
        """Whether a HEAD may show an object of the file's size holds its bytes although its
        listed ETag is not the file's: not when the ETag is an MD5 that differs."""
        return not (self._md5_etags and _single_part_md5(Stored(listed_etag)))

    def same_content(self, key: str, listed_etag: str, chunks: Iterable[bytes | memoryview]) -> bool:
        """Whether the object under ``key`` (still the one listed) holds the bytes ``chunks``
        yields, by its full-object checksum; false when it cannot tell."""
        try:
            head = self.transport.head_object(key)
        except S3Error:
            return False  # an SSE-C object without its key, a refusal: put it
        if head is None or head.etag != listed_etag:
            return False  # deleted or rewritten since the listing
        if _single_part_md5(Stored(head.etag, head.encryption)):
            self._md5_etags = True
            return False  # an MD5 that is not the file's
        for algorithm, value in head.checksums.items():
            return full_object_checksum(algorithm, chunks) == value  # the first: ``chunks`` is read once
        return False


def _single_part_md5(stored: Stored) -> bool:
    """Whether the ETag is the MD5 of the whole object (not of its parts' MD5s)."""
    return stored.etag_is_md5 and "-" not in stored.etag

"""CRC64NVME, the checksum S3 keeps for every object written since 2025 and the one s3pput sends.

A PUT carries it beside its Content-MD5: the server checks the bytes against both and stores the
CRC with the object, where a HEAD with checksum mode reads it back. Unlike an ETag it is the
same whatever the encryption (SSE-KMS, SSE-C) and, as a full-object checksum, whatever the part
size, so it compares an object with a file by content where the ETag cannot
(``checksum_lookup``). awscrt's public ``checksums`` module computes it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterable

from awscrt.checksums import combine_crc64nvme, crc32, crc32c
from awscrt.checksums import crc64nvme as _crc64nvme

from airflow_s3pput.etag import iter_chunks

#: the S3 parameter (boto3's name) that carries it, and its header
PARAM = "ChecksumCRC64NVME"
HEADER = "x-amz-checksum-crc64nvme"
#: what starts a multipart upload whose parts carry it and whose object keeps the whole's
MULTIPART_PARAMS = {"ChecksumAlgorithm": "CRC64NVME", "ChecksumType": "FULL_OBJECT"}

log = logging.getLogger(__name__)


def crc64nvme(data: bytes | memoryview) -> int:
    return int(_crc64nvme(data))


def md5_and_crc64nvme(fd: int, offset: int, length: int) -> tuple[bytes, int]:
    """The MD5 and the CRC64NVME of ``length`` bytes at ``offset``, in one read: a part's."""
    md5 = hashlib.md5(usedforsecurity=False)
    crc = 0
    for data in iter_chunks(fd, offset, length):
        md5.update(data)
        crc = _crc64nvme(data, crc)
    return md5.digest(), crc


def combined(crcs: list[tuple[int, int]]) -> int:
    """The CRC of consecutive pieces from each piece's ``(crc, length)``: the full-object CRC of
    a multipart upload from its parts' CRCs, without reading a byte again."""
    total = 0
    for crc, length in crcs:
        total = combine_crc64nvme(total, crc, length)
    return total


def encode(crc: int, width: int = 8) -> str:
    """As S3 writes it: the ``width`` bytes (8 for CRC64NVME), big-endian, in base64."""
    return base64.b64encode(crc.to_bytes(width, "big")).decode()


class ChecksumSupport:
    """Whether this process sends checksum headers: until the store first refuses one (older
    S3-compatible stores), then Content-MD5 alone guards the bytes, after one warning."""

    def __init__(self) -> None:
        self.on = True

    def refused(self, error: Exception | None) -> None:
        if self.on:
            self.on = False
            log.warning("s3pput: warning: the server refused a request carrying %s (%s): Content-MD5 "
                        "alone guards the bytes from now on", HEADER, error)  # fmt: skip


#: S3's checksum algorithms that awscrt computes: the function and the width in bytes
_ALGORITHMS: dict[str, tuple[Callable[[bytes | memoryview, int], int], int]] = {
    "CRC64NVME": (_crc64nvme, 8),
    "CRC32C": (crc32c, 4),
    "CRC32": (crc32, 4),
}


def full_object_checksum(algorithm: str, chunks: Iterable[bytes | memoryview]) -> str:
    """The checksum ``algorithm`` (S3's name) of the bytes ``chunks`` yields, as S3 writes it."""
    function, width = _ALGORITHMS[algorithm]
    crc = 0
    for chunk in chunks:
        crc = function(chunk, crc)
    return encode(crc, width)

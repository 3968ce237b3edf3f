"""What we store for a file: its content type, whether it is gzipped, and its local ETag.

Gzip output is deterministic (level fixed, ``mtime=0``, no file name in the header), so an
unchanged file gzips to the same bytes on every run and ``update`` can recognise it — the
original tool's gzip header carried a timestamp and re-uploaded everything each time.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from functools import cached_property, lru_cache
from typing import BinaryIO

from airflow_s3pput.etag import MIB, candidate_part_size_sets, iter_chunks, multipart_etags

DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: what ``--gzip`` compresses unless told otherwise: the original's html/css/javascript plus
#: the other text formats that compress well
DEFAULT_GZIP_TYPES = (
    "text/html",
    "text/css",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "application/json",
    "application/xml",
    "text/xml",
    "image/svg+xml",
    "text/plain",
    "text/csv",
    "text/markdown",
)
ALL_TYPES = "all"


def guess_content_type(name: str) -> str:
    content_type, encoding = mimetypes.guess_type(name, strict=False)
    if encoding == "gzip" and content_type is None:
        return "application/gzip"
    return content_type or DEFAULT_CONTENT_TYPE


def should_gzip(name: str, content_type: str, gzip_types: Collection[str]) -> bool:
    """Compress this file? Never one that is already compressed (``.gz``, ``.br``, ...).

    ``gzip_types`` are MIME types, compared without regard to case as MIME types are
    (``TEXT/CSS`` is ``text/css``); ``text/*`` stands for every ``text/`` type."""
    # Only the encoding is read here, and strictness never changes it (it picks the type table).
    if mimetypes.guess_type(name)[1] is not None:
        return False
    exact, families = _type_sets(tuple(gzip_types))
    if ALL_TYPES in exact or "*" in families:  # "*/*" is every type too
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    family, slash, _ = media_type.partition("/")
    return media_type in exact or (bool(slash) and family in families)


@lru_cache(maxsize=8)
def _type_sets(gzip_types: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """The exact types (lowercase) and the families of the ``family/*`` types: once per run."""
    lowered = [t.strip().lower() for t in gzip_types]
    families = frozenset(t[:-2] for t in lowered if t.endswith("/*"))
    return frozenset(t for t in lowered if not t.endswith("/*")), families


def gzip_bytes(data: bytes, level: int) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def gzip_to_tempfile(fd: int, level: int) -> BinaryIO:
    """Compress a large file, streaming, into an unnamed file in TMPDIR for multipart upload."""
    tmp = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    with (
        gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=tmp, mtime=0) as gz,
        os.fdopen(os.dup(fd), "rb") as src,
    ):
        src.seek(0)
        shutil.copyfileobj(src, gz, MIB)
    tmp.flush()
    return tmp


class Content:
    """The bytes we would store for one file, hashed lazily for the modes that need it."""

    def __init__(self, size: int, part_size: int) -> None:
        self.stored_size = size
        self._part_size = part_size
        self._multipart: dict[int, str] = {}

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The stored bytes from first to last, a bounded piece at a time."""
        raise NotImplementedError

    @cached_property
    def md5(self) -> bytes:
        digest = hashlib.md5(usedforsecurity=False)
        for chunk in self.chunks():
            digest.update(chunk)
        return digest.digest()

    def matches_etag(self, etag: str) -> bool:
        """Whether ``etag`` (listed) is the ETag of these bytes, uploaded whole or in parts.

        A multipart ETag is compared with those of ``etag.candidate_part_size_sets``, a set per
        read of the content: the guesses are read only when no uploader's default matched.
        """
        etag = etag.strip('"').lower()
        digest, sep, count = etag.partition("-")
        if not sep:
            return digest == self.md5.hex()
        if not count.isdigit():
            return False
        for part_sizes in candidate_part_size_sets(self.stored_size, int(count), self._part_size):
            etags = multipart_etags(self.chunks(), part_sizes)
            self._multipart.update(zip(part_sizes, etags, strict=True))  # what the digest record keeps
            if etag in etags:
                return True
        return False

    def multipart_etag(self, part_size: int) -> str:
        if part_size not in self._multipart:
            self._multipart[part_size] = multipart_etags(self.chunks(), [part_size])[0]
        return self._multipart[part_size]


class BytesContent(Content):
    def __init__(self, data: bytes, part_size: int) -> None:
        super().__init__(len(data), part_size)
        self.data = data

    def chunks(self) -> Iterator[bytes | memoryview]:
        yield self.data


class FileContent(Content):
    """Content read from an open file descriptor with ``pread``: never held in memory whole."""

    def __init__(self, fd: int, size: int, part_size: int) -> None:
        super().__init__(size, part_size)
        self.fd = fd

    def chunks(self) -> Iterator[bytes | memoryview]:
        return iter_chunks(self.fd, 0, self.stored_size)

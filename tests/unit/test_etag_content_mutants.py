"""Local ETags and stored content, the edges mutation testing found unchecked."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pytest

from airflow_s3pput.content import (
    DEFAULT_GZIP_TYPES,
    BytesContent,
    FileContent,
    guess_content_type,
    gzip_bytes,
    gzip_to_tempfile,
    should_gzip,
)
from airflow_s3pput.etag import (
    MIB,
    S3PPUT_PART_SIZE,
    PartHasher,
    candidate_part_sizes,
    md5_range,
    multipart_etag,
)


@pytest.mark.parametrize(
    ("size", "parts", "configured", "expected"),
    [
        # one part is the whole content whatever the part size: one candidate stands for all
        pytest.param(1, 1, 5 * MIB, [5 * MIB], id="one-byte-one-part"),
        pytest.param(3, 3, 5 * MIB, [1], id="one-byte-parts"),
        pytest.param(10, 1, 0, [S3PPUT_PART_SIZE], id="no-configured-size"),
        pytest.param(0, 1, 5 * MIB, [], id="empty"),
        pytest.param(10, 0, 5 * MIB, [], id="no-parts"),
    ],
)
def test_candidate_part_sizes_edges(size: int, parts: int, configured: int, expected: list[int]) -> None:
    assert candidate_part_sizes(size, parts, configured) == expected


def test_a_one_byte_file_in_one_part_matches_its_multipart_etag() -> None:
    content = BytesContent(b"x", 5 * MIB)
    assert content.matches_etag(multipart_etag([hashlib.md5(b"x").digest()]))


def test_file_content_matches_a_multipart_etag_at_its_part_size(tmp_path: Path) -> None:
    data = os.urandom(3 * 1000)
    (tmp_path / "f").write_bytes(data)
    etag = multipart_etag([hashlib.md5(data[i : i + 1000]).digest() for i in range(0, len(data), 1000)])
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert FileContent(fd, len(data), 1000).matches_etag(etag)
        assert not FileContent(fd, len(data), 1000).matches_etag(etag.replace("-3", "-2"))
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("etag", "matches"),
    [
        pytest.param('"{md5}"', True, id="quoted"),
        pytest.param("{MD5}", True, id="upper-case"),
        pytest.param('"{md5}X"', False, id="trailing-garbage"),
        pytest.param('"X{md5}"', False, id="leading-garbage"),
    ],
)
def test_matches_etag_strips_only_quotes(etag: str, matches: bool) -> None:
    md5 = hashlib.md5(b"data").hexdigest()
    assert BytesContent(b"data", 5 * MIB).matches_etag(etag.format(md5=md5, MD5=md5.upper())) is matches


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("a.pict", "image/pict", id="known-only-to-the-non-strict-table"),
        pytest.param("a.tar.gz", "application/x-tar", id="type-under-gzip-encoding"),
        pytest.param("a.gz", "application/gzip", id="bare-gzip"),
        pytest.param("noext", "application/octet-stream", id="unknown"),
    ],
)
def test_guess_content_type(name: str, expected: str) -> None:
    assert guess_content_type(name) == expected


def test_should_gzip_reads_the_type_before_the_first_parameter() -> None:
    assert should_gzip("a.txt", "text/plain; charset=utf-8; format=flowed", DEFAULT_GZIP_TYPES)


def test_gzip_bytes_uses_the_level_it_is_given() -> None:
    data = os.urandom(2000) * 50
    fast, best = gzip_bytes(data, 1), gzip_bytes(data, 9)
    assert fast == gzip.compress(data, compresslevel=1, mtime=0)
    assert best == gzip.compress(data, compresslevel=9, mtime=0)
    assert fast != best


def test_gzip_to_tempfile_uses_the_level_and_the_spool_dir(tmp_path: Path) -> None:
    data = os.urandom(2000) * 50
    (tmp_path / "f").write_bytes(data)
    spool = tmp_path / "spool"
    spool.mkdir()
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        outputs = {}
        for level in (1, 9):
            with gzip_to_tempfile(fd, level, spool_dir=str(spool)) as tmp:
                # An unnamed file (O_TMPFILE) still shows the directory it lives in.
                assert os.readlink(f"/proc/self/fd/{tmp.fileno()}").startswith(f"{spool}/")
                tmp.seek(0)
                outputs[level] = tmp.read()
    finally:
        os.close(fd)
    assert gzip.decompress(outputs[1]) == gzip.decompress(outputs[9]) == data
    assert outputs[1] != outputs[9]
    assert (outputs[1][8], outputs[9][8]) == (4, 2)  # the header's XFL: fastest, best compression


REAL_MD5 = hashlib.md5


def fips_md5(data: bytes = b"", *, usedforsecurity: bool = True) -> hashlib._Hash:
    """``hashlib.md5`` as on a host whose OpenSSL runs in FIPS mode: MD5 for security is refused
    (``ValueError: [digital envelope routines] unsupported``); the flag is read for its truth,
    as CPython reads it."""
    if usedforsecurity:
        raise ValueError("[digital envelope routines] unsupported")
    return REAL_MD5(data, usedforsecurity=False)


def test_etags_work_on_a_fips_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An ETag is a checksum, not security: every MD5 we take says so, or a FIPS host refuses it.
    data = os.urandom(2500)
    (tmp_path / "f").write_bytes(data)
    parts = [REAL_MD5(data[i : i + 1000]).digest() for i in range(0, len(data), 1000)]
    expected = REAL_MD5(b"".join(parts)).hexdigest() + "-3"
    monkeypatch.setattr(hashlib, "md5", fips_md5)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert md5_range(fd, 0, len(data)) == REAL_MD5(data).digest()
    finally:
        os.close(fd)
    assert multipart_etag(parts) == expected
    hasher = PartHasher(1000)  # three parts: a fresh part MD5 after each full one
    hasher.update(data)
    assert hasher.etag() == expected
    assert BytesContent(data, 1000).matches_etag(expected)
    assert BytesContent(data, 1000).md5 == REAL_MD5(data).digest()
    assert BytesContent(data, 1000).md5_range(100, 1000) == REAL_MD5(data[100:1100]).digest()


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        pytest.param(0, 2500, id="whole"),
        pytest.param(0, 10, id="head"),
        pytest.param(100, 1000, id="middle"),
        pytest.param(2495, 5, id="tail"),
        pytest.param(7, 0, id="empty"),
    ],
)
def test_md5_of_a_range_of_the_content(tmp_path: Path, offset: int, length: int) -> None:
    data = os.urandom(2500)
    (tmp_path / "f").write_bytes(data)
    expected = hashlib.md5(data[offset : offset + length]).digest()
    assert BytesContent(data, 1000).md5_range(offset, length) == expected
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert FileContent(fd, len(data), 1000).md5_range(offset, length) == expected
        assert FileContent(fd, len(data), 1000).md5 == hashlib.md5(data).digest()
    finally:
        os.close(fd)

"""Local ETags, candidate part sizes, deterministic gzip, content types."""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from airflow_s3pput.errors import FileChanged
from airflow_s3pput.etag import (
    MIB,
    S3PPUT_PART_SIZE,
    PartHasher,
    candidate_part_size_sets,
    iter_chunks,
    multipart_etag,
)
from airflow_s3pput.upload_body import (
    DEFAULT_CONTENT_TYPE,
    DEFAULT_GZIP_TYPES,
    BytesContent,
    FileContent,
    guess_content_type,
    gzip_bytes,
    gzip_to_tempfile,
    should_gzip,
)


def reference_multipart_etag(data: bytes, part_size: int) -> str:
    """What S3 answers for a multipart upload: md5 of the concatenated part MD5s, dash, count."""
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f"{hashlib.md5(joined).hexdigest()}-{len(parts)}"


def candidate_part_sizes(size: int, parts: int, configured: int) -> list[int]:
    """The candidate part sizes in the order they are tried: the sets one after the other."""
    return [part for group in candidate_part_size_sets(size, parts, configured) for part in group]


DATA = os.urandom(3 * 1024 + 17)


@pytest.mark.parametrize(
    "part_size",
    [
        pytest.param(1024, id="4-parts"),
        pytest.param(3 * 1024 + 17, id="1-part"),
        pytest.param(1000, id="odd"),
    ],
)
def test_multipart_etag_matches_reference(tmp_path: Path, part_size: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    expected = reference_multipart_etag(DATA, part_size)
    assert BytesContent(DATA, part_size).multipart_etag(part_size) == expected
    fd = os.open(path, os.O_RDONLY)
    try:
        assert FileContent(fd, len(DATA), part_size).multipart_etag(part_size) == expected
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("etag", "configured", "matches"),
    [
        pytest.param(hashlib.md5(DATA).hexdigest(), 1024, True, id="single-part-md5"),
        pytest.param('"' + hashlib.md5(DATA).hexdigest().upper() + '"', 1024, True, id="quoted-upper"),
        pytest.param("0" * 32, 1024, False, id="other-md5"),
        pytest.param(reference_multipart_etag(DATA, 1024), 1024, True, id="multipart-our-part-size"),
        pytest.param(reference_multipart_etag(DATA, 773), 2048, True, id="multipart-exact-division"),
        pytest.param(reference_multipart_etag(DATA, 1000), 1024, False, id="multipart-unguessable-size"),
        pytest.param(reference_multipart_etag(DATA, 1024)[:-1] + "9", 1024, False, id="wrong-part-count"),
        pytest.param("abc-x", 1024, False, id="malformed-count"),
        pytest.param("", 1024, False, id="empty"),
    ],
)
def test_matches_etag(etag: str, configured: int, matches: bool) -> None:
    assert BytesContent(DATA, configured).matches_etag(etag) is matches


def test_matches_etag_of_whole_mib_parts() -> None:
    # Another tool split the file into the fewest whole MiB that give 3 parts; we use 5 MiB.
    data = b"x" * (17 * MIB + 3)
    assert BytesContent(data, 5 * MIB).matches_etag(reference_multipart_etag(data, 6 * MIB))


def test_empty_content() -> None:
    content = BytesContent(b"", 5 * MIB)
    assert content.matches_etag(hashlib.md5(b"").hexdigest())
    assert not content.matches_etag(reference_multipart_etag(b"x", 5 * MIB))


@pytest.mark.parametrize(
    ("size", "parts", "configured", "expected"),
    [
        pytest.param(12 * MIB, 3, 5 * MIB, [5 * MIB, 4 * MIB], id="configured-first-then-exact-mib"),
        pytest.param(12 * MIB, 2, 5 * MIB, [8 * MIB, 6 * MIB], id="configured-wrong-count-aws-default"),
        pytest.param(10 * MIB + 1, 2, 8 * MIB, [8 * MIB, 6 * MIB, 5 * MIB + 1], id="mib-and-exact"),
        pytest.param(100, 1, 5 * MIB, [5 * MIB], id="one-part-one-candidate"),
        pytest.param(17 * MIB, 3, 16 * MIB, [8 * MIB, 6 * MIB, 17 * MIB // 3 + 1], id="aws-cli-before-mib"),
        pytest.param(56 * MIB, 2, 16 * MIB, [50 * MIB, 28 * MIB], id="s5cmd-before-mib"),
        pytest.param(0, 1, 5 * MIB, [], id="empty-file"),
        pytest.param(100, 0, 5 * MIB, [], id="zero-parts"),
        pytest.param(100, 200, 5 * MIB, [], id="more-parts-than-bytes"),
    ],
)
def test_candidate_part_sizes(size: int, parts: int, configured: int, expected: list[int]) -> None:
    got = candidate_part_sizes(size, parts, configured)
    assert got == expected
    for part in got:
        assert -(-size // part) == parts


def test_chunks_of_a_range_and_short_read(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert b"".join(iter_chunks(fd, 100, 1000, chunk=300)) == DATA[100:1100]
        assert b"".join(iter_chunks(fd, 0, len(DATA), chunk=100)) == DATA
        with pytest.raises(FileChanged, match="shrank"):
            FileContent(fd, len(DATA) + 1, 1000).md5  # noqa: B018 - reading it is the point
    finally:
        os.close(fd)


# --- gzip ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [pytest.param(1, id="level-1"), pytest.param(9, id="level-9")])
def test_gzip_bytes_is_deterministic(level: int) -> None:
    data = b"hello world\n" * 1000
    first = gzip_bytes(data, level)
    assert gzip_bytes(data, level) == first
    assert gzip.decompress(first) == data
    assert first[4:8] == b"\0\0\0\0"  # header mtime is zero


def test_gzip_to_tempfile_is_deterministic_and_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(1000) * 3000  # ~3 MB, compressible
    path = tmp_path / "big.txt"
    path.write_bytes(data)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fd = os.open(path, os.O_RDONLY)
    try:
        outputs = []
        # Two runs a day apart by the clock gzip would stamp into its header: the same bytes.
        for now in (1_700_000_000.0, 1_700_086_400.0):
            with pytest.MonkeyPatch.context() as clock:
                clock.setattr(gzip.time, "time", lambda now=now: now)
                tmp = gzip_to_tempfile(fd, 6)
            tmp.seek(0)
            outputs.append(tmp.read())
            tmp.close()
    finally:
        os.close(fd)
    assert outputs[0] == outputs[1]
    header = outputs[0][:10]
    assert header[:3] == b"\x1f\x8b\x08"  # gzip, deflate
    assert header[3] & 0x08 == 0  # FLG.FNAME unset: no file name in the header
    assert header[4:8] == b"\0\0\0\0"  # MTIME zero: independent of when it ran
    assert gzip.decompress(outputs[0]) == data
    assert list(tmp_path.iterdir()) == [path]  # the spool file is unnamed


@pytest.mark.parametrize(
    ("name", "content_type", "types", "expected"),
    [
        pytest.param("a.html", "text/html", DEFAULT_GZIP_TYPES, True, id="html"),
        pytest.param("a.css", "text/css", DEFAULT_GZIP_TYPES, True, id="css"),
        pytest.param("a.js", "text/javascript", DEFAULT_GZIP_TYPES, True, id="js"),
        pytest.param("a.json", "application/json", DEFAULT_GZIP_TYPES, True, id="json"),
        pytest.param("a.xml", "application/xml", DEFAULT_GZIP_TYPES, True, id="xml"),
        pytest.param("a.svg", "image/svg+xml", DEFAULT_GZIP_TYPES, True, id="svg"),
        pytest.param("a.txt", "text/plain", DEFAULT_GZIP_TYPES, True, id="plain"),
        pytest.param("a.txt", "Text/Plain; charset=utf-8", DEFAULT_GZIP_TYPES, True, id="params-case"),
        pytest.param("a.png", "image/png", DEFAULT_GZIP_TYPES, False, id="png-not"),
        pytest.param("a.bin", "application/octet-stream", DEFAULT_GZIP_TYPES, False, id="binary-not"),
        pytest.param("a.png", "image/png", ("all",), True, id="all-types"),
        pytest.param("a.png", "image/png", ("image/png",), True, id="custom-type"),
        pytest.param("a.html", "text/html", ("image/png",), False, id="custom-type-excludes-html"),
        pytest.param("a.txt.gz", "text/plain", ("all",), False, id="already-gzip-never"),
        pytest.param("a.css.br", "text/css", DEFAULT_GZIP_TYPES, False, id="already-brotli-never"),
        # MIME types are case-insensitive (RFC 2045), and text/* is every text type (issue 27).
        pytest.param("a.css", "text/css", ("TEXT/CSS",), True, id="given-upper-case"),
        pytest.param("a.css", "text/css", (" Text/Css ",), True, id="given-padded"),
        pytest.param("a.css", "text/css", ("text/*",), True, id="family-css"),
        pytest.param("a.csv", "text/csv", ("TEXT/*",), True, id="family-upper-case"),
        pytest.param("a.json", "application/json", ("text/*",), False, id="family-is-one-family"),
        pytest.param("a.png", "image/png", ("*/*",), True, id="every-family"),
        pytest.param("a.png", "image/png", ("ALL",), True, id="all-upper-case"),
        pytest.param("a.txt", "text", ("text/*",), False, id="type-without-subtype"),
    ],
)
def test_should_gzip(name: str, content_type: str, types: tuple[str, ...], expected: bool) -> None:
    assert should_gzip(name, content_type, types) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("index.html", "text/html", id="html"),
        pytest.param("dir/style.css", "text/css", id="css"),
        pytest.param("a.json", "application/json", id="json"),
        pytest.param("photo.JPG", "image/jpeg", id="upper-case-ext"),
        pytest.param("a.png", "image/png", id="png"),
        pytest.param("a.tar.gz", "application/x-tar", id="tar-gz"),
        pytest.param("a.gz", "application/gzip", id="bare-gz"),
        pytest.param("README", DEFAULT_CONTENT_TYPE, id="no-extension"),
        pytest.param("a.unknownext", DEFAULT_CONTENT_TYPE, id="unknown-extension"),
        pytest.param("", DEFAULT_CONTENT_TYPE, id="empty"),
    ],
)
def test_guess_content_type(name: str, expected: str) -> None:
    assert guess_content_type(name) == expected


# --- ETags and content: part sizes and content types


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
def test_guess_content_type_knows_the_non_strict_table_and_encodings(name: str, expected: str) -> None:
    assert guess_content_type(name) == expected


def test_should_gzip_reads_the_type_before_the_first_parameter() -> None:
    assert should_gzip("a.txt", "text/plain; charset=utf-8; format=flowed", DEFAULT_GZIP_TYPES)


def test_gzip_bytes_uses_the_level_it_is_given() -> None:
    data = os.urandom(2000) * 50
    fast, best = gzip_bytes(data, 1), gzip_bytes(data, 9)
    assert fast == gzip.compress(data, compresslevel=1, mtime=0)
    assert best == gzip.compress(data, compresslevel=9, mtime=0)
    assert fast != best


def test_gzip_to_tempfile_uses_the_level_and_the_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(2000) * 50
    (tmp_path / "f").write_bytes(data)
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # what TMPDIR sets
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        outputs = {}
        for level in (1, 9):
            with gzip_to_tempfile(fd, level) as tmp:
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
        assert FileContent(fd, len(data), 1000).md5 == REAL_MD5(data).digest()
    finally:
        os.close(fd)
    assert multipart_etag(parts) == expected
    hasher = PartHasher(1000)  # three parts: a fresh part MD5 after each full one
    hasher.update(data)
    assert hasher.etag() == expected
    assert BytesContent(data, 1000).matches_etag(expected)
    assert BytesContent(data, 1000).md5 == REAL_MD5(data).digest()


@pytest.mark.parametrize(
    "length",
    [
        pytest.param(2500, id="one-read"),
        pytest.param(3 * MIB + 5, id="several-reads"),
        pytest.param(0, id="empty"),
    ],
)
def test_md5_of_the_content(tmp_path: Path, length: int) -> None:
    data = os.urandom(length)
    (tmp_path / "f").write_bytes(data)
    expected = hashlib.md5(data).digest()
    assert BytesContent(data, 1000).md5 == expected
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert FileContent(fd, length, 1000).md5 == expected
    finally:
        os.close(fd)

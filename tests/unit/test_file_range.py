"""FileRange: a part of a file, read into the caller's buffer, seekable for retries."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from airflow_s3pput.errors import FileChanged
from airflow_s3pput.transport.file_range import FileRange


@pytest.fixture
def fd(tmp_path: Path) -> int:
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 40)  # 10,240 bytes
    descriptor = os.open(path, os.O_RDONLY)
    yield descriptor
    os.close(descriptor)


def test_reads_exactly_its_range_in_any_chunk_size(fd: int) -> None:
    expected = (bytes(range(256)) * 40)[1000:4000]
    for chunk in (1, 7, 1000, 3000, 65536):
        part = FileRange(fd, 1000, 3000)
        got = bytearray()
        buffer = bytearray(chunk)
        while n := part.readinto(buffer):
            got += buffer[:n]
        assert bytes(got) == expected and len(part) == 3000


def test_rewinds_for_a_retry(fd: int) -> None:
    part = FileRange(fd, 10, 100)
    first = part.read()
    assert part.read() == b"" and part.tell() == 100
    assert part.seek(0) == 0 and part.tell() == 0
    assert part.read() == first == (bytes(range(256)) * 40)[10:110]
    assert part.seek(-10, io.SEEK_END) == 90 and part.read() == first[90:]


def test_a_file_that_shrank_under_it_is_an_error_not_a_short_part(tmp_path: Path) -> None:
    path = tmp_path / "shrinks"
    path.write_bytes(b"x" * 1000)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        part = FileRange(descriptor, 0, 1000)
        os.truncate(path, 500)
        assert part.readinto(bytearray(800)) == 500
        with pytest.raises(FileChanged, match="shrank"):
            part.readinto(bytearray(800))
    finally:
        os.close(descriptor)

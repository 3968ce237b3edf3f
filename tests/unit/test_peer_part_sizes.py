"""The part sizes of other uploaders, grown as each grows them past 10,000 parts, and the one
read that computes every candidate multipart ETag of a file (issue 13, item 3)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from s3transfer.utils import ChunksizeAdjuster

from airflow_s3pput.etag import (
    AWS_PART_SIZE,
    MAX_PARTS,
    MIB,
    RCLONE_PART_SIZE,
    S3PPUT_PART_SIZE,
    S5CMD_PART_SIZE,
    PartHasher,
    aws_sdk_go_part_size,
    candidate_part_size_sets,
    crt_part_size,
    doubled_to_fit,
    multipart_etags,
    rclone_part_size,
)
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.upload_body import BytesContent, FileContent

GIB = 1024 * MIB


def candidate_part_sizes(size: int, parts: int, configured: int) -> list[int]:
    """The candidate part sizes in the order they are tried: the sets one after the other."""
    return [part for group in candidate_part_size_sets(size, parts, configured) for part in group]


#: sizes around the points where the uploaders grow their parts
SIZES = [
    1,
    5 * MIB,
    8 * MIB,
    17 * MIB,
    56 * MIB,
    100 * MIB,
    MAX_PARTS * 5 * MIB - 1,
    MAX_PARTS * 5 * MIB,
    MAX_PARTS * 5 * MIB + 1,
    MAX_PARTS * 8 * MIB,
    MAX_PARTS * 8 * MIB + 1,
    MAX_PARTS * 16 * MIB + 1,
    MAX_PARTS * 50 * MIB - 1,
    MAX_PARTS * 50 * MIB,
    MAX_PARTS * 50 * MIB + 7,
    100 * GIB,
    1024 * GIB + 3,
    5 * 1024 * GIB,
]


def reference_multipart_etag(data: bytes, part_size: int) -> str:
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    return hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"


@pytest.mark.parametrize("size", SIZES)
def test_aws_cli_and_boto3_growth_is_s3transfers(size: int) -> None:
    # aws cli (v1, and v2's classic transfer) and boto3 upload_file size parts with this class.
    assert doubled_to_fit(AWS_PART_SIZE, size) == ChunksizeAdjuster().adjust_chunksize(AWS_PART_SIZE, size)


@pytest.mark.parametrize("size", SIZES)
def test_s3pput_growth_is_part_size_for(size: int) -> None:
    options = UploadOptions(bucket="b-1", sources=("x",))
    assert doubled_to_fit(S3PPUT_PART_SIZE, size) == options.part_size_for(size)


@pytest.mark.parametrize(
    ("rule", "part_size", "size", "expected"),
    [
        # s5cmd (aws-sdk-go s3manager): grows once size // part reaches 10,000
        pytest.param(aws_sdk_go_part_size, S5CMD_PART_SIZE, 56 * MIB, 50 * MIB, id="s5cmd-default"),
        pytest.param(
            aws_sdk_go_part_size, S5CMD_PART_SIZE, MAX_PARTS * 50 * MIB - 1, 50 * MIB, id="s5cmd-just-fits"
        ),
        pytest.param(
            aws_sdk_go_part_size, S5CMD_PART_SIZE, MAX_PARTS * 50 * MIB, 50 * MIB + 1, id="s5cmd-grows"
        ),
        pytest.param(
            aws_sdk_go_part_size, S5CMD_PART_SIZE, 1024 * GIB, 1024 * GIB // MAX_PARTS + 1, id="s5cmd-1tib"
        ),
        # the AWS CRT: at least ceil(size / 10000)
        pytest.param(crt_part_size, AWS_PART_SIZE, 56 * MIB, 8 * MIB, id="crt-default"),
        pytest.param(crt_part_size, AWS_PART_SIZE, 100 * GIB, -(-100 * GIB // MAX_PARTS), id="crt-100gib"),
        # rclone: size / 10000 rounded up to a MiB, + 1 MiB on the boundary
        pytest.param(rclone_part_size, RCLONE_PART_SIZE, 300 * MIB, 5 * MIB, id="rclone-default"),
        pytest.param(rclone_part_size, RCLONE_PART_SIZE, MAX_PARTS * 5 * MIB, 5 * MIB, id="rclone-exact-fit"),
        pytest.param(
            rclone_part_size, RCLONE_PART_SIZE, MAX_PARTS * 5 * MIB + 1, 6 * MIB, id="rclone-boundary"
        ),
        pytest.param(rclone_part_size, RCLONE_PART_SIZE, 100 * GIB, 11 * MIB, id="rclone-100gib"),
        # rclone adds the MiB only when 10,000 does not divide the size: here 10,000 x 6 MiB fit
        pytest.param(rclone_part_size, RCLONE_PART_SIZE, MAX_PARTS * 6 * MIB, 6 * MIB, id="rclone-on-a-mib"),
        # a --s3-chunk-size that is not whole MiB (5.5M) stands while 10,000 of them hold the file
        pytest.param(
            rclone_part_size, 11 * MIB // 2, MAX_PARTS * 11 * MIB // 2, 11 * MIB // 2, id="rclone-5.5m-fits"
        ),
        pytest.param(
            rclone_part_size, 11 * MIB // 2, MAX_PARTS * 11 * MIB // 2 + 1, 6 * MIB, id="rclone-5.5m-grows"
        ),
    ],
)
def test_growth_rules(rule: object, part_size: int, size: int, expected: int) -> None:
    got = rule(part_size, size)  # type: ignore[operator]
    assert got == expected
    assert type(got) is int  # a part size slices the content (PartHasher): a float would not
    assert -(-size // got) <= MAX_PARTS


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "peer_part_size",
    [
        pytest.param(lambda size: doubled_to_fit(AWS_PART_SIZE, size), id="aws-cli-boto3"),
        pytest.param(lambda size: crt_part_size(AWS_PART_SIZE, size), id="aws-crt"),
        pytest.param(lambda size: aws_sdk_go_part_size(S5CMD_PART_SIZE, size), id="s5cmd"),
        pytest.param(lambda size: rclone_part_size(RCLONE_PART_SIZE, size), id="rclone"),
        pytest.param(lambda size: doubled_to_fit(S3PPUT_PART_SIZE, size), id="s3pput-default"),
    ],
)
def test_every_peer_part_size_is_a_candidate(size: int, peer_part_size: object) -> None:
    part = peer_part_size(size)  # type: ignore[operator]
    parts = -(-size // part)
    # configured as someone who changed --part-size would have it
    candidates = candidate_part_sizes(size, parts, doubled_to_fit(7 * MIB, size))
    if parts == 1:
        assert len(candidates) == 1  # the whole content, whatever the size: one ETag
    else:
        assert part in candidates
    assert len(candidates) <= 5
    assert all(-(-size // c) == parts for c in candidates)


@pytest.mark.parametrize("chunk", [1, 1000, 4096, 5000, 1 << 20])
def test_one_pass_gives_every_candidates_etag(chunk: int) -> None:
    data = os.urandom(3 * 4096 + 123)
    part_sizes = [4096, 1000, 5000, len(data), len(data) + 1]
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    assert multipart_etags(chunks, part_sizes) == [reference_multipart_etag(data, p) for p in part_sizes]


def test_part_hasher_of_exact_parts() -> None:
    data = os.urandom(3 * 1000)
    hasher = PartHasher(1000)
    hasher.update(data)
    assert hasher.etag() == reference_multipart_etag(data, 1000)


@pytest.mark.parametrize(
    ("size", "parts", "configured", "expected"),
    [
        # s3pput's own object: one candidate first, whatever the guesses
        pytest.param(100 * MIB, 7, 16 * MIB, [[16 * MIB], [15 * MIB, -(-100 * MIB // 7)]], id="own"),
        pytest.param(17 * MIB, 3, 16 * MIB, [[8 * MIB], [6 * MIB, 17 * MIB // 3 + 1]], id="aws-cli"),
        pytest.param(56 * MIB, 2, 16 * MIB, [[50 * MIB], [28 * MIB]], id="s5cmd"),
        pytest.param(300 * MIB, 60, 16 * MIB, [[5 * MIB]], id="rclone-guesses-are-the-same"),
        pytest.param(9 * MIB, 2, 16 * MIB, [[8 * MIB, 5 * MIB], [9 * MIB // 2]], id="aws-and-rclone-agree"),
        pytest.param(23 * MIB, 3, 16 * MIB, [[8 * MIB], [-(-23 * MIB // 3)]], id="mib-guess-is-a-default"),
        pytest.param(MIB, 1, 16 * MIB, [[16 * MIB]], id="one-part"),
        pytest.param(100, 200, 16 * MIB, [], id="more-parts-than-bytes"),
        # no set at all, not one empty set: an empty object has no multipart ETag to recompute
        pytest.param(0, 1, 16 * MIB, [], id="empty-object"),
    ],
)
def test_candidate_sets(size: int, parts: int, configured: int, expected: list[list[int]]) -> None:
    assert candidate_part_size_sets(size, parts, configured) == expected


def test_a_file_is_read_once_per_candidate_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    size = 17 * MIB
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    peer_etag = reference_multipart_etag(data, 8 * MIB)  # aws cli: 3 parts of 8 MiB
    assert candidate_part_size_sets(size, 3, 16 * MIB) == [[8 * MIB], [6 * MIB, size // 3 + 1]]
    read = [0]
    real_pread = os.pread

    def counting_pread(fd: int, length: int, offset: int) -> bytes:
        read[0] += length
        return real_pread(fd, length, offset)

    monkeypatch.setattr(os, "pread", counting_pread)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert FileContent(fd, size, 16 * MIB).matches_etag(peer_etag)
        assert read[0] == size  # the defaults' set matched: one read
        read[0] = 0
        assert FileContent(fd, size, 16 * MIB).matches_etag(reference_multipart_etag(data, size // 3 + 1))
        assert read[0] == 2 * size  # the guesses, both in one more read
        read[0] = 0
        assert not FileContent(fd, size, 16 * MIB).matches_etag(reference_multipart_etag(data, 7 * MIB))
        assert read[0] == 2 * size
    finally:
        os.close(fd)
    assert BytesContent(data, 16 * MIB).matches_etag(peer_etag)

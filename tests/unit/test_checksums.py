"""CRC64NVME on every PUT, a store that refuses it, and the checksum look-ups of ``update``."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import zlib
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import checksums
from airflow_s3pput.errors import S3Error
from airflow_s3pput.etag import MIB
from airflow_s3pput.modes import RemoteObject
from airflow_s3pput.putter import Putter
from airflow_s3pput.stats import PutResult, Stats, StatsCollector
from airflow_s3pput.transport.interface import ObjectHead, Stored, full_object_checksums
from tests.memory_transport import MemoryTransport
from tests.unit.test_putter_memory import options, put_both_ways, task_for

#: CRC-64/NVME of "123456789", the check value of the CRC catalogue
CRC64NVME_CHECK = 0xAE8B14860A799888


def test_crc64nvme_is_the_catalogued_crc() -> None:
    assert checksums.crc64nvme(b"123456789") == CRC64NVME_CHECK
    assert base64.b64decode(checksums.encode(CRC64NVME_CHECK)) == CRC64NVME_CHECK.to_bytes(8, "big")


def test_part_crcs_combine_into_the_whole_objects() -> None:
    data = os.urandom(3 * 1000 + 17)
    parts = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    assert checksums.combined([(checksums.crc64nvme(p), len(p)) for p in parts]) == checksums.crc64nvme(data)


@pytest.mark.parametrize("algorithm", ["CRC64NVME", "CRC32C", "CRC32"])
def test_a_full_object_checksum_is_written_as_s3_writes_it(algorithm: str) -> None:
    data = os.urandom(5000)
    value = checksums.full_object_checksum(algorithm, [data[:1234], memoryview(data)[1234:]])
    if algorithm == "CRC32":  # zlib's CRC-32 is S3's
        assert value == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    assert value == checksums.full_object_checksum(algorithm, [data])


def test_a_composite_checksum_compares_with_nothing() -> None:
    assert full_object_checksums({"CRC32": "abc=-3", "CRC64NVME": ""}, "") == {}
    assert full_object_checksums({"CRC32C": "abcd"}, "COMPOSITE") == {}
    assert full_object_checksums({"CRC32C": "abcd"}, "FULL_OBJECT") == {"CRC32C": "abcd"}


def test_every_put_carries_its_crc64nvme(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"some text")
    transport = MemoryTransport()
    assert [r.action for r in put_both_ways(Putter(options(tmp_path), transport), task_for(path, "a"))] == [
        "put"
    ] * 2
    assert transport.objects["a"].params[checksums.PARAM] == checksums.encode(
        checksums.crc64nvme(b"some text")
    )


def test_a_store_that_refuses_the_checksum_gets_content_md5_alone_after_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = []
    for n in range(4):
        files.append(tmp_path / f"f{n}")
        files[-1].write_bytes(b"x" * n)
    transport = MemoryTransport()
    transport.refuse_checksums = True
    putter = Putter(options(tmp_path), transport)
    with caplog.at_level(logging.WARNING):
        results = [putter.put(task_for(path, path.name)) for path in files]
    assert [r.action for r in results] == ["put"] * 4
    assert transport.calls["PutObject"] == 5  # the first one twice, then never refused again
    assert all(
        checksums.PARAM not in o.params and "ContentMD5" in o.params for o in transport.objects.values()
    )
    warnings = [r.getMessage() for r in caplog.records if "x-amz-checksum-crc64nvme" in r.getMessage()]
    assert len(warnings) == 1 and "InvalidArgument" in warnings[0]


def test_a_refusal_that_is_not_about_the_checksum_fails_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"abc")
    transport = MemoryTransport()
    transport.fail_next["PutObject"] = [S3Error("AccessDenied", status=403)]
    result = Putter(options(tmp_path), transport).put(task_for(path, "a"))
    assert (result.action, result.error) == ("fail", "AccessDenied")


class _EchoesOtherCrc(MemoryTransport):
    def put_object(self, key: str, body: bytes, params: Any) -> Stored:
        stored = super().put_object(key, body, params)
        return stored._replace(
            encryption="aws:kms",
            crc64nvme=checksums.encode(1) if self.calls["PutObject"] == 1 else stored.crc64nvme,
        )


def test_an_echoed_crc_that_is_not_ours_is_damage_even_with_an_opaque_etag(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"abc")
    transport = _EchoesOtherCrc()
    result = Putter(options(tmp_path), transport).put(task_for(path, "a"))
    assert (result.action, transport.calls["PutObject"]) == ("put", 2)


# -- look-ups -------------------------------------------------------------------------------------


def _kms_object(transport: MemoryTransport, key: str, data: bytes) -> RemoteObject:
    """``data`` under ``key`` as another host put it on an SSE-KMS bucket: an opaque ETag."""
    transport.add(key, data, os.urandom(16).hex())
    stored = transport.objects[key]
    return RemoteObject(len(data), stored.etag)


@pytest.mark.parametrize("size", [pytest.param(100, id="small"), pytest.param(11 * MIB, id="multipart")])
def test_an_opaque_etag_of_the_same_bytes_is_unchanged_after_one_lookup(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    transport = MemoryTransport(encryption="aws:kms")
    remote = _kms_object(transport, "f.bin", data)
    putter = Putter(options(tmp_path, mode="update", digest_cache=False), transport)
    result = putter.put(task_for(path, "f.bin", remote))
    assert (result.action, result.reason, result.looked_up) == ("skip", "unchanged", True)
    assert (transport.calls["HeadObject"], transport.calls["PutObject"]) == (1, 0)


def test_an_opaque_etag_of_other_bytes_is_put_after_one_lookup(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"new text")
    transport = MemoryTransport(encryption="aws:kms")
    remote = _kms_object(transport, "f.txt", b"old text")
    result = Putter(options(tmp_path, mode="update", digest_cache=False), transport).put(
        task_for(path, "f.txt", remote)
    )
    assert (result.action, result.reason, result.looked_up) == ("put", "changed", True)
    assert transport.objects["f.txt"].body == b"new text"


def test_an_object_rewritten_since_the_listing_is_put(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"same")
    transport = MemoryTransport(encryption="aws:kms")
    remote = _kms_object(transport, "f.txt", b"same")
    transport.add("f.txt", b"same", os.urandom(16).hex())  # another ETag than the listed one
    result = Putter(options(tmp_path, mode="update", digest_cache=False), transport).put(
        task_for(path, "f.txt", remote)
    )
    assert (result.action, result.looked_up) == ("put", True)


def test_no_lookup_for_another_size_or_outside_update(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"longer text")
    transport = MemoryTransport(encryption="aws:kms")
    remote = _kms_object(transport, "f.txt", b"short")
    assert (
        Putter(options(tmp_path, mode="update", digest_cache=False), transport)
        .put(task_for(path, "f.txt", remote))
        .action
        == "put"
    )
    assert (
        Putter(options(tmp_path, mode="stupid", digest_cache=False), transport)
        .put(task_for(path, "f.txt", remote))
        .action
        == "put"
    )
    assert transport.calls["HeadObject"] == 0


def test_a_plain_bucket_stops_the_lookups_of_md5_etags_after_the_first(tmp_path: Path) -> None:
    transport = MemoryTransport()  # ETags are MD5s
    putter = Putter(options(tmp_path, mode="update", digest_cache=False), transport)
    for n in range(3):
        path = tmp_path / f"f{n}"
        path.write_bytes(b"new %d" % n)
        transport.add(path.name, b"old %d" % n)
        remote = RemoteObject(5, hashlib.md5(b"old %d" % n).hexdigest())
        assert putter.put(task_for(path, path.name, remote)).action == "put"
    assert transport.calls["HeadObject"] == 1


def test_an_object_without_a_full_object_checksum_is_put(tmp_path: Path) -> None:
    class _Composite(MemoryTransport):
        def head_object(self, key: str) -> ObjectHead | None:
            head = super().head_object(key)
            return None if head is None else head._replace(checksums={})

    path = tmp_path / "f.txt"
    path.write_bytes(b"same")
    transport = _Composite(encryption="aws:kms")
    remote = _kms_object(transport, "f.txt", b"same")
    result = Putter(options(tmp_path, mode="update", digest_cache=False), transport).put(
        task_for(path, "f.txt", remote)
    )
    assert (result.action, result.looked_up) == ("put", True)


def test_the_summary_counts_the_lookups() -> None:
    collector = StatsCollector()
    collector.add(PutResult("p", "k", "skip", "unchanged", looked_up=True))
    collector.add(PutResult("p", "k2", "put", "changed", 3, looked_up=True))
    collector.add(PutResult("p", "k3", "put", "new", 3))
    stats = collector.freeze().merge(Stats(checksum_lookups=5))
    assert stats.checksum_lookups == 7
    assert Stats.from_dict(stats.to_dict()).checksum_lookups == 7
    assert "checksum lookups  7" in stats.table()


# -- multipart ------------------------------------------------------------------------------------


class _StrictUploads(MemoryTransport):
    """As S3 keeps an upload's checksum algorithm: parts and completion of an upload started
    without one refuse a checksum (as an upload an older s3pput left open)."""

    def upload_part(
        self, key: str, upload_id: str, number: int, body: Any, md5: bytes, crc64nvme: str = ""
    ) -> str:
        if crc64nvme and "ChecksumAlgorithm" not in self._upload(upload_id).params:
            self.calls["refused UploadPart"] += 1
            raise S3Error("InvalidRequest", "checksum type mismatch", status=400)
        return super().upload_part(key, upload_id, number, body, md5, crc64nvme)

    completed: list[str] = []  # the CRC64NVME each completion echoed

    def complete_multipart(self, key: str, upload_id: str, parts: Any, crc64nvme: str = "") -> Stored:
        if crc64nvme and "ChecksumAlgorithm" not in self._upload(upload_id).params:
            raise S3Error("InvalidRequest", "checksum type mismatch", status=400)
        stored = super().complete_multipart(key, upload_id, parts, crc64nvme)
        self.completed = [*self.completed, stored.crc64nvme]
        return stored


def test_a_multipart_upload_keeps_the_whole_objects_crc64nvme(tmp_path: Path) -> None:
    data = os.urandom(11 * MIB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    transport = _StrictUploads(encryption="aws:kms")
    result = Putter(options(tmp_path), transport).put(task_for(path, "big.bin"))
    assert (result.action, result.error) == ("put", "")
    assert transport.objects["big.bin"].params["ChecksumType"] == "FULL_OBJECT"
    assert transport.completed == [checksums.encode(checksums.crc64nvme(data))]  # the server checked it


def test_a_store_that_refuses_checksums_gets_plain_multipart_uploads(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(11 * MIB))
    transport = MemoryTransport()
    transport.refuse_checksums = True
    putter = Putter(options(tmp_path), transport)
    assert putter.put(task_for(path, "big.bin")).action == "put"
    assert (transport.calls["CreateMultipartUpload"], putter.checksum.on) == (2, False)
    assert "ChecksumAlgorithm" not in transport.objects["big.bin"].params


def test_an_upload_started_without_checksums_is_carried_on_without(tmp_path: Path) -> None:
    from airflow_s3pput import engine
    from tests.unit.test_resume import PART, big_file, leave_upload

    src, data = big_file(tmp_path)
    transport = _StrictUploads()
    leave_upload(transport, "big.bin", data, [1, 2])
    stats = engine.upload(
        options(src, mode="update", part_size=PART, sources=(str(src),)), transport=transport
    )
    assert (stats.files_put, stats.failed, stats.bytes_resumed) == (1, 0, 2 * PART)
    assert transport.calls["refused UploadPart"] >= 1  # then the parts went plain
    assert transport.calls["UploadPart"] == 2
    assert transport.objects["big.bin"].body == data

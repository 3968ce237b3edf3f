"""Every kind of bucket takes an upload: SSE-KMS (opaque ETags), Object Lock (a PUT must carry
Content-MD5 or a checksum), and stores that reject the flexible checksum headers, on both
transports, through the CLI, SeaweedFS behind a proxy that answers as such a bucket would."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.digest_record import RACY_MARGIN_NS
from tests.helpers import CliRun, CliRunner, list_keys, make_tree

from . import bucket_kinds
from .proxy import FAULTS_BUCKET, Fault, FaultProxy

pytestmark = pytest.mark.timeout(180)

MIB = 1024 * 1024
TRANSPORTS = ["crt", "boto3"]
KINDS: dict[str, Callable[[FaultProxy], None]] = {
    "sse-kms": bucket_kinds.sse_kms,
    "object-lock": bucket_kinds.object_lock,
    "no-checksum-headers": bucket_kinds.no_checksums,
}


def tree() -> dict[str, bytes]:
    files = {f"small/f{i:02}.txt": f"file {i}\n".encode() * (i + 1) for i in range(30)}
    files["big.bin"] = os.urandom(11 * MIB)  # 3 parts of 5 MiB
    return files


def run(cli: CliRunner, proxy: FaultProxy, source: Path, prefix: str, transport: str, *extra: str) -> CliRun:
    return cli(
        "--bucket", FAULTS_BUCKET, "--prefix", prefix, "--endpoint-url", proxy.endpoint_url,
        "--transport", transport, "--json", "--multipart-threshold", "5MiB", "--part-size", "5MiB",
        *extra, str(source),
    )  # fmt: skip


def bodies(client: Any, prefix: str) -> dict[str, bytes]:
    return {
        key[len(prefix) :]: client.get_object(Bucket=FAULTS_BUCKET, Key=key)["Body"].read()
        for key in list_keys(client, FAULTS_BUCKET, prefix)
    }


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_first_upload_lands_every_file(
    cli: CliRunner, fault_proxy: FaultProxy, s3_client: Any, tmp_path: Path, kind: str, transport: str
) -> None:
    files = tree()
    source = make_tree(tmp_path / "src", files)
    KINDS[kind](fault_proxy)
    prefix = f"{kind}-{uuid.uuid4().hex[:8]}/"
    first = run(cli, fault_proxy, source, prefix, transport)
    assert first.code == 0, first.err
    assert (first.summary["files_put"], first.summary["files_failed"]) == (len(files), 0)
    assert bodies(s3_client, prefix) == files


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_body_damaged_on_the_way_is_sent_again(
    cli: CliRunner, fault_proxy: FaultProxy, s3_client: Any, tmp_path: Path, kind: str, transport: str
) -> None:
    files = tree()
    source = make_tree(tmp_path / "src", files)
    KINDS[kind](fault_proxy)
    fault_proxy.add_rule(Fault("corrupt", method="PUT", every=4, max_repeats=1))
    prefix = f"{kind}-damaged-{uuid.uuid4().hex[:8]}/"
    result = run(cli, fault_proxy, source, prefix, transport)
    assert result.code == 0, result.err
    assert fault_proxy.stats["faults"]["corrupt"] > 0
    assert bodies(s3_client, prefix) == files


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", KINDS)
def test_update_stays_content_exact(
    cli: CliRunner, fault_proxy: FaultProxy, s3_client: Any, tmp_path: Path, kind: str, transport: str
) -> None:
    """What the record remembers of the server's answers decides, whatever the ETags' shape."""
    files = tree()
    source = make_tree(tmp_path / "src", files)
    old = 1_600_000_000
    for path in source.rglob("*"):
        os.utime(path, (old, old))
    time.sleep(RACY_MARGIN_NS / 1e9 + 0.1)  # ctime too must be older than the margin
    KINDS[kind](fault_proxy)
    prefix = f"{kind}-update-{uuid.uuid4().hex[:8]}/"
    assert run(cli, fault_proxy, source, prefix, transport).code == 0

    rerun = run(cli, fault_proxy, source, prefix, transport)
    assert (rerun.code, rerun.summary["files_put"]) == (0, 0)
    assert rerun.summary["skipped"] == {"unchanged": len(files)}

    edited = source / "small" / "f03.txt"
    edited.write_bytes(edited.read_bytes().upper())  # same size
    os.utime(edited, (old, old))  # mtime restored
    other = b"another tool".ljust(len(files["small/f05.txt"]))  # same size, a CRC32 of boto3's
    s3_client.put_object(Bucket=FAULTS_BUCKET, Key=f"{prefix}small/f05.txt", Body=other)
    third = run(cli, fault_proxy, source, prefix, transport)
    assert third.code == 0, third.err
    assert third.summary["files_put"] == 2
    assert bodies(s3_client, prefix)["small/f03.txt"] == edited.read_bytes()
    assert bodies(s3_client, prefix)["small/f05.txt"] == files["small/f05.txt"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_another_host_knows_a_kms_buckets_objects_by_their_checksums(
    cli: CliRunner, fault_proxy: FaultProxy, s3_client: Any, tmp_path: Path, transport: str
) -> None:
    """Nothing remembered (``--no-digest-cache``: another host): one HEAD per object of the
    file's size reads its CRC64NVME, and only the file whose bytes differ is put."""
    files = tree()
    source = make_tree(tmp_path / "src", files)
    bucket_kinds.sse_kms(fault_proxy)
    prefix = f"kms-host-{uuid.uuid4().hex[:8]}/"
    assert run(cli, fault_proxy, source, prefix, transport).code == 0

    edited = source / "small" / "f07.txt"
    edited.write_bytes(edited.read_bytes().upper())  # same size
    other = run(cli, fault_proxy, source, prefix, transport, "--no-digest-cache")
    assert other.code == 0, other.err
    assert (other.summary["files_put"], other.summary["put_reasons"]) == (1, {"changed": 1})
    assert other.summary["skipped"] == {"unchanged": len(files) - 1}
    assert other.summary["checksum_lookups"] == len(files)
    assert bodies(s3_client, prefix)["small/f07.txt"] == edited.read_bytes()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_object_keeps_the_crc64nvme_of_its_file(
    cli: CliRunner, fault_proxy: FaultProxy, s3_client: Any, tmp_path: Path, transport: str
) -> None:
    """Single PUTs and multipart uploads (a full-object checksum the server checked)."""
    from airflow_s3pput import checksums

    files = tree()
    source = make_tree(tmp_path / "src", files)
    prefix = f"crc-{uuid.uuid4().hex[:8]}/"
    assert run(cli, fault_proxy, source, prefix, transport).code == 0
    for name in ("small/f00.txt", "big.bin"):
        head = s3_client.head_object(Bucket=FAULTS_BUCKET, Key=prefix + name, ChecksumMode="ENABLED")
        assert head["ChecksumCRC64NVME"] == checksums.encode(checksums.crc64nvme(files[name])), name


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_store_that_refuses_checksums_is_told_once_per_process(
    cli: CliRunner,
    fault_proxy: FaultProxy,
    s3_client: Any,
    tmp_path: Path,
    transport: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    files = tree()
    source = make_tree(tmp_path / "src", files)
    bucket_kinds.no_checksums(fault_proxy)
    prefix = f"no-crc-{uuid.uuid4().hex[:8]}/"
    result = run(cli, fault_proxy, source, prefix, transport, "--processes", "2")
    assert result.code == 0, result.err
    stderr = result.err + capfd.readouterr().err  # the warning is logged: the worker processes' too
    warnings = [line for line in stderr.splitlines() if "x-amz-checksum-crc64nvme" in line]
    assert 1 <= len(warnings) <= 2, stderr
    assert bodies(s3_client, prefix) == files

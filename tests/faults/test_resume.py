"""A run killed mid-upload (``kill -9``: a lost worker, an OOM kill) is carried on by the next
run from the parts that landed, on both transports: the real ``s3pput`` process, SeaweedFS
behind a recording proxy that counts the bytes each run sends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server

from .proxy import FAULTS_BUCKET, Fault, FaultProxy

S3PPUT = str(Path(sys.executable).parent / "s3pput")
MIB = 1024**2
PART = 5 * MIB
pytestmark = pytest.mark.timeout(180)


def command(proxy: FaultProxy, source: Path, prefix: str, transport: str) -> list[str]:
    return [
        S3PPUT, "--bucket", FAULTS_BUCKET, "--prefix", prefix, "--json", "--no-progress",
        "--transport", transport, "--threads", "2",
        "--multipart-threshold", "5MiB", "--part-size", "5MiB", str(source),
    ]  # fmt: skip


def environment(proxy: FaultProxy, server: LocalS3Server, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.env(), AWS_ENDPOINT_URL=proxy.endpoint_url, S3PPUT_CACHE_DIR=str(cache))
    return env


def parts_landed(proxy: FaultProxy) -> int:
    return sum(1 for r in proxy.recorded if "partNumber" in r.query and r.status == 200)


def bodies(client: Any, prefix: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=FAULTS_BUCKET, Prefix=prefix).get("Contents", [])
    return {
        o["Key"][len(prefix) :]: client.get_object(Bucket=FAULTS_BUCKET, Key=o["Key"])["Body"].read()
        for o in listed
    }


TREES = {
    "one-file": {"big.bin": 12 * PART},
    "four-files": {f"f{i}.bin": 4 * PART for i in range(4)},
}


@pytest.mark.parametrize("transport", ["crt", "boto3"])
@pytest.mark.parametrize("shape", TREES)
def test_a_killed_upload_is_carried_on_from_what_landed(
    s3_server: LocalS3Server, fault_proxy: FaultProxy, tmp_path: Path, transport: str, shape: str
) -> None:
    files = {name: os.urandom(size) for name, size in TREES[shape].items()}
    total = sum(len(b) for b in files.values())
    source = tmp_path / "src"
    source.mkdir()
    for name, body in files.items():
        (source / name).write_bytes(body)
    prefix = f"resume-{shape}-{transport}/"
    env = environment(fault_proxy, s3_server, tmp_path / "cache")
    fault_proxy.record = True
    fault_proxy.set_rules([Fault("delay", query="partNumber", seconds=0.2)])
    killed = subprocess.Popen(command(fault_proxy, source, prefix, transport), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while parts_landed(fault_proxy) < total // PART // 2:
        assert time.monotonic() < deadline and killed.poll() is None, "the upload never got half way"
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)  # its worker processes too, as a lost host's
    killed.wait(10)
    landed_before = parts_landed(fault_proxy)

    fault_proxy.clear()
    before = len(fault_proxy.recorded)  # the next run's requests are counted from here
    rerun = subprocess.run(command(fault_proxy, source, prefix, transport), env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    sent = sum(r.body_size or 0 for r in fault_proxy.recorded[before:] if "partNumber" in r.query)
    # at most the parts that had not landed, and one part per file that was on the wire
    assert sent <= total - landed_before * PART + len(files) * PART, (sent, landed_before)
    assert sent <= 0.6 * total
    summary = json.loads(rerun.stdout)
    resumed_lines = [line for line in rerun.stderr.splitlines() if line.startswith("resumed ")]
    assert len(resumed_lines) >= 1 and "% (parts an earlier run sent)" in resumed_lines[0], rerun.stderr
    assert summary["bytes_resumed"] >= landed_before * PART - len(files) * PART, summary
    client = s3_server.client()
    assert bodies(client, prefix) == files
    assert client.list_multipart_uploads(Bucket=FAULTS_BUCKET, Prefix=prefix).get("Uploads", []) == []


def test_parts_of_a_file_edited_since_are_not_reused(
    s3_server: LocalS3Server, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    body = os.urandom(6 * PART)
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(body)
    prefix = "resume-edited/"
    env = environment(fault_proxy, s3_server, tmp_path / "cache")
    fault_proxy.record = True
    fault_proxy.set_rules([Fault("delay", query="partNumber", seconds=0.2)])
    killed = subprocess.Popen(command(fault_proxy, source, prefix, "crt"), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while parts_landed(fault_proxy) < 3:
        assert time.monotonic() < deadline and killed.poll() is None
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)  # its worker processes too, as a lost host's
    killed.wait(10)
    # A part that landed now holds other bytes than the file (parts land in any order).
    landed = min(int(r.query["partNumber"][0]) for r in fault_proxy.recorded
                 if "partNumber" in r.query and r.status == 200)  # fmt: skip
    at = (landed - 1) * PART
    edited = body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1 :]
    (source / "big.bin").write_bytes(edited)
    fault_proxy.clear()
    rerun = subprocess.run(command(fault_proxy, source, prefix, "crt"), env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["bytes_resumed"] == 0
    client = s3_server.client()
    assert bodies(client, prefix) == {"big.bin": edited}
    assert client.list_multipart_uploads(Bucket=FAULTS_BUCKET, Prefix=prefix).get("Uploads", []) == []


def test_a_day_old_leftover_under_another_prefix_is_aborted(
    s3_server: LocalS3Server, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    """A DAG writing ``exports/{{ ds }}/``: a try killed mid-upload leaves yesterday's multipart
    upload open, and no later run writes that prefix again. Today's run, on the same host,
    leaves it for a retry while it is young and aborts it once it is a day old."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(6 * PART))
    env = environment(fault_proxy, s3_server, tmp_path / "cache")
    fault_proxy.record = True
    fault_proxy.set_rules([Fault("delay", query="partNumber", seconds=0.2)])
    killed = subprocess.Popen(command(fault_proxy, source, "exports/d1/", "crt"), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while parts_landed(fault_proxy) < 2:
        assert time.monotonic() < deadline and killed.poll() is None, "the upload never started"
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait(10)
    fault_proxy.clear()
    client = s3_server.client()

    def open_under(prefix: str) -> list[str]:
        uploads = client.list_multipart_uploads(Bucket=FAULTS_BUCKET, Prefix=prefix).get("Uploads", [])
        return [u["Key"] for u in uploads]

    assert open_under("exports/d1/") == ["exports/d1/big.bin"]
    (source / "big.bin").unlink()
    (source / "small.txt").write_text("today")
    today = subprocess.run(command(fault_proxy, source, "exports/d2/", "crt"), env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert today.returncode == 0, today.stderr
    assert open_under("exports/d1/") == ["exports/d1/big.bin"]  # young: a retry may resume it

    (journal,) = (tmp_path / "cache").glob("open-uploads-*.jsonl")
    day = 24 * 3600
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    aged = [{**r, "at": r["at"] - day} if "at" in r else r for r in records]
    journal.write_text("".join(json.dumps(r) + "\n" for r in aged))
    later = subprocess.run(command(fault_proxy, source, "exports/d3/", "crt"), env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert later.returncode == 0, later.stderr
    assert open_under("exports/") == []

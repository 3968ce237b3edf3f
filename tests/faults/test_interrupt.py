"""Ctrl-C during a large multipart upload, as a user presses it: the real ``s3pput`` process.

The first SIGINT stops the run within about two seconds: parts not yet sent are dropped, the
upload is aborted (no object, no open upload), and the summary of what landed is printed. A
second SIGINT exits at once; the upload it leaves open is aborted by the next run, which finds
it in this host's journal of unfinished uploads.
"""

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
pytestmark = pytest.mark.timeout(120)


def start(
    proxy: FaultProxy, server: LocalS3Server, source: Path, prefix: str, cache: Path
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.env(), AWS_ENDPOINT_URL=proxy.endpoint_url, S3PPUT_CACHE_DIR=str(cache))
    multipart = ["--threads", "2", "--multipart-threshold", "5MiB", "--part-size", "5MiB"]
    argv = [
        S3PPUT,
        "--bucket",
        FAULTS_BUCKET,
        "--prefix",
        prefix,
        "--json",
        "--no-progress",
        *multipart,
        str(source),
    ]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def when_parts_started(proxy: FaultProxy, parts: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while sum(rule.matched for rule in proxy.rules) < parts:
        assert time.monotonic() < deadline, "the upload never started"
        time.sleep(0.05)


def open_uploads(client: Any, prefix: str) -> list[str]:
    return [
        u["Key"]
        for u in client.list_multipart_uploads(Bucket=FAULTS_BUCKET, Prefix=prefix).get("Uploads", [])
    ]


@pytest.fixture
def big(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    (source / "small.txt").write_text("lands first")
    (source / "big.bin").write_bytes(os.urandom(60 * MIB))  # 12 parts, each held 1 s on the way
    return source


def test_one_ctrl_c_aborts_the_upload_in_flight_and_prints_what_landed(
    s3_server: LocalS3Server, fault_proxy: FaultProxy, big: Path, tmp_path: Path
) -> None:
    fault_proxy.set_rules([Fault("delay", query="partNumber", seconds=1.0)])
    process = start(fault_proxy, s3_server, big, "int1", tmp_path / "cache")
    when_parts_started(fault_proxy, 2)
    process.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    out, err = process.communicate(timeout=30)
    stopped_in = time.monotonic() - signalled
    assert process.returncode == 130, err
    assert stopped_in < 5, stopped_in  # two parts on the wire (1 s each), then the abort
    assert "Traceback" not in err and "interrupted" in err
    summary = json.loads(out)
    assert summary["files_put"] == 1 and summary["files_failed"] == 1
    client = s3_server.client()
    keys = {
        o["Key"] for o in client.list_objects_v2(Bucket=FAULTS_BUCKET, Prefix="int1/").get("Contents", [])
    }
    assert keys == {"int1/small.txt"}  # no half-written big.bin
    assert open_uploads(client, "int1/") == []
    assert sum(rule.matched for rule in fault_proxy.rules) < 12  # the parts not sent were dropped


def test_a_second_ctrl_c_exits_at_once_and_the_next_run_aborts_what_it_left(
    s3_server: LocalS3Server, fault_proxy: FaultProxy, big: Path, tmp_path: Path
) -> None:
    fault_proxy.set_rules([Fault("delay", query="partNumber", seconds=3.0)])
    cache = tmp_path / "cache"
    process = start(fault_proxy, s3_server, big, "int2", cache)
    when_parts_started(fault_proxy, 2)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    second = time.monotonic()
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert time.monotonic() - second < 2.5  # not the 3 s the parts on the wire still need
    assert "interrupted again" in err and "Traceback" not in err
    client = s3_server.client()
    assert open_uploads(client, "int2/") == ["int2/big.bin"]  # left open by the abandoned run
    fault_proxy.clear()
    rerun = start(fault_proxy, s3_server, big, "int2", cache)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert open_uploads(client, "int2/") == []
    assert json.loads(out)["files_put"] >= 1

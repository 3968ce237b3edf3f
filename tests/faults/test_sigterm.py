"""SIGTERM (``docker stop``, Kubernetes, Celery's warm shutdown) during a large multipart upload,
sent to the real ``s3pput`` process: it stops the run as Ctrl-C does (issue 27, point 5).

The parts on the wire finish, the rest are dropped, the open upload is aborted (no object, no
open upload for the next run to find), the summary of what landed is printed, and the exit
code is 143 (128 + SIGTERM), what a shell reports for a process that SIGTERM ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server

from .proxy import FAULTS_BUCKET, Fault, FaultProxy
from .test_interrupt import S3PPUT, big, open_uploads, when_parts_started

__all__ = ["big"]  # the fixture, shared with the Ctrl-C tests
pytestmark = pytest.mark.timeout(120)


def start(
    proxy: FaultProxy, server: LocalS3Server, source: Path, prefix: str, cache: Path, transport: str
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.env(), AWS_ENDPOINT_URL=proxy.endpoint_url, S3PPUT_CACHE_DIR=str(cache))
    argv = [
        S3PPUT, "--bucket", FAULTS_BUCKET, "--prefix", prefix, "--json", "--no-progress",
        "--transport", transport, "--processes", "1", "--threads", "2",
        "--multipart-threshold", "5MiB", "--part-size", "5MiB", str(source),
    ]  # fmt: skip
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("transport", ["crt", "boto3"])
def test_sigterm_stops_the_run_as_ctrl_c_does(
    s3_server: LocalS3Server,
    fault_proxy: FaultProxy,
    big: Path,
    tmp_path: Path,
    transport: str,
) -> None:
    fault_proxy.set_rules([Fault("delay", query="partNumber", seconds=1.0)])
    prefix = f"term-{transport}"
    process = start(fault_proxy, s3_server, big, prefix, tmp_path / "cache", transport)
    when_parts_started(fault_proxy, 2)
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    out, err = process.communicate(timeout=30)
    stopped_in = time.monotonic() - signalled
    assert process.returncode == 143, err
    assert stopped_in < 5, stopped_in  # the parts on the wire (1 s each), then the abort
    assert "Traceback" not in err and "interrupted" in err
    summary = json.loads(out)
    assert summary["files_put"] == 1 and summary["files_failed"] == 1
    client = s3_server.client()
    listed = client.list_objects_v2(Bucket=FAULTS_BUCKET, Prefix=f"{prefix}/").get("Contents", [])
    assert {o["Key"] for o in listed} == {f"{prefix}/small.txt"}  # no half-written big.bin
    assert open_uploads(client, f"{prefix}/") == []
    assert sum(rule.matched for rule in fault_proxy.rules) < 12  # the parts not sent were dropped

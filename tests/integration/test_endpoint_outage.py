"""An endpoint that is away for a few seconds, or that speaks plain HTTP on an https:// URL,
through the CLI against SeaweedFS, on both data planes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.faults.proxy import Fault, FaultProxy
from tests.helpers import CliRunner, assert_usage_error, list_keys, make_tree

TRANSPORTS = ["crt", "boto3"]


@pytest.mark.timeout(90)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_few_seconds_of_refused_connections_are_ridden_out(
    cli: CliRunner, s3_server: LocalS3Server, bucket: str, s3_client: Any, tmp_path: Path, transport: str
) -> None:
    src = make_tree(tmp_path / "src", {f"f{i}.txt": f"{i}\n" for i in range(5)})
    with FaultProxy(upstream=("127.0.0.1", s3_server.port)) as proxy:
        proxy.set_rules([Fault("refuse")])  # a MinIO restart: nothing listens for a while
        timer = threading.Timer(4.0, proxy.clear)
        timer.start()
        try:
            started = time.monotonic()
            run = cli(
                "--bucket", bucket, "--endpoint-url", proxy.endpoint_url, "--transport", transport, str(src)
            )  # fmt: skip
        finally:
            timer.cancel()
    assert time.monotonic() - started >= 4.0  # it did wait for the endpoint to come back
    assert run.code == 0, run.err
    assert set(list_keys(s3_client, bucket)) == {f"f{i}.txt" for i in range(5)}


@pytest.mark.timeout(90)
def test_an_endpoint_that_stays_away_is_one_line_after_a_bounded_wait(
    cli: CliRunner, s3_server: LocalS3Server, bucket: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    with FaultProxy(upstream=("127.0.0.1", s3_server.port)) as proxy:
        proxy.set_rules([Fault("refuse")])
        started = time.monotonic()
        run = cli("--bucket", bucket, "--endpoint-url", proxy.endpoint_url, str(src))
        waited = time.monotonic() - started
    assert_usage_error(run, "cannot reach", proxy.endpoint_url, "times in", server=s3_server)
    assert 10 <= waited < 40, waited


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_https_to_a_plain_http_endpoint_says_it_does_not_speak_tls(
    cli: CliRunner, s3_server: LocalS3Server, bucket: str, tmp_path: Path, transport: str
) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    endpoint = f"https://127.0.0.1:{s3_server.port}"  # SeaweedFS answers plain HTTP there
    argv = ["--bucket", bucket, "--endpoint-url", endpoint, "--transport", transport, "--no-verify-ssl"]
    run = cli(*argv, str(src))
    # The --no-verify-ssl warning, then the one error line.
    assert run.code == 2, run.err
    error = run.err.splitlines()[-1]
    assert error == f"s3pput: error: {endpoint} does not speak TLS; use http:// in --endpoint-url", run.err
    assert "not trusted" not in run.err and "Traceback" not in run.err

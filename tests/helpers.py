"""Helpers the tests share: file trees, listings, in-process CLI runs and their checks.

Fixtures live in ``conftest.py``; everything a test imports lives here.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import pytest

from airflow_s3pput.cli import main
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.testing.local_s3 import free_port

#: a session token set for the bad-input runs: it must never be printed (SeaweedFS ignores it)
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-session-token-do-not-print-3f9a7c"


def make_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    """Create ``files`` (relative path -> content) under ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def list_keys(client: Any, bucket: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    keys: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            keys[obj["Key"]] = obj
    return keys


def empty_bucket(client: Any, bucket: str) -> None:
    """Delete every object of ``bucket``."""
    keys = list(list_keys(client, bucket))
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)


@dataclass
class CliRun:
    """What one in-process ``s3pput`` run returned and printed."""

    code: int
    out: str
    err: str

    @property
    def summary(self) -> dict[str, Any]:
        """The ``--json`` summary: stdout must hold exactly one JSON object."""
        lines = [line for line in self.out.splitlines() if line.strip()]
        assert len(lines) == 1, self.out
        data: dict[str, Any] = json.loads(lines[0])
        return data


CliRunner = Callable[..., CliRun]


def assert_usage_error(run: CliRun, *fragments: str, server: S3Endpoint | None = None) -> None:
    """Exit 2, nothing on stdout, exactly one line on stderr that holds every fragment."""
    assert run.code == 2, (run.out, run.err)
    assert run.out == ""
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("s3pput: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in run.err
    if server is not None:
        assert server.secret_key not in run.out + run.err


def assert_clean(text: str, server: S3Endpoint) -> None:
    """No traceback and no secret in what a run printed."""
    assert "Traceback" not in text
    assert server.secret_key not in text
    assert SESSION_TOKEN not in text


class RequestLog:
    """Counts the S3 operations a client sends (a botocore ``before-call`` hook)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        self.calls.append((model.name, params))

    @property
    def counts(self) -> Counter[str]:
        return Counter(name for name, _ in self.calls)

    def headers_of(self, operation: str) -> list[dict[str, Any]]:
        return [params.get("headers", {}) for name, params in self.calls if name == operation]


# --- S3 servers ------------------------------------------------------------------------------------


class S3Endpoint(Protocol):
    """What the tests need of an S3 server: SeaweedFS (``LocalS3Server``) or ``MotoServer``."""

    access_key: str
    secret_key: str

    @property
    def endpoint_url(self) -> str: ...

    def env(self) -> dict[str, str]: ...

    def connection(self, **overrides: Any) -> ConnectionSettings: ...

    def client(self) -> Any: ...


class MotoServer:
    """moto's HTTP server (``moto_server``) on ``127.0.0.1``, a second S3 that lists like AWS.

    SeaweedFS lists keys in tree order; moto, like AWS, in lexicographic order, and it reports
    ACLs back. Started as a child process on a free port, stopped by its pid. moto accepts any
    credentials: random ones are used so that the tests can check that none is ever printed.
    """

    def __init__(self, startup_timeout: float = 30.0) -> None:
        self.access_key = "moto" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(24)
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(tempfile.mkdtemp(prefix="s3pput-moto-"), "moto.log")

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def connection(self, **overrides: Any) -> ConnectionSettings:
        values: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region": "us-east-1",
            "access_key": self.access_key,
            "secret_key": self.secret_key,
        }
        return ConnectionSettings(**{**values, **overrides})

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        )

    def start(self) -> MotoServer:
        self.port = free_port()
        moto_server = str(Path(sys.executable).parent / "moto_server")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [moto_server, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}; see {self.log_path}")
            try:
                self.client().list_buckets()
                return self
            except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto_server did not become ready in {self.startup_timeout}s")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def new_bucket(server: S3Endpoint) -> str:
    """A fresh, empty bucket on ``server``."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    server.client().create_bucket(Bucket=name)
    return name


def point_env_at(server: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the standard AWS chain (the CLI, aws cli, s5cmd, boto3) at ``server``."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)


def run_cli(server: S3Endpoint, *argv: str) -> CliRun:
    """``s3pput`` in this process, one worker process, with the environment already pointed at
    ``server`` (``point_env_at``); checks that it printed no traceback and no secret."""
    args = list(argv)
    if not any(a.startswith("--processes") for a in args):
        args = ["--processes", "1", *args]
    out, err = io.StringIO(), io.StringIO()
    code = main(args, out=out, err=err)
    result = CliRun(code, out.getvalue(), err.getvalue())
    assert_clean(result.out + result.err, server)
    return result

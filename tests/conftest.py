"""Shared fixtures: a real SeaweedFS S3 server on loopback, fresh buckets, file trees."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.local_s3 import LocalS3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[LocalS3Server]:
    """One SeaweedFS for the whole session: 127.0.0.1, free ports, generated credentials."""
    with LocalS3Server() as server:
        yield server


@pytest.fixture
def s3_client(s3_server: LocalS3Server) -> Any:
    return s3_server.client()


@pytest.fixture
def bucket(s3_client: Any) -> str:
    """A fresh, empty bucket for one test."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_env(s3_server: LocalS3Server, monkeypatch: pytest.MonkeyPatch) -> LocalS3Server:
    """Point the standard AWS chain (and so the CLI) at the test server."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


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


def assert_usage_error(run: CliRun, *fragments: str, server: LocalS3Server | None = None) -> None:
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

"""Helpers the tests share: file trees, listings, in-process CLI runs and their checks.

Fixtures live in ``conftest.py``; everything a test imports lives here.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server

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


def assert_clean(text: str, server: LocalS3Server) -> None:
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


MIB = 1024 * 1024


def local_etag(path: Path, *, part_size: int = 16 * MIB, threshold: int = 16 * MIB) -> str:
    """The ETag S3 returns for ``path`` uploaded by s3pput: the MD5 of a single PUT, or for a
    multipart upload (``threshold`` bytes and more) the MD5 of the parts' MD5s and ``-N``.

    Computed here from the file, independently of the engine's own ``etag`` module."""
    import hashlib

    size = path.stat().st_size
    with open(path, "rb") as f:
        if size < threshold:
            return hashlib.md5(f.read()).hexdigest()
        digests = [hashlib.md5(chunk).digest() for chunk in iter(lambda: f.read(part_size), b"")]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"

"""Shared fixtures: a real SeaweedFS S3 server on loopback, fresh buckets, file trees."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.cli import main
from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.helpers import CliRun, CliRunner, assert_clean


@pytest.fixture(scope="session", autouse=True)
def digest_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The digest record of every run in the session lives here, never in the user's home.

    Set in the environment (not monkeypatched per test), so that the CLI, spawned worker
    processes and Airflow's task processes all see it.
    """
    path = tmp_path_factory.mktemp("s3pput-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("S3PPUT_CACHE_DIR", str(path))
        yield path


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


@pytest.fixture
def cli(s3_env: LocalS3Server) -> CliRunner:
    """``cli(*argv)`` runs ``s3pput`` in this process against the test server and checks that
    it printed no traceback and no secret.

    One process with threads unless the test passes ``--processes``: spawning workers costs
    a second per run and is covered by its own tests.
    """

    def run(*argv: str) -> CliRun:
        args = list(argv)
        if not any(a.startswith("--processes") for a in args):
            args = ["--processes", "1", *args]
        out, err = io.StringIO(), io.StringIO()
        code = main(args, out=out, err=err)
        result = CliRun(code, out.getvalue(), err.getvalue())
        assert_clean(result.out + result.err, s3_env)
        return result

    return run

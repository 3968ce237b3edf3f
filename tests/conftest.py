"""Shared fixtures: real S3 servers on loopback (SeaweedFS, and moto's HTTP server, which lists
like AWS), fresh buckets, in-process CLI runs."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server
from airflow_s3pput.testing.moto_s3 import MotoS3Server
from tests.helpers import (
    CliRun,
    CliRunner,
    S3Endpoint,
    empty_bucket,
    new_bucket,
    point_env_at,
    run_cli,
)


def pytest_configure(config: pytest.Config) -> None:
    # What s3pput remembers between runs (the digest record, the journal of open uploads) goes
    # to a directory of this test session, never the user's home: set in the environment
    # before any test, so that in-process runs, the CLI, spawned workers and Airflow's task
    # processes all see it.
    os.environ["S3PPUT_CACHE_DIR"] = tempfile.mkdtemp(prefix="s3pput-test-cache-")


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
    point_env_at(s3_server, monkeypatch)
    return s3_server


@pytest.fixture
def cli(s3_env: LocalS3Server) -> CliRunner:
    """``cli(*argv)`` runs ``s3pput`` in this process against the test server and checks that
    it printed no traceback and no secret.

    One process with threads unless the test passes ``--processes``: spawning workers costs
    a second per run and is covered by its own tests.
    """

    def run(*argv: str) -> CliRun:
        return run_cli(s3_env, *argv)

    return run


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoS3Server]:
    """One moto HTTP server for the whole session: 127.0.0.1, a free port, random credentials."""
    with MotoS3Server() as server:
        yield server


@pytest.fixture(params=["seaweedfs", "moto"])
def any_s3(request: pytest.FixtureRequest) -> S3Endpoint:
    """Each S3 server in turn: SeaweedFS (lists in tree order) and moto (lists like AWS)."""
    name = "s3_server" if request.param == "seaweedfs" else "moto_server"
    server: S3Endpoint = request.getfixturevalue(name)
    return server


@pytest.fixture
def any_bucket(any_s3: S3Endpoint) -> Iterator[str]:
    """A fresh, empty bucket on ``any_s3``, emptied afterwards (moto keeps objects in memory)."""
    name = new_bucket(any_s3)
    yield name
    empty_bucket(any_s3.client(), name)


@pytest.fixture
def any_cli(any_s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """``any_cli(*argv)`` runs ``s3pput`` in this process against ``any_s3`` (see ``cli``)."""
    point_env_at(any_s3, monkeypatch)

    def run(*argv: str) -> CliRun:
        return run_cli(any_s3, *argv)

    return run

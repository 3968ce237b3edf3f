"""Helpers for the integration tests: run the CLI in-process, count the requests a client sends."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import pytest

from airflow_s3pput.cli import main
from airflow_s3pput.local_s3 import LocalS3Server
from tests.conftest import CliRun, CliRunner


@pytest.fixture
def cli(s3_env: LocalS3Server) -> CliRunner:
    """``cli(*argv)`` runs ``s3pput`` in this process against the test server.

    One process with threads unless the test passes ``--processes``: spawning workers costs
    a second per run and is covered by its own tests.
    """

    def run(*argv: str) -> CliRun:
        args = list(argv)
        if not any(a.startswith("--processes") for a in args):
            args = ["--processes", "1", *args]
        out, err = io.StringIO(), io.StringIO()
        code = main(args, out=out, err=err)
        return CliRun(code, out.getvalue(), err.getvalue())

    return run


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


@pytest.fixture
def logged_client(s3_server: LocalS3Server) -> tuple[Any, RequestLog]:
    """A fresh client for the engine (``upload(options, client=...)``) and the log of its calls."""
    client = s3_server.client()
    log = RequestLog()
    client.meta.events.register("before-call.s3", log)
    return client, log

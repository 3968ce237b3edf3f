"""Helpers for the bad-input matrix: run the CLI in-process with secrets set, and check its output."""

from __future__ import annotations

import io

import pytest

from airflow_s3pput.cli import main
from airflow_s3pput.local_s3 import LocalS3Server
from tests.conftest import CliRun, CliRunner

#: a session token set for every run: it must never be printed (SeaweedFS ignores it)
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-session-token-do-not-print-3f9a7c"


@pytest.fixture
def cli(s3_env: LocalS3Server) -> CliRunner:
    """``main(argv)`` with stdout and stderr captured; checks that no secret and no traceback leak."""

    def run(*argv: str) -> CliRun:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), out, err)
        result = CliRun(code, out.getvalue(), err.getvalue())
        assert_clean(result.out + result.err, s3_env)
        return result

    return run


def assert_clean(text: str, server: LocalS3Server) -> None:
    assert "Traceback" not in text
    assert server.secret_key not in text
    assert SESSION_TOKEN not in text



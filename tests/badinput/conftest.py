"""Helpers for the bad-input matrix: run the CLI in-process with secrets set, and check its output."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from airflow_s3pput.cli import main
from airflow_s3pput.local_s3 import LocalS3Server

#: a session token set for every run: it must never be printed (SeaweedFS ignores it)
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-session-token-do-not-print-3f9a7c"


@dataclass
class CliRun:
    code: int
    out: str
    err: str


CliRunner = Callable[..., CliRun]


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


def assert_usage_error(run: CliRun, *fragments: str) -> None:
    """Exit 2, nothing on stdout, exactly one line on stderr that holds every fragment."""
    assert run.code == 2, (run.out, run.err)
    assert run.out == ""
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("s3pput: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]

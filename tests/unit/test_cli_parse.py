"""CLI pieces that need no server: sizes, argument errors, options built from arguments."""

from __future__ import annotations

import argparse
import io
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_s3pput import cli
from airflow_s3pput.cli import EXIT_TERMINATED, EXIT_USAGE, build_parser, main, options_from_args, parse_size
from airflow_s3pput.etag import MIB
from airflow_s3pput.stats import PutResult, Stats, StatsCollector
from airflow_s3pput.transport import default_concurrency
from airflow_s3pput.upload_body import DEFAULT_GZIP_TYPES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("0", 0, id="zero"),
        pytest.param("123", 123, id="bytes"),
        pytest.param("123b", 123, id="b-suffix"),
        pytest.param("4k", 4096, id="k"),
        pytest.param("4KiB", 4096, id="KiB"),
        pytest.param("4kb", 4096, id="kb"),
        pytest.param("16M", 16 * MIB, id="M"),
        pytest.param("16MiB", 16 * MIB, id="MiB"),
        pytest.param("16 mib", 16 * MIB, id="space-lower"),
        pytest.param(" 8MB ", 8 * MIB, id="padded-MB"),
        pytest.param("1g", 1024 * MIB, id="g"),
        pytest.param("2TiB", 2 * 1024 * 1024 * MIB, id="TiB"),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="word"),
        pytest.param("-5M", id="negative"),
        pytest.param("1.5M", id="fraction"),
        pytest.param("5Q", id="unknown-unit"),
        pytest.param("M", id="unit-only"),
        pytest.param("5 M B x", id="trailing-junk"),
    ],
)
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["src"], "--bucket is required", id="no-bucket"),
        pytest.param(["--bucket", "bkt", "--put", "sync", "src"], "invalid --put", id="bad-mode"),
        pytest.param(["--bucket", "bkt", "--grant", "all", "src"], "invalid --grant", id="bad-acl"),
        pytest.param(["--bucket", "bkt", "--header", "X-Foo:1", "src"], "unsupported --header", id="bad-hdr"),
        pytest.param(["--bucket", "bkt", "--limit", "x", "src"], "--limit", id="limit-not-int"),
        pytest.param(["--bucket", "bkt", "--limit", "-1", "src"], "--limit", id="negative-limit"),
        pytest.param(["--bucket", "bkt", "--part-size", "1k", "src"], "--part-size", id="small-part"),
        pytest.param(["--bucket", "bkt", "--part-size", "lots", "src"], "invalid size", id="bad-size"),
        pytest.param(["--bucket", "bkt", "--retries", "-1", "src"], "--retries", id="negative-retries"),
        pytest.param(["--bucket", "bkt", "--processes", "0", "src"], "--processes", id="zero-processes"),
        pytest.param(["--bucket", "bkt", "--no-such-option", "src"], "unrecognized", id="unknown-option"),
        pytest.param(["--bucket", "BAD_bucket", "src"], "not a valid bucket name", id="bad-bucket"),
    ],
)
def test_usage_errors_are_one_line_exit_2(argv: list[str], message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(argv, out=out, err=err) == EXIT_USAGE
    assert out.getvalue() == ""
    lines = err.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("s3pput: error: ")
    assert message in lines[0]


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def test_old_command_line_still_parses() -> None:
    args = parse(
        [
            "--bucket=b1b",
            "--prefix=p/",
            "--put=add",
            "--dry-run",
            "--limit=3",
            "--content-type=text/plain",
            "--gzip",
            "--processes=3",
            "--verbose",
            "--insecure",
            "--grant=public-read",
            "--header=Cache-Control:max-age=1",
            "--header=x-amz-meta-a:b",
            "src",
        ]
    )
    opts = options_from_args(args)
    assert (opts.bucket, opts.prefix, opts.mode, opts.dry_run, opts.limit) == ("b1b", "p/", "add", True, 3)
    assert (opts.content_type, opts.gzip, opts.processes, opts.grant) == (
        "text/plain",
        True,
        3,
        "public-read",
    )
    assert opts.headers == ("Cache-Control:max-age=1", "x-amz-meta-a:b")
    assert opts.gzip_types == DEFAULT_GZIP_TYPES
    assert opts.connection.secure is False


@pytest.mark.parametrize(
    ("argv", "env", "endpoint", "verify"),
    [
        pytest.param([], {}, None, True, id="aws-default-verified"),
        pytest.param(["--endpoint-url", "http://h:1"], {}, "http://h:1", True, id="explicit"),
        pytest.param([], {"AWS_ENDPOINT_URL": "http://e:2"}, "http://e:2", True, id="env"),
        pytest.param(
            [],
            {"AWS_ENDPOINT_URL": "http://e:2", "AWS_ENDPOINT_URL_S3": "http://s:3"},
            "http://s:3",
            True,
            id="env-s3-wins",
        ),
        pytest.param(["--endpoint-url", "h:4", "--insecure"], {}, "http://h:4", True, id="insecure-scheme"),
        pytest.param(["--endpoint-url", "h:4"], {}, "https://h:4", True, id="secure-scheme"),
        pytest.param(["--ca-bundle", "/ca.pem"], {}, None, "/ca.pem", id="ca-bundle"),
        pytest.param(["--no-verify-ssl"], {}, None, False, id="opt-out-only"),
    ],
)
def test_connection_from_args(
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    env: dict[str, str],
    endpoint: str | None,
    verify: object,
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    opts = options_from_args(parse(["--bucket", "bkt", *argv, "src"]))
    assert opts.connection.endpoint_url == endpoint
    assert opts.connection.verify == verify


def test_gzip_types_and_retries() -> None:
    opts = options_from_args(
        parse(["--bucket", "bkt", "--gzip-type", "image/png", "--gzip-type", "all", "--retries", "0", "s"])
    )
    assert opts.gzip_types == ("image/png", "all")
    assert opts.connection.max_attempts == 1


# --- issue 27 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filters",
    [
        ["--exclude", "*", "--include", "*.txt"],
        ["--exclude", "*.log"],
        ["--include", "*.txt"],
        ["--exclude", "logs/*", "--include", "logs/keep.log"],
    ],
    ids=["idiom", "excludes-only", "include-alone", "in-order"],
)
def test_filters_keep_the_order_they_were_given_in(filters: list[str]) -> None:
    opts = options_from_args(parse(["--bucket", "bkt", *filters, "src"]))
    given = tuple(zip(filters[::2], filters[1::2], strict=True))
    assert opts.filters == tuple((flag.removeprefix("--"), glob) for flag, glob in given)
    assert (opts.include, opts.exclude) == ((), ())


def help_text() -> str:
    # One line per option: the help wraps at the terminal's width otherwise.
    return " ".join(build_parser().format_help().split())


@pytest.mark.parametrize("transport", ["crt", "boto3"])
def test_help_says_the_default_thread_count(transport: str) -> None:
    # Issue 27, point 7: it said "64 crt, 16 boto3" where both are 64.
    _, threads = default_concurrency(transport)
    assert f"requests in flight per process (default {threads})" in help_text()


def test_help_states_the_filter_rule() -> None:
    text = help_text()
    assert "every file is included unless excluded" in text
    assert "the filters apply in the order given, the last match winning" in text
    assert "--exclude '*' --include '*.txt' uploads the .txt files only" in text
    assert "'k.txt' only the one at the top, '*/k.txt' those below it" in text


class ClosedPipe(io.StringIO):
    """A stdout whose reader left (``| head -1``): every write fails as a pipe's does."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_stdout_is_silenced_and_the_upload_goes_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    results = [PutResult(f"/src/f{i}", f"f{i}", "put", "new", 1) for i in range(5)]

    def upload(options: object, on_result: Callable[[PutResult], None]) -> Stats:
        collector = StatsCollector()
        for result in results:  # each --verbose line meets the closed pipe
            on_result(result)
            collector.add(result)
        return collector.freeze()

    monkeypatch.setattr(cli, "upload", upload)
    err = io.StringIO()
    assert main(["--bucket", "bkt", "--verbose", str(tmp_path)], out=ClosedPipe(), err=err) == 0
    assert err.getvalue() == ""


def test_sigterm_is_ctrl_c_while_main_runs_and_its_handler_is_put_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[int] = []

    def upload(options: object, on_result: object) -> None:
        seen.append(int(signal.getsignal(signal.SIGTERM) is not before))
        os.kill(os.getpid(), signal.SIGTERM)  # delivered here, in the main thread
        raise AssertionError("SIGTERM did not interrupt")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "upload", upload)
    err = io.StringIO()
    code = main(["--bucket", "bkt", str(tmp_path)], out=io.StringIO(), err=err)
    assert seen == [1]
    assert code == EXIT_TERMINATED == 143
    assert signal.getsignal(signal.SIGTERM) is before

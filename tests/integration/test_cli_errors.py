"""Bad input and unusable targets: one line on stderr, exit 2, nothing uploaded, no secret shown."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.cli import main
from airflow_s3pput.testing.local_s3 import LocalS3Server, free_port
from tests.helpers import CliRunner, assert_usage_error, list_keys, make_tree


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        pytest.param(("--put", "sync"), ("invalid --put",), id="invalid-mode"),
        pytest.param(("--grant", "world-writable"), ("invalid --grant",), id="invalid-acl"),
        pytest.param(("--header", "X-Custom: 1"), ("unsupported --header",), id="unknown-header"),
        pytest.param(("--header", "Cache-Control"), ("malformed --header",), id="malformed-header"),
        pytest.param(("--header", "Cache-Control:"), ("empty value",), id="empty-header"),
        pytest.param(("--header", "Cache-Control: a\x01b"), ("control characters",), id="control-char"),
        pytest.param(("--content-type", "nonsense"), ("--content-type",), id="invalid-content-type"),
        pytest.param(("--content-type", "text/plain\r"), ("--content-type",), id="content-type-control"),
        pytest.param(("--header", "x-amz-meta-who: José"), ("ASCII",), id="metadata-not-ascii"),
    ],
)
def test_invalid_input(
    cli: CliRunner,
    s3_env: LocalS3Server,
    s3_client: Any,
    bucket: str,
    tmp_path: Path,
    args: tuple[str, ...],
    fragments: tuple[str, ...],
) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    run = cli("--bucket", bucket, *args, str(src))
    assert_usage_error(run, *fragments, server=s3_env)
    assert list_keys(s3_client, bucket) == {}


def test_missing_source(
    cli: CliRunner, s3_env: LocalS3Server, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    run = cli("--bucket", bucket, str(src), str(tmp_path / "nope"))
    assert_usage_error(run, "does not exist", "nope", server=s3_env)
    assert list_keys(s3_client, bucket) == {}


def test_no_source(cli: CliRunner, s3_env: LocalS3Server, bucket: str) -> None:
    assert_usage_error(cli("--bucket", bucket), "no SOURCE", server=s3_env)


@pytest.mark.parametrize("mode", ["update", "stupid"])
@pytest.mark.parametrize("dry_run", [pytest.param((), id="real"), pytest.param(("--dry-run",), id="dry")])
def test_missing_bucket_is_not_created(
    cli: CliRunner, s3_env: LocalS3Server, s3_client: Any, tmp_path: Path, mode: str, dry_run: tuple[str, ...]
) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    name = f"missing-{tmp_path.name[-12:].lower().replace('_', '-')}-{mode}"
    run = cli("--bucket", name, "--put", mode, *dry_run, str(src))
    assert_usage_error(run, "does not exist", name, server=s3_env)
    buckets = {b["Name"] for b in s3_client.list_buckets()["Buckets"]}
    assert name not in buckets


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"AWS_SECRET_ACCESS_KEY": "wrong-secret-value"}, id="wrong-secret"),
        pytest.param({"AWS_ACCESS_KEY_ID": "AKIDUNKNOWN"}, id="unknown-key"),
    ],
)
def test_bad_credentials(
    cli: CliRunner,
    s3_env: LocalS3Server,
    s3_client: Any,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    run = cli("--bucket", bucket, str(src))
    assert_usage_error(run, bucket, server=s3_env)
    assert "wrong-secret-value" not in run.err
    assert list_keys(s3_client, bucket) == {}


def test_no_credentials(
    cli: CliRunner, s3_env: LocalS3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    assert_usage_error(cli("--bucket", bucket, str(src)), "credentials", server=s3_env)


def test_unknown_profile(
    cli: CliRunner, s3_env: LocalS3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    run = cli("--bucket", bucket, "--profile", "no-such-profile", str(src))
    assert_usage_error(run, "profile", server=s3_env)


@pytest.mark.timeout(60)
def test_unreachable_endpoint(cli: CliRunner, s3_env: LocalS3Server, bucket: str, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    run = cli("--bucket", bucket, "--endpoint-url", endpoint, str(src))
    assert_usage_error(run, "cannot reach", endpoint, server=s3_env)


def test_secret_never_in_output_of_failing_runs(
    cli: CliRunner, s3_env: LocalS3Server, bucket: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    (src / "broken").symlink_to(tmp_path / "missing")
    for args in (("--verbose",), ("--json", "--verbose"), ("--dry-run", "--verbose")):
        run = cli("--bucket", bucket, *args, str(src))
        assert run.code == 1
        assert s3_env.secret_key not in run.out + run.err
        assert s3_env.access_key not in run.out + run.err


def test_main_without_server_needs_no_network(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["--bucket", "bkt", "--grant", "nope", str(tmp_path)], out=out, err=err) == 2

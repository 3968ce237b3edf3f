"""``--include``/``--exclude`` as a user coming from ``aws s3 sync`` writes them (issue 27, point 3).

aws cli is the oracle: the same filters given to ``aws s3 cp --recursive`` and to ``s3pput``
upload the same keys, against SeaweedFS. A filter list that leaves out every file of a
non-empty SOURCE is said in one warning line, and so are includes that change nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.helpers import CliRunner, list_keys, make_tree, new_bucket

BIN = Path(sys.executable).parent

TREE: dict[str, bytes | str] = {
    "k.txt": "top",
    "a.log": "log",
    "keep/k.txt": "deeper",
    "keep/b.log": "log",
    "keep/deep/c.txt": "c",
    "logs/x.log": "x",
    "logs/keep.log": "keep",
    "img/logo.png": b"\x89PNG",
}


def aws_cli_keys(server: LocalS3Server, tmp_path: Path, src: Path, filters: list[str]) -> set[str]:
    """What ``aws s3 cp --recursive`` uploads from ``src`` with ``filters``."""
    bucket = new_bucket(server)
    env = {
        **server.env(),
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(
        [str(BIN / "aws"), "--endpoint-url", server.endpoint_url, "s3", "cp", "--recursive",
         "--only-show-errors", *filters, str(src), f"s3://{bucket}/"],
        env=env, check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    return set(list_keys(server.client(), bucket))


@pytest.mark.parametrize(
    "filters",
    [
        pytest.param(["--exclude", "*", "--include", "*.txt"], id="exclude-all-include-txt"),
        pytest.param(["--include", "*.txt", "--exclude", "*"], id="include-then-exclude-all"),
        pytest.param(["--exclude", "k.txt"], id="top-name"),
        pytest.param(["--exclude", "*/k.txt"], id="deeper-name"),
        pytest.param(["--exclude", "*k.txt"], id="any-depth-name"),
        pytest.param(["--exclude", "logs/*", "--include", "logs/keep.log"], id="all-of-a-dir-but-one"),
        pytest.param(["--exclude", "*", "--include", "keep/*", "--exclude", "*.log"], id="three-steps"),
        pytest.param(["--include", "*.png"], id="include-alone"),
    ],
)
def test_filters_select_what_aws_cli_selects(
    cli: CliRunner,
    s3_server: LocalS3Server,
    s3_client: Any,
    bucket: str,
    tmp_path: Path,
    filters: list[str],
) -> None:
    src = make_tree(tmp_path / "src", TREE)
    expected = aws_cli_keys(s3_server, tmp_path, src, filters)
    run = cli("--bucket", bucket, *filters, str(src))
    assert run.code == 0, run.err
    assert set(list_keys(s3_client, bucket)) == expected


def test_filters_that_leave_out_every_file_say_so_in_one_line(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", TREE)
    run = cli("--bucket", bucket, "--exclude", "*", "--include", "*.csv", str(src))
    assert run.code == 0, run.err
    warnings = [line for line in run.err.splitlines() if "warning" in line]
    assert len(warnings) == 1, run.err
    assert "left out every file of SOURCE" in warnings[0]
    assert "files put      0" in run.out
    assert list_keys(s3_client, bucket) == {}


def test_no_warning_when_the_filters_select_files_or_the_source_is_empty(
    cli: CliRunner, bucket: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", TREE)
    assert cli("--bucket", bucket, "--exclude", "*.log", str(src)).err == ""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("--bucket", bucket, "--exclude", "*", str(empty)).err == ""


def test_includes_before_any_exclude_are_said_to_change_nothing(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", TREE)
    run = cli("--bucket", bucket, "--include", "*.png", str(src))
    assert run.code == 0, run.err
    assert run.err.splitlines() == [
        "s3pput: warning: --include '*.png' before any --exclude changes nothing: every file is included "
        "unless an earlier --exclude left it out (e.g. --exclude '*' --include '*.png')"
    ]
    assert set(list_keys(s3_client, bucket)) == set(TREE)


def test_delete_keeps_the_keys_the_filters_hide(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    # The idiom as two lists: --delete removes only the keys the filters let through.
    for key in ("gone.txt", "gone.log"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"old")
    src = make_tree(tmp_path / "src", TREE)
    run = cli("--bucket", bucket, "--delete", "--exclude", "*", "--include", "*.txt", str(src))
    assert run.code == 0, run.err
    assert set(list_keys(s3_client, bucket)) == {"k.txt", "keep/k.txt", "keep/deep/c.txt", "gone.log"}


def test_delete_keeps_what_filters_in_any_order_hide(
    cli: CliRunner, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    # An order two lists cannot say: logs/ left out, but logs/keep.log taken back in.
    for key in ("gone.txt", "logs/old.log", "logs/keep.log"):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"old")
    src = make_tree(tmp_path / "src", TREE)
    run = cli("--bucket", bucket, "--delete", "--exclude", "logs/*", "--include", "logs/keep.log", str(src))
    assert run.code == 0, run.err
    # gone.txt is removed; logs/old.log is hidden by the filters and kept; logs/keep.log is put
    assert set(list_keys(s3_client, bucket)) == (set(TREE) - {"logs/x.log"}) | {"logs/old.log"}
    assert s3_client.get_object(Bucket=bucket, Key="logs/keep.log")["Body"].read() == b"keep"

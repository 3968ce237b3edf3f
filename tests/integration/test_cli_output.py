"""A reader that goes away (``s3pput --verbose ... | head -1``) stops neither the upload nor
the exit code's truth, and prints no traceback (issue 27, point 4). aws cli uploads all its
files and exits 0 in the same pipe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.helpers import list_keys, make_tree

S3PPUT = str(Path(sys.executable).parent / "s3pput")
pytestmark = pytest.mark.timeout(120)


def piped_to_head(server: LocalS3Server, *argv: str) -> tuple[str, int, str]:
    """Run ``s3pput`` with its stdout piped to a reader that takes one line and leaves, as
    ``| head -1`` does; return that line, the exit code and stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.env())
    process = subprocess.Popen(
        [S3PPUT, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # head -1 exits: every later write to the pipe fails with EPIPE
    err = process.stderr.read()
    return first, process.wait(timeout=100), err


@pytest.mark.parametrize("transport", ["crt", "boto3"])
def test_a_closed_stdout_stops_neither_the_upload_nor_the_truth(
    s3_server: LocalS3Server, s3_client: Any, bucket: str, tmp_path: Path, transport: str
) -> None:
    # 400 lines of ~300 bytes: more than a pipe holds, so writes fail while files are in flight.
    tree: dict[str, bytes | str] = {f"d{i % 4}/{'long-name-' * 10}{i:04}.txt": f"{i}" for i in range(400)}
    src = make_tree(tmp_path / "src", tree)
    first, code, err = piped_to_head(
        s3_server, "--bucket", bucket, "--verbose", "--transport", transport, "--processes", "1", str(src)
    )
    assert first.startswith("put "), first
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err, err
    assert code == 0, err
    assert set(list_keys(s3_client, bucket)) == set(tree)


def test_a_closed_stdout_keeps_a_failure_s_exit_code(
    s3_server: LocalS3Server, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    tree: dict[str, bytes | str] = {f"{'long-name-' * 10}{i:04}.txt": f"{i}" for i in range(300)}
    src = make_tree(tmp_path / "src", tree)
    (src / "zz-broken").symlink_to(tmp_path / "missing")
    first, code, err = piped_to_head(s3_server, "--bucket", bucket, "--verbose", "--processes", "1", str(src))
    assert first
    assert code == 1, err  # one file failed: the closed pipe does not hide it
    assert "broken symlink" in err and "Traceback" not in err
    assert set(list_keys(s3_client, bucket)) == set(tree)

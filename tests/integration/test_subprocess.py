"""The installed ``s3pput`` command as a user runs it: exit codes, no traceback, worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.helpers import list_keys, make_tree

S3PPUT = str(Path(sys.executable).parent / "s3pput")


def run(
    server: LocalS3Server, *argv: str, command: tuple[str, ...] = (S3PPUT,)
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **server.env())
    return subprocess.run([*command, *argv], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param((S3PPUT,), id="console-script"),
        pytest.param((sys.executable, "-m", "airflow_s3pput"), id="module"),
    ],
)
def test_command_uploads_with_worker_processes(
    s3_server: LocalS3Server, s3_client: Any, bucket: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    tree = {f"d{i % 3}/f{i}.txt": f"{i}" for i in range(40)}
    src = make_tree(tmp_path / "src", tree)
    done = run(s3_server, "--bucket", bucket, "--processes", "2", "--threads", "2", str(src), command=command)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "files put      40" in done.stdout
    assert set(list_keys(s3_client, bucket)) == set(tree)


def test_exit_codes_and_no_traceback(
    s3_server: LocalS3Server, s3_client: Any, bucket: str, tmp_path: Path
) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": "a"})
    (src / "broken").symlink_to(tmp_path / "missing")
    with open(os.path.join(os.fsencode(src), b"latin1-\xe9.txt"), "wb") as f:
        f.write(b"a name that is not UTF-8")

    failed = run(s3_server, "--bucket", bucket, str(src))
    assert failed.returncode == 1
    assert "s3pput: failed" in failed.stderr and "broken symlink" in failed.stderr
    assert "latin1-\\xe9.txt" in failed.stderr and "not valid UTF-8" in failed.stderr
    assert "files failed   2" in failed.stdout
    assert set(list_keys(s3_client, bucket)) == {"a.txt"}
    as_json = run(s3_server, "--bucket", bucket, "--json", str(src))
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["files_failed"] == 2

    for argv, message in (
        (("--bucket", "no-such-bucket-here", str(src)), "does not exist"),
        (("--bucket", bucket, "--grant", "everyone", str(src)), "invalid --grant"),
        (("--bucket", bucket, str(tmp_path / "nope")), "does not exist"),
    ):
        done = run(s3_server, *argv)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("s3pput: error: "), done.stderr
        assert message in done.stderr
    for done in (failed, as_json):
        assert "Traceback" not in done.stderr
        assert s3_server.secret_key not in done.stdout + done.stderr

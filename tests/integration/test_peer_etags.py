"""Objects uploaded by other tools at their default settings are recognised by ``update``
(issue 13, item 3): aws cli (8 MiB parts), s5cmd (50 MiB parts) and boto3's ``upload_file``
(8 MiB parts) write multipart ETags (``md5-of-part-md5s-N``) whose part size we must find.

The real tools run against SeaweedFS and moto; then ``s3pput --put update`` puts nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from airflow_s3pput.etag import MIB
from tests.helpers import CliRunner, S3Endpoint, list_keys, make_tree

BIN = Path(sys.executable).parent


def isolated_env(any_s3: S3Endpoint, tmp_path: Path) -> dict[str, str]:
    """The server's credentials and endpoint, and no AWS config file of this machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(any_s3.env())
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-credentials")
    return env


def aws_cli_cp(any_s3: S3Endpoint, tmp_path: Path, path: Path, bucket: str, key: str) -> None:
    subprocess.run(
        [str(BIN / "aws"), "--endpoint-url", any_s3.endpoint_url, "s3", "cp", "--only-show-errors",
         str(path), f"s3://{bucket}/{key}"],
        env=isolated_env(any_s3, tmp_path), check=True, timeout=120, capture_output=True,
    )  # fmt: skip


def s5cmd_cp(any_s3: S3Endpoint, tmp_path: Path, path: Path, bucket: str, key: str) -> None:
    subprocess.run(
        [str(BIN / "s5cmd"), "--endpoint-url", any_s3.endpoint_url, "cp", str(path), f"s3://{bucket}/{key}"],
        env=isolated_env(any_s3, tmp_path), check=True, timeout=120, capture_output=True,
    )  # fmt: skip


def boto3_upload_file(any_s3: S3Endpoint, tmp_path: Path, path: Path, bucket: str, key: str) -> None:
    # The classic transfer manager at its defaults (8 MiB threshold and parts); "auto" would
    # pick the CRT only on the instance types it is tuned for, never on this machine.
    any_s3.client().upload_file(
        str(path), bucket, key, Config=TransferConfig(preferred_transfer_client="classic")
    )


#: tool, its uploader, and file sizes around its multipart threshold and part size
PEERS = [
    # 17 MiB: 3 parts of 8 MiB, which s3pput guessed as 6 MiB; 33 MiB + 1: 5 parts.
    pytest.param(aws_cli_cp, (1000, 8 * MIB - 1, 17 * MIB, 33 * MIB + 1), 2, id="aws-cli"),
    # 56 MiB: 50 + 6 MiB, guessed as 28 MiB; below 50 MiB s5cmd sends a single PUT.
    pytest.param(s5cmd_cp, (1000, 12 * MIB + 5, 56 * MIB), 1, id="s5cmd"),
    # 25 MiB: 4 parts of 8 MiB, guessed as 7 MiB.
    pytest.param(boto3_upload_file, (1000, 25 * MIB), 1, id="boto3-upload_file"),
]


@pytest.mark.parametrize(("uploader", "sizes", "multipart"), PEERS)
def test_update_skips_what_a_peer_uploaded(
    any_cli: CliRunner,
    any_s3: S3Endpoint,
    any_bucket: str,
    tmp_path: Path,
    uploader: Any,
    sizes: tuple[int, ...],
    multipart: int,
) -> None:
    files = {f"f{size}.bin": os.urandom(size) for size in sizes}
    src = make_tree(tmp_path / "src", files)  # type: ignore[arg-type]
    for name in files:
        uploader(any_s3, tmp_path, src / name, any_bucket, f"pre/{name}")
    listed = list_keys(any_s3.client(), any_bucket, "pre/")
    etags = {key: obj["ETag"].strip('"') for key, obj in listed.items()}
    assert sum("-" in etag for etag in etags.values()) == multipart, etags  # the peer used parts

    run = any_cli("--bucket", any_bucket, "--prefix", "pre", "--put", "update", "--json", str(src))
    assert run.code == 0, run.err
    summary = run.summary
    assert summary["files_put"] == 0, (summary, etags)
    assert summary["skipped"] == {"unchanged": len(files)}

"""``--header "x-amz-meta-NAME:"``: an empty user-metadata value is accepted, as S3 and aws cli
accept it, and sent as an empty value (issue 13, item 4), on both servers and data planes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.etag import MIB
from airflow_s3pput.testing.moto_s3 import MotoS3Server
from tests.helpers import CliRunner, S3Endpoint, make_tree

METADATA = {"empty": "", "owner": "team a"}


@pytest.mark.parametrize("transport", ["crt", "boto3"])
def test_empty_metadata_value_lands(
    any_cli: CliRunner, any_s3: S3Endpoint, any_bucket: str, tmp_path: Path, transport: str
) -> None:
    client: Any = any_s3.client()
    # What the server keeps of an empty value in a PutObject sent by boto3 itself: moto (like
    # AWS) keeps it; SeaweedFS 4.48 drops it, whoever sends it (it keeps it on a multipart upload).
    client.put_object(Bucket=any_bucket, Key="reference", Body=b"x", Metadata=METADATA)
    kept_by_put = client.head_object(Bucket=any_bucket, Key="reference")["Metadata"]
    if isinstance(any_s3, MotoS3Server):
        assert kept_by_put == METADATA
    src = make_tree(tmp_path / "src", {"small.txt": "hello", "big.bin": os.urandom(6 * MIB)})
    run = any_cli(
        "--bucket",
        any_bucket,
        "--transport",
        transport,
        "--multipart-threshold",
        "5MiB",
        "--part-size",
        "5MiB",
        "--header",
        "x-amz-meta-empty:",
        "--header",
        "x-amz-meta-owner: team a",
        str(src),
    )
    assert run.code == 0, run.err
    assert client.head_object(Bucket=any_bucket, Key="small.txt")["Metadata"] == kept_by_put
    assert client.head_object(Bucket=any_bucket, Key="big.bin")["Metadata"] == METADATA  # multipart

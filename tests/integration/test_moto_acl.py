"""``--grant`` end to end through the CLI on moto, which (unlike SeaweedFS) reports ACLs back."""

from __future__ import annotations

import io
import os
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from airflow_s3pput.cli import main
from airflow_s3pput.etag import MIB
from tests.helpers import make_tree, no_aws_env

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


@pytest.mark.parametrize(
    ("grant", "public"),
    [pytest.param("public-read", True, id="public-read"), pytest.param("private", False, id="private")],
)
def test_grant_sets_canned_acl(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, grant: str, public: bool
) -> None:
    no_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    src = make_tree(tmp_path / "src", {"a.txt": "a", "big.bin": os.urandom(6 * MIB)})
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="acl-bucket")
        out, err = io.StringIO(), io.StringIO()
        argv = [
            "--bucket",
            "acl-bucket",
            "--grant",
            grant,
            "--processes",
            "1",
            "--transport",  # moto patches botocore; the CRT data plane would go to the network
            "boto3",
            "--multipart-threshold",
            "5MiB",
        ]
        code = main([*argv, "--part-size", "5MiB", str(src)], out=out, err=err)
        assert code == 0, err.getvalue()
        for key in ("a.txt", "big.bin"):
            grants = client.get_object_acl(Bucket="acl-bucket", Key=key)["Grants"]
            readers = {g["Grantee"].get("URI") for g in grants if g["Permission"] == "READ"}
            assert (ALL_USERS in readers) is public, (key, grants)

"""Credentials that refresh themselves (an assumed role, web identity: an Airflow connection's)
sign every request of a run as they are at that moment, not as they were when it started."""

from __future__ import annotations

import datetime
import functools
import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput import engine
from airflow_s3pput.options import UploadOptions
from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.helpers import list_keys, make_tree

MIB = 1024 * 1024
_refreshes: dict[str, int] = {}
_lock = threading.Lock()


def expiring_session(server_keys: tuple[str, str], name: str) -> Any:
    """A boto3 session whose credentials expire a second after each refresh (botocore then
    refreshes them before every use), counting the refreshes under ``name``."""
    import boto3
    import botocore.session
    from botocore.credentials import CredentialProvider, RefreshableCredentials

    def refresh() -> dict[str, Any]:
        with _lock:
            _refreshes[name] = _refreshes.get(name, 0) + 1
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
        return {"access_key": server_keys[0], "secret_key": server_keys[1], "token": None,
                "expiry_time": expiry.isoformat()}  # fmt: skip

    class Rotating(CredentialProvider):  # type: ignore[misc]
        METHOD = CANONICAL_NAME = "test-rotation"

        def load(self) -> RefreshableCredentials:
            metadata = refresh()
            return RefreshableCredentials.create_from_metadata(metadata, refresh, self.METHOD)

    core = botocore.session.Session()
    core.get_component("credential_provider").insert_before("env", Rotating())
    return boto3.session.Session(botocore_session=core, region_name="us-east-1")


@pytest.mark.parametrize("transport", ["crt", "boto3"])
def test_a_run_signs_with_credentials_that_refresh(
    s3_server: LocalS3Server, s3_client: Any, bucket: str, tmp_path: Path, transport: str
) -> None:
    tree = {f"f{i:02}.txt": f"file {i}\n" for i in range(20)} | {"big.bin": "b" * (11 * MIB)}
    src = make_tree(tmp_path / "src", tree)
    name = f"{transport}-{bucket}"
    factory = functools.partial(expiring_session, (s3_server.access_key, s3_server.secret_key), name)
    connection = s3_server.connection(session_factory=factory, access_key=None, secret_key=None)
    assert connection.access_key is None  # nothing frozen to fall back on
    options = UploadOptions(
        bucket=bucket, sources=(str(src),), transport=transport, processes=1, connection=connection,
        multipart_threshold=5 * MIB, part_size=5 * MIB,
    )  # fmt: skip
    stats = engine.upload(options)
    assert (stats.files_put, stats.failed) == (len(tree), 0)
    assert set(list_keys(s3_client, bucket)) == set(tree)
    assert _refreshes[name] >= 3  # refreshed along the run, not frozen at its start

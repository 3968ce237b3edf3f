"""Fixtures for the fault-injection tests: one SeaweedFS server per session, a proxy per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server

from .proxy import FAULTS_BUCKET, FaultProxy, proxy_threads


@pytest.fixture(scope="session")
def s3_server() -> Iterator[LocalS3Server]:
    """A real SeaweedFS S3 server on loopback with bucket ``faults-bucket``."""
    with LocalS3Server(bucket=FAULTS_BUCKET) as server:
        yield server


@pytest.fixture
def fault_proxy(s3_server: LocalS3Server) -> Iterator[FaultProxy]:
    """A :class:`FaultProxy` in front of :func:`s3_server`, stopped after the test."""
    with FaultProxy(upstream=("127.0.0.1", s3_server.port)) as proxy:
        yield proxy
    assert proxy_threads(proxy) == [], "FaultProxy.stop() left threads behind"


@pytest.fixture
def proxy_client(s3_server: LocalS3Server, fault_proxy: FaultProxy) -> Callable[..., Any]:
    """Factory for boto3 S3 clients that talk to the server through :func:`fault_proxy`.

    Defaults show the raw fault: one attempt, short timeouts, one pooled connection (so the
    requests share a keep-alive connection). Override any ``botocore.config.Config`` option.
    """
    import boto3
    from botocore.config import Config

    def make(**config: Any) -> Any:
        options: dict[str, Any] = {
            "retries": {"total_max_attempts": 1, "mode": "standard"},
            "connect_timeout": 2,
            "read_timeout": 5,
            "max_pool_connections": 1,
        }
        options.update(config)
        return boto3.client(
            "s3",
            endpoint_url=fault_proxy.endpoint_url,
            aws_access_key_id=s3_server.access_key,
            aws_secret_access_key=s3_server.secret_key,
            region_name="us-east-1",
            config=Config(**options),
        )

    return make

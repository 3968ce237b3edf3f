"""Fixtures for the integration tests: count the requests a client sends."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.helpers import RequestLog


@pytest.fixture
def logged_client(s3_server: LocalS3Server) -> tuple[Any, RequestLog]:
    """A fresh boto3 client for the engine (wrapped in ``Boto3Transport``) and the log of its calls."""
    client = s3_server.client()
    log = RequestLog()
    client.meta.events.register("before-call.s3", log)
    return client, log

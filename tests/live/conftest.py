"""A real Airflow 3 for the live tests: api-server, scheduler, dag-processor and triggerer.

One Airflow for all the tests of this package (``live_airflow``), in a temporary home: SQLite,
LocalExecutor with room for several task processes at once, the example DAGs, the
``aws_default`` connection to the session's SeaweedFS, and the simple auth manager with a user
and password from a passwords file. How it starts, waits until ready and stops (by the process
groups it created, then a check that none of its processes is left) lives once, in
``airflow_s3pput.testing.live_airflow.running_airflow`` (``local_airflow.LocalAirflow`` sets up
its home); the client the tests use is its ``LiveAirflow``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from airflow_s3pput.testing.live_airflow import LiveAirflow
from airflow_s3pput.testing.local_airflow import LocalAirflow
from airflow_s3pput.testing.local_s3 import LocalS3Server

USERNAME = "tester"
#: seconds to wait for the components to be healthy and the DAG parsed
STARTUP_TIMEOUT = 120.0
#: mapped put instances that may run at once (LocalExecutor worker processes)
PARALLELISM = 4


@pytest.fixture(scope="package")
def live_airflow(s3_server: LocalS3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAirflow]:
    """A running Airflow 3 (all four components) with the example DAGs, ``s3pput_upload`` unpaused."""
    home = tmp_path_factory.mktemp("airflow-live")
    leftovers: list[str] = []
    local = LocalAirflow.prepare(
        s3_server, home, username=USERNAME, parallelism=PARALLELISM, extra={"PYTHONUNBUFFERED": "1"}
    )
    with local.running(startup_timeout=STARTUP_TIMEOUT, leftovers=leftovers) as live:
        print(f"\nlive Airflow ready at {live.base_url} in {live.startup_seconds:.1f}s (home {home})")
        yield live
        stopping = time.monotonic()
    print(f"\nlive Airflow stopped in {time.monotonic() - stopping:.1f}s")
    assert not leftovers, f"processes of the live Airflow outlived their process groups: {leftovers}"

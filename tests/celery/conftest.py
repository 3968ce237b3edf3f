"""Airflow's distributed set-up for the tests of this package: CeleryExecutor, Postgres, Redis.

One stack for the package (``celery_airflow``): Postgres and Redis from Debian's packages
(``scripts/install-services.sh``, run by ``make test``) on free loopback ports, the Airflow
components and two Celery workers, ``worker-1`` and ``worker-2``, each with two task slots and its
own task-instance hostname (``airflow_s3pput.testing.celery_stack``).

The example DAG has no retries of its own, so the deployment gives every task some
(``[core] default_task_retries``), and a lost worker's tasks are failed — and so retried —
20 s after their last heartbeat instead of Airflow's default 300 s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from airflow_s3pput.testing.celery_stack import CeleryStack, celery_stack, services_missing
from airflow_s3pput.testing.local_s3 import LocalS3Server

#: seconds without a heartbeat after which the scheduler fails a task instance (default 300)
HEARTBEAT_TIMEOUT = 20
RETRIES = 2
CONFIG = {
    "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": str(RETRIES),
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "2",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    # A task whose message a lost worker had taken but not started stays queued until this
    # (default 600 s); with every slot filled when the test kills a worker there is none.
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
}


@pytest.fixture(scope="package")
def celery_airflow(
    s3_server: LocalS3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryStack]:
    """A running CeleryExecutor deployment with two workers; ``s3pput_upload`` unpaused."""
    missing = services_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Celery tests: {missing}")
        pytest.skip(missing)
    home = tmp_path_factory.mktemp("airflow-celery")
    leftovers: list[str] = []
    with celery_stack(s3_server, home, config=CONFIG, leftovers=leftovers) as stack:
        ready = stack.live.startup_seconds
        print(f"\nCelery Airflow ready at {stack.live.base_url} in {ready:.1f}s (home {home})")
        yield stack
    assert not leftovers, f"processes of the Celery stack outlived their process groups: {leftovers}"

"""Real Airflow for the provider tests: one SQLite home, DAG runs through ``airflow dags test``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_airflow import EXAMPLE_DAGS, airflow, airflow_env, migrate, task_states
from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.helpers import DagRunResult, RunDag


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, s3_server: LocalS3Server) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    migrate(airflow_env(home, s3_server), home / "migrate.log")
    return home


@pytest.fixture
def run_dag(airflow_home: Path, s3_server: LocalS3Server, tmp_path: Path) -> RunDag:
    """``run_dag(dag_id, conf, env=..., dags_folder=..., logical_date=...)`` runs one DAG through
    real Airflow (``airflow dags test``) against the session's SeaweedFS; returns what it left."""

    def run(
        dag_id: str,
        conf: dict[str, Any],
        env: dict[str, str] | None = None,
        dags_folder: Path = EXAMPLE_DAGS,
        logical_date: str | None = None,
    ) -> DagRunResult:
        log = tmp_path / f"dag-{uuid.uuid4().hex[:8]}.log"
        environment = airflow_env(airflow_home, s3_server, dags_folder=dags_folder, extra=env)
        when = [logical_date] if logical_date else []
        code = airflow(environment, "dags", "test", dag_id, *when, "-c", json.dumps(conf), log=log)
        text = log.read_text(errors="replace")
        return DagRunResult(dag_id, code, text, task_states(airflow_home, dag_id), airflow_home)

    return run


@pytest.fixture
def run_upload_dag(run_dag: RunDag) -> RunDag:
    """Run ``s3pput_upload`` with ``conf`` through real Airflow; returns states, XComs, log."""

    def run(conf: dict[str, Any], env: dict[str, str] | None = None) -> DagRunResult:
        return run_dag("s3pput_upload", conf, env=env)

    return run

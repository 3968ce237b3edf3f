"""Real Airflow for the provider tests: one SQLite home, DAG runs through ``airflow dags test``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_airflow import airflow_env, dags_test, migrate, read_xcoms, task_states
from airflow_s3pput.testing.local_s3 import LocalS3Server


@dataclass
class DagRunResult:
    exit_code: int
    log: str
    states: dict[tuple[str, int], str]
    home: Path

    def xcoms(self, task_id: str, key: str = "return_value") -> list[Any]:
        return read_xcoms(self.home, "s3pput_upload", task_id, key)

    @property
    def summary(self) -> dict[str, Any]:
        values = self.xcoms("upload.reduce")
        assert values, f"no reduce XCom; log tail:\n{self.log[-3000:]}"
        return dict(values[0])

    def count(self, task_id: str, state: str) -> int:
        return sum(1 for (t, _), s in self.states.items() if t == task_id and s == state)


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, s3_server: LocalS3Server) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    migrate(airflow_env(home, s3_server), home / "migrate.log")
    return home


RunDag = Callable[..., DagRunResult]


@pytest.fixture
def run_upload_dag(airflow_home: Path, s3_server: LocalS3Server, tmp_path: Path) -> RunDag:
    """Run ``s3pput_upload`` with ``conf`` through real Airflow; returns states, XComs, log."""

    def run(conf: dict[str, Any], env: dict[str, str] | None = None) -> DagRunResult:
        log = tmp_path / f"dag-{uuid.uuid4().hex[:8]}.log"
        code = dags_test(airflow_env(airflow_home, s3_server, extra=env), "s3pput_upload", conf, log)
        text = log.read_text(errors="replace")
        return DagRunResult(code, text, task_states(airflow_home, "s3pput_upload"), airflow_home)

    return run

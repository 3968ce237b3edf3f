"""A throwaway Airflow for the demo, the tests and the benchmarks: home, config, connection.

Airflow runs as subprocesses with their own environment, so the calling process never imports
Airflow with the wrong settings. The AWS connection is passed the way a deployment would set
it, ``AIRFLOW_CONN_<ID>`` as JSON, pointing at a ``LocalS3Server``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_s3pput.testing.live_airflow import MARKER, LiveAirflow, running_airflow
from airflow_s3pput.testing.local_s3 import LocalS3Server, LoopbackS3, free_port


def example_dags_folder() -> Path:
    """The example DAGs: ``$S3PPUT_DAGS_FOLDER``, else ``dags_examples/`` of the checkout this
    package runs from (an editable install), else ``dags_examples/`` under the current directory
    (an installed wheel run from a checkout, as in the Docker image)."""
    override = os.environ.get("S3PPUT_DAGS_FOLDER")
    if override:
        return Path(override)
    checkout = Path(__file__).resolve().parents[2] / "dags_examples"
    return checkout if checkout.is_dir() else Path.cwd() / "dags_examples"


EXAMPLE_DAGS = example_dags_folder()


def connection_json(s3: LoopbackS3) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": s3.access_key,
            "password": s3.secret_key,
            "extra": {"endpoint_url": s3.endpoint_url, "region_name": "us-east-1"},
        }
    )


def airflow_env(
    home: Path,
    s3: LoopbackS3,
    *,
    conn_id: str = "aws_default",
    dags_folder: Path = EXAMPLE_DAGS,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for Airflow commands: SQLite home, our DAGs, an AWS connection to ``s3``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW"))}
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        {
            "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "false",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            f"AIRFLOW_CONN_{conn_id.upper()}": connection_json(s3),
            # Workers of the mapped tasks must not pick up credentials from anywhere else.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.update(extra or {})
    return env


def live_airflow_env(
    home: Path,
    s3: LoopbackS3,
    *,
    port: int,
    users: Mapping[str, str],
    parallelism: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for a live Airflow (api-server, scheduler, dag-processor, triggerer).

    LocalExecutor with ``parallelism`` slots, the API on ``127.0.0.1:port``, the simple auth
    manager with ``users`` (name -> password, all admins) written to a file in ``home``.
    Tasks reach the API server through ``EXECUTION_API_SERVER_URL``: without it they die right
    after "Pre Execute".
    """
    base_url = f"http://127.0.0.1:{port}"
    passwords = home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps(dict(users)))
    live = {
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{name}:admin" for name in users),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        # Every component must sign and check tokens with the same secrets.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "false",
    }
    return airflow_env(home, s3, extra={**live, **(extra or {})})


def airflow(env: Mapping[str, str], *args: str, log: Path | None = None, timeout: float = 900) -> int:
    """Run the ``airflow`` command of this interpreter's environment; output goes to ``log``."""
    command = [str(Path(sys.executable).parent / "airflow"), *args]
    if log is None:
        return subprocess.run(command, env=dict(env), timeout=timeout, check=False).returncode
    with open(log, "ab") as out:
        return subprocess.run(
            command, env=dict(env), stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
        ).returncode


def migrate(env: Mapping[str, str], log: Path) -> None:
    if airflow(env, "db", "migrate", log=log) != 0:
        raise RuntimeError(f"airflow db migrate failed; see {log}")


@dataclass(frozen=True)
class LocalAirflow:
    """A migrated Airflow home for the LocalExecutor, talking to a ``LocalS3Server``: its
    environment (``live_airflow_env``) and the login to its API, ready to be started.

    ``LocalAirflow.prepare(s3, home, ...)`` picks a free port, a fresh password for
    ``username`` and a fresh process marker, and runs ``db migrate``; ``running()`` is
    ``live_airflow.running_airflow`` on it. In between, ``env`` serves ``airflow dags test``.
    """

    home: Path
    env: Mapping[str, str]
    port: int
    username: str
    password: str
    mark: str

    @classmethod
    def prepare(
        cls,
        s3: LocalS3Server,
        home: Path,
        *,
        username: str,
        parallelism: int,
        extra: Mapping[str, str] | None = None,
    ) -> LocalAirflow:
        port, password, mark = free_port(), secrets.token_urlsafe(12), uuid.uuid4().hex
        users = {username: password}
        env = live_airflow_env(
            home, s3, port=port, users=users, parallelism=parallelism, extra={**(extra or {}), MARKER: mark}
        )
        migrate(env, home / "migrate.log")
        return cls(home, env, port, username, password, mark)

    @contextlib.contextmanager
    def running(
        self, *, startup_timeout: float = 120.0, leftovers: list[str] | None = None
    ) -> Iterator[LiveAirflow]:
        """The components started and ready, the DAG unpaused; all stopped when the block ends."""
        with running_airflow(
            self.env,
            self.home,
            base_url=f"http://127.0.0.1:{self.port}",
            username=self.username,
            password=self.password,
            mark=self.mark,
            startup_timeout=startup_timeout,
            leftovers=leftovers,
        ) as live:
            yield live


def dags_test(env: Mapping[str, str], dag_id: str, conf: Mapping[str, Any], log: Path) -> int:
    return airflow(env, "dags", "test", dag_id, "-c", json.dumps(dict(conf)), log=log)


def read_xcoms(home: Path, dag_id: str, task_id: str, key: str = "return_value") -> list[Any]:
    """XCom values of ``task_id`` in the latest run of ``dag_id``, by map index."""
    with sqlite3.connect(home / "airflow.db") as db:
        run = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        if run is None:
            return []
        rows = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ? "
            "ORDER BY map_index",
            (dag_id, run[0], task_id, key),
        ).fetchall()
    return [json.loads(value) for (value,) in rows]


def task_states(home: Path, dag_id: str) -> dict[tuple[str, int], str]:
    """``(task_id, map_index) -> state`` in the latest run of ``dag_id``."""
    with sqlite3.connect(home / "airflow.db") as db:
        run = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        if run is None:
            return {}
        rows = db.execute(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (dag_id, run[0]),
        ).fetchall()
    return {(task_id, map_index): state for task_id, map_index, state in rows}

"""A real Airflow 3 for the live tests: api-server, scheduler, dag-processor and triggerer.

One Airflow for all the tests of this package (``live_airflow``), in a temporary home: SQLite,
LocalExecutor with room for several task processes at once, the example DAGs, the
``aws_default`` connection to the session's SeaweedFS, and the simple auth manager with a user
and password from a passwords file. The components are the ones ``airflow standalone`` runs,
started one by one so that each has its own log file and its own process group.

Teardown stops every process by the process group we created (never by name), then checks that
no process of this Airflow is left, by the working directory and an environment marker that
they all inherit: task processes move to process groups of their own, so the groups alone are
not enough to be sure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from airflow_s3pput.testing.local_airflow import live_airflow_env, migrate
from airflow_s3pput.testing.local_s3 import LocalS3Server, free_port

DAG_ID = "s3pput_upload"
USERNAME = "tester"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: seconds to wait for the components to be healthy and the DAG parsed
STARTUP_TIMEOUT = 120.0
#: mapped put instances that may run at once (LocalExecutor worker processes)
PARALLELISM = 4
MARKER = "S3PPUT_LIVE_AIRFLOW"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowAPIError(AssertionError):
    pass


@dataclass
class LiveAirflow:
    """A running Airflow and a small client for its public REST API (``/api/v2``)."""

    base_url: str
    home: Path
    username: str
    password: str
    s3: LocalS3Server
    mark: str = ""
    startup_seconds: float = 0.0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _token: str | None = field(default=None, repr=False)
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0), repr=False)

    def token(self) -> str:
        """A JWT from ``POST /auth/token``, as the UI gets one at login."""
        if self._token is None:
            response = self._http.post(
                f"{self.base_url}/auth/token", json={"username": self.username, "password": self.password}
            )
            if response.status_code not in (200, 201):
                raise AirflowAPIError(f"login failed: {response.status_code} {response.text}")
            self._token = str(response.json()["access_token"])
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return self._http.request(method, f"{self.base_url}{path}", headers=headers, **kwargs)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2{path}``; fail the test with the server's answer unless it is 2xx."""
        response = self.request(method, f"/api/v2{path}", **kwargs)
        if not response.is_success:
            raise AirflowAPIError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    # -- DAG runs, the way the UI's trigger form sends them ------------------------------------

    def trigger(self, conf: dict[str, Any], dag_id: str = DAG_ID) -> httpx.Response:
        """``POST /dags/{dag_id}/dagRuns`` with the body the trigger form sends."""
        return self.request(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}
        )

    def run(self, run_id: str, dag_id: str = DAG_ID) -> dict[str, Any]:
        return dict(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}"))

    def wait_for_run(self, run_id: str, *, timeout: float = 120.0, dag_id: str = DAG_ID) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id, dag_id)
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                raise AirflowAPIError(
                    f"run {run_id} still {run['state']} after {timeout}s; "
                    f"tasks: {self.task_states(run_id, dag_id)}; logs in {self.home}"
                )
            self.check_alive()
            time.sleep(0.5)

    def task_instances(self, run_id: str, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        body = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        return list(body["task_instances"])

    def task_states(self, run_id: str, dag_id: str = DAG_ID) -> dict[tuple[str, int], str | None]:
        return {(ti["task_id"], ti["map_index"]): ti["state"] for ti in self.task_instances(run_id, dag_id)}

    def xcom(
        self,
        run_id: str,
        task_id: str,
        key: str = "return_value",
        *,
        map_index: int = -1,
        dag_id: str = DAG_ID,
    ) -> Any:
        """An XCom value through the REST API (the native JSON value the task returned)."""
        body = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index},
        )
        value = body["value"]
        return json.loads(value) if isinstance(value, str) else value

    def log(
        self, run_id: str, task_id: str, *, try_number: int = 1, map_index: int = -1, dag_id: str = DAG_ID
    ) -> str:
        """A task's log through the REST API, as the UI's log view reads it, one event a line."""
        body = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": "true"},
            headers={"Accept": "application/json"},
        )
        lines = []
        for item in body["content"]:
            if isinstance(item, dict):
                event = str(item.get("event", ""))
                level = item.get("level")
                lines.append(f"[{level}] {event}" if level else event)
                # an exception is shown under its event, as the UI's log view does
                for error in item.get("error_detail") or ():
                    lines.append(f"{error.get('exc_type')}: {error.get('exc_value')}")
            else:
                lines.append(str(item))
        return "\n".join(lines)

    # -- process bookkeeping --------------------------------------------------------------------

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise AirflowAPIError(f"airflow {name} exited with {proc.returncode}\n{log_tails(self.home)}")


def our_processes(home: Path, mark: str) -> list[psutil.Process]:
    """Every process of this Airflow: started in its home, or carrying our marker.

    Two signs, because each can fail alone: Airflow's components rename themselves with
    ``setproctitle``, which overwrites what ``/proc/PID/environ`` shows, and a process may
    change its directory. Every process we start runs in ``home``, and their children
    inherit both the directory and the environment.
    """
    found = []
    for proc in psutil.process_iter():
        if proc.pid == os.getpid():
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cwd = proc.cwd()
            if cwd == str(home) or cwd.startswith(f"{home}{os.sep}") or proc.environ().get(MARKER) == mark:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def listening_sockets(home: Path, mark: str) -> list[tuple[str, str, int]]:
    """``(command, address, port)`` of every socket that a process of this Airflow listens on."""
    found = []
    for proc in our_processes(home, mark):
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.append((" ".join(proc.cmdline())[:80], conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def stop_processes(
    processes: dict[str, subprocess.Popen[bytes]], home: Path, mark: str, *, grace: float = 15.0
) -> list[str]:
    """Stop our process groups (SIGTERM, then SIGKILL); return what survived, killed by pid."""
    # Every group at once: each component shuts down its own children (the scheduler its
    # LocalExecutor workers and their tasks).
    for proc in processes.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    for proc in processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    for proc in processes.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left in the group we created
        proc.wait(timeout=10)
    # Children that moved to a group of their own (task processes do) exit once their parent
    # is gone; give them a moment, then report and kill (by pid) whatever is still ours.
    leftovers: list[psutil.Process] = []
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        leftovers = our_processes(home, mark)
        if not leftovers:
            return []
        time.sleep(0.3)
    described = []
    for proc in leftovers:
        try:
            described.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    return described


def _wait_ready(live: LiveAirflow, timeout: float) -> None:
    """Until the API is up, every component reports healthy and the DAG is parsed."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    client = httpx.Client(timeout=5.0)
    try:
        while time.monotonic() < deadline:
            live.check_alive()
            try:
                health = client.get(f"{live.base_url}/api/v2/monitor/health").json()
                unhealthy = [
                    name
                    for name in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                    if (health.get(name) or {}).get("status") != "healthy"
                ]
                if unhealthy:
                    last = f"not healthy yet: {unhealthy}"
                else:
                    response = live.request("GET", f"/api/v2/dags/{DAG_ID}")
                    if response.status_code == 200:
                        return
                    last = f"GET /dags/{DAG_ID}: {response.status_code} {response.text[:200]}"
            except (httpx.HTTPError, ValueError, AirflowAPIError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
    finally:
        client.close()
    raise AirflowAPIError(f"Airflow not ready after {timeout}s ({last})\n{log_tails(live.home)}")


def log_tails(home: Path, lines: int = 15) -> str:
    """The last lines of each component's log, for a failure message that explains itself."""
    parts = [f"logs in {home}"]
    for name in ("migrate", *COMPONENTS):
        path = home / f"{name}.log"
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {name}.log\n" + "\n".join(tail))
    return "\n".join(parts)


@pytest.fixture(scope="package")
def live_airflow(s3_server: LocalS3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAirflow]:
    """A running Airflow 3 (all four components) with the example DAGs, ``s3pput_upload`` unpaused."""
    home = tmp_path_factory.mktemp("airflow-live")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(12)
    mark = uuid.uuid4().hex
    env = live_airflow_env(
        home,
        s3_server,
        port=port,
        users={USERNAME: password},
        parallelism=PARALLELISM,
        extra={MARKER: mark, "PYTHONUNBUFFERED": "1"},
    )
    started = time.monotonic()
    migrate(env, home / "migrate.log")
    airflow = str(Path(sys.executable).parent / "airflow")
    processes: dict[str, subprocess.Popen[bytes]] = {}
    live = LiveAirflow(
        base_url=base_url,
        home=home,
        username=USERNAME,
        password=password,
        s3=s3_server,
        mark=mark,
        processes=processes,
    )
    try:
        for name in COMPONENTS:
            with open(home / f"{name}.log", "ab") as log:
                # No log server on 0.0.0.0:8793/8794: the api-server reads the task logs
                # from the files in this home, as it does with any LocalExecutor deployment.
                extra = ["--skip-serve-logs"] if name in ("scheduler", "triggerer") else []
                processes[name] = subprocess.Popen(
                    [airflow, name, *extra],
                    cwd=home,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a process group of its own, stopped with killpg
                )
        _wait_ready(live, STARTUP_TIMEOUT)
        live.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
        live.startup_seconds = time.monotonic() - started
        print(f"\nlive Airflow ready at {base_url} in {live.startup_seconds:.1f}s (home {home})")
        yield live
    finally:
        live._http.close()
        stopping = time.monotonic()
        leftovers = stop_processes(processes, home, mark)
        print(f"\nlive Airflow stopped in {time.monotonic() - stopping:.1f}s")
    assert not leftovers, f"processes of the live Airflow outlived their process groups: {leftovers}"

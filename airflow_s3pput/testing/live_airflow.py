"""A running Airflow 3 for tests, demos and benchmarks: its components as processes, its REST API.

``running_airflow(env, home, ...)`` starts the components ``airflow standalone`` runs
(api-server, scheduler, dag-processor, triggerer) one by one, each with its own log file in
``home`` and its own process group, waits until the API reports them healthy and the DAG is
parsed, unpauses the DAG and yields a ``LiveAirflow``: a small client of the public REST API
(``/api/v2``) with the calls the UI makes. The environment decides the executor
(``local_airflow.live_airflow_env`` for the LocalExecutor, ``celery_stack`` for Celery).

On exit every process is stopped by the process group we created (never by name), then
``our_processes`` checks that none is left, by the working directory and an environment marker
that they all inherit: task processes move to process groups of their own, so the groups alone
are not enough to be sure.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

#: the components of ``airflow standalone``, each started as ``airflow NAME``
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: the environment variable that marks every process of one live Airflow (and its children)
MARKER = "S3PPUT_LIVE_AIRFLOW"
TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowAPIError(AssertionError):
    """The API answered something unexpected (an AssertionError, so a test fails on it)."""


@dataclass
class LiveAirflow:
    """A running Airflow and a small client for its public REST API (``/api/v2``)."""

    base_url: str
    home: Path
    username: str
    password: str
    dag_id: str = "s3pput_upload"
    mark: str = ""
    startup_seconds: float = 0.0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _token: str | None = field(default=None, repr=False)
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60.0), repr=False)

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
        """Call ``/api/v2{path}``; raise with the server's answer unless it is 2xx."""
        response = self.request(method, f"/api/v2{path}", **kwargs)
        if not response.is_success:
            raise AirflowAPIError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def close(self) -> None:
        self._http.close()

    # -- DAG runs, the way the UI's trigger form sends them ------------------------------------

    def trigger(self, conf: Mapping[str, Any], dag_id: str | None = None) -> httpx.Response:
        """``POST /dags/{dag_id}/dagRuns`` with the body the trigger form sends."""
        return self.request(
            "POST",
            f"/api/v2/dags/{dag_id or self.dag_id}/dagRuns",
            json={"logical_date": None, "conf": dict(conf)},
        )

    def trigger_run(self, conf: Mapping[str, Any], dag_id: str | None = None) -> str:
        """Trigger a run and return its id; raise unless the API accepted it."""
        response = self.trigger(conf, dag_id)
        if response.status_code != 200:
            raise AirflowAPIError(f"trigger failed: {response.status_code} {response.text}")
        return str(response.json()["dag_run_id"])

    def run(self, run_id: str, dag_id: str | None = None) -> dict[str, Any]:
        return dict(self.api("GET", f"/dags/{dag_id or self.dag_id}/dagRuns/{run_id}"))

    def wait_for_run(
        self, run_id: str, *, timeout: float = 120.0, dag_id: str | None = None, poll: float = 0.5
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        state = "unknown"
        while True:
            try:
                run = self.run(run_id, dag_id)
                state = run["state"]
                if state in TERMINAL_RUN_STATES:
                    return run
            except httpx.TransportError:
                # A busy API server (SQLite locked, a loaded machine) may not answer in time:
                # ask again until the deadline rather than fail a run that is going well.
                pass
            if time.monotonic() > deadline:
                raise AirflowAPIError(
                    f"run {run_id} still {state} after {timeout}s; "
                    f"tasks: {self.task_states(run_id, dag_id)}; logs in {self.home}"
                )
            self.check_alive()
            time.sleep(poll)

    def task_instances(self, run_id: str, dag_id: str | None = None) -> list[dict[str, Any]]:
        """Every task instance of the run, page by page (the API caps a page at
        ``[api] maximum_page_limit``, 100 by default, whatever ``limit`` asks for)."""
        path = f"/dags/{dag_id or self.dag_id}/dagRuns/{run_id}/taskInstances"
        found: list[dict[str, Any]] = []
        while True:
            body = self.api("GET", path, params={"limit": 100, "offset": len(found)})
            page = list(body["task_instances"])
            found += page
            if not page or len(found) >= int(body.get("total_entries", len(found))):
                return found

    def task_states(self, run_id: str, dag_id: str | None = None) -> dict[tuple[str, int], str | None]:
        return {(ti["task_id"], ti["map_index"]): ti["state"] for ti in self.task_instances(run_id, dag_id)}

    def task_tries(
        self, run_id: str, task_id: str, *, map_index: int = -1, dag_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every try of one task instance (state, hostname, dates), the UI's "task tries" view."""
        body = self.api(
            "GET",
            f"/dags/{dag_id or self.dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries",
        )
        return list(body["task_instances"])

    def xcom(
        self,
        run_id: str,
        task_id: str,
        key: str = "return_value",
        *,
        map_index: int = -1,
        dag_id: str | None = None,
    ) -> Any:
        """An XCom value through the REST API (the native JSON value the task returned)."""
        body = self.api(
            "GET",
            f"/dags/{dag_id or self.dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"map_index": map_index},
        )
        value = body["value"]
        return json.loads(value) if isinstance(value, str) else value

    def log(
        self,
        run_id: str,
        task_id: str,
        *,
        try_number: int = 1,
        map_index: int = -1,
        dag_id: str | None = None,
    ) -> str:
        """A task's log through the REST API, as the UI's log view reads it, one event a line."""
        body = self.api(
            "GET",
            f"/dags/{dag_id or self.dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
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


def airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def start_process(
    name: str, argv: Sequence[str], env: Mapping[str, str], home: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in ``home`` with its output in ``home/NAME.log``, in a process group of its own."""
    with open(home / f"{name}.log", "ab") as log:
        return subprocess.Popen(
            list(argv),
            cwd=home,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped with killpg
        )


def start_component(name: str, env: Mapping[str, str], home: Path) -> subprocess.Popen[bytes]:
    """``airflow NAME``. No log server on 0.0.0.0:8793/8794: the api-server reads the task logs
    from the files in ``home``, as it does with any deployment on one host."""
    extra = ["--skip-serve-logs"] if name in ("scheduler", "triggerer") else []
    return start_process(name, [airflow_bin(), name, *extra], env, home)


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


def kill_tree(proc: subprocess.Popen[bytes]) -> list[int]:
    """``kill -9`` a process, its whole group and every descendant (also those that left the
    group, as task processes do); return the pids signalled."""
    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    killed = []
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
            killed.append(member.pid)
    proc.wait(timeout=10)
    return killed


def stop_processes(
    processes: Mapping[str, subprocess.Popen[bytes]], home: Path, mark: str, *, grace: float = 15.0
) -> list[str]:
    """Stop our process groups (SIGTERM, then SIGKILL); return what survived, killed by pid."""
    # Every group at once: each component shuts down its own children (the scheduler its
    # LocalExecutor workers and their tasks, a Celery worker its pool).
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


HEALTH_CHECKS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def wait_ready(live: LiveAirflow, timeout: float) -> None:
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
                    name for name in HEALTH_CHECKS if (health.get(name) or {}).get("status") != "healthy"
                ]
                if unhealthy:
                    last = f"not healthy yet: {unhealthy}"
                else:
                    response = live.request("GET", f"/api/v2/dags/{live.dag_id}")
                    if response.status_code == 200:
                        return
                    last = f"GET /dags/{live.dag_id}: {response.status_code} {response.text[:200]}"
            except (httpx.HTTPError, ValueError, AirflowAPIError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
    finally:
        client.close()
    raise AirflowAPIError(f"Airflow not ready after {timeout}s ({last})\n{log_tails(live.home)}")


def log_tails(home: Path, lines: int = 15, names: Iterable[str] | None = None) -> str:
    """The last lines of each component's log, for a failure message that explains itself."""
    parts = [f"logs in {home}"]
    if names is None:
        names = sorted(p.stem for p in home.glob("*.log"))
    for name in names:
        path = home / f"{name}.log"
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {name}.log\n" + "\n".join(tail))
    return "\n".join(parts)


@contextlib.contextmanager
def running_airflow(
    env: Mapping[str, str],
    home: Path,
    *,
    base_url: str,
    username: str,
    password: str,
    mark: str,
    dag_id: str = "s3pput_upload",
    components: Sequence[str] = COMPONENTS,
    startup_timeout: float = 120.0,
    leftovers: list[str] | None = None,
) -> Iterator[LiveAirflow]:
    """Start ``components`` with ``env`` (which must carry ``MARKER=mark``), wait until they are
    ready, unpause ``dag_id``; on exit stop them all. Processes that outlived their groups are
    appended to ``leftovers`` (when given) after they were killed by pid, so a caller can fail."""
    if env.get(MARKER) != mark:
        raise ValueError(f"the environment must carry {MARKER}={mark!r}: it is how leftovers are found")
    started = time.monotonic()
    live = LiveAirflow(
        base_url=base_url, home=home, username=username, password=password, dag_id=dag_id, mark=mark
    )
    try:
        for name in components:
            live.processes[name] = start_component(name, env, home)
        wait_ready(live, startup_timeout)
        live.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        live.startup_seconds = time.monotonic() - started
        yield live
    finally:
        live.close()
        survivors = stop_processes(live.processes, home, mark)
        if leftovers is not None:
            leftovers.extend(survivors)

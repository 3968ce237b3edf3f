"""Airflow's distributed set-up on one machine: CeleryExecutor, Postgres, Redis, several workers.

Usage::

    with LocalS3Server() as s3, celery_stack(s3, home) as stack:
        run_id = stack.live.trigger_run({"source": ..., "bucket": ...})
        stack.kill_worker("worker-2"); stack.start_worker("worker-2")

What runs, all on 127.0.0.1 and free ports, all from Debian's packages or this virtualenv
(``scripts/install-services.sh`` installs the servers):

* ``LocalPostgres``: a private PostgreSQL cluster (``initdb`` + ``postgres`` as the ``postgres``
  user when we are root) in a temporary directory, with a generated password;
* ``LocalRedis``: ``redis-server`` with no persistence and a generated password, from a config
  file (a password on the command line would show in ``ps``);
* the Airflow components (``live_airflow.running_airflow``) with the CeleryExecutor, and Celery
  workers ``airflow celery worker``: each with its own Celery node name, pid file and
  ``S3PPUT_WORKER_HOSTNAME``, which ``[core] hostname_callable`` (``worker_hostname``) reports as
  the task instances' hostname: two workers on one host otherwise report the same one.
  ``--skip-serve-logs``: the api-server reads the task logs from the shared home.

Everything is stopped by the pid or process group we started; nothing is killed by name.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from airflow_s3pput.testing.live_airflow import (
    MARKER,
    LiveAirflow,
    airflow_bin,
    kill_tree,
    log_tails,
    running_airflow,
    start_process,
)
from airflow_s3pput.testing.local_airflow import live_airflow_env, migrate
from airflow_s3pput.testing.local_s3 import LocalS3Server, free_port

#: the environment variable that names a worker (read by ``worker_hostname``)
WORKER_NAME_ENV = "S3PPUT_WORKER_HOSTNAME"
HOSTNAME_CALLABLE = f"{__name__}.worker_hostname"
DB_USER = "airflow"
DB_NAME = "airflow"


class ServiceUnavailable(RuntimeError):
    """A server binary is not installed (``scripts/install-services.sh`` installs them)."""


def worker_hostname() -> str:
    """``[core] hostname_callable``: the worker's name when it has one, else the host's FQDN."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


def postgres_bin_dir() -> Path:
    """Where ``initdb`` and ``postgres`` are: Debian keeps them in /usr/lib/postgresql/N/bin."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if debian:
        return debian[-1].parent
    found = shutil.which("postgres")
    if found and shutil.which("initdb"):
        return Path(found).parent
    raise ServiceUnavailable("PostgreSQL is not installed: run scripts/install-services.sh")


def redis_server_bin() -> str:
    found = shutil.which("redis-server")
    if not found and os.path.exists("/usr/bin/redis-server"):  # PATH without /usr/bin
        found = "/usr/bin/redis-server"
    if not found:
        raise ServiceUnavailable("redis-server is not installed: run scripts/install-services.sh")
    return found


def services_missing() -> str | None:
    """Why the Celery stack cannot start here, or ``None`` when both servers are installed."""
    try:
        postgres_bin_dir()
        redis_server_bin()
    except ServiceUnavailable as exc:
        return str(exc)
    return None


def _stop_pid(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float = 30.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class LocalPostgres:
    """A throwaway PostgreSQL on 127.0.0.1 with database and user ``airflow`` and a generated password.

    Durability is switched off (``fsync``, ``synchronous_commit``, ``full_page_writes``): the
    cluster lives for one test session, and Airflow's scheduler commits many small transactions.
    """

    def __init__(self, *, startup_timeout: float = 60.0) -> None:
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        # Not under pytest's tmp dirs: those are private to root, and the server runs as postgres.
        self.base = Path(tempfile.mkdtemp(prefix="s3pput-pg-"))
        self.data = self.base / "data"
        self.log_path = self.base / "postgres.log"
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        """The SQLAlchemy URL (psycopg2) of the ``airflow`` database."""
        return f"postgresql+psycopg2://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{DB_NAME}"

    def _run_as(self) -> dict[str, object]:
        return {"user": "postgres", "group": "postgres"} if self._as_postgres else {}

    def start(self) -> LocalPostgres:
        bin_dir = postgres_bin_dir()
        if self._as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        os.chmod(self.base, 0o700)
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}
        with open(self.log_path, "ab") as log:
            done = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    DB_USER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                cwd=self.base,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
                **self._run_as(),  # type: ignore[call-overload]
            )
        pwfile.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}); see {self.log_path}")
        self.port = free_port()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # type: ignore[call-overload]
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.base),
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                ],
                cwd=self.base,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._run_as(),
            )
        self._wait_ready()
        return self

    def _connect(self, database: str) -> object:
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=DB_USER,
            password=self.password,
            dbname=database,
            connect_timeout=2,
        )

    def _wait_ready(self) -> None:
        import psycopg2

        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}; see {self.log_path}")
            try:
                conn = self._connect("postgres")
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"postgres not ready after {self.startup_timeout}s; see {self.log_path}"
                    ) from None
                time.sleep(0.2)
        try:
            conn.autocommit = True  # type: ignore[attr-defined]
            with conn.cursor() as cursor:  # type: ignore[attr-defined]
                cursor.execute(f"CREATE DATABASE {DB_NAME}")
        finally:
            conn.close()  # type: ignore[attr-defined]

    def stop(self) -> None:
        # SIGINT: PostgreSQL's "fast" shutdown (disconnect clients, stop at once).
        _stop_pid(self.process, signal.SIGINT)
        self.process = None
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()  # nothing left behind: the server, its temporary directory
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class LocalRedis:
    """``redis-server`` on 127.0.0.1 with a generated password, no persistence."""

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.base = Path(tempfile.mkdtemp(prefix="s3pput-redis-"))
        self.log_path = self.base / "redis.log"

    @property
    def url(self) -> str:
        """The Celery broker URL (database 0)."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> LocalRedis:
        self.port = free_port()
        config = self.base / "redis.conf"
        config.touch(mode=0o600)
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    'save ""',
                    "appendonly no",
                    f"dir {self.base}",
                    f"requirepass {self.password}",
                    "daemonize no",
                    "",
                ]
            )
        )
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [redis_server_bin(), str(config)],
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        import redis

        deadline = time.monotonic() + self.startup_timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2)
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self.process.returncode}; see {self.log_path}"
                    )
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis not ready after {self.startup_timeout}s; see {self.log_path}")
                time.sleep(0.1)
        finally:
            client.close()

    def stop(self) -> None:
        _stop_pid(self.process, signal.SIGTERM)
        self.process = None
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> LocalRedis:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def celery_airflow_env(
    home: Path,
    s3: LocalS3Server,
    *,
    port: int,
    users: Mapping[str, str],
    database_url: str,
    broker_url: str,
    slots: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``live_airflow_env`` with the CeleryExecutor on ``broker_url`` and Postgres at ``database_url``.

    ``slots`` caps the task instances running or queued at once (all workers together).
    """
    celery = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        # Celery's SQLAlchemy result backend: "db+" and the URL, driver included (SQLAlchemy
        # 2.1 would pick psycopg 3 for a bare postgresql://, which is not installed).
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database_url,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
    }
    return live_airflow_env(
        home, s3, port=port, users=users, parallelism=slots, extra={**celery, **(extra or {})}
    )


@dataclass
class CeleryStack:
    """A running Celery deployment: the Airflow API client, the servers, the workers."""

    live: LiveAirflow
    postgres: LocalPostgres
    redis: LocalRedis
    env: dict[str, str]
    concurrency: int
    workers: dict[str, int] = field(default_factory=dict)  # name -> starts so far

    @property
    def home(self) -> Path:
        return self.live.home

    def start_worker(self, name: str, *, queues: Sequence[str] = (), wait: bool = True) -> None:
        """Start ``airflow celery worker`` as ``name``; wait until Celery reports it ready."""
        env = {**self.env, WORKER_NAME_ENV: name}
        argv = [
            airflow_bin(),
            "celery",
            "worker",
            "--celery-hostname",
            f"{name}@%h",
            "--concurrency",
            str(self.concurrency),
            # Both workers share AIRFLOW_HOME: the default pid file would make the second refuse to start.
            "--pid",
            str(self.home / f"{name}.pid"),
            "--skip-serve-logs",
            "--without-mingle",
            "--without-gossip",
        ]
        if queues:
            argv += ["--queues", ",".join(queues)]
        log = self.home / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        self.live.processes[name] = start_process(name, argv, env, self.home)
        self.workers[name] = self.workers.get(name, 0) + 1
        if wait:
            self._wait_worker_ready(name, log, offset)

    def _wait_worker_ready(self, name: str, log: Path, offset: int, timeout: float = 90.0) -> None:
        ready = re.compile(rf"celery@{re.escape(name)}@\S+ ready\.|{re.escape(name)}@\S+ ready\.")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.live.check_alive()
            with open(log, "rb") as f:
                f.seek(offset)
                if ready.search(f.read().decode("utf-8", "replace")):
                    return
            time.sleep(0.3)
        raise RuntimeError(
            f"Celery worker {name} not ready after {timeout}s\n{log_tails(self.home, names=[name])}"
        )

    def kill_worker(self, name: str) -> list[int]:
        """``kill -9`` the worker's whole process tree (pool processes and their task processes)."""
        proc = self.live.processes.pop(name)
        return kill_tree(proc)


@contextlib.contextmanager
def celery_stack(
    s3: LocalS3Server,
    home: Path,
    *,
    workers: Sequence[str] = ("worker-1", "worker-2"),
    concurrency: int = 2,
    username: str = "admin",
    password: str | None = None,
    config: Mapping[str, str] | None = None,
    startup_timeout: float = 180.0,
    leftovers: list[str] | None = None,
) -> Iterator[CeleryStack]:
    """Postgres, Redis, the Airflow components with the CeleryExecutor and ``workers``.

    ``config`` adds ``AIRFLOW__SECTION__KEY`` settings (retries, heartbeat timeout, ...).
    Processes that outlived their groups at the end are appended to ``leftovers``.
    """
    missing = services_missing()
    if missing:
        raise ServiceUnavailable(missing)
    home.mkdir(parents=True, exist_ok=True)
    password = password or secrets.token_urlsafe(12)
    mark = uuid.uuid4().hex
    port = free_port()
    with LocalPostgres() as postgres, LocalRedis() as redis:
        env = celery_airflow_env(
            home,
            s3,
            port=port,
            users={username: password},
            database_url=postgres.url,
            broker_url=redis.url,
            slots=len(workers) * concurrency,
            extra={MARKER: mark, "PYTHONUNBUFFERED": "1", **(config or {})},
        )
        migrate(env, home / "migrate.log")
        with running_airflow(
            env,
            home,
            base_url=f"http://127.0.0.1:{port}",
            username=username,
            password=password,
            mark=mark,
            startup_timeout=startup_timeout,
            leftovers=leftovers,
        ) as live:
            stack = CeleryStack(live=live, postgres=postgres, redis=redis, env=env, concurrency=concurrency)
            for name in workers:
                stack.start_worker(name, wait=False)
            for name in workers:
                stack._wait_worker_ready(name, home / f"{name}.log", 0)
            yield stack

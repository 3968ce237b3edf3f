"""Helpers the tests share: file trees, listings, in-process CLI runs and their checks.

Fixtures live in ``conftest.py``; everything a test imports lives here.
"""

from __future__ import annotations

import io
import json
import os
import pwd
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from airflow_s3pput.cli import main
from airflow_s3pput.options import DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, ConnectionSettings

#: a session token set for the bad-input runs: it must never be printed (SeaweedFS ignores it)
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE-session-token-do-not-print-3f9a7c"


def make_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    """Create ``files`` (relative path -> content) under ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def list_keys(client: Any, bucket: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    keys: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            keys[obj["Key"]] = obj
    return keys


def empty_bucket(client: Any, bucket: str) -> None:
    """Delete every object of ``bucket``."""
    keys = list(list_keys(client, bucket))
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)


@dataclass
class CliRun:
    """What one in-process ``s3pput`` run returned and printed."""

    code: int
    out: str
    err: str

    @property
    def summary(self) -> dict[str, Any]:
        """The ``--json`` summary: stdout must hold exactly one JSON object."""
        lines = [line for line in self.out.splitlines() if line.strip()]
        assert len(lines) == 1, self.out
        data: dict[str, Any] = json.loads(lines[0])
        return data


CliRunner = Callable[..., CliRun]


def assert_usage_error(run: CliRun, *fragments: str, server: S3Endpoint | None = None) -> None:
    """Exit 2, nothing on stdout, exactly one line on stderr that holds every fragment."""
    assert run.code == 2, (run.out, run.err)
    assert run.out == ""
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("s3pput: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in run.err
    if server is not None:
        assert server.secret_key not in run.out + run.err


def assert_clean(text: str, server: S3Endpoint) -> None:
    """No traceback and no secret in what a run printed."""
    assert "Traceback" not in text
    assert server.secret_key not in text
    assert SESSION_TOKEN not in text


class RequestLog:
    """Counts the S3 operations a client sends (a botocore ``before-call`` hook)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        self.calls.append((model.name, params))

    @property
    def counts(self) -> Counter[str]:
        return Counter(name for name, _ in self.calls)

    def headers_of(self, operation: str) -> list[dict[str, Any]]:
        return [params.get("headers", {}) for name, params in self.calls if name == operation]


# --- S3 servers ------------------------------------------------------------------------------------


class S3Endpoint(Protocol):
    """What the tests need of an S3 server: SeaweedFS (``LocalS3Server``) or ``MotoS3Server``."""

    access_key: str
    secret_key: str

    @property
    def endpoint_url(self) -> str: ...

    def env(self) -> dict[str, str]: ...

    def connection(self, **overrides: Any) -> ConnectionSettings: ...

    def client(self) -> Any: ...


def new_bucket(server: S3Endpoint) -> str:
    """A fresh, empty bucket on ``server``."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    server.client().create_bucket(Bucket=name)
    return name


def point_env_at(server: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the standard AWS chain (the CLI, aws cli, s5cmd, boto3) at ``server``."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)


def run_cli(server: S3Endpoint, *argv: str) -> CliRun:
    """``s3pput`` in this process, one worker process, with the environment already pointed at
    ``server`` (``point_env_at``); checks that it printed no traceback and no secret."""
    args = list(argv)
    if not any(a.startswith("--processes") for a in args):
        args = ["--processes", "1", *args]
    out, err = io.StringIO(), io.StringIO()
    code = main(args, out=out, err=err)
    result = CliRun(code, out.getvalue(), err.getvalue())
    assert_clean(result.out + result.err, server)
    return result


#: defines ``drop_privileges()`` for the scripts of :func:`run_unprivileged`
_DROP_PRIVILEGES = """
import os
def drop_privileges():
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid({uid})
        os.setuid({uid})
"""


def run_unprivileged(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the Python ``script`` (with ``args`` in ``sys.argv[1:]``) in a child of this interpreter
    that can call ``drop_privileges()``: as root, it becomes ``nobody`` from then on.

    The tests run as root here, and root may read anything. The child is started as root and
    drops to ``nobody`` itself, after its imports: started as ``nobody``, the interpreter could
    not load, as it lives under /root (mode 700). So the script imports (and warms up any lazy
    import) first, then drops. What it works on must be reachable by ``nobody``: not under
    pytest's ``tmp_path``, which only its owner may enter.
    """
    try:
        nobody = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        nobody = 65534  # setuid needs no passwd entry
    return subprocess.run(
        [sys.executable, "-c", _DROP_PRIVILEGES.format(uid=nobody) + script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


# -- DAG runs through a real Airflow (``airflow dags test``, an SQLite home) ---------------------


def _latest_run_rows(home: Path, dag_id: str, query: str, *more: object) -> list[tuple[Any, ...]]:
    """``query`` over the latest run of ``dag_id``: its ``?`` are the dag_id, the run_id, ``more``."""
    import sqlite3

    with sqlite3.connect(home / "airflow.db") as db:
        run = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        if run is None:
            return []
        return list(db.execute(query, (dag_id, run[0], *more)).fetchall())


@dataclass
class DagRunResult:
    """What one ``airflow dags test`` run of ``dag_id`` left: exit code, log, task states, XComs."""

    dag_id: str
    exit_code: int
    log: str
    states: dict[tuple[str, int], str]
    home: Path

    def xcoms(self, task_id: str, key: str = "return_value") -> list[Any]:
        from airflow_s3pput.testing.local_airflow import read_xcoms

        return read_xcoms(self.home, self.dag_id, task_id, key)

    @property
    def summary(self) -> dict[str, Any]:
        values = self.xcoms("upload.reduce")
        assert values, f"no reduce XCom; log tail:\n{self.log[-3000:]}"
        return dict(values[0])

    def count(self, task_id: str, state: str) -> int:
        return sum(1 for (t, _), s in self.states.items() if t == task_id and s == state)

    def try_numbers(self, task_id: str) -> dict[int, int]:
        """map index -> the try the task instance is at (1: never retried)."""
        query = (
            "SELECT map_index, try_number FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?"
        )
        return {int(i): int(n) for i, n in _latest_run_rows(self.home, self.dag_id, query, task_id)}

    def map_names(self, task_id: str) -> dict[int, str | None]:
        """map index -> the name the UI shows for the mapped task instance."""
        query = (
            "SELECT map_index, rendered_map_index FROM task_instance WHERE dag_id = ? AND run_id = ? "
            "AND task_id = ?"
        )
        return {int(i): name for i, name in _latest_run_rows(self.home, self.dag_id, query, task_id)}

    def asset_events(self) -> list[dict[str, Any]]:
        """The asset events this run's tasks emitted: ``{"asset": uri, "extra": {...}}``."""
        rows = _latest_run_rows(
            self.home,
            self.dag_id,
            "SELECT a.uri, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE e.source_dag_id = ? AND e.source_run_id = ? ORDER BY e.id",
        )
        return [{"asset": uri, "extra": json.loads(extra) if extra else {}} for uri, extra in rows]


#: ``run_dag(dag_id, conf, ...)`` and ``run_upload_dag(conf, ...)``: the fixtures of tests/airflow
RunDag = Callable[..., DagRunResult]


class ReadCounter:
    """Counts the bytes this process reads from each file with ``os.pread``/``os.preadv``.

    Every read of file content in the putter goes through those two calls (small files, MD5s of
    parts, multipart bodies handed to the CRT), so a file absent from ``bytes_by_path`` was not
    read. Paths are the real paths of the open descriptors.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bytes_by_path: Counter[str] = Counter()
        self._lock = threading.Lock()
        real_pread, real_preadv = os.pread, os.preadv

        def pread(fd: int, length: int, offset: int) -> bytes:
            data = real_pread(fd, length, offset)
            self._count(fd, len(data))
            return data

        def preadv(fd: int, buffers: Any, offset: int, *flags: int) -> int:
            got = real_preadv(fd, buffers, offset, *flags)
            self._count(fd, got)
            return got

        monkeypatch.setattr(os, "pread", pread)
        monkeypatch.setattr(os, "preadv", preadv)

    def _count(self, fd: int, length: int) -> None:
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            name = f"fd:{fd}"
        with self._lock:
            self.bytes_by_path[name] += length

    def read(self, path: str | os.PathLike[str]) -> int:
        """Bytes read from ``path`` so far."""
        return self.bytes_by_path.get(os.path.realpath(path), 0)

    def reset(self) -> None:
        with self._lock:
            self.bytes_by_path.clear()


MIB = 1024 * 1024


def local_etag(
    path: Path, *, part_size: int = DEFAULT_PART_SIZE, threshold: int = DEFAULT_MULTIPART_THRESHOLD
) -> str:
    """The ETag S3 returns for ``path`` uploaded by s3pput: the MD5 of a single PUT, or for a
    multipart upload (``threshold`` bytes and more) the MD5 of the parts' MD5s and ``-N``.

    Computed here from the file, independently of the engine's own ``etag`` module."""
    import hashlib

    size = path.stat().st_size
    with open(path, "rb") as f:
        if size < threshold:
            return hashlib.md5(f.read()).hexdigest()
        digests = [hashlib.md5(chunk).digest() for chunk in iter(lambda: f.read(part_size), b"")]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"

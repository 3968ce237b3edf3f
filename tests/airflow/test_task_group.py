"""The typed API of ``s3pput_task_group``: where task arguments go, what it returns, what mypy sees."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG, Asset

from airflow_s3pput.provider import S3PPutTaskGroup, s3pput_task_group
from airflow_s3pput.provider.operators import S3PPutReduceOperator

REPO = Path(__file__).resolve().parent.parent.parent


def build(**kwargs: Any) -> tuple[DAG, S3PPutTaskGroup]:
    with DAG(dag_id="routing", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        group = s3pput_task_group(source="/data", bucket="my-bucket", group_id="up", **kwargs)
    return dag, group


def test_task_arguments_go_where_the_docstring_says() -> None:
    asset = Asset(name="landed", uri="s3://my-bucket/landed/")
    dag, _ = build(
        retries=3,
        retry_delay=timedelta(seconds=7),
        plan_kwargs={"queue": "walkers"},
        put_kwargs={"pool": "s3", "queue": "uploaders", "retries": 5, "max_active_tis_per_dag": 2},
        reduce_kwargs={"priority_weight": 9},
        outlets=[asset],
    )
    plan, put, reduce = (dag.get_task(f"up.{name}") for name in ("plan", "put", "reduce"))
    assert (plan.retries, put.retries, reduce.retries) == (3, 5, 3)  # put_kwargs win for the put
    assert plan.retry_delay == put.retry_delay == reduce.retry_delay == timedelta(seconds=7)
    assert (plan.queue, put.queue, reduce.queue) == ("walkers", "uploaders", "default")
    assert put.pool == "s3" and plan.pool == reduce.pool == "default_pool"
    assert put.max_active_tis_per_dag == 2 and reduce.priority_weight == 9
    # outlets go to the reduce only: it emits them once the upload landed
    assert (plan.outlets, put.outlets, reduce.outlets) == ([], [], [asset])
    # the plan gets the plan's settings, the mapped put only the upload's
    assert "batch_size" not in put.partial_kwargs and "settings" not in put.partial_kwargs


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"put_kwargs": {"bucket": "other"}}, "'bucket' is an upload setting", id="setting"),
        pytest.param(
            {"plan_kwargs": {"batch_size": 5}}, "'batch_size' is an upload setting", id="plan-setting"
        ),
        pytest.param(
            {"put_kwargs": {"outlets": [Asset("x")]}}, "pass outlets to s3pput_task_group", id="outlets"
        ),
        pytest.param({"reduce_kwargs": {"task_id": "r"}}, "names its tasks", id="task-id"),
    ],
)
def test_misrouted_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        build(**kwargs)


def test_the_group_hands_out_the_summary_as_an_xcomarg() -> None:
    from airflow.sdk import task
    from airflow.sdk.definitions.xcom_arg import XComArg

    with DAG(dag_id="downstream", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        group = s3pput_task_group(source="/data", bucket="my-bucket", group_id="up")

        @task
        def report(summary: dict[str, Any]) -> int:
            return int(summary["files_put"])

        report(group.summary)
    assert isinstance(group.summary, XComArg)
    assert isinstance(group.summary.operator, S3PPutReduceOperator)
    assert dag.get_task("report").upstream_task_ids == {"up.reduce"}


def test_mypy_checks_a_dag_against_the_annotations(tmp_path: Path) -> None:
    """A DAG author's mypy catches a misspelt setting or a value of the wrong kind."""
    dag_file = tmp_path / "typed_dag.py"
    dag_file.write_text(
        "from airflow.sdk import DAG\n"
        "from airflow_s3pput.provider import s3pput_task_group\n"
        "with DAG(dag_id='typed', schedule=None):\n"
        "    ok = s3pput_task_group(source='/d', bucket='b', batch_size=10, put_mode='add', gzip=True)\n"
        "    s3pput_task_group(source='/d', bucket='b', batch_size=[10])\n"
        "    s3pput_task_group(source='/d', bucket='b', gzip=3)\n"
        "    s3pput_task_group(source='/d', bucket='b', batch_sise=10)\n"
        "    s3pput_task_group(source='/d')\n"
        "    reveal_type(ok.summary)\n"
    )
    cache = str(tmp_path / "cache")
    command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", cache,
               "--follow-imports=silent", str(dag_file)]  # fmt: skip
    # The checkout is on MYPYPATH because the editable install's import hook is invisible to mypy.
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={"MYPYPATH": str(REPO), "PATH": ""}
    )
    ours = [line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith(str(dag_file))]
    errors = [line for line in ours if line.startswith("error")]
    assert len(errors) == 4, done.stdout
    assert 'Argument "batch_size" to "s3pput_task_group" has incompatible type "list[int]"' in done.stdout
    assert 'Argument "gzip" to "s3pput_task_group" has incompatible type "int"' in done.stdout
    assert 'Unexpected keyword argument "batch_sise"' in done.stdout
    assert 'Missing named argument "bucket"' in done.stdout
    assert 'Revealed type is "airflow.sdk.definitions.xcom_arg.XComArg"' in done.stdout


def test_the_wheel_ships_py_typed(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: building leaves build/ and egg-info behind
    shutil.copytree(
        REPO / "airflow_s3pput", source / "airflow_s3pput", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("airflow_s3pput-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "airflow_s3pput/py.typed" in names
    assert "airflow_s3pput/provider/task_group.py" in names

"""The example DAGs load offline, and the operators render their templated fields."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_airflow import EXAMPLE_DAGS


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any network connection while parsing a DAG is a bug: make it raise."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("DAG parsing tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def load_dag(path: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.mark.parametrize(
    ("file", "dag_id", "schedule"),
    [
        pytest.param("s3pput_upload.py", "s3pput_upload", None, id="ui-form"),
        pytest.param("s3pput_daily.py", "s3pput_daily", "@daily", id="scheduled"),
    ],
)
def test_example_dag_parses_offline(offline: None, file: str, dag_id: str, schedule: str | None) -> None:
    dag = load_dag(EXAMPLE_DAGS / file)
    assert dag.dag_id == dag_id
    assert {t.task_id for t in dag.tasks} == {"upload.plan", "upload.put", "upload.reduce"}
    assert (dag.schedule if schedule else None) == schedule
    put = dag.get_task("upload.put")
    assert put.map_index_template == "{{ batch_label }}"
    assert dag.get_task("upload.reduce").trigger_rule == "all_done"


def test_upload_form_params_are_typed_and_explained() -> None:
    dag = load_dag(EXAMPLE_DAGS / "s3pput_upload.py")
    params = dag.params
    expected = {
        "source", "bucket", "prefix", "put_mode", "dry_run", "limit", "gzip",
        "content_type", "headers", "grant", "batch_size", "aws_conn_id",
    }  # fmt: skip
    assert set(params.keys()) == expected
    for name in expected:
        param = params.get_param(name)
        assert param.schema.get("title") and param.description, name
    assert params.get_param("put_mode").schema["enum"] == ["add", "stupid", "update"]
    assert params.get_param("dry_run").schema["type"] == "boolean"
    assert "null" in params.get_param("limit").schema["type"]
    assert params.get_param("headers").schema["type"] == "array"


def test_template_fields_render_from_params() -> None:
    dag = load_dag(EXAMPLE_DAGS / "s3pput_daily.py")
    plan = dag.get_task("upload.plan")
    assert {"source", "bucket", "prefix", "put_mode", "batch_size", "limit", "aws_conn_id"} <= set(
        plan.template_fields
    )
    plan.render_template_fields({"ds": "2026-11-24", "params": {}}, jinja_env=dag.get_template_env())
    assert plan.source == "/data/exports/2026-11-24"
    assert plan.prefix == "exports/2026-11-24"

    form = load_dag(EXAMPLE_DAGS / "s3pput_upload.py")
    plan = form.get_task("upload.plan")
    params = {
        "source": "/src", "bucket": "bkt", "prefix": "p", "put_mode": "add", "dry_run": True,
        "limit": 7, "gzip": True, "content_type": None, "headers": ["Cache-Control:no-cache"],
        "grant": None, "batch_size": 3, "aws_conn_id": "my_s3",
    }  # fmt: skip
    plan.render_template_fields({"params": params}, jinja_env=form.get_template_env())
    assert (plan.source, plan.bucket, plan.prefix, plan.put_mode) == ("/src", "bkt", "p", "add")
    assert plan.dry_run_only is True and plan.gzip is True
    assert plan.limit == 7 and plan.batch_size == 3
    assert plan.headers == ["Cache-Control:no-cache"]
    assert plan.aws_conn_id == "my_s3"


def test_provider_is_registered() -> None:
    from importlib.metadata import entry_points

    ours = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_s3pput")]
    (entry,) = ours
    info = entry.load()()
    assert info["package-name"] == "airflow-s3pput"


def test_airflow_providers_list_shows_the_package(airflow_home: Path, s3_server: Any, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from airflow_s3pput.testing.local_airflow import airflow_env

    command = [str(Path(sys.executable).parent / "airflow"), "providers", "list", "-o", "json"]
    env = airflow_env(airflow_home, s3_server)
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    listed = json.loads(out[out.index("[") :])
    assert any(p["package_name"] == "airflow-s3pput" for p in listed), [p["package_name"] for p in listed]

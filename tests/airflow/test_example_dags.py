"""The example DAGs load offline, and the operators render their templated fields."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_s3pput.option_builder import build_options
from airflow_s3pput.provider.operators import MAP_INDEX_TEMPLATE
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


UPLOAD_DAGS = [
    pytest.param("s3pput_upload.py", "s3pput_upload", id="ui-form"),
    pytest.param("s3pput_daily.py", "s3pput_daily", id="scheduled"),
    pytest.param("s3pput_publish.py", "s3pput_publish", id="asset-producer"),
]


@pytest.mark.parametrize(("file", "dag_id"), UPLOAD_DAGS)
def test_example_dag_parses_offline(offline: None, file: str, dag_id: str) -> None:
    dag = load_dag(EXAMPLE_DAGS / file)
    assert dag.dag_id == dag_id
    assert {t.task_id for t in dag.tasks} == {"upload.plan", "upload.put", "upload.reduce"}
    put = dag.get_task("upload.put")
    assert put.map_index_template == MAP_INDEX_TEMPLATE
    assert dag.get_task("upload.reduce").trigger_rule == "all_done"
    # Sensible retries on every task: a lost worker costs a retry, not the run.
    for task in dag.tasks:
        assert task.retries == 2 and task.retry_delay == timedelta(seconds=30), task.task_id


def test_the_consumer_is_scheduled_on_the_producer_asset() -> None:
    producer = load_dag(EXAMPLE_DAGS / "s3pput_publish.py")
    consumer = load_dag(EXAMPLE_DAGS / "s3pput_on_publish.py")
    from airflow.sdk import Asset, AssetAlias

    outlets = producer.get_task("upload.reduce").outlets
    (asset,) = [o for o in outlets if isinstance(o, Asset)]
    assert list(consumer.timetable.asset_condition.objects) == [asset]
    # The form picks bucket and prefix: the fixed asset claims no place; the alias announces it.
    assert not asset.uri.startswith("s3://")
    assert [o.name for o in outlets if isinstance(o, AssetAlias)] == ["s3pput_published_to"]
    # Only the reduce announces: the plan and the puts have no outlets.
    assert not producer.get_task("upload.plan").outlets and not producer.get_task("upload.put").outlets


def test_upload_form_params_are_typed_and_explained() -> None:
    dag = load_dag(EXAMPLE_DAGS / "s3pput_upload.py")
    params = dag.params
    expected = {
        "source", "bucket", "prefix", "put_mode", "dry_run", "limit", "gzip",
        "content_type", "headers", "grant", "delete", "batch_size", "aws_conn_id",
    }  # fmt: skip
    assert set(params.keys()) == expected
    for name in expected:
        param = params.get_param(name)
        assert param.schema.get("title") and param.description, name
    assert params.get_param("put_mode").schema["enum"] == ["add", "stupid", "update"]
    assert params.get_param("dry_run").schema["type"] == "boolean"
    assert params.get_param("delete").schema["type"] == "boolean"
    assert "null" in params.get_param("limit").schema["type"]
    assert params.get_param("headers").schema["type"] == "array"


def test_template_fields_render_from_params() -> None:
    form = load_dag(EXAMPLE_DAGS / "s3pput_upload.py")
    plan = form.get_task("upload.plan")
    assert {"settings", "aws_conn_id"} <= set(plan.template_fields)
    params = {
        "source": "/src", "bucket": "bkt", "prefix": "p", "put_mode": "add", "dry_run": True,
        "limit": 7, "gzip": True, "content_type": None, "headers": ["Cache-Control:no-cache"],
        "grant": None, "delete": False, "batch_size": 3, "aws_conn_id": "my_s3",
    }  # fmt: skip
    plan.render_template_fields({"params": params}, jinja_env=form.get_template_env())
    settings = plan.settings
    assert (settings["source"], settings["bucket"], settings["prefix"], settings["put_mode"]) == (
        "/src", "bkt", "p", "add",
    )  # fmt: skip
    assert settings["dry_run"] is True and settings["gzip"] is True and settings["delete"] is False
    assert settings["limit"] == 7 and settings["batch_size"] == 3
    assert settings["headers"] == ["Cache-Control:no-cache"]
    assert plan.aws_conn_id == "my_s3"
    options = build_options(plan.settings)
    assert (options.sources, options.mode, options.dry_run, options.limit) == (("/src",), "add", True, 7)


def test_the_daily_dag_uploads_the_day_that_ended() -> None:
    """The scheduler's run for 2026-03-02 00:00 covers 2026-03-01: that is the folder it uploads.

    Under Airflow 3 ``schedule="@daily"`` would give ``ds`` = 2026-03-02, the day that starts;
    the example schedules with ``CronDataIntervalTimetable`` so that the interval is the day."""
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import DataInterval, TimeRestriction

    dag = load_dag(EXAMPLE_DAGS / "s3pput_daily.py")
    # What the scheduler asks the DAG's timetable (as it deserializes it), after the run for 2026-02-28.
    timetable = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable
    previous = DataInterval(pendulum.datetime(2026, 2, 28, tz="UTC"), pendulum.datetime(2026, 3, 1, tz="UTC"))
    restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=True)
    info = timetable.next_dagrun_info(last_automated_data_interval=previous, restriction=restriction)
    assert info is not None
    assert info.run_after == pendulum.datetime(2026, 3, 2, tz="UTC")  # runs once the day is over
    plan = dag.get_task("upload.plan")
    context = {
        "data_interval_start": info.data_interval.start,
        "data_interval_end": info.data_interval.end,
        "params": {"exports": "/data/exports"},
    }
    plan.render_template_fields(context, jinja_env=dag.get_template_env())
    assert plan.settings["source"] == "/data/exports/2026-03-01"
    assert plan.settings["prefix"] == "exports/2026-03-01"


def test_provider_info_follows_airflows_schema() -> None:
    import json

    import airflow
    import jsonschema

    from airflow_s3pput.provider_info import get_provider_info

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    (integration,) = info["integrations"]
    assert set(integration) <= set(schema["properties"]["integrations"]["items"]["properties"])
    (operators,) = info["operators"]
    assert operators["integration-name"] == integration["integration-name"]
    for module in operators["python-modules"]:
        __import__(module)


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
    ours = [p for p in listed if p["package_name"] == "airflow-s3pput"]
    assert ours, [p["package_name"] for p in listed]
    # the documentation URL that Airflow reads from the package's Documentation project URL
    command = [
        str(Path(sys.executable).parent / "airflow"),
        "providers",
        "get",
        "airflow-s3pput",
        "--full",
        "-o",
        "json",
    ]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
    (provider,) = json.loads(out[out.index("[") :])
    assert provider["documentation-url"] == "https://pypi.org/project/airflow-s3pput/"
    assert provider["operators"] == [
        {"integration-name": "s3pput", "python-modules": ["airflow_s3pput.provider.operators"]}
    ]

"""Bad settings to the operators and the task group: refused with a message that names the setting
as Airflow spells it (``put_mode``, never the CLI's ``--put``).

A literal value is refused when the DAG is parsed (a broken DAG, not a failed run); a templated
one when the task runs, failing it for good (``AirflowFailException``: no retry changes it).
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from airflow_s3pput.errors import UsageError
from airflow_s3pput.provider import s3pput_task_group
from airflow_s3pput.provider.operators import S3PPutBatchOperator, S3PPutPlanOperator

REPO = Path(__file__).resolve().parent.parent.parent

BAD_SETTINGS = [
    pytest.param({"processes": "many"}, ["processes", "'many'", "integer"], id="processes-word"),
    pytest.param({"processes": 0}, ["processes", "not 0"], id="processes-zero"),
    pytest.param({"threads": 0}, ["threads", "not 0"], id="threads-zero"),
    pytest.param({"threads": [4]}, ["threads", "[4]"], id="threads-list"),
    pytest.param({"processes": True}, ["processes", "True"], id="processes-bool"),
    pytest.param({"part_size": "16 parsecs"}, ["part_size", "'16 parsecs'"], id="part-size-word"),
    pytest.param({"part_size": -1}, ["part_size", "-1"], id="part-size-negative"),
    pytest.param({"multipart_threshold": 1.5}, ["multipart_threshold", "1.5"], id="threshold-float"),
    pytest.param({"gzip": "maybe"}, ["gzip", "'maybe'", "true or false"], id="gzip-word"),
    pytest.param({"dry_run": "perhaps"}, ["dry_run", "'perhaps'"], id="dry-run-word"),
    pytest.param({"follow_symlinks": "perhaps"}, ["follow_symlinks"], id="follow-word"),
    pytest.param({"source": 5}, ["source", "5"], id="source-int"),
    pytest.param({"headers": "NoColon"}, ["headers", "NoColon"], id="header"),
    pytest.param({"headers": ["X-Bogus:1"]}, ["unsupported headers", "X-Bogus"], id="header-unknown"),
    pytest.param({"headers": {"Cache-Control": "x"}}, ["headers", "list of strings"], id="headers-dict"),
    pytest.param({"put_mode": "sync"}, ["put_mode", "'sync'", "add, stupid, update"], id="mode-word"),
    pytest.param({"put_mode": 3}, ["put_mode", "3"], id="mode-int"),
    pytest.param({"grant": "everyone"}, ["grant", "everyone"], id="acl"),
    pytest.param({"transport": "quic"}, ["transport", "quic"], id="transport"),
    pytest.param({"bucket": None}, ["bucket is required"], id="no-bucket"),
    pytest.param({"bucket": "Not A Bucket"}, ["bucket", "not a valid bucket name"], id="bad-bucket"),
    pytest.param({"prefix": "../up"}, ["prefix", "'..'"], id="dotdot-prefix"),
    pytest.param({"limit": -2}, ["limit", "-2"], id="limit-negative"),
    pytest.param({"limit": "x"}, ["limit", "'x'"], id="limit-word"),
    pytest.param({"batch_size": "abc"}, ["batch_size", "'abc'"], id="batch-size-word"),
    pytest.param({"batch_size": 0}, ["batch_size", "not 0"], id="batch-size-zero"),
    pytest.param({"batch_bytes": "lots"}, ["batch_bytes", "'lots'"], id="batch-bytes-word"),
    pytest.param(
        {"gzip": True, "headers": ["Content-Encoding:br"]}, ["gzip", "headers"], id="gzip-vs-header"
    ),
]


def assert_airflow_spelling(message: str, fragments: list[str]) -> None:
    assert "\n" not in message and "--" not in message, message  # one line, no CLI flag
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(("settings", "fragments"), BAD_SETTINGS)
def test_literal_settings_are_refused_when_the_dag_is_parsed(
    tmp_path: Path, settings: dict[str, Any], fragments: list[str]
) -> None:
    kwargs: dict[str, Any] = {"task_id": "plan", "source": str(tmp_path), "bucket": "my-bucket", **settings}
    with pytest.raises(UsageError) as raised:
        S3PPutPlanOperator(**kwargs)
    assert_airflow_spelling(str(raised.value), fragments)


@pytest.mark.parametrize(("settings", "fragments"), BAD_SETTINGS)
def test_templated_settings_are_refused_when_the_task_runs(
    tmp_path: Path, settings: dict[str, Any], fragments: list[str]
) -> None:
    """The same values arriving from a template: the DAG parses, the task fails once, for good."""
    (tmp_path / "a.txt").write_text("a")
    templated = {name: "{{ params." + name + " }}" for name in settings}
    kwargs: dict[str, Any] = {"task_id": "plan", "source": str(tmp_path), "bucket": "my-bucket", **templated}
    with DAG(dag_id="templated", schedule=None, render_template_as_native_obj=True) as dag:
        plan = S3PPutPlanOperator(**kwargs)  # parses: nothing known is wrong
    plan.render_template_fields({"params": settings}, jinja_env=dag.get_template_env())
    with pytest.raises(AirflowFailException) as raised:
        plan.execute({})  # type: ignore[arg-type]  # fails before any connection is looked up
    message = str(raised.value)
    assert message.startswith("s3pput: ")
    assert_airflow_spelling(message, fragments)


def test_put_rejects_bad_settings_before_any_connection(tmp_path: Path) -> None:
    with DAG(dag_id="put", schedule=None) as dag:
        op = S3PPutBatchOperator(
            task_id="put", batch={"index": 0, "after": None, "last": None, "first_key": "a", "last_key": "z",
                                  "files": 1, "bytes": 1},
            source=str(tmp_path), bucket="my-bucket", threads="{{ params.threads }}",
            aws_conn_id="no_such_connection",
        )  # fmt: skip
    op.render_template_fields({"params": {"threads": "lots"}}, jinja_env=dag.get_template_env())
    with pytest.raises(AirflowFailException, match="invalid threads 'lots'"):
        op.upload_options()


@pytest.mark.parametrize(
    ("settings", "fragments"),
    [
        pytest.param({"put_mode": "sync"}, ["put_mode", "'sync'"], id="mode"),
        pytest.param({"batch_size": "ten"}, ["batch_size", "'ten'"], id="batch-size-word"),
        pytest.param({"batch_size": 0}, ["batch_size"], id="batch-size-zero"),
        pytest.param({"part_size": "16 parsecs"}, ["part_size"], id="part-size"),
    ],
)
def test_the_task_group_refuses_literals_when_the_dag_is_parsed(
    settings: dict[str, Any], fragments: list[str]
) -> None:
    with DAG(dag_id="group", schedule=None), pytest.raises(UsageError) as raised:
        s3pput_task_group(source="/data", bucket="my-bucket", **settings)
    assert_airflow_spelling(str(raised.value), fragments)


def test_the_task_group_leaves_templates_to_the_run() -> None:
    with DAG(dag_id="group", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        group = s3pput_task_group(
            source="{{ params.source }}", bucket="{{ params.bucket }}", put_mode="{{ params.mode }}",
            batch_size="{{ params.batch_size }}", dry_run="{{ params.dry_run }}",
        )  # fmt: skip
    assert group.get_child_by_label("plan").settings["put_mode"] == "{{ params.mode }}"


@pytest.mark.parametrize(
    "conf",
    [
        pytest.param({"batch_size": "abc"}, id="batch-size-string"),
        pytest.param({"batch_size": 0}, id="batch-size-zero"),
        pytest.param({"dry_run": "yes please"}, id="dry-run-string"),
        pytest.param({"delete": "maybe"}, id="delete-string"),
        pytest.param({"put_mode": "mirror"}, id="mode-not-in-enum"),
        pytest.param({"limit": -1}, id="limit-negative"),
        pytest.param({"headers": "Cache-Control:x"}, id="headers-not-a-list"),
        pytest.param({"source": ""}, id="source-empty"),
        pytest.param({"aws_conn_id": ""}, id="connection-emptied"),
    ],
)
def test_upload_dag_params_refuse_wrong_types(conf: dict[str, Any]) -> None:
    """The trigger form and run conf are checked against the example DAG's Params, naming the field."""
    from airflow.sdk.definitions.param import ParamValidationError

    path = REPO / "dags_examples" / "s3pput_upload.py"
    spec = importlib.util.spec_from_file_location("s3pput_upload_dag", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = copy.deepcopy(module.dag.params)
    params.validate()  # the defaults are valid
    with pytest.raises(ParamValidationError, match=f"param {next(iter(conf))}"):
        params.update(conf)  # a ParamsDict checks each value as it is set
        params.validate()

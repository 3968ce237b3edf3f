"""Bad parameters to the operators: the task fails for good (no retry) with a message naming it."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_s3pput.provider.operators import S3PPutBatchOperator, S3PPutPlanOperator

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize(
    ("params", "fragments"),
    [
        pytest.param({"processes": "many"}, ["processes", "'many'", "integer"], id="processes-word"),
        pytest.param({"processes": 0}, ["--processes", "not 0"], id="processes-zero"),
        pytest.param({"threads": 0}, ["--threads", "not 0"], id="threads-zero"),
        pytest.param({"threads": [4]}, ["threads", "[4]"], id="threads-list"),
        pytest.param({"processes": True}, ["processes", "True"], id="processes-bool"),
        pytest.param({"part_size": "16MiB"}, ["part_size", "'16MiB'"], id="part-size-string"),
        pytest.param({"part_size": -1}, ["--part-size"], id="part-size-negative"),
        pytest.param({"multipart_threshold": 1.5}, ["multipart_threshold", "1.5"], id="threshold-float"),
        pytest.param({"gzip": "maybe"}, ["gzip", "'maybe'", "true or false"], id="gzip-word"),
        pytest.param({"follow_symlinks": "perhaps"}, ["follow_symlinks"], id="follow-word"),
        pytest.param({"source": 5}, ["source", "5"], id="source-int"),
        pytest.param({"source": "/no/such/dir"}, ["/no/such/dir", "does not exist"], id="source-missing"),
        pytest.param({"headers": "NoColon"}, ["--header", "NoColon"], id="header"),
        pytest.param({"headers": {"Cache-Control": "x"}}, ["headers", "list of strings"], id="headers-dict"),
        pytest.param({"put_mode": 3}, ["--put", "'3'"], id="mode-int"),
        pytest.param({"grant": "everyone"}, ["--grant", "everyone"], id="acl"),
        pytest.param({"bucket": None}, ["--bucket"], id="no-bucket"),
        pytest.param({"bucket": "Not A Bucket"}, ["bucket name"], id="bad-bucket"),
        pytest.param({"prefix": "../up"}, ["--prefix"], id="dotdot-prefix"),
        pytest.param({"limit": -2}, ["limit", "-2"], id="limit-negative"),
        pytest.param({"limit": "x"}, ["limit", "'x'"], id="limit-word"),
        pytest.param({"batch_size": "abc"}, ["batch_size", "'abc'"], id="batch-size-word"),
        pytest.param({"batch_size": 0}, ["batch_size"], id="batch-size-zero"),
    ],
)
def test_plan_rejects_bad_params_naming_them(
    tmp_path: Path, params: dict[str, Any], fragments: list[str]
) -> None:
    (tmp_path / "a.txt").write_text("a")
    kwargs: dict[str, Any] = {"task_id": "plan", "source": str(tmp_path), "bucket": "my-bucket", **params}
    with pytest.raises(AirflowFailException) as raised:
        S3PPutPlanOperator(**kwargs).execute({})  # type: ignore[arg-type]
    message = str(raised.value)
    assert message.startswith("s3pput: ") and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_put_rejects_bad_params_before_any_connection(tmp_path: Path) -> None:
    op = S3PPutBatchOperator(
        task_id="put", batch={"index": 0, "first": "a", "last": "z", "files": 1, "bytes": 1},
        source=str(tmp_path), bucket="my-bucket", threads="lots", aws_conn_id="no_such_connection",
    )  # fmt: skip
    with pytest.raises(AirflowFailException, match="invalid threads 'lots'"):
        op.upload_options(with_connection=False)


@pytest.mark.parametrize(
    "conf",
    [
        pytest.param({"batch_size": "abc"}, id="batch-size-string"),
        pytest.param({"batch_size": 0}, id="batch-size-zero"),
        pytest.param({"dry_run": "yes please"}, id="dry-run-string"),
        pytest.param({"put_mode": "mirror"}, id="mode-not-in-enum"),
        pytest.param({"limit": -1}, id="limit-negative"),
        pytest.param({"headers": "Cache-Control:x"}, id="headers-not-a-list"),
        pytest.param({"source": ""}, id="source-empty"),
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

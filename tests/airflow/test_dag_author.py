"""What a DAG author meets next, through real Airflow (``airflow dags test``) and a real SeaweedFS.

A DAG of one's own with two uploads, a ``{{ ds }}`` source, gzip, headers, ``put_kwargs``,
``outlets`` and a downstream task reading the summaries, with OpenLineage's file transport on;
a plan that fails fast, for good, with one line naming the connection or the bucket; a batch's
error that reaches the reduce; the daily example uploading the day that ended.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.faults.proxy import Fault, FaultProxy
from tests.helpers import RunDag, list_keys, make_tree

AUTHOR_DAG = """
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Asset, task

from airflow_s3pput.provider import s3pput_task_group

with DAG(dag_id="s3pput_author", schedule=None, catchup=False, render_template_as_native_obj=True) as dag:
    logs = s3pput_task_group(
        group_id="logs",
        source="{{ dag_run.conf['root'] }}/logs/{{ ds }}",
        bucket="{{ dag_run.conf['bucket'] }}",
        prefix="logs/{{ ds }}",
        gzip=True,
        headers=["Cache-Control:max-age=60", "x-amz-meta-origin:author-test"],
        batch_size=3,
        put_kwargs={"retries": 1, "retry_delay": timedelta(0), "queue": "default", "priority_weight": 5},
        outlets=[Asset(name="author_logs", uri="s3://author/logs/")],
    )
    site = s3pput_task_group(
        group_id="site",
        source="{{ dag_run.conf['root'] }}/site",
        bucket="{{ dag_run.conf['bucket'] }}",
        prefix="site",
        put_mode="add",
    )

    @task
    def report(logs_summary: dict[str, Any], site_summary: dict[str, Any]) -> dict[str, Any]:
        return {"logs": logs_summary["files_put"], "site": site_summary["files_put"]}

    report(logs.summary, site.summary)
"""


def lineage_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(400)
def test_a_dag_of_ones_own(run_dag: RunDag, tmp_path: Path, bucket: str, s3_client: Any) -> None:
    root = tmp_path / "root"
    make_tree(root / "logs" / "2026-03-02", {f"app{i}.txt": f"line {i}\n" * 50 for i in range(5)})
    make_tree(root / "logs" / "2026-03-01", {"old.txt": "not today"})
    make_tree(root / "site", {f"p{i}.html": f"<p>{i}</p>" for i in range(4)})
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "s3pput_author.py").write_text(AUTHOR_DAG)
    lineage = tmp_path / "lineage.jsonl"
    transport = {"type": "file", "log_file_path": str(lineage), "append": True}
    result = run_dag(
        "s3pput_author",
        {"root": str(root), "bucket": bucket},
        env={"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)},
        dags_folder=dags,
        logical_date="2026-03-02T06:00:00+00:00",
    )
    assert result.exit_code == 0, result.log[-3000:]
    assert result.xcoms("report") == [{"logs": 5, "site": 4}]  # the summaries, taken as XComArgs

    landed = list_keys(s3_client, bucket)
    assert set(landed) == {f"logs/2026-03-02/app{i}.txt" for i in range(5)} | {
        f"site/p{i}.html" for i in range(4)
    }
    head = s3_client.head_object(Bucket=bucket, Key="logs/2026-03-02/app0.txt")
    assert head["ContentEncoding"] == "gzip" and head["CacheControl"] == "max-age=60"
    assert head["Metadata"] == {"origin": "author-test"}

    # One asset event, from the reduce of the group that has the outlet, with the summary.
    (event,) = result.asset_events()
    assert event["asset"] == "s3://author/logs"
    assert {k: event["extra"][k] for k in ("files_put", "bucket", "prefix", "batches")} == {
        "files_put": 5, "bucket": bucket, "prefix": "logs/2026-03-02/", "batches": 2,
    }  # fmt: skip

    # OpenLineage: each put says what it read (the local SOURCE) and wrote (the bucket's prefix).
    events = [e for e in lineage_events(lineage) if e["eventType"] == "COMPLETE"]
    puts = {e["job"]["name"]: e for e in events if e["job"]["name"].endswith(".put")}
    assert set(puts) == {"s3pput_author.logs.put", "s3pput_author.site.put"}
    logs = puts["s3pput_author.logs.put"]
    ((in_namespace, in_name),) = [(d["namespace"], d["name"]) for d in logs["inputs"]]
    assert in_namespace.startswith("file://") and in_name == str(root / "logs" / "2026-03-02")
    assert [(d["namespace"], d["name"]) for d in logs["outputs"]] == [(f"s3://{bucket}", "logs/2026-03-02")]
    site = puts["s3pput_author.site.put"]
    assert [(d["namespace"], d["name"]) for d in site["outputs"]] == [(f"s3://{bucket}", "site")]


def connection(s3: LocalS3Server, *, endpoint: str | None = None, password: str | None = None) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": s3.access_key,
            "password": password or s3.secret_key,
            "extra": {"endpoint_url": endpoint or s3.endpoint_url, "region_name": "us-east-1"},
        }
    )


@pytest.mark.parametrize(
    ("case", "fragments"),
    [
        pytest.param(
            "missing-connection", ["aws_conn_id 'no_such_connection' is not defined"], id="missing-connection"
        ),
        pytest.param(
            "bad-credentials", ["denied: check the credentials", "(aws_conn_id 'bad_keys')"], id="bad-keys"
        ),
        pytest.param(
            "missing-bucket",
            ["bucket 'no-such-bucket-s3pput' does not exist", "(aws_conn_id 'aws_default')"],
            id="missing-bucket",
        ),
    ],
)
def test_the_plan_fails_fast_and_for_good(
    run_upload_dag: RunDag,
    tmp_path: Path,
    bucket: str,
    s3_server: LocalS3Server,
    case: str,
    fragments: list[str],
) -> None:
    """One line with the cause, from the plan, before any put; not retried (the DAG has retries=2)."""
    source = make_tree(tmp_path / "src", {"a.txt": "a", "b.txt": "b"})
    conf: dict[str, Any] = {"source": str(source), "bucket": bucket, "prefix": "ff"}
    env = {}
    if case == "missing-connection":
        conf["aws_conn_id"] = "no_such_connection"
    elif case == "bad-credentials":
        conf["aws_conn_id"] = "bad_keys"
        env["AIRFLOW_CONN_BAD_KEYS"] = connection(s3_server, password="not-the-secret-key")
    else:
        conf["bucket"] = "no-such-bucket-s3pput"
    result = run_upload_dag(conf, env=env)
    assert result.exit_code != 0
    assert result.states[("upload.plan", -1)] == "failed"
    assert result.try_numbers("upload.plan") == {-1: 1}  # failed for good: retries do not help
    assert result.count("upload.put", "success") == 0
    lines = [line for line in result.log.splitlines() if "AirflowFailException: s3pput: " in line]
    assert lines, result.log[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "get_frozen_credentials" not in result.log and "AttributeError" not in result.log
    assert "not-the-secret-key" not in result.log and s3_server.secret_key not in result.log
    assert "s3pput: the plan task failed; nothing was uploaded" in result.log


def test_a_batch_error_reaches_the_reduce(
    run_upload_dag: RunDag, tmp_path: Path, bucket: str, s3_server: LocalS3Server, s3_client: Any
) -> None:
    """The plan's bucket check passes; each put's is refused: each batch's error is in the summary."""
    source = make_tree(tmp_path / "src", {f"f{i}.txt": f"{i}" for i in range(6)})
    with FaultProxy(upstream=("127.0.0.1", s3_server.port)) as proxy:
        # HeadBucket: the plan's passes, every later one is refused (403 is not retried).
        proxy.set_rules(
            [Fault("error", status=403, code="AccessDenied", method="HEAD", path=f"/{bucket}", skip=1)]
        )
        env = {"AIRFLOW_CONN_AWS_DEFAULT": connection(s3_server, endpoint=proxy.endpoint_url)}
        result = run_upload_dag({"source": str(source), "bucket": bucket, "batch_size": 3}, env=env)
        refused = proxy.stats["faults"]["error"]
    assert result.exit_code != 0
    assert refused == 2, result.log[-3000:]
    assert result.count("upload.put", "failed") == 2
    assert result.try_numbers("upload.put") == {0: 1, 1: 1}  # an unusable bucket is not retried
    (summary,) = result.xcoms("upload.reduce", "s3pput_summary")
    assert summary["batches_missing"] == 2 and summary["files_planned"] == 6
    errors = {e["batch"]: e["error"] for e in summary["batch_errors"]}
    assert set(errors) == {0, 1}
    assert all(f"access to bucket '{bucket}'" in error and "denied" in error for error in errors.values())
    (line,) = [line for line in result.log.splitlines() if "s3pput: 0 files failed, 2 of 2 batches" in line]
    assert "batch 0 (f0.txt .. f2.txt (3 files)): access to bucket" in line
    assert "batch 1 (f3.txt .. f5.txt (3 files)): access to bucket" in line
    assert list_keys(s3_client, bucket) == {}


def test_the_daily_example_uploads_the_day_that_ended(
    run_dag: RunDag, tmp_path: Path, s3_client: Any
) -> None:
    """The run at 2026-03-02 00:00 (its data interval: 2026-03-01) uploads 2026-03-01's folder."""
    with contextlib.suppress(s3_client.exceptions.BucketAlreadyOwnedByYou):
        s3_client.create_bucket(Bucket="my-bucket")  # the example's bucket
    exports = tmp_path / "exports"
    make_tree(exports / "2026-03-01", {"ended.csv": "a,b\n"})
    make_tree(exports / "2026-03-02", {"started.csv": "c,d\n"})
    try:
        result = run_dag("s3pput_daily", {"exports": str(exports)}, logical_date="2026-03-02T00:00:00+00:00")
        assert result.exit_code == 0, result.log[-3000:]
        assert set(list_keys(s3_client, "my-bucket", "exports/")) == {"exports/2026-03-01/ended.csv"}
    finally:
        for key in list_keys(s3_client, "my-bucket", "exports/"):
            s3_client.delete_object(Bucket="my-bucket", Key=key)


CLASSIC_DAG = """
from airflow.sdk import DAG

from airflow_s3pput.provider.operators import (
    MAP_INDEX_TEMPLATE, S3PPutBatchOperator, S3PPutPlanOperator, S3PPutReduceOperator,
)

with DAG(dag_id="s3pput_classic", schedule=None, catchup=False, render_template_as_native_obj=True) as dag:
    source, bucket = "{{ dag_run.conf['source'] }}", "{{ dag_run.conf['bucket'] }}"
    # A put given another prefix than its plan.
    plan = S3PPutPlanOperator(task_id="plan_a", source=source, bucket=bucket, prefix="a", batch_size=2)
    put = S3PPutBatchOperator.partial(
        task_id="put_a", source=source, bucket=bucket, prefix="b", map_index_template=MAP_INDEX_TEMPLATE,
        retries=2,
    ).expand(batch=plan.output)
    reduce = S3PPutReduceOperator(
        task_id="reduce_a", plan_task_id="plan_a", put_task_id="put_a", bucket=bucket, prefix="a"
    )
    plan >> put >> reduce
    # A reduce given another prefix than its plan and puts.
    plan = S3PPutPlanOperator(task_id="plan_c", source=source, bucket=bucket, prefix="c")
    put = S3PPutBatchOperator.partial(task_id="put_c", source=source, bucket=bucket, prefix="c").expand(
        batch=plan.output
    )
    reduce = S3PPutReduceOperator(
        task_id="reduce_c", plan_task_id="plan_c", put_task_id="put_c", bucket=bucket, prefix="d"
    )
    plan >> put >> reduce
    # The reduce may leave bucket and prefix out: it reports the plan's.
    plan = S3PPutPlanOperator(task_id="plan_e", source=source, bucket=bucket, prefix="e")
    put = S3PPutBatchOperator.partial(task_id="put_e", source=source, bucket=bucket, prefix="e").expand(
        batch=plan.output
    )
    reduce = S3PPutReduceOperator(task_id="reduce_e", plan_task_id="plan_e", put_task_id="put_e")
    plan >> put >> reduce
"""


def test_classic_operators_that_disagree_on_the_target_fail_with_one_line(
    run_dag: RunDag, tmp_path: Path, bucket: str, s3_client: Any
) -> None:
    source = make_tree(tmp_path / "src", {f"f{i}.txt": f"{i}" for i in range(4)})
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "s3pput_classic.py").write_text(CLASSIC_DAG)
    result = run_dag("s3pput_classic", {"source": str(source), "bucket": bucket}, dags_folder=dags)
    assert result.exit_code != 0
    # The puts given prefix b fail at once (retries=2 unused) and upload nothing anywhere.
    assert result.count("put_a", "failed") == 2 and result.try_numbers("put_a") == {0: 1, 1: 1}
    assert (
        f"AirflowFailException: s3pput: this put uploads to s3://{bucket}/b/ but its batch was planned "
        f"for s3://{bucket}/a/: give the plan, put and reduce tasks the same bucket and prefix"
    ) in result.log
    assert not list_keys(s3_client, bucket, "a/") and not list_keys(s3_client, bucket, "b/")
    # The reduce given prefix d fails, naming both; the upload itself landed under c/.
    assert result.states[("reduce_c", -1)] == "failed"
    assert (
        f"s3pput: this reduce reports on s3://{bucket}/d/ but the plan was made for s3://{bucket}/c/"
    ) in result.log
    assert len(list_keys(s3_client, bucket, "c/")) == 4
    # The reduce without a target reports the plan's.
    assert result.states[("reduce_e", -1)] == "success"
    (summary,) = result.xcoms("reduce_e")
    assert (summary["bucket"], summary["prefix"], summary["files_put"]) == (bucket, "e/", 4)


def test_the_publish_example_announces_the_target_the_form_gave(
    run_dag: RunDag, tmp_path: Path, bucket: str, s3_client: Any
) -> None:
    source = make_tree(tmp_path / "src", {"index.html": "<p>hi</p>", "a/b.css": "p {}"})
    conf = {"source": str(source), "bucket": bucket, "prefix": "site/v2", "dry_run": False}
    result = run_dag("s3pput_publish", conf)
    assert result.exit_code == 0, result.log[-3000:]
    assert set(list_keys(s3_client, bucket, "site/v2/")) == {"site/v2/index.html", "site/v2/a/b.css"}
    events = {event["asset"]: event["extra"] for event in result.asset_events()}
    # The publication (what the consumer is scheduled on), and where it landed: the form's target.
    assert set(events) == {"s3pput_published", f"s3://{bucket}/site/v2"}, events
    for extra in events.values():
        assert (extra["bucket"], extra["prefix"], extra["files_put"]) == (bucket, "site/v2/", 2)
    assert "my-bucket" not in str(events)

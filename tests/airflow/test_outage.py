"""An S3 endpoint that is away for a while must not fail an Airflow run for good.

The engine's bucket check rides out a short outage on its own; one that outlasts it fails the
task with an ordinary exception, so that Airflow's ``retries`` take over. What no retry changes
(bad settings, a missing bucket, refused keys) still fails at once: see ``test_dag_author.py``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_s3pput.errors import Unavailable, UsageError
from airflow_s3pput.provider.operators import fail_fast
from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.faults.proxy import Fault, FaultProxy, Request
from tests.helpers import RunDag, list_keys, make_tree

DAG_ID = "s3pput_outage"
OUTAGE_DAG = f'''
from datetime import timedelta

from airflow.sdk import DAG

from airflow_s3pput.provider import s3pput_task_group

with DAG(dag_id="{DAG_ID}", schedule=None, catchup=False, render_template_as_native_obj=True) as dag:
    s3pput_task_group(
        group_id="upload",
        source="{{{{ dag_run.conf['source'] }}}}",
        bucket="{{{{ dag_run.conf['bucket'] }}}}",
        prefix="o",
        batch_size=7,
        retries=2,
        retry_delay=timedelta(seconds=1),
    )
'''
#: longer than the bucket check asks (``bucket_check.PATIENCE``): only a retry of the task can
#: finish the batch that met the start of the outage
OUTAGE_SECONDS = 22.0


def test_an_endpoint_out_of_reach_is_retryable_and_bad_input_is_not() -> None:
    with pytest.raises(AirflowException) as raised:
        fail_fast(_raise, Unavailable("cannot reach http://s3: AWS_IO_SOCKET_CONNECTION_REFUSED"))
    assert not isinstance(raised.value, AirflowFailException)
    assert str(raised.value).startswith("s3pput: cannot reach http://s3")
    with pytest.raises(AirflowFailException, match="s3pput: bucket 'b' does not exist"):
        fail_fast(_raise, UsageError("bucket 'b' does not exist"))


def test_an_import_error_fails_at_once() -> None:
    """The next try runs the same installation: an awscrt without S3RetryMode stays so."""
    missing = ImportError("cannot import name 'S3RetryMode' from 'awscrt.s3'")
    with pytest.raises(AirflowFailException, match="installation lacks what the run needs: cannot import"):
        fail_fast(_raise, missing)


def test_a_failure_names_the_setting_as_a_dag_author_writes_it() -> None:
    wrong_region = UsageError("bucket 'b' is in another region: set {setting}", setting="region")
    with pytest.raises(AirflowFailException, match=r"set region_name$"):
        fail_fast(_raise, wrong_region)


def _raise(exc: Exception) -> None:
    raise exc


def reset_then_refuse(proxy: FaultProxy, outage: threading.Timer) -> Fault:
    """The put's HeadBucket (the run's second) is reset, and from then on nothing listens until
    ``outage`` clears the rules: the endpoint went down right after the plan."""
    heads = [0]

    def second_head(request: Request) -> bool:
        if request.method != "HEAD":
            return False
        heads[0] += 1
        if heads[0] != 2:
            return False
        threading.Thread(target=proxy.set_rules, args=([Fault("refuse")],), daemon=True).start()
        outage.start()
        return True

    return Fault("reset", match=second_head)


@pytest.mark.timeout(400)
def test_a_refusing_endpoint_after_the_plan_is_ridden_out(
    run_dag: RunDag, s3_server: LocalS3Server, bucket: str, s3_client: Any, tmp_path: Path
) -> None:
    """The plan passes; then the endpoint refuses connections for longer than the engine waits.
    The put that meets it fails with a retryable error, its retry (or a later put's own backoff)
    lands everything, and the run succeeds."""
    files = {f"f{i:02d}.txt": f"file {i}\n" for i in range(13)}
    source = make_tree(tmp_path / "src", files)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(OUTAGE_DAG)
    with FaultProxy(upstream=("127.0.0.1", s3_server.port)) as proxy:
        outage = threading.Timer(OUTAGE_SECONDS, proxy.clear)
        proxy.set_rules([reset_then_refuse(proxy, outage)])
        env = {
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                {
                    "conn_type": "aws",
                    "login": s3_server.access_key,
                    "password": s3_server.secret_key,
                    "extra": {"endpoint_url": proxy.endpoint_url, "region_name": "us-east-1"},
                }
            )
        }
        try:
            result = run_dag(DAG_ID, {"source": str(source), "bucket": bucket}, env=env, dags_folder=dags)
        finally:
            outage.cancel()
        faults = proxy.stats["faults"]
    assert (faults["reset"], faults["refuse"]) == (1, 1), result.log[-3000:]
    assert result.exit_code == 0, result.log[-3000:]
    assert result.states[("upload.plan", -1)] == "success"
    assert result.count("upload.put", "success") == 2
    tries = result.try_numbers("upload.put")
    assert max(tries.values()) >= 2, tries  # Airflow's retries were used, not refused
    assert "AirflowFailException" not in result.log
    assert "cannot reach" in result.log and "a retry of the task may succeed" in result.log
    summary = result.summary
    assert summary["files_failed"] == 0 and summary["files_planned"] == 13
    assert set(list_keys(s3_client, bucket, "o/")) == {f"o/{name}" for name in files}
    assert s3_server.secret_key not in result.log

"""Task-state paths on PostgreSQL, which enforces what SQLite lets pass.

``task_instance.rendered_map_index`` is VARCHAR(250): PostgreSQL refuses a longer mapped task
name when the task reports its state, and the put ends ``failed`` after uploading everything.
PostgreSQL runs natively from Debian's packages (``celery_stack.LocalPostgres``) on loopback.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.testing.celery_stack import LocalPostgres, ServiceUnavailable, postgres_bin_dir
from airflow_s3pput.testing.local_airflow import airflow_env, dags_test, migrate
from airflow_s3pput.testing.local_s3 import LocalS3Server
from tests.airflow.test_upload_dag import long_keys
from tests.helpers import list_keys, make_tree


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    try:
        postgres_bin_dir()
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    with LocalPostgres() as server:
        yield server


@pytest.fixture(scope="module")
def postgres_home(
    postgres: LocalPostgres, s3_server: LocalS3Server, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    home = tmp_path_factory.mktemp("airflow-pg")
    env = airflow_env(home, s3_server, extra={"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url})
    migrate(env, home / "migrate.log")
    return home, env


def rows(postgres: LocalPostgres, query: str, *args: Any) -> list[tuple[Any, ...]]:
    import psycopg2

    connection = psycopg2.connect(
        host="127.0.0.1", port=postgres.port, user="airflow", password=postgres.password, dbname="airflow"
    )
    try:
        with connection.cursor() as cursor:
            cursor.execute(query, args)
            return list(cursor.fetchall())
    finally:
        connection.close()


@pytest.mark.timeout(400)
def test_a_mapped_upload_with_long_keys_succeeds_on_postgres(
    postgres: LocalPostgres,
    postgres_home: tuple[Path, dict[str, str]],
    bucket: str,
    s3_client: Any,
    tmp_path: Path,
) -> None:
    _home, env = postgres_home
    files = long_keys(6)
    source = make_tree(tmp_path / "src", files)
    log = tmp_path / f"dag-{uuid.uuid4().hex[:8]}.log"
    conf = {"source": str(source), "bucket": bucket, "prefix": "up", "batch_size": 3}
    code = dags_test(env, "s3pput_upload", conf, log)
    text = log.read_text(errors="replace")
    (run_id,) = rows(
        postgres, "SELECT run_id FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1", "s3pput_upload"
    )[0]
    puts = rows(
        postgres,
        "SELECT map_index, state, rendered_map_index FROM task_instance "
        "WHERE dag_id = %s AND run_id = %s AND task_id = %s ORDER BY map_index",
        "s3pput_upload", run_id, "upload.put",
    )  # fmt: skip
    assert [(index, state) for index, state, _ in puts] == [(0, "success"), (1, "success")], text[-3000:]
    assert all(name and len(name) <= 250 and name.endswith("(3 files)") for _, _, name in puts), puts
    assert code == 0, text[-3000:]
    assert "Value rejected by database" not in text
    (summary,) = rows(
        postgres,
        "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = %s AND key = %s",
        "s3pput_upload", run_id, "upload.reduce", "return_value",
    )[0]  # fmt: skip
    summary = summary if isinstance(summary, dict) else json.loads(summary)
    assert summary["files_put"] == 6 and summary["batches_missing"] == 0
    assert set(list_keys(s3_client, bucket, "up/")) == {f"up/{key}" for key in files}

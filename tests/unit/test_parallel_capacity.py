"""How many batches the plan makes when the DAG names none: what the executor can run at once."""

from __future__ import annotations

import pytest

pytest.importorskip("airflow.sdk")

from airflow_s3pput.provider.operators import parallel_capacity


@pytest.mark.parametrize(
    ("executor", "cpus", "parallelism", "expected"),
    [
        pytest.param("LocalExecutor", 2, 32, 1, id="local-two-cores"),
        pytest.param("LocalExecutor", 16, 32, 8, id="local-sixteen-cores"),
        pytest.param("LocalExecutor", 64, 4, 4, id="local-capped-by-parallelism"),
        pytest.param("LocalExecutor", 1, 32, 1, id="local-one-core"),
        pytest.param("CeleryExecutor", 2, 32, 32, id="celery-fleet"),
        pytest.param("LocalExecutor,CeleryExecutor", 8, 32, 4, id="first-of-several"),
        pytest.param("airflow.executors.local_executor.LocalExecutor", 8, 32, 4, id="dotted-path"),
        pytest.param("KubernetesExecutor", 2, 16, 16, id="kubernetes"),
    ],
)
def test_the_batch_count_follows_what_can_run_at_once(
    monkeypatch: pytest.MonkeyPatch, executor: str, cpus: int, parallelism: int, expected: int
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", str(parallelism))
    assert parallel_capacity(executor, cpus) == expected

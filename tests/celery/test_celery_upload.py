"""``s3pput_upload`` spread over two Celery workers, and a worker lost with ``kill -9`` mid-batch.

The tree: 20,000 small files in 20 folders and two 64 MiB files that go up in multipart, in
batches of 2,000 files (11 mapped put tasks, four at a time on two workers with two slots each).
Runs are triggered and read back through the REST API only; the bucket is checked with boto3:
every key, its size and its ETag against the local file (MD5, or the multipart formula), and a
sample downloaded byte for byte.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_s3pput.options import DEFAULT_PART_SIZE
from airflow_s3pput.testing.celery_stack import CeleryStack
from tests.helpers import MIB, list_keys, local_etag

pytestmark = pytest.mark.slow

SMALL_FILES = 20_000
FOLDERS = 20
LARGE_FILES = 2
LARGE_SIZE = 64 * MIB
#: parts of a large file at the default part size (8 MiB: 8 parts)
LARGE_PARTS = -(-LARGE_SIZE // DEFAULT_PART_SIZE)
BATCH_SIZE = 2_000
BATCHES = -(-(SMALL_FILES + LARGE_FILES) // BATCH_SIZE)
WORKERS = {"worker-1", "worker-2"}
PUT = "upload.put"
REDUCE = "upload.reduce"
RUN_TIMEOUT = 300.0


@dataclass(frozen=True)
class Tree:
    root: Path
    etags: dict[str, str]  # relative path -> expected ETag
    sizes: dict[str, int]

    @property
    def bytes(self) -> int:
        return sum(self.sizes.values())


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Tree:
    """20,000 files of 16-1,024 random bytes and two 64 MiB files, written in a few seconds."""
    root = tmp_path_factory.mktemp("celery-src")
    rng = random.Random(15)
    sizes: dict[str, int] = {}
    for folder in range(FOLDERS):
        (root / f"d{folder:02d}").mkdir()
    for i in range(SMALL_FILES):
        rel = f"d{i % FOLDERS:02d}/f-{i:05d}.bin"
        body = rng.randbytes(rng.randint(16, 1024))
        fd = os.open(root / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, body)
        finally:
            os.close(fd)
        sizes[rel] = len(body)
    # In the first folders, so that they are in the first batches, which start at once.
    for n in range(LARGE_FILES):
        rel = f"d{n:02d}/large-{n}.bin"
        (root / rel).write_bytes(rng.randbytes(LARGE_SIZE))
        sizes[rel] = LARGE_SIZE
    etags = {rel: local_etag(root / rel) for rel in sizes}
    assert sum(1 for e in etags.values() if e.endswith(f"-{LARGE_PARTS}")) == LARGE_FILES
    return Tree(root, etags, sizes)


def check_bucket(s3_client: Any, bucket: str, prefix: str, tree: Tree) -> None:
    """Every file landed once, with its size and ETag, and nothing else; a sample is byte-equal."""
    landed = list_keys(s3_client, bucket, prefix)
    expected = {prefix + rel: rel for rel in tree.sizes}
    assert len(landed) == len(expected)
    assert set(landed) == set(expected)
    wrong = [
        key
        for key, obj in landed.items()
        if obj["Size"] != tree.sizes[expected[key]] or obj["ETag"].strip('"') != tree.etags[expected[key]]
    ]
    assert not wrong, f"{len(wrong)} objects differ from their files, e.g. {wrong[:5]}"
    sample = [f"d{n:02d}/large-{n}.bin" for n in range(LARGE_FILES)]
    sample += random.Random(1).sample(sorted(r for r in tree.sizes if "/f-" in r), 20)
    for rel in sample:
        body = s3_client.get_object(Bucket=bucket, Key=prefix + rel)["Body"].read()
        assert body == (tree.root / rel).read_bytes(), rel


def conf_for(tree: Tree, bucket: str, prefix: str) -> dict[str, Any]:
    return {"source": str(tree.root), "bucket": bucket, "prefix": prefix, "batch_size": BATCH_SIZE}


def puts_of(tis: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((ti for ti in tis if ti["task_id"] == PUT), key=lambda ti: ti["map_index"])


def test_batches_spread_over_both_workers(
    celery_airflow: CeleryStack, tree: Tree, bucket: str, s3_client: Any
) -> None:
    live = celery_airflow.live
    started = time.monotonic()
    run_id = live.trigger_run(conf_for(tree, bucket, "spread/"))
    run = live.wait_for_run(run_id, timeout=RUN_TIMEOUT)
    took = time.monotonic() - started
    tis = live.task_instances(run_id)
    assert run["state"] == "success", f"run {run_id}: {live.task_states(run_id)}"

    puts = puts_of(tis)
    assert [ti["map_index"] for ti in puts] == list(range(BATCHES))
    assert {ti["state"] for ti in tis} == {"success"}
    # The task-instance hostname is the worker's name (``[core] hostname_callable``).
    by_worker = {name: [ti["map_index"] for ti in puts if ti["hostname"] == name] for name in WORKERS}
    print(f"\n{len(tree.sizes):,} files through Celery in {took:.1f}s; puts per worker: {by_worker}")
    assert {ti["hostname"] for ti in tis} <= WORKERS
    assert all(by_worker.values()), f"a worker ran no put: {by_worker}"

    check_bucket(s3_client, bucket, "spread/", tree)
    summary = live.xcom(run_id, REDUCE)
    assert (summary["files_put"], summary["bytes_put"]) == (len(tree.sizes), tree.bytes)
    assert (summary["files_skipped"], summary["files_failed"], summary["failures"]) == (0, 0, [])
    assert (summary["batches"], summary["batches_missing"]) == (BATCHES, 0)
    assert summary["files_planned"] == len(tree.sizes)
    assert summary["put_reasons"] == {"new": len(tree.sizes)}


def wait_for_a_busy_worker(stack: CeleryStack, run_id: str, timeout: float = 120.0) -> tuple[str, list[int]]:
    """A worker running puts in all its slots, and their map indexes.

    Not as soon as one put runs: a task the worker has taken from Redis but not yet started
    would stay queued until the broker's visibility timeout (24 h) gives its message back.
    With every slot busy the worker holds no other message (prefetch is one per slot).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running: dict[str, list[int]] = {}
        for ti in puts_of(stack.live.task_instances(run_id)):
            if ti["state"] == "running" and ti["hostname"] in WORKERS:
                running.setdefault(ti["hostname"], []).append(ti["map_index"])
        for worker, indexes in sorted(running.items()):
            if len(indexes) == stack.concurrency:
                return worker, indexes
        stack.live.check_alive()
        time.sleep(0.2)
    raise AssertionError(f"no worker ran {stack.concurrency} puts at once within {timeout}s")


def test_a_worker_killed_mid_batch_is_survived(
    celery_airflow: CeleryStack, tree: Tree, bucket: str, s3_client: Any
) -> None:
    stack, live = celery_airflow, celery_airflow.live
    started = time.monotonic()
    run_id = live.trigger_run(conf_for(tree, bucket, "killed/"))

    worker, busy = wait_for_a_busy_worker(stack, run_id)
    # The whole tree: the worker, its pool processes, and their task processes.
    killed = stack.kill_worker(worker)
    lost = [
        ti["map_index"]
        for ti in puts_of(live.task_instances(run_id))
        if ti["state"] == "running" and ti["hostname"] == worker
    ]
    print(f"\nkilled {worker} ({len(killed)} processes) while it ran batches {lost}")
    assert lost and set(lost) <= set(busy), f"the batches {busy} finished before the kill"
    time.sleep(2)
    stack.start_worker(worker)

    run = live.wait_for_run(run_id, timeout=RUN_TIMEOUT)
    took = time.monotonic() - started
    tis = live.task_instances(run_id)
    assert run["state"] == "success", f"run {run_id}: {live.task_states(run_id)}"
    assert {ti["state"] for ti in tis} == {"success"}

    # Each lost batch was failed by the heartbeat timeout, then retried to success.
    for index in lost:
        tries = live.task_tries(run_id, PUT, map_index=index)
        states = [(t["try_number"], t["state"], t["hostname"]) for t in tries]
        print(f"  batch {index}: {states}")
        assert len(tries) >= 2, states
        assert tries[0]["hostname"] == worker and tries[0]["state"] in ("failed", "up_for_retry"), states
        assert tries[-1]["state"] == "success", states
    print(f"  run took {took:.1f}s")

    check_bucket(s3_client, bucket, "killed/", tree)
    uploads = s3_client.list_multipart_uploads(Bucket=bucket, Prefix="killed/")
    assert uploads.get("Uploads", []) == [], "a multipart upload was left open"

    # A retried batch skips what its lost try had put (update mode): nothing twice, nothing lost.
    summary = live.xcom(run_id, REDUCE)
    assert summary["files_put"] + summary["files_skipped"] == len(tree.sizes)
    assert set(summary["skipped"]) <= {"unchanged"}
    assert (summary["files_failed"], summary["failures"]) == (0, [])
    assert (summary["batches"], summary["batches_missing"]) == (BATCHES, 0)
    assert summary["files_planned"] == len(tree.sizes)


def test_no_secret_in_the_logs(celery_airflow: CeleryStack) -> None:
    # After both runs: every component's log and every task log of this deployment.
    stack = celery_airflow
    secrets = {
        "Postgres password": stack.postgres.password,
        "Redis password": stack.redis.password,
        "S3 secret key": json.loads(stack.env["AIRFLOW_CONN_AWS_DEFAULT"])["password"],
        "Airflow password": stack.live.password,
    }
    logs = [p for p in stack.home.rglob("*.log") if p.is_file()]
    assert len(logs) > 10, logs  # the components, the workers and the task logs
    for path in logs:
        text = path.read_text(errors="replace")
        for what, secret in secrets.items():
            assert secret not in text, f"{what} in {path}"

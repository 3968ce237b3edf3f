"""``make demo``: a real upload through Airflow into an embedded S3 server, then the summary.

1. start SeaweedFS on 127.0.0.1 with generated credentials and a bucket;
2. generate a sample tree (many small files in nested folders, one multipart-sized file);
3. set up an Airflow home in ``.demo/airflow`` (SQLite) with the AWS connection pointing at it;
4. run the ``s3pput_upload`` example DAG end to end (``airflow dags test`` with run conf);
5. print the reduce task's summary and check what landed in the bucket.
"""

from __future__ import annotations

import random
import shutil
import sys
import time
from pathlib import Path

from airflow_s3pput.stats import Stats
from airflow_s3pput.testing.local_airflow import airflow_env, dags_test, migrate, read_xcoms, task_states
from airflow_s3pput.testing.local_s3 import LocalS3Server

BUCKET = "s3pput-demo"
DAG_ID = "s3pput_upload"


def make_sample_tree(root: Path, files: int = 2000, seed: int = 7) -> tuple[int, int]:
    """Nested folders of 1-8 KiB files plus one 20 MiB file; returns (files, bytes)."""
    rng = random.Random(seed)
    total = 0
    for i in range(files):
        path = root / f"part-{i % 10:02d}" / f"day-{i % 7}" / f"record-{i:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = rng.randbytes(rng.randint(1024, 8192))
        path.write_bytes(body)
        total += len(body)
    big = root / "archive" / "big.bin"
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(rng.randbytes(20 * 1024 * 1024))
    return files + 1, total + big.stat().st_size


def main() -> int:
    work = Path.cwd() / ".demo"
    shutil.rmtree(work, ignore_errors=True)
    source, home = work / "source", work / "airflow"
    source.mkdir(parents=True)
    home.mkdir()
    log = work / "airflow.log"
    files, size = make_sample_tree(source)
    print(f"sample tree: {files:,} files, {size / 1048576:.1f} MiB in {source}")
    with LocalS3Server(bucket=BUCKET) as s3:
        print(f"local S3 (SeaweedFS): {s3.endpoint_url}, bucket {BUCKET}")
        env = airflow_env(home, s3)
        started = time.monotonic()
        print("preparing the Airflow database (SQLite) ...")
        migrate(env, log)
        conf = {"source": str(source), "bucket": BUCKET, "prefix": "demo", "batch_size": 500}
        print(f"running DAG {DAG_ID} through Airflow with conf {conf} ...")
        code = dags_test(env, DAG_ID, conf, log)
        summary = read_xcoms(home, DAG_ID, "upload.reduce")
        states = task_states(home, DAG_ID)
        puts = sorted(i for (task, i), state in states.items() if task == "upload.put" and state == "success")
        landed = sum(
            len(page.get("Contents", []))
            for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="demo/")
        )
    print(f"Airflow run finished in {time.monotonic() - started:.1f}s (exit {code}); log: {log}")
    print(f"mapped put tasks succeeded: {len(puts)}")
    if not summary:
        print("no summary: the run failed before its reduce task; see the log", file=sys.stderr)
        return 1
    result = summary[0]
    print("\n" + Stats.from_dict(result).table())
    print(f"batches missing {result['batches_missing']} of {result['batches']}")
    print(f"objects in s3://{BUCKET}/demo/: {landed:,} of {files:,}")
    return 0 if code == 0 and landed == files and result["files_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""``make demo-celery``: the demo's upload on Airflow's distributed set-up, natively (no Docker).

1. start SeaweedFS on 127.0.0.1 with generated credentials and a bucket;
2. generate the demo's sample tree (``demo.make_sample_tree``) in ``.demo/celery/source``;
3. start PostgreSQL and Redis on free loopback ports (Debian's packages, installed by
   ``scripts/install-services.sh``), migrate Airflow's database, start the api-server,
   scheduler, dag-processor, triggerer and two Celery workers (``celery_stack``);
4. trigger the ``s3pput_upload`` example DAG through the REST API, as the UI's form does, with
   batches small enough that the mapped put tasks spread over both workers;
5. print which worker ran which batch, the reduce task's summary, and what landed in the bucket.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from airflow_s3pput.stats import Stats
from airflow_s3pput.testing.celery_stack import ServiceUnavailable, celery_stack
from airflow_s3pput.testing.demo import make_sample_tree
from airflow_s3pput.testing.local_s3 import LocalS3Server

BUCKET = "s3pput-demo"
PREFIX = "demo-celery"
#: files per mapped put: the sample tree's 2,001 files make 6 batches, over two workers
BATCH_SIZE = 400


def main() -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # progress as it happens, also through a pipe
    work = Path.cwd() / ".demo" / "celery"
    shutil.rmtree(work, ignore_errors=True)
    source, home = work / "source", work / "airflow"
    source.mkdir(parents=True)
    files, size = make_sample_tree(source)
    print(f"sample tree: {files:,} files, {size / 1048576:.1f} MiB in {source}")
    started = time.monotonic()
    try:
        with LocalS3Server(bucket=BUCKET) as s3:
            print(f"local S3 (SeaweedFS): {s3.endpoint_url}, bucket {BUCKET}")
            print("starting Postgres, Redis, Airflow (CeleryExecutor) and two Celery workers ...")
            with celery_stack(s3, home) as stack:
                live = stack.live
                print(
                    f"Airflow ready at {live.base_url} in {time.monotonic() - started:.1f}s "
                    f"(Postgres :{stack.postgres.port}, Redis :{stack.redis.port}; logs in {home})"
                )
                conf = {"source": str(source), "bucket": BUCKET, "prefix": PREFIX, "batch_size": BATCH_SIZE}
                print(f"triggering {live.dag_id} through the REST API with conf {conf} ...")
                triggered = time.monotonic()
                run_id = live.trigger_run(conf)
                run = live.wait_for_run(run_id, timeout=600)
                print(f"DAG run {run['state']} in {time.monotonic() - triggered:.1f}s")
                tis = live.task_instances(run_id)
                puts = sorted(
                    (ti for ti in tis if ti["task_id"] == "upload.put"), key=lambda t: t["map_index"]
                )
                for ti in puts:
                    print(
                        f"  put [{ti['map_index']}] {ti['state']:<8} on {ti['hostname'] or '-':<9} "
                        f"{ti['rendered_map_index']}"
                    )
                per_worker = Counter(ti["hostname"] for ti in puts if ti["state"] == "success")
                print("put tasks per worker: " + ", ".join(f"{w} {n}" for w, n in sorted(per_worker.items())))
                summary = live.xcom(run_id, "upload.reduce") if run["state"] == "success" else None
                landed = sum(
                    len(page.get("Contents", []))
                    for page in s3.client()
                    .get_paginator("list_objects_v2")
                    .paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/")
                )
    except ServiceUnavailable as exc:
        print(f"demo-celery: {exc}", file=sys.stderr)
        return 1
    except (RuntimeError, AssertionError) as exc:  # a component failed; the message names its log
        print(f"demo-celery: {exc}", file=sys.stderr)
        return 1
    if not summary:
        print(f"no summary: the run did not succeed; see the logs in {home}", file=sys.stderr)
        return 1
    print("\n" + Stats.from_dict(summary).table())
    print(f"batches missing {summary['batches_missing']} of {summary['batches']}")
    print(f"objects in s3://{BUCKET}/{PREFIX}/: {landed:,} of {files:,}")
    return 0 if landed == files and summary["files_failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

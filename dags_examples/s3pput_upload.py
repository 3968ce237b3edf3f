"""Upload a directory to S3 from the Airflow UI: trigger this DAG and fill in the form.

The same fields arrive as run ``conf`` from ``airflow dags trigger -c`` or the REST API.

Each task is retried twice, 30 s apart: a worker lost mid-batch (its task is failed after
``[scheduler] task_instance_heartbeat_timeout``, 300 s by default) then costs minutes, not the
run; the retry skips what already landed. Retries are fixed when a run is created, so the form
cannot change them: change ``RETRIES`` here. Failures no retry changes fail at once.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param

from airflow_s3pput.provider import s3pput_task_group

#: retries of each task (plan, every put, reduce), and the pause before one
RETRIES = 2
RETRY_DELAY = timedelta(seconds=30)

# [START s3pput_upload]
with DAG(
    dag_id="s3pput_upload",
    schedule=None,
    catchup=False,
    render_template_as_native_obj=True,  # keep ints, bools and lists native
    tags=["s3pput", "example"],
    doc_md=__doc__,
    params={
        "source": Param(
            "/data/outgoing",
            type="string",
            minLength=1,
            title="Source",
            description="File or directory to upload; must be readable on every worker (shared volume).",
        ),
        "bucket": Param(
            "my-bucket", type="string", minLength=3, title="Bucket", description="Destination bucket."
        ),
        "prefix": Param(
            "",
            type=["null", "string"],
            title="Prefix",
            description="Keys are PREFIX/relative/path; leave empty for keys at the bucket's root.",
        ),
        "put_mode": Param(
            "update",
            type="string",
            enum=["add", "stupid", "update"],
            title="Put mode",
            description="add: only missing keys; stupid: always put; update: missing or changed (MD5).",
        ),
        "dry_run": Param(
            False, type="boolean", title="Dry run", description="Plan and compare, upload nothing."
        ),
        "limit": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            title="Limit",
            description="Consider only the first N files.",
        ),
        "gzip": Param(
            False, type="boolean", title="Gzip", description="Gzip text-like files (Content-Encoding)."
        ),
        "content_type": Param(
            None,
            type=["null", "string"],
            title="Content type",
            description="Override the guessed Content-Type.",
        ),
        "headers": Param(
            [],
            type="array",
            items={"type": "string"},
            title="Headers",
            description="NAME:VALUE per line, e.g. Cache-Control:max-age=3600 or x-amz-meta-owner:data.",
        ),
        "grant": Param(
            None,
            type=["null", "string"],
            enum=[
                None,
                "private",
                "public-read",
                "public-read-write",
                "authenticated-read",
                "bucket-owner-read",
                "bucket-owner-full-control",
            ],
            values_display={"null": "(none: the bucket's default)"},
            title="Canned ACL",
            description="Optional canned ACL for every object.",
        ),
        "delete": Param(
            False,
            type="boolean",
            title="Delete",
            description=(
                "Delete objects under the prefix that SOURCE no longer has: each batch within its own "
                "key range, once its own uploads succeeded."
            ),
        ),
        "batch_size": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Batch size",
            description=(
                "Files per mapped put task. Empty: as many batches as the workers can run at once "
                "(half the cores under the LocalExecutor, [core] parallelism elsewhere)."
            ),
        ),
        "aws_conn_id": Param(
            "aws_default",
            type="string",
            minLength=1,
            title="AWS connection",
            description="Airflow connection id for S3.",
        ),
    },
) as dag:
    s3pput_task_group(
        group_id="upload",
        source="{{ params.source }}",
        bucket="{{ params.bucket }}",
        prefix="{{ params.prefix }}",
        put_mode="{{ params.put_mode }}",
        dry_run="{{ params.dry_run }}",
        limit="{{ params.limit }}",
        gzip="{{ params.gzip }}",
        content_type="{{ params.content_type }}",
        headers="{{ params.headers }}",
        grant="{{ params.grant }}",
        delete="{{ params.delete }}",
        batch_size="{{ params.batch_size }}",
        aws_conn_id="{{ params.aws_conn_id }}",
        retries=RETRIES,
        retry_delay=RETRY_DELAY,
    )
# [END s3pput_upload]

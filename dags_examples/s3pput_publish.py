"""Publish a directory to S3 and announce it: the producer of the asset ``s3pput_published``.

The upload's reduce task emits one event for ``PUBLISHED`` when every file landed, and none for
a dry run or a run with failures; the event's ``extra`` holds the summary (files, bytes, bucket,
prefix). ``s3pput_on_publish`` is scheduled on the asset. The form chooses the bucket and the
prefix, so ``PUBLISHED`` names the publication, not a place; the place is announced through the
alias ``LANDED``, as the asset ``s3://BUCKET/PREFIX`` of the run's own bucket and prefix.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Asset, AssetAlias, Param

from airflow_s3pput.provider import s3pput_task_group

#: what consumers schedule on: "a publication happened"; the event's extra says where it went
PUBLISHED = Asset(name="s3pput_published")
#: the run's target as an asset, s3://BUCKET/PREFIX as the form said (see the reduce operator)
LANDED = AssetAlias(name="s3pput_published_to")

# [START s3pput_publish]
with DAG(
    dag_id="s3pput_publish",
    schedule=None,
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "source": Param("/data/outgoing", type="string", minLength=1, title="Source"),
        "bucket": Param("my-bucket", type="string", minLength=3, title="Bucket"),
        "prefix": Param("published", type="string", title="Prefix"),
        "dry_run": Param(False, type="boolean", title="Dry run"),
    },
    tags=["s3pput", "example"],
    doc_md=__doc__,
) as dag:
    s3pput_task_group(
        group_id="upload",
        source="{{ params.source }}",
        bucket="{{ params.bucket }}",
        prefix="{{ params.prefix }}",
        dry_run="{{ params.dry_run }}",
        outlets=[PUBLISHED, LANDED],
        retries=2,
        retry_delay=timedelta(seconds=30),
    )
# [END s3pput_publish]

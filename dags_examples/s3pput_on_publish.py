"""Runs when ``s3pput_publish`` published: the consumer of the asset ``s3pput_published``.

Each asset event carries the upload's summary in its ``extra``; this DAG reads where the files
went and how many there were, as a downstream job (an index, a notification) would.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import DAG, Asset, task

PUBLISHED = Asset(name="s3pput_published")

log = logging.getLogger(__name__)

# [START s3pput_on_publish]
with DAG(
    dag_id="s3pput_on_publish",
    schedule=[PUBLISHED],
    catchup=False,
    tags=["s3pput", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def announce(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """One line per upload that triggered this run; returns their summaries."""
        published = [dict(event.extra) for event in triggering_asset_events[PUBLISHED]]
        for extra in published:
            log.info(
                "published %s files (%s bytes) to s3://%s/%s",
                extra["files_put"], extra["bytes_put"], extra["bucket"], extra["prefix"],
            )  # fmt: skip
        return published

    announce()
# [END s3pput_on_publish]

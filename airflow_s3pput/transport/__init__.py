"""The transport interface: every S3 call of a run goes through one ``Transport``.

``open_transport(options)`` is the only place that decides which library carries which call
(see ``selection``); the adapters (``boto3_transport``, ``crt_transport``) each translate their
library's errors into ``S3Error`` once.
"""

from airflow_s3pput.transport.credentials import environment_endpoint
from airflow_s3pput.transport.interface import (
    ListedObject,
    Lister,
    ListPage,
    ObjectParams,
    OpenUpload,
    PartBody,
    SentPart,
    Stored,
    Transport,
    UploadedPart,
)
from airflow_s3pput.transport.retry_policy import LATER_CODES, RetryPolicy, is_transient
from airflow_s3pput.transport.selection import default_concurrency, open_transport, resolve_transport

__all__ = [
    "LATER_CODES",
    "ListPage",
    "ListedObject",
    "Lister",
    "ObjectParams",
    "OpenUpload",
    "PartBody",
    "RetryPolicy",
    "SentPart",
    "Stored",
    "Transport",
    "UploadedPart",
    "default_concurrency",
    "environment_endpoint",
    "is_transient",
    "open_transport",
    "resolve_transport",
]

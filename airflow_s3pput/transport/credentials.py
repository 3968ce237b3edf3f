"""What a run can take from the environment without botocore: plain keys, the endpoint."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from airflow_s3pput.options import ConnectionSettings


class PlainCredentials(NamedTuple):
    access_key: str
    secret_key: str
    session_token: str | None
    region: str


def plain_credentials(
    settings: ConnectionSettings, environ: Mapping[str, str] = os.environ
) -> PlainCredentials | None:
    """The keys and region a boto3 session would pick, when they are plain values that need no
    botocore (slow to load) to resolve: keys given, or in ``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY`` (botocore's first choice), and a region given, or in
    ``AWS_DEFAULT_REGION``, or no AWS config file that could name one. ``None`` when a profile,
    an AWS config file or expiring credentials are in play: only boto3 resolves those."""
    if settings.session_factory is not None:
        return None  # credentials that refresh: a boto3 session signs
    keys = _plain_keys(settings, environ)
    if keys is None:
        return None
    region = _plain_region(settings, environ)
    return PlainCredentials(*keys, region) if region else None


def _plain_keys(
    settings: ConnectionSettings, environ: Mapping[str, str]
) -> tuple[str, str, str | None] | None:
    if settings.access_key and settings.secret_key:
        return settings.access_key, settings.secret_key, settings.session_token or None
    if settings.profile or environ.get("AWS_CREDENTIAL_EXPIRATION"):
        return None  # an explicit profile outranks the environment's keys; expiring keys refresh
    access_key = environ.get("AWS_ACCESS_KEY_ID", "")
    secret_key = environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not (access_key and secret_key):
        return None
    token = environ.get("AWS_SECURITY_TOKEN", environ.get("AWS_SESSION_TOKEN"))  # botocore's order
    return access_key, secret_key, token or None


def _plain_region(settings: ConnectionSettings, environ: Mapping[str, str]) -> str | None:
    region = settings.region or environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    profile = settings.profile or environ.get("AWS_DEFAULT_PROFILE") or environ.get("AWS_PROFILE")
    config_file = os.path.expanduser(environ.get("AWS_CONFIG_FILE", "~/.aws/config"))
    if profile or os.path.exists(config_file):
        return None  # the region is in a profile
    return "us-east-1"  # what botocore signs with when nothing names a region


def environment_endpoint(environ: Mapping[str, str] = os.environ) -> str | None:
    """The S3 endpoint that botocore takes from the environment when none is given
    (``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL``), so that every call of a run goes where
    the boto3 ones would."""
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    return environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or None

"""Build boto3 S3 clients from ``ConnectionSettings``: one per process, shared by its threads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from airflow_s3pput import listing_parser
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
    botocore (~0.2 s to load) to resolve: keys given, or in ``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY`` (botocore's first choice), and a region given, or in
    ``AWS_DEFAULT_REGION``, or no AWS config file that could name one.

    ``None`` when a profile, an AWS config file or expiring credentials are in play: only a
    boto3 session resolves those as the user expects.
    """
    profile = settings.profile or environ.get("AWS_DEFAULT_PROFILE") or environ.get("AWS_PROFILE")
    if settings.access_key and settings.secret_key:
        access_key, secret_key, token = settings.access_key, settings.secret_key, settings.session_token
    elif settings.profile or environ.get("AWS_CREDENTIAL_EXPIRATION"):
        return None  # an explicit profile outranks the environment's keys; expiring keys refresh
    else:
        access_key = environ.get("AWS_ACCESS_KEY_ID", "")
        secret_key = environ.get("AWS_SECRET_ACCESS_KEY", "")
        token = next(
            (environ[name] for name in ("AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN") if name in environ), None
        )
        if not (access_key and secret_key):
            return None
    region = settings.region or environ.get("AWS_DEFAULT_REGION")
    if not region:
        config_file = os.path.expanduser(environ.get("AWS_CONFIG_FILE", "~/.aws/config"))
        if profile or os.path.exists(config_file):
            return None  # the region is in a profile
        region = "us-east-1"  # what botocore signs with when nothing names a region
    return PlainCredentials(access_key, secret_key, token or None, region)


def make_session(settings: ConnectionSettings) -> Any:
    """A boto3 session: explicit keys when given, else the standard AWS credential chain."""
    import boto3

    return boto3.session.Session(
        profile_name=settings.profile,
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        aws_session_token=settings.session_token,
        region_name=settings.region,
    )


def make_client(settings: ConnectionSettings, pool_size: int = 10, session: Any = None) -> Any:
    """A client tuned for s3pput; pass the ``session`` of an earlier client to share its loaded
    service model (a new session costs ~60 ms of CPU, a client from a used one ~3 ms)."""
    from botocore.config import Config

    if session is None:
        session = make_session(settings)
    # We never read LastModified: leave timestamps as strings, as aws-cli does (dateutil parsing
    # is a tenth of a listing's CPU).
    session._session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=lambda value: value
    )
    style = settings.addressing_style
    if style == "auto" and settings.endpoint_url:
        style = "path"  # S3-compatible servers rarely resolve bucket subdomains
    config = Config(
        max_pool_connections=max(pool_size, 10),
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        # We send our own Content-MD5, which every S3-compatible server verifies; the default
        # CRC32 on every request costs CPU and breaks some servers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        parameter_validation=False,
        # Every body we send carries a (signed) Content-MD5, so a SHA-256 of it in the signature
        # adds no protection; botocore computes one over plain HTTP unless told not to, which is
        # ~0.3 s of CPU per 512 MiB (the CRT data plane never does).
        s3={"addressing_style": style, "payload_signing_enabled": False},  # type: ignore[arg-type]
        tcp_keepalive=True,
    )
    client = session.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        use_ssl=settings.secure,
        verify=settings.verify,
        config=config,
    )
    listing_parser.install(client)
    return client

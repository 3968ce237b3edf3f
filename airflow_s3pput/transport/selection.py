"""Which library carries which S3 call: decided here, once, for every run and worker process.

=========================  ========================================  ======================  ============
transport (after ``auto``)  endpoint / credentials                    every call of the run   bucket check
=========================  ========================================  ======================  ============
crt                        plain HTTP, plain keys                    CRT                     CRT
crt                        plain HTTP, keys a boto3 session resolves  CRT, signed with the    CRT
                                                                     session's credentials
crt                        TLS                                       CRT, keys as above      boto3
boto3                      any                                       boto3                   boto3
=========================  ========================================  ======================  ============

``auto`` is ``crt`` when awscrt (0.38.1 or newer) is installed and the connection has no
client option the CRT cannot honour (a proxy in an Airflow connection's ``config_kwargs``: see
``client_config``); else ``boto3``, with one warning line. Over TLS the bucket check goes
through boto3: a certificate the CRT does not trust fails its handshake only after s2n's 10-30 s
"blinding" delay, per attempt, where boto3 reports it at once, before any PUT or CRT listing.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import re

from airflow_s3pput.errors import UsageError
from airflow_s3pput.options import ConnectionSettings, UploadOptions
from airflow_s3pput.transport.client_config import crt_cannot_honour
from airflow_s3pput.transport.credentials import plain_credentials
from airflow_s3pput.transport.interface import Transport

#: the oldest awscrt the CRT transport works with: ``S3RetryConfig.retry_mode`` (0.38.1) turns
#: the CRT's own retries off. botocore's ``crt`` extra pins an older one (``boto3[crt]``).
CRT_FLOOR = (0, 38, 1)
CRT_NEED = ".".join(map(str, CRT_FLOOR))


@functools.cache
def _old_awscrt() -> str | None:
    """The installed awscrt's version when it is older than ``CRT_FLOOR``, else None."""
    found = _installed_awscrt()
    if found is None:  # importable without metadata (a source checkout): trust it
        return None
    numbers = tuple(int(part) for part in re.findall(r"\d+", found)[:3])
    return found if numbers < CRT_FLOOR else None


def _installed_awscrt() -> str | None:
    spec = importlib.util.find_spec("awscrt")
    if spec is not None and spec.origin:
        # A wheel's metadata directory sits beside its package and is named after its version
        # (the binary distribution format): read there, a run's start does not import
        # importlib.metadata and the email parser it brings.
        site = os.path.dirname(os.path.dirname(spec.origin))
        with os.scandir(site) as entries:
            for entry in entries:
                if entry.name.startswith("awscrt-") and entry.name.endswith(".dist-info"):
                    return entry.name[len("awscrt-") : -len(".dist-info")]
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("awscrt")
    except PackageNotFoundError:
        return None


def crt_available() -> bool:
    # Found, not imported: a run that puts nothing never pays for the import.
    return importlib.util.find_spec("awscrt") is not None and _old_awscrt() is None


@functools.cache  # each warning once per process, however many times the transport is resolved
def _warn(message: str) -> None:
    import multiprocessing

    if multiprocessing.parent_process() is None:  # the run's own process; its workers stay quiet
        logging.getLogger(__name__).warning("s3pput: warning: %s: using boto3", message)


def resolve_transport(transport: str, connection: ConnectionSettings | None = None) -> str:
    """``auto`` is ``crt`` when the CRT can carry the run (see above), else ``boto3`` with one
    warning line when awscrt is too old or the ``connection`` has options it cannot honour:
    rather than failing every PUT. ``crt`` that cannot be is a usage error."""
    if transport not in ("auto", "crt"):
        return transport
    if not crt_available():
        return _without_awscrt(transport)
    unsupported = crt_cannot_honour(connection.client_options) if connection is not None else ()
    if not unsupported:
        return "crt"
    names = ", ".join(unsupported)
    if transport == "crt":
        raise UsageError(
            f"{{setting}} crt cannot honour the connection's config_kwargs {names}: "
            "use transport auto or boto3",
            setting="transport",
        )
    _warn(f"the crt transport cannot honour the connection's config_kwargs {names}")
    return "boto3"


def _without_awscrt(transport: str) -> str:
    """``boto3`` for ``auto`` when awscrt is missing (quietly) or too old (with a warning);
    a usage error for ``crt``."""
    old = _old_awscrt() if importlib.util.find_spec("awscrt") is not None else None
    if transport == "crt":
        found = f"found {old}" if old else "not installed"
        raise UsageError(f"{{setting}} crt needs awscrt>={CRT_NEED} ({found})", setting="transport")
    if old:
        _warn(f"awscrt {old} is older than {CRT_NEED}, which the crt transport needs")
    return "boto3"


def default_concurrency(transport: str, connection: ConnectionSettings | None = None) -> tuple[int, int]:
    """(processes, threads) that suit the transport.

    The CRT signs and sends in C, so one process keeps up with the server; boto3 spends several
    times the CPU per request in Python and needs a process per core. Each boto3 thread holds one
    request, backoff sleeps included: 64 a process keep a far bucket busy and bound how long a
    dead server's run takes (BENCHMARKS.md).
    """
    if resolve_transport(transport, connection) == "crt":
        return 1, 64
    return max(1, min(os.cpu_count() or 1, 8)), 64


def open_transport(options: UploadOptions) -> Transport:
    """The transport of one run or worker process, per the table above. Raises ``S3Error`` for
    credentials or a profile that cannot be resolved."""
    settings = options.connection
    # Each transport's module is imported only when it is chosen.
    if resolve_transport(options.transport, settings) == "boto3":
        from airflow_s3pput.transport.boto3_transport import Boto3Transport

        return Boto3Transport.open(settings, options.bucket, options.threads)
    from airflow_s3pput.transport.crt_transport import CrtTransport, connections_for

    connections = connections_for(options.threads)
    keys = plain_credentials(settings)
    if not settings.uses_tls and keys is not None:
        return CrtTransport(settings, options.bucket, connections=connections)
    from airflow_s3pput.transport.boto3_transport import make_session, quick_boto3

    session = make_session(settings)
    check = functools.partial(quick_boto3, settings, options.bucket, session) if settings.uses_tls else None
    # Plain keys sign in C; only credentials a session must resolve are asked for per signing.
    signer = session if keys is None else None
    return CrtTransport(settings, options.bucket, signer, connections, check=check)

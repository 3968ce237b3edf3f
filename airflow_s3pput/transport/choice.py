"""Which library carries which S3 call: decided here, once, for every run and worker process.

=========================  =====================  ==============================  ============
transport (after ``auto``)  endpoint / credentials  single PUTs                     other calls
=========================  =====================  ==============================  ============
crt                        plain HTTP, plain keys  CRT                             CRT
crt                        TLS, or keys a boto3    CRT (signed with the session's  boto3
                           session must resolve    credentials)
boto3                      any                     boto3                           boto3
=========================  =====================  ==============================  ============

``auto`` is ``crt`` when awscrt (0.38.1 or newer) is installed and the connection has no
client option the CRT cannot honour (a proxy in an Airflow connection's ``config_kwargs``: see
``client_config``); else ``boto3``, with one warning line. Over TLS only the PUTs use the
CRT: a certificate the CRT does not trust fails its handshake only after s2n's 10-30 s
"blinding" delay, per attempt, where boto3 reports it at once in the bucket check, before any
PUT.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_s3pput.errors import UsageError
from airflow_s3pput.options import ConnectionSettings, UploadOptions
from airflow_s3pput.transport.client_config import crt_cannot_honour
from airflow_s3pput.transport.credentials import plain_credentials
from airflow_s3pput.transport.port import (
    ListPage,
    ObjectHead,
    ObjectParams,
    OpenUpload,
    PartBody,
    PutCallback,
    SentPart,
    Stored,
    Transport,
    UploadedPart,
)

if TYPE_CHECKING:
    from airflow_s3pput.transport.boto3_transport import Boto3Transport
    from airflow_s3pput.transport.crt_transport import CrtTransport


#: connections to the endpoint at most (s5cmd's default worker count)
MAX_CONNECTIONS = 256


#: the oldest awscrt the CRT transport works with: ``S3RetryConfig.retry_mode`` (0.38.1) turns
#: the CRT's own retries off. botocore's ``crt`` extra pins an older one (``boto3[crt]``).
CRT_FLOOR = (0, 38, 1)


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


@functools.cache  # once per process, however many times the transport is resolved
def _warn_old_awscrt(found: str) -> None:
    import multiprocessing

    if multiprocessing.parent_process() is None:  # the run's own process; its workers stay quiet
        logging.getLogger(__name__).warning(
            "s3pput: warning: awscrt %s is older than %s, which the crt transport needs: using boto3",
            found,
            CRT_NEED,
        )


CRT_NEED = ".".join(map(str, CRT_FLOOR))


@functools.cache  # once per process
def _warn_crt_cannot(names: str) -> None:
    import multiprocessing

    if multiprocessing.parent_process() is None:  # the run's own process; its workers stay quiet
        logging.getLogger(__name__).warning(
            "s3pput: warning: the crt transport cannot honour the connection's config_kwargs %s: using boto3",
            names,
        )


def resolve_transport(transport: str, connection: ConnectionSettings | None = None) -> str:
    """``auto`` picks the CRT when a recent enough ``awscrt`` is installed, boto3 otherwise: with
    one warning line when awscrt is there but too old, rather than failing every PUT. ``crt``
    without one is a usage error. Likewise when the ``connection`` has client options the CRT
    cannot honour (a proxy of an Airflow connection's ``config_kwargs``): ``auto`` takes boto3
    with one warning line, ``crt`` is refused; none is ignored."""
    if transport not in ("auto", "crt"):
        return transport
    if crt_available():
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
        _warn_crt_cannot(names)
        return "boto3"
    old = _old_awscrt() if importlib.util.find_spec("awscrt") is not None else None
    if transport == "crt":
        found = f"found {old}" if old else "not installed"
        raise UsageError(f"{{setting}} crt needs awscrt>={CRT_NEED} ({found})", setting="transport")
    if old:
        _warn_old_awscrt(old)
    return "boto3"


def default_concurrency(transport: str, connection: ConnectionSettings | None = None) -> tuple[int, int]:
    """(processes, threads) that suit the transport.

    The CRT signs and sends in C, so one process with many requests in flight keeps up with the
    server; boto3 spends several times the CPU per request in Python and needs a process per
    core. Each boto3 thread holds one request, backoff sleeps included: 64 a process keep a far
    bucket busy and bound how long a dead server's run takes (BENCHMARKS.md).
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
    # One connection for each request the engine keeps in flight (see engine.in_flight_limit).
    connections = min(MAX_CONNECTIONS, 4 * options.threads)
    if not settings.uses_tls and plain_credentials(settings) is not None:
        from airflow_s3pput.transport.crt_transport import CrtTransport

        return CrtTransport(settings, options.bucket, connections=connections)
    from airflow_s3pput.transport.boto3_transport import Boto3Transport, make_session

    session = make_session(settings)
    control = Boto3Transport.open(settings, options.bucket, options.threads, session)
    return CrtPuts(control, settings, session, connections)


class CrtPuts:
    """Single PUTs and parts through the CRT, every other call through a boto3 transport.

    The CRT client is started by the first PUT: a run that puts nothing never pays for it.
    """

    streams_parts = True

    def __init__(
        self, control: Boto3Transport, settings: ConnectionSettings, session: Any, connections: int
    ) -> None:
        self.control = control
        self.connections = connections
        self.bucket = control.bucket
        self.settings = settings
        self.session = session
        self._puts: CrtTransport | None = None
        self._puts_lock = threading.Lock()  # the first PUT may be a part, on a part worker

    def _crt(self) -> CrtTransport:
        with self._puts_lock:
            if self._puts is None:
                from airflow_s3pput.transport.crt_transport import CrtTransport

                self._puts = CrtTransport(self.settings, self.bucket, self.session, self.connections)
            return self._puts

    def head_object(self, key: str) -> ObjectHead | None:
        return self.control.head_object(key)

    def put_object(self, key: str, body: bytes, params: ObjectParams) -> Stored:
        return self._crt().put_object(key, body, params)

    def put_object_async(self, key: str, body: bytes, params: ObjectParams, callback: PutCallback) -> None:
        self._crt().put_object_async(key, body, params, callback)

    def quick(self) -> Transport:
        return self.control.quick()

    def head_bucket(self) -> float | None:
        return self.control.head_bucket()

    def list_page(
        self,
        prefix: str,
        *,
        delimiter: str = "",
        start_after: str = "",
        token: str | None = None,
        max_keys: int = 1000,
    ) -> ListPage:
        return self.control.list_page(
            prefix, delimiter=delimiter, start_after=start_after, token=token, max_keys=max_keys
        )

    def create_multipart(self, key: str, params: ObjectParams) -> str:
        return self.control.create_multipart(key, params)

    def upload_part(
        self, key: str, upload_id: str, number: int, body: PartBody, md5: bytes, crc64nvme: str = ""
    ) -> str:
        return self._crt().upload_part(key, upload_id, number, body, md5, crc64nvme)

    def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[SentPart], crc64nvme: str = ""
    ) -> Stored:
        return self.control.complete_multipart(key, upload_id, parts, crc64nvme)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self.control.abort_multipart(key, upload_id)

    def open_uploads(self, prefix: str) -> list[OpenUpload]:
        return self.control.open_uploads(prefix)

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        return self.control.list_parts(key, upload_id)

    def delete_objects(self, keys: Iterable[str]) -> dict[str, str]:
        return self.control.delete_objects(keys)

    def close(self) -> None:
        if self._puts is not None:
            self._puts.close()
        self.control.close()

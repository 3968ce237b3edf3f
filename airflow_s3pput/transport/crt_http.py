"""Signed S3 requests through AWS's C runtime (``awscrt.s3.S3Client``): the fast data plane.

boto3 signs, serialises and parses each request in Python, which caps what one process can
send; the CRT does it in C (BENCHMARKS.md). Single-part PUTs go through the CRT's own PutObject
request; any other request is sent as it is, so multipart uploads keep our Content-MD5 per part
(the CRT's own multipart path would silently drop it). A failed request is an ``S3Error``,
translated here once.

Build one sender per process, after any fork: a CRT client inherited across ``fork()`` hangs.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from airflow_s3pput.errors import S3Error
from airflow_s3pput.headers import HEADER_PARAMS, USER_METADATA_PREFIX
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.transport.credentials import plain_credentials
from airflow_s3pput.transport.retry_policy import RetryPolicy

#: PutObject parameter -> HTTP header: the inverse of the ``--header`` table, and the digests
PARAM_HEADERS = {param: name for name, param in HEADER_PARAMS.items()} | {
    "ContentMD5": "Content-MD5",
    "ChecksumCRC64NVME": "x-amz-checksum-crc64nvme",
    "ChecksumAlgorithm": "x-amz-checksum-algorithm",
    "ChecksumType": "x-amz-checksum-type",
}
#: error names of the CRT that mean the endpoint was never reached
_UNREACHABLE = ("AWS_IO_SOCKET", "AWS_IO_DNS", "AWS_ERROR_HTTP_CONNECTION")
#: the tokens of the CRT's retry token bucket (its default: 500, 5 a retry). That bucket is a
#: circuit breaker: under heavy throttling a few hundred PUTs in flight drain it, and then no
#: request is retried however many attempts it has left. Our attempts and the watchdog bound a
#: dead server instead.
RETRY_TOKENS = 100_000


class CrtResponse(NamedTuple):
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


#: what ``CrtSender.send`` calls at a request's end: its answer, or the ``S3Error`` it met
AnswerCallback = Callable[[CrtResponse | None, S3Error | None], None]


class ResponseCollector:
    """The headers and body of one CRT request's answer, as its callbacks deliver them."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []

    def on_headers(self, status_code: int, headers: list[tuple[str, str]], **kwargs: Any) -> None:
        self.headers.update((k.lower(), v) for k, v in headers)

    def on_body(self, chunk: bytes, **kwargs: Any) -> None:
        self.chunks.append(bytes(chunk))

    def response(self, status: int) -> CrtResponse:
        return CrtResponse(status, self.headers, b"".join(self.chunks))


def request_headers(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """PutObject keyword arguments as the HTTP headers they stand for."""
    headers: list[tuple[str, str]] = []
    for param, value in params.items():
        if param == "Metadata":
            headers += [(USER_METADATA_PREFIX + k, str(v)) for k, v in value.items()]
        else:
            headers.append((PARAM_HEADERS[param], _header_value(value)))
    return headers


def _header_value(value: object) -> str:
    if isinstance(value, datetime):
        import email.utils  # here: only an Expires header needs it

        return email.utils.format_datetime(value, usegmt=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def request_target(settings: ConnectionSettings, bucket: str, region: str) -> tuple[str, str]:
    """The ``Host`` of the bucket's requests and the path its keys go under, as botocore builds
    them: path style ``HOST/PATH/BUCKET/KEY``, virtual-host style ``BUCKET.HOST/PATH/KEY``, where
    ``PATH`` is the endpoint's own path (a gateway serving S3 under ``/s3-gw/``). ``auto`` is path
    style, on AWS too (the regional endpoint): it works for bucket names with dots under TLS."""
    host = urlsplit(settings.endpoint_url).netloc if settings.endpoint_url else f"s3.{region}.amazonaws.com"
    if settings.addressing_style == "virtual":
        return f"{bucket}.{host}", quote(settings.endpoint_path, safe="/%")
    return host, f"{quote(settings.endpoint_path, safe='/%')}/{quote(bucket, safe='')}"


def crt_retry_config(policy: RetryPolicy) -> Any:
    """``policy`` as the CRT's S3 client takes it (its backoff is exponential with full jitter,
    as ``RetryPolicy.delay``)."""
    from awscrt.s3 import S3RetryConfig, S3RetryMode

    if policy.attempts == 1:  # max_retries=0 would mean the CRT's default of 5
        return S3RetryConfig(retry_mode=S3RetryMode.NONE)
    return S3RetryConfig(
        max_retries=policy.attempts - 1,
        backoff_scale_factor_ms=round(policy.backoff_base * 1000),
        max_backoff_secs=max(1, round(policy.backoff_cap)),
        initial_bucket_capacity=RETRY_TOKENS,
    )


class CrtSender:
    """Signed requests to one bucket over one CRT S3 client. ``session``: the boto3 session of
    the run's control calls, so that credentials are resolved (and refreshed) once per process;
    without one, plain keys (given, or in the environment) are used as they are, without loading
    botocore. ``connections``: how many requests the CRT keeps on the wire at once."""

    def __init__(
        self, settings: ConnectionSettings, bucket: str, session: Any = None, connections: int = 25
    ) -> None:
        from awscrt.io import ClientBootstrap, DefaultHostResolver, EventLoopGroup
        from awscrt.s3 import S3Client, S3RequestTlsMode, create_default_s3_signing_config

        region, provider = _credentials(settings, session)
        self.host, self.path_prefix = request_target(settings, bucket, region)
        self.tls_context = _tls_context(settings)
        tls_options = self.tls_context.new_connection_options() if self.tls_context is not None else None
        event_loops = EventLoopGroup(0)
        self.bootstrap = ClientBootstrap(event_loops, DefaultHostResolver(event_loops))
        self.region = region
        self.credentials_provider = provider
        self.client = S3Client(
            bootstrap=self.bootstrap,
            region=region,
            tls_mode=S3RequestTlsMode.ENABLED if self.tls_context is not None else S3RequestTlsMode.DISABLED,
            tls_connection_options=tls_options,
            signing_config=create_default_s3_signing_config(region=region, credential_provider=provider),
            # Every body we hand over is below our multipart threshold: never let the CRT split
            # it, because its multipart path drops our Content-MD5.
            part_size=64 * 1024**2,
            multipart_upload_threshold=5 * 1024**3,
            # The CRT sizes its connection pool from this, 2.5 connections a Gbit/s: too few
            # connections cap the PUTs a second to a far bucket (s5cmd opens 256).
            throughput_target_gbps=max(10.0, connections / 2.5),
            retry_config=crt_retry_config(RetryPolicy(settings.max_attempts)),
            connect_timeout_ms=int(settings.connect_timeout * 1000),
        )
        # The CRT has no read timeout: a server that never answers would hold a PUT forever.
        # Give every attempt a connect and a read timeout's worth, then cancel the request.
        self.watchdog = _Watchdog(settings.max_attempts * (settings.connect_timeout + settings.read_timeout))

    def object_path(self, key: str, query: Mapping[str, str] | None = None) -> str:
        """The request path of ``key`` in the bucket (of the bucket itself for ``""``)."""
        path = f"{self.path_prefix}/{quote(key, safe='/~')}" if key else self.path_prefix or "/"
        return f"{path}?{_canonical_query(query)}" if query else path

    def unsigned_payload_signing(self) -> Any:
        """A SigV4 signing config for a request whose body is not hashed, dated now."""
        from awscrt.auth import AwsSignedBodyHeaderType, AwsSignedBodyValue, AwsSigningConfig

        return AwsSigningConfig(
            credentials_provider=self.credentials_provider,
            region=self.region,
            service="s3",
            use_double_uri_encode=False,  # S3's rules for the canonical request
            should_normalize_uri_path=False,
            signed_body_value=AwsSignedBodyValue.UNSIGNED_PAYLOAD,
            signed_body_header_type=AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
        )

    def request(
        self,
        method: str,
        key: str = "",
        *,
        query: Mapping[str, str] | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        operation: str = "",
        put_object: bool = False,
    ) -> Future[CrtResponse]:
        """``send`` with the answer, or its ``S3Error``, in a future."""
        answer: Future[CrtResponse] = Future()

        def settle(response: CrtResponse | None, error: S3Error | None) -> None:
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(response)  # type: ignore[arg-type]

        self.send(method, key, settle, query=query, headers=headers, body=body, operation=operation,
                  put_object=put_object)  # fmt: skip
        return answer

    def send(
        self,
        method: str,
        key: str,
        on_answer: AnswerCallback,
        *,
        query: Mapping[str, str] | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        operation: str = "",
        put_object: bool = False,
    ) -> None:
        """Start a signed request to the bucket (``key`` empty) or an object; ``on_answer(response,
        error)`` runs on a CRT thread at its end. ``put_object`` sends a single-part PutObject
        (the CRT's own request type for it); any other request is sent as it is, named by
        ``operation``, with its response body kept. A run of small files sends its PUTs here
        rather than through ``request``: a future's locks on each of thousands of PUTs cost enough
        client CPU to miss the small-file target (<= 1.0x s5cmd; BENCHMARKS.md)."""
        from awscrt.s3 import S3RequestType

        collector = ResponseCollector()
        watch = self.watchdog.watch()

        def on_done(error: BaseException | None = None, status_code: int | None = None,
                    error_headers: list[tuple[str, str]] | None = None, error_body: bytes | None = None,
                    **kwargs: Any) -> None:  # fmt: skip
            timed_out = self.watchdog.forget(watch)
            if error is None:
                on_answer(collector.response(status_code or 200), None)
                return
            if timed_out:
                failure = S3Error(S3Error.TIMEOUT, f"no answer in {self.watchdog.seconds:g} s")
            else:
                failure = _request_error(error, status_code, error_headers, error_body)
            on_answer(None, failure)

        try:
            started = self.client.make_request(
                type=S3RequestType.PUT_OBJECT if put_object else S3RequestType.DEFAULT,
                operation_name=None if put_object else operation or method,
                request=self._http_request(method, self.object_path(key, query), headers or [], body),
                on_headers=collector.on_headers,
                on_body=None if put_object else collector.on_body,
                on_done=on_done,
            )
        except Exception as exc:  # noqa: BLE001 - refused at submission: report it like any failure
            self.watchdog.forget(watch)
            on_answer(None, S3Error(type(exc).__name__, str(exc)))
            return
        self.watchdog.started(watch, started)

    def _http_request(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> Any:
        from awscrt.http import HttpHeaders, HttpRequest

        if body is None:
            return HttpRequest(method, path, HttpHeaders([("Host", self.host), *headers]))
        http_headers = HttpHeaders([("Host", self.host), *headers, ("Content-Length", str(len(body)))])
        return HttpRequest(method, path, http_headers, io.BytesIO(body))

    def close(self) -> None:
        self.watchdog.close()
        shutdown = self.client.shutdown_event
        del self.client
        shutdown.wait(10)


def _canonical_query(query: Mapping[str, str]) -> str:
    """A query string in the canonical form SigV4 signs (sorted, every value percent-encoded)."""
    return "&".join(
        f"{quote(name, safe='')}={quote(value, safe='-_.~')}" if value else quote(name, safe="")
        for name, value in sorted(query.items())
    )


def _credentials(settings: ConnectionSettings, session: Any) -> tuple[str, Any]:
    """The region and the CRT credentials provider that sign the requests: the boto3
    ``session``'s, else plain keys."""
    from awscrt.auth import AwsCredentialsProvider

    if session is not None:
        region, provider = _session_credentials(session)
        return settings.region or region, provider  # the run's (an operator's region_name) wins
    keys = plain_credentials(settings)
    if keys is None:
        raise S3Error(S3Error.NO_CREDENTIALS)
    return keys.region, AwsCredentialsProvider.new_static(
        keys.access_key, keys.secret_key, keys.session_token
    )


def _tls_context(settings: ConnectionSettings) -> Any:
    """The CRT's TLS context for the endpoint, trusting ``settings.verify``; None for plain HTTP."""
    from awscrt.io import ClientTlsContext, TlsContextOptions

    if not settings.uses_tls:
        return None
    tls = TlsContextOptions()
    if isinstance(settings.verify, str):
        tls.override_default_trust_store_from_path(ca_filepath=settings.verify)
    tls.verify_peer = settings.verify is not False
    return ClientTlsContext(tls)


def _session_credentials(session: Any) -> tuple[str, Any]:
    """The region and a CRT credentials provider that asks the boto3 ``session`` per signing,
    so that refreshable credentials (roles, SSO) stay fresh on long runs."""
    from awscrt.auth import AwsCredentials, AwsCredentialsProvider

    credentials = session.get_credentials()
    if credentials is None:
        raise S3Error(S3Error.NO_CREDENTIALS)

    def current_credentials() -> AwsCredentials:
        frozen = credentials.get_frozen_credentials()
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    return session.region_name or "us-east-1", AwsCredentialsProvider.new_delegate(current_credentials)


@dataclass(eq=False)  # each watch is itself, a key of the watchdog's ordered set
class _Watch:
    deadline: float
    request: Any = None
    timed_out: bool = False


class _Watchdog:
    """Cancels the CRT requests still running ``seconds`` after they were started.

    Every request gets the same allowance, so deadlines come in start order and one thread
    checks only the oldest ones.
    """

    TICK = 0.25  # seconds between checks: a cancel comes at most this late

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.watches: dict[_Watch, None] = {}  # in start order
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="s3pput-crt-watchdog", daemon=True)
        self.thread.start()

    def watch(self) -> _Watch:
        watch = _Watch(time.monotonic() + self.seconds)
        with self.lock:
            self.watches[watch] = None
        return watch

    def started(self, watch: _Watch, request: Any) -> None:
        with self.lock:
            if watch in self.watches:  # not finished already
                watch.request = request

    def forget(self, watch: _Watch) -> bool:
        """Stop watching; whether the watchdog cancelled the request."""
        with self.lock:
            self.watches.pop(watch, None)
            # The request's callbacks hold the watch: keeping the request here would make a
            # cycle that keeps the CRT client alive, and close() would wait for its shutdown.
            watch.request = None
            return watch.timed_out

    def _run(self) -> None:
        while not self.stopped.wait(self.TICK):
            for request in self._expire(time.monotonic()):
                request.cancel()

    def _expire(self, now: float) -> list[Any]:
        """Mark the requests past their deadline as timed out; returns them, to cancel."""
        expired = []
        with self.lock:
            for watch in self.watches:
                if watch.deadline > now:
                    break
                if watch.request is not None and not watch.timed_out:
                    watch.timed_out = True
                    expired.append(watch.request)
        return expired

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()


#: the CRT reports these answers by name only (no status) once its retries are spent
_STATUS_OF_ERROR = {"AWS_ERROR_S3_SLOW_DOWN": 503, "AWS_ERROR_S3_INTERNAL_ERROR": 500}


def _request_error(
    error: BaseException, status: int | None, headers: list[tuple[str, str]] | None, body: bytes | None
) -> S3Error:
    """The ``S3Error`` for a failed CRT request: the one place that reads the CRT's errors."""
    name = getattr(error, "name", "")
    if not name:  # raised by our own code in a CRT callback (the body stream): keep its words
        return S3Error(type(error).__name__, str(error))
    status = status or _STATUS_OF_ERROR.get(name)
    if not status:  # no answer: the CRT's name for the failure is all there is
        return S3Error(S3Error.UNREACHABLE, name) if name.startswith(_UNREACHABLE) else S3Error(name)
    region = {k.lower(): v for k, v in headers or ()}.get("x-amz-bucket-region")
    return answer_error(status, body or b"", region)


def answer_error(status: int, body: bytes, region: str | None = None) -> S3Error:
    """The ``S3Error`` for an error answer: the Code and Message of its error document, or
    its status when it has none."""

    def text(tag: bytes) -> str:
        start, end = b"<" + tag + b">", b"</" + tag + b">"
        return body.split(start, 1)[1].split(end, 1)[0].decode(errors="replace") if start in body else ""

    code = text(b"Code")
    return S3Error(code or str(status), text(b"Message") if code else "", status=status, region=region)

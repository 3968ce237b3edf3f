"""UploadPart over plain CRT HTTP connections, the body read from the file as the socket takes it.

The CRT's S3 client holds every body whole until its answer (to retry it), so each part on the
wire would cost its size in memory. Here a part is signed with ``UNSIGNED-PAYLOAD`` (its
Content-MD5 still guards the bytes) and streamed from the page cache. These connections have
no retries of their own: each part is sent under the transport's ``RetryPolicy``.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from airflow_s3pput.errors import FileChanged, S3Error
from airflow_s3pput.options import ConnectionSettings
from airflow_s3pput.transport.crt_http import CrtResponse, ResponseCollector, answer_error
from airflow_s3pput.transport.file_range import FileRange
from airflow_s3pput.transport.interface import PartBody
from airflow_s3pput.transport.retry_policy import RetryPolicy


class StreamedParts:
    """Sends UploadPart requests for one bucket over a pool of CRT HTTP connections."""

    def __init__(self, endpoint: str, bootstrap: Any, tls_context: Any, signing: Callable[[], Any],
                 settings: ConnectionSettings, retry: RetryPolicy) -> None:  # fmt: skip
        """``endpoint``: host[:port]; ``tls_context``: None for plain HTTP; ``signing`` gives a
        fresh ``AwsSigningConfig`` per request (it holds the date)."""
        from awscrt.io import SocketOptions

        parts = urlsplit("//" + endpoint)
        self.host_header = endpoint
        self.host = parts.hostname or endpoint
        self.port = parts.port or (443 if tls_context is not None else 80)
        self.bootstrap = bootstrap
        self.tls_options = None
        if tls_context is not None:
            self.tls_options = tls_context.new_connection_options()
            self.tls_options.set_server_name(self.host)
        self.signing = signing
        self.retry = retry
        self.connect_timeout = settings.connect_timeout
        self.attempt_timeout = settings.connect_timeout + settings.read_timeout
        self.socket_options = SocketOptions()
        self.socket_options.connect_timeout_ms = int(settings.connect_timeout * 1000)
        self.idle: list[Any] = []
        self.lock = threading.Lock()

    @functools.cached_property  # at the first part: urllib.request is slow to import
    def proxy_options(self) -> Any:
        # The CRT's S3 client takes its proxy from the environment (HTTP_PROXY, HTTPS_PROXY);
        # these connections are made here, so they must be told, or parts would bypass it.
        return environment_proxy(self.host, self.tls_options is not None)

    def upload_part(self, path: str, headers: list[tuple[str, str]], body: PartBody) -> CrtResponse:
        """PUT ``body`` to ``path`` (with its query) and return the answer; raises ``S3Error``."""
        return self.retry.call(
            lambda: self._send(path, headers, FileRange(body.fd, body.offset, body.length)), body.stop
        )

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for connection in idle:
            connection.close()

    def _send(self, path: str, headers: list[tuple[str, str]], body: FileRange) -> CrtResponse:
        from awscrt.auth import aws_sign_request
        from awscrt.exceptions import AwsCrtError
        from awscrt.http import HttpHeaders, HttpRequest

        request = HttpRequest(
            "PUT",
            path,
            HttpHeaders([("Host", self.host_header), ("Content-Length", str(len(body))), *headers]),
            body,
        )
        answer = ResponseCollector()
        connection = self._connection()
        try:
            aws_sign_request(request, self.signing()).result(self.attempt_timeout)
            stream = connection.request(request, answer.on_headers, answer.on_body)
            stream.activate()
            status = stream.completion_future.result(self.attempt_timeout)
        except FutureTimeout:
            connection.close()
            raise S3Error(S3Error.TIMEOUT, f"no answer in {self.attempt_timeout:g} s") from None
        except AwsCrtError as exc:  # a reset, a closed connection, a body read that failed
            connection.close()
            if os.fstat(body.fd).st_size < body.offset + body.length:
                raise FileChanged(f"file shrank while it was uploaded (part at byte {body.offset})") from None
            raise _unreachable(exc) from None
        response = answer.response(status)
        self._release(connection, response)
        if status >= 300:
            raise answer_error(status, response.body)
        return response

    def _release(self, connection: Any, response: CrtResponse) -> None:
        """Keep ``connection`` for the next part, unless the server or the CRT closed it."""
        if response.headers.get("connection", "").lower() == "close" or not connection.is_open():
            connection.close()
        else:
            with self.lock:
                self.idle.append(connection)

    def _connection(self) -> Any:
        from awscrt.exceptions import AwsCrtError
        from awscrt.http import HttpClientConnection

        with self.lock:
            while self.idle:
                connection = self.idle.pop()
                if connection.is_open():
                    return connection
        try:
            return HttpClientConnection.new(
                host_name=self.host,
                port=self.port,
                bootstrap=self.bootstrap,
                socket_options=self.socket_options,
                tls_connection_options=self.tls_options,
                proxy_options=self.proxy_options,
            ).result(self.connect_timeout + 1)
        except FutureTimeout:
            raise S3Error(S3Error.UNREACHABLE, f"no connection in {self.connect_timeout:g} s") from None
        except AwsCrtError as exc:  # refused, DNS, TLS handshake
            raise _unreachable(exc) from None


def _unreachable(exc: Exception) -> S3Error:
    """A CRT failure without an answer (refused, reset, DNS, TLS), named by the CRT."""
    return S3Error(S3Error.UNREACHABLE, getattr(exc, "name", "") or str(exc))


def environment_proxy(host: str, tls: bool) -> Any:
    """The CRT's ``HttpProxyOptions`` for ``host`` from ``HTTPS_PROXY`` (``tls``) or ``HTTP_PROXY``
    and ``NO_PROXY``, as urllib reads them; None when no proxy applies. A password in the proxy's
    URL becomes its Basic credentials, and is never put in a message."""
    from urllib.request import getproxies_environment, proxy_bypass

    url = getproxies_environment().get("https" if tls else "http")
    if not url or proxy_bypass(host):
        return None
    return _proxy_options(urlsplit(url if "://" in url else "http://" + url))


def _proxy_options(proxy: SplitResult) -> Any:
    from awscrt.http import HttpProxyAuthenticationType, HttpProxyOptions
    from awscrt.io import ClientTlsContext, TlsContextOptions

    host, https = proxy.hostname or "", proxy.scheme == "https"
    options = HttpProxyOptions(host, proxy.port or (443 if https else 80))
    if https:
        options.tls_connection_options = ClientTlsContext(TlsContextOptions()).new_connection_options()
        options.tls_connection_options.set_server_name(host)
    if proxy.username is not None:
        options.auth_type = HttpProxyAuthenticationType.Basic
        options.auth_username = unquote(proxy.username)
        options.auth_password = unquote(proxy.password or "")
    return options

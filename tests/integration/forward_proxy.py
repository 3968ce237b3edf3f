"""A loopback HTTP forward proxy for tests: it proves that a client's requests went through it.

A client configured with the proxy sends each request in absolute form (``PUT
http://s3.invalid:PORT/bucket/key HTTP/1.1``) to the proxy, which connects to the upstream that
``routes`` gives for that host and relays the bytes both ways (SeaweedFS, like any HTTP/1.1
server, accepts the absolute form). Give the client an endpoint whose host does not resolve
(``s3.invalid``): a request that bypassed the proxy cannot reach the server at all.

``auth=(user, password)`` asks for ``Proxy-Authorization: Basic``; a connection without it gets
``407``. ``seen`` holds ``(method, target)`` of the first request of each connection.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
from types import TracebackType
from urllib.parse import urlsplit


class ForwardProxy:
    def __init__(self, routes: dict[str, tuple[str, int]], auth: tuple[str, str] | None = None) -> None:
        self.routes = routes
        self.auth = auth
        self.seen: list[tuple[str, str]] = []
        self.refused = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.threads: list[threading.Thread] = []
        self.stopped = threading.Event()

    def url(self, *, password: str | None = None) -> str:
        if self.auth is None:
            return f"http://127.0.0.1:{self.port}"
        user, secret = self.auth
        return f"http://{user}:{password if password is not None else secret}@127.0.0.1:{self.port}"

    def __enter__(self) -> ForwardProxy:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self.threads.append(thread)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopped.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
            }
            if self.auth is not None:
                token = base64.b64encode(":".join(self.auth).encode()).decode()
                if headers.get("proxy-authorization") != f"Basic {token}":
                    self.refused += 1
                    client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n"
                                   b"Connection: close\r\n\r\n")  # fmt: skip
                    return
            self.seen.append((method, target))
            upstream_address = self.routes.get(urlsplit(target).netloc) if "://" in target else None
            if upstream_address is None:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            with socket.create_connection(upstream_address) as upstream:
                upstream.sendall(head)
                back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
                back.start()
                _pipe(client, upstream)
                back.join()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)

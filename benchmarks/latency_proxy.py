"""A loopback TCP proxy that holds every chunk N ms in each direction: a far S3 made of a near one.

This kernel has no ``sch_netem``, so distance is simulated in user space: every chunk read from
one side is written to the other ``delay_ms`` later, in order, whatever else is in flight (a
pipeline, not a stop-and-wait: the proxy adds latency, not a bandwidth limit). A new connection
also costs one round trip before its first byte reaches the server, as a TCP handshake would
(``handshake=True``; the client's ``connect()`` itself returns at once on loopback). Each
direction of a connection holds at most ``window`` bytes (8 MiB by default) before it stops
reading its source, like a TCP window: one connection then carries at most ``window / delay``.

The proxy also watches the HTTP/1.1 traffic it relays (message framing only: ``Content-Length``,
``chunked``, bodiless answers to HEAD, 1xx, 204 and 304) and keeps, per request, its method,
target, the time it left the client and the time its answer reached the client. From those,
:class:`ProxyStats` gives the most connections open at once, the most requests in flight, and
what happened before the first upload (the serial round trips a client pays at start-up).
Forwarded bytes are never rewritten (SigV4 signs the ``Host`` header, which names the proxy).

Usage from Python (the event loop runs on a thread of its own; ``stop`` is bounded)::

    with LatencyProxy(("127.0.0.1", s3_port), delay_ms=25) as proxy:
        proxy.reset_stats()
        subprocess.run([..., "--endpoint-url", proxy.endpoint_url, ...])
        print(proxy.stats().max_open, proxy.stats().requests)

Standalone, for trying a client by hand (stops after ``--seconds``, or on Ctrl-C/SIGTERM)::

    .venv/bin/python -m benchmarks.latency_proxy --upstream 127.0.0.1:8333 --delay-ms 25 --seconds 600

Measured on this 2-core machine (shared, loaded): 2,000 PUTs of 1-8 KiB by s5cmd through it at
``delay 0`` take about as long as straight to the server, and 512 MiB flows at several hundred
MiB/s; see ``far.py``'s results for the figures of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["LatencyProxy", "ProxyStats", "RequestRecord"]

MIB = 1024 * 1024
DEFAULT_WINDOW = 8 * MIB
_MAX_HEAD = 64 * 1024
_MAX_RECORDS = 500_000


# --------------------------------------------------------------------------------------------
# What the proxy saw
# --------------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    """One HTTP request seen on its way through (times are ``time.monotonic()`` seconds)."""

    connection: int
    method: str
    target: str
    sent: float
    """When the request's head arrived at the proxy: when the client sent it."""
    answered: float | None = None
    """When the end of the answer reached the client (``None``: never answered)."""
    status: int | None = None


@dataclass
class ProxyStats:
    """A snapshot of what the proxy saw since the last :meth:`LatencyProxy.reset_stats`."""

    delay_ms: float
    connections: int
    """Connections accepted."""
    max_open: int
    """The most client connections open at the same time."""
    max_in_flight: int
    """The most requests sent and not yet answered at the same time."""
    bytes_up: int
    bytes_down: int
    unparsed: int
    """Connections whose HTTP framing the proxy could not follow (relayed all the same)."""
    first_connection: float | None
    cpu_seconds: float
    """CPU time of the proxy's own thread: near the wall time, the proxy is the bottleneck."""
    requests: list[RequestRecord] = field(default_factory=list)

    def methods(self) -> dict[str, int]:
        counts: dict[str, int] = collections.Counter(r.method for r in self.requests)
        return dict(sorted(counts.items()))

    def serial_chain(self, records: list[RequestRecord]) -> int:
        """The most of ``records`` that ran one after the other, each sent after the previous one
        was answered: a lower bound on the round trips they cost in sequence."""
        chain, free_at = 0, float("-inf")
        for record in sorted(records, key=lambda r: r.answered if r.answered is not None else r.sent):
            if record.answered is not None and record.sent >= free_at:
                chain += 1
                free_at = record.answered
        return chain

    def start_up(self, is_upload: Callable[[RequestRecord], bool]) -> dict[str, object]:
        """What a client did before its first upload request (``is_upload`` picks those).

        ``first_upload_ms``: from the first connection to the first upload request;
        ``before``: the requests sent before it (``METHOD target-without-bucket``);
        ``serial``: how many of them ran strictly one after another (each a round trip).
        """
        first = next((r for r in self.requests if is_upload(r)), None)
        if first is None or self.first_connection is None:
            return {"first_upload_ms": None, "before": [], "serial": 0}
        before = [r for r in self.requests if r.sent < first.sent]
        return {
            "first_upload_ms": (first.sent - self.first_connection) * 1000,
            "before": [f"{r.method} {_short(r.target)}" for r in before],
            "serial": self.serial_chain(before),
        }


def _short(target: str) -> str:
    """``/bucket/prefix/obj?uploads`` -> ``/…?uploads``-like shape, without long keys."""
    path, _, query = target.partition("?")
    parts = path.strip("/").split("/")
    shape = "/" + parts[0] + ("/KEY" if len(parts) > 1 else "")
    if query:
        names = sorted({item.split("=", 1)[0] for item in query.split("&")})
        shape += "?" + "&".join(names)
    return shape


# --------------------------------------------------------------------------------------------
# HTTP framing, one direction at a time
# --------------------------------------------------------------------------------------------

_HEAD, _BODY, _CHUNK_LINE, _CHUNK_DATA, _TRAILER, _UNTIL_CLOSE, _BROKEN = range(7)

# (kind, length): kind "length" (``length`` bytes follow), "chunked", "close" (until EOF);
# "none" for a message without a body.
Framing = tuple[str, int]


class _FramingError(Exception):
    pass


class _MessageStream:
    """Finds message boundaries in one direction of an HTTP/1.1 connection.

    ``on_head(head) -> Framing`` is called for each message head; ``on_end()`` when a message
    (head and body) is complete. Body bytes are only counted, never copied.
    """

    def __init__(self, on_head: Callable[[bytes], Framing], on_end: Callable[[], None]) -> None:
        self.on_head = on_head
        self.on_end = on_end
        self.state = _HEAD
        self.buf = bytearray()
        self.left = 0

    @property
    def broken(self) -> bool:
        return self.state == _BROKEN

    def feed(self, data: bytes) -> None:
        if self.state in (_BROKEN, _UNTIL_CLOSE):
            return
        try:
            self._feed(data)
        except (_FramingError, ValueError, IndexError):
            self.state = _BROKEN
            self.buf.clear()

    def eof(self) -> None:
        if self.state == _UNTIL_CLOSE:
            self.state = _HEAD
            self.on_end()

    def _feed(self, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            if self.state in (_BODY, _CHUNK_DATA):
                take = min(self.left, len(data) - pos)  # body bytes are counted, not copied
                self.left -= take
                pos += take
                if self.left == 0:
                    if self.state == _BODY:
                        self._end()
                    else:
                        self.state = _CHUNK_LINE
            elif self.state == _UNTIL_CLOSE:
                return
            else:
                self.buf += data[pos:]
                data, pos = self._parse_buffered(), 0

    def _parse_buffered(self) -> bytes:
        """Consume what ``buf`` holds of a head, chunk line or trailer; return unparsed rest."""
        while self.state in (_HEAD, _CHUNK_LINE, _TRAILER):
            if self.state == _HEAD:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > _MAX_HEAD:
                        raise _FramingError("head too long")
                    return b""
                head = bytes(self.buf[: end + 4])
                del self.buf[: end + 4]
                kind, length = self.on_head(head)
                if kind == "length" and length > 0:
                    self.state, self.left = _BODY, length
                elif kind == "chunked":
                    self.state = _CHUNK_LINE
                elif kind == "close":
                    self.state = _UNTIL_CLOSE
                    self.buf.clear()
                    return b""
                else:
                    self._end()
            else:
                end = self.buf.find(b"\r\n")
                if end < 0:
                    if len(self.buf) > _MAX_HEAD:
                        raise _FramingError("chunk line too long")
                    return b""
                line = bytes(self.buf[:end])
                del self.buf[: end + 2]
                if self.state == _TRAILER:
                    if not line:
                        self._end()
                    continue
                chunk = int(line.split(b";", 1)[0].strip(), 16)
                if chunk == 0:
                    self.state = _TRAILER
                else:
                    self.state, self.left = _CHUNK_DATA, chunk + 2  # the data and its CRLF
        rest = bytes(self.buf)
        self.buf.clear()
        return rest

    def _end(self) -> None:
        self.state = _HEAD
        self.on_end()


def _headers(head: bytes) -> tuple[list[str], dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return lines[0].split(" ", 2), headers


def _body_framing(headers: dict[str, str]) -> Framing:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return ("chunked", 0)
    if "content-length" in headers:
        return ("length", int(headers["content-length"]))
    return ("none", 0)


# --------------------------------------------------------------------------------------------
# Relaying
# --------------------------------------------------------------------------------------------


class _Pipe:
    """One direction of a connection: holds each chunk until it is due, then writes it, in order."""

    def __init__(self, conn: _Connection, delay: float, window: int, name: str) -> None:
        self.conn = conn
        self.loop = conn.proxy.loop
        self.delay = delay
        self.window = window
        self.name = name
        self.queue: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.queued = 0
        self.timer: asyncio.TimerHandle | None = None
        self.not_before = 0.0
        self.sink: asyncio.Transport | None = None
        self.sink_paused = False
        self.source: asyncio.Transport | None = None
        self.source_paused = False
        self.on_close_marker: Callable[[], None] = lambda: None

    def push(self, data: bytes | None) -> None:
        """Queue ``data`` (``None``: the source ended) to be written ``delay`` from now."""
        due = max(self.loop.time() + self.delay, self.not_before)
        self.queue.append((due, data))
        if data is not None:
            self.queued += len(data)
            if self.queued > self.window:
                self._pause_source()
        self._schedule()

    def _schedule(self) -> None:
        if self.timer is not None or not self.queue or self.sink is None or self.sink_paused:
            return
        due = self.queue[0][0]
        if due <= self.loop.time():
            self.flush()
        else:
            self.timer = self.loop.call_at(due, self.flush)

    def flush(self) -> None:
        self.timer = None
        if self.sink is None:
            return
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now and not self.sink_paused:
            _, data = self.queue.popleft()
            if data is None:
                self.queue.clear()
                self.on_close_marker()
                return
            self.queued -= len(data)
            self.sink.write(data)
        if self.queued <= self.window // 2 and not self.sink_paused:
            self._resume_source()
        self._schedule()

    def sink_pause(self) -> None:
        self.sink_paused = True
        self._pause_source()

    def sink_resume(self) -> None:
        self.sink_paused = False
        self._schedule()
        if self.queued <= self.window // 2:
            self._resume_source()

    def _pause_source(self) -> None:
        if self.source is not None and not self.source_paused and not self.source.is_closing():
            self.source_paused = True
            self.source.pause_reading()

    def _resume_source(self) -> None:
        if self.source is not None and self.source_paused and not self.source.is_closing():
            self.source_paused = False
            self.source.resume_reading()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()


class _Connection:
    """A client connection, its upstream connection, the two pipes and the HTTP bookkeeping."""

    def __init__(self, proxy: LatencyProxy, number: int, client: asyncio.Transport) -> None:
        self.proxy = proxy
        self.number = number
        self.client = client
        self.upstream: asyncio.Transport | None = None
        delay = proxy.delay_ms / 1000
        self.up = _Pipe(self, delay, proxy.window, "up")
        self.down = _Pipe(self, delay, proxy.window, "down")
        self.up.source = client
        self.down.sink = client
        if proxy.handshake:
            # SYN, SYN-ACK, then the first bytes: they reach the server 3 delays after connect.
            self.up.not_before = proxy.loop.time() + 3 * delay
        self.up.on_close_marker = self._close_upstream
        self.down.on_close_marker = self._close_client
        self.pending: collections.deque[RequestRecord] = collections.deque()
        self.requests = _MessageStream(self._request_head, lambda: None)
        self.responses = _MessageStream(self._response_head, self._response_end)
        self.closed = False

    # -- HTTP bookkeeping (runs on arrival at the proxy) -----------------------------------

    def _request_head(self, head: bytes) -> Framing:
        (method, target, *_), headers = _headers(head)
        record = RequestRecord(self.number, method, target, self.proxy.loop.time())
        self.pending.append(record)
        self.proxy._record_request(record)
        return _body_framing(headers)

    def _response_head(self, head: bytes) -> Framing:
        (_, status_text, *_), headers = _headers(head)
        status = int(status_text)
        if 100 <= status < 200:
            return ("interim", 0)  # 100 Continue: the final answer is still to come
        if not self.pending:
            raise _FramingError("an answer without a request")
        record = self.pending[0]
        record.status = status
        if record.method == "HEAD" or status in (204, 304):
            return ("none", 0)
        kind, length = _body_framing(headers)
        if kind == "none":
            return ("close", 0) if "close" in headers.get("connection", "").lower() else ("none", 0)
        return (kind, length)

    def _response_end(self) -> None:
        if not self.pending:
            return
        record = self.pending[0]
        if record.status is None:  # the end of an interim answer
            return
        self.pending.popleft()
        self.proxy._record_answer(record, self.proxy.loop.time() + self.down.delay)

    # -- relaying --------------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        self.proxy.bytes_up += len(data)
        self.requests.feed(data)
        self.up.push(data)

    def from_upstream(self, data: bytes) -> None:
        self.proxy.bytes_down += len(data)
        if self.closed:
            return  # the client is gone: nobody to deliver to
        self.responses.feed(data)
        self.down.push(data)

    def upstream_ready(self, transport: asyncio.Transport) -> None:
        self.upstream = transport
        self.up.sink = transport
        self.down.source = transport
        if self.closed:
            transport.close()
            return
        self.up._schedule()

    def client_ended(self) -> None:
        self.up.push(None)

    def upstream_ended(self) -> None:
        self.responses.eof()
        self.down.push(None)

    def client_lost(self) -> None:
        """The client connection is gone: deliver what it sent before, then close the upstream."""
        self.closed = True
        self.down.cancel()
        self.up.on_close_marker = self._drop_upstream
        self.up.push(None)

    def _drop_upstream(self) -> None:
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.close()

    def _close_upstream(self) -> None:
        if self.upstream is not None and not self.upstream.is_closing():
            if self.upstream.can_write_eof() and not self.client.is_closing():
                self.upstream.write_eof()  # half close: the answer may still come
            else:
                self.upstream.close()

    def _close_client(self) -> None:
        if not self.client.is_closing():
            self.client.close()
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.close()

    def abort(self) -> None:
        self.closed = True
        self.up.cancel()
        self.down.cancel()
        self.client.abort()
        if self.upstream is not None:
            self.upstream.abort()


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, proxy: LatencyProxy) -> None:
        self.proxy = proxy
        self.conn: _Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.set_write_buffer_limits(high=MIB)
        self.conn = self.proxy._opened(transport)
        task = self.proxy.loop.create_task(self._connect_upstream(self.conn))
        self.proxy._tasks.add(task)
        task.add_done_callback(self.proxy._tasks.discard)

    async def _connect_upstream(self, conn: _Connection) -> None:
        try:
            transport, _ = await self.proxy.loop.create_connection(
                lambda: _UpstreamProtocol(conn), *self.proxy.upstream
            )
        except OSError:
            conn.abort()
            return
        assert isinstance(transport, asyncio.Transport)
        transport.set_write_buffer_limits(high=MIB)
        conn.upstream_ready(transport)

    def data_received(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.from_client(data)

    def eof_received(self) -> bool:
        assert self.conn is not None
        self.conn.client_ended()
        return True  # keep the transport: the answer may still be on its way

    def connection_lost(self, exc: Exception | None) -> None:
        assert self.conn is not None
        self.conn.client_lost()
        self.proxy._closed(self.conn)

    def pause_writing(self) -> None:
        assert self.conn is not None
        self.conn.down.sink_pause()

    def resume_writing(self) -> None:
        assert self.conn is not None
        self.conn.down.sink_resume()


class _UpstreamProtocol(asyncio.Protocol):
    def __init__(self, conn: _Connection) -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        self.conn.from_upstream(data)

    def eof_received(self) -> bool:
        self.conn.upstream_ended()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.upstream_ended()

    def pause_writing(self) -> None:
        self.conn.up.sink_pause()

    def resume_writing(self) -> None:
        self.conn.up.sink_resume()


# --------------------------------------------------------------------------------------------
# The proxy
# --------------------------------------------------------------------------------------------


class LatencyProxy:
    """A delaying TCP proxy on ``127.0.0.1:<free port>`` in front of ``upstream`` (``(host, port)``).

    ``delay_ms`` is added in each direction (a round trip costs twice that); ``window`` bounds
    the bytes one direction of a connection holds; ``handshake`` makes a new connection's first
    bytes wait one round trip more. Call :meth:`start`/:meth:`stop` or use it as a context
    manager; :meth:`stats` and :meth:`reset_stats` may be called from any thread.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        delay_ms: float,
        window: int = DEFAULT_WINDOW,
        handshake: bool = True,
    ) -> None:
        if delay_ms < 0:
            raise ValueError("delay_ms must be >= 0")
        if window < 64 * 1024:
            raise ValueError("window must be at least 64 KiB")
        self.upstream = upstream
        self.delay_ms = delay_ms
        self.window = window
        self.handshake = handshake and delay_ms > 0
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._lock = threading.Lock()
        self._conns: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._tid: int | None = None
        self._cpu_base = 0.0
        self._zero()

    def _zero(self) -> None:
        self.connections = 0
        self.max_open = len(self._conns)
        self.in_flight = 0
        self.max_in_flight = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.first_connection: float | None = None
        self.records: list[RequestRecord] = []
        self._counted: set[int] = set()
        self._cpu_base = self._thread_cpu()

    def _thread_cpu(self) -> float:
        """User + system CPU seconds of the loop's thread so far (0 before it runs)."""
        if self._tid is None:
            return 0.0
        try:
            with open(f"/proc/self/task/{self._tid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> LatencyProxy:
        if self._thread is not None:
            raise RuntimeError("LatencyProxy already started")
        self._thread = threading.Thread(
            target=self._run, name=f"latency-proxy-{self.delay_ms}ms", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the latency proxy did not start in time")
        if self._startup_error is not None:
            raise RuntimeError(f"the latency proxy did not start: {self._startup_error}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and end the loop's thread (returns within ``timeout``)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        stopping = self._stopping
        if stopping is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self.loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        self._tid = threading.get_native_id()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        try:
            server = await self.loop.create_server(
                lambda: _ClientProtocol(self), "127.0.0.1", 0, backlog=4096, reuse_address=True
            )
        except OSError as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for conn in list(self._conns):
                conn.abort()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2.0)

    # -- bookkeeping (loop thread) ---------------------------------------------------------

    def _opened(self, client: asyncio.Transport) -> _Connection:
        with self._lock:
            self.connections += 1
            conn = _Connection(self, self.connections, client)
            self._conns.add(conn)
            self.max_open = max(self.max_open, len(self._conns))
            if self.first_connection is None:
                self.first_connection = self.loop.time()
        return conn

    def _closed(self, conn: _Connection) -> None:
        with self._lock:
            self._conns.discard(conn)
            # requests never answered leave the in-flight count with their connection
            for record in conn.pending:
                if id(record) in self._counted:
                    self._counted.discard(id(record))
                    self.in_flight -= 1
            conn.pending.clear()

    def _record_request(self, record: RequestRecord) -> None:
        with self._lock:
            if len(self.records) < _MAX_RECORDS:
                self.records.append(record)
            self._counted.add(id(record))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _record_answer(self, record: RequestRecord, when: float) -> None:
        with self._lock:
            record.answered = when
            if id(record) in self._counted:
                self._counted.discard(id(record))
                self.in_flight -= 1

    # -- any thread ------------------------------------------------------------------------

    def reset_stats(self) -> None:
        """Start counting afresh (the connections open now count towards ``max_open``)."""
        with self._lock:
            self._zero()

    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(
                delay_ms=self.delay_ms,
                connections=self.connections,
                max_open=self.max_open,
                max_in_flight=self.max_in_flight,
                bytes_up=self.bytes_up,
                bytes_down=self.bytes_down,
                unparsed=sum(1 for c in self._conns if c.requests.broken or c.responses.broken),
                first_connection=self.first_connection,
                cpu_seconds=self._thread_cpu() - self._cpu_base,
                requests=list(self.records),
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    p.add_argument("--delay-ms", type=float, required=True, help="delay added in each direction")
    p.add_argument("--seconds", type=float, default=600.0, help="stop after this long (default 600)")
    args = p.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LatencyProxy((host or "127.0.0.1", int(port)), delay_ms=args.delay_ms) as proxy:
        print(f"{proxy.endpoint_url} -> {args.upstream}, {args.delay_ms:g} ms each way", flush=True)
        started = time.monotonic()
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.is_set() and time.monotonic() - started < args.seconds:
                stop.wait(0.5)
        stats = proxy.stats()
    print(
        f"{stats.connections} connections (at most {stats.max_open} open), {len(stats.requests)} requests "
        f"(at most {stats.max_in_flight} in flight), {stats.bytes_up:,} bytes up, {stats.bytes_down:,} down"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

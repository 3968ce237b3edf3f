"""A loopback HTTP/1.1 fault-injection proxy for S3 tests.

:class:`FaultProxy` sits between an S3 client (boto3) and an S3 server (SeaweedFS on 127.0.0.1).
Point the client at :attr:`FaultProxy.endpoint_url`; by default every request is relayed byte for
byte to the upstream server. On command from the test, :class:`Fault` rules make the proxy
misbehave for selected requests, the way real networks and real S3 endpoints misbehave::

    with FaultProxy(upstream=("127.0.0.1", s3_port)) as proxy:
        client = make_client(endpoint_url=proxy.endpoint_url)
        proxy.set_rules([Fault("error", status=503, method="PUT", fraction=0.3, seed=1)])
        ...
        proxy.set_rules([Fault("reset", method="PUT", skip=2, count=1)])  # the 3rd PUT, once
        ...
        assert proxy.stats["faults"]["reset"] == 1
        proxy.clear()

Fault kinds (see :class:`Fault` for their parameters):

``pass``
    Relay normally. Useful as an earlier rule that shields some requests from later rules.
``reset``
    Read part of the request body, then abort the client connection with ``SO_LINGER 0`` so the
    client gets ``ECONNRESET`` mid-request; nothing reaches the server. With ``forward=True`` the
    request is relayed and the server's response is read, and *then* the client connection is
    reset: the server did the work but the client cannot know (the "ambiguous failure").
``delay``
    Relay the request, then hold the server's response for ``seconds`` before relaying it, to run
    a client past its read timeout. The server did the work.
``error``
    Answer with an HTTP error (``503 SlowDown`` by default, or ``500 InternalError``, ...) and an
    S3 XML error body, without forwarding. The request body is read first (after answering
    ``100 Continue`` if asked), so the keep-alive connection stays usable, as with real S3.
``truncate``
    Relay the request, relay the response headers (with the full ``Content-Length``) and only
    part of the body, then close the connection. For a response without a body (a PUT's, a
    HEAD's) only the start of the status line is sent, e.g. ``HTTP/1.1 2``: clients accept a
    header block cut short by EOF, so cutting the headers would not be noticed.
``blackhole``
    Read the request and never answer, until the client gives up or the proxy stops.
``refuse``
    While such a rule is installed the proxy does not listen: new connections get
    ``ECONNREFUSED`` and open ones are closed. It is a connection-level fault, so it takes no
    request filters and no ``count``.
``corrupt``
    Relay the request with one byte of its body flipped (``at_byte``, default the middle of the
    body), the headers untouched: a body damaged in transit. A server that checks Content-MD5
    answers ``400 BadDigest``; one given no Content-MD5 stores the damaged bytes. Only requests
    with a non-empty body match such a rule.

Recording. ``FaultProxy(..., record=True)`` (or setting :attr:`FaultProxy.record`) keeps a
:class:`WireRequest` for every request: its method, target and headers as they came over the
wire, the size and MD5 of the body the client sent (chunk framing removed), what the proxy did
with it and the status the client was answered. Tests check with it what a client really sent,
rather than the parameters it was given (see :attr:`FaultProxy.recorded`).

HTTP handling. The proxy parses message boundaries on both sides (``Content-Length`` and
``chunked`` bodies; no body for ``HEAD`` responses, 1xx, 204 and 304; close-delimited responses),
so every request on a keep-alive connection is seen and can be faulted on its own. Forwarded
bytes are not rewritten, in particular not the ``Host`` header: SigV4 signs it. The client signs
the proxy's ``127.0.0.1:PORT`` and SeaweedFS verifies the signature against the ``Host`` header it
receives, so a faithful relay works (rewriting ``Host`` would break the signature).
``Expect: 100-continue`` (boto3 sends it on PutObject and UploadPart) is forwarded, and the
server's interim ``100 Continue`` is relayed before the body is. When the proxy answers a request
itself (``error``, ``reset``) it sends its own ``100 Continue`` when it wants the body.

What boto3 (botocore 1.44, one attempt) raises, as checked by ``test_proxy.py``: ``reset`` and
``truncate`` of a bodiless response -> ``ConnectionClosedError``; ``truncate`` of a GET body ->
``ResponseStreamingError`` when the body is read; ``delay`` and ``blackhole`` ->
``ReadTimeoutError`` (for a PUT after botocore's extra 1 s wait for ``100 Continue``); ``error``
-> ``ClientError`` with the S3 code; ``refuse`` -> ``EndpointConnectionError``. To see one
attempt, configure ``retries={"total_max_attempts": 1}``: botocore's ``max_attempts`` counts
*retries*, so ``max_attempts=1`` makes two attempts.

Requests are matched on the path-style S3 URL that boto3 uses for an IP endpoint
(``/bucket/key?query``). One thread serves each client connection; sockets are blocking, and
:meth:`FaultProxy.stop` shuts every socket down to wake those threads, so it returns quickly.
``refuse`` shuts the listening socket down and later listens again on it; on Linux the explicitly
bound port stays reserved meanwhile (elsewhere the port is bound again). Standard library only.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import fnmatch
import hashlib
import http
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from types import TracebackType
from typing import Any, Literal, get_args
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

__all__ = ["FAULT_KINDS", "Fault", "FaultKind", "FaultProxy", "Record", "Request", "WireRequest"]

FaultKind = Literal["pass", "reset", "delay", "error", "truncate", "blackhole", "refuse", "corrupt"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

_CHUNK = 64 * 1024
_MAX_HEAD = 64 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# Default S3 error codes and messages for the ``error`` fault, by HTTP status.
_S3_ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Bad Request"),
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    502: ("BadGateway", "Bad Gateway"),
    503: ("SlowDown", "Please reduce your request rate."),
}


class _ClosedError(Exception):
    """The peer closed its side, or sent something we cannot frame: drop the connection."""


# --------------------------------------------------------------------------------------------
# Requests and rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One parsed client request, as shown to :class:`Fault` filters and predicates."""

    index: int
    """1-based number of this request among all requests the proxy has seen."""
    method: str
    target: str
    """The raw request target, e.g. ``/bucket/key?partNumber=1&uploadId=...``."""
    path: str
    """The percent-decoded path, e.g. ``/bucket/dir/file.txt``."""
    query: dict[str, list[str]]
    """Query parameters; a bare name such as ``uploads`` maps to ``[""]``."""
    headers: dict[str, str]
    """Header values by lower-cased name (repeated headers joined with ``", "``)."""

    @property
    def bucket(self) -> str:
        """The bucket of a path-style URL (``""`` for the service root)."""
        return self.path.lstrip("/").split("/", 1)[0]

    @property
    def key(self) -> str:
        """The object key of a path-style URL (``""`` for bucket or service requests)."""
        parts = self.path.lstrip("/").split("/", 1)
        return parts[1] if len(parts) == 2 else ""

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and not self.chunked else None

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    @property
    def expects_continue(self) -> bool:
        return self.headers.get("expect", "").lower() == "100-continue"

    @property
    def wants_close(self) -> bool:
        return "close" in self.headers.get("connection", "").lower()


@dataclass
class Fault:
    """A rule: which requests to disturb, how often, and how.

    Selection. A request *matches* when it passes every filter given: ``method`` (a name or a
    collection of names), ``path`` (a :mod:`fnmatch` glob on the decoded path, e.g.
    ``"/bucket/logs/*"``), ``key`` (a glob on the object key, e.g. ``"*.parquet"``), ``query``
    (the name of a query parameter that must be present: ``"partNumber"`` selects multipart
    parts, ``"uploads"`` CreateMultipartUpload, ``"uploadId"`` every call on an upload) and
    ``match`` (any predicate on :class:`Request`; it runs under the proxy's lock, keep it quick).
    Of the matching requests, the first ``skip`` pass; after that the fault fires on every
    ``every``-th one and/or with probability ``fraction`` (drawn from ``random.Random(seed)``, one
    draw per eligible request, so a run is reproducible), at most ``count`` times (``None``:
    unlimited). A matching request the rule lets go is offered to the next rule.

    Kind-specific parameters: ``status``/``code``/``message`` for ``error``; ``seconds`` for
    ``delay``; ``after_bytes`` (request body bytes to read before the reset; default half the
    body) and ``forward`` for ``reset``; ``keep_bytes`` (response body bytes to pass; default half
    the ``Content-Length``, or 1 KiB of a chunked or close-delimited body) for ``truncate``;
    ``at_byte`` (the body offset of the byte to flip; default the middle) for ``corrupt``.

    ``max_repeats`` caps how often the rule fires for the same request sent again (same method,
    path and ``partNumber``): with ``max_repeats=2`` a client that tries three times always gets
    through, so a test of its retries does not depend on the luck of the draws.

    ``matched`` and ``fired`` count what the rule saw and did since it was installed.
    """

    kind: FaultKind
    method: str | Collection[str] | None = None
    path: str | None = None
    key: str | None = None
    query: str | None = None
    match: Callable[[Request], bool] | None = None
    count: int | None = None
    skip: int = 0
    every: int | None = None
    fraction: float | None = None
    seed: int = 0
    status: int = 503
    code: str | None = None
    message: str | None = None
    seconds: float = 0.0
    after_bytes: int | None = None
    forward: bool = False
    keep_bytes: int | None = None
    at_byte: int | None = None
    max_repeats: int | None = None
    matched: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)
    _fired_for: collections.Counter[tuple[str, str, str]] = field(
        default_factory=collections.Counter, init=False, repr=False, compare=False
    )
    _methods: frozenset[str] | None = field(default=None, init=False, repr=False)
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if isinstance(self.method, str):
            self._methods = frozenset({self.method.upper()})
        elif self.method is not None:
            self._methods = frozenset(m.upper() for m in self.method)
        self._validate()
        self.restart()

    def _validate(self) -> None:
        if self.count is not None and self.count < 0:
            raise ValueError("count must be >= 0 or None")
        if self.skip < 0:
            raise ValueError("skip must be >= 0")
        if self.every is not None and self.every < 1:
            raise ValueError("every must be >= 1")
        if self.max_repeats is not None and self.max_repeats < 1:
            raise ValueError("max_repeats must be >= 1 or None")
        if self.at_byte is not None and self.at_byte < 0:
            raise ValueError("at_byte must be >= 0")
        if self.fraction is not None and not 0.0 <= self.fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        if self.kind == "delay" and self.seconds <= 0:
            raise ValueError("a delay fault needs seconds > 0")
        if self.kind == "error" and not 400 <= self.status <= 599:
            raise ValueError("an error fault needs a 4xx or 5xx status")
        if self.kind == "refuse" and self._has_selection():
            raise ValueError("refuse is connection-level: it takes no filters, count or fraction")

    def _has_selection(self) -> bool:
        filters = (self.method, self.path, self.key, self.query, self.match)
        limits = (self.count, self.every, self.fraction)
        return any(f is not None for f in filters + limits) or self.skip != 0

    def restart(self) -> None:
        """Zero the counters and re-seed the random draws (done when the rule is installed)."""
        self.matched = 0
        self.fired = 0
        self._fired_for = collections.Counter()
        self._rng = random.Random(self.seed)

    @property
    def exhausted(self) -> bool:
        """True once the fault fired ``count`` times."""
        return self.count is not None and self.fired >= self.count

    def matches(self, request: Request) -> bool:
        """Whether ``request`` passes this rule's filters (no counting)."""
        if self._methods is not None and request.method.upper() not in self._methods:
            return False
        if self.path is not None and not fnmatch.fnmatchcase(request.path, self.path):
            return False
        if self.key is not None and not fnmatch.fnmatchcase(request.key, self.key):
            return False
        if self.query is not None and self.query not in request.query:
            return False
        if self.kind == "corrupt" and not (request.chunked or request.content_length):
            return False  # no byte to flip
        return self.match is None or self.match(request)

    def decide(self, request: Request) -> bool:
        """Count ``request`` if it matches and say whether the fault fires for it."""
        if self.kind == "refuse" or not self.matches(request):
            return False
        self.matched += 1
        if self.matched <= self.skip or self.exhausted:
            return False
        if self.every is not None and (self.matched - self.skip) % self.every != 0:
            return False
        if self.fraction is not None and self._rng.random() >= self.fraction:
            return False
        if self.max_repeats is not None:
            identity = (request.method, request.path, "".join(request.query.get("partNumber", [])))
            if self._fired_for[identity] >= self.max_repeats:
                return False
            self._fired_for[identity] += 1
        self.fired += 1
        return True

    def flip_offset(self, request: Request) -> int:
        """The body offset of the byte a ``corrupt`` fault flips in ``request``."""
        if self.at_byte is not None:
            return self.at_byte
        return (request.content_length or 0) // 2


@dataclass(frozen=True)
class Record:
    """What the proxy did with one request (see :attr:`FaultProxy.history`)."""

    index: int
    method: str
    target: str
    action: str
    """``"forward"`` or the kind of the fault that fired."""


@dataclass
class WireRequest:
    """One request as the client sent it over the wire (kept while the proxy records).

    The body fields are filled in once the proxy has read the whole body (``None`` when it
    never did: a ``reset`` or ``blackhole``); ``status`` once an answer was sent.
    """

    index: int
    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header values by lower-cased name (repeated headers joined with ``", "``)."""
    action: str
    """``"forward"`` or the kind of the fault that fired."""
    body_size: int | None = None
    """Payload bytes the client sent (chunk framing excluded)."""
    body_md5: bytes | None = None
    """MD5 of those bytes, as the client sent them (before a ``corrupt`` fault flipped one)."""
    status: int | None = None
    """The status of the server's final answer (a forwarded request) or of the ``error`` fault's."""

    @property
    def key(self) -> str:
        parts = self.path.lstrip("/").split("/", 1)
        return parts[1] if len(parts) == 2 else ""

    @property
    def body_md5_base64(self) -> str | None:
        """The body's MD5 the way a ``Content-MD5`` header spells it."""
        return None if self.body_md5 is None else base64.b64encode(self.body_md5).decode()

    @property
    def operation(self) -> str:
        """The S3 operation of an object request: ``PutObject``, ``UploadPart``, ... or ``""``."""
        query = self.query
        if self.method == "PUT" and "partNumber" in query and "uploadId" in query:
            return "UploadPart"
        if self.method == "PUT" and self.key and not query:
            return "PutObject"
        if self.method == "POST" and "uploads" in query:
            return "CreateMultipartUpload"
        if self.method == "POST" and "uploadId" in query:
            return "CompleteMultipartUpload"
        return ""


# --------------------------------------------------------------------------------------------
# Wire helpers
# --------------------------------------------------------------------------------------------


class _Stream:
    """A blocking socket with a read buffer: header blocks, lines, and bounded reads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(_CHUNK)
        if not data:
            raise _ClosedError("peer closed")
        self.buf += data

    def read_head(self) -> bytes:
        """Read through the blank line ending a header block (leading blank lines skipped)."""
        while True:
            while self.buf.startswith(b"\r\n"):
                del self.buf[:2]
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                return self._take(end + 4)
            if len(self.buf) > _MAX_HEAD:
                raise _ClosedError("header block too large")
            self._fill()

    def readline(self) -> bytes:
        while (end := self.buf.find(b"\n")) < 0:
            if len(self.buf) > _MAX_HEAD:
                raise _ClosedError("line too long")
            self._fill()
        return self._take(end + 1)

    def read_some(self, limit: int) -> bytes:
        """Return 1..limit bytes, reading from the socket only if nothing is buffered."""
        if not self.buf:
            self._fill()
        return self._take(min(limit, len(self.buf)))

    def _take(self, size: int) -> bytes:
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


# A body's framing: ("none", 0), ("length", n), ("chunked", 0) or ("close", 0).
_Framing = tuple[str, int]


def _parse_head(head: bytes) -> tuple[list[str], dict[str, str]]:
    """Split a header block into its start line's fields and a lower-cased header dict."""
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return lines[0].split(" ", 2), headers


def _parse_request(head: bytes, index: int) -> Request:
    start, headers = _parse_head(head)
    if len(start) != 3 or not start[2].startswith("HTTP/"):
        raise _ClosedError(f"bad request line {start!r}")
    method, target = start[0].upper(), start[1]
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    return Request(index, method, target, unquote(parts.path), query, headers)


def _parse_status(head: bytes) -> tuple[int, dict[str, str]]:
    start, headers = _parse_head(head)
    if len(start) < 2 or not start[0].startswith("HTTP/") or not start[1].isdigit():
        raise _ClosedError(f"bad status line {start!r}")
    return int(start[1]), headers


def _request_framing(request: Request) -> _Framing:
    if request.chunked:
        return ("chunked", 0)
    return ("length", request.content_length or 0)


def _response_framing(method: str, status: int, headers: dict[str, str]) -> _Framing:
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return ("none", 0)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return ("chunked", 0)
    if "content-length" in headers:
        return ("length", int(headers["content-length"]))
    return ("close", 0)


def _iter_body(stream: _Stream, framing: _Framing) -> Iterator[bytes]:
    """Yield the raw bytes of one message body (chunk framing included) as they arrive."""
    for data, _ in _iter_body_parts(stream, framing):
        yield data


def _iter_body_parts(stream: _Stream, framing: _Framing) -> Iterator[tuple[bytes, bool]]:
    """Like :func:`_iter_body`, each piece flagged True if it is payload, False if framing."""
    kind, length = framing
    if kind == "length":
        yield from ((data, True) for data in _iter_exact(stream, length))
    elif kind == "chunked":
        yield from _iter_chunked(stream)
    elif kind == "close":
        yield from ((data, True) for data in _iter_until_close(stream))


def _iter_exact(stream: _Stream, length: int) -> Iterator[bytes]:
    while length > 0:
        data = stream.read_some(min(length, _CHUNK))
        length -= len(data)
        yield data


def _iter_chunked(stream: _Stream) -> Iterator[tuple[bytes, bool]]:
    while True:
        line = stream.readline()
        yield line, False
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise _ClosedError(f"bad chunk size line {line!r}") from exc
        if size == 0:
            break
        yield from ((data, True) for data in _iter_exact(stream, size))
        yield from ((data, False) for data in _iter_exact(stream, 2))  # the chunk's CRLF
    while True:  # trailer fields, then the final blank line
        line = stream.readline()
        yield line, False
        if line in (b"\r\n", b"\n"):
            return


def _iter_until_close(stream: _Stream) -> Iterator[bytes]:
    while True:
        try:
            yield stream.read_some(_CHUNK)
        except _ClosedError:
            return


def _abort(sock: socket.socket) -> None:
    """Close ``sock`` with ``SO_LINGER 0``: the kernel sends RST, the peer sees ECONNRESET."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _shutdown(sock: socket.socket) -> None:
    """Wake any thread blocked on ``sock`` (close alone does not) and send FIN."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _is_dropped(sock: socket.socket) -> bool:
    """True if an idle keep-alive socket is readable, i.e. closed by the peer (or out of sync)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _error_response(request: Request, fault: Fault, request_id: str) -> bytes:
    """An S3-style error response: status line, headers and (unless HEAD) an XML body."""
    code, message = _S3_ERRORS.get(fault.status, ("InternalError", "Injected fault"))
    code, message = fault.code or code, fault.message or message
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(request.path)}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()
    try:
        reason = http.HTTPStatus(fault.status).phrase
    except ValueError:
        reason = "Error"
    head = (
        f"HTTP/1.1 {fault.status} {reason}\r\n"
        "Content-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"x-amz-request-id: {request_id}\r\n"
        f"Date: {formatdate(usegmt=True)}\r\n"
        "Server: FaultProxy\r\n"
        f"Connection: {'close' if request.wants_close else 'keep-alive'}\r\n\r\n"
    ).encode()
    return head if request.method == "HEAD" else head + body


# --------------------------------------------------------------------------------------------
# One client connection
# --------------------------------------------------------------------------------------------


class _Connection:
    """Serves one client connection: parse each request, pick a rule, forward or misbehave.

    Every ``_handle_*`` method returns True if the client connection may carry another request.
    """

    def __init__(self, proxy: FaultProxy, sock: socket.socket) -> None:
        self.proxy = proxy
        self.client = _Stream(sock)
        self.upstream: _Stream | None = None
        self.aborted = False
        self.fault: Fault | None = None  # the rule that fired for the current request
        self.wire: WireRequest | None = None  # its record, when the proxy records

    def run(self) -> None:
        try:
            while not self.proxy.stopping:
                head = self.client.read_head()
                request = self.proxy._admit(head)
                fault, self.wire = self.proxy._choose(request)
                self.fault = fault
                if not self._handle(request, head, fault):
                    break
        except (_ClosedError, OSError, ValueError):  # peer gone, stopping, or unparseable
            pass
        finally:
            self._close()

    def _handle(self, request: Request, head: bytes, fault: Fault | None) -> bool:
        kind = fault.kind if fault is not None else "pass"
        forwarded = ("pass", "delay", "truncate", "corrupt")
        if fault is None or kind in forwarded or (kind == "reset" and fault.forward):
            return self._forward(request, head, fault)
        if kind == "error":
            return self._handle_error(request, fault)
        if kind == "reset":
            return self._handle_reset(request, fault)
        return self._handle_blackhole()

    # -- local answers ---------------------------------------------------------------------

    def _read_request_body(self, request: Request, limit: int | None = None) -> int:
        """Consume up to ``limit`` (default: all) body bytes, sending 100 Continue if expected."""
        if not request.has_body or limit == 0:
            return 0
        if request.expects_continue:
            self.client.send(_CONTINUE)
        seen = 0
        for data in self._request_body(request):
            seen += len(data)
            if limit is not None and seen >= limit:
                break
        return seen

    def _request_body(self, request: Request) -> Iterator[bytes]:
        """The raw bytes of the request body from the client, as they arrive.

        Once the whole body is read, its payload's size and MD5 go into the record (if any); a
        ``corrupt`` fault has one payload byte flipped in what is yielded.
        """
        digest = hashlib.md5(usedforsecurity=False) if self.wire is not None else None
        fault = self.fault
        flip = fault.flip_offset(request) if fault is not None and fault.kind == "corrupt" else None
        seen = 0
        for data, payload in _iter_body_parts(self.client, _request_framing(request)):
            if payload:
                if digest is not None:
                    digest.update(data)
                if flip is not None and seen <= flip < seen + len(data):
                    at = flip - seen
                    data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
                seen += len(data)
            yield data
        if self.wire is not None and digest is not None:
            self.wire.body_size, self.wire.body_md5 = seen, digest.digest()

    def _handle_error(self, request: Request, fault: Fault) -> bool:
        self._read_request_body(request)
        if self.wire is not None:
            self.wire.status = fault.status
        self.client.send(_error_response(request, fault, self.proxy._request_id(request)))
        return not request.wants_close

    def _handle_reset(self, request: Request, fault: Fault) -> bool:
        limit = fault.after_bytes
        if limit is None:
            limit = max(1, (request.content_length or 0) // 2) if request.has_body else 0
        self._read_request_body(request, limit)
        self._reset_client()
        return False

    def _handle_blackhole(self) -> bool:
        """Swallow whatever the client sends and never answer; ends when either side closes."""
        self.client.buf.clear()
        while self.client.sock.recv(_CHUNK):
            pass
        return False

    def _reset_client(self) -> None:
        self.aborted = True
        self.proxy._forget(self.client.sock)
        _abort(self.client.sock)

    # -- forwarding ------------------------------------------------------------------------

    def _forward(self, request: Request, head: bytes, fault: Fault | None) -> bool:
        upstream = self._connect_upstream()
        self.proxy._count_forwarded()
        upstream.send(head)
        body_sent = not (request.has_body and request.expects_continue)
        if body_sent:
            self._relay_request_body(request, upstream)
        status, rhead, rheaders, body_sent = self._read_final_head(request, upstream, body_sent)
        if self.wire is not None:
            self.wire.status = status
        framing = _response_framing(request.method, status, rheaders)
        if fault is not None and fault.kind == "delay" and self.proxy._wait_or_stop(fault.seconds):
            return False  # stopping
        if fault is not None and fault.kind == "reset":
            self._reset_client()
            return False
        if fault is not None and fault.kind == "truncate":
            self._truncate(rhead, framing, upstream, fault)
            return False
        rewrite = self.proxy.rewrite
        if rewrite is not None:
            # The whole answer at once: the rewrite keeps the body's length (see ``rewrite``).
            body = b"".join(_iter_body(upstream, framing))
            rhead, rewritten = rewrite(request, rhead, body)
            assert len(rewritten) == len(body), "a response rewrite must keep the body's length"
            self.client.send(rhead + rewritten)
            return self._after_response(request, rheaders, framing, body_sent)
        self.client.send(rhead)
        for data in _iter_body(upstream, framing):
            self.client.send(data)
        return self._after_response(request, rheaders, framing, body_sent)

    def _relay_request_body(self, request: Request, upstream: _Stream) -> None:
        for data in self._request_body(request):
            upstream.send(data)

    def _read_final_head(
        self, request: Request, upstream: _Stream, body_sent: bool
    ) -> tuple[int, bytes, dict[str, str], bool]:
        """Relay interim (1xx) responses, sending the held-back body after a 100 Continue."""
        while True:
            rhead = upstream.read_head()
            status, rheaders = _parse_status(rhead)
            if not 100 <= status < 200 or status == 101:
                return status, rhead, rheaders, body_sent
            self.client.send(rhead)
            if status == 100 and not body_sent:
                self._relay_request_body(request, upstream)
                body_sent = True

    def _truncate(self, rhead: bytes, framing: _Framing, upstream: _Stream, fault: Fault) -> None:
        """Send the head and part of the body, then close both connections."""
        kind, length = framing
        if kind == "none" or (kind == "length" and length == 0):
            # Clients accept a header block cut short by EOF, so cut the status line instead.
            self.client.send(rhead[: rhead.find(b" ") + 2])
        else:
            keep = fault.keep_bytes
            if keep is None:
                keep = length // 2 if kind == "length" else 1024
            self.client.send(rhead)
            sent = 0
            for data in _iter_body(upstream, framing):
                if sent >= keep:
                    break
                self.client.send(data[: keep - sent])
                sent += len(data[: keep - sent])
        self._drop_upstream()
        _shutdown(self.client.sock)

    def _after_response(
        self, request: Request, rheaders: dict[str, str], framing: _Framing, body_sent: bool
    ) -> bool:
        """Decide whether both connections stay open after a relayed response."""
        upstream_closes = "close" in rheaders.get("connection", "").lower() or framing[0] == "close"
        if upstream_closes or not body_sent:
            self._drop_upstream()
        return not (upstream_closes or request.wants_close or not body_sent)

    def _connect_upstream(self) -> _Stream:
        if self.upstream is not None and (self.upstream.buf or _is_dropped(self.upstream.sock)):
            self._drop_upstream()
        if self.upstream is None:
            sock = socket.create_connection(self.proxy.upstream, timeout=self.proxy.connect_timeout)
            sock.settimeout(self.proxy.upstream_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.proxy._track(sock)
            self.upstream = _Stream(sock)
        return self.upstream

    def _drop_upstream(self) -> None:
        if self.upstream is not None:
            self.proxy._forget(self.upstream.sock)
            _shutdown(self.upstream.sock)
            self.upstream.sock.close()
            self.upstream = None

    def _close(self) -> None:
        self._drop_upstream()
        if not self.aborted:
            self.proxy._forget(self.client.sock)
            _shutdown(self.client.sock)
            self.client.sock.close()


# --------------------------------------------------------------------------------------------
# The proxy
# --------------------------------------------------------------------------------------------


class FaultProxy:
    """A fault-injecting HTTP/1.1 proxy on ``127.0.0.1:<free port>`` in front of ``upstream``.

    ``upstream`` is the ``(host, port)`` of the real server. ``idle_timeout`` bounds how long a
    client connection may sit silent (seconds); ``upstream_timeout`` bounds each upstream read.
    ``record`` keeps what every request carried on the wire (:attr:`recorded`).
    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        idle_timeout: float = 120.0,
        upstream_timeout: float = 60.0,
        connect_timeout: float = 5.0,
        history_size: int = 10_000,
        record: bool = False,
    ) -> None:
        self.upstream = upstream
        self.idle_timeout = idle_timeout
        self.upstream_timeout = upstream_timeout
        self.connect_timeout = connect_timeout
        self.port = 0
        self._lock = threading.Lock()
        self._listen_changed = threading.Condition(self._lock)
        self._stop_event = threading.Event()
        self._listener: socket.socket | None = None
        self._refusing = False
        self._rules: list[Fault] = []
        self._socks: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._history: collections.deque[Record] = collections.deque(maxlen=history_size)
        self._recorded: collections.deque[WireRequest] = collections.deque(maxlen=history_size)
        #: keep a :class:`WireRequest` for each request from now on (see :attr:`recorded`)
        self.record = record
        #: ``rewrite(request, response_head, body) -> (head, body)`` changes each relayed answer
        #: (the body's length must stay the same): a server that answers as another kind would
        self.rewrite: Callable[[Request, bytes, bytes], tuple[bytes, bytes]] | None = None
        self._stats = self._zero_stats()

    # -- public API ------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``: give this to the client as its S3 endpoint."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def start(self) -> FaultProxy:
        """Bind a free loopback port and start accepting connections."""
        if self._listener is not None:
            raise RuntimeError("FaultProxy already started")
        self._stop_event.clear()
        self._refusing = False
        self._listener = self._bind_free_port()
        self.port = int(self._listener.getsockname()[1])
        self._listener.listen(128)
        self._spawn(self._accept_loop, "accept")
        self._apply_refuse()  # rules installed before start() may say refuse
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every socket, wake every thread and join them (within ``timeout`` overall)."""
        self._stop_event.set()
        with self._lock:
            listener, self._listener = self._listener, None
            self._listen_changed.notify_all()
            socks = list(self._socks)
            threads = list(self._threads)
        if listener is not None:
            _shutdown(listener)
            listener.close()
        for sock in socks:
            _shutdown(sock)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def set_rules(self, rules: Iterable[Fault]) -> None:
        """Replace the rules (first firing rule wins); their counters restart from zero."""
        new_rules = list(rules)
        for rule in new_rules:
            rule.restart()
        with self._lock:
            self._rules = new_rules
        self._apply_refuse()

    def add_rule(self, rule: Fault) -> None:
        """Append one rule, keeping the installed ones and their counters."""
        rule.restart()
        with self._lock:
            self._rules.append(rule)
        self._apply_refuse()

    def clear(self) -> None:
        """Remove every rule: plain forwarding again (counters in :attr:`stats` are kept)."""
        self.set_rules([])

    @property
    def rules(self) -> list[Fault]:
        with self._lock:
            return list(self._rules)

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of the counters.

        ``connections`` (accepted), ``open_connections``, ``requests`` (parsed), ``forwarded``
        (relayed upstream), ``methods`` (requests by method) and ``faults`` (fired, by kind;
        counted when the proxy decides, ``refuse`` once per activation).
        """
        with self._lock:
            snapshot = dict(self._stats)
            snapshot["methods"] = dict(self._stats["methods"])
            snapshot["faults"] = dict(self._stats["faults"])
            snapshot["open_connections"] = sum(1 for t in self._threads if "conn" in t.name)
            return snapshot

    def reset_stats(self) -> None:
        """Zero :attr:`stats` and empty :attr:`history` and :attr:`recorded`."""
        with self._lock:
            self._stats = self._zero_stats()
            self._history.clear()
            self._recorded.clear()

    @property
    def history(self) -> list[Record]:
        """What happened to each request, oldest first (bounded by ``history_size``)."""
        with self._lock:
            return list(self._history)

    @property
    def recorded(self) -> list[WireRequest]:
        """What each request carried on the wire while :attr:`record` was on, oldest first
        (bounded by ``history_size``). Read it once the client is done: a request still in
        flight may not have its body or status filled in yet."""
        with self._lock:
            return list(self._recorded)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- listening and refusing ------------------------------------------------------------

    @staticmethod
    def _bind_free_port() -> socket.socket:
        # Bind an explicit port number (not 0) so that Linux keeps it reserved when the
        # listener is shut down for ``refuse`` and a later listen() resumes on the same port.
        for _ in range(50):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            return sock
        raise RuntimeError("no free loopback port")

    def _apply_refuse(self) -> None:
        with self._lock:
            refuse = any(rule.kind == "refuse" for rule in self._rules)
            if refuse == self._refusing or self._listener is None:
                return
            self._refusing = refuse
            if refuse:
                self._stats["faults"]["refuse"] += 1
                _shutdown(self._listener)  # no longer listening: connects get ECONNREFUSED
                for sock in self._socks:
                    _shutdown(sock)
            else:
                self._relisten()
            self._listen_changed.notify_all()

    def _relisten(self) -> None:
        """Listen again on the same port after ``refuse`` (called with the lock held)."""
        assert self._listener is not None
        try:
            self._listener.listen(128)
            if self._listener.getsockname()[1] == self.port:
                return
        except OSError:
            pass
        # Not Linux-like: the port was released. Re-bind it (SO_REUSEADDR covers TIME_WAIT).
        self._listener.close()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(128)
        self._listener = sock

    def _accept_loop(self) -> None:
        while not self.stopping:
            with self._lock:
                while self._refusing and not self.stopping:
                    self._listen_changed.wait()
                listener = self._listener
            if listener is None:
                return
            try:
                sock, _ = listener.accept()
            except OSError:
                if not (self.stopping or self._refusing):
                    self._stop_event.wait(0.05)  # e.g. EMFILE: back off, do not spin
                continue
            self._serve(sock)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(self.idle_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if self.stopping or self._refusing:
                _abort(sock)
                return
            self._stats["connections"] += 1
            self._socks.add(sock)
            number = self._stats["connections"]
        self._spawn(_Connection(self, sock).run, f"conn-{number}")

    # -- bookkeeping used by connections ---------------------------------------------------

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=self._run_tracked, args=(target,), daemon=True)
        thread.name = f"faultproxy-{self.port}-{name}"
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _run_tracked(self, target: Callable[[], None]) -> None:
        try:
            target()
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.add(sock)
            stopping = self.stopping
        if stopping:
            _shutdown(sock)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.discard(sock)

    def _admit(self, head: bytes) -> Request:
        with self._lock:
            self._stats["requests"] += 1
            index = self._stats["requests"]
        request = _parse_request(head, index)
        with self._lock:
            methods = self._stats["methods"]
            methods[request.method] = methods.get(request.method, 0) + 1
        return request

    def _choose(self, request: Request) -> tuple[Fault | None, WireRequest | None]:
        """Offer ``request`` to the rules in order: the one that fires, if any, and the
        request's wire record, when recording."""
        with self._lock:
            fault = next((rule for rule in self._rules if rule.decide(request)), None)
            action = "forward" if fault is None or fault.kind == "pass" else fault.kind
            if action != "forward":
                self._stats["faults"][action] += 1
            self._history.append(Record(request.index, request.method, request.target, action))
            wire = None
            if self.record:
                wire = WireRequest(
                    request.index, request.method, request.target, request.path,
                    request.query, dict(request.headers), action,
                )  # fmt: skip
                self._recorded.append(wire)
        return fault, wire

    def _count_forwarded(self) -> None:
        with self._lock:
            self._stats["forwarded"] += 1

    def _request_id(self, request: Request) -> str:
        return f"FAULTPROXY{self.port:05d}{request.index:08d}"

    def _wait_or_stop(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the proxy stops first; True if it stopped."""
        return self._stop_event.wait(seconds)

    @staticmethod
    def _zero_stats() -> dict[str, Any]:
        return {
            "connections": 0,
            "requests": 0,
            "forwarded": 0,
            "methods": {},
            "faults": {kind: 0 for kind in FAULT_KINDS if kind != "pass"},
        }


#: the bucket of the fault suite's SeaweedFS
FAULTS_BUCKET = "faults-bucket"


def proxy_threads(proxy: FaultProxy) -> list[str]:
    """Names of the live threads that belong to ``proxy``."""
    return [t.name for t in threading.enumerate() if t.name.startswith(f"faultproxy-{proxy.port}-")]

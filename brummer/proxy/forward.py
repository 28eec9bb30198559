"""Forwarding: a small HTTP/1.1 client with keep-alive reuse, and a byte-for-byte tunnel.

This is the data path of the proxy. It is *not* a general HTTP client: it speaks just enough
HTTP/1.1 to relay one request to a development server on 127.0.0.1 and stream the answer
back (Content-Length, chunked and close-delimited bodies; ``101 Switching Protocols`` for
WebSocket upgrades). Upstream connections are kept alive and reused through
:class:`UpstreamPool`; a request never waits for a pooled connection, it opens a new one.

Guarantees: hop-by-hop headers never cross the proxy; once a response head has arrived,
its body is relayed as it arrives (no read timeout, so SSE and long-poll stay open as long as
the upstream keeps them open); :meth:`UpstreamPool.close` unblocks every thread reading from
an upstream by shutting its socket down.
"""

from __future__ import annotations

import contextlib
import html
import io
import selectors
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

from brummer.contracts import BLOCKING, Cleanup, ThreadSafety, TSLock, contract
from brummer.errors import BrummerError, ErrorCode

__all__ = [
    "HOP_BY_HOP",
    "UpstreamPool",
    "UpstreamResponse",
    "error_page",
    "request_headers",
    "response_headers",
    "tunnel",
]

COMPONENT = "proxy"
CONNECT_TIMEOUT = 5.0  # seconds to open a TCP connection to an upstream on this machine
READ_CHUNK = 65536  # largest piece read from a socket at once
MAX_HEAD_LINE = 65536  # longest status or header line accepted from an upstream
MAX_HEADERS = 200  # most header lines accepted from an upstream
MAX_IDLE_PER_ORIGIN = 64  # idle keep-alive connections kept per upstream origin
MAX_IDLE_TOTAL = 256  # idle keep-alive connections kept in all (full mode reaches many hosts)
FRESH_IDLE = 0.5  # seconds a pooled connection is reused without checking it is still open

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


@contract(ThreadSafety.TS)
class UpstreamFailure(Exception):
    """The upstream could not be reached or broke the exchange.

    Thread safety: TS (immutable after construction).

    ``kind`` is "connect" (nothing listens), "timeout" (no answer in time) or "reset"
    (the connection broke or the answer was not HTTP).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Conn:
    """One TCP connection to an upstream origin; owned by one thread at a time."""

    __slots__ = ("idle_since", "origin", "rfile", "sock", "uses")

    def __init__(self, origin: tuple[str, int], sock: socket.socket) -> None:
        self.origin = origin
        self.sock = sock
        self.rfile = cast(io.BufferedReader, sock.makefile("rb", buffering=READ_CHUNK))
        self.uses = 0
        self.idle_since = 0.0

    def looks_dead(self) -> bool:
        """An idle keep-alive connection that is readable has been closed (or sent junk)."""
        try:
            self.sock.setblocking(False)
            try:
                self.sock.recv(1, socket.MSG_PEEK)
            finally:
                self.sock.setblocking(True)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return True  # readable while idle: EOF (b"") or unexpected bytes; never reuse

    def shutdown(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.sock.close()


@contract(ThreadSafety.TS, cleanup=Cleanup.MANUAL)
class UpstreamPool:
    """Keep-alive TCP connections to upstream origins, reused across requests.

    Thread safety: TS. Any thread may take and give back connections; a connection is used
    by one thread at a time. :meth:`close` shuts every connection down, in use or idle.

    Not for: connection limits. A request never waits for a pooled connection; when none is
    idle it opens a new one. Idle ones are bounded: ``MAX_IDLE_PER_ORIGIN`` per origin and
    ``max_idle`` in all (the least recently used is closed first).
    """

    def __init__(
        self, *, connect_timeout: float = CONNECT_TIMEOUT, max_idle: int = MAX_IDLE_TOTAL
    ) -> None:
        if isinstance(max_idle, bool) or not isinstance(max_idle, int) or max_idle < 0:
            raise BrummerError(
                COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                f"max_idle must be an int ≥ 0, not {max_idle!r}",
                hint="pass how many idle upstream connections to keep, e.g. 256",
            )
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._lock = TSLock("proxy.pool")  # guards _idle, _lru, _all, _closed; no I/O under it
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._lru: dict[_Conn, None] = {}  # every idle connection, least recently used first
        self._all: set[_Conn] = set()
        self._closed = False

    @contract(ThreadSafety.TS, timeout=CONNECT_TIMEOUT)
    def take(self, origin: tuple[str, int]) -> tuple[_Conn, bool]:
        """An idle connection to ``origin`` or a new one; returns it and whether it was reused.

        Thread safety: TS.

        Raises:
            UpstreamFailure: "connect" when nothing accepts connections there.
            BrummerError: INVALID_STATE after :meth:`close`.
        """
        while True:
            with self._lock:
                self._check_open()
                idle = self._idle.get(origin)
                conn = idle.pop() if idle else None
                if conn is not None:
                    self._lru.pop(conn, None)
                    if not idle:
                        del self._idle[origin]  # full mode meets many origins: no empty lists
            if conn is None:
                break
            # A connection idle for a moment only is almost never closed yet (keep-alive
            # timeouts are seconds); exchange() retries the rare one that was.
            if time.monotonic() - conn.idle_since > FRESH_IDLE and conn.looks_dead():
                self._discard(conn)
                continue
            return conn, True
        try:
            sock = socket.create_connection(origin, timeout=self._connect_timeout)
        except TimeoutError as exc:
            raise UpstreamFailure("timeout", f"connecting timed out: {exc}") from exc
        except OSError as exc:
            raise UpstreamFailure("connect", exc.strerror or str(exc)) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._adopt(_Conn(origin, sock)), False

    @contract(ThreadSafety.TS)
    def give_back(self, conn: _Conn, *, reusable: bool) -> None:
        """Return a connection after a complete exchange; closed unless ``reusable``.

        Thread safety: TS.
        """
        if reusable:
            evicted: _Conn | None = None
            with self._lock:
                idle = self._idle.get(conn.origin, [])
                kept = not self._closed and conn in self._all and len(idle) < MAX_IDLE_PER_ORIGIN
                if kept:
                    conn.uses += 1
                    conn.idle_since = time.monotonic()
                    idle.append(conn)
                    self._idle[conn.origin] = idle
                    self._lru[conn] = None
                    if len(self._lru) > self._max_idle:
                        evicted = next(iter(self._lru))
                        del self._lru[evicted]
                        others = self._idle[evicted.origin]
                        others.remove(evicted)
                        if not others:
                            del self._idle[evicted.origin]
            if evicted is not None:
                self._discard(evicted)
            if kept:
                return
        self._discard(conn)

    @contract(ThreadSafety.TS)
    def track(self, sock: socket.socket) -> _Conn:
        """Adopt a socket (a tunnel's upstream side) so that :meth:`close` shuts it down.

        Thread safety: TS. Give it back with ``give_back(conn, reusable=False)``.
        """
        return self._adopt(_Conn(("", 0), sock))

    def _adopt(self, conn: _Conn) -> _Conn:
        """Count ``conn`` among the open connections; once the pool is closed, close it and raise."""
        with self._lock:
            closed = self._closed
            if not closed:
                self._all.add(conn)
        if closed:
            conn.close()
            self._check_open()
        return conn

    @contract(ThreadSafety.TS)
    def connection_count(self) -> int:
        """How many upstream connections are open (idle and in use).

        Thread safety: TS.
        """
        with self._lock:
            return len(self._all)

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def close(self) -> None:
        """Shut down every upstream connection, idle or in use; idempotent.

        Thread safety: TS. Threads reading from an upstream see end-of-stream at once.
        """
        with self._lock:
            self._closed = True
            conns = list(self._all)
            idle = [conn for conns_of in self._idle.values() for conn in conns_of]
            self._idle.clear()
            self._lru.clear()
        for conn in conns:
            conn.shutdown()  # a thread reading from an in-use one sees EOF at once
        for conn in idle:
            self._discard(conn)  # in-use ones are closed by their owner through give_back

    def _discard(self, conn: _Conn) -> None:
        with self._lock:
            self._all.discard(conn)
        conn.shutdown()
        conn.close()

    def _check_open(self) -> None:
        if self._closed:
            raise BrummerError(
                COMPONENT,
                ErrorCode.INVALID_STATE,
                "the upstream pool is closed",
                hint="the proxy was stopped; start it again before forwarding",
            )


@contract(ThreadSafety.TS)
def request_headers(
    environ: dict[str, Any], upstream_host: str, *, strip_encodings: bool = False
) -> list[tuple[str, str]]:
    """The headers to send upstream: end-to-end headers of the client plus X-Forwarded-*.

    Thread safety: TS.

    ``Host`` becomes the upstream's own; hop-by-hop headers and those named in
    ``Connection`` are dropped. With ``strip_encodings``, ``Accept-Encoding`` keeps only
    gzip and deflate (so an HTML page can be decoded to inject the monitor script).
    """
    connection_named = {
        token.strip().lower() for token in environ.get("HTTP_CONNECTION", "").split(",")
    }
    out: list[tuple[str, str]] = [("Host", upstream_host)]
    forwarded_for = ""
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
            if name in HOP_BY_HOP or name in connection_named or name in {"host", "expect"}:
                continue
            if name == "x-forwarded-for":
                forwarded_for = value
                continue
            if strip_encodings and name == "accept-encoding":
                kept = [
                    part
                    for part in value.split(",")
                    if part.split(";")[0].strip().lower() in {"gzip", "deflate", "identity"}
                ]
                out.append((name.title(), ", ".join(p.strip() for p in kept) or "identity"))
                continue
            out.append((name.title(), value))
        elif key == "CONTENT_TYPE" and value:
            out.append(("Content-Type", value))
    remote = environ.get("REMOTE_ADDR", "")
    out.append(("X-Forwarded-For", f"{forwarded_for}, {remote}" if forwarded_for else remote))
    out.append(("X-Forwarded-Host", environ.get("HTTP_HOST", "")))
    out.append(("X-Forwarded-Proto", environ.get("wsgi.url_scheme", "http")))
    out.append(("X-Forwarded-Port", str(environ.get("SERVER_PORT", ""))))
    return out


@contract(ThreadSafety.TS)
def response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """End-to-end response headers: hop-by-hop ones and those named in Connection dropped.

    Thread safety: TS. Pure.
    """
    items = list(headers)
    named = {
        token.strip().lower()
        for name, value in items
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [
        (name, value)
        for name, value in items
        if name.lower() not in HOP_BY_HOP and name.lower() not in named
    ]


def _encode_head(start_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [start_line]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


@contract(ThreadSafety.ST, cleanup=Cleanup.MANUAL)
class UpstreamResponse:
    """The upstream's answer to one request: status, headers and a body iterator.

    Thread safety: ST. Owned by the thread serving the request.

    Iterate it (once) for the body pieces as they arrive; :meth:`close` gives the
    connection back to the pool (reused only when the body was read to its end).
    """

    def __init__(
        self,
        pool: UpstreamPool,
        conn: _Conn,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        *,
        head_only: bool,
        version: str,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.raw_head = b""
        self._pool = pool
        self._conn: _Conn | None = conn
        self._done = False
        self._iterated = False
        lower = {name.lower(): value for name, value in headers}
        self.content_length: int | None = None
        self._chunked = "chunked" in lower.get("transfer-encoding", "").lower()
        lengths = {
            part.strip()
            for name, value in headers
            if name.lower() == "content-length"
            for part in value.split(",")
        }
        if self._chunked:
            # Transfer-Encoding wins (RFC 9112 §6.3); a Content-Length passed on beside the
            # re-framed body would put the client's connection out of step.
            self.headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
        elif len(lengths) > 1:
            raise UpstreamFailure("reset", f"conflicting Content-Length values {sorted(lengths)}")
        elif lengths:
            (length,) = lengths
            try:
                self.content_length = int(length)
            except ValueError as exc:
                raise UpstreamFailure("reset", f"bad Content-Length {length!r}") from exc
            if self.content_length < 0:
                raise UpstreamFailure("reset", f"negative Content-Length {length!r}")
        self._no_body = head_only or status in {204, 304} or 100 <= status < 200
        self._reusable = (
            version == "HTTP/1.1"
            and "close" not in lower.get("connection", "").lower()
            and (self._no_body or self._chunked or self.content_length is not None)
        )

    @contract(ThreadSafety.ST)
    def header(self, name: str, default: str = "") -> str:
        """The first value of header ``name`` (case-insensitive), or ``default``.

        Thread safety: ST.
        """
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return default

    @contract(ThreadSafety.ST)
    def connection(self) -> _Conn:
        """The connection, for tunnelling after ``101``; the response no longer owns it.

        Thread safety: ST.
        """
        conn = self._conn
        if conn is None:
            raise UpstreamFailure("reset", "connection already released")
        self._conn = None
        return conn

    def __iter__(self) -> Iterator[bytes]:
        conn = self._conn
        if self._iterated:
            raise UpstreamFailure("reset", "the response body was already read")
        self._iterated = True
        if conn is None or self._no_body:
            self._done = True
            return
        rfile = conn.rfile
        try:
            if self._chunked:
                yield from self._chunks(rfile)
            elif self.content_length is not None:
                remaining = self.content_length
                while remaining:
                    data = rfile.read1(min(remaining, READ_CHUNK))
                    if not data:
                        raise UpstreamFailure(
                            "reset", f"upstream closed with {remaining} bytes of the body unsent"
                        )
                    remaining -= len(data)
                    yield data
            else:
                while data := rfile.read1(READ_CHUNK):
                    yield data
        except OSError as exc:
            raise UpstreamFailure("reset", f"upstream connection broke: {exc}") from exc
        self._done = True

    @staticmethod
    def _chunks(rfile: Any) -> Iterator[bytes]:
        while True:
            line = rfile.readline(MAX_HEAD_LINE)
            if not line:
                raise UpstreamFailure("reset", "upstream closed inside a chunked body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise UpstreamFailure("reset", f"bad chunk size line {line[:40]!r}") from exc
            if size == 0:
                while True:  # trailers, ignored
                    trailer = rfile.readline(MAX_HEAD_LINE)
                    if trailer in {b"\r\n", b"\n", b""}:
                        return
            remaining = size
            while remaining:
                data = rfile.read1(min(remaining, READ_CHUNK))
                if not data:
                    raise UpstreamFailure("reset", "upstream closed inside a chunk")
                remaining -= len(data)
                yield data
            if rfile.readline(MAX_HEAD_LINE) not in {b"\r\n", b"\n"}:
                raise UpstreamFailure("reset", "chunk not terminated by CRLF")

    @contract(ThreadSafety.ST)
    def close(self) -> None:
        """Give the connection back: reused only after a complete body. Idempotent.

        Thread safety: ST.
        """
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.give_back(conn, reusable=self._done and self._reusable)


def _quick_ack(sock: socket.socket) -> None:
    # An upstream that writes its head and body separately (werkzeug does) without
    # TCP_NODELAY stalls ~40 ms on a reused connection until our delayed ACK; ask Linux
    # to acknowledge at once.
    option = getattr(socket, "TCP_QUICKACK", None)
    if option is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)


def _read_head(rfile: Any) -> tuple[str, int, str, list[tuple[str, str]], bytes]:
    raw = [rfile.readline(MAX_HEAD_LINE + 1)]
    line = raw[0]
    if not line:
        raise UpstreamFailure("reset", "upstream closed the connection without answering")
    try:
        version, code_text, *rest = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        status = int(code_text)
    except ValueError as exc:
        raise UpstreamFailure("reset", f"upstream answer is not HTTP: {line[:60]!r}") from exc
    if not version.startswith("HTTP/") or not 100 <= status <= 999:
        raise UpstreamFailure("reset", f"upstream answer is not HTTP: {line[:60]!r}")
    headers: list[tuple[str, str]] = []
    while True:
        line = rfile.readline(MAX_HEAD_LINE + 1)
        raw.append(line)
        if line in {b"\r\n", b"\n"}:
            break
        if not line:
            raise UpstreamFailure("reset", "upstream closed inside the response head")
        if len(headers) >= MAX_HEADERS or len(line) > MAX_HEAD_LINE:
            raise UpstreamFailure("reset", "upstream response head too large")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise UpstreamFailure("reset", f"malformed upstream header line {line[:60]!r}")
        headers.append((name.strip(), value.strip()))
    return version, status, rest[0] if rest else "", headers, b"".join(raw)


def _body_pieces(body: Any, length: int | None, chunked: bool) -> Iterator[bytes]:
    if chunked:
        while data := body.read(READ_CHUNK):
            yield b"%x\r\n%s\r\n" % (len(data), data)
        yield b"0\r\n\r\n"
        return
    remaining = length or 0
    while remaining:
        data = body.read(min(remaining, READ_CHUNK))
        if not data:
            raise ConnectionError(f"client sent {length} bytes less {remaining} declared")
        remaining -= len(data)
        yield data


@contract(ThreadSafety.TS, timeout=BLOCKING)
def exchange(
    pool: UpstreamPool,
    origin: tuple[str, int],
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: Any,
    *,
    content_length: int | None,
    chunked_body: bool,
    timeout: float,
    on_request_bytes: Callable[[int], None] | None = None,
) -> UpstreamResponse:
    """Send one request to ``origin`` and read the response head (not the body).

    Thread safety: TS.

    The request body is read from ``body`` (a file-like object) and streamed upstream.
    A reused connection that turns out to be closed is retried once on a new one when
    the request has no body. ``timeout`` bounds the wait for the response head.

    Raises:
        UpstreamFailure: connect, timeout or reset.
        ConnectionError: the client's body ended before its declared length.
    """
    out_headers = list(headers)
    if chunked_body:
        out_headers.append(("Transfer-Encoding", "chunked"))
    elif content_length:
        out_headers.append(("Content-Length", str(content_length)))
    elif method in {"POST", "PUT", "PATCH"}:
        out_headers.append(("Content-Length", "0"))
    head = _encode_head(f"{method} {target} HTTP/1.1", out_headers)
    has_body = chunked_body or bool(content_length)
    attempts = 1 if has_body else 2
    for attempt in range(attempts):
        conn, reused = pool.take(origin)
        try:
            sent = 0
            conn.sock.settimeout(timeout)
            if has_body:
                conn.sock.sendall(head)
                for piece in _body_pieces(body, content_length, chunked_body):
                    conn.sock.sendall(piece)
                    sent += len(piece)
            else:
                conn.sock.sendall(head)
            if on_request_bytes is not None:
                on_request_bytes(sent)
            _quick_ack(conn.sock)
            while True:  # interim answers (100 Continue, 102, 103 Early Hints) are skipped
                version, status, reason, resp_headers, raw = _read_head(conn.rfile)
                if not 100 <= status < 200 or status == 101 or method == "CONNECT":
                    break
            conn.sock.settimeout(None)
            response = UpstreamResponse(
                pool,
                conn,
                status,
                reason,
                resp_headers,
                head_only=method == "HEAD",
                version=version,
            )
            response.raw_head = raw
            return response
        except TimeoutError as exc:
            pool.give_back(conn, reusable=False)
            raise UpstreamFailure("timeout", f"no answer within {timeout:g} s") from exc
        except UpstreamFailure as exc:
            pool.give_back(conn, reusable=False)
            if reused and attempt + 1 < attempts and exc.kind == "reset":
                # A pooled connection that closed meanwhile, or that holds bytes a broken
                # earlier answer sent beyond its length: the request deserves a fresh one.
                continue
            raise
        except ConnectionError as exc:
            pool.give_back(conn, reusable=False)
            broken = isinstance(exc, BrokenPipeError | ConnectionResetError)
            if broken and reused and attempt + 1 < attempts:
                continue
            if isinstance(exc, BrokenPipeError | ConnectionResetError):
                raise UpstreamFailure("reset", f"upstream connection broke: {exc}") from exc
            raise
        except OSError as exc:
            pool.give_back(conn, reusable=False)
            raise UpstreamFailure("reset", f"upstream connection broke: {exc}") from exc
        except BaseException:
            pool.give_back(conn, reusable=False)
            raise
    raise UpstreamFailure("reset", "upstream closed the connection without answering")


@contract(ThreadSafety.TS, timeout=BLOCKING)
def tunnel(
    client: socket.socket,
    upstream: socket.socket,
    *,
    client_pending: bytes = b"",
    upstream_pending: bytes = b"",
) -> tuple[int, int]:
    """Copy bytes both ways until both directions have ended; returns (up, down) byte counts.

    Thread safety: TS.

    When one side ends its sending (EOF), the other side's sending direction is shut down
    too and the opposite direction keeps flowing until it ends as well. Any socket error
    ends the tunnel. Runs in the calling thread; unblocked by shutting either socket down.
    """
    up = down = 0
    client.settimeout(None)
    upstream.settimeout(None)
    if client_pending:
        upstream.sendall(client_pending)
        up += len(client_pending)
    if upstream_pending:
        client.sendall(upstream_pending)
        down += len(upstream_pending)
    peers = {client: upstream, upstream: client}
    open_reads = {client, upstream}
    with selectors.DefaultSelector() as selector:
        for each in open_reads:
            selector.register(each, selectors.EVENT_READ)
        while open_reads:
            for key, _ in selector.select():
                sock = upstream if key.fileobj is upstream else client
                try:
                    data = sock.recv(READ_CHUNK)
                except OSError:
                    data = b""
                    open_reads.clear()
                if data:
                    try:
                        peers[sock].sendall(data)
                    except OSError:
                        open_reads.clear()
                        break
                    if sock is client:
                        up += len(data)
                    else:
                        down += len(data)
                    continue
                open_reads.discard(sock)
                with contextlib.suppress(KeyError, ValueError):
                    selector.unregister(sock)
                with contextlib.suppress(OSError):
                    peers[sock].shutdown(socket.SHUT_WR)
            if not open_reads:
                break
    return up, down


@contract(ThreadSafety.TS)
def error_page(status: int, title: str, message: str, hint: str = "") -> bytes:
    """A small self-contained HTML error page (UTF-8).

    Thread safety: TS. Pure.
    """
    hint_html = f"<p>{html.escape(hint)}</p>" if hint else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{status} {html.escape(title)}</title></head>"
        "<body style='font-family:sans-serif;max-width:40em;margin:3em auto'>"
        f"<h1>{status} {html.escape(title)}</h1><p>{html.escape(message)}</p>{hint_html}"
        "<p><small>brummer proxy</small></p></body></html>"
    ).encode()

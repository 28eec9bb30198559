"""A werkzeug request handler that keeps client connections alive.

werkzeug's development handler answers every request with ``Connection: close`` and, after
each response, drains the socket for 10 ms; both rule out keep-alive. This handler runs the
WSGI app itself: it frames the response (Content-Length or chunked), drains what is left of
the request body, and keeps the connection for the next request when that is safe.

Extra WSGI environ keys it provides:

- ``brummer.take_over``: a callable returning ``(socket, already_buffered_bytes)``; after
  it, the app owns the raw client socket (WebSocket and CONNECT tunnels) and the handler
  writes nothing more and closes the connection when the app returns.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import WSGIRequestHandler

from brummer.proxy.forward import UpstreamFailure

_log = logging.getLogger("brummer.proxy")

CLIENT_IDLE_TIMEOUT = 120.0  # seconds a client socket may stay silent (idle keep-alive, uploads)
DRAIN_LIMIT = 1 << 20  # request body bytes read and dropped so a connection can be reused


class _Body:
    """``wsgi.input`` limited to the declared Content-Length; remembers when it is used up."""

    __slots__ = ("_rfile", "remaining")

    def __init__(self, rfile: Any, length: int) -> None:
        self._rfile = rfile
        self.remaining = length

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        if size < 0 or size > self.remaining:
            size = self.remaining
        data: bytes = self._rfile.read(size)
        self.remaining -= len(data)
        if not data:
            self.remaining = 0
            raise ConnectionError("client closed the connection inside the request body")
        return data

    def readline(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        limit = self.remaining if size < 0 else min(size, self.remaining)
        data: bytes = self._rfile.readline(limit)
        self.remaining -= len(data)
        return data

    def drain(self) -> bool:
        """Read and drop the rest; False when too much is left to be worth it."""
        if self.remaining > DRAIN_LIMIT:
            return False
        while self.remaining > 0:
            if not self.read(min(self.remaining, 65536)):
                return False
        return True


class KeepAliveHandler(WSGIRequestHandler):
    """WSGIRequestHandler with HTTP/1.1 keep-alive and socket take-over.

    Subclassed per listening port with ``on_open``/``on_close`` hooks set (see server.py).
    """

    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # so errors for garbage lines still get a status line
    timeout = CLIENT_IDLE_TIMEOUT
    thread_name = "brummer-proxy-conn"
    on_open: Callable[[socket.socket], None] | None = None
    on_close: Callable[[socket.socket], None] | None = None

    def setup(self) -> None:
        threading.current_thread().name = self.thread_name
        self.connection_taken = False
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hook = type(self).on_open
        if hook is not None:
            hook(self.connection)

    def finish(self) -> None:
        try:
            with contextlib.suppress(OSError):
                super().finish()
        finally:
            hook = type(self).on_close
            if hook is not None:
                hook(self.connection)

    def handle(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().handle()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        # http.client's header parser tolerates lines without a colon (it starts a "body"
        # there and records a defect); a proxy must not guess, so such a request is a 400.
        if self.headers.defects or self.headers.get_payload():
            self.close_connection = True
            self.send_error(400, "Malformed header line")
            return False
        return True

    def send_response(self, code: int, message: str | None = None) -> None:
        # No Server/Date headers of our own: the upstream's pass through.
        self.send_response_only(code, message)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - base class name
        return

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class name
        return

    def _take_over(self) -> tuple[socket.socket, bytes]:
        self.connection_taken = True
        self.close_connection = True
        sock: socket.socket = self.connection
        pending = b""
        sock.setblocking(False)
        try:
            got = self.rfile.read1(65536)
            pending = got or b""
        except (BlockingIOError, OSError):
            pending = b""
        finally:
            sock.setblocking(True)
        return sock, pending

    def _drain_chunked(self, stream: Any) -> None:
        # Closing with unread bytes makes the kernel send RST, which can destroy the response
        # before the client reads it: read (briefly, boundedly) what the client still sends.
        total = 0
        with contextlib.suppress(OSError, ValueError):
            self.connection.settimeout(0.5)
            while total < DRAIN_LIMIT and (data := stream.read(65536)):
                total += len(data)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        keep_alive = not self.close_connection
        body: _Body | None = None
        if not environ.get("wsgi.input_terminated"):
            text = environ.get("CONTENT_LENGTH", "") or "0"
            try:
                length = int(text)
                if length < 0:
                    raise ValueError(text)
            except ValueError:
                self.close_connection = True
                self.send_error(400, f"Bad Content-Length {text!r}")
                return
            body = _Body(self.rfile, length)
            environ["wsgi.input"] = body
        else:
            keep_alive = False  # a chunked upload is read by the app; never reuse after it
        environ["brummer.take_over"] = self._take_over
        is_head = environ["REQUEST_METHOD"] == "HEAD"
        http10 = self.request_version != "HTTP/1.1"

        state: dict[str, Any] = {"status": None, "headers": None, "sent": False, "chunk": False}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            if exc_info and state["sent"]:
                raise exc_info[1].with_traceback(exc_info[2])
            state["status"] = status
            state["headers"] = headers
            return write

        def write(data: bytes) -> None:
            nonlocal keep_alive
            if not state["sent"]:
                state["sent"] = True
                status: str = state["status"]
                headers: list[tuple[str, str]] = state["headers"]
                code = int(status.split(None, 1)[0])
                names = {name.lower() for name, _ in headers}
                lines = [f"HTTP/1.1 {status}"]
                lines.extend(f"{name}: {value}" for name, value in headers)
                framed = (
                    "content-length" in names or is_head or 100 <= code < 200 or code in {204, 304}
                )
                if not framed:
                    if http10:
                        keep_alive = False
                    else:
                        state["chunk"] = True
                        lines.append("Transfer-Encoding: chunked")
                if not keep_alive:
                    lines.append("Connection: close")
                elif http10:
                    lines.append("Connection: keep-alive")
                head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
                if is_head:  # the headers of a GET, never its body (the proxy's own pages)
                    self.wfile.write(head)
                elif state["chunk"] and data:
                    self.wfile.write(head + b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    self.wfile.write(head + data)
                return
            if not data or is_head:
                return
            if state["chunk"]:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)

        app_iter: Iterable[bytes] | None = None
        try:
            app_iter = self.server.app(environ, start_response)
            for data in app_iter:
                write(data)
            if self.connection_taken:
                return
            if not state["sent"]:
                write(b"")
            if state["chunk"]:
                self.wfile.write(b"0\r\n\r\n")
        except (ConnectionError, TimeoutError, ValueError):
            self.close_connection = True  # the client went away, or the socket was shut down
        except Exception as exc:
            self.close_connection = True
            if not isinstance(exc, UpstreamFailure):
                _log.exception("proxy: unexpected error serving %s", environ.get("REQUEST_URI"))
            if not state["sent"] and not self.connection_taken:
                with contextlib.suppress(OSError):
                    self.send_error(500, "Internal proxy error")
            # headers already sent: closing without the final chunk tells the client it broke
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
        if body is None and not self.connection_taken:
            self._drain_chunked(environ["wsgi.input"])
        if not keep_alive or self.connection_taken:
            self.close_connection = True
        elif body is not None and body.remaining:
            try:
                if not body.drain():
                    self.close_connection = True
            except (OSError, ValueError):
                self.close_connection = True

"""Real upstream servers for the proxy tests: a werkzeug app and a raw socket misbehaver.

The werkzeug app has HTML, JSON, chunked, SSE, slow, gzip, echo and WebSocket endpoints.
The WebSocket endpoint is a tiny echo written here (handshake plus unmasking of client
frames), served through ``environ["werkzeug.socket"]`` like a dev server's HMR socket.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from brummer.proxy._handler import KeepAliveHandler

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PAGE = "<!doctype html><html><head><title>t</title></head><body><p>hello</p></body></html>"


class Upstream:
    """A werkzeug server on 127.0.0.1 in a thread, with gates the tests open."""

    def __init__(self, *, keep_alive: bool = False) -> None:
        self.release = threading.Event()  # lets /slow and /sse finish
        self.sse_started = threading.Event()
        self.peers: list[int] = []  # client ports seen, one per request
        self.requests: list[dict[str, Any]] = []
        self.ws_closed = threading.Event()
        self.csp = "default-src 'self'; script-src 'self' 'nonce-abc' 'strict-dynamic'"
        handler = KeepAliveHandler if keep_alive else None
        self.server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=handler
        )
        self.port = self.server.port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, name="test-upstream"
        )
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            return self._websocket(environ, start_response)
        return self._app(environ, start_response)

    @Request.application  # type: ignore[arg-type]
    def _app(self, request: Request) -> Response:
        self.peers.append(int(request.environ.get("REMOTE_PORT", 0)))
        self.requests.append(
            {"path": request.path, "method": request.method, "headers": dict(request.headers)}
        )
        path = request.path
        if path in {"/", "/html"}:
            return Response(PAGE, content_type="text/html; charset=utf-8")
        if path == "/nohead":
            return Response("<p>bare fragment</p>", content_type="text/html")
        if path == "/csp":
            resp = Response(PAGE, content_type="text/html")
            resp.headers["Content-Security-Policy"] = self.csp
            return resp
        if path == "/gzip":
            body = gzip.compress(PAGE.encode())
            resp = Response(body, content_type="text/html")
            resp.headers["Content-Encoding"] = "gzip"
            return resp
        if path == "/json":
            return Response(json.dumps({"ok": True}), content_type="application/json")
        if path == "/echo":
            doc = {
                "method": request.method,
                "body": request.get_data(as_text=True),
                "headers": dict(request.headers),
                "args": request.args.to_dict(),
            }
            return Response(json.dumps(doc), content_type="application/json")
        if path == "/chunked":

            def parts() -> Iterator[bytes]:
                for i in range(5):
                    yield f"part-{i};".encode()

            return Response(parts(), content_type="text/plain")
        if path == "/sse":

            def events() -> Iterator[bytes]:
                yield b"data: first\n\n"
                self.sse_started.set()
                self.release.wait(10)
                yield b"data: second\n\n"

            return Response(events(), content_type="text/event-stream")
        if path in {"/html-stream", "/html-stream-gzip"}:
            compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)

            def encode(data: bytes) -> bytes:
                if path == "/html-stream":
                    return data
                return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)

            def page() -> Iterator[bytes]:  # server-side rendering that streams its HTML
                yield encode(
                    b"<!doctype html><html><head><title>s</title></head><body><p>shell</p>"
                )
                self.sse_started.set()
                self.release.wait(10)
                yield encode(b"<p>late part</p></body></html>")
                if path != "/html-stream":
                    yield compressor.flush()

            resp = Response(page(), content_type="text/html; charset=utf-8")
            if path != "/html-stream":
                resp.headers["Content-Encoding"] = "gzip"
            return resp
        if path == "/endless":

            def endless() -> Iterator[bytes]:
                for _ in range(5000):  # ~320 MB at most; stops once nobody reads
                    if self.release.is_set():
                        return
                    yield b"x" * 65536

            return Response(endless(), content_type="application/octet-stream")
        if path == "/slow":
            self.release.wait(10)
            return Response("late", content_type="text/plain")
        if path == "/big":
            return Response(b"x" * 300_000, content_type="application/octet-stream")
        if path == "/status":
            return Response("nope", status=int(request.args.get("code", "500")))
        return Response("not found", status=404)

    def _websocket(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        sock: socket.socket = environ["werkzeug.socket"]
        key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        try:
            while True:
                frame = read_frame(sock)
                if frame is None:
                    break
                opcode, payload = frame
                if opcode == 8:  # close: answer and end
                    sock.sendall(encode_frame(payload, opcode=8, mask=False))
                    break
                sock.sendall(encode_frame(payload, opcode=opcode, mask=False))
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            self.ws_closed.set()
        # The socket is finished with; werkzeug must not write a response on it.
        raise ConnectionResetError("websocket finished")


def recv_exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            return None
        data += more
    return data


def read_frame(sock: socket.socket) -> tuple[int, bytes] | None:
    head = recv_exact(sock, 2)
    if head is None:
        return None
    opcode = head[0] & 0x0F
    masked = head[1] & 0x80
    length = head[1] & 0x7F
    if length == 126:
        ext = recv_exact(sock, 2)
        if ext is None:
            return None
        length = struct.unpack("!H", ext)[0]
    elif length == 127:
        ext = recv_exact(sock, 8)
        if ext is None:
            return None
        length = struct.unpack("!Q", ext)[0]
    mask = recv_exact(sock, 4) if masked else b"\0\0\0\0"
    payload = recv_exact(sock, length) if length else b""
    if mask is None or payload is None:
        return None
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def encode_frame(payload: bytes, *, opcode: int = 1, mask: bool = True) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = b"\x01\x02\x03\x04"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawUpstream:
    """A socket server that answers every request with a fixed (possibly broken) reply."""

    def __init__(self, reply: bytes, *, reset: bool = True) -> None:
        self.reply = reply
        self.reset = reset
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-raw-upstream")
        self._thread.start()

    def _run(self) -> None:
        self.listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                    conn.sendall(self.reply)
                    if self.reset:  # RST instead of FIN
                        conn.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()

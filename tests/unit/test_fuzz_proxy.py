"""Fuzzing the proxy's request handling with raw, mostly malformed HTTP requests.

Every request gets a status line or a closed connection within a few seconds (never a hang),
never a 500 (a crash inside the proxy), and the proxy keeps serving valid requests.
"""

from __future__ import annotations

import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from hypothesis import given, settings, strategies as st

from brummer.proxy import ProxyServer


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt: str, *args: object) -> None:
        return

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length < 1 << 20:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815 - http.server's names


class JoiningServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True


_methods = st.sampled_from(
    ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "CONNECT", "BREW", "", "G\x00T"]
)
_targets = st.one_of(
    st.sampled_from(
        [
            "/",
            "/x?y=1",
            "*",
            "http://127.0.0.1:1/",
            "//double",
            "/__brummer__/",
            "/%zz",
            "/" + "a" * 9000,
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=30),
)
_versions = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9", "", "http/1.1"])
_headers = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "Host: x",
                "Content-Length: 5",
                "Content-Length: -1",
                "Content-Length: 99999999999",
                "Transfer-Encoding: chunked",
                "Connection: upgrade",
                "Upgrade: websocket",
                "Expect: 100-continue",
                "X-Long: " + "v" * 10000,
                ": no name",
                "NoColon",
            ]
        ),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    ),
    max_size=6,
)
_bodies = st.one_of(
    st.binary(max_size=64), st.sampled_from([b"0\r\n\r\n", b"zz\r\nbad\r\n", b"hello"])
)


def _exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            return b""
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def test_malformed_requests_never_hang_or_break_the_proxy() -> None:
    upstream = JoiningServer(("127.0.0.1", 0), Upstream)
    up = threading.Thread(target=upstream.serve_forever, kwargs={"poll_interval": 0.05})
    up.start()
    proxy = ProxyServer(port=0, telemetry=False, upstream_timeout=5.0)
    try:
        proxy.start()
        front = proxy.register_url(f"http://127.0.0.1:{upstream.server_address[1]}/", "app")
        port = int(front.rstrip("/").rsplit(":", 1)[1])

        @settings(max_examples=60, deadline=None)
        @given(_methods, _targets, _versions, _headers, _bodies)
        def fuzz(method: str, target: str, version: str, headers: list[str], body: bytes) -> None:
            head = (
                f"{method} {target} {version}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
            )
            answer = _exchange(port, head.encode("utf-8", "surrogateescape") + body)
            if answer:
                assert answer.startswith(b"HTTP/1."), answer[:80]
                status = int(answer.split(b" ", 2)[1])
                assert status != 500, answer[:300]  # refusals (4xx, 501, 505) are fine; crashes not

        fuzz()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok"
        conn.close()
    finally:
        proxy.stop()
        upstream.shutdown()
        upstream.server_close()
        up.join(10)

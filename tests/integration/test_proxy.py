"""The proxy against real werkzeug upstreams and real sockets on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from brummer.errors import BrummerError, ErrorCode
from brummer.events import Event, EventBus, EventType
from brummer.logs import LogStore
from brummer.proxy import ProxyServer
from brummer.proxy.telemetry import BROWSER_LOG_RULES
from tests.helpers import open_fd_count, wait_until
from tests.integration.proxy_upstream import (
    RawUpstream,
    Upstream,
    encode_frame,
    read_frame,
)

MONITOR_TAG = b'<script src="/__brummer__/monitor.js"'


class FakeLogStore:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, str, bool]] = []
        self.lock = threading.Lock()

    def add(self, process_id: str, process_name: str, content: str, is_error: bool = False) -> None:
        with self.lock:
            self.lines.append((process_id, process_name, content, is_error))


class FakeBus:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.handlers: dict[Any, Any] = {}

    def publish_async(self, event: Event) -> None:
        self.events.append(event)

    def subscribe(self, event_type: Any, handler: Any) -> str:
        self.handlers[event_type] = handler
        return "sub-1"

    def unsubscribe(self, sub_id: Any) -> None:
        self.handlers.clear()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def proxy() -> Iterator[ProxyServer]:
    server = ProxyServer(port=0, upstream_timeout=5.0)
    server.start()
    yield server
    server.stop()


def connect(url: str, timeout: float = 5.0) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    assert parts.hostname is not None
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def get(
    url: str,
    path: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    body: Any = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = connect(url)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


PAGE_HEADERS = {"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Dest": "document"}


def test_html_page_gets_one_monitor_tag_and_is_recorded(
    upstream: Upstream, proxy: ProxyServer
) -> None:
    base = proxy.register_url(upstream.url + "/", "web")
    status, headers, body = get(base, "/html", PAGE_HEADERS)
    assert status == 200
    assert body.count(MONITOR_TAG) == 1
    assert int(headers["content-length"]) == len(body)
    assert body.index(MONITOR_TAG) > body.index(b"<head>")
    assert wait_until(lambda: len(proxy.get_requests()) == 1)
    (req,) = proxy.get_requests_for_process("web")
    assert (req.method, req.status, req.process_name) == ("GET", 200, "web")
    assert req.url == f"{upstream.url}/html"
    assert req.response_size == len(body)
    assert req.duration > 0
    assert req.content_type.startswith("text/html")
    assert req.timestamp.tzinfo is not None
    assert not req.is_error


def test_json_xhr_and_fragment_without_head_handling(
    upstream: Upstream, proxy: ProxyServer
) -> None:
    base = proxy.register_url(upstream.url, "web")
    _, _, body = get(base, "/json", PAGE_HEADERS)
    assert json.loads(body) == {"ok": True}
    _, _, body = get(base, "/html", {"X-Requested-With": "XMLHttpRequest"})
    assert MONITOR_TAG not in body
    _, _, body = get(base, "/html", {"Accept": "text/html", "Sec-Fetch-Mode": "cors"})
    assert MONITOR_TAG not in body
    _, _, body = get(base, "/nohead", PAGE_HEADERS)
    assert body.startswith(MONITOR_TAG)
    assert wait_until(lambda: len(proxy.get_requests()) == 4)
    xhr = [r for r in proxy.get_requests() if r.is_xhr]
    assert len(xhr) == 2


def test_gzip_page_is_decoded_and_injected(upstream: Upstream, proxy: ProxyServer) -> None:
    base = proxy.register_url(upstream.url, "web")
    conn = connect(base)
    conn.request("GET", "/gzip", headers={**PAGE_HEADERS, "Accept-Encoding": "gzip, br"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.getheader("Content-Encoding") is None
    assert int(resp.getheader("Content-Length") or 0) == len(body)
    assert body.count(MONITOR_TAG) == 1
    assert b"<p>hello</p>" in body
    # br was taken out of Accept-Encoding so the page could be decoded
    assert upstream.requests[-1]["headers"]["Accept-Encoding"] == "gzip"


def test_gzip_passes_untouched_when_telemetry_is_off(
    upstream: Upstream, proxy: ProxyServer
) -> None:
    base = proxy.register_url(upstream.url, "web")
    proxy.enable_telemetry(False)
    conn = connect(base)
    conn.request("GET", "/gzip", headers={**PAGE_HEADERS, "Accept-Encoding": "gzip"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.getheader("Content-Encoding") == "gzip"
    assert MONITOR_TAG not in gzip.decompress(body)
    proxy.enable_telemetry(True)
    assert MONITOR_TAG in get(base, "/html", PAGE_HEADERS)[2]


def test_csp_is_relaxed_only_for_the_monitor(upstream: Upstream, proxy: ProxyServer) -> None:
    base = proxy.register_url(upstream.url, "web")
    _, headers, body = get(base, "/csp", PAGE_HEADERS)
    policy = headers["content-security-policy"]
    assert "'strict-dynamic'" in policy
    assert "'nonce-abc'" in policy
    nonce = policy.split("'nonce-")[2].split("'")[0]
    assert f'nonce="{nonce}"'.encode() in body
    assert "default-src 'self'" in policy


def test_request_headers_body_and_query_are_forwarded(
    upstream: Upstream, proxy: ProxyServer
) -> None:
    base = proxy.register_url(upstream.url, "web")
    status, _, body = get(
        base,
        "/echo?x=1",
        {"X-Custom": "yes", "Connection": "X-Drop", "X-Drop": "secret", "Keep-Alive": "5"},
        method="POST",
        body=b"payload",
    )
    doc = json.loads(body)
    assert status == 200
    assert doc["body"] == "payload"
    assert doc["args"] == {"x": "1"}
    sent = doc["headers"]
    assert sent["X-Custom"] == "yes"
    assert "X-Drop" not in sent
    assert "Keep-Alive" not in sent
    assert sent["Host"] == f"127.0.0.1:{upstream.port}"
    assert sent["X-Forwarded-For"] == "127.0.0.1"
    assert sent["X-Forwarded-Proto"] == "http"
    assert sent["X-Forwarded-Host"] == urlsplit(base).netloc
    assert wait_until(lambda: len(proxy.get_requests()) == 1)  # recorded after the last byte
    (req,) = proxy.get_requests()
    assert req.request_size == len(b"payload")


def test_chunked_request_body_is_streamed_upstream(upstream: Upstream, proxy: ProxyServer) -> None:
    base = proxy.register_url(upstream.url, "web")
    conn = connect(base)
    conn.request("PUT", "/echo", body=iter([b"ab", b"cd", b"ef"]), encode_chunked=True)
    doc = json.loads(conn.getresponse().read())
    conn.close()
    assert doc["body"] == "abcdef"


def test_chunked_response_is_relayed(upstream: Upstream, proxy: ProxyServer) -> None:
    base = proxy.register_url(upstream.url, "web")
    status, headers, body = get(base, "/chunked")
    assert status == 200
    assert headers.get("transfer-encoding") == "chunked"
    assert body == b"".join(f"part-{i};".encode() for i in range(5))


def test_sse_events_arrive_while_the_stream_stays_open(
    upstream: Upstream, proxy: ProxyServer
) -> None:
    base = proxy.register_url(upstream.url, "web")
    conn = connect(base)
    conn.request("GET", "/sse", headers={"Accept": "text/event-stream"})
    resp = conn.getresponse()
    assert resp.getheader("Content-Type") == "text/event-stream"
    assert resp.read1(100) == b"data: first\n\n"  # before the upstream has finished
    assert not upstream.release.is_set()
    upstream.release.set()
    rest = resp.read()
    conn.close()
    assert rest == b"data: second\n\n"
    assert wait_until(lambda: len(proxy.get_requests()) == 1)
    assert proxy.get_requests()[0].response_size == len(b"data: first\n\ndata: second\n\n")


def test_client_keep_alive_reuses_one_connection(upstream: Upstream, proxy: ProxyServer) -> None:
    base = proxy.register_url(upstream.url, "web")
    conn = connect(base)
    conn.request("GET", "/json")
    conn.getresponse().read()
    first = conn.sock
    for _ in range(10):
        conn.request("GET", "/json")
        assert conn.getresponse().read() == b'{"ok": true}'
    assert conn.sock is first
    assert proxy.metrics().active_connections == 1
    conn.close()
    assert wait_until(lambda: proxy.metrics().active_connections == 0)


def test_upstream_keep_alive_connections_are_reused(proxy: ProxyServer) -> None:
    keep = Upstream(keep_alive=True)
    try:
        base = proxy.register_url(keep.url, "api")
        conn = connect(base)
        for _ in range(20):
            conn.request("GET", "/json")
            assert conn.getresponse().read() == b'{"ok": true}'
        conn.close()
        assert len(keep.peers) == 20
        assert len(set(keep.peers)) == 1  # one upstream connection carried all 20
    finally:
        proxy.stop()
        keep.close()


def test_unreachable_upstream_is_a_502_naming_the_process(proxy: ProxyServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        dead_port = probe.getsockname()[1]
    base = proxy.register_url(f"http://127.0.0.1:{dead_port}", "frontend")
    status, headers, body = get(base, "/")
    assert status == 502
    assert headers["content-type"].startswith("text/html")
    assert b"frontend is not running" in body
    (req,) = proxy.get_requests()
    assert req.status == 502
    assert req.error
    assert req.is_error
    assert proxy.metrics().failed_requests == 1


def test_silent_upstream_is_a_504(upstream: Upstream) -> None:
    proxy = ProxyServer(port=0, upstream_timeout=0.3)
    proxy.start()
    try:
        base = proxy.register_url(upstream.url, "web")
        status, _, body = get(base, "/slow")
        assert status == 504
        assert b"did not answer within 0.3 s" in body
        upstream.release.set()
        assert get(base, "/json")[0] == 200  # the proxy serves on
    finally:
        proxy.stop()


def test_upstream_reset_mid_response_breaks_only_that_response(
    upstream: Upstream, proxy: ProxyServer
) -> None:
    raw = RawUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part")
    try:
        base = proxy.register_url(raw.url, "flaky")
        conn = connect(base)
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            resp.read()
        conn.close()
        assert wait_until(lambda: len(proxy.get_requests_for_process("flaky")) == 1)
        assert proxy.get_requests_for_process("flaky")[0].error
        other = proxy.register_url(upstream.url, "web")
        assert get(other, "/json")[0] == 200
    finally:
        raw.close()


@pytest.mark.parametrize(
    ("reply", "named"),
    [
        pytest.param(b"SSH-2.0-OpenSSH\r\n", b"odd broke the connection", id="not-http"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nhello",
            b"Content-Length",
            id="conflicting-content-lengths",
        ),
    ],
)
def test_broken_upstream_reply_is_a_502_that_says_why(
    proxy: ProxyServer, reply: bytes, named: bytes
) -> None:
    raw = RawUpstream(reply, reset=False)
    try:
        base = proxy.register_url(raw.url, "odd")
        status, _, body = get(base, "/")
        assert status == 502
        assert named in body
    finally:
        raw.close()


def test_client_that_disconnects_mid_stream_is_recorded_and_freed(
    upstream: Upstream, proxy: ProxyServer
) -> None:
    base = proxy.register_url(upstream.url, "web")
    conn = connect(base)
    conn.request("GET", "/endless")
    resp = conn.getresponse()
    assert len(resp.read(100_000)) == 100_000
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()  # the proxy's next writes to the vanished client fail
    assert wait_until(lambda: len(proxy.get_requests()) == 1)
    assert "client disconnected" in proxy.get_requests()[0].error
    assert wait_until(lambda: proxy.metrics().active_connections == 0)
    assert get(base, "/json")[0] == 200


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
    ],
)
def test_malformed_requests_get_a_clear_error(
    upstream: Upstream, proxy: ProxyServer, request_bytes: bytes
) -> None:
    base = proxy.register_url(upstream.url, "web")
    port = urlsplit(base).port
    assert port is not None
    answer = raw_exchange(port, request_bytes)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 600
    assert get(base, "/json")[0] == 200


def test_body_longer_than_declared_is_not_forwarded_as_a_request(
    upstream: Upstream, proxy: ProxyServer
) -> None:
    base = proxy.register_url(upstream.url, "web")
    port = urlsplit(base).port
    assert port is not None
    answer = raw_exchange(
        port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n"
        b"abcEXTRA-BYTES-HERE\r\n\r\n",
    )
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200")
    assert b'"body": "abc"' in rest
    assert b"HTTP/1.1 400" in rest  # the surplus was read as a (bad) next request
    assert [r["path"] for r in upstream.requests] == ["/echo"]
    assert get(base, "/json")[0] == 200


def ws_handshake(port: int, path: str = "/ws") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        more = sock.recv(1)
        assert more, "proxy closed during the handshake"
        head += more
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"Sec-WebSocket-Accept" in head
    return sock


def test_websocket_is_tunnelled_byte_for_byte(upstream: Upstream, proxy: ProxyServer) -> None:
    base = proxy.register_url(upstream.url, "web")
    port = urlsplit(base).port
    assert port is not None
    sock = ws_handshake(port)
    try:
        for message in [b"hello", b"x" * 70_000, "grüße".encode()]:
            sock.sendall(encode_frame(message))
            assert read_frame(sock) == (1, message)
        sock.sendall(encode_frame(b"\x03\xe8", opcode=8))
        assert read_frame(sock) == (8, b"\x03\xe8")
        assert sock.recv(10) == b""  # upstream closed; the tunnel closed the client side
    finally:
        sock.close()
    assert upstream.ws_closed.wait(5)
    assert wait_until(lambda: any(r.status == 101 for r in proxy.get_requests()))
    (ws,) = [r for r in proxy.get_requests() if r.status == 101]
    assert ws.url.startswith("ws://")
    assert ws.request_size > 70_000
    assert ws.response_size > 70_000


def test_websocket_peer_closing_one_side_ends_the_tunnel(
    upstream: Upstream, proxy: ProxyServer
) -> None:
    base = proxy.register_url(upstream.url, "web")
    port = urlsplit(base).port
    assert port is not None
    sock = ws_handshake(port)
    try:
        sock.sendall(encode_frame(b"ping"))
        assert read_frame(sock) == (1, b"ping")
        sock.shutdown(socket.SHUT_WR)  # the browser side stops sending
        assert upstream.ws_closed.wait(5)  # upstream saw EOF through the tunnel
        assert sock.recv(10) == b""
    finally:
        sock.close()
    assert wait_until(lambda: proxy.metrics().active_connections == 0)
    assert get(base, "/json")[0] == 200


def test_websocket_to_a_dead_upstream_is_a_502(proxy: ProxyServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        dead = probe.getsockname()[1]
    base = proxy.register_url(f"http://127.0.0.1:{dead}", "hmr")
    port = urlsplit(base).port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 502")


def post_telemetry(base: str, body: bytes) -> int:
    return get(base, "/__brummer__/telemetry", method="POST", body=body)[0]


def test_browser_errors_reach_telemetry_log_store_and_bus(upstream: Upstream) -> None:
    logs = FakeLogStore()
    bus = FakeBus()
    proxy = ProxyServer(port=0, log_store=logs, event_bus=bus)
    proxy.start()
    try:
        base = proxy.register_url(upstream.url, "web", process_id="p-1")
        events = [
            {"type": "page_load", "timestamp": 1_700_000_000_000, "data": {"title": "t"}},
            {
                "type": "javascript_error",
                "data": {
                    "message": "TypeError: boom",
                    "filename": "http://x/app.js",
                    "lineno": 3,
                    "colno": 9,
                    "stack": "TypeError: boom\n    at f (http://x/app.js:3:9)",
                },
            },
        ]
        body = json.dumps({"sessionId": "s1", "url": base + "/", "events": events}).encode()
        assert post_telemetry(base, body) == 204
        (session,) = proxy.telemetry.get_sessions_for_process("web")
        assert session.id == "s1"
        assert session.error_count == 1
        assert [e.type for e in session.events] == ["page_load", "javascript_error"]
        assert logs.lines[0] == (
            "p-1",
            "web",
            "[browser] Uncaught TypeError: boom (http://x/app.js:3:9)",
            True,
        )
        assert logs.lines[1][2] == "    at f (http://x/app.js:3:9)"
        telemetry = [e for e in bus.events if e.type == EventType.TELEMETRY]
        assert len(telemetry) == 1
        assert telemetry[0].process_id == "p-1"
        assert telemetry[0].data["errors"] == [logs.lines[0][2]]
        assert not upstream.requests  # telemetry never reaches the upstream
    finally:
        proxy.stop()


def test_chunked_telemetry_post_is_read_whole_and_bounded(
    upstream: Upstream, proxy: ProxyServer
) -> None:
    base = proxy.register_url(upstream.url, "web")
    body = json.dumps({"sessionId": "c1", "events": [{"type": "page_load"}] * 50}).encode()
    conn = connect(base)
    pieces = [body[i : i + 100] for i in range(0, len(body), 100)]
    conn.request("POST", "/__brummer__/telemetry", body=iter(pieces), encode_chunked=True)
    assert conn.getresponse().status == 204
    huge = iter([b"x" * 65536] * 6)
    conn.request("POST", "/__brummer__/telemetry", body=huge, encode_chunked=True)
    assert conn.getresponse().status == 413
    conn.close()
    assert len(proxy.telemetry.get_session("c1").events) == 50


def test_browser_errors_become_error_groups_in_the_real_log_store(upstream: Upstream) -> None:
    store = LogStore(extra_rules=BROWSER_LOG_RULES)
    proxy = ProxyServer(port=0, log_store=store)
    proxy.start()
    try:
        base = proxy.register_url(upstream.url, "web", process_id="w2")
        events = [
            {
                "type": "unhandled_rejection",
                "data": {
                    "message": "Error: no data",
                    "stack": "Error: no data\n    at load (a.js:1:1)",
                },
            },
            {"type": "console", "data": {"level": "warn", "message": "deprecated"}},
        ]
        body = json.dumps({"sessionId": "s2", "events": events}).encode()
        assert post_telemetry(base, body) == 204
        store.mark_process_exited("w2")  # closes the open error group
        (group,) = store.get_error_groups()
        assert (group.kind, group.process_name, group.message) == ("Error", "web", "no data")
        assert group.lines[1] == "    at load (a.js:1:1)"
        contents = [(e.content, "browser" in e.tags) for e in store.get_by_process("w2")]
        assert ("[browser] console.warn: deprecated", True) in contents
    finally:
        proxy.stop()
        store.close()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'{"events": []}', 400),
        (b'{"sessionId": "s", "events": [{"no": "type"}]}', 400),
        (b'{"sessionId": "s", "events": "x"}', 400),
        (b"[" * 100_000 + b"]" * 100_000, 400),
        (b'{"sessionId": "s", "events": [' + b'{"type": "x"},' * 600 + b'{"type":"x"}]}', 413),
        (b"x" * 300_000, 413),
    ],
)
def test_bad_telemetry_posts_are_refused_and_not_stored(
    upstream: Upstream, proxy: ProxyServer, body: bytes, status: int
) -> None:
    base = proxy.register_url(upstream.url, "web")
    assert post_telemetry(base, body) == status
    assert proxy.telemetry.get_sessions_for_process("web") == []
    assert get(base, "/json")[0] == 200


def test_control_paths_are_served_by_the_proxy(upstream: Upstream, proxy: ProxyServer) -> None:
    base = proxy.register_url(upstream.url, "web")
    status, headers, body = get(base, "/__brummer__/monitor.js")
    assert status == 200
    assert headers["content-type"].startswith("application/javascript")
    assert b"__brummerMonitor" in body
    assert get(base, "/__brummer__/nothing")[0] == 404
    assert get(base, "/__brummer__/telemetry")[0] == 405
    status, _, body = get(base, "/__brummer__/status")
    assert json.loads(body)["mappings"][0]["process"] == "web"
    assert upstream.requests == []
    control = f"http://127.0.0.1:{proxy.port}"
    assert b"PROXY 127.0.0.1" in get(control, "/proxy.pac")[2]
    assert base.encode() in get(control, "/")[2]
    assert get(control, "/anything")[0] == 404


def test_register_url_maps_each_origin_to_one_port(upstream: Upstream, proxy: ProxyServer) -> None:
    first = proxy.register_url(upstream.url + "/app?x=1", "web")
    second = proxy.register_url(upstream.url.replace("127.0.0.1", "localhost"), "web")
    third = proxy.register_url(upstream.url + "/other", "web")
    assert first.endswith("/app?x=1")
    assert urlsplit(first).port == urlsplit(third).port
    assert urlsplit(second).port != urlsplit(first).port  # another host name, another origin
    mappings = proxy.get_url_mappings()
    assert len(mappings) == 2
    assert {m.target_url for m in mappings} == {
        upstream.url,
        upstream.url.replace("127.0.0.1", "localhost"),
    }


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "", "localhost:3000", "http://", "http://host:99999/", 42, None],
)
def test_register_url_refuses_bad_urls(upstream: Upstream, proxy: ProxyServer, url: Any) -> None:
    with pytest.raises(BrummerError) as info:
        proxy.register_url(url, "web")
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert isinstance(info.value, ValueError)
    assert info.value.hint
    assert get(proxy.register_url(upstream.url, "web"), "/json")[0] == 200


def test_register_url_refuses_bad_process_names_and_the_proxys_own_port(
    proxy: ProxyServer,
) -> None:
    for name in ["", "   ", None]:
        with pytest.raises(BrummerError) as info:
            proxy.register_url("http://127.0.0.1:3000", name)  # type: ignore[arg-type]
        assert info.value.code is ErrorCode.INVALID_ARGUMENT
    with pytest.raises(BrummerError):
        proxy.register_url(f"http://127.0.0.1:{proxy.port}", "loop")
    with pytest.raises(BrummerError):
        proxy.register_url("https://127.0.0.1:3000", "tls")
    assert proxy.get_url_mappings() == []


def test_busy_control_port_is_a_resource_limit_naming_it() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        proxy = ProxyServer(port=port)
        with pytest.raises(BrummerError) as info:
            proxy.start()
        assert info.value.code is ErrorCode.RESOURCE_LIMIT
        assert str(port) in str(info.value)
        assert info.value.context["port"] == port
        assert not proxy.is_running
        proxy.stop()


def test_busy_reverse_port_is_skipped(upstream: Upstream) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        taken = busy.getsockname()[1]
        proxy = ProxyServer(port=0, reverse_port_base=taken)
        proxy.start()
        try:
            url = proxy.register_url(upstream.url, "web")
            assert urlsplit(url).port not in {taken, None}
            assert get(url, "/json")[0] == 200
        finally:
            proxy.stop()


def test_register_before_start_serves_from_start(upstream: Upstream) -> None:
    proxy = ProxyServer(port=0)
    url = proxy.register_url(upstream.url, "web")
    proxy.start()
    try:
        assert get(url, "/json")[0] == 200
    finally:
        proxy.stop()


def test_start_is_idempotent_and_stop_releases_everything(upstream: Upstream) -> None:
    fds_before = open_fd_count()
    proxy = ProxyServer(port=0)
    proxy.start()
    proxy.start()
    port = proxy.port
    assert proxy.is_running
    assert port != 0
    url = proxy.register_url(upstream.url, "web")
    idle = connect(url)
    idle.request("GET", "/json")
    idle.getresponse().read()  # a keep-alive client connection stays open
    sse = connect(url)
    sse.request("GET", "/sse")
    assert sse.getresponse().read1(100) == b"data: first\n\n"  # a stream is mid-flight
    proxy.stop()
    proxy.stop()
    assert not proxy.is_running
    for p in (port, urlsplit(url).port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", p), timeout=2).close()
    idle.close()
    sse.close()
    upstream.release.set()
    assert proxy.get_url_mappings() == []
    assert len(proxy.get_requests()) >= 1  # history survives stop
    assert wait_until(lambda: open_fd_count() <= fds_before + 2)


def test_restart_after_stop_serves_again(upstream: Upstream) -> None:
    proxy = ProxyServer(port=0)
    for _ in range(2):
        proxy.start()
        try:
            assert get(proxy.register_url(upstream.url, "web"), "/json")[0] == 200
        finally:
            proxy.stop()
    assert wait_until(lambda: len(proxy.get_requests()) == 2)


def test_http10_client_and_pipelined_requests(upstream: Upstream, proxy: ProxyServer) -> None:
    base = proxy.register_url(upstream.url, "web")
    port = urlsplit(base).port
    assert port is not None
    # HTTP/1.0 cannot take a chunked answer: the body is delimited by closing instead.
    answer = raw_exchange(port, b"GET /chunked HTTP/1.0\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"chunked" not in head.lower()
    assert body == b"".join(f"part-{i};".encode() for i in range(5))
    # Two requests in one packet on a keep-alive connection: two answers, in order.
    answer = raw_exchange(
        port,
        b"GET /echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /echo?n=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert answer.count(b"HTTP/1.1 200") == 2
    assert answer.index(b'"n": "1"') < answer.index(b'"n": "2"')


def test_requests_history_is_a_bounded_ring(upstream: Upstream) -> None:
    proxy = ProxyServer(port=0, max_requests=5)
    proxy.start()
    try:
        url = proxy.register_url(upstream.url, "web")
        conn = connect(url)
        for i in range(8):
            conn.request("GET", f"/echo?i={i}")
            conn.getresponse().read()
        conn.close()
        assert wait_until(lambda: proxy.metrics().total_requests == 8)
        assert [r.url.rsplit("=", 1)[1] for r in proxy.get_requests()] == list("34567")
        proxy.clear_requests()
        assert proxy.get_requests() == []
        assert proxy.metrics().total_requests == 0
    finally:
        proxy.stop()


def test_concurrent_clients_are_all_recorded(upstream: Upstream, proxy: ProxyServer) -> None:
    url = proxy.register_url(upstream.url, "web")
    failures: list[BaseException] = []

    def client() -> None:
        try:
            conn = connect(url)
            for _ in range(10):
                conn.request("GET", "/json")
                assert conn.getresponse().read() == b'{"ok": true}'
            conn.close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == []
    assert wait_until(lambda: proxy.metrics().total_requests == 80)
    metrics = proxy.metrics()
    assert metrics.successful_requests == 80
    assert metrics.failed_requests == 0
    ids = [r.id for r in proxy.get_requests()]
    assert len(set(ids)) == 80


def test_proxy_request_events_and_url_detected_with_the_real_bus(upstream: Upstream) -> None:
    bus = EventBus(workers=1)
    seen: list[Event] = []
    bus.subscribe(EventType.PROXY_REQUEST, seen.append)
    proxy = ProxyServer(port=0, event_bus=bus)
    proxy.start()
    try:
        bus.publish(
            Event(
                EventType.URL_DETECTED,
                {"url": upstream.url + "/", "process_name": "vite"},
                process_id="proc-9",
            )
        )
        assert wait_until(lambda: len(proxy.get_url_mappings()) == 1)
        mapping = proxy.get_url_mappings()[0]
        assert (mapping.process_name, mapping.process_id) == ("vite", "proc-9")
        assert get(mapping.proxy_url, "/json")[0] == 200
        assert wait_until(lambda: len(seen) == 1)
        assert seen[0].process_id == "proc-9"
        assert seen[0].data["status"] == 200
        assert seen[0].data["process_name"] == "vite"
        bus.publish(Event(EventType.URL_DETECTED, {"url": "ftp://x", "process_name": "vite"}))
    finally:
        proxy.stop()
        bus.stop()
    assert len(proxy.get_url_mappings()) == 0


class TestFullMode:
    @pytest.fixture
    def full(self) -> Iterator[ProxyServer]:
        server = ProxyServer(port=0, mode="full")
        server.start()
        yield server
        server.stop()

    def test_absolute_uri_requests_are_forwarded_and_attributed(
        self, upstream: Upstream, full: ProxyServer
    ) -> None:
        assert full.register_url(upstream.url, "web") == upstream.url
        conn = http.client.HTTPConnection("127.0.0.1", full.port, timeout=5)
        conn.request("GET", upstream.url + "/html", headers=PAGE_HEADERS)
        body = conn.getresponse().read()
        conn.request("GET", upstream.url + "/__brummer__/monitor.js")
        script = conn.getresponse().read()
        conn.close()
        assert body.count(MONITOR_TAG) == 1
        assert b"__brummerMonitor" in script
        assert wait_until(lambda: len(full.get_requests()) == 1)
        (req,) = full.get_requests()
        assert req.process_name == "web"
        assert req.url == upstream.url + "/html"

    def test_connect_is_tunnelled_and_recorded(self, upstream: Upstream, full: ProxyServer) -> None:
        with socket.create_connection(("127.0.0.1", full.port), timeout=5) as sock:
            sock.sendall(f"CONNECT 127.0.0.1:{upstream.port} HTTP/1.1\r\n\r\n".encode())
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
            sock.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
        assert answer.endswith(b'{"ok": true}')
        assert wait_until(lambda: any(r.method == "CONNECT" for r in full.get_requests()))
        (tunnel,) = [r for r in full.get_requests() if r.method == "CONNECT"]
        assert tunnel.url == f"127.0.0.1:{upstream.port}"
        assert tunnel.request_size > 0
        assert tunnel.response_size == len(answer)

    def test_bad_connect_and_pac(self, full: ProxyServer) -> None:
        answer = raw_exchange(full.port, b"CONNECT nowhere HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400")
        status, headers, body = get(f"http://127.0.0.1:{full.port}", "/proxy.pac")
        assert status == 200
        assert headers["content-type"] == "application/x-ns-proxy-autoconfig"
        assert f"PROXY 127.0.0.1:{full.port}".encode() in body


def test_constructor_refuses_bad_arguments() -> None:
    for kwargs in [
        {"port": -1},
        {"port": 70000},
        {"port": "80"},
        {"mode": "sideways"},
        {"max_requests": 0},
        {"host": "0.0.0.0"},
        {"upstream_timeout": -1.0},
    ]:
        with pytest.raises(BrummerError) as info:
            ProxyServer(**kwargs)
        assert info.value.code is ErrorCode.INVALID_ARGUMENT


ERROR_PAGE = (
    "<!doctype html><html><head><title>broken</title></head><body><p>page</p>"
    "<script>console.error('bad thing happened');"
    "throw new TypeError('boom from the page');</script></body></html>"
)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.e2e
def test_headless_chromium_error_reaches_telemetry_and_log_store(tmp_path: Any) -> None:
    browser = _chromium()
    if browser is None:
        pytest.fail(
            "chromium is not installed: .ci/run installs it with apt-get (package chromium)"
        )

    @Request.application  # type: ignore[arg-type]
    def page(request: Request) -> Response:
        return Response(ERROR_PAGE, content_type="text/html; charset=utf-8")

    upstream = make_server("127.0.0.1", 0, page, threaded=True)
    thread = threading.Thread(target=upstream.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    bus = EventBus(workers=1)
    store = LogStore(event_bus=bus, extra_rules=BROWSER_LOG_RULES)
    telemetry_events: list[Event] = []
    bus.subscribe(EventType.TELEMETRY, telemetry_events.append)
    proxy = ProxyServer(port=0, event_bus=bus, log_store=store)
    proxy.start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        url = proxy.register_url(
            f"http://127.0.0.1:{upstream.server_port}/", "web", process_id="w1"
        )
        proc = subprocess.Popen(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-breakpad",
                "--disable-crash-reporter",
                f"--user-data-dir={tmp_path}",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def errors_arrived() -> bool:
            sessions = proxy.telemetry.get_sessions_for_process("web")
            return bool(sessions) and sessions[0].error_count >= 2

        if not wait_until(errors_arrived, timeout=45):
            if proc.poll() is not None:
                pytest.fail(
                    f"chromium exited early (exit code {proc.returncode}) before the page reported"
                )
            pytest.fail("the browser's error never reached the telemetry store")
        (session,) = proxy.telemetry.get_sessions_for_process("web")
        kinds = {e.type for e in session.events}
        assert {"javascript_error", "console"} <= kinds
        err = next(e for e in session.events if e.type == "javascript_error")
        assert "boom from the page" in err.data["message"]
        assert wait_until(
            lambda: any("boom from the page" in e.content for e in store.get_errors())
        )
        line = next(e for e in store.get_errors() if "boom from the page" in e.content)
        assert (line.process_id, line.process_name, line.is_error) == ("w1", "web", True)
        assert line.content.startswith("[browser] Uncaught TypeError: boom from the page")
        assert "browser" in line.tags
        assert wait_until(
            lambda: any(g.message.startswith("boom from") for g in store.get_error_groups())
        )
        group = next(g for g in store.get_error_groups() if g.message.startswith("boom from"))
        assert (group.kind, group.process_id) == ("TypeError", "w1")
        assert wait_until(lambda: len(telemetry_events) >= 1)
        assert telemetry_events[0].process_id == "w1"
    finally:
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            for child in psutil.Process().children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
        proxy.stop()
        bus.stop()
        store.close()
        upstream.shutdown()
        upstream.server_close()
        thread.join(5)


def test_stop_joins_connection_threads_that_are_still_finishing(upstream: Upstream) -> None:
    # The connection thread records the request after the client has its answer; stop()
    # must wait for it (werkzeug's server_close() does not join daemon threads).
    recording = threading.Event()
    handlers: list[threading.Thread] = []

    class SlowBus(FakeBus):
        def publish_async(self, event: Event) -> None:
            if event.type is EventType.PROXY_REQUEST:
                handlers.append(threading.current_thread())
                recording.set()
                threading.Event().wait(0.5)  # a slow subscriber, not synchronisation
            super().publish_async(event)

    proxy = ProxyServer(port=0, event_bus=SlowBus())
    proxy.start()
    try:
        base = proxy.register_url(upstream.url, "web")
        assert get(base, "/json")[0] == 200
        assert recording.wait(5)
    finally:
        proxy.stop()
    assert handlers
    assert not handlers[0].is_alive(), "stop() returned before a connection thread ended"


def test_upstream_with_content_length_and_chunked_is_framed_by_the_chunks(
    proxy: ProxyServer,
) -> None:
    # RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and a proxy must not pass
    # the stale Content-Length on, or the client's keep-alive connection falls out of step.
    raw = RawUpstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        reset=False,
    )
    try:
        base = proxy.register_url(raw.url, "odd")
        conn = connect(base)
        for _ in range(2):  # both on one client connection
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.getheader("Content-Length") in {None, "5"}
            assert resp.read() == b"hello"
        conn.close()
    finally:
        raw.close()


def test_upstream_bytes_beyond_content_length_do_not_break_the_next_request(
    proxy: ProxyServer,
) -> None:
    # The surplus stays in the pooled connection's buffer; the next request must not read
    # it as its answer (a 502 for a request that did nothing wrong).
    raw = RawUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdefgh", reset=False)
    try:
        base = proxy.register_url(raw.url, "odd")
        conn = connect(base)
        for _ in range(2):
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"abc")
        conn.close()
    finally:
        raw.close()


def test_head_answers_made_by_the_proxy_carry_no_body(upstream: Upstream) -> None:
    # The proxy's own pages (monitor script, banner, 404, 502 pages) must not send a body
    # to a HEAD request: on a keep-alive connection it would be read as the next answer.
    proxy = ProxyServer(port=0, upstream_timeout=5.0)
    proxy.start()
    with socket.create_server(("127.0.0.1", 0)) as probe:
        dead_port = probe.getsockname()[1]
    try:
        live = proxy.register_url(upstream.url, "web")
        dead = proxy.register_url(f"http://127.0.0.1:{dead_port}", "gone")
        control = f"http://127.0.0.1:{proxy.port}"
        for base, path, status in [
            (live, "/__brummer__/monitor.js", b"200"),
            (control, "/", b"200"),
            (control, "/nowhere", b"404"),
            (dead, "/", b"502"),
        ]:
            port = urlsplit(base).port
            assert port is not None
            answer = raw_exchange(
                port,
                f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"
                f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
            )
            head, _, rest = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 " + status)
            assert b"Content-Length: 0" not in head  # HEAD tells what GET would send
            assert rest.startswith(b"HTTP/1.1 " + status), f"HEAD {path} sent a body: {rest[:60]!r}"
    finally:
        proxy.stop()


def test_telemetry_posts_from_other_sites_are_refused(
    upstream: Upstream, proxy: ProxyServer
) -> None:
    # Any page the developer opens could post made-up "browser errors" (text that AI tools
    # then read through MCP) to the proxy on 127.0.0.1; only the proxied page's own origin
    # may, and a rebound host name may not.
    base = proxy.register_url(upstream.url, "web")
    netloc = urlsplit(base).netloc
    body = json.dumps(
        {"sessionId": "s1", "events": [{"type": "javascript_error", "data": {"message": "x"}}]}
    ).encode()

    def post(headers: dict[str, str]) -> int:
        return get(base, "/__brummer__/telemetry", headers, method="POST", body=body)[0]

    assert post({"Origin": "https://evil.example"}) == 403
    assert post({"Origin": "null"}) == 403
    assert post({"Origin": f"http://localhost:{upstream.port}"}) == 403  # another origin
    rebound = f"rebind.example:{urlsplit(base).port}"
    assert post({"Host": rebound, "Origin": f"http://{rebound}"}) == 403
    assert proxy.telemetry.get_sessions_for_process("web") == []
    assert post({"Origin": f"http://{netloc}"}) == 204  # the page itself
    assert post({}) == 204  # no browser: a local tool
    (session,) = proxy.telemetry.get_sessions_for_process("web")
    assert len(session.events) == 2


def test_telemetry_in_full_mode_is_accepted_from_the_page_origin(upstream: Upstream) -> None:
    full = ProxyServer(port=0, mode="full")
    full.start()
    try:
        full.register_url(upstream.url, "web")
        body = json.dumps({"sessionId": "s2", "events": [{"type": "page_load"}]}).encode()
        for origin, status in [(upstream.url, 204), ("https://evil.example", 403)]:
            conn = http.client.HTTPConnection("127.0.0.1", full.port, timeout=5)
            conn.request(
                "POST",
                upstream.url + "/__brummer__/telemetry",
                body=body,
                headers={"Origin": origin},
            )
            assert conn.getresponse().status == status
            conn.close()
        (session,) = full.telemetry.get_sessions_for_process("web")
        assert len(session.events) == 1
    finally:
        full.stop()


def test_interim_1xx_answers_other_than_101_are_skipped(proxy: ProxyServer) -> None:
    # 103 Early Hints (Node's writeEarlyHints) precedes the real answer: relaying it as the
    # final answer would leave the client waiting and the real one in a pooled connection.
    raw = RawUpstream(
        b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        reset=False,
    )
    try:
        base = proxy.register_url(raw.url, "hints")
        conn = connect(base)
        for _ in range(2):
            conn.request("GET", "/")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"ok")
        conn.close()
    finally:
        raw.close()


@pytest.mark.parametrize("path", ["/html-stream", "/html-stream-gzip"])
def test_streamed_html_gets_the_monitor_without_waiting_for_the_end(
    upstream: Upstream, proxy: ProxyServer, path: str
) -> None:
    # Server-side rendering streams the page shell first and the rest later: the monitor
    # goes into the shell, which reaches the browser before the upstream has finished.
    base = proxy.register_url(upstream.url, "web")
    conn = connect(base, timeout=5)
    conn.request("GET", path, headers={**PAGE_HEADERS, "Accept-Encoding": "gzip"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Encoding") is None
    assert resp.getheader("Content-Length") is None
    first = b""
    while b"<p>shell</p>" not in first:
        more = resp.read1(65536)  # a timeout here: the proxy held the page back
        assert more
        first += more
    assert not upstream.release.is_set()
    assert first.count(MONITOR_TAG) == 1
    assert first.index(MONITOR_TAG) > first.index(b"<head>")
    upstream.release.set()
    rest = resp.read()
    conn.close()
    assert rest.endswith(b"<p>late part</p></body></html>")
    assert MONITOR_TAG not in rest
    assert wait_until(lambda: len(proxy.get_requests()) == 1)
    assert proxy.get_requests()[0].response_size == len(first + rest)

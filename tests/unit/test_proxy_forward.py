"""The forwarder's pieces: header filtering, the upstream client, the pool and the tunnel."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from brummer.errors import BrummerError, ErrorCode
from brummer.proxy.forward import (
    UpstreamFailure,
    UpstreamPool,
    error_page,
    exchange,
    request_headers,
    response_headers,
    tunnel,
)


def test_request_headers_drop_hop_by_hop_and_set_forwarded() -> None:
    environ = {
        "HTTP_HOST": "127.0.0.1:20888",
        "HTTP_CONNECTION": "keep-alive, X-Secret",
        "HTTP_X_SECRET": "1",
        "HTTP_KEEP_ALIVE": "5",
        "HTTP_TE": "trailers",
        "HTTP_PROXY_AUTHORIZATION": "Basic x",
        "HTTP_ACCEPT": "text/html",
        "HTTP_X_FORWARDED_FOR": "10.0.0.1",
        "HTTP_ACCEPT_ENCODING": "gzip, deflate, br, zstd",
        "CONTENT_TYPE": "application/json",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PORT": "20888",
        "wsgi.url_scheme": "http",
    }
    headers = dict(request_headers(environ, "localhost:3000", strip_encodings=True))
    assert headers["Host"] == "localhost:3000"
    for gone in ("Connection", "X-Secret", "Keep-Alive", "Te", "Proxy-Authorization"):
        assert gone not in headers
    assert headers["Accept"] == "text/html"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Forwarded-For"] == "10.0.0.1, 127.0.0.1"
    assert headers["X-Forwarded-Host"] == "127.0.0.1:20888"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Port"] == "20888"
    assert headers["Accept-Encoding"] == "gzip, deflate"
    plain = dict(request_headers(environ, "localhost:3000"))
    assert plain["Accept-Encoding"] == "gzip, deflate, br, zstd"


def test_response_headers_drop_hop_by_hop() -> None:
    kept = response_headers(
        [
            ("Content-Type", "text/html"),
            ("Connection", "close, X-Private"),
            ("X-Private", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Keep-Alive", "timeout=5"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ]
    )
    assert kept == [("Content-Type", "text/html"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


class OneShotServer:
    """Accepts connections and answers each request with the next canned reply."""

    def __init__(self, replies: list[bytes], *, hold: bool = True) -> None:
        self.replies = list(replies)
        self.hold = hold
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        self.listener.settimeout(5)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.accepted += 1
        with conn:
            for reply in self.replies:
                data = conn.recv(65536)
                if not data:
                    return
                self.received.append(data)
                conn.sendall(reply)
            if self.hold:
                conn.recv(65536)  # until the client closes

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def pool() -> Iterator[UpstreamPool]:
    p = UpstreamPool()
    yield p
    p.close()


def run(
    pool: UpstreamPool, port: int, method: str = "GET", timeout: float = 5.0
) -> tuple[int, bytes]:
    resp = exchange(
        pool,
        ("127.0.0.1", port),
        method,
        "/",
        [("Host", "x")],
        None,
        content_length=0,
        chunked_body=False,
        timeout=timeout,
    )
    try:
        return resp.status, b"".join(resp)
    finally:
        resp.close()


def test_exchange_reads_chunked_and_reuses_the_connection(pool: UpstreamPool) -> None:
    server = OneShotServer(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n",
            b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ]
    )
    try:
        assert run(pool, server.port) == (200, b"abcde")
        assert run(pool, server.port) == (201, b"ok")
        assert run(pool, server.port) == (204, b"")
        assert server.accepted == 1
        assert pool.connection_count() == 1
    finally:
        pool.close()
        server.close()
    assert pool.connection_count() == 0


def test_exchange_skips_100_continue_and_reads_close_delimited(pool: UpstreamPool) -> None:
    server = OneShotServer(
        [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nuntil-close"], hold=False
    )
    try:
        resp = exchange(
            pool,
            ("127.0.0.1", server.port),
            "GET",
            "/",
            [],
            None,
            content_length=0,
            chunked_body=False,
            timeout=5,
        )
        assert resp.status == 200
        # the server closes after its reply (HTTP/1.0, no length): read to EOF
        assert b"".join(resp) == b"until-close"
        resp.close()
        assert pool.connection_count() == 0  # not reusable
    finally:
        server.close()


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"garbage\r\n\r\n", "not HTTP"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "negative"),
    ],
)
def test_exchange_refuses_broken_answers(pool: UpstreamPool, reply: bytes, message: str) -> None:
    server = OneShotServer([reply])
    try:
        with pytest.raises(UpstreamFailure) as info:
            run(pool, server.port)
        assert info.value.kind == "reset"
        assert message in str(info.value)
    finally:
        server.close()


def test_exchange_reports_truncated_chunked_bodies(pool: UpstreamPool) -> None:
    server = OneShotServer([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
    try:
        with pytest.raises(UpstreamFailure, match="chunk size"):
            run(pool, server.port)
    finally:
        server.close()


def test_exchange_connect_and_timeout_failures(pool: UpstreamPool) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        dead = probe.getsockname()[1]
    with pytest.raises(UpstreamFailure) as info:
        run(pool, dead)
    assert info.value.kind == "connect"
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never answers
        with pytest.raises(UpstreamFailure) as info:
            run(pool, silent.getsockname()[1], timeout=0.2)
        assert info.value.kind == "timeout"
    assert pool.connection_count() == 0


def test_closed_pool_refuses_work() -> None:
    pool = UpstreamPool()
    pool.close()
    pool.close()
    with pytest.raises(BrummerError) as info:
        pool.take(("127.0.0.1", 1))
    assert info.value.code is ErrorCode.INVALID_STATE


def test_idle_connections_are_bounded_across_origins() -> None:
    # Full mode reaches any number of hosts: idle keep-alive sockets (and their descriptors)
    # must not pile up per origin without a bound on the whole pool.
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(6)]
    pool = UpstreamPool(max_idle=4)
    try:
        for listener in listeners:
            conn, reused = pool.take(listener.getsockname()[:2])
            assert not reused
            pool.give_back(conn, reusable=True)
        assert pool.connection_count() == 4  # the two least recently used were closed
        newest = listeners[-1].getsockname()[:2]
        conn, reused = pool.take(newest)
        assert reused
        pool.give_back(conn, reusable=True)
    finally:
        pool.close()
        for listener in listeners:
            listener.close()
    with pytest.raises(BrummerError):
        UpstreamPool(max_idle=-1)


def test_tunnel_copies_both_ways_and_propagates_half_close() -> None:
    client_a, client_b = socket.socketpair()
    up_a, up_b = socket.socketpair()
    result: list[tuple[int, int]] = []
    t = threading.Thread(target=lambda: result.append(tunnel(client_b, up_a, client_pending=b"P")))
    t.start()
    try:
        assert up_b.recv(10) == b"P"
        client_a.sendall(b"hello")
        assert up_b.recv(10) == b"hello"
        up_b.sendall(b"world!")
        assert client_a.recv(10) == b"world!"
        client_a.shutdown(socket.SHUT_WR)
        assert up_b.recv(10) == b""  # the half-close reached the other side
        up_b.sendall(b"late")  # the other direction still flows
        assert client_a.recv(10) == b"late"
        up_b.shutdown(socket.SHUT_WR)
        assert client_a.recv(10) == b""
        t.join(5)
        assert result == [(6, 10)]
    finally:
        for s in (client_a, client_b, up_a, up_b):
            s.close()


def test_error_page_escapes() -> None:
    page = error_page(502, "Bad Gateway", "<web> is not running", "start it")
    assert b"&lt;web&gt; is not running" in page
    assert b"start it" in page

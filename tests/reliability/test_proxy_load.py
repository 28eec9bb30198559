"""The proxy under 16 concurrent clients with random disconnects and upstream resets.

A stdlib upstream serves normal pages, slow chunked pages, and a path that resets the
connection. Sixteen client threads hit the proxy at once: most requests are normal and must
arrive whole; some clients hang up mid-response; some ask for the resetting path and must get
a 502 (never a hang or a dead proxy). Afterwards the proxy still answers, its counters add up,
and stopping it leaves no thread, file descriptor or socket behind. CI runs ~1 s;
``BRUMMER_SOAK=1`` runs a minute.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from brummer.proxy import ProxyServer
from tests.reliability._budget import no_leaks, seconds

pytestmark = pytest.mark.reliability

CLIENTS = 16
BODY = b"x" * 4096


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers at shutdown

    def log_message(self, fmt: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        if self.path.startswith("/reset"):
            # RST instead of a response: SO_LINGER with a zero timeout, then close.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        body = BODY * (8 if self.path.startswith("/big") else 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(0, len(body), 8192):
                self.wfile.write(body[i : i + 8192])
        except OSError:
            return  # the proxy hung up (its client disconnected)


class JoiningServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins every handler thread


def test_sixteen_clients_with_disconnects_and_resets() -> None:
    duration = seconds(1.0, 60.0)
    tally = {"ok": 0, "bad_gateway": 0, "disconnects": 0, "other": 0}
    guard = threading.Lock()
    errors: list[str] = []
    with no_leaks("proxy load", fd_slack=0):
        upstream = JoiningServer(("127.0.0.1", 0), Upstream)
        up_thread = threading.Thread(target=upstream.serve_forever, kwargs={"poll_interval": 0.05})
        up_thread.start()
        proxy = ProxyServer(port=0, telemetry=False, upstream_timeout=5.0)
        try:
            proxy.start()
            front = proxy.register_url(f"http://127.0.0.1:{upstream.server_address[1]}/", "app")
            host, port = front.split("//")[1].rstrip("/").split(":")
            stop = threading.Event()
            barrier = threading.Barrier(CLIENTS)

            def count(key: str) -> None:
                with guard:
                    tally[key] += 1

            def client(seed: int) -> None:
                rnd = random.Random(seed)
                barrier.wait(10)
                while not stop.is_set():
                    roll = rnd.random()
                    if roll < 0.15:  # hang up mid-response
                        with socket.create_connection((host, int(port)), timeout=5) as s:
                            s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                            s.recv(100)
                        count("disconnects")
                        continue
                    path = "/reset" if roll < 0.3 else rnd.choice(["/", "/big"])
                    conn = http.client.HTTPConnection(host, int(port), timeout=10)
                    try:
                        conn.request("GET", path)
                        resp = conn.getresponse()
                        body = resp.read()
                    except (OSError, http.client.HTTPException) as exc:
                        errors.append(f"{path}: {exc!r}")
                        count("other")
                        continue
                    finally:
                        conn.close()
                    if path == "/reset":
                        count("bad_gateway" if resp.status == 502 else "other")
                        if resp.status != 502:
                            errors.append(f"/reset answered {resp.status}, not 502")
                    elif resp.status == 200 and body == BODY * (8 if path == "/big" else 1):
                        count("ok")
                    else:
                        count("other")
                        errors.append(f"{path}: {resp.status}, {len(body)} bytes")

            threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
            for t in threads:
                t.start()
            stop.wait(duration)
            stop.set()
            for t in threads:
                t.join(30)
            assert not any(t.is_alive() for t in threads), "a client hung"
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request("GET", "/")
            assert conn.getresponse().read() == BODY, "the proxy does not answer after the load"
            conn.close()
            metrics = proxy.metrics()
            assert metrics.total_requests == metrics.successful_requests + metrics.failed_requests
            assert metrics.failed_requests >= tally["bad_gateway"]
        finally:
            proxy.stop()
            upstream.shutdown()
            upstream.server_close()
            up_thread.join(10)
        assert not proxy.is_running
    assert not errors, errors[:5]
    total = sum(tally.values())
    print(
        f"[reliability] proxy: {duration:.0f} s, {CLIENTS} clients, {total} exchanges "
        f"({tally['ok']} ok, {tally['bad_gateway']} upstream resets -> 502, "
        f"{tally['disconnects']} client disconnects, {tally['other']} wrong), "
        f"{metrics.total_requests} recorded"
    )

"""Proxy throughput and latency: brummer's reverse proxy against werkzeug's ProxyMiddleware.

Run: python benchmarks/bench_proxy.py   (about 40 s; needs wrk, node optional)

The upstream is a keep-alive HTTP server in its own process (Node's http module when node is
installed, as real dev servers are Node; otherwise a werkzeug server with brummer's
keep-alive handler). The load generator is wrk, also its own process, against 127.0.0.1
only, bounded in time. Each configuration is measured in this same run:

- upstream direct (the ceiling),
- brummer ProxyServer (reverse mode, recording and telemetry on) -> upstream,
- werkzeug ProxyMiddleware on a threaded werkzeug server -> the same upstream.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from werkzeug.middleware.http_proxy import ProxyMiddleware
from werkzeug.serving import make_server

from brummer.proxy import ProxyServer

DURATION_MANY = 5  # seconds per wrk run with 16 connections
DURATION_ONE = 3  # seconds per wrk run with 1 connection

NODE_UPSTREAM = """
const http = require('http');
const server = http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end('ok\\n');
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => { console.log(server.address().port); });
"""

PY_UPSTREAM = """
import sys
from werkzeug.serving import make_server
from brummer.proxy._handler import KeepAliveHandler
def app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '3')])
    return [b'ok\\n']
server = make_server('127.0.0.1', 0, app, threaded=True, request_handler=KeepAliveHandler)
print(server.port, flush=True)
server.serve_forever()
"""


@contextmanager
def upstream() -> Iterator[tuple[str, str]]:
    node = shutil.which("node")
    if node:
        cmd, kind = [node, "-e", NODE_UPSTREAM], "node http (keep-alive)"
    else:
        cmd, kind = [sys.executable, "-c", PY_UPSTREAM], "werkzeug + brummer keep-alive handler"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}", kind
    finally:
        proc.terminate()
        proc.wait(5)


def wrk(url: str, connections: int, seconds: int) -> dict[str, float]:
    threads = 2 if connections > 1 else 1
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        value = float(m.group(1))
        return value / 1000 if m.group(2) == "us" else value * 1000 if m.group(2) == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": pct("50"),
        "p99": pct("99"),
        "non2xx": float(errors.group(1)) if errors else 0.0,
        "sock_errors": 1.0 if sock_errors else 0.0,
    }


@contextmanager
def served(app: Callable[..., Any]) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


def measure(
    label: str, url: str, rows: list[tuple[str, dict[str, float], dict[str, float]]]
) -> None:
    many = wrk(url, 16, DURATION_MANY)
    one = wrk(url, 1, DURATION_ONE)
    rows.append((label, many, one))
    print(
        f"{label:<44} c16: {many['rps']:>8,.0f} req/s p50 {many['p50']:6.2f} ms "
        f"p99 {many['p99']:6.2f} ms | c1: {one['rps']:>7,.0f} req/s p50 {one['p50']:5.2f} ms "
        f"p99 {one['p99']:5.2f} ms | non-2xx {many['non2xx'] + one['non2xx']:.0f}"
        f"{' SOCKET ERRORS' if many['sock_errors'] or one['sock_errors'] else ''}",
        flush=True,
    )


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on the baseline
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (apt-get install wrk)")
    started = time.monotonic()
    rows: list[tuple[str, dict[str, float], dict[str, float]]] = []
    with upstream() as (up_url, kind):
        print(f"upstream: {kind} at {up_url}; load: wrk (separate process); cores: 2 shared\n")
        measure("upstream direct (ceiling)", up_url + "/", rows)

        proxy = ProxyServer(port=0)
        proxy.start()
        try:
            proxy_url = proxy.register_url(up_url, "bench")
            measure("brummer ProxyServer -> upstream", proxy_url + "/", rows)
            recorded = proxy.metrics().total_requests
        finally:
            proxy.stop()

        middleware = ProxyMiddleware(
            not_found, {"/app/": {"target": up_url + "/", "remove_prefix": True}}
        )
        with served(middleware) as mw_url:
            measure("werkzeug ProxyMiddleware -> upstream", mw_url + "/app/", rows)

    brummer = rows[1]
    baseline = rows[2]
    ratio = brummer[1]["rps"] / baseline[1]["rps"]
    print()
    print(f"requests recorded by brummer: {recorded:,}")
    print(f"brummer / ProxyMiddleware throughput at c16: {ratio:.2f}x")
    print(
        "targets: >= 1,500 req/s at c16: "
        f"{'met' if brummer[1]['rps'] >= 1500 else 'NOT met'}; >= 1.4x ProxyMiddleware: "
        f"{'met' if ratio >= 1.4 else 'NOT met'}; p99 <= 25 ms: "
        f"{'met' if brummer[1]['p99'] <= 25 else 'NOT met'}; c1 p50 <= 1 ms: "
        f"{'met' if brummer[2]['p50'] <= 1 else 'NOT met'}"
    )
    print(f"total time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()

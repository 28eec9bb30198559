"""MCP server benchmarks: tools/call latency, concurrent throughput, logs_search on 100k lines.

Run: python benchmarks/bench_mcp.py

Targets (issue 5): scripts_status over Streamable HTTP on one keep-alive connection
p50 ≤ 2 ms; ≥ 500 calls/s with 8 concurrent clients; logs_search over 100,000 entries
≤ 20 ms server time. Clients and server share one process (and its GIL), which makes the
figures pessimistic. The stdlib baseline is a ThreadingHTTPServer answering a fixed JSON
body on a keep-alive connection: the floor for Python HTTP on this machine.
"""

from __future__ import annotations

import http.client
import http.server
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from brummer.events import EventBus
from brummer.logs import LogStore, SearchQuery
from brummer.mcp import MCPClient, MCPServer
from brummer.mcp.tools import BrummerCatalog


class _Procs:
    def scripts(self) -> dict[str, object]:
        return {}

    def get_all_processes(self) -> list[object]:
        return []


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def _latency(
    call: Callable[[], object], minimum: float = 1.0, samples_min: int = 500
) -> list[float]:
    for _ in range(min(50, samples_min)):
        call()
    samples: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < minimum or len(samples) < samples_min:
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return samples


def _raw_caller(
    port: int, session: str | None, body: bytes
) -> tuple[Callable[[], object], Callable[[], None]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if session:
        headers["Mcp-Session-Id"] = session

    def call() -> object:
        conn.request("POST", "/mcp", body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        assert response.status == 200, data
        return data

    return call, conn.close


def bench_stdlib_baseline() -> float:
    payload = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"processes": []}}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as brummer's handler: no delayed-ACK stalls

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    call, close = _raw_caller(server.server_address[1], None, b"{}")
    try:
        p50, p99 = _percentiles(_latency(call))
    finally:
        close()
        server.shutdown()
        server.server_close()
        thread.join()
    print(f"stdlib http.server keep-alive baseline: p50 {p50 * 1e3:.3f} ms, p99 {p99 * 1e3:.3f} ms")
    return p50


def bench_scripts_status(server: MCPServer, baseline: float) -> None:
    client = MCPClient(server.url)
    client.initialize()
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "scripts_status", "arguments": {}},
        }
    ).encode()
    call, close = _raw_caller(server.port, client.session_id, body)
    try:
        p50, p99 = _percentiles(_latency(call))
        print(
            f"tools/call scripts_status, one keep-alive connection: p50 {p50 * 1e3:.3f} ms, "
            f"p99 {p99 * 1e3:.3f} ms (target p50 <= 2 ms; {p50 / baseline:.1f}x the stdlib floor)"
        )
        c50, c99 = _percentiles(_latency(lambda: client.call("scripts_status")))
        print(f"  same through MCPClient.call: p50 {c50 * 1e3:.3f} ms, p99 {c99 * 1e3:.3f} ms")
    finally:
        close()
        client.close()


def bench_concurrency(url: str, clients: int = 8, seconds: float = 2.0) -> None:
    counts = [0] * clients
    stop = threading.Event()
    errors: list[BaseException] = []

    def work(index: int) -> None:
        client = MCPClient(url)
        try:
            client.initialize()
            while not stop.is_set():
                client.call("scripts_status")
                counts[index] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    rate = sum(counts) / elapsed
    print(
        f"{clients} concurrent clients (MCPClient each): {rate:.0f} calls/s "
        f"(target >= 500; errors: {len(errors)})"
    )


def bench_logs_search(entries: int = 100_000) -> None:
    store = LogStore(max_entries=entries)
    t0 = time.perf_counter()
    for i in range(entries):
        if i % 1000 == 0:
            line = f"GET /api/orders/{i} 500 Internal Server Error in {i % 97} ms"
        else:
            line = f"GET /api/users/{i} 200 OK in {i % 53} ms from 10.0.0.{i % 255}"
        store.add(f"p{i % 4}", f"web{i % 4}", line)
    print(f"filled {entries} entries in {time.perf_counter() - t0:.2f} s")
    catalog = BrummerCatalog(logs=store)
    for label, args in [
        ("text", {"query": "Internal Server Error", "limit": 100}),
        ("regex", {"query": r"orders/\d+ 5\d\d", "regex": True, "limit": 100}),
        ("text + process", {"query": "orders", "processId": "p0", "limit": 100}),
    ]:
        result = catalog.call_tool("logs_search", args)
        assert not result.is_error, result.text
        samples = _latency(
            lambda a=args: catalog.call_tool("logs_search", a),  # type: ignore[misc]
            minimum=1.0,
            samples_min=10,
        )
        p50, p99 = _percentiles(samples)
        hits = len(result.structured["entries"])
        print(
            f"logs_search {label} over {entries} entries ({hits} hits): server time "
            f"p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms (target <= 20 ms)"
        )
    direct = _latency(
        lambda: store.search(SearchQuery(text="Internal Server Error", limit=100)),
        minimum=1.0,
        samples_min=10,
    )
    print(f"  LogStore.search alone: p50 {statistics.median(direct) * 1e3:.2f} ms")
    store.close()


_SERVER_CHILD = """
import sys
from brummer.events import EventBus
from brummer.mcp import MCPServer
class Procs:
    def scripts(self): return {}
    def get_all_processes(self): return []
bus = EventBus()
server = MCPServer(port=0, processes=Procs(), events=bus)
server.start()
print(server.url, flush=True)
sys.stdin.read()
server.stop()
bus.stop()
"""


def bench_concurrency_subprocess(clients: int = 8) -> None:
    """The realistic shape: the server in its own process, the clients in this one."""
    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen(
        [sys.executable, "-c", _SERVER_CHILD],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    url = child.stdout.readline().strip()
    try:
        print("server in a separate process:", end=" ")
        bench_concurrency(url, clients)
    finally:
        child.stdin.close()
        child.wait(30)


def main() -> None:
    baseline = bench_stdlib_baseline()
    bus = EventBus()
    server = MCPServer(port=0, processes=_Procs(), events=bus)
    server.start()
    try:
        bench_scripts_status(server, baseline)
        print("server in this process:", end=" ")
        bench_concurrency(server.url)
    finally:
        server.stop()
        bus.stop()
    bench_concurrency_subprocess()
    bench_logs_search()


if __name__ == "__main__":
    main()

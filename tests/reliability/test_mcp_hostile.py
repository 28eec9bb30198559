"""The MCP server with malformed and oversized requests mixed into valid ones.

Eight clients share a server: each opens a session and keeps calling ``tools/list`` and
``ping``, and between the valid calls sends garbage (not JSON, invalid JSON-RPC, a body over
``max_body``, a huge nesting, an unknown session, wrong methods). Every valid call must be
answered correctly, every bad one refused with a 4xx or a JSON-RPC error (never a 5xx, never
a hang), and afterwards the server must stop leaving no thread, fd or socket. CI ~1 s;
``BRUMMER_SOAK=1`` a minute.
"""

from __future__ import annotations

import http.client
import json
import random
import threading

import pytest

from brummer.logs import LogStore
from brummer.mcp.server import LATEST_PROTOCOL_VERSION, MCPServer
from tests.reliability._budget import no_leaks, seconds

pytestmark = pytest.mark.reliability

CLIENTS = 8
MAX_BODY = 64 * 1024
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def _post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/mcp", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def _rpc(method: str, rid: int, params: dict[str, object] | None = None) -> bytes:
    msg: dict[str, object] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return json.dumps(msg).encode()


BAD_BODIES = [
    b"",
    b"not json at all",
    b"\xff\xfe\x00garbage",
    b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}',
    b'{"jsonrpc": "2.0", "id": {"an": "object"}, "method": "ping"}',
    b'{"jsonrpc": "2.0", "method": 42, "id": 1}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "no/such/method"}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "nope"}}',
    b"[]",
    b"[1, 2, 3]",
    b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "not an object"}',
]


def test_hostile_requests_mixed_into_valid_ones() -> None:
    duration = seconds(1.0, 60.0)
    tally = {"valid": 0, "refused": 0, "oversized": 0, "nested": 0}
    problems: list[str] = []
    guard = threading.Lock()
    with no_leaks("mcp hostile"):
        store = LogStore()
        server = MCPServer(port=0, logs=store, announce=False, max_body=MAX_BODY)
        try:
            server.start()
            port = server.port
            stop = threading.Event()
            barrier = threading.Barrier(CLIENTS)

            def note(key: str, problem: str | None = None) -> None:
                with guard:
                    tally[key] += 1
                    if problem:
                        problems.append(problem)

            def client(seed: int) -> None:
                rnd = random.Random(seed)
                barrier.wait(10)
                status, body, headers = _post(
                    port,
                    _rpc(
                        "initialize",
                        1,
                        {
                            "protocolVersion": LATEST_PROTOCOL_VERSION,
                            "capabilities": {},
                            "clientInfo": {"name": f"c{seed}", "version": "1"},
                        },
                    ),
                    HEADERS,
                )
                assert status == 200, body
                session = headers["mcp-session-id"]
                with_session = {
                    **HEADERS,
                    "Mcp-Session-Id": session,
                    "MCP-Protocol-Version": LATEST_PROTOCOL_VERSION,
                }
                _post(
                    port, b'{"jsonrpc": "2.0", "method": "notifications/initialized"}', with_session
                )
                rid = 1
                while not stop.is_set():
                    rid += 1
                    roll = rnd.random()
                    if roll < 0.4:
                        method = rnd.choice(["tools/list", "ping"])
                        status, body, _ = _post(port, _rpc(method, rid), with_session)
                        try:
                            answer = json.loads(body)
                        except ValueError:
                            note("valid", f"{method}: {status} non-JSON answer {body[:80]!r}")
                            continue
                        if status != 200 or answer.get("id") != rid or "result" not in answer:
                            note("valid", f"{method}: {status} {body[:120]!r}")
                        else:
                            note("valid")
                        continue
                    if roll < 0.5:
                        status, body, _ = _post(
                            port, b'{"x": "' + b"a" * (MAX_BODY + 10) + b'"}', with_session
                        )
                        note("oversized", None if status == 413 else f"oversized body: {status}")
                        continue
                    if roll < 0.55:
                        status, body, _ = _post(port, b"[" * 50_000 + b"]" * 50_000, with_session)
                        note(
                            "nested",
                            None
                            if 400 <= status < 500 or (status == 200 and b"error" in body)
                            else f"deep nesting: {status} {body[:80]!r}",
                        )
                        continue
                    headers_used = with_session
                    if roll < 0.6:
                        headers_used = {**HEADERS, "Mcp-Session-Id": "no-such-session"}
                    elif roll < 0.65:
                        headers_used = {**HEADERS, "Content-Type": "text/plain"}
                    bad = rnd.choice(BAD_BODIES)
                    status, body, _ = _post(port, bad, headers_used)
                    if status >= 500:
                        note("refused", f"{bad[:40]!r}: {status} {body[:80]!r}")
                    elif status == 200:
                        try:
                            answer = json.loads(body)
                        except ValueError:
                            note("refused", f"{bad[:40]!r}: 200 with non-JSON {body[:80]!r}")
                            continue
                        items = answer if isinstance(answer, list) else [answer]
                        ok = all(isinstance(i, dict) and "error" in i for i in items)
                        note(
                            "refused",
                            None if ok else f"{bad[:40]!r} was answered as valid: {body[:80]!r}",
                        )
                    else:
                        note("refused")

            threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
            for t in threads:
                t.start()
            stop.wait(duration)
            stop.set()
            for t in threads:
                t.join(30)
            assert not any(t.is_alive() for t in threads), "a client hung"
            status, _body, _ = _post(
                port,
                _rpc(
                    "initialize",
                    9,
                    {
                        "protocolVersion": LATEST_PROTOCOL_VERSION,
                        "capabilities": {},
                        "clientInfo": {"name": "last", "version": "1"},
                    },
                ),
                HEADERS,
            )
            assert status == 200, "the server does not answer after the hostile load"
        finally:
            server.stop()
            store.close()
    print(
        f"[reliability] mcp: {duration:.0f} s, {CLIENTS} clients: {tally['valid']} valid calls, "
        f"{tally['refused']} malformed, {tally['oversized']} oversized, {tally['nested']} deeply "
        f"nested; {len(problems)} mishandled"
    )
    assert not problems, sorted(set(problems))[:8]

"""The MCP server over real HTTP on 127.0.0.1 (and a real stdio subprocess).

The log store and the event bus are the real ones; the process manager is a small fake
here (the real one is exercised in test_mcp_sdk.py and the hub tests).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import types
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from brummer.errors import BrummerError, ErrorCode
from brummer.events import Event, EventBus, EventType
from brummer.logs import LogStore
from brummer.mcp import MCPClient, MCPServer, discovery
from brummer.proxy import ProxyServer, TelemetryEvent, TelemetrySession
from tests.helpers import wait_until
from tests.integration.mcp_support import FakeProcesses, Raw, SSEReader, sse_messages

TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "app.py", line 3, in <module>',
    "    main()",
    "ValueError: bad config value 42",
]


class Stack:
    def __init__(self, **server_args: Any) -> None:
        self.bus = EventBus()
        self.logs = LogStore(event_bus=self.bus)
        self.processes = FakeProcesses()
        args: dict[str, Any] = {
            "port": 0,
            "processes": self.processes,
            "logs": self.logs,
            "events": self.bus,
            "keepalive": 0.2,
        }
        args.update(server_args)
        self.server = MCPServer(**args)
        self.server.start()
        self.raws: list[Raw] = []
        self.readers: list[SSEReader] = []

    def raw(self, *, init: str | None = "2025-11-25") -> Raw:
        raw = Raw(self.server.port)
        self.raws.append(raw)
        if init is not None:
            raw.initialize(init)
        return raw

    def stream(self, raw: Raw) -> SSEReader:
        assert raw.session is not None
        reader = SSEReader(self.server.port, raw.session)
        self.readers.append(reader)
        return reader

    def close(self) -> None:
        for reader in self.readers:
            reader.close()
        for raw in self.raws:
            raw.close()
        self.server.stop()
        self.logs.close()
        self.bus.stop()


@pytest.fixture
def stack() -> Iterator[Stack]:
    s = Stack()
    yield s
    s.close()


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[MCPServer]:
    server = MCPServer(port=0, processes=FakeProcesses(), max_body=4096)
    server.start()
    yield server
    server.stop()


# ------------------------------------------------------------------------ lifecycle


def test_initialize_negotiates_the_revision_and_issues_a_session(stack: Stack) -> None:
    raw = stack.raw(init=None)
    for asked, got in [
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", "2024-11-05"),
        ("1999-01-01", "2025-11-25"),
    ]:
        result = raw.initialize(asked)
        assert result["protocolVersion"] == got
        assert result["serverInfo"]["name"] == "brummer"
        assert set(result["capabilities"]) >= {"tools", "resources", "prompts", "logging"}
    assert len(set(stack.server.session_ids())) == 5
    assert raw.rpc("ping").json["result"] == {}


def test_session_is_required_checked_and_ended_by_delete(stack: Stack) -> None:
    raw = stack.raw(init=None)
    missing = raw.rpc("ping")
    assert missing.status == 400
    assert missing.json["error"]["code"] == -32600
    raw.session = "forged-session-id"
    forged = raw.rpc("ping")
    assert forged.status == 404
    raw.initialize()
    assert raw.rpc("ping").status == 200
    assert raw.send("DELETE").status == 200
    assert raw.rpc("ping").status == 404
    assert raw.send("DELETE").status == 404


def test_server_listens_on_loopback_only_and_falls_back_from_a_busy_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        server = MCPServer(port=port)
        server.start()
        try:
            assert server.port not in (0, port)
            assert server.url == f"http://127.0.0.1:{server.port}/mcp"
        finally:
            server.stop()
        strict = MCPServer(port=port, port_fallback=False)
        with pytest.raises(BrummerError) as info:
            strict.start()
        assert info.value.code is ErrorCode.RESOURCE_LIMIT
        strict.stop()
    with pytest.raises(BrummerError) as bad:
        MCPServer(host="0.0.0.0")
    assert bad.value.code is ErrorCode.INVALID_ARGUMENT


def test_stop_is_idempotent_closes_live_connections_and_refuses_restart() -> None:
    server = MCPServer(port=0)
    server.start()
    server.start()  # no-op
    raw = Raw(server.port)
    raw.initialize()
    reader = SSEReader(server.port, raw.session or "")
    assert reader.status == 200
    server.stop()
    server.stop()
    assert not server.is_running
    with pytest.raises(BrummerError) as info:
        server.start()
    assert info.value.code is ErrorCode.INVALID_STATE
    reader.close()
    raw.close()


def test_connection_accepted_while_stopping_is_closed_at_once() -> None:
    # A connection accepted just before stop() whose handler registers just after it must
    # be closed by the server, not left waiting (up to the idle timeout) for a request.
    entered = threading.Event()
    proceed = threading.Event()

    class Gated(MCPServer):
        def register_connection(self, conn: socket.socket, thread: threading.Thread) -> bool:
            entered.set()
            proceed.wait(5)
            return super().register_connection(conn, thread)

    server = Gated(port=0)
    server.start()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    stopper = threading.Thread(target=server.stop)
    try:
        assert entered.wait(5)
        stopper.start()
        assert wait_until(lambda: not server.is_running)
        proceed.set()
        assert sock.recv(1) == b""  # closed by the server (a timeout here is the bug)
    finally:
        proceed.set()
        sock.close()
        if stopper.ident is not None:
            stopper.join(10)
        server.stop()


def test_instance_file_is_written_after_listening_and_removed_on_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRUMMER_STATE_DIR", str(tmp_path))
    server = MCPServer(port=0, announce=True, project_dir=str(tmp_path))
    server.start()
    try:
        found = discovery.list_instances()
        assert [i.port for i in found] == [server.port]
        assert found[0].pid == os.getpid()
        assert found[0].directory == str(tmp_path)
        folder = tmp_path / "instances"
        assert (folder.stat().st_mode & 0o777) == 0o700
        (file,) = folder.iterdir()
        assert (file.stat().st_mode & 0o777) == 0o600
    finally:
        server.stop()
    assert discovery.list_instances() == []


# --------------------------------------------------------------------- bad input


def test_protocol_errors_have_the_right_codes_and_the_server_keeps_serving(stack: Stack) -> None:
    raw = stack.raw()
    bad_json = raw.send("POST", b"{not json")
    assert (bad_json.status, bad_json.json["error"]["code"]) == (400, -32700)
    assert bad_json.json["id"] is None
    wrong_version = raw.send("POST", b'{"jsonrpc":"1.0","id":5,"method":"ping"}')
    assert wrong_version.json["error"]["code"] == -32600
    assert wrong_version.json["id"] == 5
    unknown = raw.rpc("no/such/method")
    assert (unknown.status, unknown.json["error"]["code"]) == (200, -32601)
    unknown_tool = raw.rpc("tools/call", {"name": "nope", "arguments": {}})
    assert unknown_tool.json["error"]["code"] == -32602
    bad_params = raw.rpc("tools/call", {"name": "scripts_run", "arguments": "dev"})
    assert bad_params.json["error"]["code"] == -32602
    not_object = raw.send("POST", b'{"jsonrpc":"2.0","id":9,"method":"ping","params":3}')
    assert not_object.json["error"]["code"] == -32600
    bad_level = raw.rpc("logging/setLevel", {"level": "loud"})
    assert bad_level.json["error"]["code"] == -32602
    assert raw.rpc("ping").json["result"] == {}


def test_arguments_failing_the_schema_are_tool_errors_naming_each_problem(stack: Stack) -> None:
    raw = stack.raw()
    result = raw.call("scripts_run", {"nam": "dev", "allowDuplicate": "yes"})
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "arguments.name is required" in text
    assert "arguments.nam is not a known argument" in text
    assert "allowDuplicate must be of type boolean" in text
    limit = raw.call("logs_search", {"query": "x", "limit": 0})
    assert limit["isError"] is True
    assert "limit must be ≥ 1" in limit["content"][0]["text"]


def test_foreign_origin_and_host_are_refused(stack: Stack) -> None:
    raw = stack.raw()
    evil = raw.rpc("ping", headers={"Origin": "http://evil.example"})
    assert evil.status == 403
    rebind = raw.rpc("ping", headers={"Host": "attacker.example:80"})
    assert rebind.status == 403
    local = raw.rpc("ping", headers={"Origin": f"http://localhost:{stack.server.port}"})
    assert local.status == 200


def test_body_over_the_limit_is_413_and_other_requests_still_work() -> None:
    server = MCPServer(port=0, max_body=2048)
    server.start()
    raw = Raw(server.port)
    try:
        raw.initialize()
        big = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * 5000}}
        ).encode()
        assert raw.send("POST", big).status == 413
        assert raw.rpc("ping").status == 200
    finally:
        raw.close()
        server.stop()


def test_chunked_body_over_the_limit_is_413_not_silently_truncated() -> None:
    # werkzeug's limited stream stops at the limit without an error for chunked bodies:
    # the request must still be refused, not cut to the limit and served.
    server = MCPServer(port=0, max_body=2048)
    server.start()
    raw = Raw(server.port)
    try:
        raw.initialize()
        ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
        padded = ping + b" " * (4096 - len(ping))  # valid JSON within the limit, then padding
        over = raw.send("POST", iter([padded[:1000], padded[1000:]]))  # sent chunked
        assert over.status == 413
        assert over.json["error"]["code"] == -32600
        fits = raw.send("POST", iter([ping]))
        assert fits.status == 200
        assert fits.json["result"] == {}
    finally:
        raw.close()
        server.stop()


def test_null_origin_is_refused(stack: Stack) -> None:
    # Sandboxed iframes and file: pages send "Origin: null"; that is not a local origin.
    raw = stack.raw()
    assert raw.rpc("ping", headers={"Origin": "null"}).status == 403
    assert raw.rpc("ping").status == 200


def test_http_method_accept_and_content_type_are_checked(stack: Stack) -> None:
    raw = stack.raw()
    assert raw.send("PUT", b"{}").status == 405
    assert raw.rpc("ping", headers={"Accept": "text/html"}).status == 406
    assert raw.rpc("ping", headers={"Content-Type": "text/plain"}).status == 415
    assert raw.send("GET", headers={"Accept": "application/json"}).status == 406
    unsupported = raw.rpc("ping", headers={"MCP-Protocol-Version": "2099-01-01"})
    assert unsupported.status == 400


def test_notifications_alone_get_202_and_sse_accept_gets_an_event_stream(stack: Stack) -> None:
    raw = stack.raw()
    assert raw.notify("notifications/cancelled").status == 202
    reply = raw.rpc("tools/list", headers={"Accept": "text/event-stream"})
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    (message,) = list(sse_messages(reply.body))
    assert len(message["result"]["tools"]) == 13


def test_batches_only_for_revisions_that_allow_them(stack: Stack) -> None:
    old = stack.raw(init="2025-03-26")
    body = json.dumps(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/x"},
            {"jsonrpc": "1.0", "id": 3, "method": "ping"},
            {"jsonrpc": "2.0", "id": 4, "method": "nope"},
        ]
    ).encode()
    reply = old.send("POST", body)
    assert reply.status == 200
    by_id = {m["id"]: m for m in reply.json}
    assert by_id[1]["result"] == {}
    assert by_id[3]["error"]["code"] == -32600
    assert by_id[4]["error"]["code"] == -32601
    new = stack.raw(init="2025-11-25")
    assert new.send("POST", body).status == 400


# ------------------------------------------------------------------------------ tools


def test_tools_list_has_schemas_and_output_schemas_by_revision(stack: Stack) -> None:
    new = stack.raw(init="2025-06-18")
    tools = {t["name"]: t for t in new.rpc("tools/list").json["result"]["tools"]}
    assert set(tools) == {
        "scripts_list",
        "scripts_run",
        "scripts_stop",
        "scripts_restart",
        "scripts_status",
        "logs_stream",
        "logs_search",
        "errors_list",
        "urls_list",
        "proxy_requests",
        "telemetry_sessions",
        "telemetry_events",
        "command_run",
    }
    assert tools["scripts_run"]["inputSchema"]["required"] == ["name"]
    assert "outputSchema" in tools["logs_search"]
    old = stack.raw(init="2025-03-26")
    assert all("outputSchema" not in t for t in old.rpc("tools/list").json["result"]["tools"])
    result = old.call("scripts_list")
    assert "structuredContent" not in result
    assert json.loads(result["content"][0]["text"])["scripts"][0]["name"] == "dev"


def test_scripts_run_refuses_a_duplicate_unless_asked_then_stop_and_restart(stack: Stack) -> None:
    raw = stack.raw()
    first = raw.call("scripts_run", {"name": "dev"})
    assert first["isError"] is False
    info = first["structuredContent"]
    assert (info["name"], info["status"]) == ("dev", "running")
    assert json.loads(first["content"][0]["text"]) == info
    duplicate = raw.call("scripts_run", {"name": "dev"})
    assert duplicate["isError"] is True
    assert info["id"] in duplicate["content"][0]["text"]
    assert "allowDuplicate" in duplicate["content"][0]["text"]
    second = raw.call("scripts_run", {"name": "dev", "allowDuplicate": True})
    assert second["structuredContent"]["id"] != info["id"]
    missing = raw.call("scripts_run", {"name": "nope"})
    assert missing["isError"] is True
    assert "NOT_FOUND" in missing["content"][0]["text"]
    stopped = raw.call("scripts_stop", {"processId": info["id"]})
    assert stopped["structuredContent"]["status"] == "stopped"
    restarted = raw.call("scripts_restart", {"processId": info["id"]})
    assert restarted["structuredContent"]["id"] != info["id"]
    status = raw.call("scripts_status", {"name": "dev"})["structuredContent"]["processes"]
    assert len(status) == 3
    assert all("uptime" in p for p in status)
    unknown = raw.call("scripts_stop", {"processId": "ghost"})
    assert unknown["isError"] is True


def test_logs_search_regex_level_process_and_invalid_pattern(stack: Stack) -> None:
    raw = stack.raw()
    stack.logs.add("p1", "web", "GET /api/users 200 in 12ms")
    stack.logs.add("p1", "web", "GET /api/orders 500 in 80ms")
    stack.logs.add("p2", "worker", "job 17 failed: Error: timeout", is_error=True)
    plain = raw.call("logs_search", {"query": "api/orders"})["structuredContent"]["entries"]
    assert [e["content"] for e in plain] == ["GET /api/orders 500 in 80ms"]
    regex = raw.call("logs_search", {"query": r"GET /api/\w+ 5\d\d", "regex": True})
    assert [e["content"] for e in regex["structuredContent"]["entries"]] == [
        "GET /api/orders 500 in 80ms"
    ]
    literal = raw.call("logs_search", {"query": r"GET /api/\w+ 5\d\d"})
    assert literal["structuredContent"]["entries"] == []
    by_process = raw.call("logs_search", {"query": "GET", "processId": "p2"})
    assert by_process["structuredContent"]["entries"] == []
    errors = raw.call("logs_search", {"query": "job", "level": "error"})
    assert [e["process_id"] for e in errors["structuredContent"]["entries"]] == ["p2"]
    since_future = raw.call("logs_search", {"query": "GET", "since": "2999-01-01T00:00:00Z"})
    assert since_future["structuredContent"]["entries"] == []
    broken = raw.call("logs_search", {"query": "([", "regex": True})
    assert broken["isError"] is True
    assert "regular expression" in broken["content"][0]["text"]
    bad_time = raw.call("logs_search", {"query": "x", "since": "last tuesday"})
    assert bad_time["isError"] is True


def test_logs_stream_cursor_returns_only_new_lines(stack: Stack) -> None:
    raw = stack.raw()
    for i in range(5):
        stack.logs.add("p1", "web", f"line {i}")
    first = raw.call("logs_stream", {"limit": 3})["structuredContent"]
    assert [e["content"] for e in first["entries"]] == ["line 2", "line 3", "line 4"]
    empty = raw.call("logs_stream", {"cursor": first["cursor"]})["structuredContent"]
    assert empty["entries"] == []
    stack.logs.add("p1", "web", "line 5")
    stack.logs.add("p2", "api", "other 1")
    nxt = raw.call("logs_stream", {"cursor": empty["cursor"]})["structuredContent"]
    assert [e["content"] for e in nxt["entries"]] == ["line 5", "other 1"]
    one = raw.call("logs_stream", {"processId": "p1", "limit": 2})["structuredContent"]
    assert [e["content"] for e in one["entries"]] == ["line 4", "line 5"]
    stack.logs.add("p1", "web", "line 6")
    again = raw.call("logs_stream", {"processId": "p1", "cursor": one["cursor"]})
    assert [e["content"] for e in again["structuredContent"]["entries"]] == ["line 6"]
    forged = raw.call("logs_stream", {"cursor": "garbage"})
    assert forged["isError"] is True


def test_logs_stream_cursor_never_repeats_lines_after_eviction() -> None:
    logs = LogStore(max_entries=4)
    server = MCPServer(port=0, processes=FakeProcesses(), logs=logs)
    server.start()
    raw = Raw(server.port)
    try:
        raw.initialize("2025-11-25")
        for i in range(3):
            logs.add("p1", "web", f"line {i}")
        first = raw.call("logs_stream", {"limit": 10})["structuredContent"]
        assert [e["content"] for e in first["entries"]] == ["line 0", "line 1", "line 2"]
        for i in range(3, 9):  # six more lines into a store of four: two are never seen
            logs.add("p1", "web", f"line {i}")
        nxt = raw.call("logs_stream", {"cursor": first["cursor"]})["structuredContent"]
        assert [e["content"] for e in nxt["entries"]] == [f"line {i}" for i in range(5, 9)]
        last = raw.call("logs_stream", {"cursor": nxt["cursor"]})["structuredContent"]
        assert last["entries"] == []
    finally:
        raw.close()
        server.stop()


def test_errors_list_and_urls_list_come_from_the_log_store(stack: Stack) -> None:
    raw = stack.raw()
    for line in TRACEBACK:
        stack.logs.add("p1", "api", line, is_error=True)
    stack.logs.add("p1", "api", "Local: http://localhost:5173/")
    assert wait_until(lambda: raw.call("errors_list")["structuredContent"]["errors"], timeout=5.0)
    (group,) = raw.call("errors_list")["structuredContent"]["errors"]
    assert group["kind"] == "ValueError"
    assert any("main()" in line for line in group["lines"])
    urls = raw.call("urls_list")["structuredContent"]["urls"]
    assert [u["url"] for u in urls] == ["http://localhost:5173/"]


def test_tools_of_missing_components_say_not_available() -> None:
    server = MCPServer(port=0)
    server.start()
    raw = Raw(server.port)
    try:
        raw.initialize()
        for tool, args in [
            ("scripts_list", {}),
            ("logs_search", {"query": "x"}),
            ("proxy_requests", {}),
            ("telemetry_sessions", {}),
        ]:
            result = raw.call(tool, args)
            assert result["isError"] is True, tool
            assert "not available" in result["content"][0]["text"]
        read = raw.rpc("resources/read", {"uri": "logs://recent"}).json["result"]
        assert "not available" in read["contents"][0]["text"]
    finally:
        raw.close()
        server.stop()


def test_command_run_is_off_unless_enabled() -> None:
    processes = FakeProcesses()
    off = MCPServer(port=0, processes=processes)
    on = MCPServer(port=0, processes=processes, command_run_enabled=True)
    off.start()
    on.start()
    raws = [Raw(off.port), Raw(on.port)]
    try:
        for raw in raws:
            raw.initialize()
        refused = raws[0].call("command_run", {"command": "echo hi"})
        assert refused["isError"] is True
        assert "PERMISSION" in refused["content"][0]["text"]
        assert processes.commands == []
        ran = raws[1].call("command_run", {"command": "echo hi", "name": "greet"})
        assert ran["structuredContent"]["name"] == "greet"
        assert processes.commands == ["echo hi"]
    finally:
        for raw in raws:
            raw.close()
        off.stop()
        on.stop()


def test_every_tool_call_publishes_mcp_activity(stack: Stack) -> None:
    seen: list[Event] = []
    sub = stack.bus.subscribe(EventType.MCP_ACTIVITY, seen.append)
    raw = stack.raw()
    raw.call("scripts_list")
    raw.call("logs_search", {"query": "(", "regex": True})
    assert wait_until(lambda: len([e for e in seen if e.data.get("tool")]) >= 2)
    tools = [(e.data["tool"], e.data["ok"]) for e in seen if e.data.get("tool")]
    assert tools[:2] == [("scripts_list", True), ("logs_search", False)]
    stack.bus.unsubscribe(sub)


# ---------------------------------------------------------- resources and prompts


def test_resources_list_read_and_unknown_uri(stack: Stack) -> None:
    raw = stack.raw()
    stack.logs.add("p1", "web", "hello resource")
    uris = {r["uri"] for r in raw.rpc("resources/list").json["result"]["resources"]}
    assert uris == {
        "logs://recent",
        "logs://errors",
        "processes://active",
        "scripts://available",
        "proxy://requests",
        "telemetry://errors",
    }
    (content,) = raw.rpc("resources/read", {"uri": "logs://recent"}).json["result"]["contents"]
    assert content["mimeType"] == "application/json"
    assert json.loads(content["text"])["entries"][0]["content"] == "hello resource"
    unknown = raw.rpc("resources/read", {"uri": "logs://nope"}).json
    assert unknown["error"]["code"] == -32002
    assert raw.rpc("resources/subscribe", {"uri": "nope://x"}).json["error"]["code"] == -32002


def test_prompts_list_and_get(stack: Stack) -> None:
    raw = stack.raw()
    for line in TRACEBACK:
        stack.logs.add("p1", "api", line, is_error=True)
    names = {p["name"] for p in raw.rpc("prompts/list").json["result"]["prompts"]}
    assert names == {"debug_error", "script_configuration"}
    assert wait_until(stack.logs.get_error_groups)
    got = raw.rpc(
        "prompts/get", {"name": "debug_error", "arguments": {"error_message": "boom"}}
    ).json["result"]
    text = got["messages"][0]["content"]["text"]
    assert "boom" in text
    assert "ValueError" in text
    missing = raw.rpc("prompts/get", {"name": "debug_error", "arguments": {}}).json
    assert missing["error"]["code"] == -32602
    unknown = raw.rpc("prompts/get", {"name": "nope"}).json
    assert unknown["error"]["code"] == -32602


# ---------------------------------------------------------------------- notifications


def test_get_stream_delivers_log_lines_and_process_events_with_keepalives(stack: Stack) -> None:
    raw = stack.raw()
    reader = stack.stream(raw)
    assert reader.status == 200
    assert wait_until(lambda: "stream open" in reader.comments)
    stack.bus.publish(
        Event(EventType.LOG_LINE, {"name": "web", "is_error": False, "lines": ("ready",)}, "p1")
    )
    stack.bus.publish(Event(EventType.PROCESS_EXITED, {"name": "web", "exit_code": 1}, "p1"))
    assert wait_until(lambda: len(reader.messages) >= 2)
    log, exited = reader.messages[:2]
    assert log["method"] == "notifications/message"
    assert log["params"]["logger"] == "brummer"
    assert log["params"]["level"] == "info"
    assert log["params"]["data"]["content"] == "ready"
    assert log["params"]["data"]["process_id"] == "p1"
    assert exited["params"]["level"] == "warning"
    assert exited["params"]["data"]["event"] == "process.exited"
    assert wait_until(lambda: "keep-alive" in reader.comments, timeout=5.0)


def test_logging_set_level_filters_notifications(stack: Stack) -> None:
    raw = stack.raw()
    assert raw.rpc("logging/setLevel", {"level": "error"}).json["result"] == {}
    reader = stack.stream(raw)
    assert wait_until(lambda: reader.comments)
    stack.bus.publish(
        Event(EventType.LOG_LINE, {"name": "w", "is_error": False, "lines": ("quiet",)}, "p")
    )
    stack.bus.publish(
        Event(EventType.LOG_LINE, {"name": "w", "is_error": True, "lines": ("loud",)}, "p")
    )
    assert wait_until(lambda: reader.messages)
    stack.bus.publish(
        Event(EventType.LOG_LINE, {"name": "w", "is_error": True, "lines": ("end",)}, "p")
    )
    assert wait_until(lambda: len(reader.messages) >= 2)
    assert [m["params"]["data"]["content"] for m in reader.messages] == ["loud", "end"]


def test_subscribed_resources_get_updated_notifications(stack: Stack) -> None:
    raw = stack.raw()
    assert raw.rpc("resources/subscribe", {"uri": "processes://active"}).json["result"] == {}
    reader = stack.stream(raw)
    assert wait_until(lambda: reader.comments)
    stack.bus.publish(Event(EventType.PROCESS_STARTED, {"name": "web"}, "p1"))
    assert wait_until(
        lambda: any(
            m["method"] == "notifications/resources/updated"
            and m["params"]["uri"] == "processes://active"
            for m in reader.messages
        )
    )
    raw.rpc("resources/unsubscribe", {"uri": "processes://active"})


def test_one_stream_per_session_and_a_dropped_client_frees_it(stack: Stack) -> None:
    raw = stack.raw()
    first = stack.stream(raw)
    assert first.status == 200
    assert wait_until(lambda: first.comments)
    second = SSEReader(stack.server.port, raw.session or "")
    assert second.status == 409
    second.close()
    first.close()  # the client goes away mid-stream

    def reopened() -> bool:
        probe = SSEReader(stack.server.port, raw.session or "")
        ok = probe.status == 200
        if ok:
            stack.readers.append(probe)
        else:
            probe.close()
        return ok

    assert wait_until(reopened, timeout=5.0)
    assert raw.rpc("ping").status == 200


# ------------------------------------------------------------------------- the client


def test_client_calls_tools_maps_errors_and_closes(stack: Stack) -> None:
    client = MCPClient(stack.server.url)
    client.initialize()
    client.initialize()  # idempotent
    assert client.is_connected
    assert client.protocol_version == "2025-11-25"
    assert client.call("scripts_list")["scripts"][1]["name"] == "test"
    with pytest.raises(BrummerError) as unknown:
        client.call("nope")
    assert unknown.value.code is ErrorCode.INVALID_ARGUMENT
    with pytest.raises(BrummerError) as missing:
        client.call("scripts_stop", {"processId": "ghost"})
    assert missing.value.code is ErrorCode.NOT_FOUND
    assert client.ping() < 5.0
    client.close()
    client.close()
    assert not client.is_connected
    with pytest.raises(BrummerError) as closed:
        client.call("scripts_list")
    assert closed.value.code is ErrorCode.INVALID_STATE


def test_client_is_thread_safe_and_reuses_connections(stack: Stack) -> None:
    client = MCPClient(stack.server.url)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert client.call("scripts_status")["processes"] == []
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    client.close()
    assert errors == []
    assert len(stack.server.session_ids()) == 0  # close() ended the session


def test_client_reports_network_errors_and_lost_sessions() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        dead_port = probe.getsockname()[1]
    client = MCPClient(f"http://127.0.0.1:{dead_port}/mcp", timeout=2.0)
    with pytest.raises(BrummerError) as info:
        client.initialize()
    assert info.value.code is ErrorCode.NETWORK
    client.close()
    server = MCPServer(port=0)
    server.start()
    client = MCPClient(server.url)
    try:
        client.initialize()
        client.listen(lambda _m: None)
        server.stop()
        with pytest.raises(BrummerError) as gone:
            client.call("scripts_list", timeout=2.0)
        assert gone.value.code is ErrorCode.NETWORK
        assert not client.is_connected
    finally:
        client.close()
        server.stop()
    with pytest.raises(BrummerError):
        MCPClient("ftp://example.com/mcp")


class EndlessServer:
    """Something else on an instance's port: answers every request with an endless body."""

    def __init__(self, head: bytes) -> None:
        self.head = head
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="test-endless")
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(5)
        with contextlib.suppress(OSError):
            conn, _ = self.listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(self.head)
                while not self.stop.is_set():
                    conn.sendall(b" " * 65536)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.listener.close()


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n",  # close-delimited
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9000000000\r\n\r\n",
    ],
)
def test_client_gives_up_on_an_endless_reply_in_time_and_bounded(head: bytes) -> None:
    # The hub's health check runs through this client: a port that now serves an endless
    # body must not hold the caller (the hub's monitor thread) forever or fill memory.
    endless = EndlessServer(head)
    client = MCPClient(f"http://127.0.0.1:{endless.port}/mcp", timeout=0.5)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            client.initialize()
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=run)
    caller.start()
    caller.join(10)
    finished = not caller.is_alive()
    endless.close()
    client.close()
    caller.join(10)
    assert finished, "initialize() still reading an endless reply after 10 s"
    (error,) = errors
    assert isinstance(error, BrummerError)
    assert error.code in {ErrorCode.TIMEOUT, ErrorCode.RESOURCE_LIMIT}


def test_client_listen_receives_notifications(stack: Stack) -> None:
    client = MCPClient(stack.server.url)
    got: list[dict[str, Any]] = []
    client.listen(got.append)
    assert wait_until(lambda: stack.server.notify("notifications/message", {"x": 1}, level="info"))
    assert wait_until(lambda: got)
    assert got[0]["params"] == {"x": 1}
    client.close()


# ------------------------------------------------------------------------------ stdio


def test_stdio_transport_speaks_only_protocol_on_stdout(tmp_path: Path) -> None:
    code = (
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)\n"
        "from brummer.mcp import MCPServer\n"
        "MCPServer(port=0).serve_stdio()\n"
    )
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {}},
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        "garbage{",
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "scripts_list"}},
        {"jsonrpc": "2.0", "id": 4, "method": "ping"},
    ]
    stdin = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=stdin.encode(),
        capture_output=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [m.get("id") for m in out] == [1, 2, None, 3, 4]
    assert out[0]["result"]["protocolVersion"] == "2025-06-18"
    assert len(out[1]["result"]["tools"]) == 13
    assert out[2]["error"]["code"] == -32700
    assert out[3]["result"]["isError"] is True
    assert out[4]["result"] == {}


# ------------------------------------------------------------ proxy and telemetry


class _Backend(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 500 if "fail" in self.path else 200
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return


def test_proxy_requests_and_telemetry_tools_over_the_real_proxy() -> None:
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    serving = threading.Thread(target=backend.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    proxy = ProxyServer(port=0)
    proxy.start()
    server = MCPServer(port=0, proxy=proxy)
    server.start()
    raw = Raw(server.port)
    try:
        front = proxy.register_url(f"http://127.0.0.1:{backend.server_address[1]}/", "web")
        for path in ("ok", "fail"):
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(front + path, timeout=10).close()
        assert wait_until(lambda: len(proxy.get_requests()) == 2)
        raw.initialize()
        everything = raw.call("proxy_requests", {"processName": "web"})["structuredContent"]
        assert [r["status"] for r in everything["requests"]] == [200, 500]
        failed = raw.call("proxy_requests", {"status": "error"})["structuredContent"]
        assert [r["url"].rsplit("/", 1)[1] for r in failed["requests"]] == ["fail"]
        now = datetime.now(UTC)
        proxy.telemetry.add_session(
            TelemetrySession(
                id="tab-1",
                process_name="web",
                url=front,
                user_agent="test",
                started=now,
                last_activity=now,
                events=(
                    TelemetryEvent("javascript_error", now, {"message": "x is undefined"}),
                    TelemetryEvent("console", now, {"level": "log", "message": "hi"}),
                    TelemetryEvent("page_load", now, {"load_ms": 12}),
                ),
            )
        )
        sessions = raw.call("telemetry_sessions", {"processName": "web"})["structuredContent"]
        assert [s["id"] for s in sessions["sessions"]] == ["tab-1"]
        assert raw.call("telemetry_sessions")["structuredContent"]["sessions"][0]["id"] == "tab-1"
        errors = raw.call("telemetry_events", {"eventType": "error"})["structuredContent"]
        assert [e["type"] for e in errors["events"]] == ["javascript_error"]
        perf = raw.call("telemetry_events", {"eventType": "performance", "sessionId": "tab-1"})
        assert [e["type"] for e in perf["structuredContent"]["events"]] == ["page_load"]
        missing = raw.call("telemetry_events", {"sessionId": "nope"})
        assert missing["isError"] is True
        assert "NOT_FOUND" in missing["content"][0]["text"]
        (content,) = raw.rpc("resources/read", {"uri": "telemetry://errors"}).json["result"][
            "contents"
        ]
        assert "x is undefined" in content["text"]
    finally:
        raw.close()
        server.stop()
        proxy.stop()
        backend.shutdown()
        backend.server_close()
        serving.join()


# ------------------------------------------------------------ the container and fuzzing


def test_server_takes_its_components_from_a_container(stack: Stack) -> None:
    container = types.SimpleNamespace(
        processes=stack.processes,
        logs=stack.logs,
        proxy=None,
        events=stack.bus,
        config=types.SimpleNamespace(command_run=True),
        work_dir=str(Path.cwd()),
    )
    server = MCPServer(container, port=0, announce=False)
    server.start()
    raw = Raw(server.port)
    try:
        raw.initialize()
        assert raw.call("scripts_list")["isError"] is False
        assert raw.call("command_run", {"command": "true"})["isError"] is False
        assert raw.call("proxy_requests")["isError"] is True
    finally:
        raw.close()
        server.stop()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_messages = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
        "id": st.integers() | st.text(max_size=5) | st.none(),
        "method": st.sampled_from(["ping", "tools/call", "tools/list", "resources/read", "x"])
        | st.text(max_size=10),
        "params": _json_values,
    },
)


@settings(max_examples=60)
@given(
    bodies=st.lists(
        st.binary(max_size=40)
        | _messages.map(lambda m: json.dumps(m).encode())
        | st.lists(_messages, min_size=1, max_size=3).map(lambda m: json.dumps(m).encode()),
        min_size=1,
        max_size=4,
    )
)
def test_fuzzed_bodies_get_http_answers_and_the_server_keeps_serving(
    fuzz_server: MCPServer, bodies: list[bytes]
) -> None:
    raw = Raw(fuzz_server.port)
    try:
        raw.initialize("2025-03-26")
        for body in bodies:
            reply = raw.send("POST", body)
            assert reply.status in (200, 202, 400), (body, reply)
            if reply.body:
                parsed = reply.json
                items = parsed if isinstance(parsed, list) else [parsed]
                assert all(item.get("jsonrpc") == "2.0" for item in items)
        assert raw.rpc("ping").json["result"] == {}
    finally:
        raw.close()


def test_concurrent_sessions_from_many_threads(stack: Stack) -> None:
    errors: list[BaseException] = []

    def session_life() -> None:
        raw = Raw(stack.server.port)
        try:
            for _ in range(5):
                raw.initialize()
                assert raw.call("scripts_list")["isError"] is False
                assert raw.send("DELETE").status == 200
        except BaseException as exc:
            errors.append(exc)
        finally:
            raw.close()

    threads = [threading.Thread(target=session_life) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert stack.server.session_ids() == []

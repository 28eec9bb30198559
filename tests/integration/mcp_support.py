"""Shared support for the MCP tests: raw HTTP exchanges, SSE reading, a fake process manager."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from brummer.errors import BrummerError, ErrorCode

_ids = itertools.count(1)


@attrs.frozen
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Raw:
    """A raw HTTP/1.1 client on one keep-alive connection (reconnects when closed)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.session: str | None = None

    def close(self) -> None:
        self.conn.close()

    def send(
        self,
        method: str,
        body: bytes | Iterator[bytes] | None = None,  # an iterator is sent chunked
        headers: Mapping[str, str] | None = None,
        *,
        session: bool = True,
    ) -> Reply:
        hdrs = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if session and self.session:
            hdrs["Mcp-Session-Id"] = self.session
        hdrs.update(headers or {})
        try:
            self.conn.request(method, "/mcp", body=body, headers=hdrs)
            resp = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.conn.request(method, "/mcp", body=body, headers=hdrs)
            resp = self.conn.getresponse()
        data = resp.read()
        if resp.will_close:
            self.conn.close()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)

    def rpc(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": next(_ids), "method": method}
        if params is not None:
            message["params"] = dict(params)
        return self.send("POST", json.dumps(message).encode(), headers)

    def notify(self, method: str) -> Reply:
        return self.send("POST", json.dumps({"jsonrpc": "2.0", "method": method}).encode())

    def initialize(self, version: str = "2025-11-25") -> dict[str, Any]:
        reply = self.rpc(
            "initialize",
            {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t"}},
        )
        assert reply.status == 200, reply
        self.session = reply.headers["mcp-session-id"]
        assert self.notify("notifications/initialized").status == 202
        result: dict[str, Any] = reply.json["result"]
        return result

    def call(self, tool: str, arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
        reply = self.rpc("tools/call", {"name": tool, "arguments": dict(arguments or {})})
        assert reply.status == 200, reply
        body = reply.json
        assert "result" in body, body
        result: dict[str, Any] = body["result"]
        return result


class SSEReader:
    """Reads an SSE GET stream in a thread; collects messages and comments."""

    def __init__(self, port: int, session: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.conn.request(
            "GET", "/mcp", headers={"Accept": "text/event-stream", "Mcp-Session-Id": session}
        )
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.messages: list[dict[str, Any]] = []
        self.comments: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.status == 200:
            self._thread.start()

    def _read(self) -> None:
        data: list[bytes] = []
        try:
            while True:
                line = self.response.readline()
                if not line:
                    return
                line = line.rstrip(b"\r\n")
                if line.startswith(b":"):
                    self.comments.append(line[1:].strip().decode())
                elif line.startswith(b"data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    self.messages.append(json.loads(b"\n".join(data)))
                    data = []
        except Exception:  # the stream was closed under the reader: that ends it
            return

    def close(self) -> None:
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()
        if self._thread.is_alive():
            self._thread.join(5)


@attrs.frozen
class FakeScript:
    name: str
    command: str
    cwd: str = "/tmp"
    source: str = "package.json"
    package: str | None = None


@attrs.frozen
class FakeInfo:
    id: str
    name: str
    command: str
    cwd: str
    pid: int | None
    status: str
    exit_code: int | None
    start_time: datetime
    end_time: datetime | None = None


class FakeProcess:
    def __init__(self, pid: str, name: str, command: str) -> None:
        self.id = pid
        self.name = name
        self.command = command
        self.running = True
        self.start_time = datetime.now(UTC)

    def is_running(self) -> bool:
        return self.running

    def snapshot(self) -> FakeInfo:
        return FakeInfo(
            self.id,
            self.name,
            self.command,
            "/tmp",
            4242 if self.running else None,
            "running" if self.running else "stopped",
            None if self.running else -15,
            self.start_time,
        )


class FakeProcesses:
    """Enough of ProcessManager for the tools: scripts, start, stop, restart, lookups."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.procs: dict[str, FakeProcess] = {}
        self.counter = itertools.count(1)
        self.commands: list[str] = []

    def scripts(self) -> dict[str, FakeScript]:
        return {"dev": FakeScript("dev", "vite"), "test": FakeScript("test", "vitest run")}

    def start_script(self, name: str, *, allow_duplicate: bool = False) -> FakeProcess:
        scripts = self.scripts()
        if name not in scripts:
            raise BrummerError(
                "process", ErrorCode.NOT_FOUND, f"no script {name!r}", hint="scripts_list"
            )
        with self.lock:
            if not allow_duplicate and any(
                p.name == name and p.running for p in self.procs.values()
            ):
                raise BrummerError(
                    "process", ErrorCode.ALREADY_EXISTS, f"{name} runs", hint="stop it"
                )
            proc = FakeProcess(f"{name}-{next(self.counter)}", name, scripts[name].command)
            self.procs[proc.id] = proc
            return proc

    def start_command(self, name: str, command: str) -> FakeProcess:
        with self.lock:
            self.commands.append(command)
            proc = FakeProcess(f"{name}-{next(self.counter)}", name, command)
            self.procs[proc.id] = proc
            return proc

    def stop_process(self, process_id: str, timeout: float | None = None) -> None:
        with self.lock:
            self.procs[process_id].running = False

    def restart_process(self, process_id: str) -> FakeProcess:
        with self.lock:
            old = self.procs[process_id]
            old.running = False
            proc = FakeProcess(f"{old.name}-{next(self.counter)}", old.name, old.command)
            self.procs[proc.id] = proc
            return proc

    def get_process(self, process_id: str) -> FakeProcess | None:
        with self.lock:
            return self.procs.get(process_id)

    def get_all_processes(self) -> list[FakeProcess]:
        with self.lock:
            return list(self.procs.values())


def sse_messages(body: bytes) -> Iterator[dict[str, Any]]:
    for block in body.split(b"\n\n"):
        lines = [ln[5:].strip() for ln in block.split(b"\n") if ln.startswith(b"data:")]
        if lines:
            yield json.loads(b"\n".join(lines))

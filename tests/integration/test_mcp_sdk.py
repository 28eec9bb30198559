"""Interoperability: the official ``mcp`` Python SDK client against brummer's server.

Over Streamable HTTP (in-process server) and over stdio (a real subprocess), with the real
event bus, log store and process manager running a fixture project's script.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from brummer.events import EventBus
from brummer.logs import LogStore
from brummer.mcp import MCPServer
from brummer.process import ProcessManager

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (
    "python3 -c \"import sys; print('server ready on http://localhost:4321/'); "
    "print('Traceback (most recent call last):', file=sys.stderr); "
    "print('  File \\\\\"app.py\\\\\", line 1, in <module>', file=sys.stderr); "
    "print('KeyError: missing_key', file=sys.stderr)\""
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "package.json").write_text(
        json.dumps({"name": "fixture", "scripts": {"hello": SCRIPT}}), encoding="utf-8"
    )
    return tmp_path


class Instance:
    def __init__(self, project: Path) -> None:
        self.bus = EventBus()
        self.logs = LogStore(event_bus=self.bus)
        self.processes = ProcessManager(project, event_bus=self.bus, log_store=self.logs)
        self.server = MCPServer(port=0, processes=self.processes, logs=self.logs, events=self.bus)
        self.server.start()

    def close(self) -> None:
        self.server.stop()
        self.processes.cleanup(timeout=10)
        self.logs.close()
        self.bus.stop()


@pytest.fixture
def instance(project: Path) -> Iterator[Instance]:
    inst = Instance(project)
    yield inst
    inst.close()


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def _exercise(session: ClientSession, logs: list[Any]) -> dict[str, Any]:
    init = await session.initialize()
    tools = await session.list_tools()
    run = await session.call_tool("scripts_run", {"name": "hello"})
    assert not run.is_error, _text(run)
    process_id = run.structured_content["id"]
    with anyio.fail_after(20):
        while True:
            found = await session.call_tool(
                "logs_search", {"query": "ready", "processId": process_id}
            )
            if found.structured_content["entries"]:
                break
            await anyio.sleep(0.05)
    with anyio.fail_after(20):
        while True:
            errors = await session.call_tool("errors_list", {"processId": process_id})
            if errors.structured_content["errors"]:
                break
            await anyio.sleep(0.05)
    with anyio.fail_after(20):
        while not any("ready" in json.dumps(p.data) for p in logs):
            await anyio.sleep(0.05)
    return {
        "version": init.protocol_version,
        "tools": {t.name for t in tools.tools},
        "errors": errors.structured_content["errors"],
    }


def test_sdk_client_over_streamable_http(instance: Instance) -> None:
    logs: list[Any] = []

    async def on_log(params: Any) -> None:
        logs.append(params)

    async def main() -> dict[str, Any]:
        async with streamable_http_client(instance.server.url) as streams:
            async with ClientSession(streams[0], streams[1], logging_callback=on_log) as session:
                return await _exercise(session, logs)

    got = anyio.run(main)
    assert got["version"] == "2025-11-25"
    assert {"scripts_run", "logs_search", "errors_list"} <= got["tools"]
    assert got["errors"][0]["kind"] == "KeyError"
    assert logs[0].logger == "brummer"


def test_sdk_client_over_stdio(project: Path) -> None:
    child = textwrap.dedent(
        f"""
        import sys
        from brummer.events import EventBus
        from brummer.logs import LogStore
        from brummer.mcp import MCPServer
        from brummer.process import ProcessManager
        bus = EventBus()
        logs = LogStore(event_bus=bus)
        pm = ProcessManager({str(project)!r}, event_bus=bus, log_store=logs)
        try:
            MCPServer(port=0, processes=pm, logs=logs, events=bus).serve_stdio()
        finally:
            pm.cleanup(timeout=10)
            logs.close()
            bus.stop()
        """
    )
    params = StdioServerParameters(command=sys.executable, args=["-c", child], cwd=str(ROOT))
    logs: list[Any] = []

    async def on_log(params: Any) -> None:
        logs.append(params)

    async def main() -> dict[str, Any]:
        async with stdio_client(params) as streams:
            async with ClientSession(streams[0], streams[1], logging_callback=on_log) as session:
                return await _exercise(session, logs)

    got = anyio.run(main)
    assert got["version"] == "2025-11-25"
    assert got["errors"][0]["kind"] == "KeyError"

"""Discovery and the hub, with real brummer MCP instances in their own processes.

Each instance (tests/integration/mcp_instance.py) is a separate Python process serving a
real log store over MCP and announcing itself in a temporary BRUMMER_STATE_DIR. One is
killed with SIGKILL mid-test; the hub must mark it DEAD and keep serving the other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from brummer.errors import BrummerError, ErrorCode
from brummer.mcp import ConnectionState, InstanceInfo, MCPConnectionManager, discovery
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]


class Child:
    def __init__(self, state_dir: Path, project: Path) -> None:
        project.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "BRUMMER_STATE_DIR": str(state_dir)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.mcp_instance", str(project)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        assert line.startswith("ready "), line
        self.port = int(line.split()[1])
        self.project = project

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("BRUMMER_STATE_DIR", str(folder))
    return folder


@pytest.fixture
def children(state_dir: Path, tmp_path: Path) -> Iterator[list[Child]]:
    kids = [Child(state_dir, tmp_path / "alpha"), Child(state_dir, tmp_path / "beta")]
    yield kids
    for kid in kids:
        kid.close()


def _fast_manager(**overrides: Any) -> MCPConnectionManager:
    args: dict[str, Any] = {
        "discovery_interval": 0.1,
        "ping_interval": 0.2,
        "ping_timeout": 1.0,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "max_retries": 3,
        "connect_timeout": 2.0,
    }
    args.update(overrides)
    return MCPConnectionManager(**args)


def _states(manager: MCPConnectionManager) -> dict[str, ConnectionState]:
    return {i.name: i.state for i in manager.list_instances()}


def test_discovery_lists_live_instances_and_cleans_garbage_and_dead_ones(
    state_dir: Path, children: list[Child]
) -> None:
    folder = state_dir / "instances"
    (folder / "garbage.json").write_text("{not json", encoding="utf-8")
    (folder / "wrong.json").write_text(json.dumps({"id": 3}), encoding="utf-8")
    dead = InstanceInfo("dead-1", "dead", "/nowhere", 1, 2**22 + 17, datetime.now(UTC))
    discovery.write_instance(dead)
    with pytest.raises(BrummerError) as bad:
        discovery.read_instance(folder / "garbage.json")
    assert bad.value.code is ErrorCode.INVALID_ARGUMENT
    found = discovery.list_instances()
    assert sorted(i.name for i in found) == ["alpha", "beta"]
    assert sorted(i.port for i in found) == sorted(c.port for c in children)
    left = sorted(p.name for p in folder.iterdir())
    assert len(left) == 2
    assert all(name.endswith(".json") for name in left)


def test_manager_connects_both_and_marks_a_killed_instance_dead(
    children: list[Child],
) -> None:
    manager = _fast_manager()
    try:
        assert wait_until(
            lambda: (
                _states(manager)
                == {"alpha": ConnectionState.ACTIVE, "beta": ConnectionState.ACTIVE}
            ),
            timeout=15.0,
        ), _states(manager)
        infos = {i.name: i for i in manager.list_instances()}
        manager.connect_session("s1", infos["alpha"].instance_id)
        manager.connect_session("s2", infos["beta"].instance_id)
        client = manager.get_client("s1")
        assert client is not None
        found = client.call("logs_search", {"query": "hello"})
        assert "alpha" in found["entries"][0]["content"]
        assert manager.update_activity(infos["alpha"].instance_id)
        children[1].kill()
        assert wait_until(lambda: _states(manager)["beta"] is ConnectionState.DEAD, timeout=15.0), (
            _states(manager)
        )
        assert manager.get_client("s2") is None
        assert _states(manager)["alpha"] is ConnectionState.ACTIVE
        again = manager.get_client("s1")
        assert again is not None
        assert again.call("logs_search", {"query": "hello"})["entries"]
        with pytest.raises(BrummerError) as dead:
            manager.connect_session("s3", infos["beta"].instance_id)
        assert dead.value.code is ErrorCode.INVALID_STATE
        (alpha,) = [i for i in manager.list_instances() if i.name == "alpha"]
        assert alpha.sessions == ("s1",)
    finally:
        manager.stop()


def test_an_instance_whose_port_is_now_something_else_is_retried_then_dead(
    tmp_path: Path,
) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    ghost = InstanceInfo("ghost-1", "ghost", str(tmp_path), port, os.getpid(), datetime.now(UTC))
    manager = _fast_manager(discover=False)
    seen: set[ConnectionState] = set()
    try:
        manager.register_instance(ghost)
        manager.register_instance(ghost)  # the same record again: no-op

        def dead() -> bool:
            (info,) = manager.list_instances()
            seen.add(info.state)
            return info.state is ConnectionState.DEAD

        assert wait_until(dead, timeout=15.0)
        assert ConnectionState.RETRYING in seen
        (info,) = manager.list_instances()
        assert info.retry_count == 3
        assert "cannot reach" in info.last_error
    finally:
        manager.stop()


def test_manager_api_errors_and_stop(tmp_path: Path) -> None:
    manager = _fast_manager(discover=False)
    with pytest.raises(BrummerError) as unknown:
        manager.connect_session("s", "nope")
    assert unknown.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(BrummerError) as missing:
        manager.disconnect_session("s")
    assert missing.value.code is ErrorCode.NOT_FOUND
    assert manager.update_activity("nope") is False
    assert manager.get_client("s") is None
    with pytest.raises(BrummerError):
        MCPConnectionManager(discover=False, ping_interval=-1.0)
    manager.stop()
    manager.stop()
    with pytest.raises(BrummerError) as stopped:
        manager.register_instance(
            InstanceInfo("x", "x", str(tmp_path), 1, os.getpid(), datetime.now(UTC))
        )
    assert stopped.value.code is ErrorCode.INVALID_STATE


def test_concurrent_registrations_and_listings_are_consistent(tmp_path: Path) -> None:
    manager = _fast_manager(discover=False, max_retries=1)
    errors: list[BaseException] = []

    def register(n: int) -> None:
        try:
            for i in range(10):
                manager.register_instance(
                    InstanceInfo(
                        f"i-{n}-{i}", f"n{n}", str(tmp_path), 1, 2**22 + 99, datetime.now(UTC)
                    )
                )
                assert all(info.instance_id for info in manager.list_instances())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert errors == []
        assert len(manager.list_instances()) == 40
        assert wait_until(
            lambda: all(i.state is ConnectionState.DEAD for i in manager.list_instances()),
            timeout=15.0,
        )
    finally:
        manager.stop()


# ----------------------------------------------------------------------- the stdio hub


class HubProcess:
    def __init__(self, state_dir: Path) -> None:
        env = {**os.environ, "BRUMMER_STATE_DIR": str(state_dir)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from brummer.mcp import run_hub_stdio; run_hub_stdio()"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.ids = iter(range(1, 10_000))

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        rid = next(self.ids)
        message = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}}
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            assert line, "hub closed stdout"
            reply: dict[str, Any] = json.loads(line)
            if reply.get("id") == rid:
                return reply

    def call(self, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        reply = self.request("tools/call", {"name": tool, "arguments": arguments or {}})
        result: dict[str, Any] = reply["result"]
        return result

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(20)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


def test_stdio_hub_lists_connects_proxies_and_survives_a_dead_instance(
    state_dir: Path, children: list[Child]
) -> None:
    hub = HubProcess(state_dir)
    try:
        init = hub.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}})
        assert init["result"]["serverInfo"]["name"] == "brummer-hub"
        names = {t["name"] for t in hub.request("tools/list")["result"]["tools"]}
        assert {
            "instances_list",
            "instances_connect",
            "instances_disconnect",
            "logs_search",
        } <= names

        def instances() -> dict[str, dict[str, Any]]:
            listed = hub.call("instances_list")["structuredContent"]["instances"]
            return {i["name"]: i for i in listed}

        assert wait_until(
            lambda: (
                {i["state"] for i in instances().values()} == {"active"} and len(instances()) == 2
            ),
            timeout=20.0,
        )
        by_name = instances()
        alpha, beta = by_name["alpha"]["instance_id"], by_name["beta"]["instance_id"]
        none = hub.call("logs_search", {"query": "hello"})
        assert none["isError"] is True
        assert "instances_connect" in none["content"][0]["text"]
        assert hub.call("instances_connect", {"instance_id": alpha})["isError"] is False
        assert instances()["alpha"]["connected"] is True
        via_connected = hub.call("logs_search", {"query": "hello"})
        assert "alpha" in via_connected["structuredContent"]["entries"][0]["content"]
        via_id = hub.call("logs_search", {"query": "hello", "instance_id": beta})
        assert "beta" in via_id["structuredContent"]["entries"][0]["content"]
        children[1].kill()
        assert wait_until(lambda: instances()["beta"]["state"] == "dead", timeout=20.0)
        refused = hub.call("logs_search", {"query": "hello", "instance_id": beta})
        assert refused["isError"] is True
        assert "dead" in refused["content"][0]["text"]
        still = hub.call("logs_search", {"query": "hello"})
        assert "alpha" in still["structuredContent"]["entries"][0]["content"]
        unknown = hub.request("tools/call", {"name": "nope", "arguments": {}})
        assert unknown["error"]["code"] == -32602
        assert hub.call("instances_disconnect")["isError"] is False
        assert hub.call("logs_search", {"query": "hello"})["isError"] is True
    finally:
        assert hub.close() == 0

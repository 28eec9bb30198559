"""The hub: one MCP endpoint (stdio) that reaches every running brummer on the machine.

:class:`MCPConnectionManager` keeps one :class:`~brummer.mcp.client.MCPClient` per known
instance and a state per instance::

    DISCOVERED → CONNECTING → ACTIVE → RETRYING → … → DEAD

A failed connection is retried with exponential backoff and jitter (``backoff_initial``
doubling up to ``backoff_max``, ±10 %); after ``max_retries`` failures, or as soon as the
instance's process is gone, it is DEAD. An ACTIVE instance is pinged (MCP ``ping``) every
``ping_interval`` seconds; ``failures_before_retry`` failed pings in a row (or failed
proxied calls) make it RETRYING. One monitor thread owns the timing; all state is behind
one lock, and no I/O happens under it. ``stop()`` joins the thread and closes every client;
later calls raise ``INVALID_STATE``.

:class:`HubCatalog` is what the hub serves: ``instances_list``, ``instances_connect``,
``instances_disconnect`` and every instance tool, forwarded to the instance named by
``instance_id`` or to the connected one. :func:`run_hub_stdio` runs it on stdin/stdout.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from brummer.contracts import BLOCKING, Cleanup, ThreadSafety, TSLock, check_timeout, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.mcp import discovery
from brummer.mcp._schema import jsonable
from brummer.mcp.client import MCPClient
from brummer.mcp.jsonrpc import INVALID_PARAMS, RESOURCE_NOT_FOUND, RPCError
from brummer.mcp.tools import BrummerCatalog, ToolResult, ToolSpec

__all__ = [
    "ConnectionInfo",
    "ConnectionState",
    "HubCatalog",
    "MCPConnectionManager",
    "run_hub_stdio",
]

_LOG = logging.getLogger("brummer.mcp")
_COMPONENT = "mcp.hub"
HUB_SESSION = "stdio"
DEAD_TTL = 600.0  # seconds a DEAD instance whose file is gone stays listed


@contract(ThreadSafety.TS)
class ConnectionState(enum.Enum):
    """Where the hub is with one instance.

    Thread safety: TS (immutable enum).
    """

    DISCOVERED = "discovered"
    CONNECTING = "connecting"
    ACTIVE = "active"
    RETRYING = "retrying"
    DEAD = "dead"


@contract(ThreadSafety.TS)
@attrs.frozen
class ConnectionInfo:
    """A snapshot of one instance as the hub sees it.

    Thread safety: TS (frozen value object).
    """

    instance_id: str
    name: str
    directory: str
    port: int
    pid: int
    state: ConnectionState
    state_changed_at: datetime
    last_activity: datetime | None
    connected_at: datetime | None
    retry_count: int
    sessions: tuple[str, ...]
    last_error: str = ""


class _Entry:
    """Mutable per-instance record; every field is guarded by the manager's lock."""

    def __init__(self, instance: discovery.InstanceInfo, now: float) -> None:
        self.instance = instance
        self.state = ConnectionState.DISCOVERED
        self.state_changed_at = datetime.now(UTC)
        self.last_activity: datetime | None = None
        self.connected_at: datetime | None = None
        self.retry_count = 0
        self.failures = 0
        self.next_action = now  # monotonic time of the next connect attempt or ping
        self.client: MCPClient | None = None
        self.busy = False  # a connect or ping for it is in flight
        self.last_error = ""
        self.from_file = False  # found by discovery: a vanished file means it has exited


@contract(ThreadSafety.TS, cleanup=Cleanup.MANUAL)
class MCPConnectionManager:
    """Connections from the hub to the brummer instances, with health checks and retries.

    Thread safety: TS. Every method may be called from any thread; one monitor thread does
    the connecting and pinging. ``stop()`` is idempotent.

    Args:
        directory: the instance directory to watch (default ``discovery.instances_dir()``);
            None with ``discover=False`` means instances come only from
            :meth:`register_instance`.
        discover: scan the directory every ``discovery_interval`` seconds.
        ping_interval, ping_timeout: health checks of ACTIVE instances.
        failures_before_retry: failed pings in a row before ACTIVE → RETRYING.
        backoff_initial, backoff_max: retry delays (doubling, ±10 % jitter).
        max_retries: failed attempts before DEAD.
        connect_timeout: seconds for one initialize.
    """

    def __init__(
        self,
        *,
        directory: str | Path | None = None,
        discover: bool = True,
        discovery_interval: float = 2.0,
        ping_interval: float = 10.0,
        ping_timeout: float = 5.0,
        failures_before_retry: int = 3,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        max_retries: int = 8,
        connect_timeout: float = 5.0,
    ) -> None:
        for label, value in (
            ("discovery_interval", discovery_interval),
            ("ping_interval", ping_interval),
            ("ping_timeout", ping_timeout),
            ("backoff_initial", backoff_initial),
            ("backoff_max", backoff_max),
            ("connect_timeout", connect_timeout),
        ):
            check_timeout(_COMPONENT, value, name=label)
        if failures_before_retry < 1 or max_retries < 1:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                "failures_before_retry and max_retries must be ≥ 1",
                hint="pass positive counts",
            )
        self._directory = Path(directory) if directory is not None else None
        self._discover = discover
        self._discovery_interval = discovery_interval
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._failures_before_retry = failures_before_retry
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._max_retries = max_retries
        self._connect_timeout = connect_timeout
        self._lock = TSLock("mcp.hub")  # guards everything below; never held during I/O
        self._wake = threading.Condition(threading.Lock())  # monitor's sleep; notified on change
        self._entries: dict[str, _Entry] = {}
        self._sessions: dict[str, str] = {}  # session id -> instance id
        self._stopped = False
        self._next_scan = 0.0
        self._thread = threading.Thread(target=self._run, name="brummer-mcp-hub", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------ public API

    @contract(ThreadSafety.TS, timeout=5.0)
    def register_instance(self, instance: discovery.InstanceInfo) -> None:
        """Manage an instance (DISCOVERED; a connection attempt follows at once).

        Thread safety: TS. Registering a known id with a new port or pid replaces it and
        reconnects; the same record again is a no-op.

        Raises:
            BrummerError: INVALID_STATE after ``stop``.
        """
        self._register(instance, from_file=False)

    def _register(self, instance: discovery.InstanceInfo, *, from_file: bool) -> None:
        stale: MCPClient | None = None
        with self._lock:
            self._check_running()
            entry = self._entries.get(instance.id)
            if entry is not None and entry.instance == instance:
                return
            if entry is not None:
                stale = entry.client
            self._entries[instance.id] = _Entry(instance, time.monotonic())
            self._entries[instance.id].from_file = from_file
        if stale is not None:
            stale.close()
        self._kick()

    @contract(ThreadSafety.TS, timeout=10.0)
    def connect_session(self, session_id: str, instance_id: str, timeout: float = 10.0) -> None:
        """Route a session to an instance, waiting up to ``timeout`` for it to be ACTIVE.

        Thread safety: TS.

        Raises:
            BrummerError: NOT_FOUND for an unknown instance; INVALID_STATE when it is DEAD;
                TIMEOUT when it did not become ACTIVE in time (the route is kept, so calls
                work once it connects).
        """
        limit = check_timeout(_COMPONENT, timeout) or 0.0
        with self._lock:
            self._check_running()
            entry = self._known(instance_id)
            if entry.state is ConnectionState.DEAD:
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.INVALID_STATE,
                    f"instance {instance_id} is dead ({entry.last_error or 'unreachable'})",
                    hint="start that brummer again, or pick another instance",
                )
            self._sessions[session_id] = instance_id
            if entry.state is ConnectionState.RETRYING and not entry.busy:
                entry.next_action = time.monotonic()  # retry now: someone wants it
        self._kick()
        deadline = time.monotonic() + limit
        while True:
            with self._lock:
                state = self._entries[instance_id].state if instance_id in self._entries else None
            if state is ConnectionState.ACTIVE:
                return
            if state is ConnectionState.DEAD or state is None:
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.INVALID_STATE,
                    f"instance {instance_id} could not be reached",
                    hint="check that it is running; instances_list shows its state",
                )
            if time.monotonic() >= deadline:
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.TIMEOUT,
                    f"instance {instance_id} is {state.value}, not active, after {limit} s",
                    hint="it may still be starting; try again shortly",
                )
            with self._wake:
                self._wake.wait(min(0.05, max(0.0, deadline - time.monotonic())))

    @contract(ThreadSafety.TS)
    def disconnect_session(self, session_id: str) -> None:
        """Remove a session's route.

        Thread safety: TS. Non-blocking.

        Raises:
            BrummerError: NOT_FOUND when the session has no route.
        """
        with self._lock:
            if self._sessions.pop(session_id, None) is None:
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.NOT_FOUND,
                    f"session {session_id!r} is not connected to an instance",
                    hint="connect it first with connect_session / instances_connect",
                )

    @contract(ThreadSafety.TS)
    def session_instance(self, session_id: str) -> str | None:
        """The instance a session is routed to (None when none).

        Thread safety: TS.
        """
        with self._lock:
            return self._sessions.get(session_id)

    @contract(ThreadSafety.TS)
    def get_client(self, session_id: str) -> MCPClient | None:
        """The client of the session's instance, when that instance is ACTIVE.

        Thread safety: TS. Non-blocking.
        """
        with self._lock:
            instance_id = self._sessions.get(session_id)
            return None if instance_id is None else self._active_client(instance_id)

    @contract(ThreadSafety.TS)
    def client_for(self, instance_id: str) -> MCPClient | None:
        """The client of an instance when it is ACTIVE, else None.

        Thread safety: TS. Non-blocking.
        """
        with self._lock:
            return self._active_client(instance_id)

    def _active_client(self, instance_id: str) -> MCPClient | None:
        entry = self._entries.get(instance_id)
        if entry is None or entry.state is not ConnectionState.ACTIVE:
            return None
        return entry.client

    @contract(ThreadSafety.TS)
    def list_instances(self) -> list[ConnectionInfo]:
        """A consistent snapshot of every instance, oldest first.

        Thread safety: TS. Non-blocking.
        """
        with self._lock:
            routes: dict[str, list[str]] = {}
            for session, instance_id in self._sessions.items():
                routes.setdefault(instance_id, []).append(session)
            infos = [
                ConnectionInfo(
                    instance_id=e.instance.id,
                    name=e.instance.name,
                    directory=e.instance.directory,
                    port=e.instance.port,
                    pid=e.instance.pid,
                    state=e.state,
                    state_changed_at=e.state_changed_at,
                    last_activity=e.last_activity,
                    connected_at=e.connected_at,
                    retry_count=e.retry_count,
                    sessions=tuple(sorted(routes.get(e.instance.id, ()))),
                    last_error=e.last_error,
                )
                for e in self._entries.values()
            ]
        infos.sort(key=lambda i: (i.state_changed_at, i.instance_id))
        return infos

    @contract(ThreadSafety.TS)
    def update_activity(self, instance_id: str) -> bool:
        """Note that an instance answered; False when the instance is unknown.

        Thread safety: TS. Non-blocking.
        """
        with self._lock:
            entry = self._entries.get(instance_id)
            if entry is None:
                return False
            entry.last_activity = datetime.now(UTC)
            if entry.state is ConnectionState.ACTIVE:
                entry.failures = 0
            return True

    @contract(ThreadSafety.TS)
    def report_failure(self, instance_id: str, error: str) -> None:
        """Count a failed call to an instance, like a failed ping.

        Thread safety: TS. Non-blocking; the monitor acts on it.
        """
        with self._lock:
            entry = self._entries.get(instance_id)
            if entry is None or entry.state is not ConnectionState.ACTIVE:
                return
            entry.failures += 1
            entry.last_error = error
            entry.next_action = time.monotonic()  # ping now to confirm
        self._kick()

    @contract(ThreadSafety.TS, timeout=15.0, guarantees="idempotent")
    def stop(self) -> None:
        """Stop the monitor, close every client; later calls raise INVALID_STATE.

        Thread safety: TS. Idempotent.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            clients = [e.client for e in self._entries.values() if e.client is not None]
            for entry in self._entries.values():
                entry.client = None
            self._sessions.clear()
        self._kick()
        if threading.current_thread() is not self._thread:
            self._thread.join(15.0)
        for client in clients:
            client.close()

    # ------------------------------------------------------------------------ internals

    def _check_running(self) -> None:
        if self._stopped:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_STATE,
                "the connection manager is stopped",
                hint="create a new MCPConnectionManager",
            )

    def _known(self, instance_id: str) -> _Entry:
        entry = self._entries.get(instance_id)
        if entry is None:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.NOT_FOUND,
                f"no instance with id {instance_id!r}",
                hint="list the instances (instances_list) and use one of their ids",
            )
        return entry

    def _kick(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def _set_state(self, entry: _Entry, state: ConnectionState, error: str = "") -> None:
        if entry.state is not state:
            _LOG.info(
                "instance %s: %s -> %s %s", entry.instance.id, entry.state.value, state.value, error
            )
            entry.state = state
            entry.state_changed_at = datetime.now(UTC)
        if error:
            entry.last_error = error

    def _backoff(self, retries: int) -> float:
        delay = min(self._backoff_max, self._backoff_initial * (2 ** max(0, retries - 1)))
        return float(delay * random.uniform(0.9, 1.1))

    def _is_stopped(self) -> bool:
        with self._lock:
            return self._stopped

    def _run(self) -> None:
        while not self._is_stopped():
            now = time.monotonic()
            if self._discover and now >= self._next_scan:
                self._scan()
                self._next_scan = now + self._discovery_interval
            for action in self._due_actions(time.monotonic()):
                action()
            if self._is_stopped():
                return
            with self._lock:
                waits = [e.next_action for e in self._entries.values() if _schedulable(e)]
            if self._discover:
                waits.append(self._next_scan)
            delay = max(0.0, min(waits, default=time.monotonic() + 1.0) - time.monotonic())
            with self._wake:
                self._wake.wait(min(delay, 1.0))

    def _scan(self) -> None:
        found = discovery.list_instances(self._directory, clean=True)
        live = {i.id for i in found}
        for instance in found:
            with contextlib.suppress(BrummerError):
                self._register(instance, from_file=True)
        closing: list[MCPClient | None] = []
        forget_before = datetime.now(UTC) - timedelta(seconds=DEAD_TTL)
        with self._lock:
            for entry in list(self._entries.values()):
                if entry.instance.id in live or not entry.from_file:
                    continue
                if entry.state is not ConnectionState.DEAD:
                    closing.append(self._mark_dead(entry, "the instance has exited"))
                elif entry.state_changed_at < forget_before and not self._routed(entry):
                    del self._entries[entry.instance.id]
        for client in closing:
            if client is not None:
                client.close()

    def _routed(self, entry: _Entry) -> bool:
        return entry.instance.id in self._sessions.values()

    def _mark_dead(self, entry: _Entry, reason: str) -> MCPClient | None:
        """Caller holds the lock and closes the returned client after releasing it."""
        self._set_state(entry, ConnectionState.DEAD, reason)
        client, entry.client = entry.client, None
        return client

    def _due_actions(self, now: float) -> list[Callable[[], None]]:
        actions: list[Callable[[], None]] = []
        with self._lock:
            for entry in self._entries.values():
                if not _schedulable(entry) or entry.next_action > now:
                    continue
                entry.busy = True
                if entry.state is ConnectionState.ACTIVE:
                    actions.append(lambda e=entry: self._ping(e))  # type: ignore[misc]
                else:
                    if entry.state is ConnectionState.DISCOVERED:
                        self._set_state(entry, ConnectionState.CONNECTING)
                    actions.append(lambda e=entry: self._connect(e))  # type: ignore[misc]
        return actions

    def _connect(self, entry: _Entry) -> None:
        instance = entry.instance
        if not discovery.pid_alive(instance.pid):
            with self._lock:
                entry.busy = False
                old = self._mark_dead(entry, "the instance's process has exited")
            if old is not None:
                old.close()
            return
        client = MCPClient(instance.url, timeout=self._connect_timeout, client_name="brummer-hub")
        try:
            client.initialize()
            info = client.server_info
            if info.get("name") != "brummer":
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.INVALID_STATE,
                    f"port {instance.port} is served by {info.get('name')!r}, not brummer",
                    hint="the instance file is stale",
                )
        except BrummerError as err:
            client.close()
            with self._lock:
                entry.busy = False
                entry.retry_count += 1
                if entry.retry_count >= self._max_retries:
                    self._mark_dead(entry, str(err))  # its client is None while connecting
                else:
                    self._set_state(entry, ConnectionState.RETRYING, str(err))
                    entry.next_action = time.monotonic() + self._backoff(entry.retry_count)
            return
        with self._lock:
            entry.busy = False
            if self._stopped or self._entries.get(instance.id) is not entry:
                stale: MCPClient | None = client
            else:
                stale = None
                entry.client = client
                entry.failures = 0
                entry.retry_count = 0
                entry.connected_at = entry.last_activity = datetime.now(UTC)
                entry.next_action = time.monotonic() + self._ping_interval
                self._set_state(entry, ConnectionState.ACTIVE)
                entry.last_error = ""
        if stale is not None:
            stale.close()
        self._kick()

    def _ping(self, entry: _Entry) -> None:
        with self._lock:
            client = entry.client
        error = ""
        if client is None:
            error = "no client"
        else:
            try:
                client.ping(self._ping_timeout)
            except BrummerError as err:
                error = str(err)
        with self._lock:
            entry.busy = False
            if entry.state is not ConnectionState.ACTIVE:
                return
            if not error:
                entry.failures = 0
                entry.last_activity = datetime.now(UTC)
                entry.next_action = time.monotonic() + self._ping_interval
                return
            entry.failures += 1
            entry.last_error = error
            if entry.failures < self._failures_before_retry:
                entry.next_action = time.monotonic() + min(1.0, self._ping_interval)
                return
            old, entry.client = entry.client, None
            entry.retry_count = 1
            self._set_state(entry, ConnectionState.RETRYING, error)
            entry.next_action = time.monotonic() + self._backoff(1)
        if old is not None:
            old.close()


def _schedulable(entry: _Entry) -> bool:
    return not entry.busy and entry.state is not ConnectionState.DEAD


# ---------------------------------------------------------------------------- hub catalog


def _with_instance_id(schema: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    props = dict(out.get("properties", {}))
    props["instance_id"] = {
        "type": "string",
        "description": "the brummer instance (from instances_list); default: the connected one",
    }
    out["properties"] = props
    return out


@contract(ThreadSafety.TS)
class HubCatalog:
    """The hub's tools: instance management plus every instance tool, forwarded.

    Thread safety: TS. The connected instance is one value under a lock.
    """

    def __init__(self, manager: MCPConnectionManager, *, call_timeout: float = 30.0) -> None:
        self._manager = manager
        self._call_timeout = call_timeout
        local = BrummerCatalog()
        self._forwarded = {
            spec.name: attrs.evolve(
                spec,
                input_schema=_with_instance_id(spec.input_schema),
                handler=_unused_handler,
            )
            for spec in local.list_tools()
        }
        self._own = {spec.name: spec for spec in self._own_tools()}

    def _own_tools(self) -> list[ToolSpec]:
        instance_id = {"type": "string", "description": "an id from instances_list"}
        return [
            ToolSpec(
                "instances_list",
                "List the running brummer instances on this machine and their state.",
                {"type": "object", "properties": {}, "additionalProperties": False},
                self._instances_list,
            ),
            ToolSpec(
                "instances_connect",
                "Connect to an instance: later tool calls without instance_id go to it.",
                {
                    "type": "object",
                    "properties": {"instance_id": instance_id},
                    "required": ["instance_id"],
                    "additionalProperties": False,
                },
                self._instances_connect,
                read_only=False,
            ),
            ToolSpec(
                "instances_disconnect",
                "Forget the connected instance.",
                {"type": "object", "properties": {}, "additionalProperties": False},
                self._instances_disconnect,
                read_only=False,
            ),
        ]

    @contract(ThreadSafety.TS)
    def list_tools(self) -> list[ToolSpec]:
        """The hub's own tools, then every forwarded instance tool.

        Thread safety: TS.
        """
        return [*self._own.values(), *self._forwarded.values()]

    @contract(ThreadSafety.TS, timeout=30.0)
    def call_tool(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Run a hub tool, or forward an instance tool.

        Thread safety: TS.

        Raises:
            RPCError: INVALID_PARAMS for an unknown tool.
        """
        own = self._own.get(name)
        if own is not None:
            try:
                value = jsonable(own.handler(arguments))
            except BrummerError as err:
                return ToolResult(str(err), is_error=True)
            return ToolResult(json.dumps(value, ensure_ascii=False), value)
        if name not in self._forwarded:
            raise RPCError(INVALID_PARAMS, f"Unknown tool: {name!r}")
        return self._forward(name, arguments)

    def _forward(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        args = dict(arguments)
        instance_id = args.pop("instance_id", None)
        if instance_id is None:
            instance_id = self._manager.session_instance(HUB_SESSION)
        if not isinstance(instance_id, str):
            return ToolResult(
                "[mcp.hub] INVALID_STATE: no instance selected — call instances_list, then "
                "instances_connect, or pass instance_id",
                is_error=True,
            )
        client = self._manager.client_for(instance_id)
        if client is None:
            states = {i.instance_id: i.state.value for i in self._manager.list_instances()}
            state = states.get(instance_id, "unknown")
            return ToolResult(
                f"[mcp.hub] INVALID_STATE: instance {instance_id} is {state}, not active — "
                "check instances_list; it may be restarting or gone",
                is_error=True,
            )
        try:
            raw = client.call_tool(name, args, timeout=self._call_timeout)
        except BrummerError as err:
            if err.code in (ErrorCode.NETWORK, ErrorCode.TIMEOUT, ErrorCode.NOT_FOUND):
                self._manager.report_failure(instance_id, str(err))
            return ToolResult(str(err), is_error=True)
        self._manager.update_activity(instance_id)
        text = "".join(
            item.get("text", "") for item in raw.get("content", ()) if isinstance(item, dict)
        )
        return ToolResult(text, raw.get("structuredContent"), bool(raw.get("isError")))

    def _instances_list(self, _args: Mapping[str, Any]) -> Any:
        connected = self._manager.session_instance(HUB_SESSION)
        return {
            "instances": [
                {**jsonable(info), "connected": info.instance_id == connected}
                for info in self._manager.list_instances()
            ]
        }

    def _instances_connect(self, args: Mapping[str, Any]) -> Any:
        self._manager.connect_session(HUB_SESSION, args["instance_id"])
        return {"connected": args["instance_id"]}

    def _instances_disconnect(self, _args: Mapping[str, Any]) -> Any:
        self._manager.disconnect_session(HUB_SESSION)
        return {"connected": None}

    @contract(ThreadSafety.TS)
    def list_resources(self) -> list[dict[str, Any]]:
        """None: the hub forwards tools only.

        Thread safety: TS.
        """
        return []

    @contract(ThreadSafety.TS)
    def read_resource(self, uri: str) -> list[dict[str, Any]]:
        """Always RESOURCE_NOT_FOUND: the hub forwards tools only.

        Thread safety: TS.
        """
        raise RPCError(RESOURCE_NOT_FOUND, "Resource not found (the hub has none)", {"uri": uri})

    @contract(ThreadSafety.TS)
    def list_prompts(self) -> list[dict[str, Any]]:
        """None: the hub forwards tools only.

        Thread safety: TS.
        """
        return []

    @contract(ThreadSafety.TS)
    def get_prompt(self, name: str, arguments: Mapping[str, str]) -> dict[str, Any]:
        """Always INVALID_PARAMS: the hub has no prompts.

        Thread safety: TS.
        """
        raise RPCError(INVALID_PARAMS, f"Unknown prompt: {name!r} (the hub has none)")


def _unused_handler(_args: Mapping[str, Any]) -> Any:
    raise BrummerError(_COMPONENT, ErrorCode.INVALID_STATE, "forwarded tools run remotely")


@contract(ThreadSafety.TS, timeout=BLOCKING)
def run_hub_stdio(
    directory: str | Path | None = None, *, stdin: Any = None, stdout: Any = None
) -> int:
    """Run the hub on stdin/stdout until stdin ends; return the exit code (0).

    Thread safety: TS. Blocks the calling thread; stops everything it started.
    """
    from brummer.mcp.server import MCPServer

    manager = MCPConnectionManager(directory=directory)
    try:
        server = MCPServer(
            port=0,
            catalog=HubCatalog(manager),
            name="brummer-hub",
            announce=False,
            instructions=(
                "This hub reaches every running brummer on this machine. Call instances_list, "
                "then instances_connect with an id (or pass instance_id to any tool)."
            ),
        )
        server.serve_stdio(stdin, stdout)
    finally:
        manager.stop()
    return 0

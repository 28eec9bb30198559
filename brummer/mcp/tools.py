"""The MCP tools, resources and prompts of one brummer, over its components.

:class:`BrummerCatalog` is what :class:`~brummer.mcp.server.MCPServer` serves. It holds the
components (process manager, log store, proxy, event bus); any of them may be None, and
then the tools that need it answer an ``isError`` result that says it is not available.

Tools validate their arguments against their input schema; a violation is an ``isError``
result naming every problem (MCP 2025-11-25: input validation errors are tool errors, so
the model can correct itself). An unknown tool is a JSON-RPC ``-32602`` error.

Not for: transports or sessions (see ``server.py``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs

from brummer.contracts import ThreadSafety, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.mcp._schema import jsonable, parse_time, strip_ansi, validate
from brummer.mcp.jsonrpc import INVALID_PARAMS, RESOURCE_NOT_FOUND, RPCError

__all__ = ["BrummerCatalog", "Catalog", "ToolResult", "ToolSpec"]

_LOG = logging.getLogger("brummer.mcp")
_COMPONENT = "mcp"
_LEVELS = ("debug", "info", "warning", "error", "critical")


@contract(ThreadSafety.TS)
@attrs.frozen
class ToolSpec:
    """One tool: its name, description, JSON Schemas and the function that runs it.

    Thread safety: TS (frozen value object).
    """

    name: str
    description: str
    input_schema: Mapping[str, Any]
    handler: Callable[[Mapping[str, Any]], Any] = attrs.field(eq=False, repr=False)
    output_schema: Mapping[str, Any] | None = None
    read_only: bool = True

    @contract(ThreadSafety.TS)
    def describe(self, *, structured: bool = True) -> dict[str, Any]:
        """The tool as ``tools/list`` shows it (``outputSchema`` only when ``structured``).

        Thread safety: TS. Pure.
        """
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "inputSchema": dict(self.input_schema),
            "annotations": {"readOnlyHint": self.read_only},
        }
        if structured and self.output_schema is not None:
            out["outputSchema"] = dict(self.output_schema)
        return out


@contract(ThreadSafety.TS)
@attrs.frozen
class ToolResult:
    """What a tool call produced: the structured value, its text, and whether it failed.

    Thread safety: TS (frozen value object).
    """

    text: str
    structured: Any = None
    is_error: bool = False

    @contract(ThreadSafety.TS)
    def to_mcp(self, *, structured: bool = True) -> dict[str, Any]:
        """The ``CallToolResult`` object (``structuredContent`` only when ``structured``).

        Thread safety: TS. Pure.
        """
        out: dict[str, Any] = {
            "content": [{"type": "text", "text": self.text}],
            "isError": self.is_error,
        }
        if structured and self.structured is not None and not self.is_error:
            out["structuredContent"] = self.structured
        return out


@contract(ThreadSafety.TS)
class Catalog(Protocol):
    """What an MCP server serves: tools, resources and prompts.

    Thread safety: TS. Implementations are called from many request threads at once.
    """

    @contract(ThreadSafety.TS)
    def list_tools(self) -> list[ToolSpec]:
        """Every tool.

        Thread safety: TS.
        """
        ...

    @contract(ThreadSafety.TS)
    def call_tool(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Run a tool; tool failures are ``is_error`` results.

        Thread safety: TS.

        Raises:
            RPCError: INVALID_PARAMS for an unknown tool.
        """
        ...

    @contract(ThreadSafety.TS)
    def list_resources(self) -> list[dict[str, Any]]:
        """Every resource as ``resources/list`` shows it.

        Thread safety: TS.
        """
        ...

    @contract(ThreadSafety.TS)
    def read_resource(self, uri: str) -> list[dict[str, Any]]:
        """The contents of a resource.

        Thread safety: TS.

        Raises:
            RPCError: RESOURCE_NOT_FOUND for an unknown URI.
        """
        ...

    @contract(ThreadSafety.TS)
    def list_prompts(self) -> list[dict[str, Any]]:
        """Every prompt as ``prompts/list`` shows it.

        Thread safety: TS.
        """
        ...

    @contract(ThreadSafety.TS)
    def get_prompt(self, name: str, arguments: Mapping[str, str]) -> dict[str, Any]:
        """A prompt filled in with ``arguments``.

        Thread safety: TS.

        Raises:
            RPCError: INVALID_PARAMS for an unknown prompt or a missing argument.
        """
        ...


def _obj(
    properties: Mapping[str, Any] | None = None, required: Sequence[str] = ()
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": dict(properties or {}),
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    return schema


def _str(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _int(description: str, minimum: int = 0, maximum: int = 100_000) -> dict[str, Any]:
    return {"type": "integer", "description": description, "minimum": minimum, "maximum": maximum}


_LIMIT = _int("most entries to return", 1, 10_000)
_PROCESS_ID = _str("the process id (from scripts_run or scripts_status)", minLength=1)
_LEVEL = _str("minimum level", enum=["all", *_LEVELS, "warn"])
_SINCE = _str('only entries at or after this time: RFC 3339, or a duration ago like "5m"')
_LIST_OF_OBJECTS = {"type": "array", "items": {"type": "object"}}
_PROCESS_INFO = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "status": {"type": "string"},
        "pid": {"type": ["integer", "null"]},
    },
}


def _not_available(what: str) -> BrummerError:
    return BrummerError(
        _COMPONENT,
        ErrorCode.INVALID_STATE,
        f"{what} is not available in this brummer",
        hint=f"start brummer with {what} enabled (see .brum.toml), or use another tool",
    )


def _bad_argument(message: str, hint: str) -> BrummerError:
    return BrummerError(_COMPONENT, ErrorCode.INVALID_ARGUMENT, message, hint=hint)


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=None, default=str)


@contract(ThreadSafety.TS)
class BrummerCatalog:
    """The tools, resources and prompts of one brummer instance.

    Thread safety: TS. Holds no mutable state of its own; every call reads the components,
    which are thread-safe themselves.

    Args:
        processes: a ``ProcessManager`` (or None).
        logs: a ``LogStore`` (or None).
        proxy: a ``ProxyServer`` (or None).
        command_run_enabled: whether ``command_run`` may start arbitrary commands.
    """

    def __init__(
        self,
        *,
        processes: Any = None,
        logs: Any = None,
        proxy: Any = None,
        command_run_enabled: bool = False,
    ) -> None:
        self._processes = processes
        self._logs = logs
        self._proxy = proxy
        self._command_run_enabled = command_run_enabled
        self._tools = {spec.name: spec for spec in self._build_tools()}

    # ----------------------------------------------------------------- catalogue plumbing

    @contract(ThreadSafety.TS)
    def list_tools(self) -> list[ToolSpec]:
        """Every tool, in a stable order.

        Thread safety: TS.
        """
        return list(self._tools.values())

    @contract(ThreadSafety.TS)
    def call_tool(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        """Validate the arguments and run the tool; failures become ``is_error`` results.

        Thread safety: TS.

        Raises:
            RPCError: INVALID_PARAMS when no tool has that name.
        """
        spec = self._tools.get(name)
        if spec is None:
            raise RPCError(
                INVALID_PARAMS,
                f"Unknown tool: {name!r}",
                {"known": sorted(self._tools)},
            )
        problems = validate(spec.input_schema, dict(arguments))
        if problems:
            text = f"invalid arguments for {name}: " + "; ".join(problems)
            return ToolResult(text, is_error=True)
        try:
            value = spec.handler(arguments)
        except BrummerError as err:
            return ToolResult(str(err), is_error=True)
        except Exception as exc:
            _LOG.exception("MCP tool %s failed", name)
            return ToolResult(f"[mcp] internal error in {name}: {exc!r}", is_error=True)
        structured = jsonable(value)
        return ToolResult(_text(structured), structured)

    # ------------------------------------------------------------------ component access

    def _need(self, component: Any, what: str) -> Any:
        if component is None:
            raise _not_available(what)
        return component

    def _pm(self) -> Any:
        return self._need(self._processes, "the process manager")

    def _log_store(self) -> Any:
        return self._need(self._logs, "the log store")

    def _proxy_server(self) -> Any:
        return self._need(self._proxy, "the proxy")

    # ---------------------------------------------------------------------------- tools

    def _build_tools(self) -> list[ToolSpec]:
        out = {"type": "object"}
        return [
            ToolSpec(
                "scripts_list",
                "List the scripts brummer can run in this project (package.json scripts, "
                "workspace scripts and detected commands).",
                _obj(),
                self._scripts_list,
                {"type": "object", "properties": {"scripts": _LIST_OF_OBJECTS}},
            ),
            ToolSpec(
                "scripts_run",
                "Start a script by name. Returns the process id, status and proxy URLs. "
                "Refuses to start a second copy of a running script unless allowDuplicate.",
                _obj(
                    {
                        "name": _str("script name, as scripts_list shows it", minLength=1),
                        "allowDuplicate": {
                            "type": "boolean",
                            "description": "start even if it is already running",
                        },
                    },
                    ["name"],
                ),
                self._scripts_run,
                _PROCESS_INFO,
                read_only=False,
            ),
            ToolSpec(
                "scripts_stop",
                "Stop a running process and its whole process tree.",
                _obj({"processId": _PROCESS_ID}, ["processId"]),
                self._scripts_stop,
                _PROCESS_INFO,
                read_only=False,
            ),
            ToolSpec(
                "scripts_restart",
                "Restart a process; the new process has a new id.",
                _obj({"processId": _PROCESS_ID}, ["processId"]),
                self._scripts_restart,
                _PROCESS_INFO,
                read_only=False,
            ),
            ToolSpec(
                "scripts_status",
                "Status of every process (or of the ones with this script name / id): "
                "id, status, pid, exit code, start time, uptime, URLs.",
                _obj({"name": _str("script name"), "processId": _str("process id")}),
                self._scripts_status,
                {"type": "object", "properties": {"processes": _LIST_OF_OBJECTS}},
            ),
            ToolSpec(
                "logs_stream",
                "Recent log lines, oldest first. Pass the returned cursor back to get only "
                "the lines written since.",
                _obj(
                    {
                        "processId": _str("only this process"),
                        "level": _LEVEL,
                        "since": _SINCE,
                        "limit": _LIMIT,
                        "cursor": _str("the cursor from the previous call"),
                    }
                ),
                self._logs_stream,
                {
                    "type": "object",
                    "properties": {"entries": _LIST_OF_OBJECTS, "cursor": {"type": "string"}},
                },
            ),
            ToolSpec(
                "logs_search",
                "Search the logs for text (or a regular expression with regex=true), "
                "optionally by process, minimum level and time.",
                _obj(
                    {
                        "query": _str("text or regular expression", minLength=1),
                        "regex": {"type": "boolean", "description": "query is a regex"},
                        "level": _LEVEL,
                        "processId": _str("only this process"),
                        "since": _SINCE,
                        "until": _str("only entries before this time (RFC 3339)"),
                        "limit": _LIMIT,
                    },
                    ["query"],
                ),
                self._logs_search,
                {"type": "object", "properties": {"entries": _LIST_OF_OBJECTS}},
            ),
            ToolSpec(
                "errors_list",
                "Errors detected in the output, grouped and deduplicated, with their stacks.",
                _obj({"processId": _str("only this process"), "limit": _LIMIT}),
                self._errors_list,
                {"type": "object", "properties": {"errors": _LIST_OF_OBJECTS}},
            ),
            ToolSpec(
                "urls_list",
                "URLs the processes printed, with the proxy URL that fronts each.",
                _obj(),
                self._urls_list,
                {"type": "object", "properties": {"urls": _LIST_OF_OBJECTS}},
            ),
            ToolSpec(
                "proxy_requests",
                "HTTP requests that went through the proxy, newest last.",
                _obj(
                    {
                        "processName": _str("only requests to this process"),
                        "status": _str("filter", enum=["all", "success", "error"]),
                        "limit": _LIMIT,
                    }
                ),
                self._proxy_requests,
                {"type": "object", "properties": {"requests": _LIST_OF_OBJECTS}},
            ),
            ToolSpec(
                "telemetry_sessions",
                "Browser telemetry sessions recorded by the proxy.",
                _obj(
                    {
                        "processName": _str("only sessions of this process"),
                        "sessionId": _str("only this session"),
                        "limit": _LIMIT,
                    }
                ),
                self._telemetry_sessions,
                {"type": "object", "properties": {"sessions": _LIST_OF_OBJECTS}},
            ),
            ToolSpec(
                "telemetry_events",
                "Browser telemetry events (errors, console, performance, interaction).",
                _obj(
                    {
                        "sessionId": _str("only this session"),
                        "eventType": _str(
                            "kind of event",
                            enum=["all", "error", "console", "performance", "interaction"],
                        ),
                        "limit": _LIMIT,
                    }
                ),
                self._telemetry_events,
                {"type": "object", "properties": {"events": _LIST_OF_OBJECTS}},
            ),
            ToolSpec(
                "command_run",
                "Run an arbitrary shell command as a managed process (only when enabled "
                "in the configuration).",
                _obj(
                    {
                        "command": _str("the shell command line", minLength=1),
                        "name": _str("a name for the process"),
                    },
                    ["command"],
                ),
                self._command_run,
                out,
                read_only=False,
            ),
        ]

    def _process_info(self, process: Any) -> dict[str, Any]:
        info = process.snapshot() if hasattr(process, "snapshot") else process
        data: dict[str, Any] = jsonable(info)
        start = getattr(info, "start_time", None)
        end = getattr(info, "end_time", None)
        if isinstance(start, datetime):
            data["uptime"] = round(((end or datetime.now(UTC)) - start).total_seconds(), 3)
        data["urls"] = self._urls_for(getattr(info, "id", None))
        return data

    def _urls_for(self, process_id: str | None) -> list[dict[str, Any]]:
        if self._logs is None or process_id is None:
            return []
        return [
            {"url": u.url, "proxy_url": getattr(u, "proxy_url", None)}
            for u in self._logs.get_urls()
            if getattr(u, "process_id", None) == process_id
        ]

    def _scripts_list(self, _args: Mapping[str, Any]) -> dict[str, Any]:
        scripts = self._pm().scripts()
        return {"scripts": [jsonable(s) for s in scripts.values()]}

    def _scripts_run(self, args: Mapping[str, Any]) -> dict[str, Any]:
        pm = self._pm()
        name = args["name"]
        allow = bool(args.get("allowDuplicate", False))
        try:
            process = pm.start_script(name, allow_duplicate=allow)
        except BrummerError as err:
            if err.code is ErrorCode.ALREADY_EXISTS:
                running = [
                    p.id for p in pm.get_all_processes() if p.name == name and p.is_running()
                ]
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.ALREADY_EXISTS,
                    f"script {name!r} is already running as process {', '.join(running)}",
                    hint="use that process, stop it first, or pass allowDuplicate=true",
                    context={"running": running},
                    cause=err,
                ) from err
            raise
        return self._process_info(process)

    def _get_process(self, process_id: str) -> Any:
        process = self._pm().get_process(process_id)
        if process is None:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.NOT_FOUND,
                f"no process with id {process_id!r}",
                hint="list processes with scripts_status",
            )
        return process

    def _scripts_stop(self, args: Mapping[str, Any]) -> dict[str, Any]:
        process = self._get_process(args["processId"])
        self._pm().stop_process(process.id)
        return self._process_info(process)

    def _scripts_restart(self, args: Mapping[str, Any]) -> dict[str, Any]:
        process = self._get_process(args["processId"])
        return self._process_info(self._pm().restart_process(process.id))

    def _scripts_status(self, args: Mapping[str, Any]) -> dict[str, Any]:
        processes = self._pm().get_all_processes()
        if "name" in args:
            processes = [p for p in processes if p.name == args["name"]]
        if "processId" in args:
            processes = [p for p in processes if p.id == args["processId"]]
        return {"processes": [self._process_info(p) for p in processes]}

    def _entry(self, entry: Any) -> dict[str, Any]:
        data: dict[str, Any] = jsonable(entry)
        return data

    def _min_level(self, args: Mapping[str, Any]) -> Any:
        name = args.get("level", "all")
        if name == "all":
            return None
        name = "warning" if name == "warn" else name
        try:
            from brummer.logs import LogLevel
        except ImportError:
            return _LEVELS.index(name)
        return LogLevel[name.upper()]

    def _time_arg(self, args: Mapping[str, Any], key: str) -> datetime | None:
        if key not in args:
            return None
        try:
            return parse_time(args[key])
        except ValueError as exc:
            raise _bad_argument(
                f"{key}={args[key]!r} is not a time",
                'use RFC 3339 ("2024-05-01T12:00:00Z") or a duration ago ("5m", "2h")',
            ) from exc

    def _logs_stream(self, args: Mapping[str, Any]) -> dict[str, Any]:
        store = self._log_store()
        limit = int(args.get("limit", 100))
        process_id = args.get("processId")
        cursor = args.get("cursor")
        if hasattr(store, "get_since") and hasattr(store, "cursor"):
            entries, next_cursor = self._read_cursor(store, process_id, cursor, limit)
        else:
            entries, next_cursor = self._read_plain(store, process_id, cursor, limit)
        level = self._min_level(args)
        if level is not None:
            entries = [e for e in entries if e.level >= level]
        since = self._time_arg(args, "since")
        if since is not None:
            entries = [e for e in entries if e.timestamp >= since]
        return {"entries": [self._entry(e) for e in entries], "cursor": next_cursor}

    def _read_cursor(
        self, store: Any, process_id: str | None, cursor: str | None, limit: int
    ) -> tuple[list[Any], str]:
        """Entries after the cursor (or the newest ``limit``) and the cursor after them."""
        prefix = "s" if process_id is not None else "p"
        if cursor is None:
            if process_id is not None:
                entries = list(store.get_by_process(process_id))[-limit:]
                last = entries[-1].seq if entries else 0
                return entries, f"s{last}"
            position = store.cursor()
            start = max(0, position - limit)
            page = store.get_since(start, limit=limit)
            return list(page.entries), f"p{page.next_cursor}"
        if not cursor.startswith(prefix) or not cursor[1:].isdigit():
            raise _bad_argument(
                f"cursor {cursor!r} was not made by logs_stream for this query",
                "pass back the cursor of the previous logs_stream call with the same "
                "processId, or leave it out",
            )
        after = int(cursor[1:])
        # next_cursor, not after + len(entries): after an eviction the two differ, and
        # counting entries would hand the client lines it has already seen.
        page = store.get_since(after, process_id=process_id, limit=limit)
        return list(page.entries), f"{prefix}{page.next_cursor}"

    def _read_plain(
        self, store: Any, process_id: str | None, cursor: str | None, limit: int
    ) -> tuple[list[Any], str]:
        """The same for a store without cursors: the cursor is the last entry's id."""
        if process_id is not None:
            entries = list(store.get_by_process(process_id))
        else:
            entries = list(store.get_all())
        if cursor is None:
            entries = entries[-limit:]
        else:
            ids = [e.id for e in entries]
            found = cursor in ids
            entries = entries[ids.index(cursor) + 1 :][:limit] if found else entries[-limit:]
        return entries, entries[-1].id if entries else (cursor or "")

    def _logs_search(self, args: Mapping[str, Any]) -> dict[str, Any]:
        store = self._log_store()
        regex = bool(args.get("regex", False))
        if regex:
            try:
                re.compile(args["query"])
            except re.error as exc:
                raise _bad_argument(
                    f"query {args['query']!r} is not a valid regular expression: {exc}",
                    "fix the pattern, or pass regex=false to search for the text as is",
                ) from exc
        fields = {
            "text": args["query"],
            "regex": regex,
            "process_id": args.get("processId"),
            "level": self._min_level(args),
            "since": self._time_arg(args, "since"),
            "until": self._time_arg(args, "until"),
            "limit": int(args.get("limit", 100)),
        }
        try:
            from brummer.logs import SearchQuery
        except ImportError:
            query: Any = _Query(**fields)
        else:
            query = SearchQuery(**fields)
        return {"entries": [self._entry(e) for e in store.search(query)]}

    def _errors_list(self, args: Mapping[str, Any]) -> dict[str, Any]:
        groups = list(self._log_store().get_error_groups())
        if "processId" in args:
            groups = [g for g in groups if g.process_id == args["processId"]]
        limit = int(args.get("limit", 50))
        return {"errors": [jsonable(g) for g in groups[-limit:]]}

    def _urls_list(self, _args: Mapping[str, Any]) -> dict[str, Any]:
        return {"urls": [jsonable(u) for u in self._log_store().get_urls()]}

    def _proxy_requests(self, args: Mapping[str, Any]) -> dict[str, Any]:
        proxy = self._proxy_server()
        if "processName" in args:
            requests = list(proxy.get_requests_for_process(args["processName"]))
        else:
            requests = list(proxy.get_requests())
        status = args.get("status", "all")
        if status != "all":
            requests = [r for r in requests if _request_failed(r) == (status == "error")]
        limit = int(args.get("limit", 100))
        return {"requests": [jsonable(r) for r in requests[-limit:]]}

    def _telemetry_store(self) -> Any:
        telemetry = getattr(self._proxy_server(), "telemetry", None)
        if telemetry is None:
            raise _not_available("browser telemetry")
        return telemetry

    def _sessions(self, args: Mapping[str, Any]) -> list[Any]:
        store = self._telemetry_store()
        if "sessionId" in args:
            session = store.get_session(args["sessionId"])
            return [] if session is None else [session]
        if "processName" in args:
            return list(store.get_sessions_for_process(args["processName"]))
        for name in ("get_all_sessions", "get_sessions", "all_sessions", "sessions"):
            method = getattr(store, name, None)
            if callable(method):
                return list(method())
        return []

    def _telemetry_sessions(self, args: Mapping[str, Any]) -> dict[str, Any]:
        limit = int(args.get("limit", 10))
        return {"sessions": [jsonable(s) for s in self._sessions(args)[-limit:]]}

    def _telemetry_events(self, args: Mapping[str, Any]) -> dict[str, Any]:
        kind = args.get("eventType", "all")
        events: list[Any] = []
        for session in self._sessions(args):
            for event in getattr(session, "events", ()) or ():
                if _event_matches(event, kind):
                    events.append(jsonable(event))
        limit = int(args.get("limit", 50))
        return {"events": events[-limit:]}

    def _command_run(self, args: Mapping[str, Any]) -> dict[str, Any]:
        if not self._command_run_enabled:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.PERMISSION,
                "command_run is disabled in this brummer",
                hint="enable it in .brum.toml ([mcp] command_run = true) and restart brummer",
            )
        name = args.get("name") or args["command"].split()[0]
        return self._process_info(self._pm().start_command(name, args["command"]))

    # ------------------------------------------------------------------------ resources

    _RESOURCES: tuple[tuple[str, str, str], ...] = (
        ("logs://recent", "Recent logs", "The last 100 log lines of every process."),
        ("logs://errors", "Errors", "Detected errors, grouped, with their stacks."),
        ("processes://active", "Processes", "Every process brummer runs or ran."),
        ("scripts://available", "Scripts", "The scripts brummer can run."),
        ("proxy://requests", "Proxy requests", "The last 100 proxied HTTP requests."),
        ("telemetry://errors", "Browser errors", "JavaScript errors seen by telemetry."),
    )

    @contract(ThreadSafety.TS)
    def list_resources(self) -> list[dict[str, Any]]:
        """Every resource.

        Thread safety: TS. Pure.
        """
        return [
            {"uri": uri, "name": name, "description": text, "mimeType": "application/json"}
            for uri, name, text in self._RESOURCES
        ]

    @contract(ThreadSafety.TS)
    def read_resource(self, uri: str) -> list[dict[str, Any]]:
        """The resource's contents (one JSON text item).

        Thread safety: TS. A resource whose component is missing reads as
        ``{"error": "... not available ..."}``.

        Raises:
            RPCError: RESOURCE_NOT_FOUND for an unknown URI.
        """
        readers: dict[str, Callable[[], Any]] = {
            "logs://recent": lambda: {
                "entries": [self._entry(e) for e in list(self._log_store().get_all())[-100:]]
            },
            "logs://errors": lambda: self._errors_list({}),
            "processes://active": lambda: self._scripts_status({}),
            "scripts://available": lambda: self._scripts_list({}),
            "proxy://requests": lambda: self._proxy_requests({}),
            "telemetry://errors": lambda: self._telemetry_events({"eventType": "error"}),
        }
        reader = readers.get(uri)
        if reader is None:
            raise RPCError(RESOURCE_NOT_FOUND, "Resource not found", {"uri": uri})
        try:
            value = jsonable(reader())
        except BrummerError as err:
            value = {"error": str(err)}
        return [{"uri": uri, "mimeType": "application/json", "text": _text(value)}]

    # -------------------------------------------------------------------------- prompts

    @contract(ThreadSafety.TS)
    def list_prompts(self) -> list[dict[str, Any]]:
        """Every prompt.

        Thread safety: TS. Pure.
        """
        return [
            {
                "name": "debug_error",
                "description": "Help debug an error seen in the logs",
                "arguments": [
                    {"name": "error_message", "description": "the error", "required": True},
                    {"name": "context", "description": "what you were doing", "required": False},
                ],
            },
            {
                "name": "script_configuration",
                "description": "Help set up package.json scripts for a task",
                "arguments": [
                    {"name": "task_type", "description": "dev, build, test, ...", "required": True},
                    {"name": "framework", "description": "the framework", "required": False},
                ],
            },
        ]

    @contract(ThreadSafety.TS)
    def get_prompt(self, name: str, arguments: Mapping[str, str]) -> dict[str, Any]:
        """The prompt with its arguments filled in (and recent errors, for debug_error).

        Thread safety: TS.

        Raises:
            RPCError: INVALID_PARAMS for an unknown prompt or a missing required argument.
        """
        known = {p["name"]: p for p in self.list_prompts()}
        prompt = known.get(name)
        if prompt is None:
            raise RPCError(INVALID_PARAMS, f"Unknown prompt: {name!r}", {"known": sorted(known)})
        for arg in prompt["arguments"]:
            if arg["required"] and not arguments.get(arg["name"]):
                raise RPCError(
                    INVALID_PARAMS, f"Missing required argument {arg['name']!r} for {name}"
                )
        if name == "debug_error":
            text = self._debug_prompt(arguments)
        else:
            framework = arguments.get("framework") or "the project's framework"
            scripts = ""
            if self._processes is not None:
                scripts = _text(self._scripts_list({}))
            text = (
                f"Help me configure package.json scripts for {arguments['task_type']} "
                f"with {framework}. The scripts brummer sees now: {scripts or 'unknown'}."
            )
        return {
            "description": prompt["description"],
            "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
        }

    def _debug_prompt(self, arguments: Mapping[str, str]) -> str:
        lines = [f"I am seeing this error:\n\n{arguments['error_message']}\n"]
        if arguments.get("context"):
            lines.append(f"Context: {arguments['context']}\n")
        if self._logs is not None:
            groups = list(self._logs.get_error_groups())[-3:]
            for group in groups:
                stack = "\n".join(strip_ansi(line) for line in group.lines)
                lines.append(f"Recent error in {group.process_name}:\n{stack}\n")
        lines.append("Explain the likely cause and how to fix it.")
        return "\n".join(lines)


@attrs.frozen
class _Query:
    text: str = ""
    regex: bool = False
    process_id: str | None = None
    level: Any = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 0


def _request_failed(request: Any) -> bool:
    flag = getattr(request, "is_error", None)
    if isinstance(flag, bool):
        return flag
    if getattr(request, "error", None):
        return True
    status = getattr(request, "status_code", None)
    if status is None:
        status = getattr(request, "status", 0)
    return isinstance(status, int) and status >= 400


_PERFORMANCE_TYPES = ("page_load", "performance", "resource", "paint", "vital", "timing")


def _event_matches(event: Any, kind: str) -> bool:
    if kind == "all":
        return True
    if kind == "error":
        flag = getattr(event, "is_error", None)
        if isinstance(flag, bool):
            return flag
    value = event.get("type") if isinstance(event, Mapping) else getattr(event, "type", "")
    text = str(getattr(value, "value", value)).lower()
    if kind == "performance":
        return any(word in text for word in _PERFORMANCE_TYPES)
    if kind == "interaction":
        return any(word in text for word in ("interaction", "click", "input", "navigation"))
    return kind in text

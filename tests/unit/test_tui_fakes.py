"""Small stand-ins for the container, used by the TUI widget tests (the TUI *uses* these APIs).

They follow API.md names exactly; the integration tests run the TUI over the real components.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
from typing import Any

import attrs

from brummer.config import Config
from brummer.logs import LogLevel

_ids = itertools.count()


class FakeStatus(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    SUCCESS = "success"


@attrs.frozen
class FakeEntry:
    id: str
    seq: int
    process_id: str
    process_name: str
    timestamp: dt.datetime
    content: str
    level: LogLevel = LogLevel.INFO
    is_error: bool = False
    tags: tuple[str, ...] = ()
    priority: int = 0


@attrs.frozen
class FakeGroup:
    id: str
    process_id: str
    process_name: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    kind: str
    message: str
    lines: tuple[str, ...]
    count: int


@attrs.frozen
class FakeURL:
    url: str
    process_id: str
    process_name: str
    timestamp: dt.datetime
    context: str
    proxy_url: str | None


@attrs.frozen
class FakeScript:
    name: str
    command: str
    cwd: str = "/project"
    source: str = "package.json"


class FakeLogs:
    def __init__(self, max_entries: int = 100_000) -> None:
        self.entries: list[FakeEntry] = []
        self.groups: list[FakeGroup] = []
        self.urls: list[FakeURL] = []
        self.max_entries = max_entries

    def add(self, process_id: str, process_name: str, content: str, is_error: bool = False) -> Any:
        # Like the real store: the level comes from the content, not from the stream.
        lowered = content.lower()
        level = (
            LogLevel.ERROR
            if "error" in lowered or "fail" in lowered
            else LogLevel.WARNING
            if "warn" in lowered
            else LogLevel.INFO
        )
        entry = FakeEntry(
            id=str(next(_ids)),
            seq=len(self.entries),
            process_id=process_id,
            process_name=process_name,
            timestamp=dt.datetime.now(dt.UTC),
            content=content,
            level=level,
            is_error=is_error,
            priority={LogLevel.ERROR: 55, LogLevel.WARNING: 35}.get(level, 10),
        )
        self.entries.append(entry)
        if len(self.entries) > self.max_entries:
            del self.entries[0]
        return entry

    def get_all(self) -> list[Any]:
        return list(self.entries)

    def get_by_process(self, process_id: str) -> list[Any]:
        return [e for e in self.entries if e.process_id == process_id]

    def get_error_groups(self) -> list[Any]:
        return list(self.groups)

    def get_urls(self) -> list[Any]:
        return list(self.urls)

    def clear(self) -> None:
        self.entries.clear()

    def clear_for_process(self, process_id: str) -> None:
        self.entries = [e for e in self.entries if e.process_id != process_id]


class FakeProcess:
    def __init__(self, name: str, status: FakeStatus = FakeStatus.RUNNING) -> None:
        self.id = f"{name}-{next(_ids)}"
        self.name = name
        self.command = f"run {name}"
        self.cwd = "/project"
        self.pid: int | None = 4242
        self.status = status
        self.exit_code: int | None = None
        self.start_time = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=75)
        self.end_time: dt.datetime | None = None

    def is_running(self) -> bool:
        return self.status is FakeStatus.RUNNING


class FakeProcesses:
    package_manager = "npm"

    def __init__(self) -> None:
        self.procs: list[FakeProcess] = []
        self.calls: list[tuple[str, str]] = []

    def scripts(self) -> dict[str, Any]:
        return {
            "dev": FakeScript("dev", "python3 server.py"),
            "test": FakeScript("test", "python3 test.py"),
            "build": FakeScript("build", "python3 build.py"),
        }

    def get_all_processes(self) -> list[Any]:
        return list(self.procs)

    def get_process(self, process_id: str) -> Any:
        return next((p for p in self.procs if p.id == process_id), None)

    def stop_process(self, process_id: str, timeout: float | None = None) -> None:
        self.calls.append(("stop", process_id))
        proc = self.get_process(process_id)
        if proc is not None:
            proc.status = FakeStatus.STOPPED
            proc.exit_code = -15

    def restart_process(self, process_id: str) -> Any:
        self.calls.append(("restart", process_id))
        old = self.get_process(process_id)
        old.status = FakeStatus.STOPPED
        new = FakeProcess(old.name)
        self.procs.append(new)
        return new


class FakeProxy:
    port = 19888

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.cleared = 0

    def get_requests(self) -> list[Any]:
        return list(self.requests)

    def clear_requests(self) -> None:
        self.cleared += 1
        self.requests.clear()


class FakeApp:
    def __init__(self) -> None:
        self.logs = FakeLogs()
        self.processes = FakeProcesses()
        self.proxy: Any = FakeProxy()
        self.mcp: Any = None
        self.events: Any = None
        self.pool: Any = None
        self.work_dir = "/project"
        self.config = Config()
        self.ran: list[str] = []

    def run(self, target: str) -> Any:
        if target == "explode":
            raise LookupError("no script named 'explode'")
        self.ran.append(target)
        proc = FakeProcess(target)
        self.processes.procs.append(proc)
        return proc

"""The container: builds every component from a :class:`~brummer.config.Config`, or none.

:class:`Brummer` is what the urwid interface, the headless CLI and the servers consume. It
starts the components in dependency order (resources, pool, event bus, log store, process
manager, proxy, MCP server) and, if any of them fails, stops the ones already started before
raising. :meth:`Brummer.stop` stops them in reverse order, is idempotent and is bounded by
its timeout.

Thread safety: TS. ``start``/``stop`` serialise on one lock; the component attributes are
set once by ``start`` and read-only afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from brummer.config import Config, check_project_dir, load_config
from brummer.contracts import Cleanup, ThreadSafety, TSLock, check_timeout, contract
from brummer.errors import BrummerError, ErrorCode

__all__ = ["Brummer"]

_COMPONENT = "app"
_log = logging.getLogger("brummer.app")


@contract(ThreadSafety.TS, cleanup=Cleanup.RAII)
class Brummer:
    """Every brummer component, built from one configuration, started and stopped together.

    Thread safety: TS. ``start()`` and ``stop()`` may be called from any thread; ``stop()``
    is idempotent and bounded by its timeout. Use it as a context manager::

        with Brummer("path/to/project") as app:
            app.run("dev")

    Attributes (set by ``start``; None before it, and for components disabled by the
    configuration): ``resources``, ``pool``, ``events``, ``logs``, ``processes``, ``proxy``,
    ``mcp``.
    """

    def __init__(
        self, work_dir: str | os.PathLike[str] = ".", config: Config | None = None
    ) -> None:
        project = Path(work_dir).expanduser()
        check_project_dir(project)
        self.work_dir = str(project.resolve())
        self.config = config if config is not None else load_config(self.work_dir)
        self.resources: Any = None
        self.pool: Any = None
        self.events: Any = None
        self.logs: Any = None
        self.processes: Any = None
        self.orphans: tuple[Any, ...] = ()  # OrphanInfo left by brummers that were killed
        self.proxy: Any = None
        self.mcp: Any = None
        self._lock = TSLock("app")  # guards _state, _stoppers; stop() stops without it
        self._state = "new"  # new -> started -> stopped
        self._stoppers: list[tuple[str, Callable[[float], None]]] = []

    @property
    @contract(ThreadSafety.TS)
    def is_running(self) -> bool:
        """True between a successful ``start()`` and ``stop()``.

        Thread safety: TS.
        """
        with self._lock:
            return self._state == "started"

    @contract(ThreadSafety.TS, timeout=30.0, guarantees="all components or none")
    def start(self) -> None:
        """Build and start every enabled component; on failure stop what was started and raise.

        Thread safety: TS. A second call while started is a no-op.

        Raises:
            BrummerError: the first component failure (INVALID_STATE after ``stop()``).
        """
        with self._lock:
            if self._state == "started":
                return
            if self._state == "stopped":
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.INVALID_STATE,
                    "this Brummer was stopped and cannot be started again",
                    hint="create a new Brummer",
                )
            try:
                self._build()
            except BaseException:
                stoppers, self._stoppers = self._stoppers, []
                self._run_stoppers(stoppers, 10.0)
                self._clear_components()
                raise
            self._state = "started"

    def _build(self) -> None:
        from brummer.events import EventBus, EventType
        from brummer.logs import LogStore
        from brummer.pool import WorkerPool
        from brummer.process import ChildLedger, ProcessManager
        from brummer.resources import ResourceManager

        cfg = self.config
        self.resources = ResourceManager()
        self.pool = WorkerPool(name="brummer-pool")
        self._stoppers.append(("pool", lambda t: self.pool.stop(timeout=t)))
        self.events = EventBus(pool=self.pool)
        self._stoppers.append(("events", lambda t: self.events.stop(timeout=t)))
        self.logs = LogStore(
            max_entries=cfg.log_max_entries,
            max_errors=cfg.log_max_errors,
            max_urls=cfg.log_max_urls,
            event_bus=self.events,
            extra_rules=_rules_for_store(cfg) or None,
        )
        self._stoppers.append(("logs", lambda _t: self.logs.close()))
        self.orphans = _report_orphans()
        ledger: ChildLedger | None = None
        try:
            ledger = ChildLedger(work_dir=self.work_dir)
        except BrummerError as exc:  # orphan tracking is lost, brummer still runs
            _log.warning("not recording children on disk: %s", exc)
        if ledger is not None:
            self._stoppers.append(("ledger", lambda _t: _close_ledger(ledger)))
        self.processes = ProcessManager(
            self.work_dir,
            event_bus=self.events,
            log_store=self.logs,
            package_manager=cfg.package_manager,
            stop_timeout=cfg.stop_timeout,
            ledger=ledger,
        )
        self._stoppers.append(("processes", lambda t: self.processes.cleanup(timeout=t)))
        self._subscribe(EventType.PROCESS_EXITED, self._on_process_exited)
        if not cfg.no_proxy:
            self._build_proxy()
            self._subscribe(EventType.URL_DETECTED, self._on_url_detected)
        if not cfg.no_mcp:
            self._build_mcp()

    def _subscribe(self, event_type: Any, handler: Callable[[Any], None]) -> None:
        sub_id = self.events.subscribe(event_type, handler)
        self._stoppers.append(("subscription", lambda _t: self.events.unsubscribe(sub_id)))

    def _on_process_exited(self, event: Any) -> None:
        logs = self.logs
        if logs is not None and event.process_id:
            logs.mark_process_exited(event.process_id)

    def _on_url_detected(self, event: Any) -> None:
        """Front every URL a process prints with the proxy, and record the proxy URL."""
        proxy, logs = self.proxy, self.logs
        url = event.data.get("url")
        if proxy is None or logs is None or not url:
            return
        name = str(event.data.get("process_name") or event.process_id or "unknown")
        try:
            proxy_url = proxy.register_url(url, name, process_id=event.process_id)
        except BrummerError as exc:
            _log.debug("not fronting %s with the proxy: %s", url, exc)
            return
        if proxy_url:
            logs.set_proxy_url(url, proxy_url)

    def _build_proxy(self) -> None:
        from brummer.proxy import ProxyServer

        cfg = self.config

        def make(port: int) -> Any:
            return ProxyServer(
                port=port,
                mode=cfg.proxy_mode,
                telemetry=cfg.telemetry,
                event_bus=self.events,
                log_store=self.logs,
            )

        self.proxy = make(cfg.proxy_port)
        try:
            self.proxy.start()
        except BrummerError as exc:
            # Another brummer may hold the default port: take a free one, as the MCP server
            # does. A port the user chose is kept, and its failure is reported.
            if exc.code is not ErrorCode.RESOURCE_LIMIT or cfg.source_of("proxy_port") != "default":
                raise
            _log.warning("proxy port %d is busy; using a free port instead", cfg.proxy_port)
            self.proxy = make(0)
            self.proxy.start()
        self._stoppers.append(("proxy", lambda _t: self.proxy.stop()))

    def _build_mcp(self) -> None:
        from brummer.mcp import MCPServer

        self.mcp = MCPServer(
            self,
            port=self.config.mcp_port,
            command_run_enabled=self.config.command_run,
            project_dir=self.work_dir,
        )
        self.mcp.start()
        self._stoppers.append(("mcp", lambda _t: self.mcp.stop()))

    @contract(ThreadSafety.TS, timeout=30.0, guarantees="idempotent; reverse start order")
    def stop(self, timeout: float = 30.0) -> None:
        """Stop every started component in reverse order, within ``timeout`` seconds in total.

        Thread safety: TS. Idempotent: later calls return at once. A component that fails to
        stop is logged and the others are still stopped.
        """
        checked = check_timeout(_COMPONENT, timeout)
        timeout = 30.0 if checked is None else checked
        with self._lock:
            if self._state == "stopped":
                return
            self._state = "stopped"
            stoppers, self._stoppers = self._stoppers, []
        self._run_stoppers(stoppers, timeout)

    def _run_stoppers(
        self, stoppers: list[tuple[str, Callable[[float], None]]], total: float
    ) -> None:
        deadline = time.monotonic() + total
        for name, stop in reversed(stoppers):
            _stop_bounded(name, stop, max(0.05, deadline - time.monotonic()))

    def _clear_components(self) -> None:
        self.resources = self.pool = self.events = self.logs = None
        self.processes = self.proxy = self.mcp = None

    @contract(ThreadSafety.TS, timeout=10.0)
    def run(self, target: str) -> Any:
        """Start a package.json script by name, or else run ``target`` as a shell command.

        Thread safety: TS. The script's restart policy from the configuration applies.

        Returns:
            The started ``Process``.

        Raises:
            BrummerError: INVALID_STATE before ``start()``; what the process manager raises.
        """
        processes = self._require("processes")
        target = target.strip()
        if not target:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                "nothing to run",
                hint="name a script from package.json or give a command",
            )
        scripts = processes.scripts()
        if target in scripts:
            return processes.start_script(target, restart=self._restart_policy(target))
        name = Path(shlex.split(target)[0]).name if _splittable(target) else "command"
        return processes.start_command(name, target)

    def _restart_policy(self, script: str) -> Any:
        settings = self.config.restart_for(script)
        if settings is None:
            return None
        from brummer.process import RestartPolicy

        return RestartPolicy(
            mode=settings.mode,
            max_restarts=settings.max_restarts,
            backoff_initial=settings.backoff_initial,
            backoff_max=settings.backoff_max,
        )

    def _require(self, name: str) -> Any:
        component = getattr(self, name)
        if component is None:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_STATE,
                f"the {name} component is not running",
                hint="call start() first (or use Brummer as a context manager)",
            )
        return component

    def __enter__(self) -> Brummer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _rules_for_store(config: Config) -> dict[str, Any]:
    """The configured ``[[error_rules]]`` in the log store's rule format."""
    if not config.error_rules:
        return {}
    return {
        "error": [
            {
                "name": f"user-{index}",
                "pattern": rule.pattern,
                "kind": rule.kind,
                "triggers": list(rule.triggers),
                "style": "stack",
            }
            for index, rule in enumerate(config.error_rules)
        ]
    }


def _splittable(text: str) -> bool:
    with contextlib.suppress(ValueError):
        return bool(shlex.split(text))
    return False


def _report_orphans() -> tuple[Any, ...]:
    """Processes left running by brummers that died (SIGKILL, crash); logged, never signalled."""
    from brummer.process import find_orphans

    try:
        orphans = tuple(find_orphans())
    except Exception as exc:  # a broken state folder must not stop brummer from starting
        _log.warning("could not look for orphaned processes: %s", exc)
        return ()
    for orphan in orphans:
        _log.warning(
            "%r (pid %d, %d process(es)) is still running from a brummer that died (pid %d): "
            "run `brummer --clean-orphans` to stop it",
            orphan.name,
            orphan.pid,
            len(orphan.pids),
            orphan.owner_pid,
        )
    return orphans


def _close_ledger(ledger: Any) -> None:
    ledger.close()


def _stop_bounded(name: str, stop: Callable[[float], None], timeout: float) -> None:
    """Run ``stop(timeout)`` on a helper thread; give up waiting after the timeout."""
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            stop(timeout)
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=run, name=f"brummer-stop-{name}", daemon=True)
    worker.start()
    if not done.wait(timeout + 0.5):
        _log.error("stopping %s took longer than %.1fs; going on", name, timeout)
        return
    worker.join()
    if failure:
        _log.error("stopping %s failed: %s", name, failure[0])

"""Deterministic stand-ins for the event bus and the process manager, for code that uses them.

Both mocks follow the public API of the real class (API.md §5 and §6), validate their
arguments the same way (same ``BrummerError`` codes), and add the test methods of
``interface-contracts.md``. They differ on purpose in one respect: everything happens at
once, in the calling thread — :meth:`MockEventBus.publish` calls the handlers before it
returns; :meth:`MockProcessManager.set_process_output` hands the lines to the callbacks, the
log store and the bus before it returns. A test therefore needs no waiting at all.

Both are TS (not ST, as the original design had it): every call is serialised by one
reentrant lock, so the conformance suites can run them from many threads; run from one
thread they are fully deterministic. Handlers and callbacks run while that lock is held:
a handler may call the mock again from the same thread, but must not wait for another
thread that does.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from brummer.contracts import BLOCKING, Cleanup, ThreadSafety, check_timeout, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.events import Event, EventBusMetrics, EventType, SubscriptionID
from brummer.process.manager import ProcessInfo, ProcessStatus, RestartPolicy
from brummer.process.model import ProcessView
from brummer.process.scripts import Script

__all__ = ["MockEventBus", "MockProcess", "MockProcessManager"]

_events_log = logging.getLogger("brummer.events")
_process_log = logging.getLogger("brummer.process")


def _invalid(component: str, message: str, hint: str) -> BrummerError:
    return BrummerError(component, ErrorCode.INVALID_ARGUMENT, message, hint=hint)


@contract(ThreadSafety.TS, cleanup=Cleanup.AUTOMATIC)
class MockEventBus:
    """An EventBus that delivers synchronously, in subscription order, in the publisher's thread.

    Thread safety: TS. Calls are serialised by one reentrant lock (handlers run under it).

    Behaves like :class:`brummer.events.EventBus` for every input the real bus accepts or
    refuses (same error codes, same counting), and adds :meth:`subscriber_count`,
    :meth:`published_events`, :meth:`simulate_backpressure` and :meth:`inject_error`.
    Nothing is ever pending, so ``events_published == events_processed + events_dropped``.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()  # guards everything below; held while handlers run
        self._subs: dict[str, tuple[str | None, Callable[[Event], object]]] = {}
        self._ids = itertools.count(1)
        self._published: list[Event] = []
        self._backpressure = False
        self._inject: ErrorCode | None = None
        self._inject_count = 0
        self._stopped = False
        self._counts = {"published": 0, "processed": 0, "dropped": 0, "errors": 0, "calls": 0}
        self._busy = 0.0

    # -- subscriptions -------------------------------------------------------------------

    @staticmethod
    def _type_key(event_type: object) -> str:
        if isinstance(event_type, EventType):
            return event_type.value
        if isinstance(event_type, str) and event_type:
            return event_type
        raise _invalid(
            "events",
            f"event type must be an EventType or a non-empty string, not {event_type!r}",
            "pass e.g. EventType.LOG_LINE, or a string like 'my.event'",
        )

    @contract(ThreadSafety.TS)
    def subscribe(
        self, event_type: EventType | str, handler: Callable[[Event], object]
    ) -> SubscriptionID:
        """Call ``handler(event)`` for every later event of ``event_type``.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT for a non-callable handler or a bad type;
                INVALID_STATE after stop().
        """
        return self._add(self._type_key(event_type), handler)

    @contract(ThreadSafety.TS)
    def subscribe_all(self, handler: Callable[[Event], object]) -> SubscriptionID:
        """Call ``handler(event)`` for every later event of any type.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT for a non-callable handler; INVALID_STATE after stop().
        """
        return self._add(None, handler)

    def _add(self, key: str | None, handler: Callable[[Event], object]) -> SubscriptionID:
        if not callable(handler):
            raise _invalid(
                "events",
                f"handler must be callable, not {handler!r}",
                "pass a function taking one Event",
            )
        with self._lock:
            if self._stopped:
                raise _stopped("subscribe")
            sub_id = SubscriptionID(f"mock-sub-{next(self._ids)}")
            self._subs[sub_id] = (key, handler)
            return sub_id

    @contract(ThreadSafety.TS)
    def unsubscribe(self, sub_id: SubscriptionID | str) -> None:
        """Remove a subscription; nothing published afterwards reaches it.

        Thread safety: TS.

        Raises:
            BrummerError: NOT_FOUND for an unknown (or already removed) id;
                INVALID_ARGUMENT for something that is not an id.
        """
        if not isinstance(sub_id, str):
            raise _invalid(
                "events", f"not a subscription id: {sub_id!r}", "pass what subscribe() returned"
            )
        with self._lock:
            if self._subs.pop(sub_id, None) is None:
                raise BrummerError(
                    "events",
                    ErrorCode.NOT_FOUND,
                    f"no subscription {sub_id!r}",
                    hint="pass the id subscribe() returned; it may be unsubscribed already",
                )

    # -- publishing ------------------------------------------------------------------------

    @staticmethod
    def _check_event(event: object) -> None:
        if not isinstance(event, Event):
            raise _invalid(
                "events",
                f"can only publish an Event, not {type(event).__name__}",
                "wrap the data: Event(EventType.LOG_LINE, {'line': text})",
            )

    def _refusal(self) -> BrummerError | None:
        if self._inject is not None and self._inject_count > 0:
            self._inject_count -= 1
            code = self._inject
            if self._inject_count == 0:
                self._inject = None
            return BrummerError(
                "events",
                code,
                "injected error (MockEventBus.inject_error)",
                hint="the test asked for this failure",
            )
        if self._backpressure:
            return BrummerError(
                "events",
                ErrorCode.RESOURCE_LIMIT,
                "the event queue is full (simulated backpressure)",
                hint="retry later or use publish_async",
                temporary=True,
            )
        return None

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every matching handler before returning.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT for a non-Event; INVALID_STATE after stop;
                RESOURCE_LIMIT while backpressure is simulated; the injected code while
                an error is injected. A refused event is not counted.
        """
        self._check_event(event)
        with self._lock:
            if self._stopped:
                raise _stopped("publish")
            refusal = self._refusal()
            if refusal is not None:
                raise refusal
            self._deliver(event)

    @contract(ThreadSafety.TS)
    def publish_async(self, event: Event) -> None:
        """Like :meth:`publish`, but refused events (stopped, backpressure, injected) are dropped.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT for a non-Event (a programming error, not load).
        """
        self._check_event(event)
        with self._lock:
            if self._stopped or self._refusal() is not None:
                self._counts["published"] += 1
                self._counts["dropped"] += 1
                return
            self._deliver(event)

    def _deliver(self, event: Event) -> None:
        self._published.append(event)
        self._counts["published"] += 1
        key = self._type_key(event.type)
        started = time.perf_counter()
        for sub_key, handler in list(self._subs.values()):
            if sub_key is not None and sub_key != key:
                continue
            self._counts["calls"] += 1
            try:
                handler(event)
            except Exception:
                self._counts["errors"] += 1
                _events_log.exception(
                    "event handler %r raised on event %s (%s); delivery goes on",
                    handler,
                    event.id,
                    key,
                )
        self._busy += time.perf_counter() - started
        self._counts["processed"] += 1

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop accepting events (nothing is pending: delivery is synchronous); idempotent.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT for a bad timeout.
        """
        check_timeout("events", timeout)
        with self._lock:
            self._stopped = True

    @property
    @contract(ThreadSafety.TS)
    def stopped(self) -> bool:
        """Whether stop() was called.

        Thread safety: TS.
        """
        return self._stopped

    @contract(ThreadSafety.TS)
    def metrics(self) -> EventBusMetrics:
        """An ``EventBusMetrics`` snapshot (published = processed + dropped: nothing pends).

        Thread safety: TS.
        """
        with self._lock:
            c = dict(self._counts)
            avg = self._busy / c["calls"] if c["calls"] else 0.0
        return EventBusMetrics(
            events_published=c["published"],
            events_processed=c["processed"],
            events_dropped=c["dropped"],
            handler_errors=c["errors"],
            avg_processing_time=avg,
            worker_utilization=0.0,
            queue_depth=(0, 0, 0),
        )

    # -- test support ----------------------------------------------------------------------

    @contract(ThreadSafety.TS)
    def subscriber_count(self, event_type: EventType | str | None = None) -> int:
        """Subscriptions that would receive an event of ``event_type`` (None: all of them).

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT for a bad type.
        """
        with self._lock:
            if event_type is None:
                return len(self._subs)
            key = self._type_key(event_type)
            return sum(1 for k, _ in self._subs.values() if k is None or k == key)

    @contract(ThreadSafety.TS)
    def published_events(self) -> list[Event]:
        """Every event accepted and delivered so far, in publish order (a new list).

        Thread safety: TS.
        """
        with self._lock:
            return list(self._published)

    @contract(ThreadSafety.TS)
    def simulate_backpressure(self, enabled: bool) -> None:
        """While enabled, ``publish`` raises RESOURCE_LIMIT and ``publish_async`` drops.

        Thread safety: TS.
        """
        with self._lock:
            self._backpressure = bool(enabled)

    @contract(ThreadSafety.TS)
    def inject_error(self, code: ErrorCode | None, *, count: int = 1) -> None:
        """Make the next ``count`` publishes raise ``BrummerError(code)`` (None: stop doing so).

        Thread safety: TS. ``publish_async`` drops (and counts) the event instead.

        Raises:
            BrummerError: INVALID_ARGUMENT for a code that is not an ErrorCode or count < 1.
        """
        if code is not None and not isinstance(code, ErrorCode):
            raise _invalid(
                "events",
                f"inject_error takes an ErrorCode, not {code!r}",
                "pass e.g. ErrorCode.TIMEOUT",
            )
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise _invalid(
                "events",
                f"count must be an int ≥ 1, not {count!r}",
                "pass how many publishes should fail",
            )
        with self._lock:
            self._inject = code
            self._inject_count = 0 if code is None else count

    def __enter__(self) -> MockEventBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stopped(what: str) -> BrummerError:
    return BrummerError(
        "events",
        ErrorCode.INVALID_STATE,
        f"cannot {what}: the event bus is stopped",
        hint="create a new bus, or publish before calling stop()",
    )


@contract(ThreadSafety.TS)
class MockProcess(ProcessView):
    """A process handle of :class:`MockProcessManager`; nothing runs.

    Thread safety: TS. Reads are atomic (one frozen :class:`ProcessInfo` swapped whole); they
    come from :class:`~brummer.process.ProcessView`, as those of the real ``Process`` do. Its
    ``pid`` is always None: nothing runs.
    """

    def __init__(
        self, info: ProcessInfo, command: str, args: tuple[str, ...], script: str | None
    ) -> None:
        super().__init__(info)
        self._launch = (info.name, command, args, info.cwd, script)

    def _set(self, **changes: Any) -> ProcessInfo:
        self._info = attrs.evolve(self._info, **changes)
        if self._info.status.finished:
            self._done.set()
        return self._info

    def __repr__(self) -> str:
        return f"<MockProcess {self._info.id} {self._info.status.value}>"


def _now() -> datetime:
    return datetime.now(UTC)


@contract(ThreadSafety.TS, cleanup=Cleanup.AUTOMATIC)
class MockProcessManager:
    """A ProcessManager that starts nothing: processes exist only as state you drive.

    Thread safety: TS. Calls are serialised by one reentrant lock; log callbacks, the log
    store and the event bus are called under it, in the calling thread.

    Args:
        scripts: script name → command line, as package.json would give them.
        work_dir: reported as every script's cwd.
        event_bus: receives PROCESS_STARTED, PROCESS_EXITED and LOG_LINE like the real one.
        log_store: receives every line given to :meth:`set_process_output` (``add_batch``).
    """

    def __init__(
        self,
        scripts: Mapping[str, str] | None = None,
        *,
        work_dir: str = ".",
        event_bus: Any = None,
        log_store: Any = None,
    ) -> None:
        scripts = dict(scripts or {})
        for name, command in scripts.items():
            if (
                not isinstance(name, str)
                or not name
                or not isinstance(command, str)
                or not command.strip()
            ):
                raise _invalid(
                    "process",
                    f"script {name!r} needs a name and a non-empty command",
                    "pass {'dev': 'vite'}",
                )
        self._cwd = os.path.abspath(work_dir)
        self._scripts = {n: Script(n, c, self._cwd, "package.json") for n, c in scripts.items()}
        self._bus = event_bus
        self._store = log_store
        self._lock = threading.RLock()  # guards everything below; held while calling out
        self._processes: dict[str, MockProcess] = {}
        self._callbacks: dict[str, Callable[[str, str, bool], None]] = {}
        self._outputs: dict[str, list[tuple[str, bool]]] = {}
        self._ids = itertools.count(1)
        self._cb_ids = itertools.count(1)
        self._starts = 0
        self._closed = False

    @property
    @contract(ThreadSafety.TS)
    def package_manager(self) -> str:
        """Always ``npm``.

        Thread safety: TS.
        """
        return "npm"

    @contract(ThreadSafety.TS)
    def scripts(self) -> dict[str, Script]:
        """The scripts given to the constructor (a new dict).

        Thread safety: TS.
        """
        return dict(self._scripts)

    # -- lifecycle ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BrummerError(
                "process",
                ErrorCode.INVALID_STATE,
                "the process manager is cleaned up",
                hint="make a new manager",
            )

    @contract(ThreadSafety.TS)
    def start_script(
        self,
        name: str,
        *,
        allow_duplicate: bool = False,
        restart: RestartPolicy | None = None,
        ctx: Any = None,
    ) -> MockProcess:
        """Start a script: it is RUNNING at once.

        Thread safety: TS.

        Raises:
            BrummerError: NOT_FOUND for an unknown script; ALREADY_EXISTS when it runs and
                ``allow_duplicate`` is false; INVALID_ARGUMENT for a bad restart policy;
                INVALID_STATE after cleanup.
        """
        if restart is not None and not isinstance(restart, RestartPolicy):
            raise _invalid(
                "process",
                f"restart must be a RestartPolicy, not {type(restart).__name__}",
                "pass RestartPolicy(mode='on-failure') or None",
            )
        with self._lock:
            self._check_open()
            script = self._scripts.get(name) if isinstance(name, str) else None
            if script is None:
                raise BrummerError(
                    "process",
                    ErrorCode.NOT_FOUND,
                    f"no script named {name!r}",
                    hint=f"known scripts: {', '.join(sorted(self._scripts)) or 'none'}",
                    context={"script": name},
                )
            if not allow_duplicate and any(
                p.is_running() and p._launch[4] == name for p in self._processes.values()
            ):
                raise BrummerError(
                    "process",
                    ErrorCode.ALREADY_EXISTS,
                    f"script {name!r} is already running",
                    hint="stop it first, or pass allow_duplicate=True",
                )
            return self._start(name, script.command, (), name)

    @contract(ThreadSafety.TS)
    def start_command(
        self,
        name: str,
        command: str,
        args: Sequence[str] = (),
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        ctx: Any = None,
    ) -> MockProcess:
        """Start a command under ``name``: it is RUNNING at once.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT for an empty name or command or non-string args;
                INVALID_STATE after cleanup.
        """
        if not isinstance(name, str) or not name.strip():
            raise _invalid(
                "process", "a process needs a non-empty name", "pass a name to show in the list"
            )
        if not isinstance(command, str) or not command.strip():
            raise _invalid("process", "the command is empty", "pass the command line to run")
        if isinstance(args, str) or not all(isinstance(a, str) for a in args):
            raise _invalid(
                "process", "args must be a sequence of strings", "pass e.g. ('-m', 'http.server')"
            )
        with self._lock:
            self._check_open()
            return self._start(name, command, tuple(args), None, cwd)

    def _start(
        self,
        name: str,
        command: str,
        args: tuple[str, ...],
        script: str | None,
        cwd: str | None = None,
    ) -> MockProcess:
        process_id = f"{name}-{next(self._ids)}"
        display = " ".join([command, *args]) if args else command
        info = ProcessInfo(
            id=process_id,
            name=name,
            command=display,
            cwd=os.path.abspath(cwd) if cwd else self._cwd,
            status=ProcessStatus.RUNNING,
            start_time=_now(),
            script=script,
        )
        proc = MockProcess(info, command, args, script)
        self._processes[process_id] = proc
        self._starts += 1
        self._publish(
            "PROCESS_STARTED",
            proc,
            {"name": name, "command": display, "pid": None, "script": script},
        )
        return proc

    def _require(self, process_id: str) -> MockProcess:
        proc = self._processes.get(process_id) if isinstance(process_id, str) else None
        if proc is None:
            raise BrummerError(
                "process",
                ErrorCode.NOT_FOUND,
                f"no process {process_id!r}",
                hint="pass an id from get_all_processes()",
            )
        return proc

    def _end(self, proc: MockProcess, status: ProcessStatus, exit_code: int | None) -> None:
        info = proc._set(
            status=status,
            exit_code=exit_code,
            end_time=_now(),
            stop_requested=status is ProcessStatus.STOPPED,
        )
        self._publish(
            "PROCESS_EXITED",
            proc,
            {
                "name": info.name,
                "status": status.value,
                "exit_code": exit_code,
                "stopped": status is ProcessStatus.STOPPED,
            },
        )

    @contract(ThreadSafety.TS)
    def stop_process(self, process_id: str, timeout: float | None = None) -> None:
        """Mark the process STOPPED; a no-op when it has already ended.

        Thread safety: TS.

        Raises:
            BrummerError: NOT_FOUND for an unknown id; INVALID_ARGUMENT for a bad timeout.
        """
        check_timeout("process", timeout)
        with self._lock:
            proc = self._require(process_id)
            if proc.is_running():
                self._end(proc, ProcessStatus.STOPPED, None)

    @contract(ThreadSafety.TS)
    def restart_process(self, process_id: str) -> MockProcess:
        """Stop the process if it runs and start it again under a new id.

        Thread safety: TS.

        Raises:
            BrummerError: NOT_FOUND for an unknown id; INVALID_STATE after cleanup.
        """
        with self._lock:
            proc = self._require(process_id)
            self._check_open()
            self.stop_process(process_id)
            name, command, args, _cwd, script = proc._launch
            return self._start(name, command, args, script, proc.cwd)

    @contract(ThreadSafety.TS)
    def get_process(self, process_id: str) -> MockProcess | None:
        """The process with this id, or None.

        Thread safety: TS.
        """
        with self._lock:
            return self._processes.get(process_id)

    @contract(ThreadSafety.TS)
    def get_all_processes(self) -> list[MockProcess]:
        """Every process started (finished ones included), oldest first.

        Thread safety: TS.
        """
        with self._lock:
            return list(self._processes.values())

    @contract(ThreadSafety.TS)
    def register_log_callback(self, cb: Callable[[str, str, bool], None]) -> str:
        """Call ``cb(process_id, line, is_error)`` for every line from now on.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT when ``cb`` is not callable.
        """
        if not callable(cb):
            raise _invalid(
                "process",
                "log callback must be callable",
                "pass a function (process_id, line, is_error)",
            )
        with self._lock:
            cb_id = f"mock-log-callback-{next(self._cb_ids)}"
            self._callbacks[cb_id] = cb
            return cb_id

    @contract(ThreadSafety.TS)
    def unregister_log_callback(self, cb_id: str) -> None:
        """Stop calling a callback.

        Thread safety: TS.

        Raises:
            BrummerError: NOT_FOUND for an unknown id.
        """
        with self._lock:
            if self._callbacks.pop(cb_id, None) is None:
                raise BrummerError(
                    "process",
                    ErrorCode.NOT_FOUND,
                    f"no log callback {cb_id!r}",
                    hint="pass the id register_log_callback returned; it may be unregistered already",
                )

    @contract(ThreadSafety.TS)
    def cleanup(self, timeout: float = 30.0) -> None:
        """Stop every running process; afterwards starting raises INVALID_STATE. Idempotent.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT for a bad timeout.
        """
        check_timeout("process", timeout)
        with self._lock:
            self._closed = True
            for proc in self._processes.values():
                if proc.is_running():
                    self._end(proc, ProcessStatus.STOPPED, None)

    # -- test support --------------------------------------------------------------------------

    @contract(ThreadSafety.TS)
    def process_count(self) -> int:
        """How many processes :meth:`get_all_processes` lists (running and finished).

        Thread safety: TS.
        """
        with self._lock:
            return len(self._processes)

    @contract(ThreadSafety.TS)
    def process_start_count(self) -> int:
        """How many starts there were in total (restarts included).

        Thread safety: TS.
        """
        with self._lock:
            return self._starts

    @contract(ThreadSafety.TS)
    def simulate_process_failure(self, process_id: str, exit_code: int = 1) -> None:
        """End a running process as FAILED with ``exit_code`` (and say so, like a real exit).

        Thread safety: TS.

        Raises:
            BrummerError: NOT_FOUND for an unknown id; INVALID_STATE when it already
                ended; INVALID_ARGUMENT for an exit code of 0 or a non-int.
        """
        if isinstance(exit_code, bool) or not isinstance(exit_code, int) or exit_code == 0:
            raise _invalid(
                "process",
                f"a failure needs a non-zero int exit code, not {exit_code!r}",
                "pass e.g. 1",
            )
        with self._lock:
            proc = self._require(process_id)
            if not proc.is_running():
                raise BrummerError(
                    "process",
                    ErrorCode.INVALID_STATE,
                    f"process {process_id!r} has already ended ({proc.status.value})",
                    hint="simulate a failure of a running process",
                )
            self._deliver(proc, [f"[brummer] process exited with code {exit_code}"], True)
            self._end(proc, ProcessStatus.FAILED, exit_code)

    @contract(ThreadSafety.TS)
    def simulate_process_exit(self, process_id: str, exit_code: int = 0) -> None:
        """End a running process by itself: SUCCESS for 0, FAILED otherwise.

        Thread safety: TS.

        Raises:
            BrummerError: NOT_FOUND for an unknown id; INVALID_STATE when it already ended.
        """
        if exit_code != 0:
            self.simulate_process_failure(process_id, exit_code)
            return
        with self._lock:
            proc = self._require(process_id)
            if not proc.is_running():
                raise BrummerError(
                    "process",
                    ErrorCode.INVALID_STATE,
                    f"process {process_id!r} has already ended",
                    hint="simulate the exit of a running process",
                )
            self._end(proc, ProcessStatus.SUCCESS, 0)

    @contract(ThreadSafety.TS)
    def set_process_output(
        self, process_id: str, output: Sequence[str], *, is_error: bool = False
    ) -> None:
        """Have the process write ``output`` (one line per item) now.

        Thread safety: TS. The lines reach the callbacks, the log store (one
        ``add_batch``) and the bus (one LOG_LINE event) before this returns.

        Raises:
            BrummerError: NOT_FOUND for an unknown id; INVALID_ARGUMENT when ``output`` is
                a string or holds non-strings; INVALID_STATE when the process has ended.
        """
        if isinstance(output, str) or not all(isinstance(line, str) for line in output):
            raise _invalid(
                "process",
                "output must be a sequence of str lines",
                "pass e.g. ['ready on http://localhost:3000']",
            )
        with self._lock:
            proc = self._require(process_id)
            if not proc.is_running():
                raise BrummerError(
                    "process",
                    ErrorCode.INVALID_STATE,
                    f"process {process_id!r} has ended; it writes nothing more",
                    hint="give output to a running process",
                )
            self._deliver(proc, list(output), is_error)

    @contract(ThreadSafety.TS)
    def output_of(self, process_id: str) -> list[tuple[str, bool]]:
        """Every ``(line, is_error)`` the process wrote, in order.

        Thread safety: TS.

        Raises:
            BrummerError: NOT_FOUND for an unknown id.
        """
        with self._lock:
            self._require(process_id)
            return list(self._outputs.get(process_id, []))

    def _deliver(self, proc: MockProcess, lines: list[str], is_error: bool) -> None:
        if not lines:
            return
        self._outputs.setdefault(proc.id, []).extend((line, is_error) for line in lines)
        if self._store is not None:
            logs = importlib.import_module("brummer.logs")
            try:
                self._store.add_batch(
                    [logs.LogEntryInput(proc.id, proc.name, line, is_error) for line in lines]
                )
            except Exception:
                _process_log.exception("log store refused %d lines of %s", len(lines), proc.id)
        for cb in list(self._callbacks.values()):
            for line in lines:
                try:
                    cb(proc.id, line, is_error)
                except Exception:
                    _process_log.exception("log callback %r failed", cb)
        if self._bus is not None:
            self._bus_publish(
                "LOG_LINE",
                proc,
                {"name": proc.name, "is_error": is_error, "lines": tuple(lines)},
                sync=False,
            )

    def _publish(self, kind: str, proc: MockProcess, data: dict[str, Any]) -> None:
        if self._bus is not None:
            self._bus_publish(kind, proc, data, sync=True)

    def _bus_publish(
        self, kind: str, proc: MockProcess, data: dict[str, Any], *, sync: bool
    ) -> None:
        event = Event(type=EventType[kind], data=data, process_id=proc.id)
        try:
            if sync:
                self._bus.publish(event)
            else:
                self._bus.publish_async(event)
        except Exception as exc:
            _process_log.warning("could not publish %s for %s: %s", kind, proc.id, exc)

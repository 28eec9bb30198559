"""ProcessManager: start a project's scripts, capture every line, stop whole process trees.

One :class:`Process` per start. Its state is one frozen :class:`ProcessInfo` replaced
whole under the process's lock, so every read is consistent. Output goes, per batch of
lines, to the log store (its ``add_lines`` fast path when it has one, else ``add_batch``),
to the registered log callbacks (one call per line) and to the event bus (one ``LOG_LINE`` event per batch, published with
``publish_async`` so a busy bus sheds log lines instead of slowing the readers).

Lifecycle: PENDING → RUNNING → SUCCESS (exit code 0) or FAILED (anything else, or the
command could not be started). A stop requested by the user makes it STOPPED, which is
never overwritten. When the process has ended (and before PROCESS_EXITED is published) the
store's ``mark_process_exited`` is called, if it has one. Stopping kills the whole tree (``brummer.process.kill``); a stopped
process is never restarted by its :class:`RestartPolicy`.

Bus payloads (``Event.data``):

- ``PROCESS_STARTED``: ``name``, ``command``, ``pid``, ``script`` (or None);
- ``PROCESS_EXITED``: ``name``, ``status`` (the ``ProcessStatus`` value), ``exit_code``,
  ``stopped`` (bool);
- ``LOG_LINE``: ``name``, ``is_error``, ``lines`` (a tuple of str, in order; one event per
  batch read from one stream).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs

from brummer.contracts import BLOCKING, Cleanup, ThreadSafety, check_timeout, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.logs import LogEntryInput
from brummer.operations import Context
from brummer.process.callbacks import CallbackID, LogCallback, LogCallbacks
from brummer.process.child import LINGER_MAX, Child
from brummer.process.kill import KILL_WAIT, KillTarget, kill_trees
from brummer.process.ledger import ChildLedger
from brummer.process.model import (
    Process,
    ProcessInfo,
    ProcessStatus,
    RestartPolicy,
    _now,
    _Spec,
)
from brummer.process.restart import RestartScheduler
from brummer.process.scripts import Script, detect_package_manager, discover

__all__ = [
    "CHILD_ENV",
    "CallbackID",
    "LogCallback",
    "Process",
    "ProcessInfo",
    "ProcessManager",
    "ProcessStatus",
    "RestartPolicy",
]

_log = logging.getLogger("brummer.process")

CHILD_ENV: Mapping[str, str] = {
    "FORCE_COLOR": "1",
    "COLORTERM": "truecolor",
    "PYTHONUNBUFFERED": "1",
}
"""Added to every child's environment so colours and line-by-line output survive pipes."""


_SPAWN_WAIT = 5.0  # seconds a stop waits for a concurrent start to finish spawning
_EXIT_WAIT = KILL_WAIT + LINGER_MAX + 1.0  # after the tree is gone, the exit is reported
_ID_SEQ = itertools.count(1)
_ID_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class _EventBus(Protocol):
    def publish(self, event: Any) -> None: ...
    def publish_async(self, event: Any) -> None: ...


class _LogStore(Protocol):
    def add(
        self, process_id: str, process_name: str, content: str, is_error: bool = False
    ) -> Any: ...
    def add_batch(self, entries: Sequence[LogEntryInput]) -> Any: ...


def _new_id(name: str) -> str:
    slug = _ID_SAFE.sub("-", name).strip("-")[:40] or "process"
    return f"{slug}-{next(_ID_SEQ)}"


@contract(ThreadSafety.TS, cleanup=Cleanup.MANUAL)
class ProcessManager:
    """Starts, watches and stops the processes of one project.

    Thread safety: TS. Every public method may be called from any thread. Call
    :meth:`cleanup` before exit: it stops every process tree and joins every thread.

    Args:
        work_dir: the project folder (package.json, Makefile, ...).
        event_bus: receives PROCESS_STARTED, PROCESS_EXITED and LOG_LINE events.
        log_store: receives every line (``add_batch``).
        package_manager: npm, yarn, pnpm or bun; detected when None.
        env: added to every child's environment (after :data:`CHILD_ENV`).
        stop_timeout: default grace period between SIGTERM and SIGKILL, in seconds.
        ledger: records every child (pid, create time, group) on disk while its tree lives,
            so a later brummer can find the orphans if this one is killed
            (:func:`brummer.process.find_orphans`); None records nothing. The manager does
            not close it.
    """

    def __init__(
        self,
        work_dir: str | os.PathLike[str] = ".",
        *,
        event_bus: _EventBus | None = None,
        log_store: _LogStore | None = None,
        package_manager: str | None = None,
        env: Mapping[str, str] | None = None,
        stop_timeout: float = 10.0,
        ledger: ChildLedger | None = None,
    ) -> None:
        root = Path(work_dir).resolve()
        if not root.is_dir():
            raise BrummerError(
                "process",
                ErrorCode.INVALID_ARGUMENT,
                f"work_dir {str(root)!r} is not a folder",
                hint="pass the folder of your project",
            )
        self._work_dir = str(root)
        self._bus = event_bus
        self._store = log_store
        self._pm_override = (
            None if package_manager is None else detect_package_manager(root, package_manager)
        )
        self._env = _check_env(env)
        if ledger is not None and not isinstance(ledger, ChildLedger):
            raise _invalid(
                f"ledger must be a ChildLedger, not {type(ledger).__name__}",
                "pass brummer.process.ChildLedger() or None",
            )
        self._ledger = ledger
        self._stop_timeout = check_timeout("process", stop_timeout, name="stop_timeout") or 0.0
        self._add_lines: Callable[[str, str, list[str], bool], Any] | None = getattr(
            log_store, "add_lines", None
        )  # the store's fast path when it has one (brummer.logs.LogStore does)
        self._mark_exited: Callable[[str], Any] | None = getattr(
            log_store, "mark_process_exited", None
        )
        self._event_types: Any = None
        if event_bus is not None:
            from brummer.events import Event, EventType

            self._event_types = (Event, EventType)

        self._lock = threading.Lock()  # guards _processes, _closed; never held while calling out
        self._processes: dict[str, Process] = {}
        self._closed = False
        self._cleaned = threading.Event()

        self._callbacks = LogCallbacks()

        self._restarts = RestartScheduler(self._relaunch)

    # -- discovery -------------------------------------------------------------------------

    @property
    @contract(ThreadSafety.TS)
    def work_dir(self) -> str:
        """The project folder (absolute).

        Thread safety: TS. Immutable.
        """
        return self._work_dir

    @property
    @contract(ThreadSafety.TS)
    def package_manager(self) -> str:
        """npm, yarn, pnpm or bun: the override, else detected from the project files.

        Thread safety: TS. Detection reads files each time (they may change).
        """
        if self._pm_override is not None:
            return self._pm_override
        return detect_package_manager(self._work_dir)

    @contract(ThreadSafety.TS)
    def scripts(self) -> dict[str, Script]:
        """Everything runnable: package.json scripts, workspace scripts, detected commands.

        Thread safety: TS. Reads the project files on every call; a broken file leaves its
        scripts out (see :meth:`script_problems`) instead of raising.
        """
        return discover(self._work_dir, self._pm_override).scripts

    @contract(ThreadSafety.TS)
    def script_problems(self) -> list[str]:
        """Sentences describing project files that could not be read or parsed.

        Thread safety: TS.
        """
        return list(discover(self._work_dir, self._pm_override).problems)

    # -- starting --------------------------------------------------------------------------

    @contract(ThreadSafety.TS, timeout=30.0, guarantees="returns a Process with a unique id")
    def start_script(
        self,
        name: str,
        *,
        allow_duplicate: bool = False,
        restart: RestartPolicy | None = None,
        ctx: Context | None = None,
    ) -> Process:
        """Start a discovered script by name.

        Thread safety: TS. Two concurrent starts of the same script cannot both succeed
        unless ``allow_duplicate``.

        Raises:
            BrummerError: NOT_FOUND for an unknown script; ALREADY_EXISTS when it is
                running and ``allow_duplicate`` is false; INVALID_STATE after cleanup.
        """
        self._check_open()
        _check_ctx(ctx)
        if restart is not None and not isinstance(restart, RestartPolicy):
            raise BrummerError(
                "process",
                ErrorCode.INVALID_ARGUMENT,
                f"restart must be a RestartPolicy, not {type(restart).__name__}",
                hint="pass RestartPolicy(mode='on-failure') or None",
            )
        found = discover(self._work_dir, self._pm_override)
        script = found.scripts.get(name) if isinstance(name, str) else None
        if script is None:
            known = ", ".join(sorted(found.scripts)[:10]) or "none"
            hint = f"known scripts: {known}"
            if found.problems:
                hint += f"; problems: {'; '.join(found.problems)}"
            raise BrummerError(
                "process",
                ErrorCode.NOT_FOUND,
                f"no script named {name!r} in {self._work_dir}",
                hint=hint,
                context={"script": name},
            )
        spec = _Spec(script.name, script.command, None, script.cwd, {}, script.name, restart)
        return self._launch(spec, unique=not allow_duplicate)

    @contract(ThreadSafety.TS, timeout=30.0, guarantees="returns a Process with a unique id")
    def start_command(
        self,
        name: str,
        command: str,
        args: Sequence[str] = (),
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        ctx: Context | None = None,
    ) -> Process:
        """Start any command under ``name``.

        Thread safety: TS.

        Without ``args``, ``command`` is a shell command line (as package.json scripts are
        run); with ``args``, ``command`` is the executable and ``args`` are passed as-is.
        A command that cannot be started gives a FAILED process and a line in its log
        saying why; it does not raise.

        Raises:
            BrummerError: INVALID_ARGUMENT for an empty name or command, bad args, env or
                cwd; INVALID_STATE after cleanup.
        """
        self._check_open()
        _check_ctx(ctx)
        if not isinstance(name, str) or not name.strip():
            raise _invalid("process name must be a non-empty string", "give the process a name")
        if not isinstance(command, str) or not command.strip():
            raise _invalid(
                f"command for {name!r} is empty", "pass the command line to run, e.g. 'npm run dev'"
            )
        if (
            isinstance(args, str)
            or not isinstance(args, Sequence)
            or not all(isinstance(a, str) for a in args)
        ):
            raise _invalid(
                "args must be a sequence of strings",
                "pass args as a list, e.g. ['-m', 'http.server']",
            )
        if "\0" in command or any("\0" in a for a in args):
            raise _invalid(
                "command and args may not contain NUL characters",
                "remove the \\0 from the command line",
            )
        folder = Path(self._work_dir) if cwd is None else Path(self._work_dir, cwd).resolve()
        if not folder.is_dir():
            raise _invalid(f"cwd {str(folder)!r} is not a folder", "pass an existing folder")
        spec = _Spec(
            name,
            command,
            tuple(args) if args else None,
            str(folder),
            _check_env(env),
        )
        return self._launch(spec)

    def _launch(self, spec: _Spec, *, unique: bool = False, restarts: int = 0) -> Process:
        info = ProcessInfo(
            id=_new_id(spec.name),
            name=spec.name,
            command=spec.display,
            cwd=spec.cwd,
            status=ProcessStatus.PENDING,
            start_time=_now(),
            script=spec.script,
            restarts=restarts,
        )
        proc = Process(info, spec)
        with self._lock:
            if self._closed:
                raise _closed_error()
            if unique:
                for other in self._processes.values():
                    if other._spec.script == spec.script and other.is_running():
                        raise BrummerError(
                            "process",
                            ErrorCode.ALREADY_EXISTS,
                            f"script {spec.script!r} is already running as {other.id}",
                            hint="stop or restart it, or pass allow_duplicate=True for a second copy",
                            context={"process_id": other.id, "script": spec.script},
                        )
            self._processes[info.id] = proc
        child = Child(
            spec.command if spec.args is None else [spec.command, *spec.args],
            shell=spec.args is None,
            cwd=spec.cwd,
            env={**os.environ, **CHILD_ENV, **self._env, **spec.env},
            on_lines=lambda lines, is_error: self._deliver(proc, lines, is_error),
            on_exit=lambda code: self._on_exit(proc, code),
            name=spec.name,
        )
        try:
            child.start()
        except Exception as exc:  # OSError mostly; anything else must not leave it PENDING
            self._start_failed(proc, exc)
            return proc
        try:
            self._record_start(proc, child.pid)
            with proc._lock:
                proc._child = child
                proc._info = attrs.evolve(
                    proc._info,
                    status=ProcessStatus.RUNNING,
                    pid=child.pid,
                    pgid=child.pid,
                    start_time=_now(),
                )
            self._publish(
                "PROCESS_STARTED",
                proc,
                {
                    "name": spec.name,
                    "command": spec.display,
                    "pid": child.pid,
                    "script": spec.script,
                },
            )
        finally:
            proc._spawned.set()
            child.watch()  # lines and the exit are reported after PROCESS_STARTED
        return proc

    def _record_start(self, proc: Process, pid: int | None) -> None:
        if self._ledger is None or pid is None:
            return
        try:
            self._ledger.record_start(
                proc._info.id, pid, name=proc._info.name, command=proc._spec.display
            )
        except BrummerError as exc:  # the child runs anyway; only orphan tracking is lost
            _log.warning("could not record %s in the child ledger: %s", proc._info.id, exc)

    def _ledger_exit(self, proc: Process) -> None:
        if self._ledger is None:
            return
        try:
            self._ledger.record_exit(proc._info.id)
        except BrummerError as exc:
            _log.warning("could not update the child ledger for %s: %s", proc._info.id, exc)

    def _start_failed(self, proc: Process, exc: Exception) -> None:
        reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        what = proc._spec.command if proc._spec.args is None else proc._spec.display
        message = f"[brummer] cannot start {what!r}: {reason}"
        if isinstance(exc, FileNotFoundError):
            message += " — check that the command exists and is on PATH, and that cwd exists"
        elif isinstance(exc, PermissionError):
            message += " — check that the file is executable"
        self._deliver(proc, [message], True)
        info = proc._update(status=ProcessStatus.FAILED, end_time=_now())
        proc._spawned.set()
        self._finish(proc, info)

    # -- output ------------------------------------------------------------------------------

    def _deliver(self, proc: Process, lines: list[str], is_error: bool) -> None:
        pid, name = proc._info.id, proc._info.name
        store = self._store
        if store is not None:
            try:
                if self._add_lines is not None:
                    self._add_lines(pid, name, lines, is_error)
                else:
                    store.add_batch([LogEntryInput(pid, name, line, is_error) for line in lines])
            except Exception:
                _log.exception("log store refused %d lines of %s", len(lines), pid)
        self._callbacks.deliver(pid, lines, is_error)
        if self._bus is not None:
            event_cls, types = self._event_types
            with contextlib.suppress(Exception):
                self._bus.publish_async(
                    event_cls(
                        type=types.LOG_LINE,
                        data={"name": name, "is_error": is_error, "lines": tuple(lines)},
                        process_id=pid,
                    )
                )

    @contract(ThreadSafety.TS)
    def register_log_callback(self, cb: LogCallback) -> CallbackID:
        """Call ``cb(process_id, line, is_error)`` for every line from now on.

        Thread safety: TS. The callback runs on the reader thread of the process that
        wrote the line; lines of one stream arrive in order. An exception from it is logged
        and does not stop the reader.

        Raises:
            BrummerError: INVALID_ARGUMENT when ``cb`` is not callable.
        """
        return self._callbacks.register(cb)

    @contract(ThreadSafety.TS, timeout=5.0)
    def unregister_log_callback(self, cb_id: CallbackID) -> None:
        """Stop calling a callback; once this returns it receives no further line.

        Thread safety: TS. Waits (up to 5 s) for calls already running on other threads;
        called from inside the callback itself it does not wait.

        Raises:
            BrummerError: NOT_FOUND for an unknown id.
        """
        self._callbacks.unregister(cb_id)

    # -- exit and restart ------------------------------------------------------------------

    def _on_exit(self, proc: Process, code: int) -> None:
        proc._spawned.wait(_SPAWN_WAIT)
        with proc._lock:
            info = proc._info
            if info.stop_requested:
                status = ProcessStatus.STOPPED
            elif code == 0:
                status = ProcessStatus.SUCCESS
            else:
                status = ProcessStatus.FAILED
            info = proc._info = attrs.evolve(info, status=status, exit_code=code, end_time=_now())
        self._ledger_exit(proc)
        if status is ProcessStatus.FAILED:
            line = f"[brummer] process {info.name!r} failed (exit code {code})"
            if code == 127 and proc._spec.args is None:
                line += " — command not found: check the command and PATH"
            elif code < 0:
                line += f" — killed by signal {-code}"
            self._deliver(proc, [line], True)
        self._finish(proc, info)

    def _finish(self, proc: Process, info: ProcessInfo) -> None:
        if self._mark_exited is not None:
            try:
                self._mark_exited(info.id)
            except Exception:
                _log.exception("log store could not mark %s exited", info.id)
        self._publish(
            "PROCESS_EXITED",
            proc,
            {
                "name": info.name,
                "status": info.status.value,
                "exit_code": info.exit_code,
                "stopped": info.status is ProcessStatus.STOPPED,
            },
        )
        proc._done.set()
        policy = proc._spec.policy
        if policy is None or info.stop_requested or not policy.applies_to(info.status):
            return
        attempt = info.restarts + 1
        if attempt > policy.max_restarts:
            self._deliver(
                proc,
                [
                    f"[brummer] {info.name!r} ended {info.restarts + 1} times; not restarting it again"
                ],
                True,
            )
            return
        delay = policy.delay(attempt)
        if self._restarts.schedule(proc.id, proc._spec, attempt, delay):
            self._deliver(
                proc,
                [
                    f"[brummer] restarting {info.name!r} in {delay:g} s (restart {attempt} of {policy.max_restarts})"
                ],
                False,
            )

    def _relaunch(self, spec: _Spec, attempt: int) -> None:
        try:
            self._launch(spec, restarts=attempt)
        except BrummerError as exc:
            if exc.code is not ErrorCode.INVALID_STATE:  # INVALID_STATE: cleaned up meanwhile
                _log.warning("automatic restart of %s failed: %s", spec.name, exc)

    # -- stopping ----------------------------------------------------------------------------

    @contract(ThreadSafety.TS, timeout=BLOCKING, guarantees="returns when the whole tree is gone")
    def stop_process(self, process_id: str, timeout: float | None = None) -> None:
        """Stop a process and its whole tree: SIGTERM, ``timeout`` grace, SIGKILL, sweep.

        Thread safety: TS. Safe to call concurrently, also for the same process.

        The status becomes STOPPED (never overwritten later) unless the process had already
        ended, in which case this is a no-op apart from killing leftovers of its tree that
        still hold its output open. A pending automatic restart is cancelled.

        Args:
            timeout: grace period before SIGKILL; None uses the manager's ``stop_timeout``.

        Raises:
            BrummerError: NOT_FOUND for an unknown id; INVALID_ARGUMENT for a bad timeout;
                TIMEOUT if some process of the tree survived SIGKILL.
        """
        grace = check_timeout("process", timeout)
        proc = self._require(process_id)
        self._restarts.cancel(proc.id)
        self._request_stop(proc)
        self._kill([proc], self._stop_timeout if grace is None else grace)

    def _request_stop(self, proc: Process) -> None:
        with proc._lock:
            if not proc._info.status.finished and not proc._info.stop_requested:
                proc._info = attrs.evolve(proc._info, stop_requested=True)

    def _kill(self, procs: Sequence[Process], grace: float) -> None:
        for proc in procs:
            proc._spawned.wait(_SPAWN_WAIT)
        ledger = self._ledger
        children = [
            (proc, proc._child)
            for proc in procs
            if proc._child is not None
            and (
                proc.is_running()
                or proc._child.reading
                or (ledger is not None and proc.id in ledger)
                or _group_lives_on(proc._child.pid)  # background jobs outlived the child
            )
        ]
        if not children:
            return
        targets = [KillTarget(child.pid or 0, reaped=child.reaped) for _, child in children]
        result = kill_trees(targets, grace)
        if self._ledger is not None and not result.survivors:
            try:
                self._ledger.forget(proc.id for proc, _ in children)
            except BrummerError as exc:
                _log.warning("could not update the child ledger: %s", exc)
        for proc, child in children:
            if not child.on_monitor_thread():  # a callback stopping its own process
                proc._done.wait(_EXIT_WAIT)
        if result.survivors:
            raise BrummerError(
                "process",
                ErrorCode.TIMEOUT,
                f"{len(result.survivors)} process(es) survived SIGKILL: {list(result.survivors)}",
                hint="they are probably stuck in the kernel (uninterruptible I/O); check them with ps",
                context={"pids": result.survivors},
            )

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def restart_process(self, process_id: str) -> Process:
        """Stop the process if it runs (as :meth:`stop_process`), then start it again.

        Thread safety: TS. Works whether or not the process is running; the old process
        stays in the history and the new one has a new id.

        Raises:
            BrummerError: NOT_FOUND for an unknown id; INVALID_STATE after cleanup.
        """
        proc = self._require(process_id)
        self._check_open()
        self.stop_process(process_id)
        return self._launch(proc._spec)

    # -- queries -----------------------------------------------------------------------------

    @contract(ThreadSafety.TS)
    def get_process(self, process_id: str) -> Process | None:
        """The process with this id, or None.

        Thread safety: TS.
        """
        with self._lock:
            return self._processes.get(process_id)

    @contract(ThreadSafety.TS)
    def get_all_processes(self) -> list[Process]:
        """Every process started and not yet cleared (finished ones included), oldest first.

        Thread safety: TS. A new list each call.
        """
        with self._lock:
            return list(self._processes.values())

    @contract(ThreadSafety.TS)
    def clear_finished(self) -> int:
        """Forget finished processes whose output is fully read; return how many.

        Thread safety: TS.
        """
        with self._lock:
            gone = [
                pid
                for pid, proc in self._processes.items()
                if proc._done.is_set() and (proc._child is None or not proc._child.reading)
            ]
            for pid in gone:
                del self._processes[pid]
        return len(gone)

    # -- shutdown ----------------------------------------------------------------------------

    @contract(ThreadSafety.TS, timeout=30.0, guarantees="no child and no thread remains")
    def cleanup(self, timeout: float = 30.0) -> None:
        """Stop every process tree, cancel restarts and join every thread; idempotent.

        Thread safety: TS. ``timeout`` bounds the whole call; a second call waits for the
        first to finish. Afterwards starting anything raises INVALID_STATE.

        Raises:
            BrummerError: INVALID_ARGUMENT for a bad timeout; TIMEOUT when something could
                not be stopped or joined in time.
        """
        limit = check_timeout("process", timeout)
        deadline = time.monotonic() + (30.0 if limit is None else limit)
        with self._lock:
            first = not self._closed
            self._closed = True
            procs = list(self._processes.values())
        if not first:
            self._cleaned.wait(max(0.0, deadline - time.monotonic()))
            return
        try:
            self._shutdown(procs, deadline)
        finally:
            self._cleaned.set()

    def _shutdown(self, procs: list[Process], deadline: float) -> None:
        restarter_stopped = self._restarts.close(max(0.0, deadline - time.monotonic()))
        with self._lock:  # a restart may have slipped in before _closed was seen
            procs = list(self._processes.values())
        for proc in procs:
            self._request_stop(proc)
        remaining = max(0.0, deadline - time.monotonic())
        grace = min(self._stop_timeout, remaining / 2)
        problem: BrummerError | None = None
        try:
            self._kill(procs, grace)
        except BrummerError as exc:
            problem = exc
        unjoined: list[str] = []
        for proc in procs:
            child = proc._child
            if child is None or child.on_monitor_thread():  # cleanup from a log callback
                continue
            child.abandon()
            if not child.join(max(0.0, deadline - time.monotonic())):
                unjoined.append(proc.id)
        if problem is not None:
            raise problem
        if unjoined or not restarter_stopped:
            raise BrummerError(
                "process",
                ErrorCode.TIMEOUT,
                f"cleanup did not finish in time; still reading: {unjoined}",
                hint="give cleanup a longer timeout",
                context={"process_ids": unjoined},
            )

    # -- helpers -------------------------------------------------------------------------------

    def _require(self, process_id: str) -> Process:
        proc = self.get_process(process_id) if isinstance(process_id, str) else None
        if proc is None:
            raise BrummerError(
                "process",
                ErrorCode.NOT_FOUND,
                f"no process with id {process_id!r}",
                hint="list processes with get_all_processes(); ids change on restart",
                context={"process_id": process_id},
            )
        return proc

    def _check_open(self) -> None:
        if self._closed:
            raise _closed_error()

    def _publish(self, kind: str, proc: Process, data: dict[str, Any]) -> None:
        if self._bus is None:
            return
        event_cls, types = self._event_types
        try:
            self._bus.publish(event_cls(type=getattr(types, kind), data=data, process_id=proc.id))
        except Exception as exc:
            _log.warning("could not publish %s for %s: %s", kind, proc.id, exc)


def _check_env(env: Mapping[str, str] | None) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and k and "=" not in k and "\0" not in v
        for k, v in env.items()
    ):
        raise _invalid(
            "env must map variable names to string values",
            "pass e.g. {'PORT': '3000'}; names may not contain '='",
        )
    return dict(env)


def _check_ctx(ctx: Context | None) -> None:
    """Refuse to start under a cancelled or expired context (TIMEOUT / INVALID_STATE)."""
    if ctx is None:
        return
    if not isinstance(ctx, Context):
        raise _invalid(
            f"ctx must be a brummer.operations.Context, not {type(ctx).__name__}",
            "pass Context.background() (or a derived context) or None",
        )
    ctx.raise_if_done()


def _invalid(message: str, hint: str) -> BrummerError:
    return BrummerError("process", ErrorCode.INVALID_ARGUMENT, message, hint=hint)


def _closed_error() -> BrummerError:
    return BrummerError(
        "process",
        ErrorCode.INVALID_STATE,
        "the process manager was cleaned up",
        hint="create a new ProcessManager",
    )


def _group_lives_on(pgid: int | None) -> bool:
    """Whether the process group a finished child led still has members.

    kill_trees only signals such a group when no process holds its id as a pid, so a
    reused pid is never mistaken for the child's group.
    """
    if not pgid:
        return False
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    return True

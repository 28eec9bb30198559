"""Conformance suite for ProcessManager implementations (API.md §6).

:func:`check_process_manager` runs a hypothesis ``RuleBasedStateMachine`` against a fresh
manager per example: rules start several long-running commands at once from threads released
by a Barrier, stop, restart and look up processes (also concurrently), and a sequential model
says what every process's status must be. Checked:

- ids are unique, even for starts in the same instant;
- a started process is listed and RUNNING until stopped; after ``stop_process`` returns it
  is STOPPED and stays so; stopping it again is a no-op;
- ``restart_process`` gives a new RUNNING process with a new id and leaves the old one STOPPED
  in the history;
- unknown ids: ``stop_process``/``restart_process`` raise NOT_FOUND, ``get_process`` is None;
- ``cleanup()`` stops everything, is idempotent, and afterwards starting raises INVALID_STATE;
- nothing is left running: no child process and no thread survives ``cleanup()``.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any

import hypothesis
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from brummer.contracts import BLOCKING, ThreadSafety, contract
from brummer.errors import ErrorCode
from brummer.testing.conformance._harness import (
    expect_error,
    fail,
    no_thread_leak,
    run_property,
    run_together,
    suite_settings,
)

__all__ = ["check_process_manager"]

# Typed through a variable: older hypothesis releases leave this function unannotated,
# newer ones annotate it, and a `type: ignore` would be wrong for one or the other.
_run_machine: Callable[..., None] = run_state_machine_as_test

_SLEEPER = "import time\nwhile True:\n    time.sleep(3600)\n"
_GRACE = 2.0


def _status(proc: Any) -> str:
    return str(getattr(proc.status, "name", proc.status)).upper()


def _children() -> set[int]:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency of brummer
        return set()
    try:
        return {
            p.pid
            for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE
        }
    except psutil.Error:
        return set()


class _Machine(RuleBasedStateMachine):
    factory: Callable[[str], Any]

    processes = Bundle("processes")

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory()
        self.children_before = _children()
        self.threads_before = set(threading.enumerate())
        self.pm = type(self).factory(self._dir.name)
        self.model: dict[str, str] = {}  # id -> RUNNING | STOPPED
        self.names = 0

    def _start_one(self, name: str) -> Any:
        return self.pm.start_command(name, sys.executable, ["-c", _SLEEPER])

    @rule(target=processes, count=st.integers(1, 3))
    def start_together(self, count: int) -> Any:
        started: list[Any] = []
        guard = threading.Lock()
        self.names += 1
        base = f"conf{self.names}"

        def starter(k: int) -> Callable[[], None]:
            def run() -> None:
                proc = self._start_one(f"{base}-{k}")
                with guard:
                    started.append(proc)

            return run

        run_together([starter(k) for k in range(count)], what="concurrent starts")
        for proc in started:
            if proc.id in self.model:
                raise fail(f"two starts returned the same id {proc.id!r}")
            self.model[proc.id] = "RUNNING"
        return started[0].id

    @rule(process_id=processes)
    def stop(self, process_id: str) -> None:
        self.pm.stop_process(process_id, _GRACE)
        self.model[process_id] = "STOPPED"

    @rule(process_id=processes)
    def stop_twice_at_once(self, process_id: str) -> None:
        run_together(
            [lambda: self.pm.stop_process(process_id, _GRACE)] * 2, what="concurrent stops"
        )
        self.model[process_id] = "STOPPED"

    @rule(target=processes, process_id=processes)
    def restart(self, process_id: str) -> Any:
        new = self.pm.restart_process(process_id)
        if new.id == process_id or new.id in self.model:
            raise fail(
                f"restart_process({process_id!r}) returned the id {new.id!r}, which is not new"
            )
        self.model[process_id] = "STOPPED"
        self.model[new.id] = "RUNNING"
        return new.id

    @rule()
    def unknown_ids(self) -> None:
        if self.pm.get_process("conformance-no-such-process") is not None:
            raise fail("get_process of an unknown id did not return None")
        expect_error(
            ErrorCode.NOT_FOUND,
            lambda: self.pm.stop_process("conformance-no-such-process"),
            "stop_process of an unknown id",
            builtin=LookupError,
        )
        expect_error(
            ErrorCode.NOT_FOUND,
            lambda: self.pm.restart_process("conformance-no-such-process"),
            "restart_process of an unknown id",
        )

    @invariant()
    def statuses_agree(self) -> None:
        listed = {p.id: p for p in self.pm.get_all_processes()}
        for process_id, want in self.model.items():
            proc = listed.get(process_id)
            if proc is None:
                raise fail(f"process {process_id} is missing from get_all_processes()")
            if self.pm.get_process(process_id) is None:
                raise fail(f"get_process({process_id!r}) returned None for a known process")
            got = _status(proc)
            if want == "STOPPED" and got != "STOPPED":
                raise fail(f"process {process_id} was stopped but its status is {got}")
            if want == "RUNNING" and got not in ("RUNNING", "PENDING"):
                raise fail(f"process {process_id} should be running but its status is {got}")
            if want == "RUNNING" and not proc.is_running():
                raise fail(f"process {process_id} should be running but is_running() is False")

    def teardown(self) -> None:
        try:
            self.pm.cleanup(30.0)
            self.pm.cleanup(30.0)  # idempotent
            for proc in self.pm.get_all_processes():
                if proc.is_running():
                    raise fail(f"process {proc.id} still runs after cleanup(): {_status(proc)}")
            expect_error(
                ErrorCode.INVALID_STATE,
                lambda: self._start_one("late"),
                "start_command after cleanup()",
            )
            left = _children() - self.children_before
            if left:
                raise fail(f"child processes {sorted(left)} survive cleanup()")
        finally:
            self._dir.cleanup()


@contract(ThreadSafety.TS, timeout=BLOCKING)
def check_process_manager(
    factory: Callable[[str], Any], *, settings: hypothesis.settings | None = None
) -> None:
    """Judge the managers ``factory(work_dir)`` makes by the ProcessManager contract (API.md §6).

    Thread safety: TS. Each example gets a fresh manager in a fresh temporary folder and
    ends with ``cleanup()``; the commands started are Python processes that sleep until
    stopped.

    Args:
        factory: called with a folder path; returns a manager (``ProcessManager`` itself
            will do; a mock may ignore the commands).
        settings: hypothesis settings (default: 5 examples of at most 8 steps).

    Raises:
        AssertionError: ``ConformanceError`` describing the first broken guarantee.
    """
    chosen = suite_settings(settings, max_examples=5)
    if settings is None:
        chosen = hypothesis.settings(chosen, stateful_step_count=8)
    machine = type("ProcessManagerMachine", (_Machine,), {"factory": staticmethod(factory)})
    with no_thread_leak("process manager"):
        _check_script(machine)
        run_property(lambda: _run_machine(machine, settings=chosen))


def _check_script(machine: type[_Machine]) -> None:
    """One fixed walk through every rule, so each is exercised whatever hypothesis draws."""
    m = machine()
    try:
        first = m.start_together(2)
        m.statuses_agree()
        m.stop(first)
        m.statuses_agree()
        m.stop(first)  # stopping a stopped process is a no-op
        m.statuses_agree()
        second = m.restart(first)
        m.statuses_agree()
        m.stop_twice_at_once(second)
        m.statuses_agree()
        m.unknown_ids()
        m.statuses_agree()
    finally:
        m.teardown()

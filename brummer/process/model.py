"""The values of the process component: statuses, snapshots, restart policies, handles.

:class:`Process` is the live handle the manager hands out; everything else is a frozen
value. The manager (``brummer.process.manager``) is the only writer of a ``Process``.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from brummer.contracts import BLOCKING, ThreadSafety, check_timeout, contract
from brummer.errors import BrummerError, ErrorCode

if TYPE_CHECKING:
    from brummer.process.child import Child

__all__ = ["Process", "ProcessInfo", "ProcessStatus", "ProcessView", "RestartPolicy"]


def _now() -> datetime:
    return datetime.now(UTC)


@contract(ThreadSafety.TS)
class ProcessStatus(enum.Enum):
    """Where a process is in its life.

    Thread safety: TS (immutable enum).
    """

    PENDING = "pending"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    SUCCESS = "success"

    @property
    @contract(ThreadSafety.TS)
    def finished(self) -> bool:
        """True for STOPPED, FAILED and SUCCESS.

        Thread safety: TS.
        """
        return self in _FINAL


_FINAL = frozenset({ProcessStatus.STOPPED, ProcessStatus.FAILED, ProcessStatus.SUCCESS})


@contract(ThreadSafety.TS)
@attrs.frozen
class ProcessInfo:
    """A consistent snapshot of one process.

    Thread safety: TS (frozen value object).

    Attributes:
        pid: the child's pid, once spawned; ``pgid`` is its process group (the same number:
            every child starts a new session).
        exit_code: the exit code, or minus the signal number that ended it; None while
            running or when the command could not be started.
        script: the script name it was started from (``start_script``), else None.
        restarts: how many automatic restarts led to this process.
        stop_requested: a stop was asked for; the final status is then STOPPED.
    """

    id: str
    name: str
    command: str
    cwd: str
    status: ProcessStatus
    start_time: datetime
    pid: int | None = None
    pgid: int | None = None
    exit_code: int | None = None
    end_time: datetime | None = None
    script: str | None = None
    restarts: int = 0
    stop_requested: bool = False


_MODES = ("no", "on-failure", "always")


def _check_mode(_: object, __: object, value: str) -> None:
    if value not in _MODES:
        raise BrummerError(
            "process",
            ErrorCode.INVALID_ARGUMENT,
            f"unknown restart mode {value!r}",
            hint=f"use one of {', '.join(_MODES)}",
        )


def _check_non_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise BrummerError(
            "process",
            ErrorCode.INVALID_ARGUMENT,
            f"restart policy {attribute.name} must be a number ≥ 0, not {value!r}",
            hint="pass a non-negative number",
        )


@contract(ThreadSafety.TS)
@attrs.frozen
class RestartPolicy:
    """When a script is started again by itself after it ended.

    Thread safety: TS (frozen value object).

    ``mode``: ``no``; ``on-failure`` (after FAILED); ``always`` (after FAILED or SUCCESS).
    A process the user stopped is never restarted. Restart *n* (1-based) waits
    ``min(backoff_max, backoff_initial * 2 ** (n - 1))`` seconds; after ``max_restarts``
    automatic restarts in a row it gives up and says so in the log.
    """

    mode: str = attrs.field(default="no", validator=_check_mode)
    max_restarts: int = attrs.field(default=5, validator=_check_non_negative)
    backoff_initial: float = attrs.field(default=1.0, validator=_check_non_negative)
    backoff_max: float = attrs.field(default=30.0, validator=_check_non_negative)

    @contract(ThreadSafety.TS, guarantees="pure")
    def delay(self, attempt: int) -> float:
        """Seconds to wait before automatic restart number ``attempt`` (1-based).

        Thread safety: TS. Pure.
        """
        exponent = min(max(attempt - 1, 0), 60)
        return float(min(self.backoff_max, self.backoff_initial * 2**exponent))

    @contract(ThreadSafety.TS, guarantees="pure")
    def applies_to(self, status: ProcessStatus) -> bool:
        """Whether a process that ended with ``status`` (not by a user stop) is restarted.

        Thread safety: TS. Pure.
        """
        if self.mode == "always":
            return status in (ProcessStatus.FAILED, ProcessStatus.SUCCESS)
        return self.mode == "on-failure" and status is ProcessStatus.FAILED


@attrs.frozen
class _Spec:
    """Everything needed to start (and restart) a process."""

    name: str
    command: str
    args: tuple[str, ...] | None  # None: ``command`` is a shell command line
    cwd: str
    env: Mapping[str, str]
    script: str | None = None
    policy: RestartPolicy | None = None

    @property
    def display(self) -> str:
        if self.args is None:
            return self.command
        return " ".join([self.command, *self.args])


@contract(ThreadSafety.TS)
class ProcessView:
    """The read side of a process handle: every field of its :class:`ProcessInfo`, and waiting.

    Thread safety: TS. Reads are atomic (one frozen ``ProcessInfo`` swapped whole by the
    owner); :meth:`snapshot` returns all fields at once, consistently. Shared by
    :class:`Process` and the test double ``brummer.testing.MockProcess``.
    """

    def __init__(self, info: ProcessInfo) -> None:
        self._info = info
        self._done = threading.Event()  # set by the owner once the final status is recorded

    @property
    @contract(ThreadSafety.TS)
    def id(self) -> str:
        """The unique process id.

        Thread safety: TS. Immutable.
        """
        return self._info.id

    @property
    @contract(ThreadSafety.TS)
    def name(self) -> str:
        """The name it was started under (the script name for scripts).

        Thread safety: TS. Immutable.
        """
        return self._info.name

    @property
    @contract(ThreadSafety.TS)
    def command(self) -> str:
        """The command line that runs.

        Thread safety: TS. Immutable.
        """
        return self._info.command

    @property
    @contract(ThreadSafety.TS)
    def cwd(self) -> str:
        """The folder it runs in.

        Thread safety: TS. Immutable.
        """
        return self._info.cwd

    @property
    @contract(ThreadSafety.TS)
    def pid(self) -> int | None:
        """The child's pid (also its process group id), None until spawned.

        Thread safety: TS.
        """
        return self._info.pid

    @property
    @contract(ThreadSafety.TS)
    def status(self) -> ProcessStatus:
        """The current status.

        Thread safety: TS.
        """
        return self._info.status

    @property
    @contract(ThreadSafety.TS)
    def exit_code(self) -> int | None:
        """Exit code (minus the signal number when killed by one); None while running.

        Thread safety: TS.
        """
        return self._info.exit_code

    @property
    @contract(ThreadSafety.TS)
    def start_time(self) -> datetime:
        """When it was started (UTC).

        Thread safety: TS.
        """
        return self._info.start_time

    @property
    @contract(ThreadSafety.TS)
    def end_time(self) -> datetime | None:
        """When it ended (UTC), None while running.

        Thread safety: TS.
        """
        return self._info.end_time

    @contract(ThreadSafety.TS)
    def is_running(self) -> bool:
        """True until the process has a final status (PENDING counts as running).

        Thread safety: TS.
        """
        return not self._info.status.finished

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def wait(self, timeout: float | None = None) -> ProcessStatus:
        """Wait up to ``timeout`` seconds (None: without limit) for a final status.

        Thread safety: TS. Returns the status it has when the wait ends; never raises for
        an expired timeout.

        Raises:
            BrummerError: INVALID_ARGUMENT for a negative or non-finite timeout.
        """
        self._done.wait(check_timeout("process", timeout))
        return self._info.status

    @contract(ThreadSafety.TS)
    def snapshot(self) -> ProcessInfo:
        """All fields at once, as a frozen copy.

        Thread safety: TS.
        """
        return self._info


@contract(ThreadSafety.TS)
class Process(ProcessView):
    """A live handle on one started process; every read is atomic.

    Thread safety: TS. Reads return the current value; :meth:`snapshot` returns all of
    them at once, consistently.
    """

    def __init__(self, info: ProcessInfo, spec: _Spec) -> None:
        super().__init__(info)
        self._lock = threading.Lock()  # guards _info and _child; never held while calling out
        self._spec = spec
        self._child: Child | None = None
        self._spawned = threading.Event()  # the spawn attempt is over (either way)

    def __repr__(self) -> str:
        info = self._info
        return f"<Process {info.id} {info.status.value} pid={info.pid}>"

    # -- writes (manager only) -----------------------------------------------------------

    def _update(self, **changes: Any) -> ProcessInfo:
        with self._lock:
            self._info = attrs.evolve(self._info, **changes)
            return self._info

"""Concurrency contracts and the lock that goes with each level.

Every public class and method of brummer says, machine-readably, how it may be used from
several threads (:func:`contract`) and the same words appear in its docstring. Each level
maps to a concrete lock (:func:`lock_for`):

- TS → :class:`TSLock`, a reentrant mutex;
- RS → :class:`RWLock`, many readers or one writer, writers never starved;
- ST → :class:`STGuard`, which refuses a second thread instead of corrupting state.

Every acquire takes an optional timeout and raises ``BrummerError(TIMEOUT)`` when it
expires; bad timeouts (negative, NaN) raise ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType

from brummer._contract_marks import (
    BLOCKING,
    NON_BLOCKING,
    Cleanup,
    Contract,
    LockRequirement,
    ThreadSafety,
    TimeoutBehaviour,
    contract,
    contract_of,
)
from brummer.errors import BrummerError, ErrorCode

__all__ = [
    "BLOCKING",
    "NON_BLOCKING",
    "Cleanup",
    "Contract",
    "LockRequirement",
    "RWLock",
    "STGuard",
    "TSLock",
    "ThreadSafety",
    "TimeoutBehaviour",
    "check_timeout",
    "contract",
    "contract_of",
    "lock_for",
]


@contract(ThreadSafety.TS, guarantees="pure")
def check_timeout(component: str, timeout: float | None, *, name: str = "timeout") -> float | None:
    """Validate a timeout argument: None (wait forever) or a finite number ≥ 0.

    Thread safety: TS. Pure.

    Returns the timeout as a float, capped at ``threading.TIMEOUT_MAX`` (about 292 years),
    the most that the lock and condition waits of the standard library accept.

    Raises:
        BrummerError: INVALID_ARGUMENT for negative, NaN, infinite or non-numeric values.
    """
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise BrummerError(
            component,
            ErrorCode.INVALID_ARGUMENT,
            f"{name} must be seconds or None, not {timeout!r}",
            hint="pass a number of seconds (float) or None to wait without limit",
        )
    if math.isnan(timeout) or timeout < 0 or math.isinf(timeout):
        raise BrummerError(
            component,
            ErrorCode.INVALID_ARGUMENT,
            f"{name} must be a finite number ≥ 0, not {timeout!r}",
            hint="pass a non-negative number of seconds or None to wait without limit",
        )
    return min(float(timeout), threading.TIMEOUT_MAX)


def _timed_out(component: str, what: str, timeout: float | None) -> BrummerError:
    return BrummerError(
        component,
        ErrorCode.TIMEOUT,
        f"could not acquire {what} within {timeout} s",
        hint="another thread holds it; retry, raise the timeout, or look for a lock held across slow work",
        context={"timeout": timeout},
    )


@contract(ThreadSafety.TS, cleanup=Cleanup.RAII)
class TSLock:
    """A reentrant mutex (``threading.RLock``) whose acquire raises on timeout.

    Thread safety: TS. Use it as ``with lock:``; the owning thread may re-enter.
    """

    __slots__ = ("_lock", "_name")

    def __init__(self, name: str = "lock") -> None:
        self._lock = threading.RLock()
        self._name = name

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def acquire(self, timeout: float | None = None) -> None:
        """Take the lock, waiting up to ``timeout`` seconds (None: without limit).

        Thread safety: TS.

        Raises:
            BrummerError: TIMEOUT when not had in time; INVALID_ARGUMENT for a bad timeout.
        """
        timeout = check_timeout("contracts", timeout)
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            raise _timed_out("contracts", f"TSLock {self._name!r}", timeout)

    @contract(ThreadSafety.TS)
    def release(self) -> None:
        """Release one level of ownership.

        Thread safety: TS. Only the owning thread may release.

        Raises:
            BrummerError: INVALID_STATE when the calling thread does not own the lock.
        """
        try:
            self._lock.release()
        except RuntimeError as exc:
            raise BrummerError(
                "contracts",
                ErrorCode.INVALID_STATE,
                f"TSLock {self._name!r} released by a thread that does not hold it",
                hint="release only what this thread acquired",
                cause=exc,
            ) from exc

    def __enter__(self) -> TSLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()

    def __repr__(self) -> str:
        return f"<TSLock {self._name!r}>"


@contract(ThreadSafety.RS, cleanup=Cleanup.RAII)
class RWLock:
    """A reader-writer lock: many readers, or one writer; writers are not starved.

    Thread safety: RS. ``with lock.read():`` for readers, ``with lock.write():`` for the writer.

    Guarantees:
    - once a writer waits, new readers queue behind it (a reader that already holds the
      lock may re-enter, since making it wait would deadlock);
    - the writer may take the read or write lock again;
    - a thread holding only a read lock that asks for the write lock gets
      ``BrummerError(CONCURRENCY)`` at once (the upgrade would deadlock);
    - every acquire takes a timeout and raises ``BrummerError(TIMEOUT)`` when it expires.
    """

    def __init__(self, name: str = "rwlock") -> None:
        self._name = name
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)  # state below is guarded by _mutex
        self._readers: dict[int, int] = {}  # thread ident → read depth
        self._writer: int | None = None  # thread ident holding the write lock
        self._write_depth = 0
        self._writers_waiting = 0

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def acquire_read(self, timeout: float | None = None) -> None:
        """Take the read lock, waiting up to ``timeout`` seconds.

        Thread safety: TS.

        Raises:
            BrummerError: TIMEOUT when not had in time; INVALID_ARGUMENT for a bad timeout.
        """
        timeout = check_timeout("contracts", timeout)
        me = threading.get_ident()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._writer == me or self._readers.get(me, 0) > 0:
                self._readers[me] = self._readers.get(me, 0) + 1
                return
            while self._writer is not None or self._writers_waiting:
                if not self._wait(deadline):
                    raise _timed_out("contracts", f"read lock of {self._name!r}", timeout)
            self._readers[me] = 1

    @contract(ThreadSafety.TS)
    def release_read(self) -> None:
        """Release one level of the calling thread's read lock.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_STATE when the thread holds no read lock.
        """
        me = threading.get_ident()
        with self._cond:
            depth = self._readers.get(me, 0)
            if depth == 0:
                raise BrummerError(
                    "contracts",
                    ErrorCode.INVALID_STATE,
                    f"read lock of {self._name!r} released but not held",
                    hint="release only what this thread acquired",
                )
            if depth == 1:
                del self._readers[me]
                if not self._readers:
                    self._cond.notify_all()
            else:
                self._readers[me] = depth - 1

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def acquire_write(self, timeout: float | None = None) -> None:
        """Take the write lock, waiting up to ``timeout`` seconds.

        Thread safety: TS.

        Raises:
            BrummerError: CONCURRENCY when the thread holds only a read lock (upgrade);
                TIMEOUT when not had in time; INVALID_ARGUMENT for a bad timeout.
        """
        timeout = check_timeout("contracts", timeout)
        me = threading.get_ident()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._writer == me:
                self._write_depth += 1
                return
            if self._readers.get(me, 0) > 0:
                raise BrummerError(
                    "contracts",
                    ErrorCode.CONCURRENCY,
                    f"thread holds the read lock of {self._name!r} and asked for the write lock",
                    hint="release the read lock first, or take the write lock from the start",
                )
            self._writers_waiting += 1
            try:
                while self._writer is not None or self._readers:
                    if not self._wait(deadline):
                        raise _timed_out("contracts", f"write lock of {self._name!r}", timeout)
            finally:
                self._writers_waiting -= 1
                if self._writers_waiting == 0:
                    self._cond.notify_all()  # readers queued behind us may go now
            self._writer = me
            self._write_depth = 1

    @contract(ThreadSafety.TS)
    def release_write(self) -> None:
        """Release one level of the write lock.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_STATE when the thread does not hold the write lock.
        """
        with self._cond:
            if self._writer != threading.get_ident():
                raise BrummerError(
                    "contracts",
                    ErrorCode.INVALID_STATE,
                    f"write lock of {self._name!r} released but not held",
                    hint="release only what this thread acquired",
                )
            self._write_depth -= 1
            if self._write_depth == 0:
                self._writer = None
                self._cond.notify_all()

    @contextmanager
    def _held(self, write: bool, timeout: float | None) -> Iterator[None]:
        if write:
            self.acquire_write(timeout)
        else:
            self.acquire_read(timeout)
        try:
            yield
        finally:
            if write:
                self.release_write()
            else:
                self.release_read()

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def read(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """Context manager holding the read lock: ``with lock.read(): ...``.

        Thread safety: TS. Acquired on entry; TIMEOUT raised from ``with`` on expiry.
        """
        return self._held(False, timeout)

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def write(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """Context manager holding the write lock: ``with lock.write(): ...``.

        Thread safety: TS. Acquired on entry; TIMEOUT or CONCURRENCY raised from ``with``.
        """
        return self._held(True, timeout)

    @property
    @contract(ThreadSafety.TS)
    def readers(self) -> int:
        """Number of threads holding the read lock now (approximate: may change at once).

        Thread safety: TS.
        """
        with self._mutex:
            return len(self._readers)

    @property
    @contract(ThreadSafety.TS)
    def write_locked(self) -> bool:
        """Whether some thread holds the write lock now (approximate).

        Thread safety: TS.
        """
        with self._mutex:
            return self._writer is not None

    def _wait(self, deadline: float | None) -> bool:
        if deadline is None:
            self._cond.wait()
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self._cond.wait(left)
        return True  # the caller re-checks its predicate; the next call sees the deadline

    def __repr__(self) -> str:
        return f"<RWLock {self._name!r} readers={len(self._readers)} writer={self._writer is not None}>"


@contract(ThreadSafety.ST, cleanup=Cleanup.AUTOMATIC)
class STGuard:
    """Guard of a single-threaded object: the first thread to enter owns it.

    Thread safety: ST. ``with guard:`` from the owning thread (re-entry allowed);
    from any other thread it raises ``BrummerError(CONCURRENCY)`` instead of letting
    two threads corrupt the object. :meth:`transfer` hands ownership on explicitly.
    """

    __slots__ = ("_depth", "_lock", "_name", "_owner")

    def __init__(self, name: str = "single-threaded object") -> None:
        self._name = name
        self._lock = threading.Lock()  # guards _owner and _depth
        self._owner: int | None = None
        self._depth = 0

    @contract(ThreadSafety.TS)
    def check(self) -> None:
        """Claim the guard for the calling thread if unowned, else verify the caller owns it.

        Thread safety: TS (that is its job).

        Raises:
            BrummerError: CONCURRENCY when another thread owns it.
        """
        with self._lock:
            self._claim()

    def _claim(self) -> None:
        """Take ownership if unowned, else check the caller owns it; ``_lock`` held."""
        me = threading.get_ident()
        if self._owner is None:
            self._owner = me
        elif self._owner != me:
            raise BrummerError(
                "contracts",
                ErrorCode.CONCURRENCY,
                f"{self._name} is single-threaded (ST) and is owned by another thread",
                hint="call it only from the thread that created/first used it, or hand it over with transfer()",
                context={"owner": self._owner, "caller": me},
            )

    @contract(ThreadSafety.TS)
    def transfer(self, thread: threading.Thread | None = None) -> None:
        """Give ownership to ``thread`` (None: unowned; the next user claims it).

        Thread safety: TS. Refused while the guard is entered.

        Raises:
            BrummerError: INVALID_STATE when called while a ``with guard:`` block is active.
        """
        with self._lock:
            if self._depth:
                raise BrummerError(
                    "contracts",
                    ErrorCode.INVALID_STATE,
                    f"{self._name} cannot change owner while in use",
                    hint="transfer ownership after leaving the with block",
                )
            self._owner = None if thread is None else thread.ident

    @property
    @contract(ThreadSafety.TS)
    def owner(self) -> int | None:
        """Ident of the owning thread, or None.

        Thread safety: TS.
        """
        return self._owner

    def __enter__(self) -> STGuard:
        with self._lock:  # claim and count in one step: transfer() cannot slip in between
            self._claim()
            self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._depth -= 1


@contract(ThreadSafety.TS)
def lock_for(level: ThreadSafety, name: str = "lock") -> TSLock | RWLock | STGuard:
    """The concrete lock for a thread-safety level: TS → TSLock, RS → RWLock, ST → STGuard.

    Thread safety: TS. Returns a new lock each call.

    Raises:
        BrummerError: INVALID_ARGUMENT for anything that is not a ThreadSafety.
    """
    if level is ThreadSafety.TS:
        return TSLock(name)
    if level is ThreadSafety.RS:
        return RWLock(name)
    if level is ThreadSafety.ST:
        return STGuard(name)
    raise BrummerError(
        "contracts",
        ErrorCode.INVALID_ARGUMENT,
        f"not a thread-safety level: {level!r}",
        hint="pass ThreadSafety.TS, ThreadSafety.RS or ThreadSafety.ST",
    )

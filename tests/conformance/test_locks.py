"""check_locks against the real lock wrappers, and against broken locks it must reject."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from brummer.contracts import RWLock, STGuard, ThreadSafety, TSLock, contract, lock_for
from brummer.errors import BrummerError, ErrorCode
from brummer.testing.conformance import ConformanceError, check_locks


@pytest.mark.parametrize(
    "factory",
    [TSLock, RWLock, STGuard, lambda: lock_for(ThreadSafety.TS), lambda: lock_for(ThreadSafety.RS)],
    ids=["TSLock", "RWLock", "STGuard", "lock_for-TS", "lock_for-RS"],
)
def test_real_locks_conform(factory: Callable[[], Any]) -> None:
    check_locks(factory)


@contract(ThreadSafety.TS)
class NoExclusionLock:
    """Broken: every acquire succeeds at once. Thread safety: TS (claims to)."""

    def acquire(self, timeout: float | None = None) -> None:
        if timeout is not None and (timeout != timeout or timeout < 0):
            raise BrummerError("t", ErrorCode.INVALID_ARGUMENT, "bad timeout")

    def release(self) -> None:
        return

    def __enter__(self) -> NoExclusionLock:
        return self

    def __exit__(self, *exc: object) -> None:
        return


@contract(ThreadSafety.TS)
class NoTimeoutLock(TSLock):
    """Broken: a timeout is ignored and the caller waits as long as it takes."""

    def acquire(self, timeout: float | None = None) -> None:
        super().acquire(None if timeout is not None and timeout >= 0 else timeout)


@contract(ThreadSafety.RS)
class SerialRWLock:
    """Broken as RS: one mutex for readers and writers, so readers never share."""

    def __init__(self) -> None:
        self._lock = TSLock()

    @contextmanager
    def _held(self, timeout: float | None) -> Iterator[None]:
        self._lock.acquire(timeout)
        try:
            yield
        finally:
            self._lock.release()

    def read(self, timeout: float | None = None) -> Any:
        return self._held(timeout)

    def write(self, timeout: float | None = None) -> Any:
        return self._held(timeout)


@contract(ThreadSafety.RS)
class WaitingUpgradeRWLock(RWLock):
    """Broken: asking for the write lock while reading waits (and times out) instead of refusing."""

    def acquire_write(self, timeout: float | None = None) -> None:
        if self._readers.get(threading.get_ident()):
            raise BrummerError("t", ErrorCode.TIMEOUT, "waited for the upgrade")
        super().acquire_write(timeout)


@contract(ThreadSafety.ST)
class LaxGuard:
    """Broken ST guard: lets any thread in."""

    def __enter__(self) -> LaxGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        return


@pytest.mark.parametrize(
    ("factory", "complaint"),
    [
        (NoExclusionLock, "lost updates|mutual exclusion"),
        (NoTimeoutLock, "did not finish|took|but it succeeded"),
        (SerialRWLock, "second reader could not enter"),
        (WaitingUpgradeRWLock, "upgrade"),
        (LaxGuard, "second thread"),
    ],
    ids=["no-exclusion", "no-timeout", "serial-readers", "waiting-upgrade", "lax-guard"],
)
def test_broken_locks_are_caught(factory: Callable[[], Any], complaint: str) -> None:
    with pytest.raises(ConformanceError, match=complaint):
        check_locks(factory)


def test_a_failure_leaves_no_thread_behind() -> None:
    before = set(threading.enumerate())
    with pytest.raises(ConformanceError):
        check_locks(SerialRWLock)
    assert set(threading.enumerate()) <= before

"""Conformance suite for the lock wrappers: TSLock-like mutexes, RWLock-like locks, STGuards.

:func:`check_locks` takes a factory returning a fresh lock and judges it by the contract
of its level (read from its ``@contract`` mark, else from its shape): mutual exclusion under
hypothesis-chosen thread mixes released together by a Barrier, re-entry, timeouts that raise
``TIMEOUT`` (a ``TimeoutError``), bad timeouts that raise ``INVALID_ARGUMENT``, writers not
starved, read→write upgrade refused with ``CONCURRENCY``, ST guards refusing a second thread,
no deadlock and no leaked thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import hypothesis
from hypothesis import given, strategies as st

from brummer.contracts import BLOCKING, ThreadSafety, contract, contract_of
from brummer.errors import ErrorCode
from brummer.testing.conformance._harness import (
    expect_error,
    fail,
    no_thread_leak,
    run_property,
    run_together,
    suite_settings,
    yield_gil,
)

__all__ = ["check_locks"]

_QUICK = 1.0  # an immediate refusal must come within this many seconds
_TIMEOUT = 0.05  # the short timeout a contender asks for


def _level(lock: Any) -> ThreadSafety:
    mark = contract_of(type(lock))
    if mark is not None:
        return mark.thread_safety
    if callable(getattr(lock, "read", None)) and callable(getattr(lock, "write", None)):
        return ThreadSafety.RS
    if callable(getattr(lock, "transfer", None)):
        return ThreadSafety.ST
    return ThreadSafety.TS


class _Section:
    """Counts who is inside; records any overlap that the lock should have prevented."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.readers = 0
        self.writers = 0
        self.max_readers = 0
        self.violations: list[str] = []
        self.counter = 0

    def enter(self, write: bool) -> None:
        with self.guard:
            if write:
                if self.writers or self.readers:
                    self.violations.append(
                        f"writer entered with {self.writers} writer(s) and {self.readers} reader(s) inside"
                    )
                self.writers += 1
            else:
                if self.writers:
                    self.violations.append(f"reader entered with {self.writers} writer(s) inside")
                self.readers += 1
                self.max_readers = max(self.max_readers, self.readers)

    def leave(self, write: bool) -> None:
        with self.guard:
            if write:
                self.writers -= 1
            else:
                self.readers -= 1

    def increment(self) -> None:
        value = self.counter  # read-modify-write that only a real mutex keeps whole
        yield_gil()
        self.counter = value + 1


def _check_mutex(factory: Callable[[], Any], settings: hypothesis.settings) -> None:
    @settings
    @given(
        threads=st.integers(2, 6),
        iterations=st.integers(1, 25),
        depth=st.integers(1, 3),
        timed=st.booleans(),
    )
    def exclusion(threads: int, iterations: int, depth: int, timed: bool) -> None:
        lock = factory()
        section = _Section()

        def nest(level: int) -> None:
            if level == 0:
                section.enter(True)
                section.increment()
                section.leave(True)
                return
            with lock:
                nest(level - 1)

        def worker() -> None:
            for _ in range(iterations):
                if timed:
                    lock.acquire(timeout=10.0)
                    try:
                        nest(depth - 1)
                    finally:
                        lock.release()
                else:
                    nest(depth)

        with no_thread_leak("mutex scenario"):
            run_together([worker] * threads, what="mutex")
        if section.violations:
            raise fail(f"mutual exclusion broken: {section.violations[0]}")
        if section.counter != threads * iterations:
            raise fail(
                f"lost updates under the lock: {section.counter} of {threads * iterations} increments"
            )

    run_property(exclusion)
    _check_timeouts(factory, lambda lock, t: lock.acquire(timeout=t), _hold_mutex)
    lock = factory()
    expect_error(
        ErrorCode.INVALID_ARGUMENT,
        lambda: lock.acquire(timeout=-1.0),
        "acquire(timeout=-1)",
        builtin=ValueError,
    )
    expect_error(
        ErrorCode.INVALID_ARGUMENT,
        lambda: lock.acquire(timeout=float("nan")),
        "acquire(timeout=nan)",
        builtin=ValueError,
    )
    with lock:  # still usable after bad input
        pass
    expect_error(ErrorCode.INVALID_STATE, lock.release, "release() of a lock nobody holds")


def _hold_mutex(lock: Any) -> Any:
    return lock


def _hold_write(lock: Any) -> Any:
    return lock.write()


def _check_timeouts(
    factory: Callable[[], Any],
    attempt: Callable[[Any, float], None],
    hold: Callable[[Any], Any],
) -> None:
    """While one thread holds it, another's attempt with a short timeout raises TIMEOUT."""
    lock = factory()
    held = threading.Event()
    done = threading.Event()
    outcome: list[BaseException | None] = []

    def holder() -> None:
        with hold(lock):
            held.set()
            done.wait(_TIMEOUT + _QUICK)  # a contender still waiting by then ignores its timeout

    def contender() -> None:
        held.wait(10.0)
        started = time.monotonic()
        try:
            expect_error(
                ErrorCode.TIMEOUT,
                lambda: attempt(lock, _TIMEOUT),
                f"acquire with timeout {_TIMEOUT} while held elsewhere",
                builtin=TimeoutError,
            )
            elapsed = time.monotonic() - started
            if elapsed > _TIMEOUT + _QUICK:
                raise fail(f"a {_TIMEOUT} s timeout took {elapsed:.2f} s to expire")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)
        finally:
            done.set()

    with no_thread_leak("timeout scenario"):
        run_together([holder, contender], what="timeout")
    if outcome and outcome[0] is not None:
        raise outcome[0]


def _check_rw(factory: Callable[[], Any], settings: hypothesis.settings) -> None:
    @settings
    @given(
        roles=st.lists(st.booleans(), min_size=2, max_size=7),
        iterations=st.integers(1, 20),
        nested=st.booleans(),
    )
    def exclusion(roles: list[bool], iterations: int, nested: bool) -> None:
        lock = factory()
        section = _Section()

        def worker(write: bool) -> Callable[[], None]:
            def run() -> None:
                for _ in range(iterations):
                    with lock.write(timeout=10.0) if write else lock.read(timeout=10.0):
                        section.enter(write)
                        if nested:  # re-entry: a reader reads again; the writer reads and writes
                            with lock.read(timeout=10.0):
                                yield_gil()
                            if write:
                                with lock.write(timeout=10.0):
                                    yield_gil()
                        if write:
                            section.increment()
                        else:
                            yield_gil()
                        section.leave(write)

            return run

        with no_thread_leak("read/write scenario"):
            run_together([worker(w) for w in roles], what="rwlock")
        if section.violations:
            raise fail(f"reader/writer exclusion broken: {section.violations[0]}")
        writers = sum(roles)
        if section.counter != writers * iterations:
            raise fail(
                f"lost updates under the write lock: {section.counter} of {writers * iterations}"
            )

    run_property(exclusion)
    _check_readers_share(factory)
    _check_writer_not_starved(factory)
    _check_timeouts(factory, lambda lock, t: _enter(lock.read(timeout=t)), _hold_write)
    _check_timeouts(factory, lambda lock, t: _enter(lock.write(timeout=t)), _hold_write)
    lock = factory()
    with lock.read():
        started = time.monotonic()
        expect_error(
            ErrorCode.CONCURRENCY, lambda: _enter(lock.write(timeout=5.0)), "read→write upgrade"
        )
        if time.monotonic() - started > _QUICK:
            raise fail(
                "a read→write upgrade was refused only after waiting; it must be refused at once"
            )
    expect_error(
        ErrorCode.INVALID_ARGUMENT,
        lambda: _enter(lock.read(timeout=-1.0)),
        "read(timeout=-1)",
        builtin=ValueError,
    )
    expect_error(
        ErrorCode.INVALID_ARGUMENT,
        lambda: _enter(lock.write(timeout=float("nan"))),
        "write(timeout=nan)",
        builtin=ValueError,
    )
    with lock.write():  # still usable
        pass
    if callable(getattr(lock, "release_read", None)):
        expect_error(
            ErrorCode.INVALID_STATE, lock.release_read, "release_read() without the read lock"
        )
    if callable(getattr(lock, "release_write", None)):
        expect_error(
            ErrorCode.INVALID_STATE, lock.release_write, "release_write() without the write lock"
        )


def _enter(manager: Any) -> None:
    with manager:
        pass


def _check_readers_share(factory: Callable[[], Any]) -> None:
    """Two readers are inside at the same time (an RS lock that serialises readers fails)."""
    lock = factory()
    first_in = threading.Event()
    second_in = threading.Event()

    def first() -> None:
        with lock.read(timeout=5.0):
            first_in.set()
            if not second_in.wait(2.0):
                raise fail("a second reader could not enter while the first held the read lock")

    def second() -> None:
        first_in.wait(5.0)
        with lock.read(timeout=5.0):
            second_in.set()

    with no_thread_leak("shared readers"):
        run_together([first, second], what="readers")


def _check_writer_not_starved(factory: Callable[[], Any]) -> None:
    """Readers that keep overlapping each other must still let a waiting writer in."""
    lock = factory()
    stop = threading.Event()
    writer_done = threading.Event()
    in_reader = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            with lock.read(timeout=10.0):
                in_reader.set()
                yield_gil()

    def writer() -> None:
        try:
            in_reader.wait(5.0)
            try:
                with lock.write(timeout=5.0):
                    writer_done.set()
            except Exception as exc:
                raise fail(f"a writer was starved by a stream of readers: {exc}") from exc
        finally:
            stop.set()

    with no_thread_leak("writer starvation"):
        run_together([reader, reader, reader, writer], what="starvation")
    if not writer_done.is_set():
        raise fail("the writer never got the lock")


def _check_guard(factory: Callable[[], Any]) -> None:
    guard = factory()
    with guard, guard:  # the owner may re-enter
        pass
    refused: list[BaseException] = []

    def intruder() -> None:
        try:
            expect_error(
                ErrorCode.CONCURRENCY,
                lambda: _enter(guard),
                "an ST guard entered from a second thread",
            )
        except BaseException as exc:
            refused.append(exc)

    with no_thread_leak("ST guard"):
        run_together([intruder], what="st-guard")
    if refused:
        raise refused[0]
    with guard:  # the owner still may
        pass
    if callable(getattr(guard, "transfer", None)):
        guard.transfer(None)
        claimed: list[BaseException] = []

        def heir() -> None:
            try:
                with guard:
                    pass
            except BaseException as exc:
                claimed.append(exc)

        run_together([heir], what="st-transfer")
        if claimed:
            raise fail(
                f"after transfer(None) another thread could not claim the guard: {claimed[0]}"
            )
        expect_error(
            ErrorCode.CONCURRENCY, lambda: _enter(guard), "the previous owner after a transfer"
        )


@contract(ThreadSafety.TS, timeout=BLOCKING)
def check_locks(factory: Callable[[], Any], *, settings: hypothesis.settings | None = None) -> None:
    """Judge the locks ``factory()`` makes by the contract of their level (TS, RS or ST).

    Thread safety: TS. Starts and joins its own threads; each scenario gets fresh locks.

    Args:
        factory: returns a new, unheld lock each call (``TSLock``, ``RWLock``,
            ``STGuard`` or anything shaped and marked like one).
        settings: hypothesis settings (default: 10 examples per property, no database).

    Raises:
        AssertionError: ``ConformanceError`` describing the first broken guarantee.
    """
    chosen = suite_settings(settings)
    level = _level(factory())
    if level is ThreadSafety.TS:
        _check_mutex(factory, chosen)
    elif level is ThreadSafety.RS:
        _check_rw(factory, chosen)
    else:
        _check_guard(factory)

"""TSLock, RWLock and STGuard: exclusion, re-entry, upgrade refusal, timeouts, bad timeouts."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from hypothesis import given, settings, strategies as st

from brummer.contracts import RWLock, STGuard, ThreadSafety, TSLock, contract_of, lock_for
from brummer.errors import BrummerError, ErrorCode
from tests.helpers import wait_until


def _in_thread(fn: Callable[[], object]) -> BaseException | None:
    """Run fn in another thread; return what it raised (or None)."""
    caught: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    return caught[0] if caught else None


def _code(exc: BaseException | None) -> ErrorCode | None:
    return exc.code if isinstance(exc, BrummerError) else None


# ---------------------------------------------------------------- TSLock


def test_tslock_is_reentrant_and_exclusive() -> None:
    lock = TSLock("t")
    with lock, lock:
        err = _in_thread(lambda: lock.acquire(timeout=0.02))
    assert _code(err) is ErrorCode.TIMEOUT
    assert isinstance(err, TimeoutError)
    assert _in_thread(lambda: (lock.acquire(timeout=1), lock.release())) is None


def test_tslock_release_by_a_stranger_is_invalid_state() -> None:
    lock = TSLock()
    with pytest.raises(BrummerError) as info:
        lock.release()
    assert info.value.code is ErrorCode.INVALID_STATE
    lock.acquire()
    assert _code(_in_thread(lock.release)) is ErrorCode.INVALID_STATE
    lock.release()


@pytest.mark.parametrize("bad", [-1, -0.01, math.nan, math.inf, "1"])
def test_bad_timeouts_are_invalid_argument(bad: object) -> None:
    tslock, rwlock = TSLock(), RWLock()
    calls: list[Callable[[], object]] = [
        lambda: tslock.acquire(bad),  # type: ignore[arg-type]
        lambda: rwlock.acquire_read(bad),  # type: ignore[arg-type]
        lambda: rwlock.acquire_write(bad),  # type: ignore[arg-type]
        lambda: rwlock.read(bad).__enter__(),  # type: ignore[arg-type]
        lambda: rwlock.write(bad).__enter__(),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(BrummerError) as info:
            call()
        assert info.value.code is ErrorCode.INVALID_ARGUMENT
        assert isinstance(info.value, ValueError)
        assert info.value.hint
    # nothing was taken: both locks are free for another thread
    assert _in_thread(lambda: (tslock.acquire(0.5), tslock.release())) is None
    assert _in_thread(lambda: (rwlock.acquire_write(0.5), rwlock.release_write())) is None


# ---------------------------------------------------------------- RWLock


def test_readers_share_and_a_writer_excludes() -> None:
    lock = RWLock("rw")
    with lock.read():
        assert _in_thread(lambda: (lock.acquire_read(0.5), lock.release_read())) is None
        assert _code(_in_thread(lambda: lock.acquire_write(0.02))) is ErrorCode.TIMEOUT
    with lock.write():
        assert lock.write_locked
        assert _code(_in_thread(lambda: lock.acquire_read(0.02))) is ErrorCode.TIMEOUT
        assert _code(_in_thread(lambda: lock.acquire_write(0.02))) is ErrorCode.TIMEOUT
    assert not lock.write_locked
    assert lock.readers == 0


def test_reader_reenters_and_writer_takes_read_and_write_again() -> None:
    lock = RWLock()
    with lock.read(), lock.read():
        assert lock.readers == 1
    with lock.write(), lock.write(), lock.read():
        assert lock.write_locked
    assert not lock.write_locked
    assert lock.readers == 0
    assert _in_thread(lambda: (lock.acquire_write(0.5), lock.release_write())) is None


def test_reader_reenters_even_while_a_writer_waits() -> None:
    lock = RWLock()
    lock.acquire_read()
    writer = threading.Thread(target=lambda: (lock.acquire_write(10), lock.release_write()))
    writer.start()
    assert wait_until(lambda: lock._writers_waiting == 1)
    lock.acquire_read(timeout=1)  # would deadlock if re-entry queued behind the writer
    lock.release_read()
    lock.release_read()
    writer.join(10)
    assert not writer.is_alive()


def test_upgrade_raises_concurrency_at_once() -> None:
    lock = RWLock()
    with lock.read():
        started = time.monotonic()
        with pytest.raises(BrummerError) as info:
            lock.acquire_write()  # no timeout: would hang forever if it waited
        assert time.monotonic() - started < 1.0
        assert info.value.code is ErrorCode.CONCURRENCY
        assert info.value.hint
        with pytest.raises(BrummerError) as ctx_info, lock.write():
            pass
        assert ctx_info.value.code is ErrorCode.CONCURRENCY
    with lock.write():  # the refused upgrade left nothing behind
        pass


def test_releasing_what_is_not_held_is_invalid_state() -> None:
    lock = RWLock()
    for release in (lock.release_read, lock.release_write):
        with pytest.raises(BrummerError) as info:
            release()
        assert info.value.code is ErrorCode.INVALID_STATE
    lock.acquire_write()
    assert _code(_in_thread(lock.release_write)) is ErrorCode.INVALID_STATE
    lock.release_write()


def test_writer_is_not_starved_new_readers_queue_behind_it() -> None:
    lock = RWLock()
    lock.acquire_read()  # a reader holds the lock
    got_write = threading.Event()
    release_write = threading.Event()

    def writer() -> None:
        lock.acquire_write(timeout=10)
        got_write.set()
        release_write.wait(10)
        lock.release_write()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert wait_until(lambda: lock._writers_waiting == 1)
        # a new reader does not overtake the waiting writer (else a reader stream starves it)
        assert _code(_in_thread(lambda: lock.acquire_read(0.05))) is ErrorCode.TIMEOUT
        lock.release_read()
        assert got_write.wait(10)
    finally:
        release_write.set()
        thread.join(10)
    assert _in_thread(lambda: (lock.acquire_read(0.5), lock.release_read())) is None


def test_writer_gets_in_between_a_stream_of_overlapping_readers() -> None:
    lock = RWLock()
    stop = threading.Event()
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            with lock.read(timeout=10):
                reads[0] += 1
                os.sched_yield()

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        assert wait_until(lambda: reads[0] > 100)
        for _ in range(20):
            lock.acquire_write(timeout=5)
            lock.release_write()
    finally:
        stop.set()
        for t in threads:
            t.join(10)


def test_readers_blocked_behind_a_timed_out_writer_proceed() -> None:
    lock = RWLock()
    lock.acquire_read()
    assert _code(_in_thread(lambda: lock.acquire_write(0.05))) is ErrorCode.TIMEOUT
    # the writer gave up: new readers must not stay queued behind it
    assert _in_thread(lambda: (lock.acquire_read(0.5), lock.release_read())) is None
    lock.release_read()


@given(st.lists(st.sampled_from(["r", "w"]), min_size=2, max_size=8))
@settings(max_examples=20)
def test_mutual_exclusion_under_contention(roles: list[str]) -> None:
    lock = RWLock()
    state = {"readers": 0, "writers": 0}
    guard = threading.Lock()
    violations: list[dict[str, int]] = []
    barrier = threading.Barrier(len(roles))

    def check() -> None:
        with guard:
            if state["writers"] > 1 or (state["writers"] and state["readers"]):
                violations.append(dict(state))

    def worker(role: str) -> None:
        barrier.wait(10)
        key = "readers" if role == "r" else "writers"
        held: Callable[[], AbstractContextManager[None]] = lock.read if role == "r" else lock.write
        for _ in range(30):
            with held():
                with guard:
                    state[key] += 1
                check()
                os.sched_yield()  # let other threads run inside the critical section
                with guard:
                    state[key] -= 1

    threads = [threading.Thread(target=worker, args=(r,)) for r in roles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)
    assert violations == []
    assert lock.readers == 0
    assert not lock.write_locked


# ---------------------------------------------------------------- STGuard


def test_stguard_refuses_a_second_thread() -> None:
    guard = STGuard("widget")
    with guard, guard:  # re-entry by the owner
        err = _in_thread(guard.__enter__)
        assert _code(err) is ErrorCode.CONCURRENCY
        assert "widget" in str(err)
    assert guard.owner == threading.get_ident()
    assert _code(_in_thread(guard.check)) is ErrorCode.CONCURRENCY  # still owned


def test_stguard_transfer() -> None:
    guard = STGuard()
    with guard, pytest.raises(BrummerError) as info:
        guard.transfer(None)
    assert info.value.code is ErrorCode.INVALID_STATE
    guard.transfer(None)
    assert guard.owner is None
    assert _in_thread(lambda: guard.__enter__().__exit__(None, None, None)) is None
    with pytest.raises(BrummerError):
        guard.check()  # the other thread claimed it


def test_lock_for_each_level() -> None:
    assert isinstance(lock_for(ThreadSafety.TS), TSLock)
    assert isinstance(lock_for(ThreadSafety.RS), RWLock)
    assert isinstance(lock_for(ThreadSafety.ST), STGuard)
    with pytest.raises(BrummerError) as info:
        lock_for("TS")  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    for cls, level in (
        (TSLock, ThreadSafety.TS),
        (RWLock, ThreadSafety.RS),
        (STGuard, ThreadSafety.ST),
    ):
        mark = contract_of(cls)
        assert mark is not None
        assert mark.thread_safety is level


class _PauseAfterFirstRelease:
    """Stands in for STGuard's internal lock: the chosen thread stops right after it
    first releases it, so the test can act in the gap."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.thread: int | None = None
        self.paused = threading.Event()
        self.resume = threading.Event()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
        if threading.get_ident() == self.thread and not self.paused.is_set():
            self.paused.set()
            assert self.resume.wait(10)


def test_stguard_cannot_be_transferred_while_a_thread_is_entering() -> None:
    guard = STGuard("widget")
    gate = _PauseAfterFirstRelease()
    guard._lock = gate  # type: ignore[assignment]
    inside = threading.Event()
    leave = threading.Event()

    def enter() -> None:
        gate.thread = threading.get_ident()
        with guard:
            inside.set()
            assert leave.wait(10)

    thread = threading.Thread(target=enter)
    thread.start()
    try:
        assert gate.paused.wait(10)  # the thread passed the ownership check
        with pytest.raises(BrummerError) as info:
            guard.transfer(None)  # it is entering: handing the guard on must be refused
        assert info.value.code is ErrorCode.INVALID_STATE
    finally:
        gate.resume.set()
        assert inside.wait(10)
        leave.set()
        thread.join(10)
    assert guard.owner == thread.ident


@pytest.mark.parametrize("huge", [1e12, 1e300])
def test_huge_timeouts_are_accepted(huge: float) -> None:
    lock = TSLock("t")
    lock.acquire(timeout=huge)
    lock.release()
    rw = RWLock("rw")
    with rw.write(timeout=huge), rw.read(timeout=huge):
        pass
    holder_in, holder_out = threading.Event(), threading.Event()

    def hold() -> None:
        with rw.write():
            holder_in.set()
            assert holder_out.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holder_in.wait(10)
    waiter = threading.Thread(target=lambda: rw.acquire_read(timeout=huge) or rw.release_read())
    waiter.start()
    holder_out.set()
    thread.join(10)
    waiter.join(10)
    assert not waiter.is_alive()
    assert rw.readers == 0

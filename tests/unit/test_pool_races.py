"""WorkerPool races found in review: each test forces one interleaving that used to go wrong."""

from __future__ import annotations

import sys
import threading
from collections import deque
from concurrent.futures import Future, as_completed, wait

import attrs
from hypothesis import given, settings, strategies as st

from brummer.errors import BrummerError, ErrorCode
from brummer.pool import Priority, WorkerPool
from tests.helpers import wait_until


def _blocked(pool: WorkerPool) -> tuple[threading.Event, Future[bool]]:
    """Occupy one worker until the returned gate is set."""
    gate, started = threading.Event(), threading.Event()

    def hold() -> bool:
        started.set()
        return gate.wait(30)

    future = pool.submit(hold)
    assert started.wait(10)
    return gate, future


@attrs.define
class _SlowJob:
    id: str
    timeout: float | None
    release: threading.Event = attrs.field(factory=threading.Event)
    started: threading.Event = attrs.field(factory=threading.Event)

    def execute(self) -> str:
        self.started.set()
        self.release.wait(30)
        return self.id


def _pool_threads(name: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(f"{name}-")]


def test_futures_cancelled_by_shutdown_wake_wait_and_as_completed() -> None:
    pool = WorkerPool(1, queue_size=100)
    gate, held = _blocked(pool)
    queued = [pool.submit(int, str(i)) for i in range(5)]
    pool.shutdown(wait=False, cancel_futures=True)
    try:
        _, not_done = wait(queued, timeout=2)
        assert not not_done  # a cancelled future must count as done for wait()
        assert len(list(as_completed(queued, timeout=2))) == len(queued)
    finally:
        gate.set()
        pool.stop(timeout=10)
    assert held.result(1) is True
    metrics = pool.metrics()
    assert metrics.submitted == metrics.completed + metrics.cancelled == 6


def test_an_item_given_back_after_cancel_is_cancelled_outside_the_lock() -> None:
    """A worker that popped an item from its batch, then saw a higher level waiting, gives
    it back; if shutdown(cancel_futures=True) ran in between, the item must be cancelled
    and its done-callbacks must not run under the pool's lock (they may use the pool)."""
    pool = WorkerPool(1, queue_size=100)
    gate, held = _blocked(pool)
    victim = pool.submit(int)
    with pool._mutex:  # the worker claims the victim and pops it from its batch ...
        item = pool._queues[Priority.MEDIUM].popleft()
        pool._depth -= 1
    pool.shutdown(wait=False, cancel_futures=True)  # ... cancel runs meanwhile ...
    lock_free: list[bool] = []

    def on_done(_: Future[int]) -> None:
        free = pool._mutex.acquire(timeout=1)
        if free:
            pool._mutex.release()
        lock_free.append(free)
        pool.metrics()  # a callback may use the pool

    victim.add_done_callback(on_done)
    pool._give_back(item, deque())  # ... and the worker gives it back
    gate.set()
    pool.stop(timeout=10)
    assert held.result(1) is True
    assert victim.cancelled()
    assert lock_free == [True]
    metrics = pool.metrics()
    assert metrics.submitted == metrics.completed + metrics.cancelled == 2
    assert metrics.queue_depth == (0, 0, 0)


def test_no_watchdog_thread_lingers_after_shutdown_without_wait() -> None:
    pool = WorkerPool(1, name="linger")
    job = _SlowJob("long", timeout=60)
    future = pool.submit_job(job)
    assert job.started.wait(10)
    pool.shutdown(wait=False)
    job.release.set()
    assert future.result(10) == "long"
    assert wait_until(lambda: not _pool_threads("linger"), timeout=3), _pool_threads("linger")


def test_no_watchdog_thread_lingers_after_stop_from_inside_a_job() -> None:
    pool = WorkerPool(2, name="inside")
    job = _SlowJob("long", timeout=60)
    future = pool.submit_job(job)
    assert job.started.wait(10)
    assert pool.submit(pool.stop).result(10) is None  # on the other worker, while job runs
    job.release.set()
    assert future.result(10) == "long"
    assert wait_until(lambda: not _pool_threads("inside"), timeout=3), _pool_threads("inside")


def test_a_thread_that_reuses_a_dead_workers_ident_still_waits_in_stop() -> None:
    """Thread idents are recycled: a new thread must not be mistaken for an exited worker
    (which would make its stop() return at once while a job still runs)."""
    for _ in range(40):
        outcome = _stop_from_a_thread_that_may_reuse_a_dead_workers_ident()
        assert outcome in ("no reuse", ErrorCode.TIMEOUT), outcome


def _stop_from_a_thread_that_may_reuse_a_dead_workers_ident() -> object:
    pool = WorkerPool(2)
    gate, held = _blocked(pool)
    pool.submit(int).result(10)  # the busy first worker makes the pool start a second
    assert wait_until(lambda: len(pool._threads) == 2)
    idle = next(t for t in pool._threads if t is not _busy(pool))
    dead_ident = idle.ident
    pool.shutdown(wait=False)  # the idle worker exits, the busy one keeps running
    idle.join(10)
    outcome: list[object] = []

    def stop_from_new_thread() -> None:
        if threading.get_ident() != dead_ident:
            outcome.append("no reuse")
            return
        try:
            pool.stop(timeout=0.05)
        except BrummerError as exc:
            outcome.append(exc.code)
        else:
            outcome.append("returned without waiting")

    thread = threading.Thread(target=stop_from_new_thread)
    thread.start()
    thread.join(10)
    gate.set()
    pool.stop(timeout=10)
    assert held.result(1) is True
    return outcome[0]


def _busy(pool: WorkerPool) -> threading.Thread:
    """The worker running an item (the one `_blocked` occupies)."""
    for thread, stats in zip(pool._threads, pool._stats, strict=True):
        if stats.running:
            return thread
    raise AssertionError("no busy worker")


@given(
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=0, max_value=300),
    st.lists(st.sampled_from(Priority), min_size=1, max_size=3),
)
@settings(max_examples=15)
def test_shutdown_cancelling_racing_submitters_resolves_every_future_once(
    workers: int, cancel_after: int, levels: list[Priority]
) -> None:
    pool = WorkerPool(workers, queue_size=40, submit_timeout=10)
    runs: dict[tuple[int, int], int] = {}
    accepted: list[tuple[tuple[int, int], Future[None]]] = []
    under_lock: list[bool] = []
    refusals: list[ErrorCode] = []
    lock = threading.Lock()
    barrier = threading.Barrier(3)

    def record(key: tuple[int, int]) -> None:
        with lock:
            runs[key] = runs.get(key, 0) + 1

    def on_done(_: Future[None]) -> None:
        free = pool._mutex.acquire(timeout=1)
        if free:
            pool._mutex.release()
        under_lock.append(not free)

    def submitter(n: int) -> None:
        barrier.wait(10)
        for i in range(200):
            try:
                future = pool.submit_with_priority(levels[i % len(levels)], record, (n, i))
            except BrummerError as exc:
                refusals.append(exc.code)
                return
            future.add_done_callback(on_done)
            with lock:
                accepted.append(((n, i), future))

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    barrier.wait(10)
    assert wait_until(lambda: len(accepted) >= min(cancel_after, 400), timeout=10)
    pool.shutdown(wait=False, cancel_futures=True)
    for thread in threads:
        thread.join(10)
    pool.stop(timeout=20)
    _, not_done = wait([f for _, f in accepted], timeout=5)
    assert not not_done
    for key, future in accepted:
        assert runs.get(key, 0) == (0 if future.cancelled() else 1), key
    assert not any(under_lock)
    assert set(refusals) <= {ErrorCode.INVALID_STATE}
    metrics = pool.metrics()
    assert metrics.submitted == len(accepted) == metrics.completed + metrics.cancelled
    assert metrics.threads == 0


def _waiting_in_threading(thread: threading.Thread) -> bool:
    """Whether the thread is blocked in a threading wait (e.g. Future.result)."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code.co_name == "wait" and frame.f_code.co_filename == threading.__file__:
            return True
        frame = frame.f_back
    return False


def test_map_accepts_a_huge_timeout_while_it_waits() -> None:
    gate = threading.Event()
    main = threading.current_thread()

    def open_gate() -> None:
        assert wait_until(lambda: _waiting_in_threading(main), timeout=10)
        gate.set()

    opener = threading.Thread(target=open_gate)
    with WorkerPool(1) as pool:
        results = pool.map(lambda x: gate.wait(10) and x, [1, 2], timeout=1e300)
        opener.start()
        try:
            assert list(results) == [1, 2]
        finally:
            gate.set()
            opener.join(10)

"""WorkerPool: priorities, bounded queue, per-job timeouts, lazy threads, stop from anywhere."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, wait

import attrs
import pytest
from hypothesis import given, settings, strategies as st

from brummer.errors import BrummerError, ErrorCode
from brummer.pool import Job, PoolMetrics, Priority, WorkerPool
from tests.helpers import wait_until


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    p = WorkerPool(4, queue_size=100, name="test-pool")
    yield p
    p.stop(timeout=10)


def _blocked(pool: WorkerPool) -> tuple[threading.Event, threading.Event, Future[bool]]:
    """Occupy one worker until the returned gate is set; `started` is set once it runs."""
    gate, started = threading.Event(), threading.Event()

    def hold() -> bool:
        started.set()
        return gate.wait(30)

    future = pool.submit(hold)
    assert started.wait(10)
    return gate, started, future


@attrs.define
class _EventJob:
    """A real Job: waits for an event (or returns at once) and returns its id."""

    id: str
    timeout: float | None = None
    release: threading.Event = attrs.field(factory=threading.Event)
    started: threading.Event = attrs.field(factory=threading.Event)
    block: bool = False
    fail: bool = False

    def execute(self) -> str:
        self.started.set()
        if self.block:
            self.release.wait(30)
        if self.fail:
            raise RuntimeError(f"job {self.id} failed")
        return self.id


def test_submit_runs_and_returns_result(pool: WorkerPool) -> None:
    assert pool.submit(pow, 2, 10).result(5) == 1024
    assert pool.submit(lambda *, x: x * 2, x=21).result(5) == 42
    metrics = pool.metrics()
    assert isinstance(metrics, PoolMetrics)
    assert metrics.submitted == 2
    assert metrics.completed == 2
    assert metrics.max_workers == 4


def test_exception_fails_the_future_and_is_counted(pool: WorkerPool) -> None:
    def boom() -> None:
        raise KeyError("nope")

    future = pool.submit(boom)
    with pytest.raises(KeyError):
        future.result(5)
    assert pool.metrics().failed == 1
    assert pool.submit(int, "7").result(5) == 7  # still usable


def test_default_max_workers() -> None:
    with WorkerPool() as p:
        assert p.metrics().max_workers == min(32, (os.cpu_count() or 1) * 4)
        assert p.max_workers == p.metrics().max_workers


def test_strict_priority_and_fifo_within_level() -> None:
    pool = WorkerPool(1, queue_size=1000)
    try:
        gate, _, _ = _blocked(pool)
        order: list[tuple[int, int]] = []
        for i in range(30):
            level = Priority((i * 7) % 3)
            pool.submit_with_priority(level, order.append, (int(level), i))
        assert pool.metrics().queue_depth == (10, 10, 10)
        gate.set()
    finally:
        pool.stop(timeout=10)
    assert order == sorted(order)
    assert len(order) == 30


@given(st.lists(st.sampled_from(list(Priority)), min_size=1, max_size=60))
@settings(max_examples=15)
def test_any_priority_sequence_runs_in_priority_then_fifo_order(levels: list[Priority]) -> None:
    pool = WorkerPool(1, queue_size=100)
    try:
        gate, _, _ = _blocked(pool)
        order: list[tuple[int, int]] = []
        for i, level in enumerate(levels):
            pool.submit_job(_FnJob(f"j{i}", lambda v=(int(level), i): order.append(v)), level)
        gate.set()
    finally:
        pool.stop(timeout=10)
    assert order == sorted((int(level), i) for i, level in enumerate(levels))


@attrs.frozen
class _FnJob:
    id: str
    fn: object
    timeout: float | None = None

    def execute(self) -> object:
        assert callable(self.fn)
        return self.fn()


def test_higher_priority_overtakes_a_batch_already_taken() -> None:
    """A worker holding a batch of LOW items gives it back when a HIGH item arrives."""
    pool = WorkerPool(1, queue_size=1000)
    order: list[str] = []
    try:
        # warm the worker up so that it takes big batches
        wait([pool.submit(int) for _ in range(200)])
        gate, _, _ = _blocked(pool)

        def low(i: int) -> None:
            if i == 0:
                pool.submit_with_priority(Priority.HIGH, order.append, "HIGH")
            order.append(f"L{i}")

        lows = [pool.submit_with_priority(Priority.LOW, low, i) for i in range(50)]
        gate.set()
        wait(lows, timeout=10)
        assert wait_until(lambda: len(order) == 51)
    finally:
        pool.stop(timeout=10)
    assert order[:2] == ["L0", "HIGH"]
    assert order[2:] == [f"L{i}" for i in range(1, 50)]


def test_full_queue_rejects_after_submit_timeout_and_stays_usable() -> None:
    pool = WorkerPool(1, queue_size=2, submit_timeout=0.05)
    try:
        gate, _, held = _blocked(pool)
        first = pool.submit(int, "1")
        second = pool.submit(int, "2")
        started = time.monotonic()
        with pytest.raises(BrummerError) as info:
            pool.submit(int, "3")
        assert time.monotonic() - started >= 0.04
        err = info.value
        assert err.code is ErrorCode.RESOURCE_LIMIT
        assert err.temporary
        assert err.hint
        assert pool.metrics().rejected == 1
        assert pool.metrics().queue_depth == (0, 2, 0)
        gate.set()
        assert held.result(5) is True
        assert (first.result(5), second.result(5)) == (1, 2)
        assert pool.submit(int, "4").result(5) == 4
    finally:
        pool.stop(timeout=10)


def test_submit_waits_for_room_when_the_queue_drains() -> None:
    pool = WorkerPool(1, queue_size=1, submit_timeout=10)
    try:
        gate, _, _ = _blocked(pool)
        pool.submit(int)
        results: list[Future[int]] = []
        submitter = threading.Thread(target=lambda: results.append(pool.submit(int, "5")))
        submitter.start()
        assert wait_until(lambda: pool._full_waiters == 1)
        gate.set()
        submitter.join(10)
        assert results[0].result(5) == 5
        assert pool.metrics().rejected == 0
    finally:
        pool.stop(timeout=10)


def test_submit_after_stop_is_invalid_state() -> None:
    pool = WorkerPool(2)
    pool.submit(int).result(5)
    pool.stop()
    for call in (
        lambda: pool.submit(int),
        lambda: pool.submit_job(_EventJob("x")),
        lambda: pool.submit_with_priority(Priority.HIGH, int),
    ):
        with pytest.raises(BrummerError) as info:
            call()
        assert info.value.code is ErrorCode.INVALID_STATE
        assert info.value.hint
    assert pool.stopped


def test_stop_runs_every_accepted_item_and_is_idempotent() -> None:
    pool = WorkerPool(3, queue_size=5000)
    done: list[int] = []
    lock = threading.Lock()

    def record(i: int) -> None:
        with lock:
            done.append(i)

    futures = [pool.submit(record, i) for i in range(3000)]
    pool.stop(timeout=20)
    pool.stop()
    pool.shutdown()
    assert sorted(done) == list(range(3000))
    assert all(f.done() for f in futures)
    metrics = pool.metrics()
    assert metrics.completed == 3000
    assert metrics.submitted == 3000
    assert metrics.threads == 0


def test_stop_from_inside_a_job_does_not_deadlock() -> None:
    pool = WorkerPool(2, queue_size=100)
    after: list[int] = []
    gate, _, _ = _blocked(pool)

    def stopper() -> str:
        pool.stop()
        pool.shutdown(wait=True)
        return "stopped"

    for i in range(20):
        pool.submit(after.append, i)
    inside = pool.submit(stopper)
    assert inside.result(10) == "stopped"
    gate.set()
    pool.stop(timeout=10)
    assert after == list(range(20))  # accepted work still ran
    with pytest.raises(BrummerError):
        pool.submit(int)


def test_stop_from_every_worker_at_once_does_not_deadlock() -> None:
    pool = WorkerPool(4)
    barrier = threading.Barrier(4)

    def stop_together() -> None:
        barrier.wait(10)
        pool.stop()

    futures = [pool.submit(stop_together) for _ in range(4)]
    wait(futures, timeout=10)
    assert all(f.exception() is None for f in futures)
    pool.stop(timeout=10)


def test_stop_from_a_done_callback() -> None:
    pool = WorkerPool(2)
    stopped = threading.Event()

    def on_done(_: Future[int]) -> None:
        pool.shutdown(wait=True)
        stopped.set()

    pool.submit(int).add_done_callback(on_done)
    assert stopped.wait(10)
    pool.stop(timeout=10)


def test_stop_timeout_raises_and_a_second_stop_finishes() -> None:
    pool = WorkerPool(1)
    gate, _, _ = _blocked(pool)
    with pytest.raises(BrummerError) as info:
        pool.stop(timeout=0.05)
    assert info.value.code is ErrorCode.TIMEOUT
    assert isinstance(info.value, TimeoutError)
    gate.set()
    pool.stop(timeout=10)


def test_shutdown_cancel_futures_cancels_what_has_not_started() -> None:
    pool = WorkerPool(1, queue_size=100)
    gate, _, held = _blocked(pool)
    queued = [pool.submit(int, str(i)) for i in range(10)]
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    pool.stop(timeout=10)
    assert held.result(1) is True
    assert all(f.cancelled() for f in queued)
    with pytest.raises(CancelledError):
        queued[0].result(0)
    assert pool.metrics().cancelled == 10


def test_a_future_cancelled_by_the_caller_is_skipped() -> None:
    with WorkerPool(1) as pool:
        gate, _, _ = _blocked(pool)
        ran: list[int] = []
        victim = pool.submit(ran.append, 1)
        keeper = pool.submit(ran.append, 2)
        assert victim.cancel()
        gate.set()
        keeper.result(5)
    assert ran == [2]
    assert pool.metrics().cancelled == 1


def test_threads_are_lazy_and_never_exceed_max_workers() -> None:
    pool = WorkerPool(4, queue_size=100)
    try:
        assert pool.metrics().threads == 0
        assert pool.submit(int).result(5) == 0
        assert pool.metrics().threads == 1
        barrier = threading.Barrier(4)
        futures = [pool.submit(barrier.wait, 10) for _ in range(4)]  # needs 4 at once
        futures += [pool.submit(int) for _ in range(40)]
        wait(futures, timeout=10)
        assert all(f.exception() is None for f in futures)
        assert pool.metrics().threads == 4
        workers = [t for t in threading.enumerate() if t.name.startswith("brummer-pool-")]
        assert len([t for t in workers if t.name[-1].isdigit()]) <= 4  # plus maybe the watchdog
    finally:
        pool.stop(timeout=10)


def test_a_job_waiting_for_a_later_job_is_not_stuck_behind_a_claimed_batch() -> None:
    """Items a busy worker claimed but has not started are stolen by a worker that is free."""
    pool = WorkerPool(2, queue_size=1000)
    try:
        for _ in range(3):  # warm up: saturated workers grow their batch size
            wait([pool.submit(int) for _ in range(300)])
        gate1, _, _ = _blocked(pool)
        gate2, _, _ = _blocked(pool)
        b_ran = threading.Event()
        a = pool.submit(b_ran.wait, 10)
        b = pool.submit(b_ran.set)
        gate1.set()  # one worker claims A (and maybe B) and blocks in A
        gate2.set()  # the other must find B, in the queue or in the first worker's batch
        assert a.result(10) is True
        assert b.done()
    finally:
        pool.stop(timeout=10)


def test_a_stalled_fast_worker_is_noticed_and_idle_workers_take_over() -> None:
    """Right after a worker started a fast-looking job the pool does not wake others for new
    items; when that job blocks, the delayed kick must wake the idle workers."""
    pool = WorkerPool(3, queue_size=1000)
    try:
        for _ in range(3):
            wait([pool.submit(int) for _ in range(300)])
        for _ in range(5):
            assert wait_until(lambda: pool._idle == len(pool._threads))
            gate = threading.Event()
            started = threading.Event()
            held = pool.submit(lambda g=gate, s=started: (s.set(), g.wait(10)))
            assert started.wait(10)
            b_ran = threading.Event()
            a = pool.submit(b_ran.wait, 10)  # needs b, which only an idle worker can run
            b = pool.submit(b_ran.set)
            assert a.result(10) is True
            assert b.done()
            gate.set()
            held.result(10)
    finally:
        pool.stop(timeout=10)


def test_blocking_jobs_spread_over_all_workers() -> None:
    pool = WorkerPool(4, queue_size=1000)
    try:
        wait([pool.submit(int) for _ in range(500)])  # fast jobs first
        barrier = threading.Barrier(4)
        futures = [pool.submit(barrier.wait, 10) for _ in range(4)]
        wait(futures, timeout=15)
        assert all(f.exception() is None for f in futures)
    finally:
        pool.stop(timeout=10)


def test_blocking_jobs_from_concurrent_submitters_all_get_a_worker() -> None:
    """While jobs look fast the pool wakes no second worker when one is busy or already woken,
    and a submit makes no wake-up decision while the kick is armed. Jobs that then block on
    each other, submitted from several threads at once, must still all get a worker."""
    workers = 4
    pool = WorkerPool(workers, queue_size=1000)
    lock = threading.Lock()

    def submitter(
        start: threading.Barrier, jobs: threading.Barrier, out: list[Future[int]]
    ) -> None:
        start.wait(10)
        mine = [pool.submit(int) for _ in range(50)]  # fast work keeps the kick armed
        mine.append(pool.submit(jobs.wait, 10))
        with lock:
            out.extend(mine)

    try:
        for _ in range(3):  # fast jobs: the mean run time drops under FAST_JOB
            wait([pool.submit(int) for _ in range(300)])
        for _ in range(3):
            assert wait_until(lambda: pool._idle == len(pool._threads))
            futures: list[Future[int]] = []
            args = (threading.Barrier(workers), threading.Barrier(workers), futures)
            threads = [threading.Thread(target=submitter, args=args) for _ in range(workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            done, not_done = wait(futures, timeout=15)
            assert not not_done
            assert all(f.exception() is None for f in done)  # no barrier broke: 4 ran at once
    finally:
        pool.stop(timeout=10)
    metrics = pool.metrics()
    assert metrics.submitted == metrics.completed == 900 + 3 * workers * 51
    assert metrics.threads == 0


def test_active_workers_counts_running_items(pool: WorkerPool) -> None:
    gate, _, _ = _blocked(pool)
    assert pool.metrics().active_workers == 1
    gate.set()
    assert wait_until(lambda: pool.metrics().active_workers == 0)


def test_job_past_its_timeout_fails_with_timeout_and_is_counted() -> None:
    pool = WorkerPool(2)
    job = _EventJob("slow", timeout=0.05, block=True)
    try:
        future = pool.submit_job(job, Priority.HIGH)
        exc = future.exception(timeout=10)
        assert isinstance(exc, BrummerError)
        assert exc.code is ErrorCode.TIMEOUT
        assert "slow" in str(exc)
        assert exc.hint
        assert pool.metrics().timed_out == 1
        assert pool.submit(int, "3").result(5) == 3  # the other worker still serves
    finally:
        job.release.set()
        pool.stop(timeout=10)
    metrics = pool.metrics()
    assert metrics.completed == 1  # the late result of the timed-out job is not counted
    assert metrics.timed_out == 1


def test_submit_job_timeout_overrides_and_fast_jobs_do_not_time_out() -> None:
    with WorkerPool(2) as pool:
        assert pool.submit_job(_EventJob("quick", timeout=30)).result(5) == "quick"
        slow = _EventJob("blocked", timeout=None, block=True)
        future = pool.submit_job(slow, timeout=0.05)
        with pytest.raises(TimeoutError):
            future.result(10)
        slow.release.set()
        failing = pool.submit_job(_EventJob("bad", timeout=5, fail=True))
        with pytest.raises(RuntimeError, match="bad failed"):
            failing.result(5)
        many = [pool.submit_job(_EventJob(f"m{i}", timeout=10)) for i in range(200)]
        assert [f.result(10) for f in many] == [f"m{i}" for i in range(200)]
    metrics = pool.metrics()
    assert metrics.timed_out == 1
    assert metrics.failed == 1
    job: Job = _EventJob("typed")  # _EventJob satisfies the protocol for mypy
    assert job.id == "typed"


def test_map_and_context_manager() -> None:
    with WorkerPool(3) as pool:
        assert list(pool.map(abs, range(-50, 50))) == [abs(i) for i in range(-50, 50)]
    assert pool.stopped


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_workers": 0}, "max_workers"),
        ({"max_workers": -3}, "max_workers"),
        ({"max_workers": 1.5}, "max_workers"),
        ({"max_workers": True}, "max_workers"),
        ({"queue_size": 0}, "queue_size"),
        ({"submit_timeout": -1}, "submit_timeout"),
        ({"submit_timeout": math.nan}, "submit_timeout"),
        ({"submit_timeout": None}, "submit_timeout"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(BrummerError) as info:
        WorkerPool(**kwargs)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert isinstance(info.value, ValueError)
    assert name in str(info.value)
    assert info.value.hint


def test_bad_calls_are_refused_and_the_pool_stays_usable(pool: WorkerPool) -> None:
    bad_calls = [
        lambda: pool.submit(42),  # type: ignore[arg-type]
        lambda: pool.submit_with_priority(7, int),  # type: ignore[arg-type]
        lambda: pool.submit_with_priority(Priority.LOW, "no"),  # type: ignore[arg-type]
        lambda: pool.submit_job(object()),  # type: ignore[arg-type]
        lambda: pool.submit_job(_EventJob("x"), timeout=-1),
        lambda: pool.submit_job(_EventJob("x", timeout=math.nan)),
        lambda: pool.submit_job(_EventJob("x"), priority=-1),  # type: ignore[arg-type]
        lambda: pool.map(None, [1]),  # type: ignore[arg-type]
        lambda: pool.map(abs, [1], timeout=math.nan),
        lambda: pool.stop(timeout=-0.5),
    ]
    for call in bad_calls:
        with pytest.raises(BrummerError) as info:
            call()
        assert info.value.code is ErrorCode.INVALID_ARGUMENT, info.value
        assert info.value.hint
    assert pool.metrics().submitted == 0
    assert not pool.stopped
    assert pool.submit(int, "9").result(5) == 9


def test_metrics_is_a_frozen_snapshot(pool: WorkerPool) -> None:
    before = pool.metrics()
    pool.submit(int).result(5)
    assert before.submitted == 0
    with pytest.raises(AttributeError):
        before.submitted = 5  # type: ignore[misc]


@given(
    st.lists(
        st.lists(st.sampled_from(list(Priority)), min_size=1, max_size=40),
        min_size=2,
        max_size=4,
    ),
    st.integers(min_value=1, max_value=4),
)
@settings(max_examples=10)
def test_concurrent_submitters_every_item_runs_exactly_once(
    plans: list[list[Priority]], workers: int
) -> None:
    pool = WorkerPool(workers, queue_size=20, submit_timeout=10)
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(plans))

    def record(key: tuple[int, int]) -> None:
        with lock:
            seen.append(key)

    def submitter(n: int, plan: list[Priority]) -> None:
        barrier.wait(10)
        for i, level in enumerate(plan):
            pool.submit_with_priority(level, record, (n, i))

    threads = [threading.Thread(target=submitter, args=(n, p)) for n, p in enumerate(plans)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    pool.stop(timeout=20)
    expected = sorted((n, i) for n, plan in enumerate(plans) for i in range(len(plan)))
    assert sorted(seen) == expected
    metrics = pool.metrics()
    assert metrics.submitted == metrics.completed == len(expected)
    assert metrics.queue_depth == (0, 0, 0)
    assert metrics.threads == 0
    assert 1 <= len(set(pool._threads)) <= workers


@given(st.integers(min_value=1, max_value=4), st.integers(min_value=0, max_value=200))
@settings(max_examples=10)
def test_stop_racing_submitters_loses_no_accepted_item(workers: int, stop_after: int) -> None:
    pool = WorkerPool(workers, queue_size=50, submit_timeout=10)
    accepted: list[Future[int]] = []
    refused: list[BrummerError] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)
    submitted = [0]

    def submitter() -> None:
        barrier.wait(10)
        for i in range(150):
            try:
                future = pool.submit(int, str(i))
            except BrummerError as exc:
                with lock:
                    refused.append(exc)
                return
            with lock:
                accepted.append(future)
                submitted[0] += 1

    threads = [threading.Thread(target=submitter) for _ in range(3)]
    for t in threads:
        t.start()
    barrier.wait(10)
    assert wait_until(lambda: submitted[0] >= min(stop_after, 450), timeout=10)
    pool.stop(timeout=20)
    for t in threads:
        t.join(10)
    assert all(f.done() and not f.cancelled() for f in accepted)
    assert all(e.code is ErrorCode.INVALID_STATE for e in refused)
    metrics = pool.metrics()
    assert metrics.submitted == metrics.completed == len(accepted)
    assert metrics.threads == 0


def test_stop_from_the_callback_of_a_timed_out_job_does_not_deadlock() -> None:
    pool = WorkerPool(2)
    job = _EventJob("hang", timeout=0.05, block=True)
    stopped = threading.Event()

    def on_done(_: Future[object]) -> None:  # runs on the watchdog thread
        pool.stop()
        stopped.set()

    pool.submit_job(job).add_done_callback(on_done)
    assert stopped.wait(10)
    job.release.set()
    pool.stop(timeout=10)
    assert pool.metrics().timed_out == 1

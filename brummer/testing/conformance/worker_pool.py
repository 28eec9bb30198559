"""Conformance suite for WorkerPool implementations (API.md §4).

:func:`check_worker_pool` drives fresh pools from a factory and checks:

- every accepted job runs exactly once, a refused one never runs, futures carry results and
  exceptions, under hypothesis-chosen submitters released together by a Barrier;
- strict priority between levels and FIFO within a level (checked one start at a time, so the
  order observed is the order the pool chose);
- metrics add up after ``stop()`` (submitted, completed, failed, rejected, queue depth) and the
  pool never runs more worker threads than ``max_workers``;
- a full queue refuses with ``RESOURCE_LIMIT`` (temporary) and loses nothing accepted;
- a job past its timeout fails its Future with ``TIMEOUT`` and is counted;
- ``stop()`` runs everything accepted, is idempotent, works from inside a job without
  deadlocking, and leaves no thread; ``submit`` afterwards raises ``INVALID_STATE``;
- bad input raises ``INVALID_ARGUMENT`` and leaves the pool usable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

import attrs
import hypothesis
from hypothesis import given, strategies as st

from brummer.contracts import BLOCKING, ThreadSafety, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.pool import Priority
from brummer.testing.conformance._harness import (
    expect_error,
    fail,
    no_thread_leak,
    run_property,
    run_together,
    suite_settings,
    wait_for,
)

__all__ = ["check_worker_pool"]

_WAIT = 10.0  # how long a step may take before the pool is declared stuck
_HELPER_THREADS = 1  # threads a pool may run besides its workers (e.g. a timeout watchdog)


@attrs.frozen
class _Job:
    """A Job (API.md §4): id, timeout, execute."""

    id: str
    timeout: float | None
    run: Callable[[], Any]

    def execute(self) -> Any:
        return self.run()


class _Ledger:
    """Which jobs ran how often, and which were refused."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.runs: dict[str, int] = {}
        self.accepted: dict[str, Future[Any]] = {}
        self.refused: set[str] = set()
        self.expected_failures: set[str] = set()

    def ran(self, job_id: str) -> None:
        with self.guard:
            self.runs[job_id] = self.runs.get(job_id, 0) + 1


def _stop(pool: Any) -> None:
    pool.stop(_WAIT * 3)


def _exactly_once(
    factory: Callable[[], Any], submitters: list[list[tuple[int, bool, bool]]]
) -> None:
    pool = factory()
    ledger = _Ledger()
    peak = [0]
    before = set(threading.enumerate())
    done = threading.Event()
    max_workers = pool.metrics().max_workers

    def job_body(job_id: str, raises: bool) -> Callable[[], str]:
        def body() -> str:
            ledger.ran(job_id)
            if raises:
                raise RuntimeError(f"{job_id} fails on purpose")
            return job_id

        return body

    def submitter(s: int, jobs: list[tuple[int, bool, bool]]) -> Callable[[], None]:
        def run() -> None:
            for k, (priority, as_job, raises) in enumerate(jobs):
                job_id = f"s{s}j{k}"
                body = job_body(job_id, raises)
                try:
                    if as_job:
                        future = pool.submit_job(_Job(job_id, None, body), Priority(priority))
                    else:
                        future = pool.submit(body)
                except BrummerError as exc:
                    if exc.code is not ErrorCode.RESOURCE_LIMIT:
                        raise fail(
                            f"submit refused {job_id} with {exc.code.value}, not RESOURCE_LIMIT"
                        ) from exc
                    with ledger.guard:
                        ledger.refused.add(job_id)
                    continue
                with ledger.guard:
                    ledger.accepted[job_id] = future
                    if raises:
                        ledger.expected_failures.add(job_id)

        return run

    def watcher() -> None:
        while not done.is_set():
            extra = sum(1 for t in threading.enumerate() if t not in before and t.is_alive())
            peak[0] = max(peak[0], extra)
            m = pool.metrics()
            if m.active_workers > max_workers:
                raise fail(
                    f"{m.active_workers} workers active, more than max_workers={max_workers}"
                )
            time.sleep(0.0005)

    with no_thread_leak("worker pool scenario"):
        try:
            targets = [submitter(s, jobs) for s, jobs in enumerate(submitters)]
            last = targets[-1]

            def last_then_done() -> None:
                try:
                    last()
                finally:
                    done.set()

            run_together([*targets[:-1], last_then_done, watcher], what="worker-pool")
        finally:
            done.set()
            _stop(pool)
            _stop(pool)  # idempotent
    for job_id, future in ledger.accepted.items():
        runs = ledger.runs.get(job_id, 0)
        if runs != 1:
            raise fail(f"accepted job {job_id} ran {runs} times, not exactly once")
        if not future.done():
            raise fail(f"stop() returned but the Future of {job_id} is not done")
        if job_id in ledger.expected_failures:
            if not isinstance(future.exception(), RuntimeError):
                raise fail(f"the Future of failing job {job_id} holds {future.exception()!r}")
        elif future.result() != job_id:
            raise fail(f"the Future of {job_id} holds {future.result()!r}")
    for job_id in ledger.refused:
        if ledger.runs.get(job_id):
            raise fail(f"refused job {job_id} ran anyway")
    # Watcher, submitters and the barrier threads are ours: subtract them.
    ours = len(submitters) + 1
    if peak[0] - ours > max_workers + _HELPER_THREADS:
        raise fail(f"the pool ran {peak[0] - ours} threads at once with max_workers={max_workers}")
    m = pool.metrics()
    accepted, failures = len(ledger.accepted), len(ledger.expected_failures)
    if m.queue_depth != (0, 0, 0) or m.active_workers:
        raise fail(f"after stop(): queue depth {m.queue_depth}, {m.active_workers} active workers")
    if (m.submitted, m.completed, m.failed, m.rejected) != (
        accepted,
        accepted - failures,
        failures,
        len(ledger.refused),
    ):
        raise fail(
            f"metrics do not add up after stop(): submitted/completed/failed/rejected = "
            f"{m.submitted}/{m.completed}/{m.failed}/{m.rejected}, expected "
            f"{accepted}/{accepted - failures}/{failures}/{len(ledger.refused)}"
        )


def _more_than(items: list[str], n: int) -> bool:
    return len(items) > n


def _priority_order(factory: Callable[[], Any], priorities: list[int]) -> None:
    """One worker free at a time: the order in which queued jobs start must be (priority, FIFO)."""
    pool = factory()
    workers = pool.metrics().max_workers
    guard = threading.Lock()
    started: list[str] = []
    gates: dict[str, threading.Event] = {}

    def gated(job_id: str) -> Callable[[], None]:
        gate = threading.Event()
        gates[job_id] = gate

        def body() -> None:
            with guard:
                started.append(job_id)
            if not gate.wait(_WAIT):
                raise fail(f"{job_id} was never released")

        return body

    with no_thread_leak("priority scenario"):
        try:
            blockers = [f"blocker{i}" for i in range(workers)]
            for b in blockers:
                pool.submit_job(_Job(b, None, gated(b)), Priority.HIGH)
            wait_for(
                lambda: len(started) == workers, _WAIT, f"all {workers} workers to take a blocker"
            )
            queued: list[tuple[int, int, str]] = []
            for k, p in enumerate(priorities):
                job_id = f"p{p}n{k}"
                try:
                    pool.submit_job(_Job(job_id, None, gated(job_id)), Priority(p))
                except BrummerError as exc:
                    if exc.code is not ErrorCode.RESOURCE_LIMIT:
                        raise
                    break  # the queue is full: order what it holds
                queued.append((p, k, job_id))
            expected = [job_id for _p, _k, job_id in sorted(queued)]
            running = blockers[0]  # the other blockers hold their workers: one serves the queue
            for i, want in enumerate(expected):
                gates[running].set()
                wait_for(
                    partial(_more_than, started, workers + i),
                    _WAIT,
                    f"job number {i + 1} of the queue to start",
                )
                got = started[workers + i]
                if got != want:
                    order = started[workers:]
                    raise fail(
                        f"queued jobs started in the order {order}; strict priority with FIFO "
                        f"within a level wants {expected[: len(order)]} (HIGH=0 first)"
                    )
                running = got
            gates[running].set()
        finally:
            for gate in gates.values():
                gate.set()
            _stop(pool)


def _check_full_queue(factory: Callable[[], Any]) -> None:
    pool = factory()
    workers = pool.metrics().max_workers
    release = threading.Event()
    holding = threading.Semaphore(0)
    ran: list[int] = []
    guard = threading.Lock()

    def blocker() -> None:
        holding.release()
        release.wait(_WAIT)

    def count(k: int) -> None:
        with guard:
            ran.append(k)

    with no_thread_leak("full queue"):
        try:
            for _ in range(workers):
                pool.submit(blocker)
            for _ in range(workers):
                if not holding.acquire(timeout=_WAIT):
                    raise fail("the pool did not start a worker for every blocker")
            accepted = 0
            refusal: BrummerError | None = None
            for k in range(20_000):
                try:
                    pool.submit(count, k)
                except BrummerError as exc:
                    refusal = exc
                    break
                accepted += 1
            if refusal is None:
                raise fail(
                    "20,000 jobs queued behind busy workers and none refused: the queue is not bounded"
                )
            if refusal.code is not ErrorCode.RESOURCE_LIMIT or not refusal.temporary:
                raise fail(
                    f"a full queue refused with {refusal.code.value} (temporary={refusal.temporary}), not RESOURCE_LIMIT temporary"
                )
            if pool.metrics().rejected < 1:
                raise fail("a refused submit was not counted in metrics().rejected")
        finally:
            release.set()
            _stop(pool)
    if sorted(ran) != list(range(accepted)):
        raise fail(f"{accepted} jobs were accepted into the full queue but {len(ran)} ran")


def _check_stop_and_timeouts(factory: Callable[[], Any]) -> None:
    pool = factory()
    with no_thread_leak("stop and timeouts"):
        try:
            expect_error(
                ErrorCode.INVALID_ARGUMENT,
                lambda: pool.submit("not callable"),
                "submit of a non-callable",
                builtin=ValueError,
            )
            expect_error(
                ErrorCode.INVALID_ARGUMENT,
                lambda: pool.submit_job(object()),
                "submit_job of something without execute()",
            )
            expect_error(
                ErrorCode.INVALID_ARGUMENT,
                lambda: pool.submit_job(_Job("j", None, lambda: 1), 7),
                "submit_job with priority 7",
            )
            expect_error(
                ErrorCode.INVALID_ARGUMENT,
                lambda: pool.stop(-1.0),
                "stop(timeout=-1)",
                builtin=ValueError,
            )
            if pool.submit(lambda: 41 + 1).result(_WAIT) != 42:
                raise fail("the pool does not run jobs after bad input")
            release = threading.Event()
            slow = pool.submit_job(_Job("slow", 0.05, lambda: release.wait(_WAIT)), Priority.HIGH)
            try:
                slow.result(_WAIT)
            except BrummerError as exc:
                if exc.code is not ErrorCode.TIMEOUT:
                    raise fail(
                        f"a job past its timeout failed with {exc.code.value}, not TIMEOUT"
                    ) from exc
            except Exception as exc:
                raise fail(
                    f"a job past its timeout failed with {exc!r}, not BrummerError(TIMEOUT)"
                ) from exc
            else:
                raise fail("a job past its 0.05 s timeout succeeded")
            finally:
                release.set()
            wait_for(
                lambda: pool.metrics().timed_out == 1, _WAIT, "metrics().timed_out to count the job"
            )
            inner: Future[Any] = pool.submit(pool.stop)
            inner.result(_WAIT)  # stop() from inside a job returns instead of deadlocking
            expect_error(ErrorCode.INVALID_STATE, lambda: pool.submit(print), "submit after stop()")
        finally:
            _stop(pool)
            _stop(pool)
    pool = factory()
    counted: list[int] = []
    futures: list[Future[Any]] = []
    with no_thread_leak("stop drains"):
        for k in range(50):
            deadline = time.monotonic() + _WAIT
            while True:  # a small queue may refuse for a moment: retry until accepted
                try:
                    futures.append(pool.submit(lambda k=k: counted.append(k)))
                    break
                except BrummerError as refused:
                    if refused.code is not ErrorCode.RESOURCE_LIMIT or time.monotonic() > deadline:
                        raise
        _stop(pool)
    if sorted(counted) != list(range(50)) or not all(f.done() for f in futures):
        raise fail(
            f"after stop() returned, 50 accepted jobs had run {len(counted)} times "
            f"({len(set(counted))} distinct): each must run exactly once before stop() returns"
        )


@contract(ThreadSafety.TS, timeout=BLOCKING)
def check_worker_pool(
    factory: Callable[[], Any], *, settings: hypothesis.settings | None = None
) -> None:
    """Judge the pools ``factory()`` makes by the WorkerPool contract (API.md §4).

    Thread safety: TS. Makes a fresh pool per scenario and stops it; starts and joins its
    own threads.

    Args:
        factory: returns a new running pool (``submit``, ``submit_job(job, priority)``,
            ``stop``, ``metrics``); its queue must be bounded (at most 20,000).
        settings: hypothesis settings (default: 10 examples per property, no database).

    Raises:
        AssertionError: ``ConformanceError`` describing the first broken guarantee.
    """
    chosen = suite_settings(settings)
    job = st.tuples(st.integers(0, 2), st.booleans(), st.integers(0, 9).map(lambda n: n == 0))

    @chosen
    @given(submitters=st.lists(st.lists(job, min_size=1, max_size=40), min_size=1, max_size=6))
    def exactly_once(submitters: list[list[tuple[int, bool, bool]]]) -> None:
        _exactly_once(factory, submitters)

    @chosen
    @given(priorities=st.lists(st.integers(0, 2), min_size=1, max_size=24))
    def priority_order(priorities: list[int]) -> None:
        _priority_order(factory, priorities)

    _check_stop_and_timeouts(factory)
    run_property(priority_order)
    run_property(exactly_once)
    _check_full_queue(factory)

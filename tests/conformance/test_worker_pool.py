"""check_worker_pool against the real WorkerPool and against small pools broken on purpose."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import attrs
import pytest

from brummer.contracts import check_timeout
from brummer.errors import BrummerError, ErrorCode
from brummer.pool import Priority, WorkerPool
from brummer.testing.conformance import ConformanceError, check_worker_pool


@pytest.mark.parametrize(
    "factory",
    [WorkerPool, lambda: WorkerPool(1), lambda: WorkerPool(3, queue_size=5)],
    ids=["WorkerPool", "WorkerPool-1", "WorkerPool-3-queue-5"],
)
def test_pools_conform(factory: Callable[[], Any]) -> None:
    check_worker_pool(factory)


@attrs.frozen
class Metrics:
    submitted: int
    completed: int
    failed: int
    rejected: int
    timed_out: int
    active_workers: int
    max_workers: int
    queue_depth: tuple[int, int, int]


class SimplePool:
    """A small correct pool (heap-free: three lists); each flag below breaks one guarantee."""

    lifo = False
    ignore_priority = False
    run_twice = False
    drop_on_stop = False

    def __init__(self, workers: int = 2, queue_size: int = 100) -> None:
        self.workers = workers
        self.queue_size = queue_size
        self.cond = threading.Condition()
        self.queues: list[list[tuple[Callable[[], Any], Future[Any], float | None]]] = [[], [], []]
        self.threads: list[threading.Thread] = []
        self.stopping = False
        self.counts = {"submitted": 0, "completed": 0, "failed": 0, "rejected": 0, "timed_out": 0}
        self.active = 0

    def _bad(self, message: str) -> BrummerError:
        return BrummerError("pool", ErrorCode.INVALID_ARGUMENT, message, hint="fix it")

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        if not callable(fn):
            raise self._bad("not callable")
        return self._put(lambda: fn(*args), 1, None)

    def submit_job(self, job: Any, priority: Any = Priority.MEDIUM) -> Future[Any]:
        if not callable(getattr(job, "execute", None)):
            raise self._bad("not a job")
        if priority not in (0, 1, 2):
            raise self._bad("priority")
        return self._put(job.execute, int(priority), job.timeout)

    def _put(self, fn: Callable[[], Any], level: int, timeout: float | None) -> Future[Any]:
        future: Future[Any] = Future()
        with self.cond:
            if self.stopping:
                raise BrummerError("pool", ErrorCode.INVALID_STATE, "stopped", hint="new pool")
            if sum(map(len, self.queues)) >= self.queue_size:
                self.counts["rejected"] += 1
                raise BrummerError(
                    "pool", ErrorCode.RESOURCE_LIMIT, "full", hint="later", temporary=True
                )
            self.queues[0 if self.ignore_priority else level].append((fn, future, timeout))
            self.counts["submitted"] += 1
            if len(self.threads) < self.workers:
                t = threading.Thread(target=self._work, daemon=True)
                self.threads.append(t)
                t.start()
            self.cond.notify()
        return future

    def _take(self) -> tuple[Callable[[], Any], Future[Any], float | None] | None:
        with self.cond:
            while True:
                for q in self.queues:
                    if q:
                        self.active += 1
                        return q.pop() if self.lifo else q.pop(0)
                if self.stopping:
                    return None
                self.cond.wait()

    def _work(self) -> None:
        while (item := self._take()) is not None:
            fn, future, timeout = item
            for _ in range(2 if self.run_twice else 1):
                timer = None
                if timeout is not None:

                    def expire(future: Future[Any] = future) -> None:
                        with self.cond:
                            if future.done():
                                return
                            self.counts["timed_out"] += 1
                        future.set_exception(
                            BrummerError("pool", ErrorCode.TIMEOUT, "slow", hint="faster")
                        )

                    timer = threading.Timer(timeout, expire)
                    timer.start()
                try:
                    result = fn()
                    ok = True
                except Exception as exc:
                    result, ok = exc, False
                if timer is not None:
                    timer.cancel()
                    timer.join()
                with self.cond:
                    self.counts["completed" if ok else "failed"] += 1
                if not future.done():
                    if ok:
                        future.set_result(result)
                    else:
                        future.set_exception(result)  # type: ignore[arg-type]
            with self.cond:
                self.active -= 1

    def stop(self, timeout: float | None = None) -> None:
        check_timeout("pool", timeout)
        with self.cond:
            self.stopping = True
            if self.drop_on_stop:
                for q in self.queues:
                    q.clear()
            self.cond.notify_all()
            threads = list(self.threads)
        if threading.current_thread() in threads:
            return
        for t in threads:
            t.join(timeout)

    def metrics(self) -> Metrics:
        with self.cond:
            return Metrics(
                **self.counts,
                active_workers=self.active,
                max_workers=self.workers,
                queue_depth=(len(self.queues[0]), len(self.queues[1]), len(self.queues[2])),
            )


class LifoPool(SimplePool):
    lifo = True


class NoPriorityPool(SimplePool):
    ignore_priority = True


class RunsTwicePool(SimplePool):
    run_twice = True


class DropsOnStopPool(SimplePool):
    drop_on_stop = True


class UnboundedPool(SimplePool):
    def __init__(self) -> None:
        super().__init__(queue_size=10**9)


def test_a_correct_third_party_pool_conforms() -> None:
    check_worker_pool(SimplePool)


@pytest.mark.parametrize(
    ("factory", "complaint"),
    [
        (LifoPool, "strict priority with FIFO"),
        (NoPriorityPool, "strict priority"),
        (RunsTwicePool, "exactly once|ran 2 times|metrics do not add up"),
        (DropsOnStopPool, "exactly once|ran 0 times|not done"),
        (UnboundedPool, "not bounded"),
    ],
    ids=["lifo", "no-priority", "runs-twice", "drops-on-stop", "unbounded"],
)
def test_broken_pools_are_caught(factory: Callable[[], Any], complaint: str) -> None:
    with pytest.raises(ConformanceError, match=complaint):
        check_worker_pool(factory)

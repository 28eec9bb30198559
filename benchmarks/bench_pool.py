"""WorkerPool throughput against the stdlib ThreadPoolExecutor, measured in the same process.

Run: ``python benchmarks/bench_pool.py`` (about 20 s). Each figure is the best of
``ROUNDS`` runs of at least 100 ms of work.

1. submit one trivial callable at a time from one thread, then wait for all (issue 2
   target: WorkerPool ≥ 3× ThreadPoolExecutor);
2. the same from 4 submitting threads;
3. ``map`` over a range;
4. priority order kept under load: jobs submitted LOW/MEDIUM/HIGH while one worker is busy.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brummer.pool import Priority, WorkerPool

N = 50_000
ROUNDS = 3
WORKERS = min(32, (os.cpu_count() or 1) * 4)


def _noop() -> None:
    return None


def _one_submitter(make: Callable[[], Executor]) -> float:
    pool = make()
    try:
        start = time.perf_counter()
        futures: list[Future[None]] = [pool.submit(_noop) for _ in range(N)]
        wait(futures)
        return N / (time.perf_counter() - start)
    finally:
        pool.shutdown(wait=True)


def _four_submitters(make: Callable[[], Executor]) -> float:
    pool = make()
    per = N // 4
    barrier = threading.Barrier(5)
    done: list[list[Future[None]]] = []

    def submitter() -> None:
        barrier.wait()
        done.append([pool.submit(_noop) for _ in range(per)])

    threads = [threading.Thread(target=submitter) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        for futures in done:
            wait(futures)
        return 4 * per / (time.perf_counter() - start)
    finally:
        pool.shutdown(wait=True)


def _map(make: Callable[[], Executor]) -> float:
    pool = make()
    try:
        start = time.perf_counter()
        for _ in pool.map(abs, range(N)):
            pass
        return N / (time.perf_counter() - start)
    finally:
        pool.shutdown(wait=True)


def _best(measure: Callable[[Callable[[], Executor]], float], make: Callable[[], Executor]) -> float:
    return max(measure(make) for _ in range(ROUNDS))


def _priority_order() -> bool:
    pool = WorkerPool(1, queue_size=10_000)
    gate = threading.Event()
    order: list[int] = []
    try:
        pool.submit(gate.wait)
        for i in range(3000):
            level = Priority(i % 3)
            pool.submit_with_priority(level, order.append, int(level))
        gate.set()
    finally:
        pool.stop()
    return order == sorted(order)


def main() -> None:
    print(f"python {sys.version.split()[0]}, cpu_count={os.cpu_count()}, workers={WORKERS}, N={N}")
    ours: Callable[[], Executor] = lambda: WorkerPool(WORKERS, queue_size=N)  # noqa: E731
    stdlib: Callable[[], Executor] = lambda: ThreadPoolExecutor(WORKERS)  # noqa: E731
    for label, measure in (
        ("submit one at a time, then wait", _one_submitter),
        ("4 submitting threads", _four_submitters),
        ("map", _map),
    ):
        base = _best(measure, stdlib)
        mine = _best(measure, ours)
        print(
            f"{label:34s} WorkerPool {mine:>10,.0f}/s  ThreadPoolExecutor {base:>10,.0f}/s"
            f"  ratio {mine / base:5.2f}x"
        )
    print(f"priority order kept with 1 worker: {_priority_order()}")


if __name__ == "__main__":
    main()

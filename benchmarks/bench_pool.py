"""WorkerPool throughput against the stdlib ThreadPoolExecutor, measured in the same process.

Run: ``python benchmarks/bench_pool.py`` (about 20 s). Each figure is the best of
``ROUNDS`` runs of at least 100 ms of work; "cpu" is process CPU time per item (all threads),
which the noise of other processes on a shared machine disturbs less than wall time.

0. the floor: creating and resolving the same number of Futures on one thread, no pool at
   all (no pool can beat it: it bounds the ratio any pool can reach on this machine);
1. submit one trivial callable at a time from one thread, then wait for all (issue 2
   target: WorkerPool ≥ 3x ThreadPoolExecutor);
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

N = 40_000
ROUNDS = 3
WORKERS = min(32, (os.cpu_count() or 1) * 4)


def _noop() -> None:
    return None


Figure = tuple[float, float]  # items per second, CPU microseconds per item


def _figure(count: int, start: float, cpu: float) -> Figure:
    return count / (time.perf_counter() - start), (time.process_time() - cpu) / count * 1e6


def _floor(_: Callable[[], Executor]) -> Figure:
    start, cpu = time.perf_counter(), time.process_time()
    futures: list[Future[None]] = []
    for _ in range(N):
        future: Future[None] = Future()
        futures.append(future)
        future.set_running_or_notify_cancel()
        future.set_result(_noop())
    wait(futures)
    return _figure(N, start, cpu)


def _one_submitter(make: Callable[[], Executor]) -> Figure:
    pool = make()
    try:
        start, cpu = time.perf_counter(), time.process_time()
        futures: list[Future[None]] = [pool.submit(_noop) for _ in range(N)]
        wait(futures)
        return _figure(N, start, cpu)
    finally:
        pool.shutdown(wait=True)


def _four_submitters(make: Callable[[], Executor]) -> Figure:
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
        start, cpu = time.perf_counter(), time.process_time()
        for t in threads:
            t.join()
        for futures in done:
            wait(futures)
        return _figure(4 * per, start, cpu)
    finally:
        pool.shutdown(wait=True)


def _map(make: Callable[[], Executor]) -> Figure:
    pool = make()
    try:
        start, cpu = time.perf_counter(), time.process_time()
        for _ in pool.map(abs, range(N)):
            pass
        return _figure(N, start, cpu)
    finally:
        pool.shutdown(wait=True)


def _best(
    measure: Callable[[Callable[[], Executor]], Figure], make: Callable[[], Executor]
) -> Figure:
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
    rate, cpu = _best(_floor, stdlib)
    print(f"{'floor: Futures only, no pool':34s} {rate:>10,.0f}/s  cpu {cpu:5.1f} us/item")
    for label, measure in (
        ("submit one at a time, then wait", _one_submitter),
        ("4 submitting threads", _four_submitters),
        ("map", _map),
    ):
        base, base_cpu = _best(measure, stdlib)
        mine, mine_cpu = _best(measure, ours)
        print(
            f"{label:34s} WorkerPool {mine:>9,.0f}/s ({mine_cpu:4.1f} us)"
            f"  ThreadPoolExecutor {base:>9,.0f}/s ({base_cpu:4.1f} us)"
            f"  ratio {mine / base:5.2f}x  (floor/stdlib {rate / base:4.2f}x)"
        )
    print(f"priority order kept with 1 worker: {_priority_order()}")


if __name__ == "__main__":
    main()

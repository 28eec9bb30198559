"""ResourceManager and Context costs, against stdlib baselines measured in the same process.

Run: ``python benchmarks/bench_resources.py`` (about 10 s). Each figure is the best of
``ROUNDS`` runs of at least 100 ms of work.

1. acquire+release of 1 FILES, one thread (baseline: ``threading.BoundedSemaphore``);
2. the same from 4 threads on a limit of 2, so they really wait (baseline: the semaphore,
   which is not FIFO-fair);
3. ``Context``: creating a child, ``raise_if_done()`` on a live context, and cancelling a
   root with 10,000 children (no thread per context).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brummer.operations import Context
from brummer.resources import ResourceManager, ResourceType

ROUNDS = 3
N = 100_000
FILES = ResourceType.FILES


def _rate(count: int, fn: Callable[[], None]) -> float:
    best = 0.0
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        best = max(best, count / (time.perf_counter() - start))
    return best


def _manager_one_thread() -> None:
    manager = ResourceManager({FILES: 10})
    for _ in range(N):
        manager.release(manager.acquire(FILES))


def _semaphore_one_thread() -> None:
    sem = threading.BoundedSemaphore(10)
    for _ in range(N):
        sem.acquire()
        sem.release()


def _contended(acquire: Callable[[], object], release: Callable[[object], None]) -> None:
    per = N // 8
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        for _ in range(per):
            release(acquire())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _manager_contended() -> None:
    manager = ResourceManager({FILES: 2})
    _contended(lambda: manager.acquire(FILES), manager.release)  # type: ignore[arg-type]


def _semaphore_contended() -> None:
    sem = threading.BoundedSemaphore(2)
    _contended(sem.acquire, lambda _: sem.release())


def _children() -> None:
    root = Context.background()
    for _ in range(N):
        root.with_cancel()


def _checks() -> None:
    ctx = Context.background().with_timeout(60)
    for _ in range(N):
        ctx.raise_if_done()


def _cancel_tree() -> float:
    root = Context.background()
    children = [root.with_cancel() for _ in range(10_000)]
    start = time.perf_counter()
    root.cancel()
    elapsed = time.perf_counter() - start
    assert all(c.cancelled for c in children)
    return elapsed


def main() -> None:
    print(f"python {sys.version.split()[0]}, N={N}")
    ours = _rate(N, _manager_one_thread)
    base = _rate(N, _semaphore_one_thread)
    print(
        f"{'acquire+release, 1 thread':34s} ResourceManager {ours:>10,.0f}/s"
        f"  BoundedSemaphore {base:>10,.0f}/s  ratio {ours / base:4.2f}x"
    )
    ours = _rate(N // 2, _manager_contended)
    base = _rate(N // 2, _semaphore_contended)
    print(
        f"{'acquire+release, 4 threads, limit 2':34s} ResourceManager {ours:>10,.0f}/s"
        f"  BoundedSemaphore {base:>10,.0f}/s  ratio {ours / base:4.2f}x"
    )
    print(f"{'Context.with_cancel()':34s} {_rate(N, _children):>10,.0f}/s")
    print(f"{'Context.raise_if_done() (live)':34s} {_rate(N, _checks):>10,.0f}/s")
    print(
        f"{'cancel a root with 10,000 children':34s} {min(_cancel_tree() for _ in range(3)) * 1e3:8.2f} ms"
    )


if __name__ == "__main__":
    main()

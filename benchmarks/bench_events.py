"""Event bus benchmarks: throughput, latency and memory, against a ThreadPoolExecutor dispatch.

Run: ``python benchmarks/bench_events.py`` (about 40 s; ``--quick`` for a short smoke run,
``--only throughput|latency|memory`` for one section).

Figures (each measurement is ≥ 100 ms of work; medians of several runs):

- throughput, 1 publisher, trivial handler: events delivered per second, from the first
  publish until ``stop()`` returned (every event delivered, threads joined). Events are built
  before timing; a second figure includes building each Event in the publishing loop.
- the same through a dispatch built on ``concurrent.futures.ThreadPoolExecutor`` (one
  ``submit(handler, event)`` per event, then ``shutdown(wait=True)``), in the same process.
- 4 concurrent publishers (released together by a Barrier).
- latency publish → handler at a steady 10,000 events/s (bursts of 10 every 1 ms, 2 s).
- RSS while 10 million events go through the bus (events reused from a pool of 1,000, so
  the figure is the bus's own memory, not the events').
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psutil

from brummer.events import Event, EventBus, EventType


def _noop(event: Event) -> None:
    """The trivial handler."""


def _median(runs: list[float]) -> tuple[float, float, float]:
    return statistics.median(runs), min(runs), max(runs)


def bus_one_publisher(events: list[Event], n: int, *, build: bool) -> tuple[float, float]:
    """Events per wall-clock second and per CPU second through an EventBus (1 publisher).

    Publishes ``events`` (pre-built), or builds ``n`` events in the loop when ``build``.
    """
    if not build:
        n = len(events)
    bus = EventBus(queue_size=n)  # room for all: nothing is shed, every event is delivered
    bus.subscribe(EventType.LOG_LINE, _noop)
    publish = bus.publish
    cpu = time.process_time()
    started = time.perf_counter()
    if build:
        for i in range(n):
            publish(Event(EventType.LOG_LINE, {"i": i}))
    else:
        for event in events:
            publish(event)
    bus.stop(timeout=60)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    metrics = bus.metrics()
    assert metrics.events_processed == n, metrics
    return n / elapsed, n / cpu


def tpe_one_publisher(events: list[Event]) -> tuple[float, float]:
    """Events per wall-clock and per CPU second through a ThreadPoolExecutor dispatch."""
    n = len(events)
    executor = ThreadPoolExecutor(max_workers=4)
    executor.submit(_noop, events[0]).result()  # workers started before timing
    submit = executor.submit
    cpu = time.process_time()
    started = time.perf_counter()
    for event in events:
        submit(_noop, event)
    executor.shutdown(wait=True)
    return n / (time.perf_counter() - started), n / (time.process_time() - cpu)


def bus_many_publishers(events: list[Event], publishers: int) -> float:
    """Events per second with ``publishers`` threads publishing their share of ``events``."""
    n = len(events)
    per = n // publishers
    chunks = [events[k * per : (k + 1) * per] for k in range(publishers)]
    bus = EventBus(queue_size=n)
    bus.subscribe(EventType.LOG_LINE, _noop)
    barrier = threading.Barrier(publishers + 1)

    def run(events: list[Event]) -> None:
        barrier.wait()
        for event in events:
            bus.publish(event)

    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    bus.stop(timeout=60)
    elapsed = time.perf_counter() - started
    assert bus.metrics().events_processed == per * publishers
    return per * publishers / elapsed


def bus_latency(seconds: float, rate: int = 10_000, burst: int = 10) -> list[float]:
    """Publish→handler latencies at a steady rate through the EventBus."""
    latencies: list[float] = []
    clock = time.perf_counter

    def handler(event: Event) -> None:
        latencies.append(clock() - event.data["t"])

    bus = EventBus()
    bus.subscribe(EventType.LOG_LINE, handler)
    _paced(lambda t: bus.publish(Event(EventType.LOG_LINE, {"t": t})), seconds, rate, burst)
    bus.stop()
    return latencies


def tpe_latency(seconds: float, rate: int = 10_000, burst: int = 10) -> list[float]:
    """The same through a ThreadPoolExecutor dispatch."""
    latencies: list[float] = []
    clock = time.perf_counter

    def handler(event: Event) -> None:
        latencies.append(clock() - event.data["t"])

    executor = ThreadPoolExecutor(max_workers=4)
    _paced(
        lambda t: executor.submit(handler, Event(EventType.LOG_LINE, {"t": t})),
        seconds,
        rate,
        burst,
    )
    executor.shutdown(wait=True)
    return latencies


def _paced(publish: Callable[[float], object], seconds: float, rate: int, burst: int) -> None:
    """Call ``publish(now)`` ``burst`` times every ``burst / rate`` seconds.

    Between bursts the publisher sleeps (``sleep(0)`` for the last 0.2 ms), so it never
    holds the GIL while waiting, as a real publisher blocked on a pipe would not.
    """
    clock = time.perf_counter
    period = burst / rate
    start = clock()
    bursts = int(seconds * rate / burst)
    for k in range(bursts):
        due = start + k * period
        while (now := clock()) < due:
            time.sleep(due - now - 0.0002 if due - now > 0.0003 else 0)
        for _ in range(burst):
            publish(clock())


def _percentiles(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[int(len(ordered) * 0.99)]
    return p50 * 1e6, p99 * 1e6, ordered[-1] * 1e6


def rss_over(total: int, every: int) -> list[tuple[int, float]]:
    """RSS in MB after each ``every`` events, while ``total`` events go through one bus."""
    proc = psutil.Process(os.getpid())
    logging.getLogger("brummer.events").setLevel(logging.ERROR)  # shedding is expected here
    pool = [Event(EventType.LOG_LINE, {"i": i}, process_id="p") for i in range(1000)]
    bus = EventBus()  # default queue_size 10_000, DROP_OLDEST
    bus.subscribe(EventType.LOG_LINE, _noop)
    publish = bus.publish
    samples = []
    sent = 0
    while sent < total:
        for _ in range(every // 1000):
            for event in pool:
                publish(event)
        sent += every
        samples.append((sent, proc.memory_info().rss / 1e6))
    bus.stop(timeout=60)
    metrics = bus.metrics()
    assert metrics.events_published == total
    assert metrics.events_processed + metrics.events_dropped == total
    print(
        f"memory run: {metrics.events_processed:,} delivered, {metrics.events_dropped:,} shed "
        "(the publisher outran the handler; DROP_OLDEST, queue_size 10,000)"
    )
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--only", choices=["throughput", "latency", "memory"], help="run one section only"
    )
    args = parser.parse_args()
    n = 200_000 if args.quick else 1_000_000
    n_tpe = 30_000 if args.quick else 60_000
    repeats = 1 if args.quick else 3
    total = 1_000_000 if args.quick else 10_000_000
    seconds = 0.5 if args.quick else 2.0
    began = time.perf_counter()
    print(f"CPU count {os.cpu_count()}, load average {os.getloadavg()}")

    if args.only in (None, "throughput"):
        throughput(n, n_tpe, repeats)
    if args.only in (None, "latency"):
        latency(seconds)
    if args.only in (None, "memory"):
        memory(total)
    print(f"total benchmark time {time.perf_counter() - began:.1f} s")


def throughput(n: int, n_tpe: int, repeats: int) -> None:
    """One and four publishers through the bus, and the ThreadPoolExecutor baseline."""
    events = [Event(EventType.LOG_LINE, {"i": i}, process_id=f"p{i % 4}") for i in range(n)]
    bus1_runs = [bus_one_publisher(events, 0, build=False) for _ in range(repeats)]
    tpe1_runs = [tpe_one_publisher(events[:n_tpe]) for _ in range(repeats)]
    build1 = [bus_one_publisher([], n // 5, build=True)[0] for _ in range(repeats)]
    bus4 = [bus_many_publishers(events, 4) for _ in range(repeats)]
    bus1 = [wall for wall, _ in bus1_runs]
    tpe1 = [wall for wall, _ in tpe1_runs]
    ratios = [b / t for b, t in zip(bus1, tpe1, strict=True)]
    for label, runs, target in (
        ("EventBus, 1 publisher, pre-built events", bus1, 1_000_000),
        ("ThreadPoolExecutor(4) dispatch, 1 publisher", tpe1, None),
        ("EventBus, 1 publisher, Event built in the loop", build1, None),
        ("EventBus, 4 publishers, pre-built events", bus4, 200_000),
    ):
        med, lo, hi = _median(runs)
        verdict = "" if target is None else (" MET" if med >= target else " NOT MET")
        goal = "" if target is None else f" (target ≥ {target:,})"
        print(f"{label}: median {med:,.0f} events/s [min {lo:,.0f}, max {hi:,.0f}]{goal}{verdict}")
    med, lo, hi = _median(ratios)
    print(
        f"EventBus / ThreadPoolExecutor, 1 publisher: median {med:.1f}x [min {lo:.1f}, max {hi:.1f}]"
        f" (target ≥ 10x){' MET' if med >= 10 else ' NOT MET'}"
    )
    bus_cpu = statistics.median(cpu for _, cpu in bus1_runs)
    tpe_cpu = statistics.median(cpu for _, cpu in tpe1_runs)
    print(
        f"per CPU second of this process (less sensitive to other load): EventBus "
        f"{bus_cpu:,.0f} events/s, ThreadPoolExecutor {tpe_cpu:,.0f} events/s "
        f"({bus_cpu / tpe_cpu:.1f}x)"
    )


def latency(seconds: float) -> None:
    """Publish→handler latency at a steady 10,000 events/s."""
    for label, fn in (("EventBus", bus_latency), ("ThreadPoolExecutor(4)", tpe_latency)):
        p50, p99, worst = _percentiles(fn(seconds))
        goal = " (target p99 ≤ 100 µs)" if label == "EventBus" else ""
        verdict = (" MET" if p99 <= 100 else " NOT MET") if goal else ""
        print(
            f"{label} latency at 10,000 events/s: p50 {p50:.1f} µs, p99 {p99:.1f} µs, "
            f"max {worst:.0f} µs{goal}{verdict}"
        )


def memory(total: int) -> None:
    """RSS while ``total`` events go through one bus."""
    samples = rss_over(total, total // 10)
    first = samples[0][1]
    peak_after = max(rss for _, rss in samples[1:]) if len(samples) > 1 else first
    print(
        "RSS (MB) after each tenth of "
        f"{total:,} events: " + ", ".join(f"{rss:.1f}" for _, rss in samples)
    )
    growth = peak_after - first
    print(
        f"RSS growth after the first {samples[0][0]:,} events: {growth:+.1f} MB"
        f"{' (flat: MET)' if growth < 2.0 else ' (grows: NOT MET)'}"
    )


if __name__ == "__main__":
    main()

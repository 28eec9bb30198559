"""Benchmark the process manager: ingestion throughput, line latency, tree-stop times.

Run: python benchmarks/bench_process.py [--quick]

Figures printed (each measurement does ≥ 100 ms of work):

- one child printing 1,000,000 short lines → every line in the log store (child start to
  last line stored), and ten such children at once; a stdlib baseline (``for line in
  proc.stdout`` into a list) runs the same child in the same process;
- child → store latency of a flushed line at 1,000 lines/s (p50/p99/max);
- stop of a three-level cooperative tree, of a SIGTERM-ignoring tree (minus the grace
  period), and start + cleanup of 50 supervised children.

The store is ``brummer.logs.LogStore`` (with detection) when it is importable, else a
minimal list store (say which in the results).
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brummer.process import ProcessManager, ProcessStatus

QUICK = "--quick" in sys.argv
LINES = 200_000 if QUICK else 1_000_000
PY = sys.executable
# The child writes like the reference child: an ordinary block-buffered stdout (8 KiB).
CHILD = (
    "import sys\nw = sys.stdout.write\n"
    f"for i in range({LINES}):\n"
    "    w(f'line {i} some text\\n') if i % 100 else w(f'line {i} warn see http://127.0.0.1:8080/x/{i}\\n')\n"
)
BUFFERED = {"PYTHONUNBUFFERED": ""}


class CountingStore:
    """Minimal store (list + lock), used when brummer.logs.LogStore is not there yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[Any] = []

    def add(self, process_id: str, process_name: str, content: str, is_error: bool = False) -> Any:
        with self._lock:
            self.entries.append(content)

    def add_batch(self, entries: Sequence[Any]) -> Any:
        with self._lock:
            self.entries.extend(entries)


def make_store(capacity: int) -> tuple[Any, str, Any]:
    try:
        from brummer.logs import LogStore
    except ImportError:
        store = CountingStore()
        return (
            store,
            "minimal list store (brummer.logs.LogStore not importable)",
            lambda: len(store.entries),
        )
    real = LogStore(max_entries=capacity)
    return real, "brummer.logs.LogStore (detection on)", lambda: real.metrics().total_entries


def close_store(store: Any) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()


def throughput(children: int) -> tuple[float, str]:
    store, kind, _count = make_store(LINES * children)
    with tempfile.TemporaryDirectory() as work:
        pm = ProcessManager(work, log_store=store)
        try:
            began = time.perf_counter()
            procs = [
                pm.start_command(f"burst{i}", PY, ["-c", CHILD], env=BUFFERED)
                for i in range(children)
            ]
            for proc in procs:
                assert proc.wait(300) is ProcessStatus.SUCCESS
            elapsed = time.perf_counter() - began
        finally:
            pm.cleanup()
    total = LINES * children
    close_store(store)
    return total / elapsed, kind


class NullStore:
    """Counts lines and stores nothing: shows what the process side alone costs."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, process_id: str, process_name: str, content: str, is_error: bool = False) -> Any:
        self.count += 1

    def add_batch(self, entries: Sequence[Any]) -> Any:
        self.count += len(entries)

    def add_lines(
        self, process_id: str, process_name: str, lines: Sequence[str], is_error: bool
    ) -> Any:
        self.count += len(lines)


def reader_ceiling() -> float:
    """``cat`` of a prepared file into a store that does nothing: the reader is the bottleneck."""
    total = LINES * 2
    with tempfile.TemporaryDirectory() as work:
        path = Path(work, "lines.txt")
        path.write_text("".join(f"line {i} some text\n" for i in range(total)))
        store = NullStore()
        pm = ProcessManager(work, log_store=store)
        try:
            began = time.perf_counter()
            proc = pm.start_command("cat", "cat", [str(path)])
            assert proc.wait(120) is ProcessStatus.SUCCESS
            elapsed = time.perf_counter() - began
        finally:
            pm.cleanup()
    assert store.count == total
    return total / elapsed


def child_alone() -> float:
    began = time.perf_counter()
    subprocess.run([PY, "-c", CHILD], stdout=subprocess.DEVNULL, check=True)
    return LINES / (time.perf_counter() - began)


def baseline() -> float:
    began = time.perf_counter()
    out: list[str] = []
    lock = threading.Lock()
    proc = subprocess.Popen([PY, "-c", CHILD], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    for line in proc.stdout:
        with lock:
            out.append(line.decode())
    proc.wait()
    elapsed = time.perf_counter() - began
    assert len(out) == LINES
    return LINES / elapsed


LATENCY_CHILD = """
import sys, time
n = int(sys.argv[1])
start = time.monotonic()
for i in range(n):
    due = start + i / 1000
    while time.monotonic() < due:
        time.sleep(max(0.0, due - time.monotonic() - 0.0002))
    print(f"{time.monotonic():.9f}", flush=True)
"""


def latency(n: int) -> list[float]:
    store, _kind, _ = make_store(10_000)
    delays: list[float] = []

    class Timed:
        def add(self, *args: Any, **kwargs: Any) -> Any:
            return store.add(*args, **kwargs)

        def add_batch(self, entries: Sequence[Any]) -> Any:
            result = store.add_batch(entries)
            now = time.monotonic()
            for entry in entries:
                with contextlib.suppress(ValueError):
                    delays.append(now - float(entry.content))
            return result

    with tempfile.TemporaryDirectory() as work:
        pm = ProcessManager(work, log_store=Timed())
        try:
            proc = pm.start_command("latency", PY, ["-c", LATENCY_CHILD, str(n)])
            assert proc.wait(60) is ProcessStatus.SUCCESS
        finally:
            pm.cleanup()
    close_store(store)
    return delays


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


THREE_LEVELS = "sh -c 'sleep 100 & wait' & sleep 100 & wait"
IGNORING = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
level = int(sys.argv[1])
if level < 2:
    subprocess.Popen([sys.executable, "-c", sys.argv[2], str(level + 1), sys.argv[2]])
print("up", flush=True)
time.sleep(300)
"""


def stop_times(repeats: int) -> tuple[list[float], list[float], float]:
    coop: list[float] = []
    ignoring: list[float] = []
    grace = 0.2
    lines: dict[str, int] = {}
    lock = threading.Lock()

    def on_line(pid: str, line: str, is_error: bool) -> None:
        with lock:
            lines[pid] = lines.get(pid, 0) + 1

    with tempfile.TemporaryDirectory() as work:
        pm = ProcessManager(work)
        pm.register_log_callback(on_line)
        try:
            from brummer.process.kill import KillTarget, tree_pids

            for _ in range(repeats):
                proc = pm.start_command("coop", THREE_LEVELS)
                assert proc.pid is not None
                deadline = time.monotonic() + 5
                while len(tree_pids(KillTarget(proc.pid))) < 4 and time.monotonic() < deadline:
                    time.sleep(0.002)
                began = time.perf_counter()
                pm.stop_process(proc.id)
                coop.append(time.perf_counter() - began)
            for _ in range(max(3, repeats // 4)):
                proc = pm.start_command("ignoring", PY, ["-c", IGNORING, "0", IGNORING])
                deadline = time.monotonic() + 10
                while lines.get(proc.id, 0) < 3 and time.monotonic() < deadline:
                    time.sleep(0.002)
                began = time.perf_counter()
                pm.stop_process(proc.id, timeout=grace)
                ignoring.append(time.perf_counter() - began - grace)
            began = time.perf_counter()
            procs = [pm.start_command(f"s{i}", "exec sleep 100") for i in range(50)]
            started = time.perf_counter() - began
            assert all(p.is_running() for p in procs)
        finally:
            began = time.perf_counter()
            pm.cleanup()
            fifty = time.perf_counter() - began
    print(f"  (50 children started in {started * 1000:.0f} ms)")
    return coop, ignoring, fifty


def main() -> None:
    t0 = time.perf_counter()
    print(f"bench_process: {LINES:,} lines per child{' (quick)' if QUICK else ''}")
    print(f"child alone (stdout to /dev/null): {child_alone():,.0f} lines/s")
    base = baseline()
    print(f"stdlib baseline (for line in proc.stdout, list+lock): {base:,.0f} lines/s")
    one, kind = throughput(1)
    print(f"store: {kind}")
    print(f"1 child  → store, end to end: {one:,.0f} lines/s ({one / base:.2f} x baseline)")
    ten, _ = throughput(10)
    print(f"10 children → store, total:   {ten:,.0f} lines/s")
    print(
        f"reader ceiling (cat of a file, store that does nothing): {reader_ceiling():,.0f} lines/s"
    )
    delays = latency(1000 if QUICK else 2000)
    print(
        f"latency child flush → stored @1,000 lines/s: p50 {pct(delays, 0.5) * 1e3:.3f} ms, "
        f"p99 {pct(delays, 0.99) * 1e3:.3f} ms, max {max(delays) * 1e3:.3f} ms (n={len(delays)})"
    )
    coop, ignoring, fifty = stop_times(10 if QUICK else 30)
    print(
        f"stop 3-level cooperative tree: median {statistics.median(coop) * 1e3:.2f} ms, "
        f"max {max(coop) * 1e3:.2f} ms (n={len(coop)})"
    )
    print(
        f"stop 3-level SIGTERM-ignoring tree, beyond the 0.2 s grace: median "
        f"{statistics.median(ignoring) * 1e3:.2f} ms, max {max(ignoring) * 1e3:.2f} ms (n={len(ignoring)})"
    )
    print(f"cleanup of 50 supervised children: {fifty * 1e3:.1f} ms")
    print(f"total bench time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()

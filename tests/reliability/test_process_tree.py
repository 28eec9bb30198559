"""Process trees whose grandchildren ignore SIGTERM: start and stop them over and over.

Every cycle starts trees of 1 + 2 + 4 Python processes (the 4 grandchildren ignore SIGTERM),
waits until every process of every tree has said it is ready, stops them with a short grace
period, and proves that not one of the processes it saw survives. CI runs a few cycles;
``BRUMMER_SOAK=1`` runs 1,000.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from brummer.process import ProcessManager, ProcessStatus
from tests.helpers import wait_until
from tests.reliability._budget import no_leaks, scale

TREE = r"""
import os, signal, subprocess, sys, time
level = int(sys.argv[1])
if level == 2:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
kids = []
if level < 2:
    for _ in range(2):
        kids.append(subprocess.Popen([sys.executable, "-c", sys.argv[2], str(level + 1), sys.argv[2]]))
os.write(1, f"ready {os.getpid()}\n".encode())  # one write: lines of 7 processes share a pipe
while True:
    time.sleep(3600)
"""

pytestmark = pytest.mark.reliability

TREES_PER_CYCLE = 3
PROCS_PER_TREE = 7


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_tree_start_stop_cycles_leave_no_survivor(tmp_path: Path) -> None:
    cycles = scale(4, 1000)
    ready: dict[str, list[int]] = {}
    guard = threading.Lock()

    def on_line(process_id: str, line: str, is_error: bool) -> None:
        if line.startswith("ready "):
            with guard:
                ready.setdefault(process_id, []).append(int(line.split()[1]))

    seen_total = 0
    stop_times: list[float] = []
    started = time.monotonic()
    with no_leaks("process tree cycles"):
        pm = ProcessManager(tmp_path, stop_timeout=0.2)
        try:
            pm.register_log_callback(on_line)
            for cycle in range(cycles):
                procs = [
                    pm.start_command(f"tree{cycle}-{t}", sys.executable, ["-c", TREE, "0", TREE])
                    for t in range(TREES_PER_CYCLE)
                ]
                assert wait_until(
                    lambda procs=procs: all(
                        len(ready.get(p.id, ())) == PROCS_PER_TREE for p in procs
                    ),
                    timeout=30.0,
                ), (
                    f"cycle {cycle}: trees did not come up: { {p.id: ready.get(p.id) for p in procs} }"
                )
                members = []
                for p in procs:
                    for pid in ready[p.id]:
                        try:
                            members.append(psutil.Process(pid))
                        except psutil.NoSuchProcess:
                            pytest.fail(
                                f"cycle {cycle}: process {pid} of {p.id} died before the stop"
                            )
                seen_total += len(members)
                t0 = time.monotonic()
                stoppers = [
                    threading.Thread(target=pm.stop_process, args=(p.id, 0.2)) for p in procs
                ]
                for s in stoppers:
                    s.start()
                for s in stoppers:
                    s.join(30.0)
                stop_times.append(time.monotonic() - t0)
                survivors = [m.pid for m in members if _alive(m)]
                assert not survivors, f"cycle {cycle}: survivors after stop_process: {survivors}"
                assert all(p.status is ProcessStatus.STOPPED for p in procs), [
                    p.status for p in procs
                ]
                pm.clear_finished()
        finally:
            pm.cleanup(timeout=30.0)
    elapsed = time.monotonic() - started
    stop_times.sort()
    print(
        f"[reliability] process trees: {cycles} cycles x {TREES_PER_CYCLE} trees, "
        f"{seen_total} processes started and stopped, 0 survivors, {elapsed:.1f} s; "
        f"stop of 3 trees in parallel: median {stop_times[len(stop_times) // 2] * 1000:.0f} ms, "
        f"max {stop_times[-1] * 1000:.0f} ms (grace 200 ms)"
    )

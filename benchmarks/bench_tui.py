"""Benchmark the interface under a log flood: frame render, key-to-redraw, CPU, startup.

Setup: the real container (process manager, log store, event bus) with 100,000 lines already
stored and a real child printing 10,000 lines a second. The interface runs headlessly in this
thread: each frame is "refresh what is dirty, then render the whole screen" (what urwid's
idle redraw does), timed with perf_counter. Startup is measured in a real pseudo-terminal:
from spawning ``python -m brummer --demo`` to the first frame on screen.

Run: python benchmarks/bench_tui.py
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import socket
import statistics
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from brummer.app import Brummer  # noqa: E402
from brummer.cli import demo_dir  # noqa: E402
from brummer.config import Config  # noqa: E402
from brummer.tui.app import BrummerTUI  # noqa: E402

SIZE = (160, 48)
FLOOD_RATE = 10_000  # lines per second
STORED = 100_000
DURATION = 3.0

FLOOD = (
    "import sys, time\n"
    f"rate = {FLOOD_RATE}\n"
    "n = 0\n"
    "start = time.monotonic()\n"
    "while True:\n"
    "    due = int((time.monotonic() - start) * rate)\n"
    "    chunk = []\n"
    "    while n < due:\n"
    "        chunk.append(f'flood line {n} \\x1b[32mok\\x1b[0m some payload text here')\n"
    "        n += 1\n"
    "    if chunk:\n"
    "        sys.stdout.write('\\n'.join(chunk) + '\\n'); sys.stdout.flush()\n"
    "    time.sleep(0.005)\n"
)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def bench_flood(tmp: Path) -> None:
    (tmp / "flood.py").write_text(FLOOD)
    config = Config(no_mcp=True, no_proxy=True, log_max_entries=STORED)
    with Brummer(tmp, config) as app:
        for i in range(STORED):
            app.logs.add("pre", "preload", f"stored line {i} with some text")
        tui = BrummerTUI(app, initial=["flood"], inline_background=True)
        tui.top.render(SIZE, focus=True)
        proc = app.processes.start_command("flood", f"{sys.executable} flood.py", cwd=str(tmp))
        me = psutil.Process()
        frames: list[float] = []
        renders: list[float] = []
        keys: list[float] = []
        cpu0 = me.cpu_times()
        wall0 = time.monotonic()
        lines0 = len(app.logs.get_by_process(proc.id))
        deadline = wall0 + DURATION
        n = 0
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            tui.refresh()
            t1 = time.perf_counter()
            tui.top.render(SIZE, focus=True)
            frames.append(time.perf_counter() - t0)
            renders.append(time.perf_counter() - t1)
            n += 1
            if n % 3 == 0:
                t0 = time.perf_counter()
                tui.keypress(SIZE, "up" if n % 2 else "down")
                tui.top.render(SIZE, focus=True)
                keys.append(time.perf_counter() - t0)
            time.sleep(1 / 60)  # a 60 Hz frame clock, as a terminal redraw would be
        wall = time.monotonic() - wall0
        cpu1 = me.cpu_times()
        cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall
        got = len(app.logs.get_by_process(proc.id)) - lines0
        app.processes.stop_process(proc.id, timeout=2)
    print(f"flood: {got / wall:,.0f} lines/s reached the store; {STORED:,} lines stored")
    print(
        f"frame render (refresh + full {SIZE[0]}x{SIZE[1]} render): n={len(frames)} "
        f"p50 {statistics.median(frames) * 1000:.2f} ms  p99 {pct(frames, 0.99) * 1000:.2f} ms "
        f"(target <= 16 ms)"
    )
    print(
        f"  of which drawing the screen: p50 {statistics.median(renders) * 1000:.2f} ms  "
        f"p99 {pct(renders, 0.99) * 1000:.2f} ms (the rest is reading the store's snapshot)"
    )
    print(
        f"key press to redraw: n={len(keys)} p50 {statistics.median(keys) * 1000:.2f} ms  "
        f"p99 {pct(keys, 0.99) * 1000:.2f} ms (target <= 50 ms)"
    )
    print(f"brummer process CPU while flooding: {cpu:.2f} cores (target < 1)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_startup(runs: int = 3) -> None:
    times = []
    for _ in range(runs):
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
        cmd = [sys.executable, "-m", "brummer", "--demo", "-p", str(free_port())]
        cmd += ["--proxy-port", str(free_port())]
        t0 = time.monotonic()
        child = subprocess.Popen(
            cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, start_new_session=True
        )
        os.close(slave)
        seen = b""
        first = None
        while time.monotonic() - t0 < 10:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
                if b"Scripts" in seen and b"Settings" in seen:
                    first = time.monotonic() - t0
                    break
        os.write(master, b"q")
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        os.close(master)
        if first is not None:
            times.append(first)
    if times:
        print(
            f"startup to first frame (python -m brummer --demo, pty): "
            f"best {min(times) * 1000:.0f} ms, median {statistics.median(times) * 1000:.0f} ms "
            f"of {len(times)} (target <= 500 ms)"
        )
    else:
        print("startup: the first frame never appeared")


def main() -> None:
    import tempfile

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        bench_flood(Path(tmp))
    bench_startup()
    print(f"demo project: {demo_dir()}")


if __name__ == "__main__":
    main()

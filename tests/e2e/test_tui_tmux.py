"""Drive ``python -m brummer --demo`` in tmux: run scripts, see lines, switch, search, stop, quit.

tmux comes from the Debian packages (``apt-get install -y tmux``; .ci/run installs it). The
test asserts that no child of brummer survives the quit.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline()) if proc.is_running() else ""
    except psutil.Error:
        return ""


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Tmux:
    def __init__(self) -> None:
        assert shutil.which("tmux"), "tmux is needed: apt-get install -y tmux"
        self.socket = f"brummer-e2e-{os.getpid()}-{time.monotonic_ns()}"

    def __call__(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=check,
        )
        return result.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "main", check=False)

    def keys(self, *keys: str) -> None:
        self("send-keys", "-t", "main", *keys)

    def type(self, text: str) -> None:
        self("send-keys", "-t", "main", "-l", text)

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        found = wait_until(lambda: text in self.screen(), timeout=timeout, interval=0.05)
        screen = self.screen()
        assert found, f"{text!r} never appeared; screen:\n{screen}"
        return screen


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    session = Tmux()
    try:
        yield session
    finally:
        session("kill-server", check=False)


def start_brummer(tmux: Tmux, *args: str, shell: bool = False) -> int:
    """Run ``python -m brummer --demo ARGS`` in a 120x40 tmux pane; return the pane's pid.

    ``shell``: run it under a shell (the pane's process is then the shell), not exec'd.
    """
    command = [
        sys.executable,
        "-m",
        "brummer",
        "--demo",
        "-p",
        str(free_port()),
        "--proxy-port",
        str(free_port()),
        *args,
    ]
    env = {"PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    tmux(
        "new-session",
        "-d",
        "-s",
        "main",
        "-x",
        "120",
        "-y",
        "40",
        "-c",
        str(ROOT),
        f"{'' if shell else 'exec '}env {exports} {shlex.join(command)}; sleep 60",
    )
    tmux("set-option", "-t", "main", "remain-on-exit", "on")
    return int(tmux("display-message", "-p", "-t", "main", "#{pane_pid}").strip())


def pane_dead(tmux: Tmux) -> bool:
    return tmux("display-message", "-p", "-t", "main", "#{pane_dead}", check=False).strip() == "1"


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def test_demo_in_a_real_terminal(tmux: Tmux) -> None:
    brummer_pid = start_brummer(tmux)
    seen_children: dict[int, psutil.Process] = {}

    def note_children() -> None:
        for child in descendants(brummer_pid):
            seen_children.setdefault(child.pid, child)

    tmux.wait_for("1 Scripts")
    screen = tmux.wait_for("python3 server.py")  # what each script runs, not "npm run dev"
    assert "watch" in screen

    # run "build" from the Scripts view: filter, Enter closes the command line, Enter runs
    tmux.keys("/")
    tmux.type("bui")
    tmux.keys("Enter", "Enter")
    tmux.wait_for("build completed successfully")

    # start the watcher with a command and see its lines stream in
    tmux.keys(":")
    tmux.type("run watch")
    tmux.keys("Enter")
    tmux.wait_for("compiled successfully")

    def watcher_running() -> bool:
        note_children()
        return any("watch.py" in cmdline(p) for p in seen_children.values())

    assert wait_until(watcher_running, timeout=10)

    # processes view shows it running
    tmux.keys("2")
    screen = tmux.wait_for("▶ watch")

    # search in the logs
    tmux.keys("3", "/")
    tmux.type("rebuilding")
    tmux.keys("Enter")
    tmux.wait_for("search 'rebuilding'")

    # stop it from the processes view (rows keep the order the processes first started in)
    tmux.keys("2")
    tmux.wait_for("▶ watch")
    tmux.keys("Down", "s")
    tmux.wait_for("■ watch")
    note_children()

    # quit: brummer stops everything and exits
    tmux.keys("q")
    assert wait_until(lambda: pane_dead(tmux), timeout=30), tmux.screen()
    assert not psutil.pid_exists(brummer_pid) or (
        psutil.Process(brummer_pid).status() == psutil.STATUS_ZOMBIE
    )
    survivors = [p for p in seen_children.values() if alive(p)]
    assert survivors == [], [cmdline(p) for p in survivors]


def test_scripts_named_on_the_command_line_and_ctrl_c(tmux: Tmux) -> None:
    brummer_pid = start_brummer(tmux, "watch", "dev")
    screen = tmux.wait_for("compiled successfully")
    assert "Logs: all processes" in screen
    tmux.wait_for("Local:")
    assert wait_until(lambda: len(descendants(brummer_pid)) >= 2, timeout=10)
    children = descendants(brummer_pid)
    tmux.keys("C-c")
    assert wait_until(lambda: pane_dead(tmux), timeout=30), tmux.screen()
    survivors = [p for p in children if alive(p)]
    assert survivors == [], [cmdline(p) for p in survivors]


def test_a_closed_terminal_stops_every_child(tmux: Tmux) -> None:
    """Close the terminal under brummer (tmux kill-server): its children must not survive.

    brummer runs under a shell (not exec'd), as when typed at a prompt: the shell dies of
    the hang-up, brummer's stdin and stderr are gone, and it must still stop every tree.
    """
    brummer_pid = start_brummer(tmux, "dev", "watch", shell=True)
    tmux.wait_for("Local:")
    tmux.wait_for("compiled successfully")

    def brummer() -> psutil.Process:
        (found,) = [p for p in descendants(brummer_pid) if "brummer" in cmdline(p)]
        return found

    app = brummer()
    assert wait_until(lambda: len(descendants(app.pid)) >= 4, timeout=10)
    children = descendants(app.pid)
    tmux("kill-server")
    assert wait_until(lambda: not alive(app), timeout=30), "brummer outlived its terminal"
    assert wait_until(lambda: not any(alive(p) for p in children), timeout=10), [
        cmdline(p) for p in children if alive(p)
    ]


def test_the_proxy_fronts_the_dev_server_and_the_web_view_shows_requests(tmux: Tmux) -> None:
    import re
    import urllib.request

    start_brummer(tmux, "dev")
    tmux.wait_for("Local:")
    tmux.keys("5")
    screen = tmux.wait_for(" → http://127.0.0.1:")
    match = re.search(r"→ (http://127\.0\.0\.1:\d+/)", screen)
    assert match, screen
    with urllib.request.urlopen(match.group(1) + "api/items", timeout=10) as response:
        assert b'"ok": true' in response.read()
    with urllib.request.urlopen(match.group(1), timeout=10) as response:
        page = response.read()
    assert b"Hello from the brummer demo" in page
    assert b"/__brummer__/monitor.js" in page  # telemetry injected into the HTML
    tmux.keys("6")
    screen = tmux.wait_for("200 GET")
    assert "/api/items" in screen
    tmux.keys("q")
    assert wait_until(lambda: pane_dead(tmux), timeout=30), tmux.screen()

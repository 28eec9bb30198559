"""Shared test helpers: waiting on conditions with a deadline (never sleeping to synchronise)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import psutil


def wait_until(
    predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.005
) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; return whether it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def live_threads() -> set[threading.Thread]:
    """Threads alive now."""
    return {t for t in threading.enumerate() if t.is_alive()}


def child_processes() -> list[psutil.Process]:
    """Every live descendant of the test process."""
    try:
        return [p for p in psutil.Process(os.getpid()).children(recursive=True) if p.is_running()]
    except psutil.Error:
        return []


def open_fd_count() -> int:
    """Number of file descriptors the test process has open."""
    return psutil.Process(os.getpid()).num_fds()

"""Budgets and leak accounting shared by the reliability scenarios.

CI runs every scenario bounded (seconds); ``BRUMMER_SOAK=1`` runs the long versions whose
figures are recorded in RESULTS.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import attrs
import psutil

from tests.helpers import child_processes, wait_until

SOAK = os.environ.get("BRUMMER_SOAK") == "1"


def scale(ci: int, soak: int) -> int:
    """The bounded CI figure, or the soak figure under BRUMMER_SOAK=1."""
    return soak if SOAK else ci


def seconds(ci: float, soak: float) -> float:
    """A duration: bounded in CI, long under BRUMMER_SOAK=1."""
    return soak if SOAK else ci


@attrs.frozen
class Usage:
    threads: int
    fds: int
    sockets: int
    children: int

    @classmethod
    def now(cls) -> Usage:
        me = psutil.Process(os.getpid())
        return cls(
            threads=threading.active_count(),
            fds=me.num_fds(),
            sockets=len(me.net_connections(kind="all")),
            children=len(child_processes()),
        )


@contextmanager
def no_leaks(what: str, *, fd_slack: int = 0) -> Iterator[list[Usage]]:
    """Count threads, fds, sockets and children before and after; fail on any growth."""
    before = Usage.now()
    seen = [before]
    yield seen

    def settled() -> bool:
        now = Usage.now()
        return (
            now.threads <= before.threads
            and now.fds <= before.fds + fd_slack
            and now.sockets <= before.sockets
            and now.children <= before.children
        )

    ok = wait_until(settled, timeout=10.0)
    after = Usage.now()
    seen.append(after)
    assert ok, f"{what} leaked: before {before}, after {after}"
    print(f"[reliability] {what}: before {before} after {after}")

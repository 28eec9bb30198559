"""Priority worker pool (being written: only Priority is here yet)."""

from __future__ import annotations

import enum

from brummer.contracts import ThreadSafety, contract

__all__ = ["Priority"]


@contract(ThreadSafety.TS)
class Priority(enum.IntEnum):
    """Scheduling priority: HIGH runs before MEDIUM before LOW; FIFO within a level.

    Thread safety: TS (immutable enum).
    """

    HIGH = 0
    MEDIUM = 1
    LOW = 2

"""check_resource_manager against the real ResourceManager, a small third-party-style one,
and managers broken on purpose."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import pytest

from brummer.contracts import check_timeout
from brummer.errors import BrummerError, ErrorCode
from brummer.resources import ResourceManager
from brummer.testing.conformance import ConformanceError, check_resource_manager
from brummer.testing.linearizability import HistoryRecorder, ResourceModel, check_history

KINDS = ("threads", "files")
_ids = itertools.count(1)


@attrs.frozen
class Handle:
    id: str
    type: str
    amount: int
    owner: int


@attrs.frozen
class Metrics:
    available: dict[str, int]
    in_use: dict[str, int]
    peak: dict[str, int]
    waiters: dict[str, int]


class SimpleManager:
    """Correct: one condition, FIFO tickets per kind."""

    fifo = True
    check_limit = True
    check_double = True

    def __init__(self, limits: Mapping[str, int]) -> None:
        self.limits = dict(limits)
        self.cond = threading.Condition()
        self.in_use = dict.fromkeys(self.limits, 0)
        self.peak = dict.fromkeys(self.limits, 0)
        self.queue: dict[str, deque[object]] = {k: deque() for k in self.limits}
        self.live: set[str] = set()

    def acquire(self, kind: str, amount: int = 1, *, timeout: float | None = None) -> Handle:
        timeout = check_timeout("res", timeout)
        if not 1 <= amount <= self.limits[kind]:
            raise BrummerError("res", ErrorCode.INVALID_ARGUMENT, "amount", hint="fix")
        deadline = None if timeout is None else time.monotonic() + timeout
        ticket = object()
        with self.cond:
            self.queue[kind].append(ticket)
            try:
                while not self._fits(kind, amount, ticket):
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise BrummerError("res", ErrorCode.TIMEOUT, "busy", hint="later")
                    self.cond.wait(left)
            finally:
                self.queue[kind].remove(ticket)
                self.cond.notify_all()
            self.in_use[kind] += amount
            self.peak[kind] = max(self.peak[kind], self.in_use[kind])
            handle = Handle(f"h{next(_ids)}", kind, amount, id(self))
            self.live.add(handle.id)
            return handle

    def _fits(self, kind: str, amount: int, ticket: object) -> bool:
        if self.fifo and self.queue[kind][0] is not ticket:
            return False
        return not self.check_limit or self.in_use[kind] + amount <= self.limits[kind]

    def release(self, handle: Handle) -> None:
        with self.cond:
            if handle.owner != id(self):
                raise BrummerError("res", ErrorCode.INVALID_ARGUMENT, "foreign", hint="own only")
            if handle.id not in self.live:
                if self.check_double:
                    raise BrummerError("res", ErrorCode.INVALID_STATE, "twice", hint="once")
            else:
                self.live.discard(handle.id)
            self.in_use[handle.type] -= handle.amount
            self.cond.notify_all()

    def metrics(self) -> Metrics:
        with self.cond:
            return Metrics(
                {k: self.limits[k] - self.in_use[k] for k in self.limits},
                dict(self.in_use),
                dict(self.peak),
                {k: len(q) for k, q in self.queue.items()},
            )


class NoLimit(SimpleManager):
    check_limit = False


class Barging(SimpleManager):
    fifo = False


class DoubleRelease(SimpleManager):
    check_double = False


def test_the_real_manager_conforms() -> None:
    check_resource_manager(ResourceManager)


def test_a_correct_manager_conforms() -> None:
    check_resource_manager(SimpleManager, kinds=KINDS)


@pytest.mark.parametrize(
    ("factory", "complaint"),
    [
        (NoLimit, "not linearizable|exceeds|TIMEOUT"),
        (Barging, "FIFO"),
        (DoubleRelease, "double release|twice"),
    ],
    ids=["no-limit", "barging", "double-release"],
)
def test_broken_managers_are_caught(
    factory: Callable[[Mapping[str, int]], Any], complaint: str
) -> None:
    with pytest.raises(ConformanceError, match=complaint):
        check_resource_manager(factory, kinds=KINDS)


def test_over_allocation_is_caught_by_the_linearizability_check() -> None:
    manager = NoLimit({"threads": 2, "files": 2})
    rec = HistoryRecorder()
    both_hold = threading.Barrier(2)

    def client(c: int) -> None:
        handle = rec.record(
            c,
            "acquire",
            ("threads", 2),
            lambda: manager.acquire("threads", 2, timeout=0.0),
            observe=lambda h: h.id,
        )
        both_hold.wait(5)  # both hold 2 of a limit of 2 at the same time
        rec.record(c, "release", (handle.id, "threads", 2), lambda: manager.release(handle))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    result = check_history(ResourceModel({"threads": 2, "files": 2}), rec.operations())
    assert result.violation is not None
    assert "acquire('threads', 2)" in result.violation.report

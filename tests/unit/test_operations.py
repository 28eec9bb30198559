"""Context: cancellation, deadlines, parent→child propagation; OperationProgress; ContextualOperation."""

from __future__ import annotations

import gc
import math
import threading
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, strategies as st

from brummer.contracts import contract_of
from brummer.errors import BrummerError, ErrorCode
from brummer.operations import Context, ContextualOperation, OperationProgress
from tests.helpers import wait_until


def test_background_is_not_done_and_has_no_deadline() -> None:
    ctx = Context.background()
    assert not ctx.cancelled
    assert not ctx.done
    assert ctx.deadline is None
    assert ctx.remaining() is None
    assert ctx.wait(0) is False
    ctx.raise_if_done()
    assert Context.background() is not ctx


def test_cancel_is_idempotent_and_raises_invalid_state() -> None:
    ctx = Context.background()
    ctx.cancel()
    ctx.cancel()
    assert ctx.cancelled
    assert ctx.done
    assert ctx.remaining() == 0.0
    assert ctx.wait(0) is True
    with pytest.raises(BrummerError) as info:
        ctx.raise_if_done()
    assert info.value.code is ErrorCode.INVALID_STATE
    assert "cancelled" in str(info.value)
    assert info.value.hint


def test_deadline_passing_raises_timeout_and_wait_returns_true() -> None:
    ctx = Context.background().with_timeout(0.05)
    assert ctx.deadline is not None
    assert ctx.deadline <= time.monotonic() + 0.05
    started = time.monotonic()
    assert ctx.wait() is True  # wait without timeout still ends at the deadline
    assert time.monotonic() - started < 2.0
    assert ctx.done
    assert not ctx.cancelled
    assert ctx.remaining() == 0.0
    with pytest.raises(TimeoutError) as info:
        ctx.raise_if_done()
    assert isinstance(info.value, BrummerError)
    assert info.value.code is ErrorCode.TIMEOUT


def test_cancel_after_deadline_still_reports_timeout() -> None:
    ctx = Context.background().with_timeout(0)
    ctx.cancel()
    with pytest.raises(BrummerError) as info:
        ctx.raise_if_done()
    assert info.value.code is ErrorCode.TIMEOUT


def test_wait_times_out_when_not_done() -> None:
    ctx = Context.background().with_timeout(30)
    started = time.monotonic()
    assert ctx.wait(0.02) is False
    assert time.monotonic() - started >= 0.019
    remaining = ctx.remaining()
    assert remaining is not None
    assert 0 < remaining <= 30


def test_parent_cancel_reaches_every_descendant() -> None:
    root = Context.background()
    child = root.with_cancel()
    grandchild = child.with_timeout(60)
    sibling = root.with_timeout(60)
    root.cancel()
    assert child.cancelled
    assert grandchild.cancelled
    assert sibling.cancelled
    with pytest.raises(BrummerError) as info:
        grandchild.raise_if_done()
    assert info.value.code is ErrorCode.INVALID_STATE


def test_child_cancel_leaves_parent_alone() -> None:
    root = Context.background()
    child = root.with_cancel()
    child.cancel()
    assert child.cancelled
    assert not root.cancelled


def test_child_of_cancelled_parent_is_born_cancelled() -> None:
    root = Context.background()
    root.cancel()
    assert root.with_cancel().cancelled
    assert root.with_timeout(10).cancelled


def test_child_deadline_never_later_than_parent() -> None:
    parent = Context.background().with_timeout(0.5)
    child = parent.with_timeout(100)
    assert child.deadline == parent.deadline
    assert parent.with_cancel().deadline == parent.deadline
    shorter = parent.with_timeout(0.01)
    assert shorter.deadline is not None
    assert parent.deadline is not None
    assert shorter.deadline < parent.deadline


def test_wait_wakes_promptly_when_cancelled_from_another_thread() -> None:
    ctx = Context.background().with_cancel()
    woke = threading.Event()

    def waiter() -> None:
        if ctx.wait(10):
            woke.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    started = time.monotonic()
    ctx.cancel()
    assert woke.wait(5)
    thread.join(5)
    assert time.monotonic() - started < 1.0


def test_children_are_held_weakly() -> None:
    root = Context.background()
    for _ in range(1000):
        root.with_cancel()
    gc.collect()
    assert len(root._children) == 0  # the leak check needs the internals


@pytest.mark.parametrize("bad", [-1, -0.001, math.nan, math.inf, "1", None])
def test_with_timeout_rejects_bad_seconds(bad: object) -> None:
    ctx = Context.background()
    with pytest.raises(BrummerError) as info:
        ctx.with_timeout(bad)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert isinstance(info.value, ValueError)
    assert info.value.hint
    assert not ctx.done  # still usable
    assert not ctx.with_timeout(1).done


@pytest.mark.parametrize("bad", [-1, math.nan])
def test_wait_rejects_bad_timeout(bad: float) -> None:
    with pytest.raises(BrummerError) as info:
        Context.background().wait(bad)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT


@given(st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=20))
def test_cancelling_any_node_cancels_exactly_its_subtree(parents: list[int]) -> None:
    nodes = [Context.background()]
    parent_of: dict[int, int] = {}
    for i, p in enumerate(parents, start=1):
        parent_index = p % len(nodes)
        parent_of[i] = parent_index
        nodes.append(nodes[parent_index].with_cancel())
    target = len(nodes) // 2
    nodes[target].cancel()

    def under_target(i: int) -> bool:
        while True:
            if i == target:
                return True
            if i not in parent_of:
                return False
            i = parent_of[i]

    assert [n.cancelled for n in nodes] == [under_target(i) for i in range(len(nodes))]


def test_concurrent_cancel_and_child_creation_never_misses_a_child() -> None:
    root = Context.background()
    children: list[Context] = []
    barrier = threading.Barrier(3)

    def spawn() -> None:
        barrier.wait()
        children.extend(root.with_cancel() for _ in range(2000))

    threads = [threading.Thread(target=spawn) for _ in range(2)]
    for t in threads:
        t.start()
    barrier.wait()
    root.cancel()
    for t in threads:
        t.join(10)
    assert len(children) == 4000
    assert all(c.cancelled for c in children)


def test_operation_progress_is_frozen_and_validated() -> None:
    start = datetime.now(UTC)
    progress = OperationProgress(completed=2, total=4, current_phase="copy", start_time=start)
    assert progress.fraction == 0.5
    assert OperationProgress(0, 0, "?", start).fraction is None
    with pytest.raises(AttributeError):
        progress.completed = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        OperationProgress(completed=-1, total=0, current_phase="", start_time=start)


class _CountTo(ContextualOperation):
    """A real operation: counts in steps, honouring its context and its own cancel()."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._done = 0
        self._stop = Context.background()
        self._start = datetime.now(UTC)
        self._lock = threading.Lock()
        self.step = threading.Event()

    def execute(self, ctx: Context) -> None:
        for _ in range(self._total):
            if self._stop.cancelled:
                ctx = self._stop
            ctx.raise_if_done()
            with self._lock:
                self._done += 1
            self.step.set()
            ctx.wait(0.001)

    def cancel(self) -> None:
        self._stop.cancel()

    def progress(self) -> OperationProgress:
        with self._lock:
            return OperationProgress(self._done, self._total, "counting", self._start)


def test_contextual_operation_runs_and_is_cancelled() -> None:
    op = _CountTo(5)
    op.execute(Context.background())
    assert op.progress().completed == 5

    slow = _CountTo(100_000)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            slow.execute(Context.background())
        except BrummerError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert slow.step.wait(5)
    slow.cancel()
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], BrummerError)
    assert errors[0].code is ErrorCode.INVALID_STATE
    assert slow.progress().completed < 100_000


def test_abstract_operation_cannot_be_instantiated_and_has_contracts() -> None:
    with pytest.raises(TypeError):
        ContextualOperation()  # type: ignore[abstract]
    assert contract_of(Context) is not None
    assert contract_of(Context.wait) is not None
    assert contract_of(OperationProgress) is not None


def test_cancel_reaches_a_grandchild_whose_parent_was_dropped() -> None:
    """Only the grandchild is kept: the middle context must stay alive as long as it does."""
    root = Context.background()
    grandchild = root.with_cancel().with_timeout(60)
    gc.collect()
    root.cancel()
    assert grandchild.cancelled
    assert grandchild.wait(0) is True


def test_a_huge_timeout_is_accepted_and_waits() -> None:
    ctx = Context.background().with_timeout(1e12)
    assert ctx.wait(0.001) is False
    outcome: list[object] = []

    def waiter() -> None:
        try:
            outcome.append(ctx.wait())  # bounded only by the far deadline
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert wait_until(lambda: ctx._event is not None or outcome)
    ctx.cancel()
    thread.join(10)
    assert outcome == [True]


def test_cancel_reaches_the_end_of_a_very_long_chain() -> None:
    root = Context.background()
    leaf = root
    for _ in range(5000):  # deeper than the interpreter's recursion limit
        leaf = leaf.with_cancel()
    root.cancel()
    assert leaf.cancelled

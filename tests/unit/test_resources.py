"""ResourceManager: limits, blocking acquire, FIFO fairness, release rules, metrics."""

from __future__ import annotations

import copy
import math
import os
import threading
import time
from datetime import UTC

import attrs
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from brummer.errors import BrummerError, ErrorCode
from brummer.operations import Context
from brummer.resources import (
    DEFAULT_LIMITS,
    ResourceHandle,
    ResourceManager,
    ResourceMetrics,
    ResourceType,
)
from tests.helpers import wait_until

FILES = ResourceType.FILES


def test_default_limits_follow_the_seed() -> None:
    limits = ResourceManager().metrics().limits
    assert limits[ResourceType.THREADS] == (os.cpu_count() or 1) * 8
    assert limits[ResourceType.FILES] == 1000
    assert limits[ResourceType.QUEUES] == 100
    assert limits[ResourceType.MEMORY] == 512
    assert dict(limits) == dict(DEFAULT_LIMITS)


def test_acquire_release_and_metrics() -> None:
    manager = ResourceManager({FILES: 10})
    handle = manager.acquire(FILES, 4)
    assert isinstance(handle, ResourceHandle)
    assert handle.kind is FILES
    assert handle.amount == 4
    assert handle.acquired.tzinfo is UTC
    other = manager.acquire("files", 6)  # the value string is accepted too
    metrics = manager.metrics()
    assert isinstance(metrics, ResourceMetrics)
    assert metrics.in_use[FILES] == 10
    assert metrics.available[FILES] == 0
    assert metrics.peak[FILES] == 10
    assert metrics.waiters[FILES] == 0
    manager.release(handle)
    other.release()
    after = manager.metrics()
    assert after.in_use[FILES] == 0
    assert after.available[FILES] == 10
    assert after.peak[FILES] == 10
    assert metrics.in_use[FILES] == 10  # the earlier snapshot did not change
    with pytest.raises(TypeError):
        metrics.in_use[FILES] = 3  # type: ignore[index]


def test_handle_is_a_context_manager() -> None:
    manager = ResourceManager({FILES: 2})
    with manager.acquire(FILES, 2) as handle:
        assert not handle.released
        assert manager.metrics().in_use[FILES] == 2
    assert handle.released
    assert manager.metrics().in_use[FILES] == 0
    with manager.acquire(FILES) as early:
        early.release()  # released inside the block: leaving it is fine
    assert manager.metrics().in_use[FILES] == 0


def test_release_twice_is_invalid_state() -> None:
    manager = ResourceManager({FILES: 2})
    handle = manager.acquire(FILES)
    manager.release(handle)
    with pytest.raises(BrummerError) as info:
        manager.release(handle)
    assert info.value.code is ErrorCode.INVALID_STATE
    assert info.value.hint
    assert manager.metrics().in_use[FILES] == 0  # nothing double-counted
    manager.acquire(FILES, 2).release()


def test_handle_from_another_manager_is_invalid_argument() -> None:
    first, second = ResourceManager(), ResourceManager()
    handle = first.acquire(FILES)
    for bad in (handle, "files-1", None):
        with pytest.raises(BrummerError) as info:
            second.release(bad)  # type: ignore[arg-type]
        assert info.value.code is ErrorCode.INVALID_ARGUMENT
        assert info.value.hint
    assert first.metrics().in_use[FILES] == 1
    first.release(handle)


def test_an_altered_copy_of_a_handle_is_refused_and_counts_stay_right() -> None:
    manager = ResourceManager({FILES: 10})
    handle = manager.acquire(FILES, 2)
    forged = attrs.evolve(handle, amount=9)  # same id, different amount
    with pytest.raises(BrummerError) as info:
        manager.release(forged)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert info.value.hint
    assert manager.metrics().in_use[FILES] == 2
    assert not handle.released
    exact = copy.copy(handle)  # an exact copy is the same grant
    assert not exact.released
    exact.release()
    assert handle.released
    assert manager.metrics().in_use[FILES] == 0


@pytest.mark.parametrize("amount", [0, -1, 11, 1.5, True, "2"])
def test_bad_amounts_are_invalid_argument(amount: object) -> None:
    manager = ResourceManager({FILES: 10})
    with pytest.raises(BrummerError) as info:
        manager.acquire(FILES, amount)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert isinstance(info.value, ValueError)
    assert manager.metrics().in_use[FILES] == 0
    manager.acquire(FILES, 10).release()


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.acquire("sockets"),
        lambda m: m.acquire(FILES, timeout=-1),
        lambda m: m.acquire(FILES, timeout=math.nan),
    ],
)
def test_bad_kind_or_timeout_is_invalid_argument(call: object) -> None:
    manager = ResourceManager()
    with pytest.raises(BrummerError) as info:
        call(manager)  # type: ignore[operator]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize("limits", [{FILES: 0}, {FILES: -5}, {FILES: 2.5}, {"pipes": 3}])
def test_bad_limits_are_invalid_argument(limits: dict[object, object]) -> None:
    with pytest.raises(BrummerError) as info:
        ResourceManager(limits)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize("limits", [[(FILES, 3)], 5, "files"])
def test_limits_that_are_not_a_mapping_are_invalid_argument(limits: object) -> None:
    with pytest.raises(BrummerError) as info:
        ResourceManager(limits)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert info.value.hint


def test_acquire_times_out_when_nothing_is_released() -> None:
    manager = ResourceManager({FILES: 1})
    held = manager.acquire(FILES)
    started = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        manager.acquire(FILES, timeout=0.05)
    assert time.monotonic() - started >= 0.045
    err = info.value
    assert isinstance(err, BrummerError)
    assert err.code is ErrorCode.TIMEOUT
    assert err.hint
    with pytest.raises(BrummerError):
        manager.acquire(FILES, timeout=0)
    assert manager.metrics().waiters[FILES] == 0
    held.release()
    manager.acquire(FILES, timeout=0).release()


def test_acquire_waits_for_a_release() -> None:
    manager = ResourceManager({FILES: 1})
    held = manager.acquire(FILES)
    got: list[ResourceHandle] = []
    waiter = threading.Thread(target=lambda: got.append(manager.acquire(FILES, timeout=10)))
    waiter.start()
    assert wait_until(lambda: manager.metrics().waiters[FILES] == 1)
    held.release()
    waiter.join(10)
    assert len(got) == 1
    assert manager.metrics().in_use[FILES] == 1
    got[0].release()


def test_big_request_at_the_head_is_not_overtaken() -> None:
    manager = ResourceManager({FILES: 4})
    held = [manager.acquire(FILES) for _ in range(3)]  # 1 free
    order: list[str] = []
    handles: dict[str, ResourceHandle] = {}

    def take(name: str, amount: int) -> None:
        handle = manager.acquire(FILES, amount, timeout=10)
        order.append(name)
        handles[name] = handle

    big = threading.Thread(target=take, args=("big", 4))
    big.start()
    assert wait_until(lambda: manager.metrics().waiters[FILES] == 1)
    small = threading.Thread(target=take, args=("small", 1))
    small.start()
    assert wait_until(lambda: manager.metrics().waiters[FILES] == 2)
    assert manager.metrics().in_use[FILES] == 3  # one is free, but "small" waits its turn
    for handle in held:
        handle.release()
    big.join(10)
    assert order == ["big"]
    handles["big"].release()
    small.join(10)
    assert order == ["big", "small"]
    handles["small"].release()


def test_a_timed_out_head_lets_the_next_waiters_through() -> None:
    manager = ResourceManager({FILES: 2})
    held = manager.acquire(FILES)  # 1 free
    errors: list[BaseException] = []
    got: list[ResourceHandle] = []

    def big() -> None:
        try:
            manager.acquire(FILES, 2, timeout=0.5)
        except BrummerError as exc:
            errors.append(exc)

    head = threading.Thread(target=big)
    head.start()
    assert wait_until(lambda: manager.metrics().waiters[FILES] == 1)
    small = threading.Thread(target=lambda: got.append(manager.acquire(FILES, timeout=10)))
    small.start()
    assert wait_until(lambda: manager.metrics().waiters[FILES] == 2)
    assert not got  # one is free, but the big head blocks it until it gives up
    head.join(10)
    small.join(10)
    assert [e.code for e in errors if isinstance(e, BrummerError)] == [ErrorCode.TIMEOUT]
    assert len(got) == 1
    got[0].release()
    held.release()


def test_acquire_honours_a_cancelled_context() -> None:
    manager = ResourceManager({FILES: 1})
    held = manager.acquire(FILES)
    ctx = Context.background().with_cancel()
    errors: list[BrummerError] = []

    def wait_for_it() -> None:
        try:
            manager.acquire(FILES, ctx=ctx)
        except BrummerError as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    assert wait_until(lambda: manager.metrics().waiters[FILES] == 1)
    ctx.cancel()
    thread.join(10)
    assert [e.code for e in errors] == [ErrorCode.INVALID_STATE]
    with pytest.raises(BrummerError) as info:
        manager.acquire(FILES, ctx=Context.background().with_timeout(0.03))
    assert info.value.code is ErrorCode.TIMEOUT
    held.release()
    assert manager.metrics().waiters[FILES] == 0


@given(
    st.lists(st.integers(min_value=1, max_value=5), min_size=2, max_size=12),
    st.integers(min_value=5, max_value=8),
)
@settings(max_examples=20)
def test_concurrent_acquirers_never_exceed_the_limit(amounts: list[int], limit: int) -> None:
    manager = ResourceManager({FILES: limit})
    barrier = threading.Barrier(len(amounts))
    overflow: list[int] = []
    current = [0]
    guard = threading.Lock()

    def worker(amount: int) -> None:
        barrier.wait(10)
        for _ in range(5):
            with manager.acquire(FILES, amount, timeout=20):
                with guard:
                    current[0] += amount
                    if current[0] > limit:
                        overflow.append(current[0])
                with guard:
                    current[0] -= amount

    threads = [threading.Thread(target=worker, args=(a,)) for a in amounts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not overflow
    metrics = manager.metrics()
    assert metrics.in_use[FILES] == 0
    assert metrics.waiters[FILES] == 0
    assert max(amounts) <= metrics.peak[FILES] <= limit


class ResourceMachine(RuleBasedStateMachine):
    """The manager against a sequential model: acquire(timeout=0), release, double release."""

    def __init__(self) -> None:
        super().__init__()
        self.limits = {FILES: 5, ResourceType.MEMORY: 64}
        self.manager = ResourceManager(self.limits)
        self.model = dict.fromkeys(self.limits, 0)
        self.peak = dict.fromkeys(self.limits, 0)
        self.held: list[ResourceHandle] = []
        self.released: list[ResourceHandle] = []

    @rule(kind=st.sampled_from([FILES, ResourceType.MEMORY]), amount=st.integers(1, 64))
    def acquire(self, kind: ResourceType, amount: int) -> None:
        fits = self.model[kind] + amount <= self.limits[kind]
        if amount > self.limits[kind]:
            with pytest.raises(BrummerError) as info:
                self.manager.acquire(kind, amount, timeout=0)
            assert info.value.code is ErrorCode.INVALID_ARGUMENT
        elif fits:
            self.held.append(self.manager.acquire(kind, amount, timeout=0))
            self.model[kind] += amount
            self.peak[kind] = max(self.peak[kind], self.model[kind])
        else:
            with pytest.raises(BrummerError) as info:
                self.manager.acquire(kind, amount, timeout=0)
            assert info.value.code is ErrorCode.TIMEOUT

    @precondition(lambda self: self.held)
    @rule(index=st.integers(0, 100))
    def release(self, index: int) -> None:
        handle = self.held.pop(index % len(self.held))
        handle.release()
        self.model[handle.kind] -= handle.amount
        self.released.append(handle)

    @precondition(lambda self: self.released)
    @rule(index=st.integers(0, 100))
    def release_again(self, index: int) -> None:
        handle = self.released[index % len(self.released)]
        with pytest.raises(BrummerError) as info:
            self.manager.release(handle)
        assert info.value.code is ErrorCode.INVALID_STATE

    @invariant()
    def metrics_match_the_model(self) -> None:
        metrics = self.manager.metrics()
        for kind, limit in self.limits.items():
            assert metrics.in_use[kind] == self.model[kind]
            assert metrics.available[kind] == limit - self.model[kind]
            assert metrics.peak[kind] == self.peak[kind]
            assert metrics.waiters[kind] == 0


TestResourceMachine = ResourceMachine.TestCase
TestResourceMachine.settings = settings(max_examples=25, stateful_step_count=30)

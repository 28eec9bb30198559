"""Conformance suite for ResourceManager implementations (API.md §10).

:func:`check_resource_manager` drives fresh managers from a factory with hypothesis-generated
clients that acquire (with short timeouts), release and read the metrics at once (threads
released by a Barrier), and checks the history for linearizability against
:class:`~brummer.testing.linearizability.ResourceModel`: never more units handed out than the
limit, a release frees exactly what was acquired, a double release is ``INVALID_STATE``. It
also checks FIFO fairness among waiters (a small request does not overtake a large one that
waits before it), ``TIMEOUT`` on expiry, ``INVALID_ARGUMENT`` for impossible amounts and bad
timeouts, refusal of a handle from another manager, and that metrics add up
(``available + in_use == limit``, ``peak <= limit``, no waiters left).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import hypothesis
from hypothesis import given, strategies as st

from brummer.contracts import BLOCKING, ThreadSafety, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.resources import ResourceType
from brummer.testing.conformance._harness import (
    expect_error,
    fail,
    no_thread_leak,
    run_property,
    run_together,
    suite_settings,
    undecided,
    wait_for,
)
from brummer.testing.linearizability import (
    CheckOutcome,
    HistoryRecorder,
    ResourceModel,
    check_history,
)

__all__ = ["check_resource_manager"]

_WAIT = 10.0


def _default_kinds() -> tuple[Any, Any]:
    return ResourceType.THREADS, ResourceType.FILES


def _metric(manager: Any, field: str, kind: Any) -> int:
    return int(getattr(manager.metrics(), field)[kind])


def _handle_id(handle: Any) -> str:
    return str(handle.id)


def _scenario(
    factory: Callable[[Mapping[Any, int]], Any],
    kinds: tuple[Any, Any],
    limits: tuple[int, int],
    clients: list[list[tuple[int, int, int, float]]],
) -> None:
    limit_map = dict(zip(kinds, limits, strict=True))
    manager = factory(limit_map)
    rec = HistoryRecorder()

    def client(c: int, steps: list[tuple[int, int, int, float]]) -> Callable[[], None]:
        def run() -> None:
            rnd = random.Random(c)
            held: list[tuple[Any, Any, int]] = []
            for action, k, wanted, timeout in steps:
                kind = kinds[k]
                if action == 0 or (action == 1 and not held):
                    amount = min(wanted, limit_map[kind])
                    try:
                        handle = rec.record(
                            c,
                            "acquire",
                            (kind, amount),
                            partial(manager.acquire, kind, amount, timeout=timeout),
                            observe=_handle_id,
                        )
                    except BrummerError as exc:
                        if exc.code is not ErrorCode.TIMEOUT:
                            raise fail(
                                f"acquire({kind}, {amount}, timeout={timeout}) raised {exc.code.value}, not TIMEOUT"
                            ) from exc
                        continue
                    held.append((handle, kind, amount))
                elif action == 1:
                    handle, kind, amount = held.pop(rnd.randrange(len(held)))
                    rec.record(
                        c,
                        "release",
                        (_handle_id(handle), kind, amount),
                        partial(manager.release, handle),
                    )
                    if rnd.random() < 0.3:  # a second release of the same handle
                        try:
                            rec.record(
                                c,
                                "release",
                                (_handle_id(handle), kind, amount),
                                partial(manager.release, handle),
                            )
                        except BrummerError as exc:
                            if exc.code is not ErrorCode.INVALID_STATE:
                                raise fail(
                                    f"a double release raised {exc.code.value}, not INVALID_STATE"
                                ) from exc
                        else:
                            raise fail("releasing a handle twice succeeded")
                else:
                    rec.record(c, "in_use", (kind,), partial(_metric, manager, "in_use", kind))
            for handle, kind, amount in held:
                rec.record(
                    c,
                    "release",
                    (_handle_id(handle), kind, amount),
                    partial(manager.release, handle),
                )

        return run

    with no_thread_leak("resource scenario"):
        run_together([client(c, steps) for c, steps in enumerate(clients)], what="resources")
    result = check_history(ResourceModel(limit_map), rec.operations(), time_budget=5.0)
    if result.outcome is CheckOutcome.UNKNOWN:
        raise undecided("resource history", len(rec), 5.0)
    if result.violation is not None:
        raise fail(
            "acquire/release are not linearizable (over-allocation or lost units)\n"
            + result.violation.report
        )
    m = manager.metrics()
    for kind, limit in limit_map.items():
        in_use, available = m.in_use[kind], m.available[kind]
        if in_use != 0 or available != limit:
            raise fail(
                f"everything was released but {kind}: in_use={in_use}, available={available} (limit {limit})"
            )
        if m.peak[kind] > limit:
            raise fail(f"peak {m.peak[kind]} of {kind} exceeds the limit {limit}")
        if m.waiters[kind]:
            raise fail(f"{m.waiters[kind]} waiters of {kind} remain after every client finished")


_BARGE_WINDOW = 0.2  # seconds a waiter is given to (wrongly) overtake an earlier one


def _within(seconds: float, predicate: Callable[[], bool]) -> bool:
    """Whether ``predicate`` becomes true within ``seconds`` (an observation window)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


def _check_fifo(factory: Callable[[Mapping[Any, int]], Any], kinds: tuple[Any, Any]) -> None:
    threads_kind = kinds[0]
    manager = factory({threads_kind: 2})
    order: list[str] = []
    guard = threading.Lock()
    held = [
        manager.acquire(threads_kind, 1, timeout=_WAIT),
        manager.acquire(threads_kind, 1, timeout=_WAIT),
    ]
    got: dict[str, Any] = {}
    errors: list[BaseException] = []

    def waiter(name: str, amount: int) -> Callable[[], None]:
        def run() -> None:
            try:
                handle = manager.acquire(threads_kind, amount, timeout=_WAIT)
            except BaseException as exc:
                errors.append(exc)
                return
            with guard:
                order.append(name)
                got[name] = handle

        return run

    def release_all() -> None:
        while held:
            manager.release(held.pop())
        with guard:
            mine = list(got.values())
            got.clear()
        for handle in mine:
            manager.release(handle)

    with no_thread_leak("fifo"):
        big = threading.Thread(target=waiter("big", 2))
        small = threading.Thread(target=waiter("small", 1))
        try:
            big.start()
            wait_for(
                lambda: _metric(manager, "waiters", threads_kind) == 1,
                _WAIT,
                "the request for 2 units to wait",
            )
            small.start()
            wait_for(
                lambda: _metric(manager, "waiters", threads_kind) == 2,
                _WAIT,
                "the request for 1 unit to wait",
            )
            manager.release(held.pop())  # 1 unit free: enough for the small request only
            barged = _within(_BARGE_WINDOW, lambda: bool(order))
            if barged:
                raise fail(
                    "with 1 unit free, a request for 1 unit overtook a request for 2 units that "
                    "was waiting before it (FIFO: the first waiter is served first)"
                )
            manager.release(held.pop())
            wait_for(
                lambda: bool(order) or bool(errors), _WAIT, "a waiter to get the units released"
            )
            with guard:
                first = order[0] if order else "nobody"
            if first != "big":
                raise fail(
                    f"after 2 units were released, {first!r} got them first: a request for 1 unit "
                    "must not overtake a request for 2 units that waits before it (FIFO)"
                )
            with guard:
                handle = got.pop("big")
            manager.release(handle)
            wait_for(lambda: len(order) == 2 or bool(errors), _WAIT, "the second waiter")
        finally:
            deadline = time.monotonic() + _WAIT * 2
            while (big.is_alive() or small.is_alive()) and time.monotonic() < deadline:
                release_all()  # let every waiter through, whatever went wrong
                big.join(0.01)
                small.join(0.01)
            release_all()
    if errors:
        raise fail(f"a waiter failed: {errors[0]!r}")


def _check_errors(factory: Callable[[Mapping[Any, int]], Any], kinds: tuple[Any, Any]) -> None:
    threads_kind, files_kind = kinds
    manager = factory({threads_kind: 2, files_kind: 3})
    other = factory({threads_kind: 2, files_kind: 3})
    expect_error(
        ErrorCode.INVALID_ARGUMENT,
        lambda: manager.acquire(threads_kind, 3, timeout=_WAIT),
        "acquiring more than the limit",
        builtin=ValueError,
    )
    expect_error(
        ErrorCode.INVALID_ARGUMENT, lambda: manager.acquire(threads_kind, 0), "acquiring 0 units"
    )
    expect_error(
        ErrorCode.INVALID_ARGUMENT,
        lambda: manager.acquire(threads_kind, 1, timeout=-1.0),
        "acquire(timeout=-1)",
    )
    expect_error(
        ErrorCode.INVALID_ARGUMENT,
        lambda: manager.acquire(threads_kind, 1, timeout=float("nan")),
        "acquire(timeout=nan)",
    )
    handle = manager.acquire(threads_kind, 2, timeout=_WAIT)
    started = time.monotonic()
    expect_error(
        ErrorCode.TIMEOUT,
        lambda: manager.acquire(threads_kind, 1, timeout=0.05),
        "acquire while exhausted",
        builtin=TimeoutError,
    )
    if time.monotonic() - started > 2.0:
        raise fail("a 0.05 s acquire timeout took more than 2 s to expire")
    foreign = other.acquire(threads_kind, 1, timeout=_WAIT)
    try:
        manager.release(foreign)
    except BrummerError as exc:
        if exc.code not in (
            ErrorCode.INVALID_ARGUMENT,
            ErrorCode.INVALID_STATE,
            ErrorCode.NOT_FOUND,
        ):
            raise fail(f"releasing another manager's handle raised {exc.code.value}") from exc
    else:
        raise fail("a manager accepted the release of a handle from another manager")
    if _metric(manager, "in_use", threads_kind) != 2 or _metric(other, "in_use", threads_kind) != 1:
        raise fail("a refused foreign release changed the accounting")
    manager.release(handle)
    expect_error(ErrorCode.INVALID_STATE, lambda: manager.release(handle), "a double release")
    other.release(foreign)
    again = manager.acquire(threads_kind, 2, timeout=_WAIT)  # still usable after all that
    manager.release(again)
    m = manager.metrics()
    if m.in_use[threads_kind] != 0 or m.available[threads_kind] != 2 or m.peak[threads_kind] != 2:
        raise fail(f"metrics after the error checks: {m}")


@contract(ThreadSafety.TS, timeout=BLOCKING)
def check_resource_manager(
    factory: Callable[[Mapping[Any, int]], Any],
    *,
    kinds: tuple[Any, Any] | None = None,
    settings: hypothesis.settings | None = None,
) -> None:
    """Judge the managers ``factory(limits)`` makes by the ResourceManager contract (API.md §10).

    Thread safety: TS. Makes fresh managers; starts and joins its own threads.

    Args:
        factory: called with a ``{kind: limit}`` mapping (``ResourceManager`` itself will do).
        kinds: the two resource kinds to use (default ``ResourceType.THREADS`` and
            ``ResourceType.FILES``).
        settings: hypothesis settings (default: 10 examples, no database).

    Raises:
        AssertionError: ``ConformanceError`` describing the first broken guarantee (with a
            shrunk, readable history for a linearizability violation).
    """
    chosen = suite_settings(settings)
    used = _default_kinds() if kinds is None else kinds
    step = st.tuples(
        st.integers(0, 2), st.integers(0, 1), st.integers(1, 3), st.sampled_from([0.0, 0.005, 0.02])
    )

    @chosen
    @given(
        limits=st.tuples(st.integers(1, 4), st.integers(1, 4)),
        clients=st.lists(st.lists(step, min_size=1, max_size=12), min_size=2, max_size=5),
    )
    def histories(
        limits: tuple[int, int], clients: list[list[tuple[int, int, int, float]]]
    ) -> None:
        _scenario(factory, used, limits, clients)

    _check_errors(factory, used)
    _check_fifo(factory, used)
    run_property(histories)

"""Conformance suite for EventBus implementations (API.md §5).

:func:`check_event_bus` drives fresh buses from a factory with hypothesis-generated clients
that subscribe, unsubscribe and publish at once (threads released by a Barrier), and checks:

- subscription semantics are linearizable: every handler receives exactly the events
  published while it was subscribed (:class:`~brummer.testing.linearizability.EventBusModel`);
- no event is delivered twice to a handler, and for one subscription events of one process
  arrive in publish order;
- a handler that raises is counted in ``handler_errors``, logged on ``brummer.events`` with
  its traceback, and delivery goes on;
- ``events_published == events_processed + events_dropped + sum(queue_depth)`` in every
  metrics snapshot taken while the clients run; nothing is dropped under this light load;
- events published before an ``unsubscribe`` and still waiting are delivered (the
  subscription's window decides, not the timing of the dispatcher);
- a full subscription sheds LOW before HIGH under DROP_OLDEST and refuses with RESOURCE_LIMIT
  under BLOCK (checked when the factory accepts ``queue_size``/``backpressure``);
- ``stop()`` delivers everything accepted, is idempotent and joins its threads; after it
  ``publish`` raises INVALID_STATE and ``publish_async`` counts a drop;
- bad input (non-callable handler, unknown or repeated unsubscribe, non-Event, bad timeout)
  raises the documented error and leaves the bus usable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
import hypothesis
from hypothesis import given, strategies as st

from brummer.contracts import BLOCKING, ThreadSafety, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.events import Backpressure, Event, EventType
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
    ALL_TYPES,
    CheckOutcome,
    EventBusModel,
    HistoryRecorder,
    Operation,
    Raised,
    check_history,
)

__all__ = ["check_event_bus"]

_TYPES = ("conformance.a", "conformance.b")
_PIDS = ("p1", "p2", None)
_STOP_TIMEOUT = 15.0

_step = st.tuples(
    st.sampled_from(["sub", "unsub", "pub", "pub", "pub", "pub"]),
    st.integers(0, 1),
    st.sampled_from((*_TYPES, ALL_TYPES)),
    st.sampled_from(_PIDS),
)
_client = st.lists(_step, min_size=1, max_size=14)


class _Captured(logging.Handler):
    """Counts records logged with a traceback on ``brummer.events``."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.with_traceback = 0
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            with self._guard:
                self.with_traceback += 1


def _metrics_add_up(m: Any, when: str) -> None:
    depth = sum(m.queue_depth)
    if m.events_published != m.events_processed + m.events_dropped + depth:
        raise fail(
            f"metrics do not add up {when}: published {m.events_published} != processed "
            f"{m.events_processed} + dropped {m.events_dropped} + queued {depth}"
        )


def _scenario(
    factory: Callable[[], Any], clients: list[list[tuple[str, int, str, str | None]]], failing: bool
) -> None:
    bus = factory()
    rec = HistoryRecorder()
    guard = threading.Lock()
    received: dict[str, list[str]] = {}
    raised = [0]
    events: dict[str, Event] = {}
    done = threading.Event()
    snapshots: list[Any] = []

    def handler_for(name: str) -> Callable[[Event], None]:
        def handle(event: Event) -> None:
            key = event.data["key"]
            with guard:
                received.setdefault(name, []).append(key)
                if failing and key.endswith("3"):
                    raised[0] += 1
                    raise RuntimeError(f"conformance handler {name} fails on {key} on purpose")

        return handle

    def client(c: int, steps: list[tuple[str, int, str, str | None]]) -> Callable[[], None]:
        def run() -> None:
            subs: dict[int, Any] = {}
            stale: dict[int, Any] = {}
            for k, (action, h, etype, pid) in enumerate(steps):
                name = f"c{c}h{h}"
                if action == "sub" and h not in subs:
                    handler = handler_for(name)
                    if etype == ALL_TYPES:
                        subs[h] = rec.record(
                            c,
                            "subscribe",
                            (name, etype),
                            partial(bus.subscribe_all, handler),
                            observe=lambda _: None,
                        )
                    else:
                        subs[h] = rec.record(
                            c,
                            "subscribe",
                            (name, etype),
                            partial(bus.subscribe, etype, handler),
                            observe=lambda _: None,
                        )
                elif action == "unsub" and h in subs:
                    sub_id = subs.pop(h)
                    rec.record(c, "unsubscribe", (name,), partial(bus.unsubscribe, sub_id))
                    stale[h] = sub_id
                elif action == "unsub" and h in stale:
                    try:
                        rec.record(c, "unsubscribe", (name,), partial(bus.unsubscribe, stale[h]))
                    except BrummerError as exc:
                        if exc.code is not ErrorCode.NOT_FOUND:
                            raise fail(
                                f"unsubscribing an id twice raised {exc.code.value}, not NOT_FOUND"
                            ) from exc
                    else:
                        raise fail("unsubscribing the same id twice succeeded the second time")
                else:
                    key = f"c{c}e{k}"
                    event = Event(
                        etype if etype != ALL_TYPES else _TYPES[0], {"key": key}, process_id=pid
                    )
                    with guard:
                        events[key] = event
                    rec.record(c, "publish", (key, str(event.type)), partial(bus.publish, event))

        return run

    def watcher() -> None:
        while not done.is_set():
            snapshots.append(bus.metrics())

    capture = _Captured()
    log = logging.getLogger("brummer.events")
    log.addHandler(capture)
    try:
        with no_thread_leak("event bus scenario"):
            try:
                targets = [client(c, steps) for c, steps in enumerate(clients)]

                def last_client(target: Callable[[], None] = targets[-1]) -> None:
                    try:
                        target()
                    finally:
                        done.set()

                run_together([*targets[:-1], last_client, watcher], what="event-bus")
                bus.stop(_STOP_TIMEOUT)
                bus.stop(_STOP_TIMEOUT)  # idempotent
            finally:
                done.set()
                if not getattr(bus, "stopped", True):
                    bus.stop(_STOP_TIMEOUT)
    finally:
        log.removeHandler(capture)

    for i, m in enumerate(snapshots):
        _metrics_add_up(m, f"in snapshot {i} taken while clients ran")
    final = bus.metrics()
    _metrics_add_up(final, "after stop()")
    if sum(final.queue_depth):
        raise fail(f"stop() returned with events still queued: {final.queue_depth}")
    if final.events_dropped:
        raise fail(
            f"{final.events_dropped} event(s) dropped under a light load of {len(events)} events"
        )
    if final.handler_errors != raised[0]:
        raise fail(
            f"handlers raised {raised[0]} times but handler_errors is {final.handler_errors}"
        )
    if capture.with_traceback < min(raised[0], 1):
        raise fail("a handler raised but nothing was logged with its traceback on 'brummer.events'")

    for name, keys in received.items():
        if len(keys) != len(set(keys)):
            dup = sorted({k for k in keys if keys.count(k) > 1})
            raise fail(f"handler {name} received events {dup[:5]} more than once")

    ops = rec.operations()
    publishes = {op.args[0]: op for op in ops if op.name == "publish"}
    resolved: list[Operation] = []
    for op in ops:
        if op.name == "publish" and not isinstance(op.result, Raised):
            got = frozenset(h for h, keys in received.items() if op.args[0] in keys)
            resolved.append(attrs.evolve(op, result=got))
        else:
            resolved.append(op)
    result = check_history(EventBusModel(), resolved, time_budget=5.0)
    if result.outcome is CheckOutcome.UNKNOWN:
        raise undecided("subscription history", len(resolved), 5.0)
    if result.violation is not None:
        raise fail(
            "a handler did not receive exactly the events published while it was subscribed\n"
            + result.violation.report
        )
    _check_process_order(received, publishes, events)


def _check_process_order(
    received: dict[str, list[str]], publishes: dict[str, Operation], events: dict[str, Event]
) -> None:
    for name, keys in received.items():
        last_by_pid: dict[str, str] = {}
        for key in keys:
            pid = events[key].process_id
            if pid is None:
                continue
            prev = last_by_pid.get(pid)
            if prev is not None and publishes[key].ret < publishes[prev].call:
                raise fail(
                    f"handler {name} received {key} after {prev} (process {pid}), but {key} was "
                    "published first: events of one process overtook each other"
                )
            last_by_pid[pid] = key


def _check_pending_survive_unsubscribe(factory: Callable[[], Any]) -> None:
    """An event published while subscribed but still waiting when unsubscribe is called arrives."""
    bus = factory()
    entered = threading.Event()
    gate = threading.Event()
    both_published = threading.Event()
    got: list[str] = []

    def handler(event: Event) -> None:
        got.append(event.data["key"])
        if event.data["key"] == "first":
            entered.set()
            gate.wait(10.0)

    sub = bus.subscribe(_TYPES[0], handler)

    def publisher() -> None:
        bus.publish(Event(_TYPES[0], {"key": "first"}))
        bus.publish(Event(_TYPES[0], {"key": "second"}))
        both_published.set()

    def controller() -> None:
        try:
            wait_for(entered.is_set, 10.0, "the handler to receive the first event")
            if not both_published.wait(0.5):
                return  # delivery is synchronous: nothing can be waiting; nothing to check
            unsubscriber = threading.Thread(
                target=bus.unsubscribe, args=(sub,), name="conformance-unsubscribe"
            )
            unsubscriber.start()
            gate.set()
            unsubscriber.join(10.0)
            if unsubscriber.is_alive():
                raise fail("unsubscribe did not return within 10 s of its handler finishing")
        finally:
            gate.set()

    with no_thread_leak("unsubscribe with waiting events"):
        try:
            run_together([publisher, controller], what="pending-unsubscribe")
        finally:
            gate.set()
            bus.stop(_STOP_TIMEOUT)
    if got != ["first", "second"]:
        raise fail(
            f"the handler received {got}, not ['first', 'second']: 'second' was published (publish "
            "returned) while the handler was subscribed, and unsubscribe was called only afterwards, "
            "yet it was discarded: a handler must see exactly the events published while subscribed"
        )


def _check_failing_handler(factory: Callable[[], Any]) -> None:
    """A raising handler is counted and logged with its traceback; everyone still gets events."""
    bus = factory()
    got: list[str] = []

    def bad(event: Event) -> None:
        raise RuntimeError(f"conformance: failing on {event.data['key']} on purpose")

    capture = _Captured()
    log = logging.getLogger("brummer.events")
    log.addHandler(capture)
    try:
        bus.subscribe(_TYPES[0], bad)
        bus.subscribe(_TYPES[0], lambda event: got.append(event.data["key"]))
        for key in ("one", "two", "three"):
            bus.publish(Event(_TYPES[0], {"key": key}))
        bus.stop(_STOP_TIMEOUT)
    finally:
        log.removeHandler(capture)
        bus.stop(_STOP_TIMEOUT)
    if got != ["one", "two", "three"]:
        raise fail(
            f"with a failing handler beside it, a handler received {got}, not ['one', 'two', "
            "'three'] as published, in that order, by one thread (lost, duplicated or overtook)"
        )
    errors = bus.metrics().handler_errors
    if errors != 3:
        raise fail(f"a handler raised 3 times but handler_errors is {errors}")
    if capture.with_traceback < 3:
        raise fail(
            f"a handler raised 3 times but only {capture.with_traceback} failures were logged "
            "with a traceback on 'brummer.events'"
        )


def _configured(factory: Callable[..., Any], **options: Any) -> Any | None:
    """``factory(**options)``, or None when the factory takes no such options."""
    try:
        return factory(**options)
    except TypeError:
        return None


def _blocked_lane(bus: Any, got: list[str]) -> tuple[threading.Event, threading.Event]:
    """Subscribe a handler that blocks on its first event; publish it; wait until it blocks."""
    entered, gate = threading.Event(), threading.Event()

    def handler(event: Event) -> None:
        got.append(event.data["key"])
        if event.data["key"] == "first":
            entered.set()
            gate.wait(10.0)

    bus.subscribe_all(handler)
    bus.publish(Event(EventType.PROCESS_STARTED, {"key": "first"}))
    return entered, gate


def _check_shedding(factory: Callable[..., Any]) -> None:
    """A full lane sheds LOW before HIGH (DROP_OLDEST); BLOCK refuses with RESOURCE_LIMIT."""
    bus = _configured(factory, queue_size=4, backpressure=Backpressure.DROP_OLDEST)
    if bus is None:
        return  # the factory builds one configuration only: nothing to configure
    got: list[str] = []
    with no_thread_leak("shedding"):
        entered, gate = _blocked_lane(bus, got)
        try:
            if not entered.wait(10.0):
                raise fail("the handler never received the first event")
            for i in range(4):
                bus.publish(Event(EventType.LOG_LINE, {"key": f"low{i}"}))
                bus.publish(Event(EventType.ERROR_DETECTED, {"key": f"high{i}"}))
            m = bus.metrics()
            _metrics_add_up(m, "with a full lane")
        finally:
            gate.set()
            bus.stop(_STOP_TIMEOUT)
    if got != ["first", "high0", "high1", "high2", "high3"]:
        raise fail(
            f"a lane of 4 given 4 LOW and 4 HIGH events while busy delivered {got[1:]}: LOW must be "
            "shed before HIGH, so the 4 HIGH events should be the ones kept, in order"
        )
    final = bus.metrics()
    if final.events_dropped != 4:
        raise fail(f"4 events were shed but events_dropped is {final.events_dropped}")
    _metrics_add_up(final, "after shedding")

    bus = _configured(factory, queue_size=1, backpressure=Backpressure.BLOCK, publish_timeout=0.05)
    if bus is None:
        return
    got = []
    with no_thread_leak("block policy"):
        entered, gate = _blocked_lane(bus, got)
        try:
            if not entered.wait(10.0):
                raise fail("the handler never received the first event")
            bus.publish(Event(EventType.LOG_LINE, {"key": "queued"}))
            before = bus.metrics().events_published
            started = time.monotonic()
            expect_error(
                ErrorCode.RESOURCE_LIMIT,
                lambda: bus.publish(Event(EventType.LOG_LINE, {"key": "refused"})),
                "publish into a full lane under BLOCK",
            )
            if time.monotonic() - started > 2.0:
                raise fail("BLOCK waited far longer than publish_timeout=0.05 before refusing")
            if bus.metrics().events_published != before:
                raise fail("an event refused under BLOCK was counted as published")
        finally:
            gate.set()
            bus.stop(_STOP_TIMEOUT)
    if got != ["first", "queued"]:
        raise fail(f"under BLOCK the handler received {got}, not ['first', 'queued']")


def _check_bad_input_and_stop(factory: Callable[[], Any]) -> None:
    bus = factory()
    got: list[Any] = []
    try:
        expect_error(
            ErrorCode.INVALID_ARGUMENT,
            lambda: bus.subscribe(_TYPES[0], 42),
            "subscribe with a non-callable handler",
            builtin=ValueError,
        )
        expect_error(
            ErrorCode.INVALID_ARGUMENT,
            lambda: bus.subscribe_all("not callable"),
            "subscribe_all with a non-callable",
            builtin=ValueError,
        )
        expect_error(
            ErrorCode.NOT_FOUND,
            lambda: bus.unsubscribe("no-such-subscription"),
            "unsubscribe of an unknown id",
            builtin=LookupError,
        )
        sub = bus.subscribe(_TYPES[0], got.append)
        expect_error(
            ErrorCode.INVALID_ARGUMENT,
            lambda: bus.publish({"key": "not an event"}),
            "publish of a dict",
        )
        bus.publish(Event(_TYPES[0], {"key": "after-bad-input"}))
        bus.unsubscribe(sub)
        expect_error(
            ErrorCode.NOT_FOUND, lambda: bus.unsubscribe(sub), "a second unsubscribe of the same id"
        )
        sub = bus.subscribe(_TYPES[0], got.append)
        expect_error(
            ErrorCode.INVALID_ARGUMENT,
            lambda: bus.stop(-1.0),
            "stop(timeout=-1)",
            builtin=ValueError,
        )
        bus.publish(Event(_TYPES[0], {"key": "still-usable"}))
    finally:
        bus.stop(_STOP_TIMEOUT)
    keys = [e.data["key"] for e in got]
    if keys != ["after-bad-input", "still-usable"]:
        raise fail(
            f"after bad input the bus delivered {keys}, not ['after-bad-input', 'still-usable']"
        )
    before = bus.metrics()
    expect_error(
        ErrorCode.INVALID_STATE,
        lambda: bus.publish(Event(_TYPES[0], {"key": "late"})),
        "publish after stop",
    )
    bus.publish_async(Event(_TYPES[0], {"key": "late-async"}))
    after = bus.metrics()
    if after.events_dropped != before.events_dropped + 1:
        raise fail("publish_async after stop did not count a dropped event")
    _metrics_add_up(after, "after publishing to a stopped bus")
    bus.stop(_STOP_TIMEOUT)  # idempotent
    if len(got) != 2:
        raise fail("a handler received an event published after stop()")


@contract(ThreadSafety.TS, timeout=BLOCKING)
def check_event_bus(
    factory: Callable[[], Any], *, settings: hypothesis.settings | None = None
) -> None:
    """Judge the buses ``factory()`` makes by the EventBus contract (API.md §5).

    Thread safety: TS. Makes a fresh bus per scenario and stops it; starts and joins its
    own threads.

    Args:
        factory: returns a new running bus with room for a few hundred waiting events
            per subscription (the default ``EventBus()`` has 10,000).
        settings: hypothesis settings (default: 10 examples, no database).

    Raises:
        AssertionError: ``ConformanceError`` describing the first broken guarantee (a
            subscription violation comes with a shrunk, readable history).
    """
    chosen = suite_settings(settings)

    @chosen
    @given(clients=st.lists(_client, min_size=2, max_size=4), failing=st.booleans())
    def subscriptions(clients: list[list[tuple[str, int, str, str | None]]], failing: bool) -> None:
        _scenario(factory, clients, failing)

    _check_bad_input_and_stop(factory)
    _check_failing_handler(factory)
    _check_shedding(factory)
    _check_pending_survive_unsubscribe(factory)
    run_property(subscriptions)

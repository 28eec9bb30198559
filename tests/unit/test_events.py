"""EventBus, Event and friends: delivery, order, unsubscribe, backpressure, stop, metrics, bad input."""

from __future__ import annotations

import logging
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import given, settings, strategies as st

from brummer.contracts import ThreadSafety, contract_of
from brummer.errors import BrummerError, ErrorCode
from brummer.events import (
    Backpressure,
    Event,
    EventBus,
    EventBusMetrics,
    EventType,
    SubscriptionID,
)
from brummer.pool import Priority
from tests.helpers import wait_until

WAIT = 10.0  # upper bound for any wait in these tests; they finish far sooner


def log(i: int = 0, pid: str | None = None) -> Event:
    return Event(EventType.LOG_LINE, {"i": i}, process_id=pid)


def adds_up(m: EventBusMetrics) -> bool:
    return m.events_published == m.events_processed + m.events_dropped + sum(m.queue_depth)


class Gate:
    """A handler that records events and holds the dispatcher until released."""

    def __init__(self, hold_first_only: bool = False) -> None:
        self.seen: list[Event] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.hold_first_only = hold_first_only

    def __call__(self, event: Event) -> None:
        self.seen.append(event)
        if self.hold_first_only and len(self.seen) > 1:
            return
        self.entered.set()
        assert self.release.wait(WAIT)


@pytest.fixture
def bus() -> Iterator[EventBus]:
    b = EventBus()
    yield b
    b.stop()


# --------------------------------------------------------------------------- Event


@pytest.mark.parametrize(
    ("etype", "priority"),
    [
        (EventType.PROCESS_STARTED, Priority.HIGH),
        (EventType.PROCESS_EXITED, Priority.HIGH),
        (EventType.ERROR_DETECTED, Priority.HIGH),
        (EventType.URL_DETECTED, Priority.MEDIUM),
        (EventType.BUILD_EVENT, Priority.MEDIUM),
        (EventType.TEST_FAILED, Priority.MEDIUM),
        (EventType.TEST_PASSED, Priority.MEDIUM),
        (EventType.PROXY_REQUEST, Priority.MEDIUM),
        (EventType.LOG_LINE, Priority.LOW),
        (EventType.TELEMETRY, Priority.LOW),
        ("my.custom", Priority.MEDIUM),
    ],
)
def test_event_priority_defaults_from_type(etype: EventType | str, priority: Priority) -> None:
    assert Event(etype, {}).priority is priority


def test_event_fills_id_and_utc_timestamp() -> None:
    before = datetime.now(UTC)
    a, b = Event(EventType.LOG_LINE, {}), Event(EventType.LOG_LINE, {})
    assert a.id != b.id
    assert a.timestamp.tzinfo is not None
    assert a.timestamp.utcoffset() == UTC.utcoffset(None)
    assert before <= a.timestamp <= b.timestamp <= datetime.now(UTC)


def test_event_is_frozen_and_data_is_a_read_only_copy() -> None:
    data = {"line": "hello"}
    event = Event(EventType.LOG_LINE, data, process_id="p1")
    data["line"] = "changed"
    assert event.data["line"] == "hello"
    with pytest.raises(TypeError):
        event.data["line"] = "x"  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.process_id = "p2"  # type: ignore[misc]


def test_event_known_type_strings_become_members_and_priority_accepts_ints() -> None:
    event = Event("log.line", {}, priority=0)  # type: ignore[arg-type]
    assert event.type is EventType.LOG_LINE
    assert event.priority is Priority.HIGH
    assert Event("other.thing", {}).type == "other.thing"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type": ""},
        {"type": 3},
        {"type": None},
        {"type": EventType.LOG_LINE, "data": [1, 2]},
        {"type": EventType.LOG_LINE, "process_id": 12},
        {"type": EventType.LOG_LINE, "priority": 7},
        {"type": EventType.LOG_LINE, "priority": "HIGH"},
        {"type": EventType.LOG_LINE, "priority": True},
    ],
)
def test_event_bad_input_is_invalid_argument(kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("data", {})
    with pytest.raises(BrummerError) as info:
        Event(**kwargs)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert isinstance(info.value, ValueError)
    assert info.value.hint


# --------------------------------------------------------------------------- delivery


def test_subscribed_handler_receives_its_type_only(bus: EventBus) -> None:
    logs: list[Event] = []
    errors: list[Event] = []
    bus.subscribe(EventType.LOG_LINE, logs.append)
    bus.subscribe("error.detected", errors.append)
    sent = [log(i) for i in range(50)]
    for event in sent:
        bus.publish(event)
    bus.publish(Event(EventType.ERROR_DETECTED, {"msg": "boom"}))
    bus.publish(Event(EventType.URL_DETECTED, {}))
    bus.stop()
    assert logs == sent
    assert [e.type for e in errors] == [EventType.ERROR_DETECTED]


def test_subscribe_all_receives_every_type_including_custom(bus: EventBus) -> None:
    seen: list[Event] = []
    custom: list[Event] = []
    bus.subscribe_all(seen.append)
    bus.subscribe("my.custom", custom.append)
    sent = [Event(t, {}) for t in EventType] + [Event("my.custom", {})]
    for event in sent:
        bus.publish_async(event)
    bus.stop()
    assert seen == sent
    assert custom == sent[-1:]
    m = bus.metrics()
    assert (m.events_published, m.events_processed, m.events_dropped) == (len(sent), len(sent), 0)


def test_event_without_subscribers_counts_as_processed(bus: EventBus) -> None:
    bus.publish(log())
    assert bus.metrics().events_processed == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("brummer-events")]


def test_fan_out_counts_each_event_once(bus: EventBus) -> None:
    lanes: list[list[Event]] = [[], [], []]
    bus.subscribe(EventType.LOG_LINE, lanes[0].append)
    bus.subscribe(EventType.LOG_LINE, lanes[1].append)
    bus.subscribe_all(lanes[2].append)
    sent = [log(i) for i in range(300)]
    for event in sent:
        bus.publish(event)
    bus.stop()
    assert lanes == [sent, sent, sent]
    m = bus.metrics()
    assert (m.events_published, m.events_processed, m.events_dropped) == (300, 300, 0)
    assert m.queue_depth == (0, 0, 0)


def test_handler_that_raises_is_logged_counted_and_delivery_goes_on(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    good: list[Event] = []

    def bad(event: Event) -> None:
        if event.data["i"] % 2:
            raise RuntimeError(f"handler failed on {event.data['i']}")

    bus.subscribe(EventType.LOG_LINE, bad)
    bus.subscribe(EventType.LOG_LINE, good.append)
    with caplog.at_level(logging.ERROR, logger="brummer.events"):
        for i in range(10):
            bus.publish(log(i))
        bus.stop()
    assert len(good) == 10
    assert bus.metrics().handler_errors == 5
    failures = [r for r in caplog.records if r.name == "brummer.events"]
    assert len(failures) == 5
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in failures)
    assert "handler failed on 1" in caplog.text
    assert "Traceback" in caplog.text


def test_handler_raising_base_exception_does_not_kill_delivery(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[int] = []

    def handler(event: Event) -> None:
        seen.append(event.data["i"])
        if event.data["i"] == 0:
            raise SystemExit(3)

    bus.subscribe(EventType.LOG_LINE, handler)
    with caplog.at_level(logging.ERROR, logger="brummer.events"):
        for i in range(3):
            bus.publish(log(i))
        bus.stop()
    assert seen == [0, 1, 2]
    assert bus.metrics().handler_errors == 1


def test_per_process_order_with_concurrent_publishers() -> None:
    bus = EventBus(workers=4)
    per_sub: list[dict[str, list[int]]] = [defaultdict(list) for _ in range(3)]
    for record in per_sub:
        bus.subscribe(
            EventType.LOG_LINE,
            lambda e, r=record: r[e.process_id].append(e.data["i"]),  # type: ignore[misc]
        )
    barrier = threading.Barrier(4)

    def publisher(k: int) -> None:
        barrier.wait()
        for i in range(2000):
            bus.publish(log(i, pid=f"p{k}"))

    threads = [threading.Thread(target=publisher, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bus.stop()
    for record in per_sub:
        assert dict(record) == {f"p{k}": list(range(2000)) for k in range(4)}


def test_different_subscriptions_run_in_parallel(bus: EventBus) -> None:
    gate = Gate()
    fast: list[Event] = []
    bus.subscribe(EventType.LOG_LINE, gate)
    bus.subscribe(EventType.LOG_LINE, fast.append)
    bus.publish(log(0))
    assert gate.entered.wait(WAIT)
    for i in range(1, 20):
        bus.publish(log(i))
    assert wait_until(lambda: len(fast) == 20, timeout=WAIT)  # while the gate still holds
    assert len(gate.seen) == 1
    gate.release.set()


def test_a_handler_is_never_called_concurrently_with_itself() -> None:
    bus = EventBus(workers=4)
    active = 0
    most = 0
    lock = threading.Lock()

    def handler(event: Event) -> None:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        with lock:
            active -= 1

    bus.subscribe_all(handler)
    for _ in range(3):
        bus.subscribe_all(lambda e: None)
    threads = [
        threading.Thread(target=lambda: [bus.publish(log(i)) for i in range(3000)])
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bus.stop()
    assert most == 1


# --------------------------------------------------------------------------- unsubscribe


def test_unsubscribed_handler_receives_nothing_published_afterwards(bus: EventBus) -> None:
    seen: list[Event] = []
    sub = bus.subscribe(EventType.LOG_LINE, seen.append)
    bus.publish(log(0))
    bus.unsubscribe(sub)
    for i in range(1, 100):
        bus.publish(log(i))
    bus.stop()
    assert [e.data["i"] for e in seen] == [0]  # published while subscribed: delivered


def test_subscription_made_before_publish_returns_receives_the_event(bus: EventBus) -> None:
    seen: list[Event] = []
    bus.subscribe_all(seen.append)
    event = log(1)
    bus.publish(event)
    assert wait_until(lambda: seen == [event], timeout=WAIT)


def test_unsubscribe_delivers_what_is_waiting_then_returns() -> None:
    bus = EventBus()
    gate = Gate()
    sub = bus.subscribe(EventType.LOG_LINE, gate)
    bus.publish(log(0))
    assert gate.entered.wait(WAIT)
    for i in range(1, 5):
        bus.publish(log(i))  # waiting behind the running handler: published while subscribed
    done = threading.Event()
    unsubscriber = threading.Thread(target=lambda: (bus.unsubscribe(sub), done.set()))
    unsubscriber.start()
    assert not done.wait(0.05)  # still blocked: the handler has not returned
    gate.release.set()
    unsubscriber.join(WAIT)
    assert done.is_set()
    assert [e.data["i"] for e in gate.seen] == [0, 1, 2, 3, 4]  # all before unsubscribe returned
    bus.publish(log(99))
    bus.stop()
    assert len(gate.seen) == 5
    m = bus.metrics()
    assert adds_up(m)
    assert (m.events_published, m.events_processed, m.events_dropped) == (6, 6, 0)


def test_unsubscribe_from_inside_the_handler_returns_at_once() -> None:
    bus = EventBus()
    seen: list[int] = []
    sub: list[SubscriptionID] = []
    all_published = threading.Event()
    unsubscribed = threading.Event()

    def handler(event: Event) -> None:
        seen.append(event.data["i"])
        if event.data["i"] == 0:
            assert all_published.wait(WAIT)
            bus.unsubscribe(sub[0])  # must not wait for itself
            unsubscribed.set()

    sub.append(bus.subscribe(EventType.LOG_LINE, handler))
    for i in range(50):
        bus.publish(log(i))
    all_published.set()
    assert unsubscribed.wait(WAIT)
    for i in range(50, 60):
        bus.publish(log(i))
    bus.stop()
    assert seen == list(range(50))  # the ones published while subscribed, none after


def test_unsubscribe_from_another_handler_helps_instead_of_deadlocking() -> None:
    bus = EventBus(workers=1)  # the only dispatcher is the one calling unsubscribe
    other: list[int] = []
    sub: list[SubscriptionID] = []
    done = threading.Event()
    published = threading.Event()

    def controller(event: Event) -> None:
        assert published.wait(WAIT)
        bus.unsubscribe(sub[0])
        done.set()

    sub.append(bus.subscribe(EventType.LOG_LINE, lambda e: other.append(e.data["i"])))
    bus.subscribe(EventType.ERROR_DETECTED, controller)
    bus.publish(Event(EventType.ERROR_DETECTED, {}))
    for i in range(20):
        bus.publish(log(i))
    published.set()
    assert done.wait(WAIT)
    bus.stop()
    assert other == list(range(20))


@pytest.mark.parametrize("bad_id", ["sub-does-not-exist", "", SubscriptionID("sub-0")])
def test_unsubscribe_unknown_id_is_not_found(bus: EventBus, bad_id: str) -> None:
    with pytest.raises(BrummerError) as info:
        bus.unsubscribe(bad_id)
    assert info.value.code is ErrorCode.NOT_FOUND
    assert isinstance(info.value, LookupError)


def test_unsubscribe_twice_is_not_found_and_bus_stays_usable(bus: EventBus) -> None:
    seen: list[Event] = []
    sub = bus.subscribe(EventType.LOG_LINE, lambda e: None)
    bus.unsubscribe(sub)
    with pytest.raises(BrummerError) as info:
        bus.unsubscribe(sub)
    assert info.value.code is ErrorCode.NOT_FOUND
    assert "already unsubscribed" in str(info.value)
    bus.subscribe(EventType.LOG_LINE, seen.append)
    bus.publish(log())
    bus.stop()
    assert len(seen) == 1


def test_unsubscribe_non_string_is_invalid_argument(bus: EventBus) -> None:
    with pytest.raises(BrummerError) as info:
        bus.unsubscribe(42)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("handler", [None, 3, "print"])
def test_non_callable_handler_is_invalid_argument(bus: EventBus, handler: object) -> None:
    with pytest.raises(BrummerError) as info:
        bus.subscribe(EventType.LOG_LINE, handler)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    with pytest.raises(BrummerError):
        bus.subscribe_all(handler)  # type: ignore[arg-type]


@pytest.mark.parametrize("etype", ["", None, 5])
def test_bad_event_type_in_subscribe_is_invalid_argument(bus: EventBus, etype: object) -> None:
    with pytest.raises(BrummerError) as info:
        bus.subscribe(etype, lambda e: None)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize("publish", ["publish", "publish_async"])
@pytest.mark.parametrize("thing", [None, {"type": "log.line"}, "log.line"])
def test_publishing_a_non_event_is_invalid_argument(
    bus: EventBus, publish: str, thing: object
) -> None:
    seen: list[Event] = []
    bus.subscribe_all(seen.append)
    with pytest.raises(BrummerError) as info:
        getattr(bus, publish)(thing)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert "Event" in info.value.hint
    bus.publish(log())  # still usable
    bus.stop()
    assert len(seen) == 1
    assert bus.metrics().events_published == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workers": 0},
        {"workers": -1},
        {"workers": 1.5},
        {"workers": True},
        {"queue_size": 0},
        {"queue_size": -5},
        {"queue_size": 2.0},
        {"backpressure": "drop_oldest"},
        {"publish_timeout": -1},
        {"publish_timeout": math.nan},
        {"publish_timeout": math.inf},
        {"pool": object()},
    ],
)
def test_bad_constructor_arguments_are_invalid_argument(kwargs: dict[str, Any]) -> None:
    with pytest.raises(BrummerError) as info:
        EventBus(**kwargs)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert info.value.hint


@pytest.mark.parametrize("timeout", [-1.0, math.nan, "soon"])
def test_bad_stop_timeout_is_invalid_argument_and_bus_keeps_working(
    bus: EventBus, timeout: object
) -> None:
    seen: list[Event] = []
    bus.subscribe_all(seen.append)
    with pytest.raises(BrummerError) as info:
        bus.stop(timeout)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    bus.publish(log())
    bus.stop()
    assert len(seen) == 1


# --------------------------------------------------------------------------- backpressure


def _held_bus(policy: Backpressure, queue_size: int = 3, **kwargs: Any) -> tuple[EventBus, Gate]:
    """A bus whose only subscriber is busy on a first event, so later ones wait in its lane."""
    bus = EventBus(queue_size=queue_size, backpressure=policy, **kwargs)
    gate = Gate(hold_first_only=True)
    bus.subscribe_all(gate)
    bus.publish(Event(EventType.PROCESS_STARTED, {"i": "first"}))
    assert gate.entered.wait(WAIT)
    return bus, gate


def _names(events: list[Event]) -> list[object]:
    return [e.data["i"] for e in events]


def test_drop_newest_sheds_new_low_and_newest_low_for_high() -> None:
    bus, gate = _held_bus(Backpressure.DROP_NEWEST)
    for i in range(1, 5):  # the lane holds 3: the fourth LOW is shed
        bus.publish(log(i))
    bus.publish(Event(EventType.ERROR_DETECTED, {"i": "high"}))  # sheds the newest LOW (3)
    m = bus.metrics()
    assert m.events_dropped == 2
    assert m.queue_depth == (2, 0, 2)  # first (in the handler) + high; LOW 1 and 2
    assert adds_up(m)
    gate.release.set()
    bus.stop()
    assert _names(gate.seen) == ["first", 1, 2, "high"]


def test_drop_oldest_sheds_oldest_low_first() -> None:
    bus, gate = _held_bus(Backpressure.DROP_OLDEST)
    for i in range(1, 5):  # the fourth LOW pushes out LOW 1
        bus.publish(log(i))
    bus.publish(Event(EventType.ERROR_DETECTED, {"i": "high"}))  # pushes out LOW 2
    assert bus.metrics().events_dropped == 2
    gate.release.set()
    bus.stop()
    assert _names(gate.seen) == ["first", 3, 4, "high"]


@pytest.mark.parametrize("policy", [Backpressure.DROP_OLDEST, Backpressure.DROP_NEWEST])
def test_low_is_shed_before_high_whatever_the_order(policy: Backpressure) -> None:
    bus, gate = _held_bus(policy, queue_size=4)
    bus.publish(Event(EventType.ERROR_DETECTED, {"i": "h1"}))
    bus.publish(log(1))
    bus.publish(Event(EventType.ERROR_DETECTED, {"i": "h2"}))
    bus.publish(Event(EventType.URL_DETECTED, {"i": "m1"}))
    bus.publish(Event(EventType.ERROR_DETECTED, {"i": "h3"}))  # sheds the LOW
    bus.publish(Event(EventType.ERROR_DETECTED, {"i": "h4"}))  # then the MEDIUM
    bus.publish(log(2))  # everything waiting is HIGH: the new LOW is shed
    assert bus.metrics().events_dropped == 3
    gate.release.set()
    bus.stop()
    assert _names(gate.seen) == ["first", "h1", "h2", "h3", "h4"]


def test_block_raises_resource_limit_after_publish_timeout() -> None:
    bus, gate = _held_bus(Backpressure.BLOCK, queue_size=1, publish_timeout=0.05)
    bus.publish(log(1))
    before = bus.metrics()
    with pytest.raises(BrummerError) as info:
        bus.publish(log(2))
    assert info.value.code is ErrorCode.RESOURCE_LIMIT
    assert info.value.temporary
    assert bus.metrics() == before  # a refused event is not counted
    bus.publish_async(log(3))  # never blocks: shed and counted instead
    assert bus.metrics().events_dropped == 1
    gate.release.set()
    bus.stop()
    assert _names(gate.seen) == ["first", 1]


def test_block_publisher_proceeds_when_room_frees_up() -> None:
    bus, gate = _held_bus(Backpressure.BLOCK, queue_size=1, publish_timeout=WAIT)
    bus.publish(log(1))
    published = threading.Event()
    publisher = threading.Thread(target=lambda: (bus.publish(log(2)), published.set()))
    publisher.start()
    assert not published.wait(0.05)  # blocked: the lane is full
    gate.release.set()
    publisher.join(WAIT)
    assert published.is_set()
    bus.stop()
    assert _names(gate.seen) == ["first", 1, 2]


def test_block_publish_from_own_handler_fails_fast_instead_of_deadlocking() -> None:
    bus = EventBus(queue_size=1, backpressure=Backpressure.BLOCK, publish_timeout=WAIT)
    outcome: list[object] = []

    def handler(event: Event) -> None:
        if event.data["i"] == 0:
            bus.publish(log(1))  # fits: the lane was emptied when this chunk was claimed
            try:
                bus.publish(log(2))
            except BrummerError as exc:
                outcome.append(exc.code)

    bus.subscribe(EventType.LOG_LINE, handler)
    bus.publish(log(0))
    assert wait_until(lambda: outcome, timeout=WAIT)  # the handler ran before stop() began
    bus.stop()
    assert outcome == [ErrorCode.RESOURCE_LIMIT]


def test_stop_wakes_blocked_publishers_with_invalid_state() -> None:
    bus, gate = _held_bus(Backpressure.BLOCK, queue_size=1, publish_timeout=WAIT)
    bus.publish(log(1))
    errors: list[ErrorCode] = []

    def blocked() -> None:
        try:
            bus.publish(log(2))
        except BrummerError as exc:
            errors.append(exc.code)

    publisher = threading.Thread(target=blocked)
    publisher.start()
    stopper = threading.Thread(target=bus.stop)
    stopper.start()
    publisher.join(WAIT)
    assert errors == [ErrorCode.INVALID_STATE]
    gate.release.set()
    stopper.join(WAIT)
    assert _names(gate.seen) == ["first", 1]


def test_a_slow_subscription_sheds_its_own_events_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="brummer.events")
    bus = EventBus(queue_size=5, backpressure=Backpressure.DROP_OLDEST)
    gate = Gate(hold_first_only=True)
    fast: list[Event] = []
    bus.subscribe(EventType.LOG_LINE, gate)
    bus.subscribe(EventType.LOG_LINE, fast.append)
    bus.publish(log(0))
    assert gate.entered.wait(WAIT)
    for i in range(1, 50):
        bus.publish(log(i))
        assert adds_up(bus.metrics())
        assert wait_until(lambda i=i: len(fast) == i + 1, timeout=WAIT)  # fast lane keeps up
    gate.release.set()
    bus.stop()
    assert _names(gate.seen) == [0, 45, 46, 47, 48, 49]
    m = bus.metrics()
    assert (m.events_published, m.events_processed, m.events_dropped) == (50, 6, 44)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per episode, not once per shed event
    assert "44 event(s) shed" in warnings[0]


# --------------------------------------------------------------------------- stop


def test_stop_delivers_everything_accepted_then_joins() -> None:
    bus = EventBus(queue_size=100_000, workers=2)
    seen: list[Event] = []
    bus.subscribe(EventType.LOG_LINE, seen.append)
    bus.subscribe_all(lambda e: None)
    for i in range(20_000):
        bus.publish(log(i))
    bus.stop()
    assert len(seen) == 20_000
    assert not [t for t in threading.enumerate() if t.name.startswith("brummer-events")]
    m = bus.metrics()
    assert (m.events_processed, m.events_dropped, m.queue_depth) == (20_000, 0, (0, 0, 0))


def test_after_stop_publish_is_invalid_state_and_async_counts_a_drop(bus: EventBus) -> None:
    bus.subscribe_all(lambda e: None)
    bus.stop()
    bus.stop()  # idempotent
    assert bus.stopped
    with pytest.raises(BrummerError) as info:
        bus.publish(log())
    assert info.value.code is ErrorCode.INVALID_STATE
    bus.publish_async(log())
    m = bus.metrics()
    assert (m.events_published, m.events_dropped) == (1, 1)
    with pytest.raises(BrummerError) as info:
        bus.subscribe_all(lambda e: None)
    assert info.value.code is ErrorCode.INVALID_STATE


def test_stop_from_inside_a_handler_returns_and_the_bus_drains() -> None:
    bus = EventBus()
    seen: list[int] = []

    def handler(event: Event) -> None:
        seen.append(event.data["i"])
        if event.data["i"] == 0:
            bus.stop()  # must not deadlock on joining its own thread

    bus.subscribe(EventType.LOG_LINE, handler)
    for i in range(100):
        bus.publish_async(log(i))
    assert wait_until(lambda: bus.stopped, timeout=WAIT)
    bus.stop()  # from outside: waits for the drain and the threads
    assert seen == [e for e in range(100) if e < len(seen)]
    m = bus.metrics()
    assert adds_up(m)
    assert m.queue_depth == (0, 0, 0)


def test_stop_times_out_on_a_stuck_handler_and_can_be_called_again() -> None:
    bus = EventBus()
    gate = Gate(hold_first_only=True)
    bus.subscribe(EventType.LOG_LINE, gate)
    bus.publish(log(0))
    assert gate.entered.wait(WAIT)
    bus.publish(log(1))  # waits behind the stuck handler: not claimed by any dispatcher
    with pytest.raises(BrummerError) as info:
        bus.stop(timeout=0.05)
    assert info.value.code is ErrorCode.TIMEOUT
    assert isinstance(info.value, TimeoutError)
    assert info.value.context["undelivered"] == 2
    gate.release.set()
    bus.stop()  # the stuck handler returned: now everything ends
    m = bus.metrics()
    assert (m.events_processed, m.events_dropped) == (1, 1)
    assert adds_up(m)


def test_context_manager_stops_the_bus() -> None:
    seen: list[Event] = []
    with EventBus() as bus:
        bus.subscribe_all(seen.append)
        bus.publish(log())
    assert bus.stopped
    assert len(seen) == 1


# --------------------------------------------------------------------------- threads and pool


def _dispatchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("brummer-events")]


def test_dispatcher_threads_are_lazy_and_bounded_by_workers() -> None:
    bus = EventBus(workers=2)
    gates = [Gate() for _ in range(5)]
    for gate in gates:
        bus.subscribe(EventType.LOG_LINE, gate)
    assert _dispatchers() == []
    bus.publish(log())
    assert wait_until(lambda: sum(g.entered.is_set() for g in gates) == 2, timeout=WAIT)
    assert len(_dispatchers()) == 2
    assert bus.metrics().worker_utilization == 1.0
    for gate in gates:
        gate.release.set()
    bus.stop()
    assert all(len(g.seen) == 1 for g in gates)


def _stdlib_pool() -> Executor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="given-pool")


def _brummer_pool() -> Executor:
    from brummer.pool import WorkerPool

    pool: Executor = WorkerPool(max_workers=2, name="given-pool")
    return pool


@pytest.mark.parametrize("make_pool", [_stdlib_pool, _brummer_pool], ids=["stdlib", "WorkerPool"])
def test_dispatch_on_a_given_pool_starts_no_threads_of_its_own(
    make_pool: Callable[[], Executor],
) -> None:
    pool = make_pool()
    try:
        bus = EventBus(pool=pool)
        per_pid: dict[str, list[int]] = defaultdict(list)
        bus.subscribe(EventType.LOG_LINE, lambda e: per_pid[e.process_id].append(e.data["i"]))  # type: ignore[index]
        bus.subscribe_all(lambda e: None)
        for i in range(1000):
            bus.publish(log(i, pid=f"p{i % 3}"))
        bus.stop()
        assert _dispatchers() == []
    finally:
        pool.shutdown(wait=True)
    assert {pid: len(v) for pid, v in per_pid.items()} == {"p0": 334, "p1": 333, "p2": 333}
    assert all(v == sorted(v) for v in per_pid.values())
    m = bus.metrics()
    assert (m.events_processed, m.events_dropped) == (1000, 0)


class _RefusingPool(Executor):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise BrummerError("pool", ErrorCode.INVALID_STATE, "pool is stopped")


def test_a_pool_that_refuses_work_falls_back_to_own_threads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus(pool=_RefusingPool())
    seen: list[Event] = []
    bus.subscribe_all(seen.append)
    with caplog.at_level(logging.WARNING, logger="brummer.events"):
        bus.publish(log())
        bus.stop()
    assert len(seen) == 1
    assert "pool refused" in caplog.text


# --------------------------------------------------------------------------- metrics


def test_metrics_snapshot_is_frozen_and_meaningful() -> None:
    bus, gate = _held_bus(Backpressure.DROP_OLDEST, queue_size=10)
    bus.publish(log(1))
    bus.publish(Event(EventType.URL_DETECTED, {"i": 2}))
    m = bus.metrics()
    assert m.queue_depth == (1, 1, 1)
    assert m.worker_utilization == 0.25  # one of DEFAULT_WORKERS=4 dispatchers busy
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        m.events_published = 0  # type: ignore[misc]
    gate.release.set()
    bus.stop()
    m = bus.metrics()
    assert m.avg_processing_time > 0
    assert m.worker_utilization == 0
    assert (m.events_published, m.events_processed, m.queue_depth) == (3, 3, (0, 0, 0))


def test_metrics_add_up_in_every_snapshot_under_load() -> None:
    bus = EventBus(queue_size=50, workers=2)
    bus.subscribe(EventType.LOG_LINE, lambda e: None)
    bus.subscribe_all(lambda e: None)
    bus.subscribe(EventType.ERROR_DETECTED, lambda e: None)
    stop = threading.Event()
    bad: list[EventBusMetrics] = []

    def watcher() -> None:
        while not stop.is_set():
            m = bus.metrics()
            if not adds_up(m) or min(m.queue_depth) < 0:
                bad.append(m)

    def publisher(k: int) -> None:
        for i in range(3000):
            etype = (EventType.LOG_LINE, EventType.ERROR_DETECTED, EventType.URL_DETECTED)[i % 3]
            bus.publish_async(Event(etype, {"i": i}, process_id=f"p{k}"))

    threads = [threading.Thread(target=watcher)] + [
        threading.Thread(target=publisher, args=(k,)) for k in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    bus.stop()
    stop.set()
    threads[0].join()
    assert bad == []
    m = bus.metrics()
    assert m.events_published == 9000
    assert m.events_processed + m.events_dropped == 9000


# --------------------------------------------------------------------------- property-based


scenario = st.lists(
    st.tuples(
        st.integers(0, 2),  # publisher thread
        st.sampled_from(["p1", "p2", "p3"]),
        st.sampled_from([EventType.LOG_LINE, EventType.ERROR_DETECTED, "custom.kind"]),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=25)
@given(
    events=scenario,
    workers=st.integers(1, 4),
    queue_size=st.sampled_from([2, 7, 1000]),
    policy=st.sampled_from(list(Backpressure)),
)
def test_concurrent_publishers_keep_per_process_order_and_account_for_everything(
    events: list[tuple[int, str, EventType | str]],
    workers: int,
    queue_size: int,
    policy: Backpressure,
) -> None:
    bus = EventBus(workers=workers, queue_size=queue_size, backpressure=policy)
    received: list[list[Event]] = [[], [], []]
    bus.subscribe(EventType.LOG_LINE, received[0].append)
    bus.subscribe_all(received[1].append)
    bus.subscribe("custom.kind", received[2].append)
    plans: list[list[Event]] = [[], [], []]
    for seq, (who, pid, etype) in enumerate(events):
        plans[who].append(Event(etype, {"seq": seq}, process_id=pid))
    barrier = threading.Barrier(3)

    def publish_all(plan: list[Event]) -> None:
        barrier.wait()
        for event in plan:
            bus.publish_async(event)

    threads = [threading.Thread(target=publish_all, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bus.stop()
    m = bus.metrics()
    assert adds_up(m)
    assert m.queue_depth == (0, 0, 0)
    assert m.events_published == len(events)
    owner = {e.id: who for who, plan in enumerate(plans) for e in plan}
    for lane in received:
        assert len({e.id for e in lane}) == len(lane)  # nobody receives an event twice
        for who in range(3):  # one publisher's events arrive in its order (per process too)
            mine = [e.data["seq"] for e in lane if owner[e.id] == who]
            assert mine == sorted(mine)
    if queue_size == 1000:  # nothing can be shed: everyone got everything of their type
        assert m.events_dropped == 0
        assert len(received[1]) == len(events)
        assert len(received[0]) == sum(1 for _, _, t in events if t is EventType.LOG_LINE)
        assert len(received[2]) == sum(1 for _, _, t in events if t == "custom.kind")


# --------------------------------------------------------------------------- contracts


@pytest.mark.parametrize(
    "obj",
    [
        EventBus,
        EventBus.subscribe,
        EventBus.subscribe_all,
        EventBus.unsubscribe,
        EventBus.publish,
        EventBus.publish_async,
        EventBus.stop,
        EventBus.metrics,
        EventBus.stopped,
        Event,
        EventType,
        Backpressure,
        EventBusMetrics,
        SubscriptionID,
    ],
)
def test_public_names_carry_a_ts_contract_and_say_so(obj: object) -> None:
    found = contract_of(obj)
    assert found is not None
    assert found.thread_safety is ThreadSafety.TS
    doc = (obj.fget if isinstance(obj, property) else obj).__doc__  # type: ignore[union-attr]
    assert doc is not None
    assert "Thread safety: TS" in doc


def test_events_are_hashable_and_compare_by_value() -> None:
    event = Event(EventType.LOG_LINE, {"line": "x"}, process_id="p")
    assert event in {event}
    assert event == attrs.evolve(event)
    assert event != Event(EventType.LOG_LINE, {"line": "x"}, process_id="p")  # new id


def test_block_publish_from_a_handler_into_another_full_lane_delivers_it() -> None:
    bus = EventBus(workers=1, queue_size=2, backpressure=Backpressure.BLOCK, publish_timeout=WAIT)
    received: list[int] = []
    published = threading.Event()
    forwarded = threading.Event()

    def forwarder(event: Event) -> None:  # the only dispatcher runs this
        assert published.wait(WAIT)
        bus.publish(log(100))  # the LOG lane is full and no dispatcher is free
        forwarded.set()

    bus.subscribe(EventType.ERROR_DETECTED, forwarder)
    bus.subscribe(EventType.LOG_LINE, lambda e: received.append(e.data["i"]))
    bus.publish(Event(EventType.ERROR_DETECTED, {}))
    bus.publish(log(0))
    bus.publish(log(1))
    published.set()
    assert forwarded.wait(WAIT)
    bus.stop()
    assert received == [0, 1, 100]


def _shed_model(priorities: list[int], size: int, policy: Backpressure) -> list[int]:
    """What one full lane keeps, by the rules of Backpressure (a sequential reference)."""
    box: list[tuple[int, int]] = []
    for i, p in enumerate(priorities):
        if len(box) >= size:
            lowest = max(q for _, q in box)
            if policy is Backpressure.DROP_OLDEST:
                if p > lowest:
                    continue
                box.pop(next(k for k, (_, q) in enumerate(box) if q == lowest))
            else:
                if p >= lowest:
                    continue
                box.pop(max(k for k, (_, q) in enumerate(box) if q == lowest))
        box.append((i, p))
    return [i for i, _ in box]


@pytest.mark.parametrize("policy", [Backpressure.DROP_OLDEST, Backpressure.DROP_NEWEST])
def test_big_backlogs_shed_like_the_model_and_drain_in_chunks(policy: Backpressure) -> None:
    bus, gate = _held_bus(policy, queue_size=1500)
    other: list[int] = []
    bus.subscribe(EventType.ERROR_DETECTED, lambda e: other.append(e.data["i"]))  # fan-out
    types = (EventType.LOG_LINE, EventType.URL_DETECTED, EventType.ERROR_DETECTED)
    sent = [Event(types[i % 3], {"i": i}) for i in range(2500)]
    for event in sent:
        bus.publish(event)
    m = bus.metrics()
    assert adds_up(m)
    assert m.events_dropped == 1000
    gate.release.set()
    snapshots = []
    while not wait_until(lambda: sum(bus.metrics().queue_depth) == 0, timeout=0.001):
        snapshots.append(bus.metrics())
    bus.stop()
    assert all(adds_up(s) and min(s.queue_depth) >= 0 for s in snapshots)
    expected = _shed_model([int(e.priority) for e in sent], 1500, policy)
    assert [e.data["i"] for e in gate.seen[1:]] == expected
    assert other == list(range(2, 2500, 3))  # the other lane lost nothing
    m = bus.metrics()
    assert (m.events_published, m.events_dropped, m.queue_depth) == (2501, 1000, (0, 0, 0))

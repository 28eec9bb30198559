"""check_event_bus against the real EventBus, the mock, and buses broken on purpose."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest

from brummer.events import Event, EventBus
from brummer.pool import Priority
from brummer.testing.conformance import ConformanceError, check_event_bus
from brummer.testing.mocks import MockEventBus


@pytest.mark.parametrize(
    "factory",
    [EventBus, lambda: EventBus(workers=1), MockEventBus],
    ids=["EventBus", "EventBus-1-worker", "MockEventBus"],
)
def test_buses_conform(factory: Callable[[], Any]) -> None:
    check_event_bus(factory)


class LeakyUnsubscribeBus(MockEventBus):
    """Broken: unsubscribe forgets to remove the handler (it keeps receiving)."""

    def unsubscribe(self, sub_id: Any) -> None:
        with self._lock:
            if sub_id not in self._subs:
                super().unsubscribe(sub_id)


class UncountedErrorsBus(MockEventBus):
    """Broken: handler exceptions are swallowed without counting or logging."""

    def _deliver(self, event: Event) -> None:
        self._published.append(event)
        self._counts["published"] += 1
        for key, handler in list(self._subs.values()):
            if key is None or key == self._type_key(event.type):
                with contextlib.suppress(Exception):
                    handler(event)
        self._counts["processed"] += 1


class ReorderingBus(MockEventBus):
    """Broken: delivers each event on a fresh thread (so events of one process can overtake)."""

    def _deliver(self, event: Event) -> None:
        self._published.append(event)
        self._counts["published"] += 1
        self._counts["processed"] += 1
        threads = []
        for key, handler in list(self._subs.values()):
            if key is None or key == self._type_key(event.type):
                t = threading.Thread(target=handler, args=(event,))
                threads.append(t)
        for t in reversed(threads):
            t.start()
        for t in threads:
            t.join()
        self._late.append(event)

    def __init__(self) -> None:
        super().__init__()
        self._late: list[Event] = []


class HoldBackBus(MockEventBus):
    """Broken: events are delivered only when the next one is published, newest first (LIFO)."""

    def __init__(self) -> None:
        super().__init__()
        self._held: list[Event] = []

    def _deliver(self, event: Event) -> None:
        self._held.append(event)
        if len(self._held) == 2:
            held, self._held = self._held, []
            for e in reversed(held):
                super()._deliver(e)

    def stop(self, timeout: float | None = 5.0) -> None:
        with self._lock:
            for e in self._held:
                super()._deliver(e)
            self._held = []
        super().stop(timeout)


@pytest.mark.parametrize(
    ("factory", "complaint"),
    [
        (LeakyUnsubscribeBus, "exactly the events|more than once|unsubscrib"),
        (UncountedErrorsBus, "handler_errors|traceback"),
        (HoldBackBus, "overtook|exactly the events"),
    ],
    ids=["leaky-unsubscribe", "uncounted-errors", "lifo"],
)
def test_broken_buses_are_caught(factory: Callable[[], Any], complaint: str) -> None:
    with pytest.raises(ConformanceError, match=complaint):
        check_event_bus(factory)


class IgnoresPriority(EventBus):
    """Broken: treats every event as LOW, so a full lane sheds HIGH events too."""

    def publish(self, event: Event) -> None:
        if isinstance(event, Event):
            event = Event(event.type, event.data, event.process_id, priority=Priority.LOW)
        super().publish(event)


def test_a_bus_that_sheds_high_events_is_caught() -> None:
    with pytest.raises(ConformanceError, match="LOW must be shed before HIGH"):
        check_event_bus(IgnoresPriority)

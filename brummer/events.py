"""Event bus: typed events, per-subscription delivery lanes, bounded queues with priority shedding.

Publishers hand :class:`Event` objects to an :class:`EventBus`; every subscription gets the
events of its type in its own *lane* (a FIFO mailbox). A lane is served by one dispatcher
thread at a time, so a handler is never called concurrently with itself and sees events in
publish order; different lanes are served by different threads in parallel.

What the bus is for: fan-out of small notifications (process started, log line, URL found)
between brummer's components, at up to millions of events per second. What it is *not*
for: durable messaging (nothing survives ``stop()``'s timeout or the process), request/reply,
or slow work inside handlers (a slow handler holds back its own lane and sheds its events).

Design (the rules the code below keeps):

- ``publish`` routes at once: under the bus lock it appends the event to the mailbox of every
  matching subscription and wakes a dispatcher only when a lane goes from idle to ready and
  a dispatcher is idle. No per-event Future, no per-event allocation besides the event itself
  (an event for two or more lanes gets one small shared record).
- A dispatcher claims a whole lane (up to ``MAX_CHUNK`` events) per lock acquisition and
  calls the handler in a tight loop, then accounts for the chunk in one more acquisition.
- Each lane holds at most ``queue_size`` waiting events. When one is full the policy
  decides: ``DROP_OLDEST``/``DROP_NEWEST`` shed the lowest priority first, ``BLOCK`` makes
  ``publish`` wait up to ``publish_timeout`` and then raise ``RESOURCE_LIMIT``.
- Counters change only under the lock, so ``events_published == events_processed +
  events_dropped + sum(queue_depth)`` holds in every :meth:`EventBus.metrics` snapshot.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Any, Final, cast

import attrs

from brummer.contracts import (
    BLOCKING,
    Cleanup,
    ThreadSafety,
    check_timeout,
    contract,
)
from brummer.errors import BrummerError, ErrorCode
from brummer.pool import Priority

__all__ = [
    "DEFAULT_WORKERS",
    "MAX_CHUNK",
    "SHED_REPORT_INTERVAL",
    "Backpressure",
    "Event",
    "EventBus",
    "EventBusMetrics",
    "EventType",
    "SubscriptionID",
]

_COMPONENT: Final = "events"
_log = logging.getLogger("brummer.events")

DEFAULT_WORKERS: Final = 4
"""Dispatcher threads (or pool tasks) at most, when ``workers`` is not given."""

MAX_CHUNK: Final = 1024
"""Most events a dispatcher takes from one lane per lock acquisition."""

SHED_REPORT_INTERVAL: Final = 5.0
"""Seconds between two warnings that one subscription is shedding events."""

_Handler = Callable[["Event"], object]


@contract(ThreadSafety.TS)
class EventType(str, enum.Enum):
    """The event types brummer's components publish; any other non-empty string works too.

    Thread safety: TS (immutable enum).
    """

    PROCESS_STARTED = "process.started"
    PROCESS_EXITED = "process.exited"
    LOG_LINE = "log.line"
    ERROR_DETECTED = "error.detected"
    URL_DETECTED = "url.detected"
    BUILD_EVENT = "build.event"
    TEST_FAILED = "test.failed"
    TEST_PASSED = "test.passed"
    PROXY_REQUEST = "proxy.request"
    TELEMETRY = "telemetry.event"
    MCP_ACTIVITY = "mcp.activity"
    MCP_CONNECTED = "mcp.connected"
    MCP_DISCONNECTED = "mcp.disconnected"

    def __str__(self) -> str:
        return self.value


_TYPE_BY_VALUE: Final[dict[str, EventType]] = {t.value: t for t in EventType}

_DEFAULT_PRIORITY: Final[dict[str, Priority]] = {
    EventType.PROCESS_STARTED: Priority.HIGH,
    EventType.PROCESS_EXITED: Priority.HIGH,
    EventType.ERROR_DETECTED: Priority.HIGH,
    EventType.URL_DETECTED: Priority.MEDIUM,
    EventType.BUILD_EVENT: Priority.MEDIUM,
    EventType.TEST_FAILED: Priority.MEDIUM,
    EventType.TEST_PASSED: Priority.MEDIUM,
    EventType.PROXY_REQUEST: Priority.MEDIUM,
    EventType.MCP_CONNECTED: Priority.MEDIUM,
    EventType.MCP_DISCONNECTED: Priority.MEDIUM,
    EventType.LOG_LINE: Priority.LOW,
    EventType.TELEMETRY: Priority.LOW,
    EventType.MCP_ACTIVITY: Priority.LOW,
}

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
_event_ids = itertools.count(1)  # next() on a count is atomic under the GIL
_subscription_ids = itertools.count(1)


def _bad(message: str, hint: str) -> BrummerError:
    return BrummerError(_COMPONENT, ErrorCode.INVALID_ARGUMENT, message, hint=hint)


def _event_type(value: object) -> EventType | str:
    """Normalise an event type: known strings become their EventType member."""
    if isinstance(value, str) and value:
        return _TYPE_BY_VALUE.get(value, value)
    raise _bad(
        f"event type must be an EventType or a non-empty string, not {value!r}",
        "pass an EventType member such as EventType.LOG_LINE, or a string like 'my.event'",
    )


def _frozen_data(value: object) -> Mapping[str, Any]:
    """A read-only copy of the event's data (a mapping proxy is taken as it is)."""
    if type(value) is dict:  # the common case, without the Mapping ABC check
        return MappingProxyType(value.copy())
    if type(value) is MappingProxyType:
        return value
    if isinstance(value, Mapping):
        return MappingProxyType(dict(value))
    raise _bad(
        f"event data must be a mapping, not {type(value).__name__}",
        "pass a dict such as {'line': text}",
    )


def _next_event_id() -> str:
    return f"ev-{next(_event_ids)}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _default_priority(event: Event) -> Priority:
    return _DEFAULT_PRIORITY.get(event.type, Priority.MEDIUM)


@contract(ThreadSafety.TS)
@attrs.frozen
class Event:
    """One immutable notification.

    Thread safety: TS (frozen value object; ``data`` is a read-only copy of the mapping given).

    ``id`` (unique in the process) and ``timestamp`` (UTC) are filled in when not given.
    ``priority`` defaults from the type: errors and process lifecycle HIGH; URL, build,
    test, proxy and MCP connection events MEDIUM; log lines, telemetry and MCP activity LOW;
    any other type MEDIUM. A string equal to an :class:`EventType` value becomes that member.

    Raises:
        BrummerError: INVALID_ARGUMENT for an empty or non-string type, data that is not a
            mapping, a non-string process_id or a priority that is not a Priority.
    """

    type: EventType | str = attrs.field(converter=_event_type)
    data: Mapping[str, Any] = attrs.field(default=_EMPTY, converter=_frozen_data, hash=False)
    process_id: str | None = None
    id: str = attrs.field(factory=_next_event_id)
    timestamp: datetime = attrs.field(factory=_utc_now)
    priority: Priority = attrs.field(default=attrs.Factory(_default_priority, takes_self=True))

    def __attrs_post_init__(self) -> None:
        if self.process_id is not None and not isinstance(self.process_id, str):
            raise _bad(
                f"process_id must be a string or None, not {self.process_id!r}",
                "pass the id of the process the event is about, or leave it out",
            )
        priority: object = self.priority
        if priority.__class__ is not Priority:
            if (
                not isinstance(priority, int)
                or isinstance(priority, bool)
                or priority not in (0, 1, 2)
            ):
                raise _bad(
                    f"priority must be a Priority, not {priority!r}",
                    "pass Priority.HIGH, Priority.MEDIUM or Priority.LOW, or leave it out",
                )
            object.__setattr__(self, "priority", Priority(priority))


@contract(ThreadSafety.TS)
class Backpressure(enum.Enum):
    """What a full subscription lane does with one more event.

    Thread safety: TS (immutable enum).

    DROP_OLDEST: shed the oldest waiting event of the lowest priority present (the new event
    itself when it is of a lower priority than everything waiting).
    DROP_NEWEST: shed the new event, unless a waiting event has a lower priority than it;
    then the newest such event of the lowest priority goes.
    BLOCK: ``publish`` waits up to ``publish_timeout`` for room, then raises
    ``BrummerError(RESOURCE_LIMIT, temporary=True)``; ``publish_async`` sheds like DROP_NEWEST.
    """

    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"
    BLOCK = "block"


@contract(ThreadSafety.TS)
class SubscriptionID(str):
    """Identifies one subscription; returned by subscribe, passed to unsubscribe.

    Thread safety: TS (immutable string).
    """

    __slots__ = ()


@contract(ThreadSafety.TS)
@attrs.frozen
class EventBusMetrics:
    """A consistent snapshot of an EventBus's counters, all taken under one lock.

    Thread safety: TS (frozen value object).

    Attributes:
        events_published: events given to publish/publish_async and not refused with an
            error (accepted or shed).
        events_processed: events whose delivery finished: every subscription they went to
            has called its handler on them (events with no subscriber count at once).
        events_dropped: events shed by backpressure or published after stop (an event shed
            from one lane and delivered to another counts here, once).
        handler_errors: handler calls that raised.
        avg_processing_time: mean seconds per handler call.
        worker_utilization: fraction of the dispatcher slots running a handler now (0..1).
        queue_depth: events accepted and not finished, by priority (HIGH, MEDIUM, LOW); so
            ``events_published == events_processed + events_dropped + sum(queue_depth)``.
    """

    events_published: int
    events_processed: int
    events_dropped: int
    handler_errors: int
    avg_processing_time: float
    worker_utilization: float
    queue_depth: tuple[int, int, int]


class _Shared:
    """An event waiting in two or more lanes: counts the lanes that still hold it."""

    __slots__ = ("dropped", "event", "priority", "remaining")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.priority = event.priority
        self.remaining = 0
        self.dropped = False


_Item = Event | _Shared

# Lane states; a lane is in the ready deque exactly when READY.
_IDLE: Final = 0
_READY: Final = 1
_RUNNING: Final = 2


class _Lane:
    """One subscription: its handler and its mailbox. Guarded by the bus lock."""

    __slots__ = (
        "box",
        "depth",
        "handler",
        "id",
        "key",
        "nshared",
        "reported",
        "runner",
        "shed",
        "state",
    )

    def __init__(
        self, sub_id: SubscriptionID, key: EventType | str | None, handler: _Handler
    ) -> None:
        self.id = sub_id
        self.key = key  # None: every event type
        self.handler = handler
        self.box: deque[_Item] = deque()  # waiting items, publish order
        self.depth = [0, 0, 0]  # waiting items by priority
        self.nshared = 0  # waiting items that are _Shared
        self.state = _IDLE
        self.runner = 0  # ident of the thread delivering this lane's chunk
        self.shed = 0  # events shed from this lane since the last warning about it
        self.reported = -SHED_REPORT_INTERVAL  # time.monotonic() of that warning


class _State(enum.Enum):
    RUNNING = "running"
    STOPPING = "stopping"  # no new events; dispatchers drain what was accepted
    STOPPED = "stopped"


@contract(
    ThreadSafety.TS,
    cleanup=Cleanup.MANUAL,
    guarantees="per-subscription publish order; no lost accepted event before stop() returns",
)
class EventBus:
    """Publish/subscribe with one delivery lane per subscription.

    Thread safety: TS. Every method may be called from any thread, including from inside a
    handler (``stop`` and ``unsubscribe`` of the handler's own subscription do not wait there).

    Guarantees:
    - a handler receives exactly the events published while it was subscribed (unless
      shed): one subscribed before ``publish`` returns receives that event; ``unsubscribe``
      delivers what is still waiting, and once it returns the handler receives nothing
      more and is not running (unless ``unsubscribe`` was called from that handler);
    - one subscription sees its events in publish order (so events of one process never
      overtake each other) and is never called concurrently with itself; different
      subscriptions run in parallel on up to ``workers`` dispatchers;
    - a handler that raises is logged on ``brummer.events`` with its traceback, counted in
      ``handler_errors``, and delivery goes on;
    - under load each lane holds at most ``queue_size`` waiting events; LOW is shed before
      MEDIUM before HIGH (see :class:`Backpressure`); events already handed to a handler
      are never shed;
    - ``stop()`` delivers everything accepted, then joins every thread it started.

    Dispatchers are daemon threads started lazily (never more than ``workers``), or, when
    ``pool`` is given, tasks submitted to it (a refused submit falls back to a thread).
    Call :meth:`stop` (or use the bus as a context manager) to release them.

    Args:
        workers: most dispatchers at once (default ``DEFAULT_WORKERS``); must be ≥ 1.
        queue_size: most events waiting per subscription; must be ≥ 1.
        backpressure: what a full lane does (see :class:`Backpressure`).
        publish_timeout: how long ``publish`` waits under BLOCK (None: without limit).
        pool: an Executor (such as brummer's WorkerPool) to run dispatch tasks on.

    Raises:
        BrummerError: INVALID_ARGUMENT for any bad argument.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        queue_size: int = 10_000,
        backpressure: Backpressure = Backpressure.DROP_OLDEST,
        publish_timeout: float | None = 0.1,
        pool: Executor | None = None,
    ) -> None:
        if workers is None:
            workers = DEFAULT_WORKERS
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise _bad(
                f"workers must be an integer ≥ 1, not {workers!r}",
                "pass the number of dispatcher threads, or None for the default",
            )
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise _bad(
                f"queue_size must be an integer ≥ 1, not {queue_size!r}",
                "pass how many events may wait per subscription, e.g. 10_000",
            )
        if not isinstance(backpressure, Backpressure):
            raise _bad(
                f"backpressure must be a Backpressure, not {backpressure!r}",
                "pass Backpressure.DROP_OLDEST, Backpressure.DROP_NEWEST or Backpressure.BLOCK",
            )
        self._publish_timeout = check_timeout(_COMPONENT, publish_timeout, name="publish_timeout")
        if pool is not None and not callable(getattr(pool, "submit", None)):
            raise _bad(
                f"pool must be an Executor with submit(), not {pool!r}",
                "pass a brummer WorkerPool (or any concurrent.futures.Executor), or None",
            )
        self._workers = workers
        self._queue_size = queue_size
        self._policy = backpressure
        self._pool = pool

        # One mutex for all state below; the conditions share it. Never held while a
        # handler runs, a thread starts or the pool is called.
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # idle dispatchers wait here
        self._space = threading.Condition(self._lock)  # BLOCK publishers wait here
        self._changed = threading.Condition(self._lock)  # unsubscribe/stop wait for lanes
        self._state = _State.RUNNING
        self._open = True  # _state is RUNNING; a plain bool for the publish path
        self._lanes: dict[str, _Lane] = {}
        self._routes: dict[EventType | str, tuple[_Lane, ...]] = {}
        self._route_all: tuple[_Lane, ...] = ()  # lanes of subscribe_all
        self._ready: deque[_Lane] = deque()
        self._idle = 0  # dispatchers waiting on _work and not yet notified
        self._dispatchers = 0  # threads alive or reserved, plus pool tasks running
        self._threads: list[threading.Thread] = []
        self._busy = 0  # dispatchers running a handler chunk now
        self._space_waiters = 0
        self._watchers = 0  # threads waiting on _changed
        self._published = 0
        self._processed = 0
        self._dropped = 0
        self._errors = 0
        self._calls = 0
        self._handler_time = 0.0
        self._depth = [0, 0, 0]  # events accepted and not finished, by priority
        self._local = threading.local()  # .dispatching: this thread delivers for this bus

    # ------------------------------------------------------------------ subscriptions

    @contract(ThreadSafety.TS)
    def subscribe(self, event_type: EventType | str, handler: _Handler) -> SubscriptionID:
        """Call ``handler(event)`` for every event of ``event_type`` published from now on.

        Thread safety: TS. Non-blocking.

        Raises:
            BrummerError: INVALID_ARGUMENT for an empty/non-string type or a non-callable
                handler; INVALID_STATE after stop().
        """
        return self._add(_event_type(event_type), handler)

    @contract(ThreadSafety.TS)
    def subscribe_all(self, handler: _Handler) -> SubscriptionID:
        """Call ``handler(event)`` for every event published from now on, whatever its type.

        Thread safety: TS. Non-blocking.

        Raises:
            BrummerError: INVALID_ARGUMENT for a non-callable handler; INVALID_STATE after stop().
        """
        return self._add(None, handler)

    def _add(self, key: EventType | str | None, handler: _Handler) -> SubscriptionID:
        if not callable(handler):
            raise _bad(
                f"handler must be callable, not {handler!r}",
                "pass a function taking one Event, e.g. lambda event: print(event)",
            )
        sub_id = SubscriptionID(f"sub-{next(_subscription_ids)}")
        with self._lock:
            if self._state is not _State.RUNNING:
                raise self._stopped_error("subscribe")
            self._lanes[sub_id] = _Lane(sub_id, key, handler)
            self._rebuild_routes_locked()
        return sub_id

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def unsubscribe(self, sub_id: SubscriptionID | str) -> None:
        """End a subscription: events published from now on do not reach its handler.

        Thread safety: TS. Blocking: the events published while subscribed that are still
        waiting are delivered first, and the call returns once the handler has finished
        them and is not running. Called from inside that same handler it returns at once
        (the waiting events follow after the handler returns). Called from another handler
        of this bus it delivers the waiting events itself rather than wait for a dispatcher.
        (Two handlers unsubscribing each other from inside themselves wait for each other.)

        Raises:
            BrummerError: NOT_FOUND for an unknown id or one already unsubscribed;
                INVALID_ARGUMENT for something that is not a subscription id.
        """
        if not isinstance(sub_id, str):
            raise _bad(
                f"not a subscription id: {sub_id!r}",
                "pass the SubscriptionID that subscribe() or subscribe_all() returned",
            )
        me = threading.get_ident()
        helping = getattr(self._local, "dispatching", False)
        with self._lock:
            lane = self._lanes.pop(sub_id, None)
            if lane is None:
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.NOT_FOUND,
                    f"no subscription {sub_id!r}",
                    hint="it was never returned by subscribe() or is already unsubscribed",
                    context={"subscription": str(sub_id)},
                )
            self._rebuild_routes_locked()  # from here on nothing new enters the lane
            if lane.runner == me:
                return
            self._watchers += 1
            try:
                while lane.box or lane.state == _RUNNING:
                    if helping and lane.state == _READY:
                        self._ready.remove(lane)  # a dispatcher might be what we wait for
                        self._deliver_lane_locked(lane)
                    else:
                        self._changed.wait()
            finally:
                self._watchers -= 1

    def _rebuild_routes_locked(self) -> None:
        route_all = tuple(lane for lane in self._lanes.values() if lane.key is None)
        typed: dict[EventType | str, list[_Lane]] = {}
        for lane in self._lanes.values():
            if lane.key is not None:
                typed.setdefault(lane.key, []).append(lane)
        self._routes = {key: (*lanes, *route_all) for key, lanes in typed.items()}
        self._route_all = route_all

    # ------------------------------------------------------------------ publishing

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscription of its type.

        Thread safety: TS. Non-blocking under the DROP_* policies (a full lane sheds per the
        policy and the shed event is counted); under BLOCK waits up to ``publish_timeout``
        for room in every lane the event goes to.

        A handler publishing under BLOCK into another subscription's full lane delivers
        that lane itself instead of waiting for a dispatcher (there may be none free).

        Raises:
            BrummerError: INVALID_ARGUMENT for a non-Event; INVALID_STATE once stop() has
                begun; RESOURCE_LIMIT (temporary) when BLOCK's wait runs out, or at once when
                a handler publishes into its own full lane (waiting would deadlock). A
                refused event is not counted in the metrics.
        """
        if event.__class__ is not Event and not isinstance(event, Event):
            raise self._not_an_event(event)
        with self._lock:
            if not self._open:
                raise self._stopped_error("publish")
            lanes = self._routes.get(event.type, self._route_all)
            if len(lanes) == 1:
                # The hot path, written out: one lane with room, already being served.
                lane = lanes[0]
                box = lane.box
                if len(box) < self._queue_size and lane.state != _IDLE:
                    self._published += 1
                    box.append(event)
                    priority = event.priority
                    lane.depth[priority] += 1
                    self._depth[priority] += 1
                    return
            if self._policy is Backpressure.BLOCK and lanes:
                lanes = self._wait_for_room_locked(event, lanes)
            spawn = self._accept_locked(event, lanes, self._policy)
        if spawn:
            self._spawn(spawn)

    @contract(ThreadSafety.TS)
    def publish_async(self, event: Event) -> None:
        """Hand ``event`` to every subscription without ever waiting.

        Thread safety: TS. Non-blocking. A full lane sheds per the policy (BLOCK sheds like
        DROP_NEWEST); after stop the event is counted as dropped. Neither raises.

        Raises:
            BrummerError: INVALID_ARGUMENT for a non-Event (a programming error, not load).
        """
        if event.__class__ is not Event and not isinstance(event, Event):
            raise self._not_an_event(event)
        with self._lock:
            if not self._open:
                self._published += 1
                self._dropped += 1
                return
            lanes = self._routes.get(event.type, self._route_all)
            if len(lanes) == 1:
                # The hot path, written out: one lane with room, already being served.
                lane = lanes[0]
                box = lane.box
                if len(box) < self._queue_size and lane.state != _IDLE:
                    self._published += 1
                    box.append(event)
                    priority = event.priority
                    lane.depth[priority] += 1
                    self._depth[priority] += 1
                    return
            policy = self._policy
            if policy is Backpressure.BLOCK:
                policy = Backpressure.DROP_NEWEST
            spawn = self._accept_locked(event, lanes, policy)
        if spawn:
            self._spawn(spawn)

    def _accept_locked(self, event: Event, lanes: tuple[_Lane, ...], policy: Backpressure) -> int:
        """Count ``event`` and put it into ``lanes``; return how many dispatchers to start."""
        self._published += 1
        if not lanes:
            self._processed += 1
            return 0
        priority = event.priority
        spawns = 0
        if len(lanes) == 1:  # the common case: no shared record
            lane = lanes[0]
            if len(lane.box) >= self._queue_size and not self._make_room_locked(
                lane, priority, policy
            ):
                self._dropped += 1
                return 0
            lane.box.append(event)
            lane.depth[priority] += 1
            self._depth[priority] += 1
            if lane.state == _IDLE:
                lane.state = _READY
                self._ready.append(lane)
                spawns += self._wake_locked()
        else:
            shared = _Shared(event)
            self._depth[priority] += 1
            for lane in lanes:
                if len(lane.box) >= self._queue_size and not self._make_room_locked(
                    lane, priority, policy
                ):
                    shared.dropped = True
                    continue
                lane.box.append(shared)
                lane.depth[priority] += 1
                lane.nshared += 1
                shared.remaining += 1
                if lane.state == _IDLE:
                    lane.state = _READY
                    self._ready.append(lane)
                    spawns += self._wake_locked()  # one per lane made ready
            if shared.remaining == 0:
                self._finish_shared_locked(shared)
        return spawns

    def _make_room_locked(self, lane: _Lane, priority: int, policy: Backpressure) -> bool:
        """Shed one waiting item of ``lane`` for an event of ``priority``; False: shed the new one."""
        lane.shed += 1
        depth = lane.depth
        lowest = 2 if depth[2] else (1 if depth[1] else 0)
        box = lane.box
        if policy is Backpressure.DROP_OLDEST:
            if priority > lowest:
                return False
            if box[0].priority == lowest:
                victim = box.popleft()
            else:
                index = next(i for i, item in enumerate(box) if item.priority == lowest)
                victim = box[index]
                del box[index]
        else:
            if priority >= lowest:
                return False
            index = len(box) - 1
            while box[index].priority != lowest:
                index -= 1
            victim = box[index]
            del box[index]
        depth[lowest] -= 1
        if isinstance(victim, _Shared):
            lane.nshared -= 1
            victim.dropped = True
            victim.remaining -= 1
            if victim.remaining == 0:
                self._finish_shared_locked(victim)
        else:
            self._depth[lowest] -= 1
            self._dropped += 1
        return True

    def _wait_for_room_locked(self, event: Event, lanes: tuple[_Lane, ...]) -> tuple[_Lane, ...]:
        """BLOCK policy: wait until every lane of ``event`` has room; return the lanes then."""
        limit = self._queue_size
        if all(len(lane.box) < limit for lane in lanes):
            return lanes
        me = threading.get_ident()
        helping = getattr(self._local, "dispatching", False)
        timeout = self._publish_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        self._space_waiters += 1
        try:
            while True:
                full = [lane for lane in lanes if len(lane.box) >= limit]
                if not full:
                    return lanes
                if any(lane.runner == me for lane in full):
                    raise self._full_error(timeout, own_lane=True)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise self._full_error(timeout, own_lane=False)
                waiting = [lane for lane in full if lane.state == _READY]
                if helping and waiting:  # a handler publishing: drain the lane, do not wait
                    self._ready.remove(waiting[0])
                    self._deliver_lane_locked(waiting[0])  # releases the lock meanwhile
                else:
                    self._space.wait(left)
                if self._state is not _State.RUNNING:
                    raise self._stopped_error("publish")
                lanes = self._routes.get(event.type, self._route_all)
        finally:
            self._space_waiters -= 1

    # ------------------------------------------------------------------ dispatching

    def _wake_locked(self) -> int:
        """A lane became ready: notify an idle dispatcher, or return 1: start one."""
        if self._idle:
            self._idle -= 1
            self._work.notify()
            return 0
        if self._dispatchers < self._workers:
            self._dispatchers += 1  # reserved now; _spawn starts it after the lock is released
            return 1
        return 0  # every dispatcher is busy; each one looks at _ready before it waits

    def _spawn(self, count: int) -> None:
        """Start ``count`` dispatchers reserved by _wake_locked."""
        for _ in range(count):
            self._spawn_one()

    def _spawn_one(self) -> None:
        """Start one dispatcher: a pool task if there is a pool and it takes it, else a thread."""
        if self._pool is not None:
            try:
                self._pool.submit(self._pool_task)
            except Exception as exc:  # pool full or stopped: a thread of our own will do
                _log.warning("event bus: pool refused a dispatch task (%s); using a thread", exc)
            else:
                return
        with self._lock:
            thread = threading.Thread(
                target=self._thread_main, name=f"brummer-events-{len(self._threads)}", daemon=True
            )
            # Started under the lock so stop() never sees (and joins) an unstarted thread;
            # start() only waits for the thread's bootstrap, not for _thread_main to take the lock.
            try:
                thread.start()
            except RuntimeError:
                _log.exception("event bus: could not start a dispatcher thread")
                self._dispatchers -= 1
                return
            self._threads.append(thread)

    def _thread_main(self) -> None:
        self._local.dispatching = True
        with self._lock:
            try:
                while True:
                    if self._ready:
                        self._deliver_one_locked()
                    elif self._state is not _State.RUNNING:
                        return
                    else:
                        self._idle += 1
                        self._work.wait()
            finally:
                self._dispatchers -= 1
                if self._watchers:
                    self._changed.notify_all()

    def _pool_task(self) -> None:
        previous = getattr(self._local, "dispatching", False)
        self._local.dispatching = True
        try:
            with self._lock:
                try:
                    while self._ready:
                        self._deliver_one_locked()
                finally:
                    self._dispatchers -= 1
                    if self._watchers:
                        self._changed.notify_all()
        finally:
            self._local.dispatching = previous

    def _deliver_one_locked(self) -> None:
        """Serve the first ready lane."""
        self._deliver_lane_locked(self._ready.popleft())

    def _deliver_lane_locked(self, lane: _Lane) -> None:
        """Claim a ready lane, run its handler on a chunk without the lock, then account."""
        box = lane.box
        if not box:
            lane.state = _IDLE
            return
        chunk: deque[_Item] | list[_Item]
        if len(box) <= MAX_CHUNK:
            chunk, lane.box = box, deque()
            counts, lane.depth = lane.depth, [0, 0, 0]
            nshared, lane.nshared = lane.nshared, 0
        else:
            chunk = [box.popleft() for _ in range(MAX_CHUNK)]
            counts = [0, 0, 0]
            nshared = 0
            for item in chunk:
                counts[item.priority] += 1
                if item.__class__ is _Shared:
                    nshared += 1
            depth = lane.depth
            for p in (0, 1, 2):
                depth[p] -= counts[p]
            lane.nshared -= nshared
        if self._space_waiters:
            self._space.notify_all()
        shed = 0
        if lane.shed and time.monotonic() - lane.reported >= SHED_REPORT_INTERVAL:
            shed, lane.shed, lane.reported = lane.shed, 0, time.monotonic()
        lane.state = _RUNNING
        lane.runner = threading.get_ident()
        self._busy += 1
        self._lock.release()
        if shed:  # logged without the lock: a logging handler may publish to this bus
            _log.warning(
                "subscription %s (%r) is too slow: %d event(s) shed (queue_size %d, %s)",
                lane.id,
                lane.handler,
                shed,
                self._queue_size,
                self._policy.name,
            )
        started = time.perf_counter()
        try:
            errors = self._call_handler(lane, chunk, nshared)
        finally:
            elapsed = time.perf_counter() - started
            self._lock.acquire()
        self._busy -= 1
        self._calls += len(chunk)
        self._errors += errors
        self._handler_time += elapsed
        if nshared:
            for item in chunk:
                if isinstance(item, _Shared):
                    counts[item.priority] -= 1
                    item.remaining -= 1
                    if item.remaining == 0:
                        self._finish_shared_locked(item)
        depth = self._depth
        depth[0] -= counts[0]
        depth[1] -= counts[1]
        depth[2] -= counts[2]
        self._processed += counts[0] + counts[1] + counts[2]
        lane.runner = 0
        if lane.box:
            lane.state = _READY
            self._ready.append(lane)  # this dispatcher loops and serves the ready lanes in turn
        else:
            lane.state = _IDLE
        if self._watchers:
            self._changed.notify_all()

    @staticmethod
    def _call_handler(lane: _Lane, chunk: deque[_Item] | list[_Item], nshared: int) -> int:
        """Call the lane's handler for each item of the chunk; return how many calls raised."""
        handler = lane.handler
        errors = 0
        if nshared:
            for item in chunk:
                event = item.event if isinstance(item, _Shared) else item
                try:
                    handler(event)
                except BaseException:
                    errors += 1
                    _log_handler_failure(lane, event)
        else:
            for event in cast("Iterable[Event]", chunk):  # no _Shared in this chunk
                try:
                    handler(event)
                except BaseException:
                    errors += 1
                    _log_handler_failure(lane, event)
        return errors

    def _finish_shared_locked(self, shared: _Shared) -> None:
        self._depth[shared.priority] -= 1
        if shared.dropped:
            self._dropped += 1
        else:
            self._processed += 1

    def _discard_waiting_locked(self, lane: _Lane) -> None:
        """Drop every waiting item of ``lane`` (stop() ran out of time)."""
        box = lane.box
        if not box:
            return
        lane.box = deque()
        lane.depth = [0, 0, 0]
        lane.nshared = 0
        for item in box:
            if isinstance(item, _Shared):
                item.dropped = True
                item.remaining -= 1
                if item.remaining == 0:
                    self._finish_shared_locked(item)
            else:
                self._depth[item.priority] -= 1
                self._dropped += 1
        if self._space_waiters:
            self._space.notify_all()

    # ------------------------------------------------------------------ stop and metrics

    @contract(ThreadSafety.TS, timeout=5.0, cleanup=Cleanup.MANUAL)
    def stop(self, timeout: float | None = 5.0) -> None:
        """Refuse new events, deliver every accepted one, then join the dispatcher threads.

        Thread safety: TS. Idempotent; a second call waits like the first. Called from inside
        a handler it only begins the shutdown and returns at once (the dispatchers finish
        delivering and exit by themselves). BLOCK publishers that are waiting get INVALID_STATE.

        Args:
            timeout: seconds to wait for delivery and the threads together (None: no limit).

        Raises:
            BrummerError: TIMEOUT when a handler did not finish in time; the events still
                waiting then are dropped (counted), the stuck threads are left to end by
                themselves, and the bus stays stopped.
        """
        timeout = check_timeout(_COMPONENT, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._state is _State.RUNNING:
                self._state = _State.STOPPING
                self._open = False
                self._idle = 0
                self._work.notify_all()
                self._space.notify_all()
            if getattr(self._local, "dispatching", False):
                return
            self._watchers += 1
            try:
                while self._pending_locked() or self._dispatchers:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    self._changed.wait(left)
            finally:
                self._watchers -= 1
            undelivered = self._pending_locked()
            if undelivered:
                for lane in self._lanes.values():
                    self._discard_waiting_locked(lane)
            self._state = _State.STOPPED
            self._work.notify_all()
            threads = [t for t in self._threads if t is not threading.current_thread()]
        for thread in threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
        alive = [t.name for t in threads if t.is_alive()]
        if undelivered or alive:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.TIMEOUT,
                f"stop() ran out of time after {timeout} s: {undelivered} event(s) not "
                f"delivered in time (those still waiting were dropped), dispatchers still "
                f"running: {alive}",
                hint="a handler is blocking; make handlers return quickly or pass a longer timeout",
                context={"undelivered": undelivered, "threads": alive},
            )

    def _pending_locked(self) -> int:
        return self._published - self._processed - self._dropped

    @contract(ThreadSafety.TS)
    def metrics(self) -> EventBusMetrics:
        """A consistent snapshot of the counters (see :class:`EventBusMetrics`).

        Thread safety: TS. Non-blocking; one lock acquisition.
        """
        with self._lock:
            return EventBusMetrics(
                events_published=self._published,
                events_processed=self._processed,
                events_dropped=self._dropped,
                handler_errors=self._errors,
                avg_processing_time=self._handler_time / self._calls if self._calls else 0.0,
                worker_utilization=min(1.0, self._busy / self._workers),
                queue_depth=(self._depth[0], self._depth[1], self._depth[2]),
            )

    @property
    @contract(ThreadSafety.TS)
    def stopped(self) -> bool:
        """Whether stop() has begun (publish raises INVALID_STATE from then on).

        Thread safety: TS.
        """
        return self._state is not _State.RUNNING

    def __enter__(self) -> EventBus:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"<EventBus {self._state.value} subscriptions={len(self._lanes)} "
            f"policy={self._policy.name} queue_size={self._queue_size}>"
        )

    # ------------------------------------------------------------------ errors

    @staticmethod
    def _not_an_event(value: object) -> BrummerError:
        return _bad(
            f"can only publish an Event, not {type(value).__name__}",
            "wrap the payload: bus.publish(Event(EventType.LOG_LINE, {'line': text}))",
        )

    @staticmethod
    def _stopped_error(what: str) -> BrummerError:
        return BrummerError(
            _COMPONENT,
            ErrorCode.INVALID_STATE,
            f"cannot {what}: the event bus is stopped",
            hint="create a new EventBus, or publish before calling stop()",
        )

    def _full_error(self, timeout: float | None, *, own_lane: bool) -> BrummerError:
        if own_lane:
            message = "a handler published into its own full subscription (it would wait forever)"
            hint = "publish with publish_async() from handlers, or raise queue_size"
        else:
            message = f"a subscription's queue stayed full for {timeout} s (backpressure BLOCK)"
            hint = "retry later, slow the publisher, raise queue_size or publish_timeout"
        return BrummerError(
            _COMPONENT,
            ErrorCode.RESOURCE_LIMIT,
            message,
            hint=hint,
            temporary=True,
            context={"queue_size": self._queue_size, "publish_timeout": timeout},
        )


def _log_handler_failure(lane: _Lane, event: Event) -> None:
    _log.error(
        "event handler %r of subscription %s raised on event %s (%s); delivery goes on",
        lane.handler,
        lane.id,
        event.id,
        event.type,
        exc_info=True,
    )

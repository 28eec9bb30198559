"""MockEventBus and MockProcessManager: deterministic, validating, same errors as the real ones."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from brummer.errors import BrummerError, ErrorCode
from brummer.events import Event, EventType
from brummer.logs import LogStore
from brummer.process.manager import ProcessStatus, RestartPolicy
from brummer.testing import MockEventBus, MockProcessManager


def codes(fn: Any) -> ErrorCode:
    with pytest.raises(BrummerError) as info:
        fn()
    return info.value.code


# -- MockEventBus ------------------------------------------------------------------------


def test_bus_delivers_synchronously_in_subscription_order() -> None:
    bus = MockEventBus()
    seen: list[tuple[str, str]] = []
    bus.subscribe(EventType.LOG_LINE, lambda e: seen.append(("typed", e.data["n"])))
    bus.subscribe_all(lambda e: seen.append(("all", e.data["n"])))
    bus.subscribe("log.line", lambda e: seen.append(("string", e.data["n"])))
    bus.publish(Event(EventType.LOG_LINE, {"n": "1"}))
    bus.publish(Event(EventType.URL_DETECTED, {"n": "2"}))
    assert seen == [("typed", "1"), ("all", "1"), ("string", "1"), ("all", "2")]
    assert [e.data["n"] for e in bus.published_events()] == ["1", "2"]
    assert bus.subscriber_count() == 3
    assert bus.subscriber_count(EventType.LOG_LINE) == 3
    assert bus.subscriber_count(EventType.URL_DETECTED) == 1
    m = bus.metrics()
    assert (m.events_published, m.events_processed, m.events_dropped) == (2, 2, 0)
    assert m.queue_depth == (0, 0, 0)


def test_bus_validates_like_the_real_one() -> None:
    bus = MockEventBus()
    assert codes(lambda: bus.subscribe(EventType.LOG_LINE, 3)) is ErrorCode.INVALID_ARGUMENT  # type: ignore[arg-type]
    assert codes(lambda: bus.subscribe("", print)) is ErrorCode.INVALID_ARGUMENT
    assert codes(lambda: bus.unsubscribe("nope")) is ErrorCode.NOT_FOUND
    assert codes(lambda: bus.unsubscribe(7)) is ErrorCode.INVALID_ARGUMENT  # type: ignore[arg-type]
    assert codes(lambda: bus.publish({"not": "an event"})) is ErrorCode.INVALID_ARGUMENT  # type: ignore[arg-type]
    assert codes(lambda: bus.publish_async("x")) is ErrorCode.INVALID_ARGUMENT  # type: ignore[arg-type]
    assert codes(lambda: bus.stop(float("nan"))) is ErrorCode.INVALID_ARGUMENT
    assert codes(lambda: bus.inject_error("TIMEOUT")) is ErrorCode.INVALID_ARGUMENT  # type: ignore[arg-type]
    assert codes(lambda: bus.inject_error(ErrorCode.TIMEOUT, count=0)) is ErrorCode.INVALID_ARGUMENT
    sub = bus.subscribe_all(print)
    bus.unsubscribe(sub)
    assert codes(lambda: bus.unsubscribe(sub)) is ErrorCode.NOT_FOUND
    got: list[Event] = []
    bus.subscribe_all(got.append)
    bus.publish(Event("x.y"))
    assert len(got) == 1  # still usable


def test_bus_backpressure_and_injected_errors() -> None:
    bus = MockEventBus()
    got: list[Event] = []
    bus.subscribe_all(got.append)
    bus.simulate_backpressure(True)
    with pytest.raises(BrummerError) as err:
        bus.publish(Event("a.b"))
    assert err.value.code is ErrorCode.RESOURCE_LIMIT
    assert err.value.temporary
    bus.publish_async(Event("a.b"))
    bus.simulate_backpressure(False)
    bus.inject_error(ErrorCode.TIMEOUT, count=2)
    with pytest.raises(TimeoutError):
        bus.publish(Event("a.b"))
    bus.publish_async(Event("a.b"))  # the second injected failure: dropped, not raised
    bus.publish(Event("a.b"))
    assert len(got) == 1
    m = bus.metrics()
    assert (m.events_published, m.events_processed, m.events_dropped) == (3, 1, 2)
    bus.inject_error(ErrorCode.NETWORK)
    bus.inject_error(None)
    bus.publish(Event("a.b"))
    assert len(got) == 2


def test_bus_handler_errors_are_logged_counted_and_do_not_stop_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = MockEventBus()
    got: list[str] = []

    def bad(event: Event) -> None:
        raise RuntimeError("boom")

    bus.subscribe_all(bad)
    bus.subscribe_all(lambda e: got.append(e.id))
    with caplog.at_level(logging.ERROR, logger="brummer.events"):
        bus.publish(Event("a.b"))
    assert len(got) == 1
    assert bus.metrics().handler_errors == 1
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)


def test_bus_stop_refuses_then_counts_drops() -> None:
    with MockEventBus() as bus:
        bus.publish(Event("a.b"))
    assert bus.stopped
    assert codes(lambda: bus.publish(Event("a.b"))) is ErrorCode.INVALID_STATE
    assert codes(lambda: bus.subscribe_all(print)) is ErrorCode.INVALID_STATE
    bus.publish_async(Event("a.b"))
    bus.stop()
    m = bus.metrics()
    assert (m.events_published, m.events_dropped) == (2, 1)


def test_bus_handlers_may_call_back_into_the_bus() -> None:
    bus = MockEventBus()
    seen: list[str] = []

    def chain(event: Event) -> None:
        seen.append(str(event.type))
        if event.type == "first":
            bus.publish(Event("second"))

    sub = bus.subscribe_all(chain)
    bus.subscribe("second", lambda e: bus.unsubscribe(sub))
    bus.publish(Event("first"))
    bus.publish(Event("first"))
    assert seen == ["first", "second"]


# -- MockProcessManager -------------------------------------------------------------------


def test_manager_lifecycle_and_counts(tmp_path: Any) -> None:
    bus = MockEventBus()
    events: list[Event] = []
    bus.subscribe_all(events.append)
    pm = MockProcessManager(
        {"dev": "vite", "test": "vitest"}, work_dir=str(tmp_path), event_bus=bus
    )
    assert set(pm.scripts()) == {"dev", "test"}
    assert pm.scripts()["dev"].cwd == str(tmp_path)
    assert pm.package_manager == "npm"
    dev = pm.start_script("dev")
    assert dev.status is ProcessStatus.RUNNING
    assert dev.is_running()
    assert dev.pid is None  # nothing to signal
    assert codes(lambda: pm.start_script("dev")) is ErrorCode.ALREADY_EXISTS
    second = pm.start_script("dev", allow_duplicate=True)
    assert second.id != dev.id
    assert codes(lambda: pm.start_script("nope")) is ErrorCode.NOT_FOUND
    cmd = pm.start_command("srv", "python", ["-m", "http.server"])
    assert cmd.command == "python -m http.server"
    assert pm.process_count() == 3
    assert pm.process_start_count() == 3

    pm.simulate_process_failure(dev.id, exit_code=2)
    assert dev.status is ProcessStatus.FAILED
    assert dev.exit_code == 2
    assert dev.end_time is not None
    assert dev.wait(0) is ProcessStatus.FAILED
    assert codes(lambda: pm.simulate_process_failure(dev.id)) is ErrorCode.INVALID_STATE
    pm.stop_process(dev.id)  # already ended: no-op
    assert dev.status is ProcessStatus.FAILED

    new = pm.restart_process(second.id)
    assert second.status is ProcessStatus.STOPPED
    assert new.id != second.id
    assert new.name == "dev"
    assert pm.process_start_count() == 4

    pm.simulate_process_exit(cmd.id)
    assert cmd.snapshot().status is ProcessStatus.SUCCESS
    assert cmd.snapshot().exit_code == 0

    pm.cleanup()
    pm.cleanup()
    assert new.status is ProcessStatus.STOPPED
    assert codes(lambda: pm.start_script("test")) is ErrorCode.INVALID_STATE
    kinds = [str(e.type) for e in events]
    assert kinds.count("process.started") == 4
    assert kinds.count("process.exited") == 4
    assert all(e.process_id for e in events)


def test_manager_output_reaches_callbacks_store_and_bus() -> None:
    bus = MockEventBus()
    store = LogStore()
    lines: list[tuple[str, str, bool]] = []
    pm = MockProcessManager({"dev": "vite"}, event_bus=bus, log_store=store)
    cb = pm.register_log_callback(lambda pid, line, err: lines.append((pid, line, err)))
    proc = pm.start_script("dev")
    pm.set_process_output(proc.id, ["ready", "on http://localhost:5173"])
    pm.set_process_output(proc.id, ["oops"], is_error=True)
    assert lines == [
        (proc.id, "ready", False),
        (proc.id, "on http://localhost:5173", False),
        (proc.id, "oops", True),
    ]
    assert [e.content for e in store.get_by_process(proc.id)] == [
        "ready",
        "on http://localhost:5173",
        "oops",
    ]
    assert pm.output_of(proc.id)[-1] == ("oops", True)
    log_events = [e for e in bus.published_events() if e.type == EventType.LOG_LINE]
    assert [e.data["lines"] for e in log_events] == [
        ("ready", "on http://localhost:5173"),
        ("oops",),
    ]
    pm.unregister_log_callback(cb)
    assert codes(lambda: pm.unregister_log_callback(cb)) is ErrorCode.NOT_FOUND
    pm.set_process_output(proc.id, ["quiet"])
    assert len(lines) == 3
    pm.stop_process(proc.id)
    assert codes(lambda: pm.set_process_output(proc.id, ["late"])) is ErrorCode.INVALID_STATE
    store.close()


def test_manager_validates_input() -> None:
    pm = MockProcessManager({"dev": "vite"})
    proc = pm.start_script("dev")
    assert codes(lambda: MockProcessManager({"x": " "})) is ErrorCode.INVALID_ARGUMENT
    assert codes(lambda: pm.start_command("", "ls")) is ErrorCode.INVALID_ARGUMENT
    assert codes(lambda: pm.start_command("x", "  ")) is ErrorCode.INVALID_ARGUMENT
    assert codes(lambda: pm.start_command("x", "ls", "-l")) is ErrorCode.INVALID_ARGUMENT
    assert codes(lambda: pm.start_script("dev", restart="always")) is ErrorCode.INVALID_ARGUMENT  # type: ignore[arg-type]
    assert codes(lambda: pm.stop_process("nope")) is ErrorCode.NOT_FOUND
    assert codes(lambda: pm.stop_process(proc.id, timeout=-1)) is ErrorCode.INVALID_ARGUMENT
    assert codes(lambda: pm.set_process_output(proc.id, "one string")) is ErrorCode.INVALID_ARGUMENT
    assert codes(lambda: pm.set_process_output(proc.id, [b"bytes"])) is ErrorCode.INVALID_ARGUMENT  # type: ignore[list-item]
    assert (
        codes(lambda: pm.simulate_process_failure(proc.id, exit_code=0))
        is ErrorCode.INVALID_ARGUMENT
    )
    assert codes(lambda: pm.register_log_callback("no")) is ErrorCode.INVALID_ARGUMENT  # type: ignore[arg-type]
    assert codes(lambda: proc.wait(-1)) is ErrorCode.INVALID_ARGUMENT
    assert pm.get_process("nope") is None
    assert pm.get_process(proc.id) is proc
    assert pm.start_script("dev", allow_duplicate=True, restart=RestartPolicy()).is_running()
    assert next(p.id for p in pm.get_all_processes()) == proc.id

"""ProxyServer without traffic: value objects, contracts, registration under concurrency."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest
from hypothesis import given, strategies as st

from brummer.events import Event, EventType
from brummer.proxy import HTTPRequest, ProxyMetrics, ProxyServer, URLMapping
from brummer.testing.contract_check import check_contracts
from tests.helpers import open_fd_count, wait_until


def request(status: int, error: str = "") -> HTTPRequest:
    return HTTPRequest(
        id="r",
        method="GET",
        url="http://x/",
        status=status,
        duration=0.1,
        request_size=0,
        response_size=1,
        content_type="text/plain",
        process_name="p",
        timestamp=datetime.now(UTC),
        error=error,
    )


def test_value_objects_are_frozen_and_classify_errors() -> None:
    assert not request(200).is_error
    assert not request(304).is_error
    assert request(404).is_error
    assert request(0).is_error
    assert request(200, error="client disconnected").is_error
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request(200).status = 500  # type: ignore[misc]
    for cls in (HTTPRequest, URLMapping, ProxyMetrics):
        assert attrs.has(cls)


def test_every_public_name_of_the_proxy_has_a_contract() -> None:
    report = check_contracts("brummer.proxy")
    assert not report.problems, report.problems


class FakeBus:
    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}
        self.events: list[Event] = []

    def subscribe(self, event_type: Any, handler: Any) -> str:
        self.handlers[str(event_type)] = handler
        return "sub"

    def unsubscribe(self, sub_id: Any) -> None:
        assert sub_id == "sub"
        self.handlers.clear()

    def publish_async(self, event: Event) -> None:
        self.events.append(event)


def test_url_detected_subscription_lives_from_start_to_stop() -> None:
    bus = FakeBus()
    proxy = ProxyServer(port=0, event_bus=bus)
    assert bus.handlers == {}
    proxy.start()
    try:
        handler = bus.handlers[str(EventType.URL_DETECTED)]
        handler(Event(EventType.URL_DETECTED, {"url": "http://127.0.0.1:4000/x"}, process_id="p9"))
        handler(Event(EventType.URL_DETECTED, {"url": "mailto:a@b", "process_name": "n"}))
        handler(Event(EventType.URL_DETECTED, {"process_name": "no url"}))
        (mapping,) = proxy.get_url_mappings()
        assert (mapping.process_name, mapping.process_id) == ("p9", "p9")
        assert mapping.target_url == "http://127.0.0.1:4000"
    finally:
        proxy.stop()
    assert bus.handlers == {}
    handler(Event(EventType.URL_DETECTED, {"url": "http://127.0.0.1:4001/"}, process_id="p"))
    assert proxy.get_url_mappings() == []  # nothing registered (or bound) after stop


def test_stop_without_start_closes_sockets_bound_by_register() -> None:
    before = open_fd_count()
    proxy = ProxyServer(port=0)
    url = proxy.register_url("http://127.0.0.1:5999", "web")
    port = urlsplit(url).port
    assert port is not None
    proxy.stop()
    proxy.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert wait_until(lambda: open_fd_count() <= before)


def test_enable_telemetry_is_immediate_and_properties_read_back() -> None:
    proxy = ProxyServer(port=0, mode="full", telemetry=False)
    assert not proxy.telemetry_enabled
    proxy.enable_telemetry(True)
    assert proxy.telemetry_enabled
    assert proxy.mode == "full"
    assert proxy.port == 0
    assert not proxy.is_running
    assert proxy.register_url("http://localhost:3000/a", "web") == "http://localhost:3000/a"
    assert proxy.get_url_mappings() == []  # full mode: no reverse ports
    assert proxy.metrics() == ProxyMetrics(0, 0, 0, 0, 0.0, 0)


origins = st.lists(
    st.tuples(
        st.sampled_from(["127.0.0.1", "localhost"]),
        st.integers(3000, 3003),
        st.text("ab", max_size=3),
    ),
    min_size=1,
    max_size=12,
)


@given(origins)
def test_concurrent_registration_gives_each_origin_exactly_one_port(
    regs: list[tuple[str, int, str]],
) -> None:
    proxy = ProxyServer(port=0)
    results: dict[int, str] = {}
    barrier = threading.Barrier(len(regs))

    def register(i: int, host: str, port: int, path: str) -> None:
        barrier.wait()
        results[i] = proxy.register_url(f"http://{host}:{port}/{path}", f"proc-{port}")

    threads = [threading.Thread(target=register, args=(i, *r)) for i, r in enumerate(regs)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        distinct = {(h, p) for h, p, _ in regs}
        mappings = proxy.get_url_mappings()
        assert len(mappings) == len(distinct)
        assert len({m.port for m in mappings}) == len(distinct)
        port_of = {urlsplit(m.target_url).netloc: m.port for m in mappings}
        for i, (host, port, path) in enumerate(regs):
            got = urlsplit(results[i])
            assert got.port == port_of[f"{host}:{port}"]
            assert got.path == f"/{path}"
    finally:
        proxy.stop()

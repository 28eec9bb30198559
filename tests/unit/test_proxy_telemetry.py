"""Telemetry: the post parser, the bounded session store, injection and CSP relaxing."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, strategies as st

from brummer.errors import BrummerError, ErrorCode
from brummer.proxy.telemetry import (
    MAX_TELEMETRY_BODY,
    TelemetryEvent,
    TelemetrySession,
    TelemetryStore,
    browser_log_lines,
    decode_body,
    inject_monitor,
    parse_telemetry,
    relax_csp,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(kind: str = "page_load", **data: object) -> TelemetryEvent:
    return TelemetryEvent(kind, T0, data)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


# --- parse_telemetry ---------------------------------------------------------------------


def test_parse_valid_post() -> None:
    body = json.dumps(
        {
            "sessionId": "s1",
            "url": "http://x/",
            "events": [
                {"type": "javascript_error", "timestamp": 1_700_000_000_000, "data": {"a": "b"}},
                {"type": "page_load"},
            ],
        }
    ).encode()
    batch = parse_telemetry(body)
    assert batch.session_id == "s1"
    assert batch.url == "http://x/"
    assert [e.type for e in batch.events] == ["javascript_error", "page_load"]
    assert batch.events[0].timestamp == datetime.fromtimestamp(1_700_000_000, UTC)
    assert batch.events[0].data == {"a": "b"}
    with pytest.raises(TypeError):
        batch.events[0].data["a"] = "c"  # type: ignore[index]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"nope",
        b"[]",
        b'"text"',
        b'{"sessionId": 5, "events": []}',
        b'{"sessionId": "", "events": []}',
        b'{"sessionId": "' + b"x" * 200 + b'", "events": []}',
        b'{"sessionId": "s", "events": {}}',
        b'{"sessionId": "s", "url": 3, "events": []}',
        b'{"sessionId": "s", "events": [3]}',
        b'{"sessionId": "s", "events": [{"type": 3}]}',
        b"[" * 50_000,
    ],
)
def test_parse_refuses_malformed_posts(body: bytes) -> None:
    with pytest.raises(BrummerError) as info:
        parse_telemetry(body)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert info.value.hint


def test_parse_refuses_huge_posts_as_resource_limit() -> None:
    with pytest.raises(BrummerError) as info:
        parse_telemetry(b" " * (MAX_TELEMETRY_BODY + 1))
    assert info.value.code is ErrorCode.RESOURCE_LIMIT
    many = json.dumps({"sessionId": "s", "events": [{"type": "x"}] * 501}).encode()
    with pytest.raises(BrummerError) as info:
        parse_telemetry(many)
    assert info.value.code is ErrorCode.RESOURCE_LIMIT


def test_parse_clips_long_strings_and_deep_nesting() -> None:
    deep: object = "leaf"
    for _ in range(10):
        deep = {"d": deep}
    body = json.dumps(
        {"sessionId": "s", "events": [{"type": "x", "data": {"m": "y" * 10_000, "deep": deep}}]}
    ).encode()
    (ev,) = parse_telemetry(body).events
    assert len(ev.data["m"]) == 4000
    assert isinstance(ev.data["deep"]["d"]["d"]["d"], str)


@given(st.binary(max_size=300))
def test_parse_never_fails_with_anything_but_brummer_error(body: bytes) -> None:
    assert failure_code(body) in {None, ErrorCode.INVALID_ARGUMENT, ErrorCode.RESOURCE_LIMIT}


def failure_code(body: bytes) -> ErrorCode | None:
    try:
        parse_telemetry(body)
    except BrummerError as exc:
        return exc.code
    return None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.lists(st.dictionaries(st.sampled_from(["type", "data", "timestamp"]), json_values)))
def test_parse_any_json_events(events: list[dict[str, object]]) -> None:
    body = json.dumps({"sessionId": "s", "events": events}).encode()
    untyped = any(not isinstance(e.get("type"), str) for e in events)
    assert failure_code(body) is (ErrorCode.INVALID_ARGUMENT if untyped else None)
    if not untyped:
        assert len(parse_telemetry(body).events) == len(events)


# --- TelemetryStore ------------------------------------------------------------------------


def test_store_records_and_returns_snapshots() -> None:
    store = TelemetryStore()
    snap = store.record("web", "s1", "http://x/", [event(), event("javascript_error")])
    assert snap.error_count == 1
    assert len(snap.events) == 2
    store.record("web", "s1", "http://x/2", [event("console", level="error")])
    assert len(snap.events) == 2  # the earlier snapshot did not change
    now = store.get_session("s1")
    assert now.url == "http://x/2"
    assert now.error_count == 2
    assert len(now.events) == 3
    assert [s.id for s in store.get_sessions_for_process("web")] == ["s1"]
    assert store.get_sessions_for_process("other") == []


def test_store_bounds_events_per_session() -> None:
    store = TelemetryStore(max_events_per_session=3)
    store.record("web", "s", "", [event("e", i=i) for i in range(5)])
    session = store.get_session("s")
    assert [e.data["i"] for e in session.events] == [2, 3, 4]
    assert session.dropped_events == 2


def test_store_bounds_sessions_per_process_least_recent_first() -> None:
    store = TelemetryStore(max_sessions_per_process=2)
    store.record("web", "a", "", [event()])
    store.record("web", "b", "", [event()])
    store.record("web", "a", "", [event()])  # a is now the most recent
    store.record("web", "c", "", [event()])
    store.record("api", "z", "", [event()])
    assert sorted(s.id for s in store.get_sessions_for_process("web")) == ["a", "c"]
    assert [s.id for s in store.get_sessions_for_process("api")] == ["z"]


def test_store_expires_idle_sessions() -> None:
    clock = Clock()
    store = TelemetryStore(session_timeout=60, clock=clock)
    store.record("web", "old", "", [event()])
    clock.now = T0 + timedelta(seconds=61)
    store.record("web", "new", "", [event()])
    assert [s.id for s in store.get_all_sessions()] == ["new"]
    with pytest.raises(BrummerError) as info:
        store.get_session("old")
    assert info.value.code is ErrorCode.NOT_FOUND
    assert isinstance(info.value, LookupError)


def test_store_add_session_merges_and_clear() -> None:
    store = TelemetryStore()
    session = TelemetrySession(
        id="s",
        process_name="web",
        url="u",
        user_agent="ua",
        started=T0,
        last_activity=T0,
        events=(event(),),
    )
    store.add_session(session)
    store.add_session(session)
    assert len(store.get_session("s").events) == 2
    store.clear_sessions_for_process("web")
    assert store.get_all_sessions() == []
    store.add_session(session)
    store.clear()
    assert store.get_all_sessions() == []


@pytest.mark.parametrize("bad", [None, "s", TelemetrySession("", "w", "", "", T0, T0)])
def test_store_add_session_refuses_bad_input(bad: object) -> None:
    store = TelemetryStore()
    with pytest.raises(BrummerError) as info:
        store.add_session(bad)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_sessions_per_process": 0},
        {"max_events_per_session": -1},
        {"max_events_per_session": True},
        {"session_timeout": 0},
        {"session_timeout": "1"},
    ],
)
def test_store_refuses_bad_bounds(kwargs: dict[str, object]) -> None:
    with pytest.raises(BrummerError) as info:
        TelemetryStore(**kwargs)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT


def test_store_is_consistent_under_concurrent_writers() -> None:
    store = TelemetryStore(max_events_per_session=10_000)
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        barrier.wait()
        for i in range(200):
            store.record("web", f"s{n % 4}", "", [event("javascript_error", i=i)])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sessions = store.get_sessions_for_process("web")
    assert len(sessions) == 4
    assert all(len(s.events) == 400 and s.error_count == 400 for s in sessions)


# --- log lines -----------------------------------------------------------------------------


def test_browser_errors_become_log_lines_with_their_stack() -> None:
    err = event(
        "javascript_error",
        message="TypeError: x is undefined",
        filename="http://h/app.js",
        lineno=1,
        colno=2,
        stack="TypeError: x is undefined\n    at a (app.js:1:2)\n    at b (app.js:5:1)",
    )
    assert browser_log_lines(err) == [
        ("[browser] Uncaught TypeError: x is undefined (http://h/app.js:1:2)", True),
        ("    at a (app.js:1:2)", True),
        ("    at b (app.js:5:1)", True),
    ]
    assert browser_log_lines(event("console", level="warn", message="careful")) == [
        ("[browser] console.warn: careful", False)
    ]
    assert browser_log_lines(event("network_error", url="/api", method="POST", status=500)) == [
        ("[browser] Request failed: POST /api → HTTP 500", True)
    ]
    assert browser_log_lines(event("unhandled_rejection", message="nope"))[0][1] is True
    assert browser_log_lines(event("resource_error", url="/x.png"))[0][1] is True
    assert browser_log_lines(event("page_load")) == []
    assert browser_log_lines(event("console", level="log", message="hi")) == []


# --- injection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "expected_prefix"),
    [
        (b"<html><HEAD lang=x><title>", b"<html><HEAD lang=x><script"),
        (b"<!DOCTYPE html><html><body>", b"<!DOCTYPE html><html><script"),
        (b"<!doctype html><p>x", b"<!doctype html><script"),
        (b"plain", b"<script"),
    ],
)
def test_inject_places_the_tag_early(page: bytes, expected_prefix: bytes) -> None:
    out = inject_monitor(page, "web")
    assert out is not None
    assert out.startswith(expected_prefix)
    assert out.count(b"/__brummer__/monitor.js") == 1
    assert inject_monitor(out, "web") is None  # never twice


def test_inject_escapes_the_process_name_and_adds_a_nonce() -> None:
    out = inject_monitor(b"<head>", 'a"b<c>', nonce="N1")
    assert out is not None
    assert b'data-brummer-process="a&quot;b&lt;c>"' in out
    assert b'nonce="N1"' in out


def test_decode_body_handles_gzip_deflate_and_garbage() -> None:
    page = b"<html>page</html>"
    assert decode_body(gzip.compress(page), "gzip") == page
    assert decode_body(zlib.compress(page), "deflate") == page
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decode_body(raw.compress(page) + raw.flush(), "deflate") == page
    assert decode_body(page, "") == page
    assert decode_body(page, "identity") == page
    assert decode_body(b"not gzip", "gzip") is None
    assert decode_body(page, "br") is None


def test_decode_body_refuses_to_inflate_beyond_its_limit() -> None:
    # A small compressed page can inflate to gigabytes (a "zip bomb"); past the limit the
    # page is relayed as it is instead of being decoded in memory.
    bomb = gzip.compress(b"\0" * (40 << 20))
    assert len(bomb) < 100_000
    assert decode_body(bomb, "gzip") is None
    assert decode_body(zlib.compress(b"\0" * (40 << 20)), "deflate") is None
    page = b"<html>" + b"x" * 1000 + b"</html>"
    assert decode_body(gzip.compress(page), "gzip", limit=len(page)) == page
    assert decode_body(gzip.compress(page), "gzip", limit=len(page) - 1) is None
    assert decode_body(page, "identity", limit=10) == page  # identity is not inflated


@pytest.mark.parametrize(
    ("policy", "expect_in", "nonce"),
    [
        (
            "default-src 'none'; img-src *",
            ["default-src 'none'", "script-src-elem 'self'", "connect-src 'self'", "img-src *"],
            False,
        ),
        ("script-src 'self' 'nonce-x' 'strict-dynamic'", ["'strict-dynamic'", "'nonce-x'"], True),
        ("script-src 'unsafe-inline' cdn.x", ["script-src 'unsafe-inline' cdn.x 'self'"], False),
        ("script-src 'sha256-abc'", ["'sha256-abc'", "'self'"], True),
        ("frame-ancestors 'none'", ["frame-ancestors 'none'"], False),
        (
            "script-src 'self'; connect-src api.x",
            ["script-src 'self'", "connect-src api.x 'self'"],
            False,
        ),
    ],
)
def test_relax_csp_loosens_only_what_the_monitor_needs(
    policy: str, expect_in: list[str], nonce: bool
) -> None:
    relaxed, got = relax_csp(policy)
    for part in expect_in:
        assert part in relaxed
    assert bool(got) is nonce
    if nonce:
        assert f"'nonce-{got}'" in relaxed
    assert "'unsafe-inline'" not in relaxed or "'unsafe-inline'" in policy

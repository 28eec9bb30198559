"""LogStore: ring buffer, indexes, batches, search, cursors, bad input, concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from brummer.errors import BrummerError, ErrorCode
from brummer.events import Event, EventBus, EventType
from brummer.logs import (
    LogEntry,
    LogEntryInput,
    LogLevel,
    LogStore,
    SearchQuery,
)
from tests.helpers import wait_until


def codes(fn: Any, *args: Any, **kwargs: Any) -> ErrorCode:
    with pytest.raises(BrummerError) as info:
        fn(*args, **kwargs)
    assert info.value.hint, "every error tells the user what to do"
    return info.value.code


# ---------------------------------------------------------------- adding


def test_add_returns_the_entry_actually_stored() -> None:
    store = LogStore()
    entry = store.add("p1", "web", "Error: boom", is_error=True)
    assert store.get_all() == [entry]
    stored = store.get_all()[0]
    assert stored is entry
    assert (entry.id, entry.seq, entry.process_id, entry.process_name) == ("p1-1", 1, "p1", "web")
    assert entry.level == LogLevel.ERROR
    assert entry.is_error is True
    assert entry.timestamp.tzinfo is not None
    assert entry.to_dict()["level"] == "ERROR"
    with pytest.raises(AttributeError):
        entry.content = "changed"  # type: ignore[misc]


def test_seq_is_strictly_increasing_per_process_even_after_clear() -> None:
    store = LogStore(max_entries=5)
    seqs: dict[str, list[int]] = {"a": [], "b": []}
    for i in range(20):
        pid = "a" if i % 3 else "b"
        seqs[pid].append(store.add(pid, pid, f"line {i}").seq)
    store.clear_for_process("a")
    seqs["a"].append(store.add("a", "a", "after clear").seq)
    store.clear()
    seqs["a"].append(store.add("a", "a", "after clear all").seq)
    for values in seqs.values():
        assert values == sorted(set(values))


def test_entries_built_by_hand_compare_by_value() -> None:
    now = datetime.now(UTC)
    a = LogEntry(id="p-1", seq=1, process_id="p", process_name="n", timestamp=now, content="x")
    b = LogEntry(seq=1, process_id="p", process_name="n", timestamp=now, content="x")
    assert a == b
    assert hash(a) == hash(b)
    assert a.id == "p-1"
    custom = LogEntry(
        id="mine", seq=1, process_id="p", process_name="n", timestamp=now, content="x"
    )
    assert custom.id == "mine"
    assert custom != a
    assert "content='x'" in repr(a)


def test_empty_content_is_a_line() -> None:
    store = LogStore()
    entry = store.add("p", "web", "")
    assert entry.content == ""
    assert store.get_by_process("p") == [entry]


def test_ring_evicts_oldest_and_indexes_stay_consistent_at_capacity() -> None:
    store = LogStore(max_entries=10)
    for i in range(35):
        store.add(f"p{i % 3}", "x", f"line {i}")
    all_entries = store.get_all()
    assert [e.content for e in all_entries] == [f"line {i}" for i in range(25, 35)]
    for pid in ("p0", "p1", "p2"):
        assert store.get_by_process(pid) == [e for e in all_entries if e.process_id == pid]
    metrics = store.metrics()
    assert metrics.total_entries == 10
    assert metrics.added_total == 35
    assert metrics.evicted_total == 25


def test_a_process_whose_lines_were_all_evicted_reads_empty() -> None:
    store = LogStore(max_entries=3)
    store.add("old", "x", "a")
    store.add_lines("new", "y", ["1", "2", "3"])
    assert store.get_by_process("old") == []
    assert store.get_by_process("never") == []


def test_add_batch_keeps_order_across_processes() -> None:
    store = LogStore()
    inputs = [
        LogEntryInput("a", "A", "a1"),
        LogEntryInput("a", "A", "a2"),
        LogEntryInput("b", "B", "b1", is_error=True),
        LogEntryInput("a", "A", "a3"),
    ]
    out = store.add_batch(inputs)
    assert [(e.process_id, e.content, e.seq, e.is_error) for e in out] == [
        ("a", "a1", 1, False),
        ("a", "a2", 2, False),
        ("b", "b1", 1, True),
        ("a", "a3", 3, False),
    ]
    assert store.get_all() == out
    assert store.add_batch([]) == []
    assert store.add_lines("a", "A", []) == []
    assert store.get_all() == out


@pytest.mark.parametrize(
    "bad",
    [
        [LogEntryInput("p", "n", "ok"), LogEntryInput("p", "n", b"bytes")],  # type: ignore[arg-type]
        [LogEntryInput("p", "n", "ok"), LogEntryInput("p", "n", None)],  # type: ignore[arg-type]
        [LogEntryInput("p", "n", "ok"), LogEntryInput(3, "n", "x")],  # type: ignore[arg-type]
        [LogEntryInput("p", "n", "ok"), "not an input"],
        [LogEntryInput("p", "n", "ok"), LogEntryInput("p", "n", "x", is_error="yes")],  # type: ignore[arg-type]
    ],
)
def test_add_batch_is_all_or_nothing(bad: list[Any]) -> None:
    store = LogStore()
    store.add("p", "n", "before")
    assert codes(store.add_batch, bad) == ErrorCode.INVALID_ARGUMENT
    assert [e.content for e in store.get_all()] == ["before"]
    assert store.add("p", "n", "after").seq == 2  # no seq was used up, store still works


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("p", "n", b"bytes"), ErrorCode.INVALID_ARGUMENT),
        (("p", "n", None), ErrorCode.INVALID_ARGUMENT),
        (("p", "n", 42), ErrorCode.INVALID_ARGUMENT),
        ((None, "n", "x"), ErrorCode.INVALID_ARGUMENT),
        (("p", 1, "x"), ErrorCode.INVALID_ARGUMENT),
    ],
)
def test_bad_add_arguments(args: tuple[Any, ...], code: ErrorCode) -> None:
    store = LogStore()
    assert codes(store.add, *args) == code
    assert store.get_all() == []
    assert codes(store.add_lines, "p", "n", "a single string") == ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "kwargs",
    [{"max_entries": 0}, {"max_entries": -1}, {"max_errors": 0}, {"max_urls": "10"}],
)
def test_bad_limits(kwargs: dict[str, Any]) -> None:
    assert codes(LogStore, **kwargs) == ErrorCode.INVALID_ARGUMENT


def test_closed_store_refuses_writes_keeps_reads_and_close_is_idempotent() -> None:
    store = LogStore()
    store.add("p", "n", "kept")
    store.close()
    store.close()
    assert store.closed
    assert codes(store.add, "p", "n", "late") == ErrorCode.INVALID_STATE
    assert codes(store.add_batch, [LogEntryInput("p", "n", "late")]) == ErrorCode.INVALID_STATE
    assert codes(store.add_batch, []) == ErrorCode.INVALID_STATE
    assert [e.content for e in store.get_all()] == ["kept"]


def test_lines_with_embedded_newlines_are_stored_whole() -> None:
    store = LogStore()
    out = store.add_lines("p", "n", ["a\nb", "TypeError: c"])
    assert [e.content for e in out] == ["a\nb", "TypeError: c"]
    assert out[1].level == LogLevel.ERROR


# ---------------------------------------------------------------- reading


def test_get_errors_keeps_error_lines_beyond_the_ring() -> None:
    store = LogStore(max_entries=2, max_errors=3)
    store.add("p", "n", "Error: one")
    store.add_lines("p", "n", ["fine", "fine", "fine"])
    assert [e.content for e in store.get_errors()] == ["Error: one"]
    store.add_lines("p", "n", [f"Error: {i}" for i in range(5)])
    assert [e.content for e in store.get_errors()] == ["Error: 2", "Error: 3", "Error: 4"]
    assert store.metrics().error_count == 3


def test_clear_and_clear_for_process() -> None:
    store = LogStore()
    store.add_lines("a", "A", ["Error: a", "http://localhost:1"])
    store.add_lines("b", "B", ["Error: b", "http://localhost:2", "x"])
    store.mark_process_exited("a")
    store.mark_process_exited("b")
    store.clear_for_process("a")
    assert {e.process_id for e in store.get_all()} == {"b"}
    assert {e.process_id for e in store.get_errors()} == {"b"}
    assert {u.process_id for u in store.get_urls()} == {"b"}
    assert {g.process_id for g in store.get_error_groups()} == {"b"}
    assert store.search(SearchQuery(text="error")) == store.get_errors()
    store.clear()
    assert store.get_all() == store.get_errors() == []
    assert store.get_urls() == []
    assert store.get_error_groups() == []
    store.clear_for_process("unknown")


def test_get_collapsed_counts_consecutive_duplicates() -> None:
    store = LogStore()
    store.add_lines("a", "A", ["x", "x", "x", "y", "x"])
    store.add("b", "B", "x")
    store.add("a", "A", "x")
    collapsed = store.get_collapsed("a")
    assert [(c.entry.content, c.count) for c in collapsed] == [("x", 3), ("y", 1), ("x", 2)]
    assert collapsed[0].first_seen <= collapsed[0].last_seen
    everywhere = store.get_collapsed()
    assert [(c.entry.process_id, c.count) for c in everywhere] == [
        ("a", 3),
        ("a", 1),
        ("a", 1),
        ("b", 1),
        ("a", 1),
    ]
    assert store.get_collapsed("nobody") == []


def test_get_since_store_wide_cursor() -> None:
    store = LogStore(max_entries=5)
    empty = store.get_since(0)
    assert (list(empty), empty.next_cursor, empty.missed) == ([], 0, 0)
    store.add_lines("p", "n", ["1", "2", "3"])
    first = store.get_since(0, limit=2)
    assert contents(list(first)) == ["1", "2"]
    assert first.next_cursor == 2
    rest = store.get_since(first.next_cursor)
    assert contents(list(rest)) == ["3"]
    assert rest.next_cursor == store.cursor() == 3
    store.add_lines("q", "m", ["4", "5", "6", "7", "8", "9"])  # evicts 1 to 4
    page = store.get_since(rest.next_cursor)
    assert contents(list(page)) == ["5", "6", "7", "8", "9"]
    assert page.missed == 1
    assert page.next_cursor == 9
    again = store.get_since(page.next_cursor)
    assert (len(again), again.next_cursor, again.missed) == (0, 9, 0)
    assert codes(store.get_since, -1) == ErrorCode.INVALID_ARGUMENT
    assert codes(store.get_since, 0, limit=0) == ErrorCode.INVALID_ARGUMENT


def test_get_since_per_process_seq_cursor() -> None:
    store = LogStore(max_entries=4)
    store.add_lines("p", "n", ["a", "b", "c"])
    store.add("q", "m", "other")
    got = store.get_since(1, process_id="p")
    assert [(e.seq, e.content) for e in got] == [(2, "b"), (3, "c")]
    assert got.next_cursor == 3
    assert len(store.get_since(3, process_id="p")) == 0
    store.add_lines("p", "n", ["d", "e", "f"])  # evicts a, b, c
    later = store.get_since(3, process_id="p")
    assert [(e.seq, e.content) for e in later] == [(4, "d"), (5, "e"), (6, "f")]
    assert later.missed == 0
    skipped = store.get_since(1, process_id="p")
    assert skipped.missed == 2
    assert skipped.next_cursor == 6
    assert store.get_since(0, process_id="nobody").entries == ()


# ---------------------------------------------------------------- search


@pytest.fixture
def filled() -> LogStore:
    store = LogStore()
    store.add_lines(
        "web",
        "web",
        [
            "GET /users 200",
            "\x1b[31mError\x1b[0m: Database down",
            "warn: slow query",
            "GET /items 200",
        ],
    )
    store.add_lines("api", "api", ["Listening on 8080", "error: bad token", "debug: tick"])
    return store


def contents(entries: list[LogEntry]) -> list[str]:
    return [e.content for e in entries]


def test_search_substring_is_case_insensitive_and_ignores_ansi(filled: LogStore) -> None:
    assert contents(filled.search(SearchQuery(text="ERROR: database"))) == [
        "\x1b[31mError\x1b[0m: Database down"
    ]
    assert contents(filled.search(SearchQuery(text="[31m"))) == []
    assert len(filled.search(SearchQuery())) == 7


def test_search_regex(filled: LogStore) -> None:
    assert contents(filled.search(SearchQuery(text=r"^get /\w+ 200$", regex=True))) == [
        "GET /users 200",
        "GET /items 200",
    ]
    assert len(filled.search(SearchQuery(text="Error|WARN", regex=True))) == 3
    assert contents(filled.search(SearchQuery(text=r"tok(en)?$", regex=True))) == [
        "error: bad token"
    ]
    assert contents(filled.search(SearchQuery(text=r"\d{4}", regex=True))) == ["Listening on 8080"]


def test_search_invalid_regex_and_negative_limit_are_invalid_argument(filled: LogStore) -> None:
    assert (
        codes(filled.search, SearchQuery(text="(unclosed", regex=True))
        == ErrorCode.INVALID_ARGUMENT
    )
    assert codes(filled.search, SearchQuery(limit=-1)) == ErrorCode.INVALID_ARGUMENT
    assert codes(filled.search, "text") == ErrorCode.INVALID_ARGUMENT  # type: ignore[arg-type]
    naive = datetime(2020, 1, 1)  # the bad input under test: no tzinfo
    assert codes(filled.search, SearchQuery(since=naive)) == ErrorCode.INVALID_ARGUMENT
    assert len(filled.get_all()) == 7  # still usable, nothing lost


def test_search_filters_combine(filled: LogStore) -> None:
    assert contents(filled.search(SearchQuery(level=LogLevel.WARNING))) == [
        "\x1b[31mError\x1b[0m: Database down",
        "warn: slow query",
        "error: bad token",
    ]
    assert contents(filled.search(SearchQuery(text="error", process_id="api"))) == [
        "error: bad token"
    ]
    assert contents(filled.search(SearchQuery(text="get", limit=1))) == ["GET /items 200"]
    assert contents(filled.search(SearchQuery(limit=2))) == ["error: bad token", "debug: tick"]
    assert filled.search(SearchQuery(process_id="nobody")) == []
    future = datetime.now(UTC) + timedelta(hours=1)
    assert filled.search(SearchQuery(since=future)) == []
    assert len(filled.search(SearchQuery(until=future))) == 7
    past = datetime.now(UTC) - timedelta(hours=1)
    assert filled.search(SearchQuery(until=past)) == []


def test_search_regex_prefilter_matches_plain_scan() -> None:
    store = LogStore(max_entries=2000)
    store.add_lines(
        "p", "n", [f"req {i} took {i % 97}ms status={200 + i % 3}" for i in range(2000)]
    )
    for pattern in [r"took 9\dms", r"status=20[12]", r"(took|status)=?2", r"req 1\d* took", r"ms$"]:
        import re

        rx = re.compile(pattern, re.IGNORECASE)
        expected = [e for e in store.get_all() if rx.search(e.content)]
        assert store.search(SearchQuery(text=pattern, regex=True)) == expected, pattern
        assert store.search(SearchQuery(text=pattern, regex=True, limit=5)) == expected[-5:]


# ---------------------------------------------------------------- metrics


def test_metrics_rate_and_memory() -> None:
    store = LogStore()
    store.add_lines("p", "n", ["x" * 40] * 1000)
    metrics = store.metrics()
    assert metrics.total_entries == 1000
    assert metrics.queue_depth == 0
    assert 0 < metrics.memory_usage_mb < 1
    assert metrics.entries_per_sec >= 0


# ---------------------------------------------------------------- events


def test_real_event_bus_receives_detections() -> None:
    bus = EventBus(workers=1)
    received: list[Event] = []
    lock = threading.Lock()

    def handler(event: Event) -> None:
        with lock:
            received.append(event)

    try:
        bus.subscribe_all(handler)
        store = LogStore(event_bus=bus)
        store.add_lines(
            "p1",
            "web",
            [
                "ready on http://localhost:3000",
                "TypeError: x is undefined",
                "    at a.js:1:1",
                "Tests: 1 failed, 1 passed, 2 total",
            ],
        )
        store.close()
        assert wait_until(lambda: len(received) == 3)
        kinds = {e.type for e in received}
        assert kinds == {EventType.URL_DETECTED, EventType.ERROR_DETECTED, EventType.TEST_FAILED}
        assert all(e.process_id == "p1" for e in received)
    finally:
        bus.stop()


# ---------------------------------------------------------------- concurrency


def test_concurrent_adders_searchers_and_clearers_keep_invariants() -> None:
    store = LogStore(max_entries=500)
    errors: list[BaseException] = []
    stop = threading.Event()

    def adder(pid: str) -> None:
        try:
            for i in range(300):
                if i % 2:
                    store.add(pid, pid, f"{pid} line {i}")
                else:
                    store.add_batch(
                        [LogEntryInput(pid, pid, f"{pid} batch {i}.{k}") for k in range(5)]
                    )
        except BaseException as exc:  # reported below
            errors.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                snapshot = store.get_all()
                assert len(snapshot) <= 500
                for pid in ("a", "b", "c"):
                    seqs = [e.seq for e in store.get_by_process(pid)]
                    assert seqs == sorted(set(seqs))
                found = store.search(SearchQuery(text="batch", limit=20))
                assert len(found) <= 20
                assert all("batch" in e.content for e in found)
        except BaseException as exc:
            errors.append(exc)

    def clearer() -> None:
        try:
            while not stop.is_set():
                store.clear_for_process("c")
                store.get_collapsed()
        except BaseException as exc:
            errors.append(exc)

    adders = [threading.Thread(target=adder, args=(pid,)) for pid in ("a", "b", "c")]
    others = [threading.Thread(target=reader), threading.Thread(target=clearer)]
    for t in adders + others:
        t.start()
    for t in adders:
        t.join()
    stop.set()
    for t in others:
        t.join()
    assert errors == []
    final = store.get_all()
    assert len(final) <= 500
    for pid in ("a", "b"):
        by_process = store.get_by_process(pid)
        assert by_process == [e for e in final if e.process_id == pid]
        assert store.add(pid, pid, "final").seq == 150 + 150 * 5 + 1  # no seq skipped


def test_search_page_walks_back_in_bounded_steps() -> None:
    store = LogStore(max_entries=100)
    store.add_lines("p", "n", [f"line {i}{' hit' if i % 10 == 0 else ''}" for i in range(150)])
    query = SearchQuery(text="HIT")
    pages = []
    before = None
    while True:
        page = store.search_page(query, before=before, max_scan=30)
        assert page.scanned <= 30
        pages.append(page)
        if page.next_before is None:
            break
        before = page.next_before
    found = [e.content for page in reversed(pages) for e in page.entries]
    assert found == [e.content for e in store.search(query)]
    assert found == [f"line {i} hit" for i in range(50, 150, 10)]
    assert sum(p.scanned for p in pages) == 100
    one = store.search_page(SearchQuery(text=r"\d+0 hit$", regex=True, process_id="p", limit=2))
    assert [e.content for e in one.entries] == ["line 130 hit", "line 140 hit"]
    assert store.search_page(SearchQuery(process_id="other")).entries == ()
    assert codes(store.search_page, query, max_scan=0) == ErrorCode.INVALID_ARGUMENT
    assert codes(store.search_page, query, before=-1) == ErrorCode.INVALID_ARGUMENT


def test_search_treats_a_newline_inside_a_line_as_a_space() -> None:
    store = LogStore()
    store.add_lines("p", "n", ["first\nsecond", "other"])
    assert contents(store.search(SearchQuery(text="first second"))) == ["first\nsecond"]
    assert contents(store.search(SearchQuery(text="(first|zzz) sec", regex=True))) == [
        "first\nsecond"
    ]
    assert store.search(SearchQuery(text="first\nsecond")) == []


def test_store_follows_process_exits_on_a_real_bus() -> None:
    bus = EventBus(workers=1)
    try:
        store = LogStore(event_bus=bus, follow_exits=True)
        store.add_lines(
            "p1", "web", ["on http://localhost:3000", "TypeError: x", "    at a.js:1:1"]
        )
        bus.publish(Event(type=EventType.PROCESS_EXITED, data={"exit_code": 1}, process_id="p1"))
        assert wait_until(lambda: not store.get_urls()[0].active)
        assert [g.id for g in store.get_error_groups()] == ["p1-err-1"]
        store.close()
        bus.publish(Event(type=EventType.PROCESS_EXITED, data={}, process_id="p1"))
    finally:
        bus.stop()
    store.close()  # idempotent, also after the bus stopped


def test_search_over_many_cached_segments_matches_brute_force() -> None:
    import re

    store = LogStore(max_entries=9_000)
    red_error = " \x1b[31mERROR\x1b[0m"
    lines = [
        f"GET /api/{'orders' if i % 700 == 0 else 'users'}/{i} {500 if i % 700 == 0 else 200}"
        f"{red_error if i % 333 == 0 else ''} in {i % 97} ms"
        for i in range(13_000)
    ]
    for start in range(0, len(lines), 1000):
        store.add_lines(f"p{start % 3}", "web", lines[start : start + 1000])
    everything = store.get_all()

    def brute(pattern: str, *, regex: bool, limit: int = 0) -> list[LogEntry]:
        if regex:
            rx = re.compile(pattern, re.IGNORECASE)
            found = [e for e in everything if rx.search(e.plain)]
        else:
            found = [e for e in everything if pattern.lower() in e.plain]
        return found[-limit:] if limit else found

    for _ in range(2):  # the second round runs on cached segments
        for text, regex in [
            ("orders", False),
            ("ERROR", False),
            ("users/1", False),
            ("nothing like this", False),
            (r"(orders|error)/?\d*", True),
            (r"\d+ ms$", True),
            (r"500 (in|error)", True),
        ]:
            for limit in (0, 5, 500):
                got = store.search(SearchQuery(text=text, regex=regex, limit=limit))
                assert got == brute(text, regex=regex, limit=limit), (text, limit)
    assert store.search(SearchQuery(text="orders", level=LogLevel.ERROR)) == [
        e for e in brute("orders", regex=False) if e.level >= LogLevel.ERROR
    ]
    store.clear_for_process("p1")
    everything = store.get_all()
    assert store.search(SearchQuery(text="orders")) == brute("orders", regex=False)
    store.add_lines("p1", "web", ["late orders line"])
    everything = store.get_all()
    assert store.search(SearchQuery(text="orders", limit=2)) == brute(
        "orders", regex=False, limit=2
    )


@settings(max_examples=15, deadline=None)
@given(
    plans=st.lists(
        st.lists(
            st.sampled_from(["add", "batch", "lines", "search", "regex", "clear_c", "page"]),
            min_size=5,
            max_size=40,
        ),
        min_size=2,
        max_size=4,
    ),
    capacity=st.integers(1, 60),
)
def test_concurrent_random_operations_keep_the_store_consistent(
    plans: list[list[str]], capacity: int
) -> None:
    store = LogStore(max_entries=capacity)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(plans))

    def run(worker: int, plan: list[str]) -> None:
        pid = "abc"[worker % 3]
        try:
            barrier.wait(timeout=10)
            for step, op in enumerate(plan):
                text = f"{pid} {op} {step} Error" if step % 4 == 0 else f"{pid} {op} {step}"
                if op == "add":
                    store.add(pid, pid, text)
                elif op == "batch":
                    store.add_batch([LogEntryInput(pid, pid, text), LogEntryInput("z", "z", text)])
                elif op == "lines":
                    store.add_lines(pid, pid, [text, text, ""])
                elif op == "search":
                    found = store.search(SearchQuery(text=pid + " ", limit=5))
                    assert all(e.content.startswith(pid + " ") for e in found)
                elif op == "regex":
                    found = store.search(SearchQuery(text=r"error$", regex=True))
                    assert all(e.content.endswith("Error") for e in found)
                elif op == "page":
                    page = store.search_page(SearchQuery(text="error"), max_scan=7)
                    assert page.scanned <= 7
                else:
                    store.clear_for_process("c")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, plan)) for i, plan in enumerate(plans)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    everything = store.get_all()
    assert len(everything) <= capacity
    for pid in ("a", "b", "c", "z"):
        mine = store.get_by_process(pid)
        assert mine == [e for e in everything if e.process_id == pid]
        seqs = [e.seq for e in mine]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True
    assert store.search(SearchQuery(text="error")) == [
        e for e in everything if "error" in e.content.lower()
    ]
    metrics = store.metrics()
    assert metrics.total_entries == len(everything)
    assert metrics.added_total - metrics.evicted_total >= len(everything)


def test_search_hit_mapping_matches_brute_force_at_edges_and_densities() -> None:
    """Hits on first/last lines of segments, repeated and overlapping occurrences,
    non-ASCII text, and segments on both sides of the dense threshold."""
    import re

    store = LogStore(max_entries=20_000)
    lines = []
    for i in range(17_000):
        block = i // 4096
        if i % 4096 in (0, 4095):
            line = f"edge aaaa aaaa {i}"
        elif block == 1 and i % 3 == 0:  # dense segment: one line in three
            line = f"aaa ➜ warn {i} warn"
        elif i % 97 < 3:  # short hit lines in a row
            line = "ï😀 error aaaaa error" if i % 97 else f"naïve 😀 error {i}"
        else:
            line = f"plain line {i} ok"
        lines.append(line)
    for start in range(0, len(lines), 1000):
        store.add_lines("p", "web", lines[start : start + 1000])
    everything = store.get_all()
    for text, regex in [
        ("aaaa", False),
        ("aa", False),
        ("😀 error", False),
        ("warn", False),
        ("edge", False),
        ("error|warn", True),
        (r"aa+ (➜|😀)", True),
        (r"warn \d+ warn", True),
    ]:
        rx = re.compile(text if regex else re.escape(text), re.IGNORECASE)
        want = [e for e in everything if rx.search(e.plain)]
        for limit in (0, 7):
            got = store.search(SearchQuery(text=text, regex=regex, limit=limit))
            assert got == (want[-limit:] if limit else want), (text, limit)

"""Conformance suite for LogStore implementations (API.md §7).

:func:`check_log_store` drives fresh stores from a factory with hypothesis-generated clients
that add, add in batches, read, search and clear at once (threads released by a Barrier), and
checks the recorded history for linearizability against
:class:`~brummer.testing.linearizability.LogStoreModel` (a ring of ``max_entries``, oldest
evicted first, ``seq`` strictly increasing per process for the life of the store, batches all
or nothing, search = case-insensitive substring with newest-N limit). So: no accepted line is
lost or duplicated except by eviction, nothing half-added is ever visible, reads are
consistent snapshots. It also checks entry ids are unique, ``metrics().total_entries`` agrees,
and that bad input (bytes, a bad batch item, an invalid regex, ``limit < 0``, use after close)
raises the documented error, stores nothing and leaves the store usable.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import hypothesis
from hypothesis import given, strategies as st

from brummer.contracts import BLOCKING, ThreadSafety, contract
from brummer.errors import ErrorCode
from brummer.logs import LogEntryInput, SearchQuery
from brummer.testing.conformance._harness import (
    expect_error,
    fail,
    no_thread_leak,
    run_property,
    run_together,
    suite_settings,
    undecided,
)
from brummer.testing.linearizability import (
    CheckOutcome,
    HistoryRecorder,
    LogStoreModel,
    check_history,
)

__all__ = ["check_log_store"]

_PIDS = ("web", "api", "db")
_WORDS = ("alpha", "Beta", "gamma", "DELTA")

_op = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(_PIDS), st.sampled_from(_WORDS)),
    st.tuples(st.just("add"), st.sampled_from(_PIDS), st.sampled_from(_WORDS)),
    st.tuples(
        st.just("add_batch"),
        st.lists(
            st.tuples(st.sampled_from(_PIDS), st.sampled_from(_WORDS)), min_size=1, max_size=3
        ),
    ),
    st.tuples(st.just("get_by_process"), st.sampled_from(_PIDS)),
    st.tuples(st.just("get_all")),
    st.tuples(
        st.just("search"),
        st.sampled_from(("", "a", "beta", "ALPHA", "ta")),
        st.sampled_from((None, *_PIDS)),
        st.integers(0, 3),
    ),
    st.tuples(st.just("clear_for_process"), st.sampled_from(_PIDS)),
    st.tuples(st.just("clear")),
)


def _triple(e: Any) -> tuple[str, str, int]:
    return (e.process_id, e.content, e.seq)


def _scenario(
    factory: Callable[..., Any], capacity: int, clients: list[list[tuple[Any, ...]]]
) -> None:
    store = factory(max_entries=capacity)
    rec = HistoryRecorder()
    ids: list[str] = []
    ids_guard = threading.Lock()

    def keep_ids(entries: list[Any]) -> None:
        with ids_guard:
            ids.extend(e.id for e in entries)

    def client(c: int, steps: list[tuple[Any, ...]]) -> Callable[[], None]:
        def run() -> None:
            for k, step in enumerate(steps):
                name = step[0]
                if name == "add":
                    pid, word = step[1], f"{step[2]} {c}.{k}"
                    entry = rec.record(
                        c, "add", (pid, word), partial(store.add, pid, pid, word), observe=_triple
                    )
                    keep_ids([entry])
                elif name == "add_batch":
                    items = tuple(
                        (pid, f"{word} {c}.{k}.{j}") for j, (pid, word) in enumerate(step[1])
                    )
                    inputs = [LogEntryInput(pid, pid, content) for pid, content in items]
                    entries = rec.record(
                        c,
                        "add_batch",
                        (items,),
                        partial(store.add_batch, inputs),
                        observe=lambda r: tuple(map(_triple, r)),
                    )
                    keep_ids(entries)
                elif name == "get_by_process":
                    rec.record(
                        c,
                        name,
                        (step[1],),
                        partial(store.get_by_process, step[1]),
                        observe=lambda r: tuple((e.content, e.seq) for e in r),
                    )
                elif name == "get_all":
                    rec.record(c, name, (), store.get_all, observe=lambda r: tuple(map(_triple, r)))
                elif name == "search":
                    text, pid, limit = step[1:]
                    query = SearchQuery(text=text, process_id=pid, limit=limit)
                    rec.record(
                        c,
                        name,
                        (text, pid, limit),
                        partial(store.search, query),
                        observe=lambda r: tuple(map(_triple, r)),
                    )
                elif name == "clear_for_process":
                    rec.record(c, name, (step[1],), partial(store.clear_for_process, step[1]))
                else:
                    rec.record(c, "clear", (), store.clear)

        return run

    with no_thread_leak("log store scenario"):
        try:
            run_together([client(c, steps) for c, steps in enumerate(clients)], what="log-store")
            final = rec.record(
                len(clients), "get_all", (), store.get_all, observe=lambda r: tuple(map(_triple, r))
            )
            total = store.metrics().total_entries
        finally:
            store.close()
    if len(ids) != len(set(ids)):
        raise fail("two stored entries have the same id")
    if total != len(final):
        raise fail(f"metrics().total_entries is {total} but get_all() returns {len(final)} entries")
    result = check_history(LogStoreModel(capacity), rec.operations(), time_budget=5.0)
    if result.outcome is CheckOutcome.UNKNOWN:
        raise undecided("log store history", len(rec), 5.0)
    if result.violation is not None:
        raise fail(
            "the store's history is not linearizable (lost, duplicated, reordered or half-visible lines)\n"
            + result.violation.report
        )


def _check_sequential(factory: Callable[..., Any]) -> None:
    """One thread, a fixed script through eviction, clears and searches: must equal the model."""
    steps: list[tuple[Any, ...]] = []
    for i in range(9):
        steps.append(("add", _PIDS[i % 3], _WORDS[i % 4]))
    steps += [
        ("get_all",),
        ("get_by_process", "web"),
        ("search", "beta", None, 2),
        ("clear_for_process", "web"),
        ("add", "web", "alpha"),
        ("add_batch", [("api", "Beta"), ("web", "gamma")]),
        ("get_by_process", "web"),
        ("clear",),
        ("add", "db", "DELTA"),
        ("get_all",),
        ("search", "ta", "db", 0),
    ]
    _scenario(factory, 4, [steps])


def _check_bad_input(factory: Callable[..., Any]) -> None:
    store = factory(max_entries=100)
    try:
        first = store.add("p", "p", "kept")
        expect_error(
            ErrorCode.INVALID_ARGUMENT,
            lambda: store.add("p", "p", b"bytes"),
            "add() of bytes",
            builtin=ValueError,
        )
        good = LogEntryInput("p", "p", "in a bad batch")
        expect_error(
            ErrorCode.INVALID_ARGUMENT,
            lambda: store.add_batch([good, "not an input"]),
            "add_batch with a non-input item",
        )
        not_text: Any = 42
        bad_content = LogEntryInput("p", "p", not_text)
        expect_error(
            ErrorCode.INVALID_ARGUMENT,
            lambda: store.add_batch([good, bad_content]),
            "add_batch with a non-str content",
        )
        expect_error(
            ErrorCode.INVALID_ARGUMENT,
            lambda: store.search(SearchQuery(text="([", regex=True)),
            "search with an invalid regex",
        )
        expect_error(
            ErrorCode.INVALID_ARGUMENT,
            lambda: store.search(SearchQuery(limit=-1)),
            "search with limit -1",
        )
        contents = [e.content for e in store.get_all()]
        if contents != ["kept"]:
            raise fail(
                f"after refused input the store holds {contents}, not ['kept']: a refused call stored something"
            )
        second = store.add("p", "p", "still usable")
        if second.seq <= first.seq:
            raise fail(f"seq went from {first.seq} to {second.seq} in one process")
        found = store.search(SearchQuery(text="USABLE"))
        if [e.content for e in found] != ["still usable"]:
            raise fail("case-insensitive search did not find a line after bad input")
    finally:
        store.close()
    store.close()  # idempotent
    expect_error(
        ErrorCode.INVALID_STATE, lambda: store.add("p", "p", "late"), "add() after close()"
    )
    if [e.content for e in store.get_all()] != ["kept", "still usable"]:
        raise fail("reads after close() do not return what was stored")


@contract(ThreadSafety.TS, timeout=BLOCKING)
def check_log_store(
    factory: Callable[..., Any], *, settings: hypothesis.settings | None = None
) -> None:
    """Judge the stores ``factory(max_entries=n)`` makes by the LogStore contract (API.md §7).

    Thread safety: TS. Makes a fresh store per scenario and closes it; starts and joins its
    own threads.

    Args:
        factory: called as ``factory(max_entries=n)`` (``LogStore`` itself will do); small
            ``n`` are used so that eviction happens.
        settings: hypothesis settings (default: 10 examples, no database).

    Raises:
        AssertionError: ``ConformanceError`` describing the first broken guarantee (with a
            shrunk, readable history for a linearizability violation).
    """
    chosen = suite_settings(settings, max_examples=25)

    @chosen
    @given(
        capacity=st.integers(3, 12),
        clients=st.lists(st.lists(_op, min_size=4, max_size=14), min_size=2, max_size=5),
    )
    def histories(capacity: int, clients: list[list[tuple[Any, ...]]]) -> None:
        _scenario(factory, capacity, clients)

    _check_bad_input(factory)
    _check_sequential(factory)
    run_property(histories)

"""check_log_store against the real LogStore, a small third-party-style store, and broken ones."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pytest

from brummer.errors import BrummerError, ErrorCode
from brummer.logs import LogEntryInput, LogStore, SearchQuery
from brummer.testing.conformance import ConformanceError, check_log_store


@attrs.frozen
class Entry:
    id: str
    process_id: str
    content: str
    seq: int


@attrs.frozen
class Metrics:
    total_entries: int


def _bad(message: str) -> BrummerError:
    return BrummerError("store", ErrorCode.INVALID_ARGUMENT, message, hint="fix the argument")


class SimpleStore:
    """A correct, small store with one lock: what a third party might write."""

    def __init__(self, *, max_entries: int = 100) -> None:
        self.cap = max_entries
        self.lock = threading.Lock()
        self.entries: list[Entry] = []
        self.seq: dict[str, int] = {}
        self.ids = 0
        self.closed = False

    def _check(self, pid: object, content: object) -> None:
        if not isinstance(pid, str) or not isinstance(content, str):
            raise _bad("strings only")
        if self.closed:
            raise BrummerError("store", ErrorCode.INVALID_STATE, "closed", hint="make a new one")

    def _append(self, pid: str, content: str) -> Entry:
        self.seq[pid] = self.seq.get(pid, 0) + 1
        self.ids += 1
        entry = Entry(f"e{self.ids}", pid, content, self.seq[pid])
        self.entries.append(entry)
        del self.entries[: -self.cap]
        return entry

    def add(self, pid: str, name: str, content: str, is_error: bool = False) -> Entry:
        self._check(pid, content)
        with self.lock:
            return self._append(pid, content)

    def add_batch(self, items: Sequence[LogEntryInput]) -> list[Entry]:
        for item in items:
            if not isinstance(item, LogEntryInput):
                raise _bad("inputs only")
            self._check(item.process_id, item.content)
        with self.lock:
            return [self._append(i.process_id, i.content) for i in items]

    def get_by_process(self, pid: str) -> list[Entry]:
        with self.lock:
            return [e for e in self.entries if e.process_id == pid]

    def get_all(self) -> list[Entry]:
        with self.lock:
            return list(self.entries)

    def search(self, q: SearchQuery) -> list[Entry]:
        if q.limit < 0:
            raise _bad("limit")
        if q.regex:
            raise _bad("no regex support here")
        with self.lock:
            found = [
                e
                for e in self.entries
                if q.text.lower() in e.content.lower() and q.process_id in (None, e.process_id)
            ]
        return found[-q.limit :] if q.limit else found

    def clear(self) -> None:
        with self.lock:
            self.entries = []

    def clear_for_process(self, pid: str) -> None:
        with self.lock:
            self.entries = [e for e in self.entries if e.process_id != pid]

    def metrics(self) -> Metrics:
        with self.lock:
            return Metrics(len(self.entries))

    def close(self) -> None:
        self.closed = True


class EvictsNewest(SimpleStore):
    """Broken: when full, the new line is the one that goes."""

    def _append(self, pid: str, content: str) -> Entry:
        self.seq[pid] = self.seq.get(pid, 0) + 1
        self.ids += 1
        entry = Entry(f"e{self.ids}", pid, content, self.seq[pid])
        if len(self.entries) < self.cap:
            self.entries.append(entry)
        return entry


class ResetsSeqOnClear(SimpleStore):
    """Broken: clearing a process restarts its seq numbers."""

    def clear_for_process(self, pid: str) -> None:
        super().clear_for_process(pid)
        with self.lock:
            self.seq.pop(pid, None)


class CaseSensitiveSearch(SimpleStore):
    """Broken: search is case-sensitive."""

    def search(self, q: SearchQuery) -> list[Entry]:
        super().search(q)  # validation
        found = [e for e in super().search(SearchQuery(limit=0)) if q.text in e.content]
        found = [e for e in found if q.process_id in (None, e.process_id)]
        return found[-q.limit :] if q.limit else found


class HalfBatches(SimpleStore):
    """Broken: a batch is added line by line, releasing the lock in between."""

    def add_batch(self, items: Sequence[LogEntryInput]) -> list[Entry]:
        return [self.add(i.process_id, i.process_name, i.content) for i in items]


class StaleReads(SimpleStore):
    """Broken: get_all serves a cached copy refreshed only every third call."""

    def __init__(self, *, max_entries: int = 100) -> None:
        super().__init__(max_entries=max_entries)
        self.cache: list[Entry] = []
        self.calls = 0

    def get_all(self) -> list[Entry]:
        self.calls += 1
        if self.calls % 3 == 1:
            self.cache = super().get_all()
        return list(self.cache)


@pytest.mark.parametrize(
    "factory",
    [LogStore, SimpleStore],
    ids=["LogStore", "SimpleStore"],
)
def test_stores_conform(factory: Callable[..., Any]) -> None:
    check_log_store(factory)


@pytest.mark.parametrize(
    ("factory", "complaint"),
    [
        (EvictsNewest, "not linearizable"),
        (ResetsSeqOnClear, "not linearizable"),
        (CaseSensitiveSearch, "case-insensitive search"),
        (StaleReads, "not linearizable|total_entries|reads after close"),
    ],
    ids=["evicts-newest", "resets-seq", "case-sensitive", "stale-reads"],
)
def test_broken_stores_are_caught(factory: Callable[..., Any], complaint: str) -> None:
    with pytest.raises(ConformanceError, match=complaint):
        check_log_store(factory)


def test_a_violation_report_is_readable() -> None:
    with pytest.raises(ConformanceError) as info:
        check_log_store(EvictsNewest)
    text = str(info.value)
    assert "not linearizable: these" in text
    assert "longest legal order found" in text
    assert "none of these may come next" in text
    assert len(text.splitlines()) < 60  # shrunk, not the whole history

"""LogStore against a sequential model (hypothesis stateful testing)."""

from __future__ import annotations

import re

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from brummer.errors import BrummerError, ErrorCode
from brummer.logs import (
    LogEntryInput,
    LogStore,
    SearchQuery,
    _search as search_module,
)

CAPACITY = 12
process_ids = st.sampled_from(["a", "b", "c"])
words = st.sampled_from(["GET", "error", "Warn", "ok", "", "x", "Ready", "42", "é", "TypeError:"])
colours = st.sampled_from(["", "\x1b[31m", "\x1b[1;32m"])
lines = st.builds(
    lambda c, ws: c + " ".join(ws) + ("\x1b[0m" if c else ""), colours, st.lists(words, max_size=4)
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(text: str) -> str:
    return _ANSI.sub("", text).lower()


class StoreMachine(RuleBasedStateMachine):
    """Every operation on the real store is mirrored on a list; reads must agree."""

    @initialize()
    def start(self) -> None:
        # tiny segments, so that sealed segments, partly evicted heads and the rebuild of
        # clear_for_process are all exercised by a 12-entry store
        self.saved_segment = search_module.SEGMENT
        search_module.SEGMENT = 3
        self.store = LogStore(max_entries=CAPACITY)
        self.model: list[tuple[str, str, int]] = []  # (process_id, content, seq), oldest first
        self.last_seq: dict[str, int] = {}
        self.position = 0  # store-wide cursor value

    def _append(self, pid: str, content: str) -> tuple[str, str, int]:
        seq = self.last_seq.get(pid, 0) + 1
        self.last_seq[pid] = seq
        item = (pid, content, seq)
        self.model.append(item)
        del self.model[:-CAPACITY]
        self.position += 1
        return item

    @rule(pid=process_ids, line=lines)
    def add(self, pid: str, line: str) -> None:
        entry = self.store.add(pid, pid.upper(), line)
        assert (entry.process_id, entry.content, entry.seq) == self._append(pid, line)

    @rule(items=st.lists(st.tuples(process_ids, lines), max_size=8))
    def add_batch(self, items: list[tuple[str, str]]) -> None:
        out = self.store.add_batch([LogEntryInput(p, p.upper(), c) for p, c in items])
        expected = [self._append(p, c) for p, c in items]
        assert [(e.process_id, e.content, e.seq) for e in out] == expected

    @rule(
        items=st.lists(st.tuples(process_ids, lines), min_size=1, max_size=5), bad=st.integers(0, 4)
    )
    def add_bad_batch(self, items: list[tuple[str, str]], bad: int) -> None:
        inputs: list[object] = [LogEntryInput(p, p.upper(), c) for p, c in items]
        inputs.insert(min(bad, len(inputs)), LogEntryInput("a", "A", b"raw"))  # type: ignore[arg-type]
        with pytest.raises(BrummerError) as info:
            self.store.add_batch(inputs)  # type: ignore[arg-type]
        assert info.value.code == ErrorCode.INVALID_ARGUMENT

    @rule(pid=process_ids, line=lines)
    def add_lines_of_one_process(self, pid: str, line: str) -> None:
        out = self.store.add_lines(pid, pid.upper(), [line, line])
        assert [(e.process_id, e.content, e.seq) for e in out] == [
            self._append(pid, line),
            self._append(pid, line),
        ]

    @rule()
    def clear(self) -> None:
        self.store.clear()
        self.model.clear()

    @rule(pid=process_ids)
    def clear_for_process(self, pid: str) -> None:
        self.store.clear_for_process(pid)
        self.model = [m for m in self.model if m[0] != pid]

    @rule(text=words, pid=st.none() | process_ids, limit=st.integers(0, 5))
    def search(self, text: str, pid: str | None, limit: int) -> None:
        got = self.store.search(SearchQuery(text=text, process_id=pid, limit=limit))
        want = [
            m for m in self.model if text.lower() in plain(m[1]) and (pid is None or m[0] == pid)
        ]
        if limit:
            want = want[-limit:]
        assert [(e.process_id, e.content, e.seq) for e in got] == want

    @rule(
        text=st.sampled_from(
            ["e", "^get", "r+o", "[0-9]+", "ok$", "(warn|ready)", "x|rror", ".rr"]
        ),
        limit=st.integers(0, 3),
    )
    def search_regex(self, text: str, limit: int) -> None:
        rx = re.compile(text, re.IGNORECASE)
        got = self.store.search(SearchQuery(text=text, regex=True, limit=limit))
        want = [m for m in self.model if rx.search(plain(m[1]))]
        if limit:
            want = want[-limit:]
        assert [(e.process_id, e.content, e.seq) for e in got] == want

    @rule(text=words, step=st.integers(1, 7))
    def search_in_pages(self, text: str, step: int) -> None:
        query = SearchQuery(text=text)
        got: list[tuple[str, str, int]] = []
        before = None
        while True:
            page = self.store.search_page(query, before=before, max_scan=step)
            got[:0] = [(e.process_id, e.content, e.seq) for e in page.entries]
            if page.next_before is None:
                break
            before = page.next_before
        assert got == [m for m in self.model if text.lower() in plain(m[1])]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def get_since_process(self, data: st.DataObject) -> None:
        pid, _, seq = data.draw(st.sampled_from(self.model))
        got = self.store.get_since(seq - 1, process_id=pid)
        want = [m for m in self.model if m[0] == pid and m[2] >= seq]
        assert [(e.process_id, e.content, e.seq) for e in got] == want

    def teardown(self) -> None:
        if hasattr(self, "saved_segment"):
            search_module.SEGMENT = self.saved_segment

    @invariant()
    def same_as_model(self) -> None:
        assert [(e.process_id, e.content, e.seq) for e in self.store.get_all()] == self.model
        for pid in ("a", "b", "c"):
            assert [(e.process_id, e.content, e.seq) for e in self.store.get_by_process(pid)] == [
                m for m in self.model if m[0] == pid
            ]

    @invariant()
    def cursor_reads_the_tail(self) -> None:
        if not self.model:
            return
        tail = list(self.store.get_since(self.store.cursor() - 1))
        assert [(e.process_id, e.content, e.seq) for e in tail] == self.model[-1:]


StoreMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestStoreMachine = StoreMachine.TestCase

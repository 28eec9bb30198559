"""The linearizability checker: it accepts legal histories, catches broken ones, stays fast."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from hypothesis import given, strategies as st

from brummer.errors import BrummerError, ErrorCode
from brummer.testing.linearizability import (
    CheckOutcome,
    EventBusModel,
    HistoryRecorder,
    LogStoreModel,
    Operation,
    Raised,
    ResourceModel,
    check_history,
    format_history,
)


def op(
    i: int, name: str, args: tuple[Any, ...], result: Any, call: int, ret: int, client: int = 0
) -> Operation:
    return Operation(i, client, name, args, result, call, ret)


class LockedStore:
    """A correct little log store (one lock), to produce legal histories."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.lock = threading.Lock()
        self.entries: list[tuple[str, str, int]] = []
        self.seq: dict[str, int] = {}

    def add(self, pid: str, content: str) -> tuple[str, str, int]:
        with self.lock:
            seq = self.seq.get(pid, 0) + 1
            self.seq[pid] = seq
            self.entries.append((pid, content, seq))
            del self.entries[: -self.capacity]
            return (pid, content, seq)

    def get_by_process(self, pid: str) -> tuple[tuple[str, int], ...]:
        with self.lock:
            return tuple((c, s) for p, c, s in self.entries if p == pid)

    def clear_for_process(self, pid: str) -> None:
        with self.lock:
            self.entries = [e for e in self.entries if e[0] != pid]


class RacySeqStore(LockedStore):
    """Broken on purpose: seq is read and written in two steps (lost update).

    The first two adds are forced to interleave by a barrier, so the race always happens.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.race = threading.Barrier(2)
        self.raced = 0

    def add(self, pid: str, content: str) -> tuple[str, str, int]:
        with self.lock:
            seq = self.seq.get(pid, 0) + 1
            first = self.raced < 2
            self.raced += 1
        if first:
            self.race.wait(timeout=5)
        with self.lock:
            self.seq[pid] = seq
            self.entries.append((pid, content, seq))
            del self.entries[: -self.capacity]
        return (pid, content, seq)


def drive(store: LockedStore, threads: int, per_thread: int) -> list[Operation]:
    rec = HistoryRecorder()
    barrier = threading.Barrier(threads)

    def client(c: int) -> None:
        barrier.wait(timeout=5)
        for k in range(per_thread):
            pid = f"p{(c + k) % 3}"
            if k % 3 == 0:
                rec.record(c, "get_by_process", (pid,), lambda pid=pid: store.get_by_process(pid))
            elif k % 11 == 10:
                rec.record(
                    c, "clear_for_process", (pid,), lambda pid=pid: store.clear_for_process(pid)
                )
            else:
                text = f"{c}-{k}"
                rec.record(c, "add", (pid, text), lambda pid=pid, text=text: store.add(pid, text))

    workers = [threading.Thread(target=client, args=(c,)) for c in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=10)
    return rec.operations()


def test_empty_history_is_linearizable() -> None:
    result = check_history(LogStoreModel(3), [])
    assert result.ok
    assert result.linearization == ()


def test_sequential_history_linearizes_in_its_own_order() -> None:
    ops = [
        op(0, "add", ("p", "a"), ("p", "a", 1), 0, 10),
        op(1, "add", ("p", "b"), ("p", "b", 2), 20, 30),
        op(2, "get_by_process", ("p",), (("a", 1), ("b", 2)), 40, 50),
    ]
    result = check_history(LogStoreModel(10), ops)
    assert result.outcome is CheckOutcome.OK
    assert [o.id for o in result.linearization or ()] == [0, 1, 2]


def test_concurrent_operations_may_be_reordered() -> None:
    # The read overlaps both adds and saw only the second one's process... order: b's add first.
    ops = [
        op(0, "add", ("p", "a"), ("p", "a", 2), 0, 100, client=0),
        op(1, "add", ("p", "b"), ("p", "b", 1), 10, 90, client=1),
        op(2, "get_by_process", ("p",), (("b", 1),), 20, 80, client=2),
    ]
    result = check_history(LogStoreModel(10), ops)
    assert result.ok
    assert [o.id for o in result.linearization or ()] == [1, 2, 0]


def test_stale_read_after_write_is_a_violation_and_is_shrunk() -> None:
    ops = [
        op(0, "add", ("q", "x"), ("q", "x", 1), 0, 5, client=1),
        op(1, "add", ("p", "a"), ("p", "a", 1), 10, 20),
        op(2, "get_by_process", ("q",), (("x", 1),), 21, 25, client=1),
        op(3, "get_by_process", ("p",), (), 30, 40, client=1),  # a returned before: must see it
        op(4, "add", ("p", "b"), ("p", "b", 2), 50, 60),
        op(5, "get_by_process", ("p",), (("a", 1), ("b", 2)), 70, 80),
    ]
    result = check_history(LogStoreModel(10), ops)
    assert result.outcome is CheckOutcome.VIOLATION
    v = result.violation
    assert v is not None
    # Later operations are cut, the read of q dropped, and process q split off (processes
    # are independent while nothing is evicted): two operations are the whole story.
    assert [o.id for o in v.operations] == [1, 3]
    assert v.recorded == 6
    assert [o.id for o in v.longest_prefix] == [1]
    assert [o.id for o in v.stuck] == [3]
    assert "not linearizable" in v.report
    assert "#3 get_by_process('p') -> ()" in v.report
    assert "p:'a'#1" in v.state
    # The shrunk history is itself a proof.
    assert check_history(LogStoreModel(10), v.operations).outcome is CheckOutcome.VIOLATION


def test_capacity_eviction_is_modelled() -> None:
    ops = [
        op(0, "add", ("p", "a"), ("p", "a", 1), 0, 1),
        op(1, "add", ("p", "b"), ("p", "b", 2), 2, 3),
        op(2, "add", ("p", "c"), ("p", "c", 3), 4, 5),
        op(3, "get_all", (), (("p", "b", 2), ("p", "c", 3)), 6, 7),
    ]
    assert check_history(LogStoreModel(2), ops).ok
    wrong = [*ops[:3], op(3, "get_all", (), (("p", "a", 1), ("p", "b", 2)), 6, 7)]
    assert check_history(LogStoreModel(2), wrong).outcome is CheckOutcome.VIOLATION


def test_seq_must_increase_across_a_clear() -> None:
    ops = [
        op(0, "add", ("p", "a"), ("p", "a", 1), 0, 1),
        op(1, "clear", (), None, 2, 3),
        op(2, "add", ("p", "b"), ("p", "b", 1), 4, 5),
    ]
    assert check_history(LogStoreModel(5), ops).outcome is CheckOutcome.VIOLATION


def test_search_and_batches() -> None:
    ops = [
        op(
            0,
            "add_batch",
            ((("p", "Hello"), ("q", "hello world")),),
            (("p", "Hello", 1), ("q", "hello world", 1)),
            0,
            1,
        ),
        op(1, "add_batch", ((("p", "x"),),), Raised("INVALID_ARGUMENT"), 2, 3),
        op(2, "search", ("HELLO", None, 1), (("q", "hello world", 1),), 4, 5),
        op(3, "search", ("hello", "p", 0), (("p", "Hello", 1),), 6, 7),
        op(4, "get_by_process", ("p",), (("Hello", 1),), 8, 9),
    ]
    assert check_history(LogStoreModel(5), ops).ok


def test_real_threads_on_a_correct_store_check_fast() -> None:
    ops = drive(LockedStore(50), threads=8, per_thread=40)
    assert len(ops) == 320
    started = time.perf_counter()
    result = check_history(LogStoreModel(50), ops, time_budget=5.0)
    elapsed = time.perf_counter() - started
    assert result.outcome is CheckOutcome.OK, result.violation and result.violation.report
    assert elapsed < 2.0  # typically ~0.02 s; generous for a shared machine


def test_real_threads_on_a_broken_store_are_caught() -> None:
    store = RacySeqStore(50)
    rec = HistoryRecorder()

    def client(c: int) -> None:
        # Both first adds go to process p and meet inside add(): they read the same seq.
        for k in range(10):
            rec.record(c, "add", ("p", f"{c}-{k}"), lambda k=k: store.add("p", f"{c}-{k}"))
            rec.record(c, "get_by_process", ("p",), lambda: store.get_by_process("p"))

    workers = [threading.Thread(target=client, args=(c,)) for c in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=10)
    ops = rec.operations()
    result = check_history(LogStoreModel(50), ops)
    assert result.outcome is CheckOutcome.VIOLATION
    v = result.violation
    assert v is not None
    assert len(v.operations) < len(ops)
    assert "both given seq 1" in v.report


def test_global_operations_keep_the_history_whole() -> None:
    ops = [
        op(0, "add", ("q", "x"), ("q", "x", 1), 0, 5),
        op(1, "add", ("p", "a"), ("p", "a", 1), 10, 20),
        op(2, "get_all", (), (("q", "x", 1),), 30, 40),
    ]
    model = LogStoreModel(10)
    assert len(model.partition(ops)) == 1
    assert len(model.partition(ops[:2])) == 2
    assert len(LogStoreModel(1).partition(ops[:2])) == 1  # eviction couples processes
    result = check_history(model, ops)
    assert result.violation is not None
    assert [o.id for o in result.violation.operations] == [0, 1, 2]


def test_budget_exhaustion_says_unknown() -> None:
    ops = drive(LockedStore(50), threads=4, per_thread=10)
    assert check_history(LogStoreModel(50), ops, max_steps=1).outcome is CheckOutcome.UNKNOWN


@pytest.mark.parametrize(
    "bad", [{"time_budget": 0.0}, {"time_budget": float("nan")}, {"max_steps": 0}]
)
def test_bad_budgets_are_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(BrummerError) as info:
        check_history(LogStoreModel(2), [], **bad)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT


def test_duplicate_ids_are_rejected() -> None:
    ops = [op(0, "clear", (), None, 0, 1), op(0, "clear", (), None, 2, 3)]
    with pytest.raises(ValueError, match="ids repeat"):
        check_history(LogStoreModel(2), ops)


def test_recorder_records_raises_and_reraises() -> None:
    rec = HistoryRecorder()

    def fail() -> None:
        raise BrummerError("x", ErrorCode.TIMEOUT, "slow", hint="wait")

    with pytest.raises(TimeoutError):
        rec.record(3, "acquire", ("threads", 1), fail)
    assert rec.record(3, "in_use", ("threads",), lambda: 7, observe=lambda v: v * 2) == 7
    first, second = rec.operations()
    assert first.result == Raised("TIMEOUT")
    assert first.client == 3
    assert first.call <= first.ret
    assert second.result == 14
    assert len(rec) == 2
    with pytest.raises(BrummerError):
        rec.add(0, "x", (), None, call=5, ret=4)
    assert Raised.of(KeyError("k")) == Raised("KeyError")


def test_resource_model_catches_over_allocation_and_double_release() -> None:
    model = ResourceModel({"threads": 2})
    over = [
        op(0, "acquire", ("threads", 2), "h1", 0, 10, client=0),
        op(1, "acquire", ("threads", 1), "h2", 5, 15, client=1),
    ]
    assert check_history(model, over).outcome is CheckOutcome.VIOLATION
    fine = [
        op(0, "acquire", ("threads", 2), "h1", 0, 10, client=0),
        op(1, "acquire", ("threads", 1), "h2", 5, 30, client=1),
        op(2, "release", ("h1", "threads", 2), None, 12, 20, client=0),
        op(3, "release", ("h1", "threads", 2), Raised("INVALID_STATE"), 21, 22, client=0),
        op(4, "in_use", ("threads",), 1, 31, 32),
        op(5, "acquire", ("threads", 3), Raised("INVALID_ARGUMENT"), 33, 34),
        op(6, "acquire", ("threads", 2), Raised("TIMEOUT"), 35, 36),
    ]
    assert check_history(model, fine).ok
    twice = [*fine[:3], op(3, "release", ("h1", "threads", 2), None, 21, 22)]
    assert check_history(model, twice).outcome is CheckOutcome.VIOLATION


def test_event_bus_model_subscription_windows() -> None:
    model = EventBusModel()
    base = [
        op(0, "subscribe", ("h", "*"), None, 0, 10),
        op(1, "publish", ("e1", "log"), frozenset({"h"}), 20, 30),
        op(2, "unsubscribe", ("h",), None, 40, 50),
    ]
    late = op(3, "publish", ("e2", "log"), frozenset({"h"}), 60, 70)  # after unsubscribe returned
    assert check_history(model, base).ok
    result = check_history(model, [*base, late])
    assert result.outcome is CheckOutcome.VIOLATION
    assert result.violation is not None
    assert "subscribed: nobody" in result.violation.state
    # A publish overlapping the unsubscribe may go either way.
    racing = op(3, "publish", ("e2", "log"), frozenset({"h"}), 45, 70)
    assert check_history(model, [*base, racing]).ok
    # Type filter: a handler of another type must not get it.
    typed = [
        op(0, "subscribe", ("h", "url"), None, 0, 1),
        op(1, "publish", ("e", "log"), frozenset({"h"}), 2, 3),
    ]
    assert check_history(model, typed).outcome is CheckOutcome.VIOLATION


def test_format_history_is_readable() -> None:
    text = format_history(
        [op(1, "get_all", (), (), 5_000, 9_000, client=2), op(0, "clear", (), None, 0, 4_000)]
    )
    lines = text.splitlines()
    assert "operation" in lines[0]
    assert "#0 clear() -> None" in lines[1]
    assert "c2" in lines[2]
    assert "5.0" in lines[2]
    assert format_history([]) == "  (no operations)"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "get", "clear_p"]), st.sampled_from(["p", "q"]), st.booleans()
        ),
        max_size=40,
    )
)
def test_histories_of_the_model_itself_always_check(script: list[tuple[str, str, bool]]) -> None:
    """Any sequential run of a correct store, with random overlaps between neighbours, is legal."""
    store = LockedStore(4)
    ops: list[Operation] = []
    t = 0
    for i, (name, pid, overlap) in enumerate(script):
        call = t
        if name == "add":
            result: Any = store.add(pid, str(i))
            ops.append(op(i, "add", (pid, str(i)), result, call, call + 10, client=i % 3))
        elif name == "get":
            ops.append(op(i, "get_by_process", (pid,), store.get_by_process(pid), call, call + 10))
        else:
            store.clear_for_process(pid)
            ops.append(op(i, "clear_for_process", (pid,), None, call, call + 10))
        t += 5 if overlap else 20  # overlapping with the next one keeps it legal
    assert check_history(LogStoreModel(4), ops).ok


def test_obvious_violations_are_found_without_searching() -> None:
    model = LogStoreModel(10)
    phantom = [
        op(0, "add", ("p", "a"), ("p", "a", 1), 0, 10),
        op(1, "get_by_process", ("p",), (("a", 1), ("ghost", 2)), 5, 15, client=1),
    ]
    result = check_history(model, phantom)
    assert result.outcome is CheckOutcome.VIOLATION
    assert result.steps == 0
    assert result.violation is not None
    assert [o.id for o in result.violation.operations] == [1]
    assert "no add had begun to store" in result.violation.report
    # Seen before its add began: also impossible.
    early = [
        op(0, "get_all", (), (("p", "a", 1),), 0, 5),
        op(1, "add", ("p", "a"), ("p", "a", 1), 6, 9),
    ]
    assert check_history(model, early).outcome is CheckOutcome.VIOLATION
    twice = [
        op(0, "add", ("p", "a"), ("p", "a", 3), 0, 10),
        op(
            1,
            "add_batch",
            ((("q", "x"), ("p", "b")),),
            (("q", "x", 1), ("p", "b", 3)),
            0,
            10,
            client=1,
        ),
    ]
    result = check_history(model, twice)
    assert result.violation is not None
    assert "both given seq 3" in result.violation.report
    assert [o.id for o in result.violation.operations] == [0, 1]

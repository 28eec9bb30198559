"""Linearizability checking: record a concurrent history, search for a legal sequential order.

A :class:`HistoryRecorder` stamps every operation with its invocation and response times
(``time.perf_counter_ns``) while several threads drive a component. :func:`check_history`
then looks for a *linearization*: one total order of the operations that respects real
time (an operation that returned before another was called comes first) and that a
sequential :class:`Model` accepts, result by result. The search is the Wing-Gong algorithm
with Lowe's memoisation of ``(set of operations linearized, model state)``, as in Porcupine
and Knossos; it is bounded by a step budget and a wall-clock budget, so it answers
``UNKNOWN`` rather than running for ever.

A violation is shrunk before it is reported, using only removals that keep it a proof:

- cutting the history at a point where every later operation was called after every
  earlier one returned (the earlier part must already be non-linearizable);
- dropping read-only operations (removing a read from a linearizable history keeps it
  linearizable, so the shrunk history still proves the original wrong).

What this is *not* for: proving a component correct. A history that checks says only
that this one run was linearizable; run many (hypothesis does).
"""

from __future__ import annotations

import abc
import enum
import itertools
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from brummer.contracts import BLOCKING, ThreadSafety, contract
from brummer.errors import BrummerError, ErrorCode

__all__ = [
    "ALL_TYPES",
    "CheckOutcome",
    "CheckResult",
    "EventBusModel",
    "HistoryRecorder",
    "LogStoreModel",
    "Model",
    "Operation",
    "Raised",
    "ResourceModel",
    "Violation",
    "check_history",
    "format_history",
]

_COMPONENT = "testing"


@contract(ThreadSafety.TS)
@attrs.frozen
class Raised:
    """The result of an operation that raised: the error code or the exception type name.

    Thread safety: TS (frozen value object).
    """

    kind: str

    @staticmethod
    @contract(ThreadSafety.TS)
    def of(exc: BaseException) -> Raised:
        """The :class:`Raised` for an exception: ``BrummerError`` by code, others by type.

        Thread safety: TS. Pure.
        """
        if isinstance(exc, BrummerError):
            return Raised(exc.code.value)
        return Raised(type(exc).__name__)

    def __repr__(self) -> str:
        return f"raised {self.kind}"


@contract(ThreadSafety.TS)
@attrs.frozen
class Operation:
    """One completed operation of a concurrent history.

    Thread safety: TS (frozen value object).

    Attributes:
        id: position in recording order (unique within a history).
        client: which thread (or logical client) issued it.
        name: the operation, e.g. ``"add"``.
        args: its arguments, in the form the model expects.
        result: what it returned, in the form the model expects, or a :class:`Raised`.
        call: ``time.perf_counter_ns()`` just before invoking it.
        ret: ``time.perf_counter_ns()`` just after it returned or raised.
    """

    id: int
    client: int
    name: str
    args: tuple[Any, ...]
    result: Any
    call: int
    ret: int


@contract(ThreadSafety.TS)
class HistoryRecorder:
    """Collects the operations several threads perform on a component.

    Thread safety: TS. Every method may be called from any thread; :meth:`operations`
    returns a snapshot.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _ops
        self._ops: list[Operation] = []
        self._ids = itertools.count()

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def record(
        self,
        client: int,
        name: str,
        args: tuple[Any, ...],
        fn: Callable[[], Any],
        observe: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Run ``fn()``, record it as operation ``name(*args)``, and return what it returned.

        Thread safety: TS. ``fn`` runs in the calling thread, outside any lock.

        Args:
            client: the calling client's number.
            name: the operation name the model understands.
            args: the arguments as the model sees them.
            fn: the call to make.
            observe: turns the return value into the recorded result (default: as is).

        Raises:
            Whatever ``fn`` raises, after recording it as :class:`Raised`.
        """
        call = time.perf_counter_ns()
        try:
            value = fn()
        except Exception as exc:
            ret = time.perf_counter_ns()
            self._append(client, name, args, Raised.of(exc), call, ret)
            raise
        ret = time.perf_counter_ns()
        self._append(client, name, args, value if observe is None else observe(value), call, ret)
        return value

    @contract(ThreadSafety.TS)
    def add(
        self, client: int, name: str, args: tuple[Any, ...], result: Any, call: int, ret: int
    ) -> Operation:
        """Record an operation whose times and result the caller measured itself.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT when ``ret < call``.
        """
        if ret < call:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                f"operation {name!r} returns ({ret}) before it is called ({call})",
                hint="take both stamps from time.perf_counter_ns(), call first",
            )
        return self._append(client, name, args, result, call, ret)

    @contract(ThreadSafety.TS)
    def operations(self) -> list[Operation]:
        """A snapshot of the operations recorded so far, in recording order.

        Thread safety: TS.
        """
        with self._lock:
            return list(self._ops)

    def _append(
        self, client: int, name: str, args: tuple[Any, ...], result: Any, call: int, ret: int
    ) -> Operation:
        with self._lock:
            op = Operation(next(self._ids), client, name, args, result, call, ret)
            self._ops.append(op)
            return op

    def __len__(self) -> int:
        with self._lock:
            return len(self._ops)


@contract(ThreadSafety.TS)
class Model(abc.ABC):
    """A sequential specification: an initial state and a step function.

    Thread safety: TS. Implementations must be pure (states are immutable and hashable).
    """

    @abc.abstractmethod
    @contract(ThreadSafety.TS)
    def init(self) -> Hashable:
        """The initial state.

        Thread safety: TS. Pure.
        """

    @abc.abstractmethod
    @contract(ThreadSafety.TS)
    def step(self, state: Any, op: Operation) -> tuple[bool, Hashable]:
        """Whether ``op`` with its recorded result is legal in ``state``, and the next state.

        Thread safety: TS. Pure.
        """

    @contract(ThreadSafety.TS)
    def is_read_only(self, op: Operation) -> bool:
        """Whether ``op`` never changes the state (used to shrink violations soundly).

        Thread safety: TS. Pure. The default says no, which is always safe.
        """
        return False

    @contract(ThreadSafety.TS)
    def obvious_violation(self, ops: Sequence[Operation]) -> tuple[list[Operation], str] | None:
        """A violation visible without searching, as (witness operations, reason), or None.

        Thread safety: TS. Pure. Runs before the search (which is exponential in the worst
        case); the witness must itself be a non-linearizable history. The default finds
        nothing.
        """
        return None

    @contract(ThreadSafety.TS)
    def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]:
        """Split a history into independent sub-histories (P-compositionality).

        Thread safety: TS. Pure. Linearizability is local: a history is linearizable iff
        every part is, so a model may split only where the parts share no state. The
        default keeps the history whole.
        """
        return [list(ops)]

    @contract(ThreadSafety.TS)
    def describe(self, state: Any) -> str:
        """A short readable rendering of a state, for reports.

        Thread safety: TS. Pure.
        """
        text = repr(state)
        return text if len(text) <= 300 else text[:297] + "..."


@contract(ThreadSafety.TS)
class CheckOutcome(enum.Enum):
    """The verdict of :func:`check_history`.

    Thread safety: TS (immutable enum).
    """

    OK = "ok"
    VIOLATION = "violation"
    UNKNOWN = "unknown"


@contract(ThreadSafety.TS)
@attrs.frozen
class Violation:
    """A non-linearizable history, shrunk, with a readable explanation.

    Thread safety: TS (frozen value object).

    Attributes:
        operations: the shrunk history (still not linearizable), by invocation time.
        recorded: how many operations the full history had.
        longest_prefix: the longest legal sequential order the search found in it.
        stuck: the operations none of which could legally come next after that prefix.
        state: the model state after the longest prefix, rendered.
        report: all of the above as text.
    """

    operations: tuple[Operation, ...]
    recorded: int
    longest_prefix: tuple[Operation, ...]
    stuck: tuple[Operation, ...]
    state: str
    report: str


@contract(ThreadSafety.TS)
@attrs.frozen
class CheckResult:
    """What :func:`check_history` found.

    Thread safety: TS (frozen value object).

    Attributes:
        outcome: OK, VIOLATION or UNKNOWN (budget exhausted before an answer).
        linearization: a legal order of every operation when OK (None when the model
            split the history into independent parts, each of which has one).
        violation: the shrunk counter-example when VIOLATION.
        steps: search steps taken (model calls), shrinking excluded.
        elapsed: seconds spent, shrinking included.
    """

    outcome: CheckOutcome
    linearization: tuple[Operation, ...] | None
    violation: Violation | None
    steps: int
    elapsed: float

    @property
    @contract(ThreadSafety.TS)
    def ok(self) -> bool:
        """True when a linearization was found.

        Thread safety: TS.
        """
        return self.outcome is CheckOutcome.OK


@attrs.frozen
class _Search:
    outcome: CheckOutcome
    order: tuple[int, ...]  # a full linearization, or the longest legal prefix found
    stuck: tuple[int, ...]
    state: Any
    steps: int


def _search(model: Model, ops: Sequence[Operation], max_steps: int, deadline: float) -> _Search:
    """Wing-Gong/Lowe search with memoisation over a doubly linked list of call/return entries."""
    n = len(ops)
    if n == 0:
        return _Search(CheckOutcome.OK, (), (), model.init(), 0)
    # Entry 2i is the call of ops[i], 2i+1 its return; calls sort before returns at equal
    # times, so operations stamped at the same instant count as concurrent (permissive).
    events = sorted(
        range(2 * n), key=lambda e: (ops[e >> 1].ret if e & 1 else ops[e >> 1].call, e & 1)
    )
    head = 2 * n
    nxt = [-1] * (2 * n + 1)
    prv = [-1] * (2 * n + 1)
    last = head
    for e in events:
        nxt[last] = e
        prv[e] = last
        last = e
    nxt[last] = -1

    def lift(i: int) -> None:
        for e in (2 * i, 2 * i + 1):
            p, q = prv[e], nxt[e]
            nxt[p] = q
            if q != -1:
                prv[q] = p

    def unlift(i: int) -> None:
        for e in (2 * i + 1, 2 * i):
            p, q = prv[e], nxt[e]
            nxt[p] = e
            if q != -1:
                prv[q] = e

    state: Any = model.init()
    linearized = 0
    stack: list[tuple[int, Any]] = []
    cache: set[tuple[int, Any]] = set()
    best: tuple[int, ...] = ()
    best_state: Any = state
    steps = 0
    node = nxt[head]
    while nxt[head] != -1:
        if node & 1 == 0:
            i = node >> 1
            steps += 1
            if steps >= max_steps or (steps & 1023 == 0 and time.monotonic() > deadline):
                return _Search(CheckOutcome.UNKNOWN, best, (), best_state, steps)
            legal, new_state = model.step(state, ops[i])
            if legal:
                key = (linearized | (1 << i), new_state)
                if key not in cache:
                    cache.add(key)
                    stack.append((i, state))
                    state = new_state
                    linearized |= 1 << i
                    lift(i)
                    if len(stack) > len(best):
                        best = tuple(j for j, _ in stack)
                        best_state = state
                    node = nxt[head]
                    continue
            node = nxt[node]
        else:
            if not stack:
                return _Search(CheckOutcome.VIOLATION, best, _stuck(ops, best), best_state, steps)
            i, state = stack.pop()
            linearized &= ~(1 << i)
            unlift(i)
            node = nxt[2 * i]
    return _Search(CheckOutcome.OK, tuple(j for j, _ in stack), (), state, steps)


def _stuck(ops: Sequence[Operation], prefix: Sequence[int]) -> tuple[int, ...]:
    """The operations that could come next after ``prefix`` by real time (none was legal)."""
    done = set(prefix)
    rest = [i for i in range(len(ops)) if i not in done]
    if not rest:
        return ()
    horizon = min(ops[i].ret for i in rest)
    return tuple(i for i in rest if ops[i].call <= horizon)


def _violates(model: Model, ops: Sequence[Operation], max_steps: int, deadline: float) -> bool:
    return _search(model, ops, max_steps, deadline).outcome is CheckOutcome.VIOLATION


def _shrink(
    model: Model, ops: Sequence[Operation], max_steps: int, deadline: float
) -> list[Operation]:
    ordered = sorted(ops, key=lambda o: (o.call, o.ret))
    # 1. The shortest prefix cut at a quiescent point that still violates (monotone: binary search).
    cuts: list[int] = []
    highest_ret = -1
    for k, op in enumerate(ordered):
        if k and op.call > highest_ret:
            cuts.append(k)
        highest_ret = max(highest_ret, op.ret)
    lo, hi = 0, len(cuts)
    while lo < hi and time.monotonic() < deadline:
        mid = (lo + hi) // 2
        if _violates(model, ordered[: cuts[mid]], max_steps, deadline):
            hi = mid
        else:
            lo = mid + 1
    current = ordered[: cuts[lo]] if lo < len(cuts) else ordered
    # 2. Drop read-only operations while it still violates: whole groups first (halving the
    #    group size when no group can go), so a few needed reads cost O(log n) searches.
    size = max(1, len([o for o in current if model.is_read_only(o)]) // 2)
    while time.monotonic() < deadline:
        reads = [o.id for o in current if model.is_read_only(o)]
        if not reads:
            break
        progressed = False
        for start in range(0, len(reads), size):
            group = set(reads[start : start + size])
            candidate = [o for o in current if o.id not in group]
            if time.monotonic() >= deadline:
                break
            if _violates(model, candidate, max_steps, deadline):
                current = candidate
                progressed = True
        if not progressed:
            if size == 1:
                break
            size //= 2
    return current


def _short(value: Any, width: int = 70) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


@contract(ThreadSafety.TS)
def format_history(ops: Iterable[Operation], *, width: int = 32) -> str:
    """Render operations as a table with a timeline bar per operation, by invocation time.

    Thread safety: TS. Pure.
    """
    ordered = sorted(ops, key=lambda o: (o.call, o.ret))
    if not ordered:
        return "  (no operations)"
    origin = ordered[0].call
    end = max(o.ret for o in ordered)
    span = max(end - origin, 1)
    lines = [f"  {'client':>6} {'start µs':>10} {'end µs':>10}  {'timeline':<{width}}  operation"]
    for op in ordered:
        a = (op.call - origin) * (width - 1) // span
        b = max((op.ret - origin) * (width - 1) // span, a)
        bar = (
            " " * a + "[" + "=" * max(b - a - 1, 0) + ("]" if b > a else "") + " " * (width - b - 1)
        )
        args = ", ".join(_short(x, 40) for x in op.args)
        lines.append(
            f"  {'c' + str(op.client):>6} {(op.call - origin) / 1000:>10.1f} "
            f"{(op.ret - origin) / 1000:>10.1f}  {bar[:width]:<{width}}  "
            f"#{op.id} {op.name}({args}) -> {_short(op.result)}"
        )
    return "\n".join(lines)


_SHOWN = 40  # operations of a violation shown in full; earlier ones are summarised


def _report(
    model: Model,
    ops: Sequence[Operation],
    recorded: int,
    prefix: Sequence[Operation],
    stuck: Sequence[Operation],
    state: Any,
) -> str:
    shown: Sequence[Operation] = ops
    note = ""
    if len(ops) > _SHOWN:
        # Show the operations around where the search got stuck; the model state below
        # summarises everything the legal order had already done.
        horizon = max((o.ret for o in stuck), default=ops[-1].ret)
        upto = [o for o in ops if o.call <= horizon]
        shown = upto[-_SHOWN:]
        note = f"  ({len(ops) - len(shown)} other operations of the history are not shown)\n"
    order = [f"#{o.id} {o.name}" for o in prefix]
    if len(order) > 20:
        order = [f"... {len(order) - 20} earlier", *order[-20:]]
    parts = [
        f"not linearizable: these {len(ops)} operations (shrunk from {recorded} recorded) "
        "have no sequential order that respects real time and the model:",
        note + format_history(shown),
        "longest legal order found: "
        + (" ; ".join(order) if order else "(none: the first operation already fails)"),
        f"model state after it: {model.describe(state)}",
        "none of these may come next: "
        + "; ".join(
            f"#{o.id} {o.name}({', '.join(_short(x, 30) for x in o.args)}) -> {_short(o.result)}"
            for o in stuck
        ),
    ]
    return "\n".join(parts)


@contract(ThreadSafety.TS, timeout=BLOCKING)
def check_history(
    model: Model,
    ops: Sequence[Operation],
    *,
    time_budget: float = 1.0,
    max_steps: int = 2_000_000,
    shrink: bool = True,
) -> CheckResult:
    """Decide whether a history is linearizable with respect to ``model``.

    Thread safety: TS. Pure apart from the time it takes (at most about
    ``time_budget`` for the search plus as much again for shrinking a violation).

    Returns:
        A :class:`CheckResult`: OK with a linearization; VIOLATION with a shrunk,
        readable counter-example; or UNKNOWN when the budget ran out first.

    Raises:
        BrummerError: INVALID_ARGUMENT for a non-positive budget or duplicate operation ids.
    """
    if not time_budget > 0 or max_steps < 1:
        raise BrummerError(
            _COMPONENT,
            ErrorCode.INVALID_ARGUMENT,
            f"time_budget and max_steps must be positive, not {time_budget!r}/{max_steps!r}",
            hint="give the search some time (seconds) and steps",
        )
    if len({o.id for o in ops}) != len(ops):
        raise BrummerError(
            _COMPONENT,
            ErrorCode.INVALID_ARGUMENT,
            "operation ids repeat in the history",
            hint="record each operation once, with a HistoryRecorder",
        )
    started = time.monotonic()
    ops = list(ops)
    deadline = started + time_budget
    obvious = model.obvious_violation(ops)
    if obvious is not None:
        witness, reason = obvious
        ordered = tuple(sorted(witness, key=lambda o: (o.call, o.ret)))
        report = (
            f"not linearizable: {reason} (found without searching, among {len(ops)} "
            f"recorded operations):\n{format_history(ordered)}"
        )
        violation = Violation(ordered, len(ops), (), ordered, model.describe(model.init()), report)
        return CheckResult(CheckOutcome.VIOLATION, None, violation, 0, time.monotonic() - started)
    parts = model.partition(ops) if ops else [ops]
    steps = 0
    orders: list[tuple[Operation, ...]] = []
    for part in parts:
        found = _search(model, part, max_steps, deadline)
        steps += found.steps
        if found.outcome is CheckOutcome.UNKNOWN:
            return CheckResult(CheckOutcome.UNKNOWN, None, None, steps, time.monotonic() - started)
        if found.outcome is CheckOutcome.VIOLATION:
            violation = _explain(model, part, found, len(ops), max_steps, time_budget, shrink)
            return CheckResult(
                CheckOutcome.VIOLATION, None, violation, steps, time.monotonic() - started
            )
        orders.append(tuple(part[i] for i in found.order))
    return CheckResult(
        CheckOutcome.OK,
        orders[0] if len(orders) == 1 else None,
        None,
        steps,
        time.monotonic() - started,
    )


def _explain(
    model: Model,
    ops: Sequence[Operation],
    found: _Search,
    recorded: int,
    max_steps: int,
    time_budget: float,
    shrink: bool,
) -> Violation:
    small: Sequence[Operation] = ops
    again = found
    if shrink:
        deadline = time.monotonic() + time_budget
        small = _shrink(model, ops, max_steps, deadline)
        for part in model.partition(small):  # a smaller independent part may carry the fault
            if _violates(model, part, max_steps, deadline):
                small = part
                break
        again = _search(model, small, max_steps, time.monotonic() + time_budget)
        if again.outcome is not CheckOutcome.VIOLATION:  # budget ran out while shrinking
            small, again = ops, found
    prefix = tuple(small[i] for i in again.order)
    stuck = tuple(small[i] for i in again.stuck)
    ordered = tuple(sorted(small, key=lambda o: (o.call, o.ret)))
    return Violation(
        ordered,
        recorded,
        prefix,
        stuck,
        model.describe(again.state),
        _report(model, ordered, recorded, prefix, stuck, again.state),
    )


# ---------------------------------------------------------------------------------------
# Models


def _entries_for(
    entries: tuple[tuple[str, str, int], ...], pid: str
) -> tuple[tuple[str, int], ...]:
    return tuple((content, seq) for p, content, seq in entries if p == pid)


@contract(ThreadSafety.TS)
class LogStoreModel(Model):
    """Sequential LogStore: a global ring of ``capacity`` entries, oldest evicted first.

    Thread safety: TS (pure).

    State: ``(entries, last_seq)`` with entries ``(process_id, content, seq)`` oldest
    first and ``last_seq`` the highest seq handed out per process (never reset: seq
    increases strictly within a process for the life of the store).

    Operations (args → result):
        ``add(pid, content)`` → ``(pid, content, seq)``;
        ``add_batch(((pid, content), ...))`` → tuple of ``(pid, content, seq)`` or Raised
        (all or nothing); ``get_by_process(pid)`` → tuple of ``(content, seq)``;
        ``get_all()`` → tuple of ``(pid, content, seq)``;
        ``search(text, pid_or_None, limit)`` → tuple of ``(pid, content, seq)``
        (case-insensitive substring, newest ``limit`` when ``limit > 0``, oldest first);
        ``clear()``, ``clear_for_process(pid)`` → None.
    """

    READ_ONLY = frozenset({"get_by_process", "get_all", "search"})

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                f"capacity must be ≥ 1, not {capacity}",
                hint="pass the store's max_entries",
            )
        self.capacity = capacity

    @contract(ThreadSafety.TS)
    def init(self) -> Hashable:
        """Empty store.

        Thread safety: TS. Pure.
        """
        return ((), ())

    def _append(
        self,
        entries: tuple[tuple[str, str, int], ...],
        last: dict[str, int],
        new: Sequence[tuple[str, str, int]],
    ) -> tuple[bool, tuple[tuple[str, str, int], ...]]:
        for pid, _content, seq in new:
            if seq <= last.get(pid, -(2**62)):
                return False, entries
            last[pid] = seq
        return True, (entries + tuple(new))[-self.capacity :]

    @contract(ThreadSafety.TS)
    def step(self, state: Any, op: Operation) -> tuple[bool, Hashable]:
        """Apply one LogStore operation (see the class docstring).

        Thread safety: TS. Pure.
        """
        entries, last_items = state
        name, args, result = op.name, op.args, op.result
        if name == "add":
            if isinstance(result, Raised):
                return True, state
            pid, content = args
            if result[0] != pid or result[1] != content:
                return False, state
            last = dict(last_items)
            legal, new_entries = self._append(entries, last, [result])
            return legal, (new_entries, tuple(sorted(last.items())))
        if name == "add_batch":
            if isinstance(result, Raised):
                return True, state
            wanted = [tuple(x) for x in args[0]]
            if len(result) != len(wanted) or any(
                r[0] != w[0] or r[1] != w[1] for r, w in zip(result, wanted, strict=True)
            ):
                return False, state
            last = dict(last_items)
            legal, new_entries = self._append(entries, last, list(result))
            return legal, (new_entries, tuple(sorted(last.items())))
        if name == "get_by_process":
            return result == _entries_for(entries, args[0]), state
        if name == "get_all":
            return result == entries, state
        if name == "search":
            text, pid, limit = args
            needle = text.lower()
            found = tuple(
                e for e in entries if needle in e[1].lower() and (pid is None or e[0] == pid)
            )
            if limit > 0:
                found = found[-limit:]
            return result == found, state
        if name == "clear":
            return result is None, ((), last_items)
        if name == "clear_for_process":
            pid = args[0]
            return result is None, (tuple(e for e in entries if e[0] != pid), last_items)
        return False, state

    @contract(ThreadSafety.TS)
    def obvious_violation(self, ops: Sequence[Operation]) -> tuple[list[Operation], str] | None:
        """Two adds given the same seq of one process, or a read showing a line nobody added.

        Thread safety: TS. Pure. Either alone is a non-linearizable history: seq must
        increase strictly, and a read can only show lines whose add began before it ended.
        """
        added: dict[tuple[str, str, int], Operation] = {}
        by_seq: dict[tuple[str, int], Operation] = {}
        for op in ops:
            if isinstance(op.result, Raised) or op.name not in ("add", "add_batch"):
                continue
            for pid, content, seq in [op.result] if op.name == "add" else op.result:
                other = by_seq.get((pid, seq))
                if other is not None and other.id != op.id:
                    return [other, op], f"two adds were both given seq {seq} of process {pid!r}"
                by_seq[(pid, seq)] = op
                added[(pid, content, seq)] = op
        for op in ops:
            if op.name not in self.READ_ONLY or isinstance(op.result, Raised):
                continue
            if op.name == "get_by_process":
                shown = [(op.args[0], content, seq) for content, seq in op.result]
            else:
                shown = list(op.result)
            for entry in shown:
                source = added.get(entry)
                if source is None or source.call > op.ret:
                    return [op], f"a read returned {entry!r}, which no add had begun to store"
        return None

    @contract(ThreadSafety.TS)
    def partition(self, ops: Sequence[Operation]) -> list[list[Operation]]:
        """Split by process when no operation spans processes and nothing is evicted.

        Thread safety: TS. Pure. Without eviction and without clear/get_all/search over
        all processes/mixed batches, the processes share no state.
        """
        added = 0
        by_pid: dict[str, list[Operation]] = {}
        for op in ops:
            if op.name in ("add", "get_by_process", "clear_for_process"):
                pid = op.args[0]
            elif op.name == "search" and op.args[1] is not None:
                pid = op.args[1]
            elif op.name == "add_batch" and len({p for p, _ in op.args[0]}) == 1:
                pid = op.args[0][0][0]
            else:
                return [list(ops)]
            if op.name == "add":
                added += 1
            elif op.name == "add_batch":
                added += len(op.args[0])
            by_pid.setdefault(pid, []).append(op)
        if added > self.capacity:
            return [list(ops)]
        return list(by_pid.values())

    @contract(ThreadSafety.TS)
    def is_read_only(self, op: Operation) -> bool:
        """Reads (get_by_process, get_all, search) never change the store.

        Thread safety: TS. Pure.
        """
        return op.name in self.READ_ONLY

    @contract(ThreadSafety.TS)
    def describe(self, state: Any) -> str:
        """The retained entries as ``pid:content#seq``.

        Thread safety: TS. Pure.
        """
        entries, last = state
        shown = ", ".join(f"{p}:{c!r}#{s}" for p, c, s in entries[-12:])
        more = f"... {len(entries) - 12} older, " if len(entries) > 12 else ""
        return f"entries [{more}{shown}] last seq {dict(last)}"


@contract(ThreadSafety.TS)
class ResourceModel(Model):
    """Sequential ResourceManager: per-kind counters and the set of outstanding handles.

    Thread safety: TS (pure).

    Operations (args → result):
        ``acquire(kind, amount)`` → handle id, or Raised("TIMEOUT") (always legal: a FIFO
        manager may make a waiter time out even while units are free), or
        Raised("INVALID_ARGUMENT") (legal only when ``amount`` is outside 1..limit);
        ``release(handle_id, kind, amount)`` → None when outstanding, else
        Raised("INVALID_STATE"); ``in_use(kind)`` → the units held.
    """

    def __init__(self, limits: Mapping[Any, int]) -> None:
        self.limits = dict(limits)
        self._kinds = sorted(self.limits, key=str)

    @contract(ThreadSafety.TS)
    def init(self) -> Hashable:
        """Nothing held.

        Thread safety: TS. Pure.
        """
        return (tuple(0 for _ in self._kinds), frozenset())

    @contract(ThreadSafety.TS)
    def step(self, state: Any, op: Operation) -> tuple[bool, Hashable]:
        """Apply one ResourceManager operation (see the class docstring).

        Thread safety: TS. Pure.
        """
        in_use, handles = state
        if op.name == "acquire":
            kind, amount = op.args
            k = self._kinds.index(kind)
            limit = self.limits[kind]
            if isinstance(op.result, Raised):
                if op.result.kind == ErrorCode.INVALID_ARGUMENT.value:
                    return not 1 <= amount <= limit, state
                return op.result.kind == ErrorCode.TIMEOUT.value and 1 <= amount <= limit, state
            if op.result in handles or in_use[k] + amount > limit or not 1 <= amount <= limit:
                return False, state
            new_use = (*in_use[:k], in_use[k] + amount, *in_use[k + 1 :])
            return True, (new_use, handles | {op.result})
        if op.name == "release":
            handle, kind, amount = op.args
            if isinstance(op.result, Raised):
                return (
                    op.result.kind == ErrorCode.INVALID_STATE.value and handle not in handles,
                    state,
                )
            if handle not in handles:
                return False, state
            k = self._kinds.index(kind)
            new_use = (*in_use[:k], in_use[k] - amount, *in_use[k + 1 :])
            return True, (new_use, handles - {handle})
        if op.name == "in_use":
            return op.result == in_use[self._kinds.index(op.args[0])], state
        return False, state

    @contract(ThreadSafety.TS)
    def is_read_only(self, op: Operation) -> bool:
        """``in_use`` reads only.

        Thread safety: TS. Pure.
        """
        return op.name == "in_use"

    @contract(ThreadSafety.TS)
    def describe(self, state: Any) -> str:
        """Units in use per kind and the outstanding handles.

        Thread safety: TS. Pure.
        """
        in_use, handles = state
        use = {str(k): u for k, u in zip(self._kinds, in_use, strict=True)}
        return f"in use {use}, outstanding handles {sorted(map(str, handles))}"


ALL_TYPES = "*"


@contract(ThreadSafety.TS)
class EventBusModel(Model):
    """Subscription semantics: a handler sees exactly the events published while subscribed.

    Thread safety: TS (pure).

    State: the frozenset of ``(handler, event_type)`` subscribed now (``"*"`` for all
    types). Delivery is asynchronous, so the recorded result of a publish is what became
    known after the bus was drained: the frozenset of handlers that received that event.

    Operations (args → result):
        ``subscribe(handler, event_type)`` → None; ``unsubscribe(handler)`` → None (or
        Raised: then legal only when not subscribed); ``publish(event_key, event_type)`` →
        frozenset of handlers that got it, or Raised (not accepted: nobody may get it).
    """

    @contract(ThreadSafety.TS)
    def init(self) -> Hashable:
        """Nobody subscribed.

        Thread safety: TS. Pure.
        """
        return frozenset()

    @contract(ThreadSafety.TS)
    def step(self, state: Any, op: Operation) -> tuple[bool, Hashable]:
        """Apply one subscription or publish (see the class docstring).

        Thread safety: TS. Pure.
        """
        if op.name == "subscribe":
            handler, event_type = op.args
            if isinstance(op.result, Raised):
                return True, state
            return True, state | {(handler, event_type)}
        if op.name == "unsubscribe":
            handler = op.args[0]
            subscribed = {s for s in state if s[0] == handler}
            if isinstance(op.result, Raised):
                return not subscribed, state
            return bool(subscribed), state - subscribed
        if op.name == "publish":
            _key, event_type = op.args
            if isinstance(op.result, Raised):
                return True, state
            expected = frozenset(h for h, t in state if t in (ALL_TYPES, event_type))
            return op.result == expected, state
        return False, state

    @contract(ThreadSafety.TS)
    def is_read_only(self, op: Operation) -> bool:
        """Publishing never changes who is subscribed.

        Thread safety: TS. Pure.
        """
        return op.name == "publish"

    @contract(ThreadSafety.TS)
    def describe(self, state: Any) -> str:
        """Who is subscribed to what.

        Thread safety: TS. Pure.
        """
        return "subscribed: " + (", ".join(f"{h}→{t}" for h, t in sorted(state)) or "nobody")

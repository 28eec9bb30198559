"""Cancellation and progress: :class:`Context`, :class:`ContextualOperation`, :class:`OperationProgress`.

A :class:`Context` carries a cancellation flag and an optional deadline across threads, in
the spirit of Go's ``context.Context``. Every long operation in brummer accepts an optional
``ctx`` and honours it: it checks :meth:`Context.raise_if_done` between steps, or blocks in
:meth:`Context.wait` instead of sleeping.

No thread or timer is created per context. Cancellation is a flag (plus a
:class:`threading.Event`, made only once somebody waits) pushed from parent to children
when ``cancel()`` is called; the deadline is a
``time.monotonic()`` value that :meth:`Context.wait`, :meth:`Context.remaining` and
:attr:`Context.done` compare against the clock, so a deadline passing costs nothing until
somebody looks.

Thread safety: TS. Contexts are shared freely between threads.
"""

from __future__ import annotations

import abc
import threading
import time
import weakref
from datetime import datetime

import attrs

from brummer.contracts import BLOCKING, Cleanup, ThreadSafety, check_timeout, contract
from brummer.errors import BrummerError, ErrorCode

__all__ = ["Context", "ContextualOperation", "OperationProgress"]

_COMPONENT = "operations"


@contract(
    ThreadSafety.TS,
    cleanup=Cleanup.AUTOMATIC,
    guarantees="a child is done when its parent is; cancel() is idempotent; no thread per context",
)
class Context:
    """Cancellation plus an optional deadline, shareable across threads.

    Thread safety: TS. Every method and property may be used from any thread.

    Build contexts with :meth:`background` (a new root, never done unless cancelled),
    :meth:`with_timeout` and :meth:`with_cancel` (children). A child is done when its
    parent is: cancelling a parent cancels every child created from it, and a child's
    deadline is never later than its parent's. Cancelling a child leaves the parent alone.

    Guarantees: the parent holds its children only weakly, so short-lived children of a
    long-lived context do not accumulate; a child holds its parent strongly, so a
    grandchild still hears a cancel when nobody keeps the context between them;
    ``deadline`` is on the ``time.monotonic()`` clock.
    """

    __slots__ = (
        "__weakref__",
        "_cancelled_at",
        "_children",
        "_deadline",
        "_event",
        "_lock",
        "_parent",
    )

    def __init__(self, *, _deadline: float | None = None, _parent: Context | None = None) -> None:
        self._deadline = _deadline
        self._parent = _parent  # only keeps the chain to the root alive; never read
        self._lock = threading.Lock()  # guards the three fields below
        self._cancelled_at: float | None = None  # set once, by the first cancel
        self._event: threading.Event | None = None  # made by the first wait(); set on cancel
        self._children: weakref.WeakSet[Context] | None = None  # made by the first child

    @classmethod
    @contract(ThreadSafety.TS)
    def background(cls) -> Context:
        """A new root context: no deadline, done only when cancelled.

        Thread safety: TS. Each call returns a fresh, independent context.
        """
        return cls()

    @contract(ThreadSafety.TS)
    def with_timeout(self, seconds: float) -> Context:
        """A child that is done ``seconds`` from now, or when this context is.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT for a negative, NaN, infinite or None ``seconds``.
        """
        if seconds is None:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                "with_timeout() needs a number of seconds, not None",
                hint="use with_cancel() for a child without a deadline of its own",
            )
        checked = check_timeout(_COMPONENT, seconds, name="seconds")
        assert checked is not None  # None was refused above
        deadline = time.monotonic() + checked
        if self._deadline is not None:
            deadline = min(deadline, self._deadline)
        return self._child(deadline)

    @contract(ThreadSafety.TS)
    def with_cancel(self) -> Context:
        """A child that can be cancelled on its own and is done when this context is.

        Thread safety: TS.
        """
        return self._child(self._deadline)

    def _child(self, deadline: float | None) -> Context:
        child = Context(_deadline=deadline, _parent=self)
        with self._lock:
            cancelled_at = self._cancelled_at
            if cancelled_at is None:
                if self._children is None:
                    self._children = weakref.WeakSet()
                self._children.add(child)
        if cancelled_at is not None:
            child._cancel(cancelled_at)
        return child

    @contract(ThreadSafety.TS, guarantees="idempotent; cancels every child")
    def cancel(self) -> None:
        """Cancel this context and all of its children. Calling it again does nothing.

        Thread safety: TS.
        """
        self._cancel(time.monotonic())

    def _cancel(self, when: float) -> None:
        pending = [self]  # a loop, not recursion: chains may be deeper than the stack
        while pending:
            ctx = pending.pop()
            with ctx._lock:
                if ctx._cancelled_at is not None:
                    continue
                ctx._cancelled_at = when
                children = list(ctx._children) if ctx._children is not None else []
                ctx._children = None
                event = ctx._event
            if event is not None:
                event.set()
            pending.extend(children)

    @property
    @contract(ThreadSafety.TS)
    def cancelled(self) -> bool:
        """True once ``cancel()`` was called on this context or on an ancestor.

        Thread safety: TS.
        """
        return self._cancelled_at is not None

    @property
    @contract(ThreadSafety.TS)
    def deadline(self) -> float | None:
        """When this context times out, on the ``time.monotonic()`` clock; None: never.

        Thread safety: TS (immutable after construction).
        """
        return self._deadline

    @property
    @contract(ThreadSafety.TS)
    def done(self) -> bool:
        """True when cancelled or past the deadline.

        Thread safety: TS.
        """
        return self._cancelled_at is not None or (
            self._deadline is not None and time.monotonic() >= self._deadline
        )

    @contract(ThreadSafety.TS)
    def remaining(self) -> float | None:
        """Seconds left until the deadline (0.0 once passed or cancelled); None: no deadline.

        Thread safety: TS.
        """
        if self._cancelled_at is not None:
            return 0.0
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def wait(self, timeout: float | None = None) -> bool:
        """Block until the context is done or ``timeout`` passes; return whether it is done.

        Thread safety: TS. Use it instead of ``time.sleep`` in loops that must stop promptly.

        Raises:
            BrummerError: INVALID_ARGUMENT for a negative or NaN timeout.
        """
        timeout = check_timeout(_COMPONENT, timeout)
        now = time.monotonic()
        limit = None if timeout is None else now + timeout
        if self._deadline is not None:
            limit = self._deadline if limit is None else min(limit, self._deadline)
        with self._lock:
            if self._cancelled_at is not None:
                return True
            if self._event is None:
                self._event = threading.Event()  # made under the lock: cancel() cannot miss it
            event = self._event
        while True:
            if event.is_set():
                return True
            if self._deadline is not None and now >= self._deadline:
                return True
            if limit is None:
                event.wait()
            else:
                left = limit - now
                if left <= 0:
                    return False
                event.wait(left)
            now = time.monotonic()

    @contract(ThreadSafety.TS)
    def raise_if_done(self) -> None:
        """Raise if the context is done; return quietly otherwise.

        Thread safety: TS.

        Raises:
            BrummerError: TIMEOUT when the deadline passed first; INVALID_STATE when the
                context (or an ancestor) was cancelled before its deadline.
        """
        cancelled_at = self._cancelled_at
        deadline = self._deadline
        if cancelled_at is not None and (deadline is None or cancelled_at < deadline):
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_STATE,
                "the operation was cancelled",
                hint="stop the work and return; start again with a fresh context if it is still wanted",
                temporary=False,
            )
        if deadline is not None and time.monotonic() >= deadline:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.TIMEOUT,
                "the operation ran past its deadline",
                hint="give the context a longer timeout, or make the work smaller",
                context={"deadline": deadline},
            )

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else ("timed out" if self.done else "active")
        return f"<Context {state} deadline={self._deadline}>"


@contract(ThreadSafety.TS)
@attrs.frozen
class OperationProgress:
    """How far a :class:`ContextualOperation` has come: a snapshot.

    Thread safety: TS (frozen value object).

    Attributes:
        completed: units of work done (≥ 0).
        total: units of work in all (≥ 0; 0 when unknown).
        current_phase: a short human description of what runs now.
        start_time: when the operation started, timezone-aware UTC.
    """

    completed: int = attrs.field(validator=attrs.validators.ge(0))
    total: int = attrs.field(validator=attrs.validators.ge(0))
    current_phase: str
    start_time: datetime

    @property
    @contract(ThreadSafety.TS)
    def fraction(self) -> float | None:
        """``completed / total`` clamped to [0, 1], or None when the total is unknown (0).

        Thread safety: TS.
        """
        if self.total == 0:
            return None
        return min(1.0, self.completed / self.total)


@contract(ThreadSafety.TS, cleanup=Cleanup.MANUAL)
class ContextualOperation(abc.ABC):
    """A long operation that honours a :class:`Context`, can be cancelled and reports progress.

    Thread safety: TS. ``cancel()`` and ``progress()`` are called from other threads while
    ``execute()`` runs; implementations must make them safe to do so.

    Contract for implementers: ``execute`` checks ``ctx.raise_if_done()`` (or waits with
    ``ctx.wait``) between steps, stops promptly once the context is done or ``cancel()`` was
    called, and releases whatever it acquired before returning or raising.
    """

    @abc.abstractmethod
    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def execute(self, ctx: Context) -> None:
        """Run the operation until finished, cancelled or past the context's deadline.

        Thread safety: TS. Called once, from one thread.

        Raises:
            BrummerError: TIMEOUT or INVALID_STATE (cancelled) as ``ctx.raise_if_done`` does.
        """

    @abc.abstractmethod
    @contract(ThreadSafety.TS)
    def cancel(self) -> None:
        """Ask a running ``execute`` to stop; idempotent, returns at once.

        Thread safety: TS.
        """

    @abc.abstractmethod
    @contract(ThreadSafety.TS)
    def progress(self) -> OperationProgress:
        """A snapshot of how far the operation has come.

        Thread safety: TS.
        """

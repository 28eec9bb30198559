"""Resource budgets: :class:`ResourceManager` hands out :class:`ResourceHandle` s within limits.

Each :class:`ResourceType` has a limit (defaults from the original design's budgets:
``cpu_count * 8`` threads, 1000 files, 100 queues/connections, 512 MB of memory counted in
MB); in use never exceeds it.
``acquire`` waits until the amount fits, first come first served: a large request at the
head of the line is not overtaken by small ones behind it, so it cannot starve. A handle
is released exactly once, by ``release`` or by leaving its ``with`` block.

Thread safety: TS. Every public method may be called from any thread.
"""

from __future__ import annotations

import enum
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Any

import attrs

from brummer.contracts import BLOCKING, Cleanup, ThreadSafety, check_timeout, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.operations import Context

__all__ = [
    "DEFAULT_LIMITS",
    "ResourceHandle",
    "ResourceManager",
    "ResourceMetrics",
    "ResourceType",
]

_COMPONENT = "resources"
_CTX_POLL = 0.02  # seconds between context checks while waiting with a ctx


@contract(ThreadSafety.TS)
class ResourceType(str, enum.Enum):
    """The kinds of resource a :class:`ResourceManager` budgets.

    Thread safety: TS (immutable enum).

    THREADS and FILES count threads and open files; QUEUES counts queues and connections;
    MEMORY counts megabytes.
    """

    THREADS = "threads"
    MEMORY = "memory"
    QUEUES = "queues"
    FILES = "files"


DEFAULT_LIMITS: Mapping[ResourceType, int] = MappingProxyType(
    {
        ResourceType.THREADS: (os.cpu_count() or 1) * 8,
        ResourceType.MEMORY: 512,
        ResourceType.QUEUES: 100,
        ResourceType.FILES: 1000,
    }
)
"""Limits used for every kind not given to :class:`ResourceManager` (MEMORY in MB)."""


def _frozen_map(value: Mapping[ResourceType, int]) -> Mapping[ResourceType, int]:
    return MappingProxyType(dict(value))


@contract(ThreadSafety.TS)
@attrs.frozen
class ResourceMetrics:
    """A snapshot of a :class:`ResourceManager`: per kind, what is free, used, peak, waiting.

    Thread safety: TS (frozen value object; the mappings are read-only copies).

    Attributes:
        available: limit minus in use.
        in_use: amount held by unreleased handles.
        peak: the largest ``in_use`` seen.
        waiters: threads waiting in ``acquire``.
        limits: the configured limits.
    """

    available: Mapping[ResourceType, int] = attrs.field(converter=_frozen_map)
    in_use: Mapping[ResourceType, int] = attrs.field(converter=_frozen_map)
    peak: Mapping[ResourceType, int] = attrs.field(converter=_frozen_map)
    waiters: Mapping[ResourceType, int] = attrs.field(converter=_frozen_map)
    limits: Mapping[ResourceType, int] = attrs.field(converter=_frozen_map)


@contract(ThreadSafety.TS, cleanup=Cleanup.RAII)
@attrs.frozen
class ResourceHandle:
    """Proof of an acquired amount of one resource; release it once.

    Thread safety: TS (immutable; releasing is done by the manager, which is TS).

    Use it as a context manager: ``with manager.acquire(ResourceType.FILES) as handle:``
    releases on exit (unless it was already released explicitly).

    Attributes:
        id: unique within its manager.
        kind: the resource type.
        amount: how much is held.
        acquired: when it was granted (UTC).
    """

    id: str
    kind: ResourceType
    amount: int
    acquired: datetime
    _manager: ResourceManager = attrs.field(eq=False, repr=False)

    @contract(ThreadSafety.TS)
    def release(self) -> None:
        """Give the amount back to the manager that granted it.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_STATE when already released.
        """
        self._manager.release(self)

    @property
    @contract(ThreadSafety.TS)
    def released(self) -> bool:
        """Whether this handle was released already.

        Thread safety: TS.
        """
        return not self._manager._holds(self)

    def __enter__(self) -> ResourceHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._manager._release_if_held(self)


class _Ticket:
    """One waiting acquire; granted (or abandoned) under the manager's lock."""

    __slots__ = ("amount", "cond", "granted")

    def __init__(self, amount: int, lock: threading.Lock) -> None:
        self.amount = amount
        self.granted = False
        self.cond = threading.Condition(lock)


@contract(
    ThreadSafety.TS,
    cleanup=Cleanup.MANUAL,
    guarantees="in_use never exceeds the limit; waiters are served in arrival order",
)
class ResourceManager:
    """Per-kind resource budgets with blocking, first-come-first-served acquisition.

    Thread safety: TS. Every method may be called from any thread.

    Args:
        limits: limit per kind; kinds not given use :data:`DEFAULT_LIMITS`.

    Raises:
        BrummerError: INVALID_ARGUMENT for limits that are not a mapping, an unknown kind
            or a limit that is not an int ≥ 1.

    Guarantees: for each kind, the sum of unreleased handles never exceeds the limit;
    waiting requests are granted strictly in arrival order (a request that does not fit
    blocks those behind it, so big requests are not starved); a handle is released once.
    """

    def __init__(self, limits: Mapping[ResourceType, int] | None = None) -> None:
        if limits is not None and not isinstance(limits, Mapping):
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                f"limits must be a mapping of ResourceType to int, not {type(limits).__name__}",
                hint="pass e.g. {ResourceType.FILES: 100}, or None for the defaults",
            )
        merged = dict(DEFAULT_LIMITS)
        for key, value in (limits or {}).items():
            kind = _kind(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.INVALID_ARGUMENT,
                    f"limit for {kind.value} must be an int ≥ 1, not {value!r}",
                    hint="give each resource type a positive whole number",
                )
            merged[kind] = value
        self._limits: Mapping[ResourceType, int] = MappingProxyType(merged)
        self._lock = threading.Lock()  # guards every field below
        self._in_use = dict.fromkeys(ResourceType, 0)
        self._peak = dict.fromkeys(ResourceType, 0)
        self._queues: dict[ResourceType, deque[_Ticket]] = {k: deque() for k in ResourceType}
        self._held: dict[str, ResourceHandle] = {}
        self._ids = itertools.count(1)

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def acquire(
        self,
        kind: ResourceType,
        amount: int = 1,
        *,
        timeout: float | None = None,
        ctx: Context | None = None,
    ) -> ResourceHandle:
        """Wait until ``amount`` of ``kind`` is free (in arrival order), then hold it.

        Thread safety: TS.

        Args:
            kind: which resource.
            amount: how much (1 ≤ amount ≤ the limit).
            timeout: longest wait in seconds; None waits without limit; 0 does not wait.
            ctx: optional context; the wait ends when it is done.

        Raises:
            BrummerError: TIMEOUT when not granted in time (or the ctx's deadline passed);
                INVALID_STATE when ctx was cancelled; INVALID_ARGUMENT for an unknown kind,
                an amount below 1 or above the limit, or a bad timeout.
        """
        kind = _kind(kind)
        limit = self._limits[kind]
        if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= limit:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                f"cannot acquire {amount!r} {kind.value}: the amount must be 1..{limit}",
                hint=f"ask for at most the limit of {limit}, or raise the limit for {kind.value}",
                context={"kind": kind.value, "amount": amount, "limit": limit},
            )
        timeout = check_timeout(_COMPONENT, timeout)
        if ctx is not None:
            ctx.raise_if_done()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            queue = self._queues[kind]
            if not queue and self._in_use[kind] + amount <= limit:
                self._take(kind, amount)
                return self._handle(kind, amount)
            ticket = _Ticket(amount, self._lock)
            queue.append(ticket)
            try:
                while not ticket.granted:
                    wait = None if deadline is None else deadline - time.monotonic()
                    if ctx is not None:
                        left = ctx.remaining()
                        slice_ = _CTX_POLL if left is None else min(_CTX_POLL, left)
                        wait = slice_ if wait is None else min(wait, slice_)
                        if ctx.done:
                            break
                    if wait is not None and wait <= 0:
                        break
                    ticket.cond.wait(wait)
            finally:
                if not ticket.granted:
                    queue.remove(ticket)
                    self._grant(kind)  # it may have been the head blocking smaller ones
            if ticket.granted:
                return self._handle(kind, amount)
        if ctx is not None:
            ctx.raise_if_done()
        raise BrummerError(
            _COMPONENT,
            ErrorCode.TIMEOUT,
            f"{amount} {kind.value} not available within {timeout} s "
            f"({self._in_use[kind]} of {limit} in use)",
            hint="release handles you no longer need, wait longer, or raise the limit",
            context={"kind": kind.value, "amount": amount, "limit": limit, "timeout": timeout},
        )

    @contract(ThreadSafety.TS)
    def release(self, handle: ResourceHandle) -> None:
        """Give a handle's amount back and wake the waiters it lets through.

        Thread safety: TS. Non-blocking.

        Raises:
            BrummerError: INVALID_STATE when the handle was released already;
                INVALID_ARGUMENT when it is not a handle of this manager (or an altered copy).
        """
        if not isinstance(handle, ResourceHandle) or handle._manager is not self:
            raise _foreign(handle)
        with self._lock:
            held = self._held.get(handle.id)
            if held is not None and held != handle:  # same id, other amount/kind: forged
                raise _foreign(handle)
            if self._held.pop(handle.id, None) is None:
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.INVALID_STATE,
                    f"handle {handle.id} ({handle.amount} {handle.kind.value}) was already released",
                    hint="release each handle once; use it as a context manager to make that automatic",
                    temporary=False,
                )
            self._in_use[handle.kind] -= handle.amount
            self._grant(handle.kind)

    @contract(ThreadSafety.TS)
    def metrics(self) -> ResourceMetrics:
        """A consistent snapshot of every kind: available, in use, peak, waiters, limits.

        Thread safety: TS. Non-blocking (one short lock).
        """
        with self._lock:
            in_use = dict(self._in_use)
            peak = dict(self._peak)
            waiters = {k: len(q) for k, q in self._queues.items()}
        return ResourceMetrics(
            available={k: self._limits[k] - in_use[k] for k in ResourceType},
            in_use=in_use,
            peak=peak,
            waiters=waiters,
            limits=self._limits,
        )

    @property
    @contract(ThreadSafety.TS)
    def limits(self) -> Mapping[ResourceType, int]:
        """The limit of every kind (read-only).

        Thread safety: TS (immutable).
        """
        return self._limits

    def _take(self, kind: ResourceType, amount: int) -> None:
        used = self._in_use[kind] + amount
        self._in_use[kind] = used
        self._peak[kind] = max(self._peak[kind], used)

    def _grant(self, kind: ResourceType) -> None:
        """Grant waiting tickets in arrival order while the head fits; lock held."""
        queue = self._queues[kind]
        limit = self._limits[kind]
        while queue and self._in_use[kind] + queue[0].amount <= limit:
            ticket = queue.popleft()
            self._take(kind, ticket.amount)
            ticket.granted = True
            ticket.cond.notify()

    def _handle(self, kind: ResourceType, amount: int) -> ResourceHandle:
        """Record a granted amount as a handle; lock held."""
        handle = ResourceHandle(
            f"{kind.value}-{next(self._ids)}", kind, amount, datetime.now(UTC), self
        )
        self._held[handle.id] = handle
        return handle

    def _holds(self, handle: ResourceHandle) -> bool:
        with self._lock:
            return self._held.get(handle.id) == handle

    def _release_if_held(self, handle: ResourceHandle) -> None:
        if not self._holds(handle):
            return
        try:
            self.release(handle)
        except BrummerError as exc:
            if exc.code is not ErrorCode.INVALID_STATE:  # released meanwhile by another thread
                raise

    def __repr__(self) -> str:
        return f"<ResourceManager in_use={dict(self._in_use)}>"


def _foreign(handle: object) -> BrummerError:
    return BrummerError(
        _COMPONENT,
        ErrorCode.INVALID_ARGUMENT,
        f"{handle!r} was not granted by this ResourceManager",
        hint="release a handle with the manager that acquired it, unaltered",
    )


def _kind(value: Any) -> ResourceType:
    if type(value) is ResourceType:
        return value
    try:
        return ResourceType(value)
    except ValueError:
        raise BrummerError(
            _COMPONENT,
            ErrorCode.INVALID_ARGUMENT,
            f"unknown resource type {value!r}",
            hint="use ResourceType.THREADS, MEMORY, QUEUES or FILES",
        ) from None

"""The machine-readable contract marks, kept free of imports so every module can use them.

``brummer.contracts`` re-exports everything here; import from there.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

__all__ = [
    "BLOCKING",
    "NON_BLOCKING",
    "Cleanup",
    "Contract",
    "LockRequirement",
    "ThreadSafety",
    "TimeoutBehaviour",
    "contract",
    "contract_of",
]

_T = TypeVar("_T")
CONTRACT_ATTRIBUTE = "__brummer_contract__"


def _self_contract(safety: ThreadSafety) -> Callable[[_T], _T]:
    def mark(obj: _T) -> _T:
        setattr(obj, CONTRACT_ATTRIBUTE, Contract(safety))
        return obj

    return mark


class ThreadSafety(enum.Enum):
    """How a class or method may be used from several threads.

    Thread safety: TS (immutable enum).

    TS: any method from any thread at any time. RS: reads from many threads at once,
    writes exclusive (a reader-writer lock). ST: one thread only; a second thread is refused.
    """

    TS = "TS"
    RS = "RS"
    ST = "ST"


class LockRequirement(enum.Enum):
    """Which lock a caller must hold (NONE: the component locks for itself).

    Thread safety: TS (immutable enum).
    """

    NONE = "NONE"
    READ = "READ"
    WRITE = "WRITE"
    CUSTOM = "CUSTOM"


class Cleanup(enum.Enum):
    """Who releases what an object holds.

    Thread safety: TS (immutable enum).

    AUTOMATIC: the object cleans up itself (garbage collection, daemon threads end).
    MANUAL: the caller must call ``stop()``/``close()``/``cleanup()``.
    RAII: use it as a context manager; leaving the ``with`` block releases it.
    """

    AUTOMATIC = "AUTOMATIC"
    MANUAL = "MANUAL"
    RAII = "RAII"


class TimeoutBehaviour(enum.Enum):
    """Sentinels for a contract's blocking behaviour when it is not a number of seconds.

    Thread safety: TS (immutable enum).
    """

    BLOCKING = "BLOCKING"
    NON_BLOCKING = "NON_BLOCKING"


BLOCKING = TimeoutBehaviour.BLOCKING
NON_BLOCKING = TimeoutBehaviour.NON_BLOCKING


def _check_timeout(_: object, __: object, value: float | TimeoutBehaviour) -> None:
    if isinstance(value, TimeoutBehaviour):
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"contract timeout must be seconds, BLOCKING or NON_BLOCKING, not {value!r}"
        )
    if math.isnan(value) or value < 0:
        raise ValueError(
            f"contract timeout must be a non-negative number of seconds, not {value!r}"
        )


@attrs.frozen
class Contract:
    """The concurrency contract of a class or method, as data.

    Thread safety: TS (frozen value object).

    Attributes:
        thread_safety: TS, RS or ST.
        lock: the lock the caller must hold (NONE: the component locks itself).
        timeout: the longest the call may block, in seconds, or BLOCKING (may wait
            indefinitely unless given a timeout) or NON_BLOCKING (never waits on others).
        cleanup: who releases resources, for classes that hold any.
        guarantees: what the caller may rely on, in one or two sentences.
    """

    thread_safety: ThreadSafety = attrs.field(validator=attrs.validators.instance_of(ThreadSafety))
    lock: LockRequirement = attrs.field(
        default=LockRequirement.NONE, validator=attrs.validators.instance_of(LockRequirement)
    )
    timeout: float | TimeoutBehaviour = attrs.field(default=NON_BLOCKING, validator=_check_timeout)
    cleanup: Cleanup | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Cleanup))
    )
    guarantees: str = ""


_self_contract(ThreadSafety.TS)(Contract)


def contract(
    thread_safety: ThreadSafety,
    *,
    lock: LockRequirement = LockRequirement.NONE,
    timeout: float | TimeoutBehaviour = NON_BLOCKING,
    cleanup: Cleanup | None = None,
    guarantees: str = "",
) -> Callable[[_T], _T]:
    """Attach a :class:`Contract` to a class, function, method, property or classmethod.

    Thread safety: TS. Pure; the decorated object is returned unchanged but for the mark.

    The mark is read back with :func:`contract_of`. Properties, classmethods and
    staticmethods are marked on the function they wrap.
    """
    mark = Contract(
        thread_safety, lock=lock, timeout=timeout, cleanup=cleanup, guarantees=guarantees
    )

    def decorate(obj: _T) -> _T:
        target: Any = obj
        if isinstance(obj, property):
            target = obj.fget
        elif isinstance(obj, classmethod | staticmethod):
            target = obj.__func__
        setattr(target, CONTRACT_ATTRIBUTE, mark)
        return obj

    return decorate


_self_contract(ThreadSafety.TS)(contract)


def contract_of(obj: object) -> Contract | None:
    """Read back the contract of a class, function, bound method or property.

    Thread safety: TS. Pure.

    Classes report their own mark only (a subclass without ``@contract`` returns None).
    """
    target: Any = obj
    if isinstance(obj, property):
        target = obj.fget
    elif isinstance(obj, classmethod | staticmethod) or hasattr(obj, "__func__"):
        target = obj.__func__
    if isinstance(target, type):
        found = target.__dict__.get(CONTRACT_ATTRIBUTE)
    else:
        found = getattr(target, CONTRACT_ATTRIBUTE, None)
    return found if isinstance(found, Contract) else None


_self_contract(ThreadSafety.TS)(contract_of)
for _enum in (ThreadSafety, LockRequirement, Cleanup, TimeoutBehaviour):
    _self_contract(ThreadSafety.TS)(_enum)

"""Errors: one exception type with a machine-readable code.

Every failure a caller can act on is a :class:`BrummerError`. Its ``code`` says what
kind of failure it is; ``str(err)`` names the component, the code, what was wrong and
what to do about it. Errors with code ``TIMEOUT`` are also :class:`TimeoutError`,
``NOT_FOUND`` also :class:`LookupError` and ``INVALID_ARGUMENT`` also
:class:`ValueError`, so callers that only know the builtins still catch them.

Thread safety: TS. Error objects are immutable after construction.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from brummer._contract_marks import ThreadSafety, contract

__all__ = ["BrummerError", "ErrorCode"]


@contract(ThreadSafety.TS)
class ErrorCode(str, enum.Enum):
    """What kind of failure a :class:`BrummerError` reports.

    Thread safety: TS (immutable enum).
    """

    TIMEOUT = "TIMEOUT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    INVALID_STATE = "INVALID_STATE"
    RESOURCE_LIMIT = "RESOURCE_LIMIT"
    CONCURRENCY = "CONCURRENCY"
    NETWORK = "NETWORK"
    PERMISSION = "PERMISSION"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"

    def __str__(self) -> str:
        return self.value


_TEMPORARY_BY_DEFAULT = frozenset({ErrorCode.TIMEOUT, ErrorCode.RESOURCE_LIMIT, ErrorCode.NETWORK})


@contract(ThreadSafety.TS)
class BrummerError(Exception):
    """A failure of a brummer component that the caller can act on.

    Thread safety: TS. Immutable after construction; safe to share between threads.

    Args:
        component: which component failed ("pool", "events", "process", ...).
        code: the kind of failure.
        message: what was wrong, in words a user understands.
        hint: what to do about it; shown after the message.
        temporary: retrying later may succeed (defaults to True for TIMEOUT,
            RESOURCE_LIMIT and NETWORK).
        context: extra machine-readable facts (ids, limits, ports).
        cause: the underlying exception; also set as ``__cause__``.
    """

    component: str
    code: ErrorCode
    message: str
    hint: str
    temporary: bool
    context: Mapping[str, Any]

    def __new__(
        cls,
        component: str,
        code: ErrorCode,
        message: str = "",
        *,
        hint: str = "",
        temporary: bool | None = None,
        context: Mapping[str, Any] | None = None,
        cause: BaseException | None = None,
    ) -> BrummerError:
        target: type[BrummerError] = cls
        if cls is BrummerError:
            target = _SUBCLASS_BY_CODE.get(ErrorCode(code), BrummerError)
        # OSError (TimeoutError's base) insists on its own __new__ for its subclasses.
        builtin: Any = next(b for b in target.__mro__ if b.__module__ == "builtins")
        instance: BrummerError = builtin.__new__(target)
        return instance

    def __init__(
        self,
        component: str,
        code: ErrorCode,
        message: str = "",
        *,
        hint: str = "",
        temporary: bool | None = None,
        context: Mapping[str, Any] | None = None,
        cause: BaseException | None = None,
    ) -> None:
        code = ErrorCode(code)
        self.component = component
        self.code = code
        self.message = message or code.value.replace("_", " ").lower()
        self.hint = hint
        self.temporary = code in _TEMPORARY_BY_DEFAULT if temporary is None else temporary
        self.context = MappingProxyType(dict(context or {}))
        super().__init__(self.message)
        if cause is not None:
            self.__cause__ = cause

    @property
    @contract(ThreadSafety.TS)
    def timeout(self) -> bool:
        """True when the operation ran out of time (code TIMEOUT).

        Thread safety: TS.
        """
        return self.code is ErrorCode.TIMEOUT

    @contract(ThreadSafety.TS)
    def unwrap(self) -> BaseException | None:
        """The underlying cause, if any (the same object as ``__cause__``).

        Thread safety: TS.
        """
        return self.__cause__

    def __str__(self) -> str:
        text = f"[{self.component}] {self.code.value}: {self.message}"
        if self.hint:
            text += f" — {self.hint}"
        return text

    def __repr__(self) -> str:
        return (
            f"BrummerError(component={self.component!r}, code=ErrorCode.{self.code.name}, "
            f"message={self.message!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (
                self.component,
                self.code,
                self.message,
                self.hint,
                self.temporary,
                dict(self.context),
            ),
        )


def _rebuild(
    component: str,
    code: ErrorCode,
    message: str,
    hint: str,
    temporary: bool,
    context: dict[str, Any],
) -> BrummerError:
    return BrummerError(component, code, message, hint=hint, temporary=temporary, context=context)


class _BrummerTimeoutError(BrummerError, TimeoutError):
    """A BrummerError with code TIMEOUT; also a builtin TimeoutError."""


class _BrummerNotFoundError(BrummerError, LookupError):
    """A BrummerError with code NOT_FOUND; also a builtin LookupError."""


class _BrummerInvalidArgumentError(BrummerError, ValueError):
    """A BrummerError with code INVALID_ARGUMENT; also a builtin ValueError."""


_SUBCLASS_BY_CODE: dict[ErrorCode, type[BrummerError]] = {
    ErrorCode.TIMEOUT: _BrummerTimeoutError,
    ErrorCode.NOT_FOUND: _BrummerNotFoundError,
    ErrorCode.INVALID_ARGUMENT: _BrummerInvalidArgumentError,
}

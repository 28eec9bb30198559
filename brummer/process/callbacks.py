"""Log callbacks: ``cb(process_id, line, is_error)`` for every line, registered and removed safely.

Readers see a copy-on-write tuple of entries (no lock per line); each entry counts the
deliveries running through it, so ``unregister`` can wait for them and promise that the
callback receives nothing after it returns.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable

import attrs

from brummer.contracts import ThreadSafety, contract
from brummer.errors import BrummerError, ErrorCode

__all__ = ["CallbackID", "LogCallback", "LogCallbacks"]

_log = logging.getLogger("brummer.process")

CallbackID = str
LogCallback = Callable[[str, str, bool], None]

UNREGISTER_WAIT = 5.0
"""Seconds ``unregister`` waits for deliveries already running on other threads."""


@attrs.define
class _Entry:
    fn: LogCallback
    active: bool = True
    inflight: int = 0

    def live(self) -> bool:
        return self.active


@contract(ThreadSafety.TS)
class LogCallbacks:
    """The registered log callbacks of one process manager.

    Thread safety: TS. ``deliver`` runs on reader threads, the rest anywhere. A callback
    that raises is logged and the next line (and every other callback) is still delivered.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()  # guards _entries, _snapshot and entry counters
        self._entries: dict[CallbackID, _Entry] = {}
        self._snapshot: tuple[_Entry, ...] = ()
        self._seq = itertools.count(1)
        self._delivering = threading.local()

    @contract(ThreadSafety.TS)
    def register(self, cb: LogCallback) -> CallbackID:
        """Add a callback; it receives every line delivered from now on.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT when ``cb`` is not callable.
        """
        if not callable(cb):
            raise BrummerError(
                "process",
                ErrorCode.INVALID_ARGUMENT,
                "log callback must be callable",
                hint="pass a function (process_id, line, is_error)",
            )
        with self._cond:
            cb_id = f"log-callback-{next(self._seq)}"
            self._entries[cb_id] = _Entry(cb)
            self._snapshot = tuple(self._entries.values())
        return cb_id

    @contract(ThreadSafety.TS, timeout=UNREGISTER_WAIT)
    def unregister(self, cb_id: CallbackID) -> None:
        """Remove a callback; once this returns it receives no further line.

        Thread safety: TS. Waits (up to :data:`UNREGISTER_WAIT`) for deliveries running on
        other threads; from inside a callback it does not wait.

        Raises:
            BrummerError: NOT_FOUND for an unknown id.
        """
        with self._cond:
            entry = self._entries.pop(cb_id, None)
            if entry is None:
                raise BrummerError(
                    "process",
                    ErrorCode.NOT_FOUND,
                    f"no log callback {cb_id!r}",
                    hint="pass the id register_log_callback returned; it may be unregistered already",
                )
            entry.active = False
            self._snapshot = tuple(self._entries.values())
            if not getattr(self._delivering, "active", False):
                self._cond.wait_for(lambda: entry.inflight == 0, timeout=UNREGISTER_WAIT)

    @contract(ThreadSafety.TS)
    def deliver(self, process_id: str, lines: list[str], is_error: bool) -> None:
        """Call every registered callback for every line, in order.

        Thread safety: TS. Never raises because of a callback.
        """
        entries = self._snapshot
        if not entries:
            return
        outer = getattr(self._delivering, "active", False)  # nested: a callback delivering
        self._delivering.active = True
        try:
            for entry in entries:
                with self._cond:
                    if not entry.active:
                        continue
                    entry.inflight += 1
                try:
                    fn = entry.fn
                    for line in lines:
                        if not entry.live():  # unregistered meanwhile
                            break
                        try:
                            fn(process_id, line, is_error)
                        except Exception:
                            _log.exception("log callback %r failed", fn)
                finally:
                    with self._cond:
                        entry.inflight -= 1
                        if entry.inflight == 0:
                            self._cond.notify_all()
        finally:
            self._delivering.active = outer

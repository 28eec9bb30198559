"""The only way from another thread into urwid: a queue and one wake-up byte in a pipe.

Worker threads (event-bus handlers, background stops and restarts) call :meth:`UIBridge.post`
with a callable, or :meth:`UIBridge.mark_dirty` with a tag naming what changed. The urwid
main loop watches the pipe (``MainLoop.watch_pipe``); its callback runs in the loop thread and
runs the posted callables there, so widgets are only ever touched by the loop thread.

At most one wake-up byte is pending at any time, however many posts arrive, and dirty tags
are a set: a flood of ten thousand log lines a second becomes one wake-up and one refresh
per frame, never ten thousand.

Thread safety: TS for ``post``/``mark_dirty``/``close``; the drain runs in the loop thread.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
from collections.abc import Callable

import urwid

from brummer.contracts import ThreadSafety, contract

__all__ = ["UIBridge"]

_log = logging.getLogger("brummer.tui")


@contract(ThreadSafety.TS)
class UIBridge:
    """Hands callables and dirty tags from any thread to the urwid loop thread.

    Thread safety: TS. ``post``, ``mark_dirty``, ``take_dirty`` and ``close`` may be called
    from any thread; the callables posted and ``on_dirty`` run in the loop thread only.

    Args:
        watch_pipe: ``MainLoop.watch_pipe``; called once, returns the write end.
        on_dirty: called in the loop thread after a wake-up when tags are dirty; it takes
            them with :meth:`take_dirty` (now, or later from an alarm).
        remove_watch_pipe: ``MainLoop.remove_watch_pipe``; used by :meth:`close`, which
            then closes the write end too.
    """

    def __init__(
        self,
        watch_pipe: Callable[[Callable[[bytes], bool | None]], int],
        on_dirty: Callable[[], None] | None = None,
        remove_watch_pipe: Callable[[int], object] | None = None,
    ) -> None:
        self._pending: collections.deque[Callable[[], None]] = collections.deque()
        self._armed = threading.Lock()  # held while a wake byte is in the pipe, undrained
        self._lock = threading.Lock()  # guards _dirty and _closed
        self._dirty: set[str] = set()
        self._closed = False
        self._on_dirty = on_dirty
        self._remove = remove_watch_pipe
        self.wakeups = 0  # bytes written (approximate under races; for tests and benchmarks)
        self._fd = watch_pipe(self._drain)

    @contract(ThreadSafety.TS)
    def post(self, fn: Callable[[], None]) -> bool:
        """Run ``fn`` in the loop thread soon; False when the bridge is closed.

        Thread safety: TS. Never blocks; callables run in the order posted.
        """
        with self._lock:
            if self._closed:
                return False
        self._pending.append(fn)
        self._wake()
        return True

    @contract(ThreadSafety.TS)
    def mark_dirty(self, tag: str) -> None:
        """Say that ``tag`` (a view name, "processes", "logs", ...) changed.

        Thread safety: TS. Never blocks. Wakes the loop only when nothing was dirty yet,
        so a flood costs one wake-up per refresh.
        """
        with self._lock:
            if self._closed:
                return
            was_clean = not self._dirty
            self._dirty.add(tag)
        if was_clean:
            self._wake()

    @contract(ThreadSafety.TS)
    def take_dirty(self) -> set[str]:
        """Return and clear the dirty tags.

        Thread safety: TS.
        """
        with self._lock:
            tags, self._dirty = self._dirty, set()
        return tags

    @property
    @contract(ThreadSafety.TS)
    def dirty(self) -> bool:
        """Whether any tag is dirty.

        Thread safety: TS.
        """
        with self._lock:
            return bool(self._dirty)

    def _wake(self) -> None:
        if self._armed.acquire(blocking=False):
            try:
                os.write(self._fd, b"!")
                self.wakeups += 1
            except OSError:
                self._armed.release()

    def _drain(self, _data: bytes) -> bool:
        # Release before draining: a post that lands after this line writes a new byte.
        with contextlib.suppress(RuntimeError):
            self._armed.release()
        while self._pending:
            fn = self._pending.popleft()
            try:
                fn()
            except urwid.ExitMainLoop:
                raise
            except Exception:
                _log.exception("a callable posted to the interface failed")
        if self._on_dirty is not None and self.dirty:
            try:
                self._on_dirty()
            except urwid.ExitMainLoop:
                raise
            except Exception:
                _log.exception("refreshing the interface failed")
        with self._lock:
            return not self._closed

    @contract(ThreadSafety.TS)
    def close(self) -> None:
        """Stop accepting posts and stop watching the pipe. Idempotent.

        Thread safety: TS. Call ``remove_watch_pipe`` only from the loop thread (or after
        the loop has ended).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._dirty.clear()
        self._pending.clear()
        if self._remove is not None:
            with contextlib.suppress(Exception):
                self._remove(self._fd)
        with contextlib.suppress(OSError):
            os.close(self._fd)  # the write end is ours to close (urwid closes the read end)

"""Automatic restarts: one lazily started thread that runs restarts when they come due.

No ``threading.Timer`` per restart: a heap of due times and one condition. The thread
exits as soon as nothing is scheduled, so an idle manager holds no thread; ``close``
cancels everything pending and joins it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from brummer.contracts import BLOCKING, Cleanup, ThreadSafety, contract

__all__ = ["RestartScheduler"]

_log = logging.getLogger("brummer.process")


@contract(ThreadSafety.TS, cleanup=Cleanup.MANUAL)
class RestartScheduler:
    """Runs ``launch(spec, attempt)`` for each scheduled restart when its delay has passed.

    Thread safety: TS. ``launch`` runs on the scheduler's thread, never under its lock.
    Entries are keyed by the id of the process that ended, so a user stop of that process
    cancels its restart.
    """

    def __init__(self, launch: Callable[[Any, int], None]) -> None:
        self._launch = launch
        self._cond = threading.Condition()  # guards every field below
        self._heap: list[
            tuple[float, int, str, Any, int]
        ] = []  # due, seq, origin id, spec, attempt
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    @contract(ThreadSafety.TS)
    def schedule(self, origin_id: str, spec: Any, attempt: int, delay: float) -> bool:
        """Run restart ``attempt`` of ``spec`` in ``delay`` seconds; False once closed.

        Thread safety: TS.
        """
        with self._cond:
            if self._closed:
                return False
            due = time.monotonic() + max(0.0, delay)
            heapq.heappush(self._heap, (due, next(self._seq), origin_id, spec, attempt))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="brummer-process-restarter", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        return True

    @contract(ThreadSafety.TS)
    def cancel(self, origin_id: str) -> None:
        """Drop the pending restart of the process ``origin_id`` (no-op if there is none).

        Thread safety: TS.
        """
        with self._cond:
            kept = [entry for entry in self._heap if entry[2] != origin_id]
            if len(kept) != len(self._heap):
                heapq.heapify(kept)
                self._heap = kept
                self._cond.notify_all()

    @contract(ThreadSafety.TS)
    def pending(self) -> int:
        """How many restarts are waiting.

        Thread safety: TS.
        """
        with self._cond:
            return len(self._heap)

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def close(self, timeout: float | None = None) -> bool:
        """Cancel everything pending, refuse new entries, join the thread; idempotent.

        Thread safety: TS. Returns whether the thread is gone (a launch in progress is
        waited for, up to ``timeout``).
        """
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed or not self._heap:
                        self._thread = None
                        return
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        _, _, _, spec, attempt = heapq.heappop(self._heap)
                        break
                    self._cond.wait(wait)
            try:
                self._launch(spec, attempt)
            except Exception:
                _log.exception("automatic restart failed")

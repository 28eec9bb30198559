"""The log store's ring: entries in fixed-size segments with their search text joined.

Not thread-safe on its own: every method is called with ``LogStore._lock`` held, except
that the segments handed out by :meth:`Ring.segments` may be read without the lock (a
sealed segment never changes; the tail is copied).

Layout: a deque of segments; every segment but the last (the *tail*) holds exactly
``SEGMENT`` entries and is *sealed*: its search keys are joined into one string (``blob``)
and the per-line key strings are dropped, which saves a string object per line and lets a
search scan memory with ``str.find`` instead of touching 100,000 objects. The first
``head`` entries of the oldest segment are evicted (O(1) per line); the segment is dropped
when all of it is.

Thread safety: ST (guarded by the owning LogStore's lock).
"""

from __future__ import annotations

import itertools
import operator
from array import array
from collections import deque
from collections.abc import Iterator, Sequence

from brummer.logs import _search
from brummer.logs.model import LogEntry


class Segment:
    """Up to SEGMENT entries and their search keys (list while filling, blob once sealed)."""

    __slots__ = ("blob", "entries", "keys", "starts")

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []
        self.keys: list[str] | None = []
        self.blob: str | None = None
        self.starts: array[int] | None = None  # offset of each line in blob, then len + 1

    def seal(self) -> None:
        """Join the keys into the blob (with line offsets) and drop the per-line strings."""
        keys = self.keys
        assert keys is not None
        self.blob = "\n".join(keys)
        self.starts = array(
            "I",
            itertools.accumulate(map(operator.add, map(len, keys), itertools.repeat(1)), initial=0),
        )
        self.keys = None

    def key_list(self) -> list[str]:
        """The per-line keys (split from the blob for a sealed segment)."""
        if self.keys is not None:
            return self.keys
        assert self.blob is not None
        return self.blob.split("\n")


class Ring:
    """Bounded-by-the-caller sequence of entries with O(1) append and eviction."""

    __slots__ = ("_head", "_len", "_segments")

    def __init__(self) -> None:
        self._segments: deque[Segment] = deque([Segment()])
        self._head = 0  # entries of _segments[0] already evicted
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def append(self, entries: Sequence[LogEntry], keys: Sequence[str]) -> None:
        size = _search.SEGMENT
        done = 0
        n = len(entries)
        while done < n:
            tail = self._segments[-1]
            room = size - len(tail.entries)
            take = min(room, n - done)
            tail.entries.extend(entries[done : done + take])
            assert tail.keys is not None
            tail.keys.extend(keys[done : done + take])
            done += take
            if len(tail.entries) >= size:
                tail.seal()
                self._segments.append(Segment())
        self._len += n

    def evict(self, count: int) -> Iterator[LogEntry]:
        """Drop the ``count`` oldest entries, yielding each (consume it fully)."""
        size = _search.SEGMENT
        segments = self._segments
        for _ in range(count):
            first = segments[0]
            yield first.entries[self._head]
            self._head += 1
            self._len -= 1
            if self._head >= size:
                segments.popleft()
                self._head = 0
            elif self._len == 0:
                self.clear()

    def clear(self) -> None:
        self._segments = deque([Segment()])
        self._head = 0
        self._len = 0

    def entries(self, start: int = 0, stop: int | None = None) -> list[LogEntry]:
        """Copy of the live entries ``[start, stop)`` (indexes among live entries)."""
        out: list[LogEntry] = []
        for segment, lo, hi in self._spans(start, stop):
            out.extend(segment.entries[lo:hi])
        return out

    def keys(self, start: int = 0, stop: int | None = None) -> list[str]:
        """Copy of the live entries' search keys ``[start, stop)``."""
        out: list[str] = []
        for segment, lo, hi in self._spans(start, stop):
            out.extend(segment.key_list()[lo:hi])
        return out

    def _spans(self, start: int, stop: int | None) -> Iterator[tuple[Segment, int, int]]:
        stop = self._len if stop is None else min(stop, self._len)
        if start >= stop:
            return
        size = _search.SEGMENT
        first = self._head + start
        last = self._head + stop
        for k in range((first // size), (last - 1) // size + 1):
            lo = max(first - k * size, 0)
            hi = min(last - k * size, size)
            yield self._segments[k], lo, hi

    def segments(
        self,
    ) -> list[tuple[Sequence[LogEntry], str | None, list[str] | None, array[int] | None]]:
        """What a search needs, safe to read after the lock is released.

        One ``(entries, blob, keys, starts)`` per segment, oldest first; evicted entries of
        the oldest segment are left out (its blob, if any, is then None and keys are given).
        """
        out: list[tuple[Sequence[LogEntry], str | None, list[str] | None, array[int] | None]] = []
        for k, segment in enumerate(self._segments):
            skip = self._head if k == 0 else 0
            if segment.blob is not None and not skip:
                out.append((segment.entries, segment.blob, None, segment.starts))
            else:
                keys = segment.key_list()[skip:]
                out.append((segment.entries[skip : skip + len(keys)], None, list(keys), None))
        if out and not out[-1][0]:
            out.pop()
        return out

    def rebuild(self, entries: Sequence[LogEntry], keys: Sequence[str]) -> None:
        """Replace the content (used by clear_for_process)."""
        self.clear()
        self.append(entries, keys)

    def sample(self, count: int) -> list[LogEntry]:
        """About ``count`` live entries spread over the ring (for memory estimates)."""
        step = max(1, self._len // max(count, 1))
        live = itertools.chain.from_iterable(
            seg.entries[self._head :] if k == 0 else seg.entries
            for k, seg in enumerate(self._segments)
        )
        return list(itertools.islice(live, 0, None, step))

    def blob_bytes(self) -> int:
        """Characters held in sealed segments' joined keys."""
        return sum(len(s.blob) for s in self._segments if s.blob is not None)

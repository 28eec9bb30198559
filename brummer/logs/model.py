"""Value objects of the log store: entries, queries, URLs, error groups, metrics.

Every class here is an immutable (frozen, slotted) attrs class, safe to share between
threads. :class:`LogEntry` is stored a million times over, so it keeps only three slots:
the sequence number, the content and a tuple shared by every line of a batch
with the same process and classification; ``id``, ``level``, ``tags``... are read from
those (see ``benchmarks/results/logs.md`` for the bytes per entry this buys).

Thread safety: TS (immutable values).
"""

from __future__ import annotations

import enum
import itertools
import re
from collections import deque
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import attrs

from brummer.contracts import ThreadSafety, contract

__all__ = [
    "CollapsedEntry",
    "CursorPage",
    "ErrorGroup",
    "LogEntry",
    "LogEntryInput",
    "LogLevel",
    "LogStoreMetrics",
    "SearchPage",
    "SearchQuery",
    "URLEntry",
]


@contract(ThreadSafety.TS)
class LogLevel(enum.IntEnum):
    """Severity of a line, decided from its content (never from the stream it came on).

    Thread safety: TS (immutable enum).
    """

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50


# (process_id, process_name, timestamp, level, is_error, tags, priority, explicit id or None)
_Meta = tuple[str, str, datetime, LogLevel, bool, tuple[str, ...], int, str | None]


@contract(ThreadSafety.TS)
@attrs.frozen(init=False, repr=False, weakref_slot=False)
class LogEntry:
    """One stored line of process output.

    Thread safety: TS (immutable; share it freely).

    ``content`` is the raw line, ANSI colour codes included. ``level``, ``tags`` and
    ``priority`` come from the content; ``is_error`` records that the line came on
    stderr. ``seq`` increases strictly within a process; ``id`` is
    ``"<process_id>-<seq>"`` unless given explicitly.
    """

    _seq: int
    content: str
    _meta: _Meta

    def __init__(
        self,
        *,
        id: str | None = None,  # noqa: A002 - the field name is fixed by API.md
        seq: int,
        process_id: str,
        process_name: str,
        timestamp: datetime,
        content: str,
        level: LogLevel = LogLevel.INFO,
        is_error: bool = False,
        tags: tuple[str, ...] = (),
        priority: int = 0,
    ) -> None:
        if id == f"{process_id}-{seq}":
            id = None  # noqa: A001 - stored implicitly, so equal entries compare equal
        meta: _Meta = (
            process_id,
            process_name,
            timestamp,
            LogLevel(level),
            bool(is_error),
            tuple(tags),
            int(priority),
            id,
        )
        _set_seq(self, seq)
        _set_content(self, content)
        _set_meta(self, meta)

    @property
    @contract(ThreadSafety.TS)
    def id(self) -> str:
        """Unique id of the entry: ``"<process_id>-<seq>"``.

        Thread safety: TS (immutable).
        """
        meta = self._meta
        return meta[7] or f"{meta[0]}-{self._seq}"

    @property
    @contract(ThreadSafety.TS)
    def seq(self) -> int:
        """Sequence number, strictly increasing within a process.

        Thread safety: TS (immutable).
        """
        return self._seq

    @property
    @contract(ThreadSafety.TS)
    def process_id(self) -> str:
        """Id of the process that printed the line.

        Thread safety: TS (immutable).
        """
        return self._meta[0]

    @property
    @contract(ThreadSafety.TS)
    def process_name(self) -> str:
        """Name of the process that printed the line.

        Thread safety: TS (immutable).
        """
        return self._meta[1]

    @property
    @contract(ThreadSafety.TS)
    def timestamp(self) -> datetime:
        """When the store received the line (UTC).

        Thread safety: TS (immutable).
        """
        return self._meta[2]

    @property
    @contract(ThreadSafety.TS)
    def level(self) -> LogLevel:
        """Severity detected from the content.

        Thread safety: TS (immutable).
        """
        return self._meta[3]

    @property
    @contract(ThreadSafety.TS)
    def is_error(self) -> bool:
        """True when the line came on stderr.

        Thread safety: TS (immutable).
        """
        return self._meta[4]

    @property
    @contract(ThreadSafety.TS)
    def tags(self) -> tuple[str, ...]:
        """Tags detected from the content ("error", "build", "test", "url", ...).

        Thread safety: TS (immutable).
        """
        return self._meta[5]

    @property
    @contract(ThreadSafety.TS)
    def priority(self) -> int:
        """Priority for "important lines" views: level, tag boosts and +5 for stderr.

        Thread safety: TS (immutable).
        """
        return self._meta[6]

    @property
    @contract(ThreadSafety.TS)
    def plain(self) -> str:
        """The content without ANSI codes, lower-cased (what search looks at).

        Thread safety: TS (immutable).
        """
        return _search_key(self.content)

    @contract(ThreadSafety.TS)
    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of the documented fields (timestamp as ISO 8601).

        Thread safety: TS. Pure.
        """
        return {
            "id": self.id,
            "seq": self._seq,
            "process_id": self.process_id,
            "process_name": self.process_name,
            "timestamp": self.timestamp.isoformat(),
            "content": self.content,
            "level": self.level.name,
            "is_error": self.is_error,
            "tags": list(self.tags),
            "priority": self.priority,
        }

    def __repr__(self) -> str:
        return (
            f"LogEntry(id={self.id!r}, seq={self._seq}, process_id={self.process_id!r}, "
            f"process_name={self.process_name!r}, timestamp={self.timestamp!r}, "
            f"content={self.content!r}, level={self.level.name}, is_error={self.is_error}, "
            f"tags={self.tags!r}, priority={self.priority})"
        )


_set_seq = LogEntry.__dict__["_seq"].__set__
_set_content = LogEntry.__dict__["content"].__set__
_set_meta = LogEntry.__dict__["_meta"].__set__
_new = object.__new__


def _make_entries(
    seqs: Iterable[int], contents: Iterable[str], metas: Iterable[_Meta], n: int
) -> list[LogEntry]:
    """Build n LogEntries without validation, with C-level loops only (the hot path)."""
    if n < _SMALL_BATCH:
        return list(map(_make_entry, seqs, contents, metas))
    entries: list[LogEntry] = list(map(_new, itertools.repeat(LogEntry, n)))
    _consume(map(_set_seq, entries, seqs))
    _consume(map(_set_content, entries, contents))
    _consume(map(_set_meta, entries, metas))
    return entries


_SMALL_BATCH = 8  # below this, a Python loop beats four C-level passes


def _consume(iterator: Iterable[object]) -> None:
    deque(iterator, maxlen=0)


def _make_entry(seq: int, content: str, meta: _Meta) -> LogEntry:
    """Build a LogEntry without validation (the store's hot path)."""
    entry: LogEntry = _new(LogEntry)
    _set_seq(entry, seq)
    _set_content(entry, content)
    _set_meta(entry, meta)
    return entry


# CSI sequences, OSC sequences (ended by BEL or ST, never crossing a newline; an unended
# one loses only its ESC ]) and the two-byte escapes. Used for detection and search;
# stored content keeps its colours.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)|\x1b[()*+#%][0-9A-Za-z@]|\x1b[@-Z\\-_=>78]"
)


def _search_key(content: str) -> str:
    return (_ANSI.sub("", content) if "\x1b" in content else content).lower()


@contract(ThreadSafety.TS)
@attrs.frozen
class LogEntryInput:
    """One line to add with :meth:`LogStore.add_batch`.

    Thread safety: TS (immutable).
    """

    process_id: str
    process_name: str
    content: str
    is_error: bool = False


@contract(ThreadSafety.TS)
@attrs.frozen
class SearchQuery:
    """What :meth:`LogStore.search` looks for; every given criterion must hold.

    Thread safety: TS (immutable).

    ``text`` is a case-insensitive substring (or, with ``regex=True``, a case-insensitive
    regular expression) matched against the ANSI-stripped line; empty matches every line.
    ``level`` is a minimum. ``since``/``until`` bound the timestamp (inclusive). ``limit``
    keeps the newest N matches (0 = all); results are oldest first.
    """

    text: str = ""
    regex: bool = False
    process_id: str | None = None
    level: LogLevel | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 0


@contract(ThreadSafety.TS)
@attrs.frozen
class CursorPage:
    """What :meth:`LogStore.get_since` returns: new lines and where to continue.

    Thread safety: TS (immutable).

    ``entries`` oldest first (iterating the page iterates them); ``next_cursor`` is the
    cursor for the next call; ``missed`` how many lines after the given cursor were
    evicted before they could be read.
    """

    entries: tuple[LogEntry, ...]
    next_cursor: int
    missed: int = 0

    def __iter__(self) -> Iterator[LogEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


@contract(ThreadSafety.TS)
@attrs.frozen
class SearchPage:
    """One page of :meth:`LogStore.search_page`: matches among the lines scanned.

    Thread safety: TS (immutable).

    ``entries`` oldest first; ``next_before`` is the ``before`` of the next (older) page,
    None when the oldest retained line was scanned; ``scanned`` how many lines were looked at.
    """

    entries: tuple[LogEntry, ...]
    next_before: int | None
    scanned: int


@contract(ThreadSafety.TS)
@attrs.frozen
class URLEntry:
    """A URL a process printed, deduplicated per process and origin.

    Thread safety: TS (immutable).

    ``context`` is the ANSI-stripped line it was seen in; ``proxy_url`` is set by the proxy
    through :meth:`LogStore.set_proxy_url`; ``active`` turns False when the process exits.
    """

    url: str
    process_id: str
    process_name: str
    timestamp: datetime
    context: str
    proxy_url: str | None = None
    active: bool = True


@contract(ThreadSafety.TS)
@attrs.frozen
class ErrorGroup:
    """A (possibly multi-line) error with its stack lines, deduplicated by signature.

    Thread safety: TS (immutable).

    ``kind`` is the error type ("TypeError", "GoPanic", "TS2322", ...), ``message`` its
    first line or exception line, ``lines`` the lines of the latest occurrence (ANSI
    stripped), ``count`` how often the same kind and message (digits ignored) was seen.
    """

    id: str
    process_id: str
    process_name: str
    first_seen: datetime
    last_seen: datetime
    kind: str
    message: str
    lines: tuple[str, ...]
    count: int
    language: str = ""


@contract(ThreadSafety.TS)
@attrs.frozen
class CollapsedEntry:
    """A run of identical consecutive lines of one process, read as one with a count.

    Thread safety: TS (immutable).
    """

    entry: LogEntry
    count: int
    first_seen: datetime
    last_seen: datetime


@contract(ThreadSafety.TS)
@attrs.frozen
class LogStoreMetrics:
    """A snapshot of the store's counters.

    Thread safety: TS (immutable).

    ``total_entries`` is the number retained now; ``entries_per_sec`` the add rate over the
    last few seconds; ``error_count`` the retained error entries; ``queue_depth`` is always
    0 (detection runs in the caller, there is no queue); ``memory_usage_mb`` an estimate
    of what the retained entries hold.
    """

    total_entries: int
    entries_per_sec: float
    error_count: int
    queue_depth: int
    memory_usage_mb: float
    added_total: int = 0
    evicted_total: int = 0
    url_count: int = 0
    error_group_count: int = 0

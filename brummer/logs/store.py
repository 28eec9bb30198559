"""LogStore: a bounded ring of process output lines with per-process indexes.

Each line is classified (level, tags, priority) and checked for errors, builds, tests and
URLs by a :class:`~brummer.logs.detect.Detector` *before* the store's lock is taken; under
the lock the store only numbers the lines, appends them and evicts the oldest. Reads copy
references under the lock and filter outside it, so a long search never stalls writers.

What it is not: a persistent log, a database or a log shipper. Entries live in memory
until evicted (oldest first when ``max_entries`` is reached) or cleared.

Thread safety: TS. Every public method may be called from any thread.
"""

from __future__ import annotations

import itertools
import logging
import operator
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import attrs

from brummer.contracts import NON_BLOCKING, Cleanup, ThreadSafety, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.logs._ring import Ring
from brummer.logs._search import Matcher, matcher_for
from brummer.logs.detect import STDERR_PRIORITY, Detector, Finding
from brummer.logs.model import (
    CollapsedEntry,
    CursorPage,
    ErrorGroup,
    LogEntry,
    LogEntryInput,
    LogLevel,
    LogStoreMetrics,
    SearchPage,
    SearchQuery,
    URLEntry,
    _make_entries,
    _Meta,
)

__all__ = ["EventSink", "LogStore"]

_COMPONENT = "logs"
_log = logging.getLogger("brummer.logs")
RATE_WINDOW_SECONDS = 5  # entries_per_sec is averaged over this many whole seconds
URL_CONTEXT_CHARS = 200
_MEMORY_SAMPLE = 256

_get_content = operator.attrgetter("content")
_get_input = operator.attrgetter("process_id", "process_name", "is_error")


@contract(ThreadSafety.TS)
class EventSink(Protocol):
    """What the store needs from an event bus (``brummer.events.EventBus`` fits).

    Thread safety: TS. Implementations must be callable from any thread.
    """

    @contract(ThreadSafety.TS, timeout=NON_BLOCKING)
    def publish_async(self, event: Any) -> None:
        """Queue an event without blocking or raising.

        Thread safety: TS.
        """


def _bad(message: str, hint: str, **context: Any) -> BrummerError:
    return BrummerError(_COMPONENT, ErrorCode.INVALID_ARGUMENT, message, hint=hint, context=context)


def _check_str(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise _bad(
            f"{name} must be a str, not {type(value).__name__}",
            f"pass {name} as text (decode bytes first)",
        )
    return value


@contract(ThreadSafety.TS, cleanup=Cleanup.MANUAL)
class LogStore:
    """Bounded store of process output lines with detection, errors and URLs.

    Thread safety: TS. Every public method may be called from any thread. Writers hold the
    lock only to number, append and evict; detection runs before, event publishing
    (``publish_async``, never blocking) after. Readers copy references under the lock and
    filter outside it; a text search copies only the list of segments (4,096 entries each,
    their search text joined into one string) and scans them with ``str.find``.

    Args:
        max_entries: lines kept; the oldest go first when full (O(1) per line).
        max_errors: error entries (level ≥ ERROR) and error groups kept.
        max_urls: distinct (process, URL) pairs kept.
        event_bus: receives ERROR_DETECTED, URL_DETECTED, BUILD_EVENT, TEST_PASSED and
            TEST_FAILED (never LOG_LINE: the process manager publishes lines).
        detector: the detector to use (default: the built-in rules plus ``extra_rules``).
        extra_rules: user detection rules (see :class:`~brummer.logs.detect.Detector`).
        follow_exits: when the bus can ``subscribe``, call :meth:`mark_process_exited` for
            every PROCESS_EXITED event it carries (unsubscribed again by :meth:`close`).
            Off by default: the app and the process manager call it themselves.

    Raises:
        BrummerError: INVALID_ARGUMENT for a limit that is not a positive int, or for
            both ``detector`` and ``extra_rules``; rule errors as in ``Detector``.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_errors: int = 500,
        max_urls: int = 100,
        event_bus: EventSink | None = None,
        detector: Detector | None = None,
        extra_rules: str | Path | Any | None = None,
        follow_exits: bool = False,
    ) -> None:
        for name, value in (
            ("max_entries", max_entries),
            ("max_errors", max_errors),
            ("max_urls", max_urls),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise _bad(
                    f"{name} must be an int ≥ 1, not {value!r}",
                    f"pass a positive number for {name}",
                )
        self._max_entries = max_entries
        self._max_urls = max_urls
        self._bus = event_bus
        if detector is not None and extra_rules is not None:
            raise _bad(
                "pass either detector or extra_rules, not both",
                "build the Detector with Detector(extra_rules=...) and pass only detector",
            )
        self._detector = detector or Detector(extra_rules, max_groups=max_errors)
        # _lock guards everything below; never held while detecting or publishing.
        self._lock = threading.Lock()
        self._ring = Ring()  # entries and their search keys, in segments
        self._by_process: dict[str, deque[LogEntry]] = {}
        self._last_seq: dict[str, int] = {}
        self._errors: deque[LogEntry] = deque(maxlen=max_errors)
        self._urls: OrderedDict[tuple[str, str], URLEntry] = OrderedDict()
        self._closed = False
        self._added_total = 0
        self._evicted_total = 0
        self._rate: deque[list[int]] = deque()  # [whole second, lines added in it]
        self._exit_subscription: Any = None
        subscribe = getattr(event_bus, "subscribe", None)
        if follow_exits and callable(subscribe):
            try:
                self._exit_subscription = subscribe("process.exited", self._on_process_exited)
            except BrummerError as exc:
                _log.warning("log store cannot follow process exits: %s", exc)

    # ------------------------------------------------------------------ writing

    @contract(ThreadSafety.TS, timeout=0.1)
    def add(
        self, process_id: str, process_name: str, content: str, is_error: bool = False
    ) -> LogEntry:
        """Store one line and return the entry actually stored (with its seq and level).

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT when an argument is not a str (bytes included);
                INVALID_STATE after :meth:`close`.
        """
        return self.add_lines(process_id, process_name, [content], is_error)[0]

    @contract(ThreadSafety.TS, timeout=0.1)
    def add_lines(
        self,
        process_id: str,
        process_name: str,
        contents: Sequence[str],
        is_error: bool = False,
    ) -> list[LogEntry]:
        """Store consecutive lines of one process and stream; all or nothing.

        Thread safety: TS.

        The fast path for reader threads: no per-line input objects are needed.

        Raises:
            BrummerError: INVALID_ARGUMENT when a line or id is not a str; INVALID_STATE
                after :meth:`close`. Nothing is stored then.
        """
        _check_str(process_id, "process_id")
        _check_str(process_name, "process_name")
        if not isinstance(contents, list | tuple):
            if isinstance(contents, str | bytes):
                raise _bad(
                    "contents must be a sequence of lines, not a single string",
                    "use add() for one line or pass a list of lines",
                )
            contents = list(contents)
        self._check_contents(contents)
        self._check_open()
        return self._ingest([(process_id, process_name, bool(is_error), contents)])

    @contract(ThreadSafety.TS, timeout=0.1)
    def add_batch(self, entries: Sequence[LogEntryInput]) -> list[LogEntry]:
        """Store many lines at once, in order; all or nothing.

        Thread safety: TS.

        Every input is validated before anything is stored, and all lines are appended in
        one lock acquisition, so readers see all of them or none.

        Raises:
            BrummerError: INVALID_ARGUMENT when an input lacks a field or a field has the
                wrong type (nothing is stored); INVALID_STATE after :meth:`close`.
        """
        given: object = entries  # callers without type checking pass anything
        if not isinstance(given, list | tuple) and (
            isinstance(given, str | bytes) or not isinstance(given, Iterable)
        ):
            raise _bad(
                f"entries must be a sequence of LogEntryInput, not {type(entries).__name__}",
                "pass a list of LogEntryInput(process_id, process_name, content, is_error)",
            )
        items = entries if isinstance(entries, list | tuple) else list(entries)
        if not items:
            self._check_open()
            return []
        try:
            heads = list(map(_get_input, items))
            contents = list(map(_get_content, items))
        except AttributeError as exc:
            raise _bad(
                f"every entry must be a LogEntryInput: {exc}",
                "build inputs with LogEntryInput(process_id, process_name, content, is_error)",
            ) from exc
        self._check_contents(contents)
        runs: list[tuple[str, str, bool, list[str]]] = []
        if heads.count(heads[0]) == len(heads):
            pid, name, err = heads[0]
            runs.append((pid, name, err, contents))
        else:
            for (pid, name, err), group in itertools.groupby(
                zip(heads, contents, strict=True), key=operator.itemgetter(0)
            ):
                runs.append((pid, name, err, [c for _, c in group]))
        for pid, name, err, _ in runs:
            _check_str(pid, "process_id")
            _check_str(name, "process_name")
            if not isinstance(err, bool | int):
                raise _bad(
                    f"is_error must be a bool, not {type(err).__name__}",
                    "pass True for stderr lines, False for stdout lines",
                )
        self._check_open()
        return self._ingest([(pid, name, bool(err), lines) for pid, name, err, lines in runs])

    @staticmethod
    def _check_contents(contents: Sequence[object]) -> None:
        types = set(map(type, contents))
        if types - {str} and not all(issubclass(t, str) for t in types):
            bad = next(c for c in contents if not isinstance(c, str))
            raise _bad(
                f"log content must be a str, not {type(bad).__name__}",
                "decode bytes first (errors='replace'); nothing of this batch was stored",
                content_type=type(bad).__name__,
            )

    def _check_open(self) -> None:
        if self._closed:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_STATE,
                "the log store is closed",
                hint="create a new LogStore; a closed one accepts no lines",
            )

    def _ingest(self, runs: list[tuple[str, str, bool, Sequence[str]]]) -> list[LogEntry]:
        detector = self._detector
        findings: list[Finding] = detector._flush(idle_only=True)
        scans = [detector._scan(pid, name, lines) for pid, name, _, lines in runs]
        now = datetime.now(UTC)
        out: list[LogEntry] = []
        with self._lock:
            self._check_open()
            for (pid, name, err, lines), scan in zip(runs, scans, strict=True):
                metas: dict[Any, _Meta] = {}
                base_meta = _meta_for(metas, pid, name, now, err, None)
                seq = self._last_seq.get(pid, 0)
                n = len(lines)
                seqs = range(seq + 1, seq + n + 1)
                if not scan.special:
                    new = _make_entries(seqs, lines, itertools.repeat(base_meta, n), n)
                else:
                    per_line = [base_meta] * n
                    for index, cls in scan.special.items():
                        per_line[index] = _meta_for(metas, pid, name, now, err, cls)
                    new = _make_entries(seqs, lines, per_line, n)
                    for index in sorted(scan.special):
                        if scan.special[index].level >= LogLevel.ERROR:
                            self._errors.append(new[index])
                self._last_seq[pid] = seq + n
                self._ring.append(new, scan.keys)
                process_index = self._by_process.get(pid)
                if process_index is None:
                    self._by_process[pid] = process_index = deque()
                process_index.extend(new)
                for _, url, context in scan.urls:
                    self._record_url(pid, name, url, context, now, findings)
                out.extend(new)
            self._evict()
            self._count(len(out))
        findings.extend(f for scan in scans for f in scan.findings)
        self._publish(findings)
        return out

    def _evict(self) -> None:
        """Drop the oldest entries beyond max_entries; O(1) each. Called with _lock held."""
        overflow = len(self._ring) - self._max_entries
        if overflow <= 0:
            return
        by_process = self._by_process
        for entry in self._ring.evict(overflow):
            pid = entry._meta[0]
            index = by_process[pid]
            index.popleft()
            if not index:
                del by_process[pid]
        self._evicted_total += overflow

    def _count(self, n: int) -> None:
        second = int(time.monotonic())
        rate = self._rate
        if rate and rate[-1][0] == second:
            rate[-1][1] += n
        else:
            rate.append([second, n])
            while rate and rate[0][0] <= second - RATE_WINDOW_SECONDS:
                rate.popleft()
        self._added_total += n

    def _record_url(
        self,
        pid: str,
        name: str,
        url: str,
        context: str,
        now: datetime,
        findings: list[Finding],
    ) -> None:
        """Keep one URL per (process, origin); called with _lock held.

        A dev server announces ``http://localhost:5173/`` once and may then log a request
        line per URL it serves: those share the origin and only refresh nothing, so a
        request log does not flood the URL list or the bus. The first URL seen for an
        origin is the one listed (and proxied); a process that exited and prints the
        origin again gets it back as active, with a new URL_DETECTED.
        """
        key = (pid, _origin(url))
        old = self._urls.get(key)
        if old is not None and old.active:
            return
        entry = URLEntry(
            url=url,
            process_id=pid,
            process_name=name,
            timestamp=now,
            context=context[:URL_CONTEXT_CHARS],
            proxy_url=old.proxy_url if old is not None else None,
        )
        self._urls[key] = entry
        findings.append(
            Finding(
                "url.detected", pid, {"url": url, "process_name": name, "context": entry.context}
            )
        )
        while len(self._urls) > self._max_urls:
            self._urls.popitem(last=False)

    def _publish(self, findings: list[Finding]) -> None:
        bus = self._bus
        if bus is None or not findings:
            return
        from brummer.events import Event

        for finding in findings:
            bus.publish_async(
                Event(type=finding.kind, data=finding.data, process_id=finding.process_id)
            )

    # ------------------------------------------------------------------ reading

    @contract(ThreadSafety.TS, timeout=0.1)
    def get_by_process(self, process_id: str) -> list[LogEntry]:
        """Snapshot of one process's retained lines, oldest first ([] if unknown).

        Thread safety: TS.
        """
        with self._lock:
            index = self._by_process.get(process_id)
            return list(index) if index is not None else []

    @contract(ThreadSafety.TS, timeout=0.1)
    def get_all(self) -> list[LogEntry]:
        """Snapshot of every retained line, oldest first.

        Thread safety: TS.
        """
        with self._lock:
            return self._ring.entries()

    @contract(ThreadSafety.TS, timeout=0.1)
    def get_errors(self) -> list[LogEntry]:
        """The last ``max_errors`` lines whose level is ERROR or CRITICAL, oldest first.

        Thread safety: TS.

        Kept apart from the ring, so an error stays readable here after the ring evicted it.
        """
        with self._lock:
            return list(self._errors)

    @contract(ThreadSafety.TS, timeout=0.1)
    def get_since(
        self, cursor: int = 0, *, process_id: str | None = None, limit: int = 1000
    ) -> CursorPage:
        """Cursor read for pollers (MCP ``logs_stream``): the lines after ``cursor``.

        Thread safety: TS.

        Start with ``cursor=0``; each call returns at most ``limit`` lines, oldest first,
        and ``next_cursor`` to pass next time. Without ``process_id`` the cursor is a
        store-wide position (lines ever added); with ``process_id`` it is that process's
        ``seq`` (so ``entry.seq`` of the last line you saw works as a cursor too).
        ``missed`` counts lines that were evicted before this read reached them. A
        store-wide cursor never skips a retained line; after :meth:`clear_for_process`
        it may deliver some lines a second time.

        Raises:
            BrummerError: INVALID_ARGUMENT for a negative cursor or limit < 1.
        """
        if not isinstance(cursor, int) or isinstance(cursor, bool) or cursor < 0:
            raise _bad(f"cursor must be an int ≥ 0, not {cursor!r}", "pass 0 to start")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise _bad(f"limit must be an int ≥ 1, not {limit!r}", "pass e.g. limit=1000")
        with self._lock:
            if process_id is not None:
                index = self._by_process.get(process_id)
                last = self._last_seq.get(process_id, 0)
                if index is None:
                    return CursorPage(entries=(), next_cursor=max(cursor, last), missed=0)
                first = index[0]._seq
                start = max(0, cursor + 1 - first)
                entries = tuple(itertools.islice(index, start, start + limit))
            else:
                last = self._added_total
                first = last - len(self._ring) + 1
                start = max(0, cursor + 1 - first)
                entries = tuple(self._ring.entries(start, start + limit))
        missed = max(0, min(first, last + 1) - cursor - 1)
        return CursorPage(
            entries=entries,
            next_cursor=max(cursor, first - 1) + len(entries) if entries else max(cursor, last),
            missed=missed,
        )

    @contract(ThreadSafety.TS, timeout=0.1)
    def cursor(self) -> int:
        """Store-wide position of the newest line (how many lines were ever added).

        Thread safety: TS. ``get_since(store.cursor())`` returns only lines added later.
        """
        with self._lock:
            return self._added_total

    @contract(ThreadSafety.TS)
    def search(self, query: SearchQuery) -> list[LogEntry]:
        """Lines matching every criterion of ``query``, oldest first (newest N with limit).

        Thread safety: TS. The lock is held only to copy references; matching runs on the
        snapshot, outside the lock.

        Text matching is case-insensitive and ignores ANSI codes, for substrings and for
        regular expressions alike.

        Raises:
            BrummerError: INVALID_ARGUMENT for an invalid regex, ``limit < 0`` or a query
                field of the wrong type.
        """
        limit, matcher, checks = self._prepare(query)
        pid = query.process_id
        if matcher is None:  # no text: filter a snapshot (of one process when asked)
            with self._lock:
                if pid is not None:
                    index = self._by_process.get(pid)
                    snap = list(index) if index is not None else []
                else:
                    snap = self._ring.entries()
            return self._filter(snap, [], None, checks, limit)
        if pid is not None:
            checks.insert(0, lambda e: e._meta[0] == pid)
        with self._lock:
            segments = self._ring.segments()
        return _search_segments(segments, matcher, checks, limit)

    @staticmethod
    def _prepare(
        query: SearchQuery,
    ) -> tuple[int, Matcher | None, list[Callable[[LogEntry], bool]]]:
        """Validate a query; return its limit, text matcher and per-entry checks."""
        if not isinstance(query, SearchQuery):
            raise _bad(
                f"query must be a SearchQuery, not {type(query).__name__}",
                "build one with SearchQuery(text=..., regex=..., limit=...)",
            )
        limit = query.limit
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise _bad(
                f"limit must be an int ≥ 0, not {limit!r}",
                "pass 0 for all matches or N for the newest N",
            )
        _check_str(query.text, "text")
        matcher = matcher_for(query)
        level = query.level
        since, until = query.since, query.until
        for bound, label in ((since, "since"), (until, "until")):
            if bound is not None and (not isinstance(bound, datetime) or bound.tzinfo is None):
                raise _bad(
                    f"{label} must be a timezone-aware datetime, not {bound!r}",
                    "use datetime.now(UTC) - timedelta(...)",
                )
        checks: list[Callable[[LogEntry], bool]] = []
        if level is not None:
            minimum = LogLevel(level)
            checks.append(lambda e: e._meta[3] >= minimum)
        if since is not None:
            checks.append(lambda e: e._meta[2] >= since)
        if until is not None:
            checks.append(lambda e: e._meta[2] <= until)
        return limit, matcher, checks

    @staticmethod
    def _filter(
        snap: list[LogEntry],
        keys: list[str],
        matcher: Matcher | None,
        checks: list[Callable[[LogEntry], bool]],
        limit: int,
    ) -> list[LogEntry]:
        """Apply the matcher and checks to a snapshot (outside the lock)."""
        if not limit:
            found: Iterable[LogEntry] = snap
            if matcher is not None:
                found = itertools.compress(snap, matcher.match(keys))
            for check in checks:
                found = filter(check, found)
            return list(found)
        snap.reverse()  # newest first, so the limit stops the scan early
        keys.reverse()
        found = snap
        if matcher is not None:
            found = itertools.compress(snap, matcher.match(keys))
        for check in checks:
            found = filter(check, found)
        result = list(itertools.islice(found, limit))
        result.reverse()
        return result

    @contract(ThreadSafety.TS, timeout=0.1)
    def search_page(
        self, query: SearchQuery, *, before: int | None = None, max_scan: int = 10_000
    ) -> SearchPage:
        """Incremental search: look at no more than ``max_scan`` lines per call, newest first.

        Thread safety: TS. Like :meth:`search`, matching runs outside the lock.

        Scans the lines at store-wide positions ``[before - max_scan, before)`` (``before``
        None: from the newest line) and returns the matches among them, oldest first, with
        ``next_before`` to pass in the next call (None when the oldest line was reached).
        Each call costs O(max_scan) whatever the pattern, so a UI can keep every call short
        (10,000 lines: about 1-8 ms on an idle core) and show results as they come.
        ``query.limit`` caps the matches of one page (newest kept).

        Raises:
            BrummerError: INVALID_ARGUMENT as for :meth:`search`, or for max_scan < 1 or a
                negative ``before``.
        """
        if not isinstance(max_scan, int) or isinstance(max_scan, bool) or max_scan < 1:
            raise _bad(f"max_scan must be an int ≥ 1, not {max_scan!r}", "pass e.g. 10000")
        if before is not None and (not isinstance(before, int) or before < 0):
            raise _bad(
                f"before must be None or an int ≥ 0, not {before!r}",
                "pass None first, then the next_before of the previous page",
            )
        limit, matcher, checks = self._prepare(query)
        with self._lock:
            total = len(self._ring)
            base = self._added_total - total
            end = total if before is None else max(0, min(before - base, total))
            start = max(0, end - max_scan)
            snap = self._ring.entries(start, end)
            keys = self._ring.keys(start, end) if matcher is not None else []
        if query.process_id is not None:
            pid = query.process_id
            checks.insert(0, lambda e: e._meta[0] == pid)
        found = self._filter(snap, keys, matcher, checks, limit)
        return SearchPage(
            entries=tuple(found),
            next_before=base + start if start > 0 else None,
            scanned=end - start,
        )

    @contract(ThreadSafety.TS, timeout=0.1)
    def get_collapsed(self, process_id: str | None = None) -> list[CollapsedEntry]:
        """Lines with runs of identical consecutive lines of a process read as one, with a count.

        Thread safety: TS.

        Two entries are identical when process, content, level and stream match. With
        ``process_id`` only that process's lines are read; without, the interleaved
        store-wide order is used (a line of another process breaks a run).
        """
        entries = self.get_all() if process_id is None else self.get_by_process(process_id)
        out: list[CollapsedEntry] = []
        for _, run in itertools.groupby(
            entries, key=lambda e: (e._meta[0], e.content, e._meta[3], e._meta[4])
        ):
            items = list(run)
            out.append(
                CollapsedEntry(
                    entry=items[-1],
                    count=len(items),
                    first_seen=items[0].timestamp,
                    last_seen=items[-1].timestamp,
                )
            )
        return out

    @contract(ThreadSafety.TS, timeout=0.1)
    def get_urls(self) -> list[URLEntry]:
        """Detected URLs, one per process and origin (scheme, host, port), oldest first.

        Thread safety: TS.

        The URL listed for an origin is the first one the process printed (its server
        announcement, typically); later URLs of the same origin (request logs) add
        nothing. URLs of exited processes stay listed with ``active=False`` (see
        :meth:`mark_process_exited`) and come back active when printed again.
        """
        with self._lock:
            return list(self._urls.values())

    @contract(ThreadSafety.TS, timeout=0.1)
    def get_error_groups(self) -> list[ErrorGroup]:
        """Error groups (multi-line errors with stack lines), deduplicated, oldest first.

        Thread safety: TS.

        Groups idle for ``group_idle_seconds`` are closed first; a group still collecting
        lines is listed too, with id ``"<process_id>-open"``.
        """
        self._publish(self._detector._flush(idle_only=True))
        return self._detector._groups_snapshot()

    # ------------------------------------------------------------------ other writers

    @contract(ThreadSafety.TS, timeout=0.1)
    def set_proxy_url(self, url: str, proxy_url: str | None) -> int:
        """Attach the proxy's URL to every entry for ``url``; returns how many were updated.

        Thread safety: TS.
        """
        _check_str(url, "url")
        if proxy_url is not None:
            _check_str(proxy_url, "proxy_url")
        with self._lock:
            keys = [k for k, entry in self._urls.items() if entry.url == url]
            for key in keys:
                self._urls[key] = attrs.evolve(self._urls[key], proxy_url=proxy_url)
            return len(keys)

    @contract(ThreadSafety.TS, timeout=0.1)
    def mark_process_exited(self, process_id: str) -> None:
        """The process exited: its URLs become inactive and its open error group is closed.

        Thread safety: TS. The process manager or the app calls it on PROCESS_EXITED.
        """
        _check_str(process_id, "process_id")
        findings = self._detector._flush(process_id)
        with self._lock:
            for key, entry in self._urls.items():
                if key[0] == process_id and entry.active:
                    self._urls[key] = attrs.evolve(entry, active=False)
        self._publish(findings)

    def _on_process_exited(self, event: Any) -> None:
        process_id = getattr(event, "process_id", None)
        if isinstance(process_id, str):
            self.mark_process_exited(process_id)

    @contract(ThreadSafety.TS, timeout=0.1)
    def clear(self) -> None:
        """Forget every line, error, error group and URL (seq numbers keep increasing).

        Thread safety: TS.
        """
        with self._lock:
            self._ring.clear()
            self._by_process.clear()
            self._errors.clear()
            self._urls.clear()
        self._detector._clear()

    @contract(ThreadSafety.TS, timeout=1.0)
    def clear_for_process(self, process_id: str) -> None:
        """Forget the lines, errors, error groups and URLs of one process (O(n) in the store).

        Thread safety: TS.
        """
        _check_str(process_id, "process_id")
        with self._lock:
            if self._by_process.pop(process_id, None) is not None:
                entries = self._ring.entries()
                keep = [e._meta[0] != process_id for e in entries]
                self._ring.rebuild(
                    list(itertools.compress(entries, keep)),
                    list(itertools.compress(self._ring.keys(), keep)),
                )
            self._errors = deque(
                (e for e in self._errors if e._meta[0] != process_id), maxlen=self._errors.maxlen
            )
            for key in [k for k in self._urls if k[0] == process_id]:
                del self._urls[key]
        self._detector._clear(process_id)

    @contract(ThreadSafety.TS, timeout=0.1)
    def close(self) -> None:
        """Stop accepting lines; open error groups are closed and published. Idempotent.

        Thread safety: TS. Reads keep working on what was stored.
        """
        with self._lock:
            already, self._closed = self._closed, True
        if already:
            return
        subscription, self._exit_subscription = self._exit_subscription, None
        unsubscribe = getattr(self._bus, "unsubscribe", None)
        if subscription is not None and callable(unsubscribe):
            try:
                unsubscribe(subscription)
            except BrummerError as exc:  # the bus was stopped first: nothing left to undo
                _log.debug("log store unsubscribe after bus stop: %s", exc)
        self._publish(self._detector._flush())

    @property
    @contract(ThreadSafety.TS)
    def closed(self) -> bool:
        """True after :meth:`close`.

        Thread safety: TS.
        """
        return self._closed

    @property
    @contract(ThreadSafety.TS)
    def detector(self) -> Detector:
        """The detector classifying this store's lines.

        Thread safety: TS.
        """
        return self._detector

    @contract(ThreadSafety.TS, timeout=0.1)
    def metrics(self) -> LogStoreMetrics:
        """Counters: retained entries, add rate, errors, memory estimate.

        Thread safety: TS.

        ``entries_per_sec`` averages the last :data:`RATE_WINDOW_SECONDS` whole seconds
        (the current partial second excluded). ``memory_usage_mb`` samples up to 256
        entries and extrapolates: approximate, not an exact RSS figure.
        """
        now_second = int(time.monotonic())
        with self._lock:
            total = len(self._ring)
            rate = sum(
                n
                for second, n in self._rate
                if now_second - RATE_WINDOW_SECONDS <= second < now_second
            )
            sample = self._ring.sample(_MEMORY_SAMPLE)
            blob_chars = self._ring.blob_bytes()
            errors = len(self._errors)
            urls = len(self._urls)
            added, evicted = self._added_total, self._evicted_total
        per_entry = _entry_bytes(sample) if sample else 0.0
        groups = self._detector._group_count()
        return LogStoreMetrics(
            total_entries=total,
            entries_per_sec=rate / RATE_WINDOW_SECONDS,
            error_count=errors,
            queue_depth=0,
            memory_usage_mb=(per_entry * total + blob_chars) / 1e6,
            added_total=added,
            evicted_total=evicted,
            url_count=urls,
            error_group_count=groups,
        )


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL found by detection."""
    scheme, _, rest = url.partition("://")
    end = len(rest)
    for sep in "/?#":
        pos = rest.find(sep)
        if pos != -1:
            end = min(end, pos)
    return f"{scheme}://{rest[:end]}"


def _meta_for(
    cache: dict[Any, _Meta],
    pid: str,
    name: str,
    now: datetime,
    is_error: bool,
    cls: Any,
) -> _Meta:
    meta = cache.get(cls)
    if meta is None:
        if cls is None:
            level, tags, priority = LogLevel.INFO, (), 10
        else:
            level, tags, priority = cls.level, cls.tags, cls.priority
        if is_error:
            priority += STDERR_PRIORITY
        meta = (pid, name, now, level, is_error, tags, priority, None)
        cache[cls] = meta
    return meta


def _entry_bytes(sample: list[LogEntry]) -> float:
    """Average bytes of an entry's own objects: entry, seq, content, 2 index pointers."""
    total = 0
    for entry in sample:
        total += sys.getsizeof(entry) + sys.getsizeof(entry._seq)
        total += sys.getsizeof(entry.content) + 2 * 8
    return total / len(sample)


def _search_segments(
    segments: Sequence[
        tuple[Sequence[LogEntry], str | None, list[str] | None, Sequence[int] | None]
    ],
    matcher: Matcher,
    checks: list[Callable[[LogEntry], bool]],
    limit: int,
) -> list[LogEntry]:
    """Text search over the ring's segments (outside the lock), newest first with a limit.

    A sealed segment's keys are one joined string, so a literal is found with
    ``str.find`` over contiguous memory; hits are mapped to lines by ``bisect`` inside
    ``map`` (C code) and only matching entries are touched.
    """
    result: list[LogEntry] = []
    for entries, blob, keys, starts in reversed(segments) if limit else segments:
        lines = matcher.lines(blob, keys, starts)
        found: Iterable[LogEntry]
        if lines is not None:  # few hits: touch only the matching entries
            found = map(entries.__getitem__, lines)
        else:
            part = keys if keys is not None else (blob or "").split("\n")
            found = itertools.compress(entries, matcher.line_by_line(part))
        for check in checks:
            found = filter(check, found)
        if not limit:
            result.extend(found)
            continue
        result.extend(reversed(list(found)))
        if len(result) >= limit:
            break
    if limit:
        del result[limit:]
        result.reverse()
    return result

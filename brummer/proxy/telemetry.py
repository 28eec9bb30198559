"""Browser telemetry: the session store, the post parser and the monitor-script injection.

The proxy injects one ``<script src="/__brummer__/monitor.js">`` into HTML pages; the
script posts batches of events (page loads, console errors and warnings, uncaught errors,
unhandled rejections, failed fetch/XHR) to ``/__brummer__/telemetry``. This module parses
those posts (bounded), keeps them per process in :class:`TelemetryStore` (bounded: sessions
per process, events per session, idle expiry) and rewrites pages and their
``Content-Security-Policy`` so the script may run.

Not for: arbitrary analytics. Only what a developer needs to see browser errors beside the
terminal's.
"""

from __future__ import annotations

import json
import re
import secrets
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import attrs

from brummer.contracts import Cleanup, ThreadSafety, TSLock, contract
from brummer.errors import BrummerError, ErrorCode

__all__ = [
    "BROWSER_LOG_RULES",
    "ERROR_EVENT_TYPES",
    "MAX_TELEMETRY_BODY",
    "MONITOR_PATH",
    "TELEMETRY_PATH",
    "TelemetryBatch",
    "TelemetryEvent",
    "TelemetrySession",
    "TelemetryStore",
    "browser_log_lines",
    "decode_body",
    "inject_monitor",
    "parse_telemetry",
    "relax_csp",
]

COMPONENT = "proxy"
MONITOR_PATH = "/__brummer__/monitor.js"
TELEMETRY_PATH = "/__brummer__/telemetry"
MAX_TELEMETRY_BODY = 256 * 1024  # bytes accepted in one telemetry post (413 beyond)
MAX_DECODED_BODY = 32 * 1024 * 1024  # bytes a compressed HTML page may inflate to for injection
MAX_EVENTS_PER_POST = 500  # events accepted in one post (400 beyond)
MAX_STRING = 4000  # characters kept of any string inside an event
MAX_STACK_LINES = 30  # stack frames forwarded to the log store per error
ERROR_EVENT_TYPES = frozenset(
    {"javascript_error", "unhandled_rejection", "network_error", "resource_error"}
)
_MARKER = MONITOR_PATH.encode()

# Detection rules (brummer.logs rules.toml shape) for the lines browser_log_lines() makes:
# they tag them "browser" and open an error group per browser error, with its stack.
# Pass them to LogStore(extra_rules=BROWSER_LOG_RULES) (or add them to rules.toml).
BROWSER_LOG_RULES: Mapping[str, Any] = MappingProxyType(
    {
        "tag": [
            {
                "name": "browser",
                "triggers": ["[browser]"],
                "pattern": r"^\[browser\] ",
                "tags": ["browser"],
            }
        ],
        "error": [
            {
                "name": "browser-error",
                "triggers": ["[browser]"],
                "pattern": (
                    r"^\[browser\] (?:Uncaught |Unhandled promise rejection: |console\.error: "
                    r"|Request failed: |Failed to load resource: )"
                    r"(?:(?P<kind>(?:[A-Z]\w*?)?(?:Error|Exception)): )?(?P<message>.*)$"
                ),
                "kind": "BrowserError",
                "language": "javascript",
                "style": "stack",
            }
        ],
    }
)


@contract(ThreadSafety.TS)
@attrs.frozen
class TelemetryEvent:
    """One thing that happened in a browser page.

    Thread safety: TS (frozen value object).

    Attributes:
        type: "page_load", "javascript_error", "unhandled_rejection", "console",
            "network_error", "resource_error", ... (what the monitor sent).
        timestamp: when it happened (the browser's clock, UTC).
        data: the event's fields (strings truncated to 4000 characters).
    """

    type: str
    timestamp: datetime
    data: Mapping[str, Any] = attrs.field(factory=lambda: MappingProxyType({}))

    @property
    @contract(ThreadSafety.TS)
    def is_error(self) -> bool:
        """True for errors: uncaught errors, rejections, failed requests, console.error.

        Thread safety: TS.
        """
        return self.type in ERROR_EVENT_TYPES or (
            self.type == "console" and self.data.get("level") == "error"
        )


@contract(ThreadSafety.TS)
@attrs.frozen
class TelemetrySession:
    """A snapshot of one browser page session (one page load, until the tab goes away).

    Thread safety: TS (frozen value object).
    """

    id: str
    process_name: str
    url: str
    user_agent: str
    started: datetime
    last_activity: datetime
    events: tuple[TelemetryEvent, ...] = ()
    error_count: int = 0
    dropped_events: int = 0


@contract(ThreadSafety.TS)
@attrs.frozen
class TelemetryBatch:
    """A parsed telemetry post.

    Thread safety: TS (frozen value object).
    """

    session_id: str
    url: str
    events: tuple[TelemetryEvent, ...]


class _Session:
    """Mutable per-session state inside the store; never handed out."""

    __slots__ = (
        "dropped",
        "error_count",
        "events",
        "id",
        "last_activity",
        "process_name",
        "started",
        "url",
        "user_agent",
    )

    def __init__(
        self, session_id: str, process_name: str, url: str, user_agent: str, now: datetime, cap: int
    ) -> None:
        self.id = session_id
        self.process_name = process_name
        self.url = url
        self.user_agent = user_agent
        self.started = now
        self.last_activity = now
        self.events: deque[TelemetryEvent] = deque(maxlen=cap)
        self.error_count = 0
        self.dropped = 0

    def add(self, events: Iterable[TelemetryEvent]) -> None:
        for event in events:
            if len(self.events) == self.events.maxlen:
                self.dropped += 1
            self.events.append(event)
            if event.is_error:
                self.error_count += 1

    def snapshot(self) -> TelemetrySession:
        return TelemetrySession(
            id=self.id,
            process_name=self.process_name,
            url=self.url,
            user_agent=self.user_agent,
            started=self.started,
            last_activity=self.last_activity,
            events=tuple(self.events),
            error_count=self.error_count,
            dropped_events=self.dropped,
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contract(ThreadSafety.TS, cleanup=Cleanup.AUTOMATIC)
class TelemetryStore:
    """Browser sessions per process, bounded three ways.

    Thread safety: TS. Every method may be called from any thread; results are snapshots.

    Bounds: at most ``max_sessions_per_process`` sessions per process (the least recently
    active go first), ``max_events_per_session`` events per session (the oldest go first,
    counted in ``dropped_events``), and sessions idle longer than ``session_timeout``
    seconds are evicted whenever anything is added.
    """

    def __init__(
        self,
        *,
        max_sessions_per_process: int = 100,
        max_events_per_session: int = 1000,
        session_timeout: float = 1800.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        for name, value in (
            ("max_sessions_per_process", max_sessions_per_process),
            ("max_events_per_session", max_events_per_session),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BrummerError(
                    COMPONENT,
                    ErrorCode.INVALID_ARGUMENT,
                    f"{name} must be a positive int, not {value!r}",
                    hint="pass an integer ≥ 1",
                )
        if not isinstance(session_timeout, int | float) or not session_timeout > 0:
            raise BrummerError(
                COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                f"session_timeout must be a positive number of seconds, not {session_timeout!r}",
                hint="pass seconds > 0, e.g. 1800",
            )
        self._max_sessions = max_sessions_per_process
        self._max_events = max_events_per_session
        self._timeout = timedelta(seconds=float(session_timeout))
        self._clock = clock
        self._lock = TSLock("proxy.telemetry")  # guards _sessions; no I/O or callbacks under it
        self._sessions: OrderedDict[str, _Session] = OrderedDict()  # least recently active first

    @contract(ThreadSafety.TS, timeout=0.1, guarantees="the session is stored atomically")
    def add_session(self, session: TelemetrySession) -> None:
        """Store a session snapshot, merging its events into an existing one with its id.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT when it is not a TelemetrySession or has no id.
        """
        if not isinstance(session, TelemetrySession) or not session.id:
            raise BrummerError(
                COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                f"not a TelemetrySession with an id: {session!r}",
                hint="build a brummer.proxy.TelemetrySession(id=..., process_name=..., ...)",
            )
        self.record(
            session.process_name,
            session.id,
            session.url,
            session.events,
            user_agent=session.user_agent,
        )

    @contract(ThreadSafety.TS, timeout=0.1)
    def record(
        self,
        process_name: str,
        session_id: str,
        url: str,
        events: Sequence[TelemetryEvent],
        *,
        user_agent: str = "",
    ) -> TelemetrySession:
        """Append events to a session (created on first sight); returns its new snapshot.

        Thread safety: TS.
        """
        now = self._clock()
        with self._lock:
            self._expire(now)
            session = self._sessions.get(session_id)
            if session is None:
                session = _Session(session_id, process_name, url, user_agent, now, self._max_events)
                self._sessions[session_id] = session
                self._bound_process(process_name)
            else:
                self._sessions.move_to_end(session_id)
                if url:
                    session.url = url
            session.last_activity = now
            session.add(events)
            return session.snapshot()

    @contract(ThreadSafety.TS, timeout=0.5)
    def get_session(self, session_id: str) -> TelemetrySession:
        """The snapshot of one session.

        Thread safety: TS.

        Raises:
            BrummerError: NOT_FOUND when there is no such session (or it expired).
        """
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None:
                return session.snapshot()
        raise BrummerError(
            COMPONENT,
            ErrorCode.NOT_FOUND,
            f"no telemetry session {session_id!r}",
            hint="list sessions with get_sessions_for_process(); idle sessions expire",
            context={"session_id": session_id},
        )

    @contract(ThreadSafety.TS, timeout=1.0)
    def get_sessions_for_process(self, process_name: str) -> list[TelemetrySession]:
        """Snapshots of the sessions of one process, least recently active first.

        Thread safety: TS.
        """
        with self._lock:
            return [s.snapshot() for s in self._sessions.values() if s.process_name == process_name]

    @contract(ThreadSafety.TS, timeout=1.0)
    def get_all_sessions(self) -> list[TelemetrySession]:
        """Snapshots of every session, least recently active first.

        Thread safety: TS.
        """
        with self._lock:
            return [s.snapshot() for s in self._sessions.values()]

    @contract(ThreadSafety.TS, timeout=2.0, guarantees="all of the process's sessions go at once")
    def clear_sessions_for_process(self, process_name: str) -> None:
        """Remove every session of one process.

        Thread safety: TS.
        """
        with self._lock:
            for sid in [sid for sid, s in self._sessions.items() if s.process_name == process_name]:
                del self._sessions[sid]

    @contract(ThreadSafety.TS)
    def clear(self) -> None:
        """Remove every session.

        Thread safety: TS.
        """
        with self._lock:
            self._sessions.clear()

    def _expire(self, now: datetime) -> None:
        while self._sessions:
            sid, oldest = next(iter(self._sessions.items()))
            if now - oldest.last_activity <= self._timeout:
                return
            del self._sessions[sid]

    def _bound_process(self, process_name: str) -> None:
        mine = [sid for sid, s in self._sessions.items() if s.process_name == process_name]
        for sid in mine[: max(0, len(mine) - self._max_sessions)]:
            del self._sessions[sid]


def _clip(value: Any, depth: int = 0) -> Any:
    """A JSON value with strings clipped and nesting bounded, made read-only."""
    if isinstance(value, str):
        return value[:MAX_STRING]
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth >= 4:
        return _clip(json.dumps(value)[:MAX_STRING])
    if isinstance(value, list):
        return tuple(_clip(v, depth + 1) for v in value[:100])
    if isinstance(value, dict):
        return MappingProxyType(
            {str(k)[:200]: _clip(v, depth + 1) for k, v in list(value.items())[:100]}
        )
    return str(value)[:MAX_STRING]


def _bad(message: str, hint: str) -> BrummerError:
    return BrummerError(COMPONENT, ErrorCode.INVALID_ARGUMENT, message, hint=hint)


@contract(ThreadSafety.TS)
def parse_telemetry(body: bytes) -> TelemetryBatch:
    """Parse one telemetry post: ``{"sessionId": str, "url": str, "events": [...]}``.

    Thread safety: TS. Pure.

    Raises:
        BrummerError: RESOURCE_LIMIT when the body is over 256 KiB or has too many events
            (answer 413); INVALID_ARGUMENT when it is not such JSON (answer 400).
    """
    if len(body) > MAX_TELEMETRY_BODY:
        raise BrummerError(
            COMPONENT,
            ErrorCode.RESOURCE_LIMIT,
            f"telemetry post of {len(body)} bytes is over the {MAX_TELEMETRY_BODY} byte limit",
            hint="send smaller batches",
            temporary=False,
        )
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _bad(f"telemetry post is not JSON: {exc}", "post a JSON object") from exc
    if not isinstance(doc, dict):
        raise _bad("telemetry post must be a JSON object", 'post {"sessionId", "events"}')
    session_id = doc.get("sessionId")
    if not isinstance(session_id, str) or not 0 < len(session_id) <= 128:
        raise _bad("telemetry post needs a sessionId string (1 to 128 chars)", "set sessionId")
    url = doc.get("url", "")
    raw_events = doc.get("events", [])
    if not isinstance(url, str) or not isinstance(raw_events, list):
        raise _bad("telemetry url must be a string and events a list", "fix the post's shape")
    if len(raw_events) > MAX_EVENTS_PER_POST:
        raise BrummerError(
            COMPONENT,
            ErrorCode.RESOURCE_LIMIT,
            f"telemetry post has {len(raw_events)} events; at most {MAX_EVENTS_PER_POST}",
            hint="send smaller batches",
            temporary=False,
        )
    events = []
    for raw in raw_events:
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            raise _bad("every telemetry event must be an object with a type", "fix the event")
        stamp = raw.get("timestamp")
        when = _utcnow()
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            try:
                when = datetime.fromtimestamp(stamp / 1000.0, UTC)
            except (OverflowError, OSError, ValueError):
                when = _utcnow()
        data = raw.get("data", {})
        clipped = _clip(data if isinstance(data, dict) else {"value": data})
        events.append(TelemetryEvent(raw["type"][:64], when, clipped))
    return TelemetryBatch(session_id, url[:MAX_STRING], tuple(events))


@contract(ThreadSafety.TS)
def browser_log_lines(event: TelemetryEvent) -> list[tuple[str, bool]]:
    """The log lines (content, is_error) a browser event becomes; [] for non-log events.

    Thread safety: TS. Pure.

    Errors become "[browser] <kind>: <message>" followed by their stack frames, so the log
    store groups them with the stack like a terminal error.
    """
    data = event.data
    message = str(data.get("message", "") or data.get("reason", "") or "").strip()
    lines: list[tuple[str, bool]] = []
    if event.type == "javascript_error":
        where = ""
        if data.get("filename"):
            where = f" ({data.get('filename')}:{data.get('lineno', 0)}:{data.get('colno', 0)})"
        text = message or "error"
        if not text.startswith("Uncaught"):
            text = f"Uncaught {text}"
        lines.append((f"[browser] {text}{where}", True))
    elif event.type == "unhandled_rejection":
        lines.append((f"[browser] Unhandled promise rejection: {message}", True))
    elif event.type == "network_error":
        status = data.get("status")
        what = f"HTTP {status}" if status else str(data.get("error", "failed"))
        lines.append(
            (
                f"[browser] Request failed: {data.get('method', 'GET')} {data.get('url', '')}"
                f" → {what}",
                True,
            )
        )
    elif event.type == "resource_error":
        lines.append((f"[browser] Failed to load resource: {data.get('url', '')}", True))
    elif event.type == "console" and data.get("level") in {"error", "warn"}:
        level = str(data.get("level"))
        lines.append((f"[browser] console.{level}: {message}", level == "error"))
    else:
        return []
    stack = data.get("stack")
    if isinstance(stack, str) and stack:
        frames = [line for line in stack.splitlines() if line.strip()]
        if frames and message and (message in frames[0] or frames[0].strip() in message):
            frames = frames[1:]
        lines.extend((f"    {frame.strip()}", lines[0][1]) for frame in frames[:MAX_STACK_LINES])
    return lines


# --- injection -------------------------------------------------------------------------------

_HEAD_OPEN = re.compile(rb"<head(\s[^>]*)?>", re.IGNORECASE)
_HTML_OPEN = re.compile(rb"<html(\s[^>]*)?>", re.IGNORECASE)
_DOCTYPE = re.compile(rb"<!doctype[^>]*>", re.IGNORECASE)


@contract(ThreadSafety.TS)
def decode_body(body: bytes, encoding: str, *, limit: int = MAX_DECODED_BODY) -> bytes | None:
    """Decompress a gzip or deflate body (identity passes); None when it cannot be decoded.

    Thread safety: TS. Pure.

    A body that would inflate to more than ``limit`` bytes is not decoded (None): a few
    kilobytes of gzip can hold gigabytes.
    """
    encoding = encoding.strip().lower()
    if encoding in {"", "identity"}:
        return body
    if encoding in {"gzip", "x-gzip"}:
        return _inflate(body, 16 + zlib.MAX_WBITS, limit)
    if encoding == "deflate":
        page = _inflate(body, zlib.MAX_WBITS, limit)
        if page is None:
            page = _inflate(body, -zlib.MAX_WBITS, limit)  # raw deflate, as some servers send
        return page
    return None


def _inflate(body: bytes, wbits: int, limit: int) -> bytes | None:
    inflater = zlib.decompressobj(wbits)
    try:
        page = inflater.decompress(body, limit + 1)
    except zlib.error:
        return None
    if len(page) > limit or not inflater.eof:
        return None  # over the limit, or truncated
    return page


@contract(ThreadSafety.TS)
def inject_monitor(html: bytes, process_name: str, nonce: str = "") -> bytes | None:
    """The page with one monitor ``<script>`` tag added; None when it already has one.

    Thread safety: TS. Pure.

    The tag goes right after ``<head>`` (else after ``<html>``, else after the doctype, else
    first) so the monitor sees errors thrown by the page's own scripts.
    """
    if _MARKER in html:
        return None
    name = (process_name.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")).encode()
    nonce_attr = f' nonce="{nonce}"'.encode() if nonce else b""
    tag = (
        b'<script src="'
        + _MARKER
        + b'" data-brummer-process="'
        + name
        + b'"'
        + nonce_attr
        + b"></script>"
    )
    for pattern in (_HEAD_OPEN, _HTML_OPEN, _DOCTYPE):
        match = pattern.search(html, 0, 65536)
        if match:
            return html[: match.end()] + tag + html[match.end() :]
    return tag + html


def _directives(policy: str) -> list[list[str]]:
    return [d.split() for d in policy.split(";") if d.strip()]


@contract(ThreadSafety.TS)
def relax_csp(policy: str) -> tuple[str, str]:
    """Loosen a Content-Security-Policy just enough for the monitor; returns (policy, nonce).

    Thread safety: TS. Pure.

    The script's directive (``script-src-elem``, else ``script-src``, else a new
    ``script-src-elem`` copied from ``default-src``) gets ``'self'``, and a fresh nonce when
    it already relies on nonces, hashes or ``'strict-dynamic'``; ``connect-src`` (or a copy
    of ``default-src``) gets ``'self'`` so the monitor may post. Nothing else changes. The
    nonce is "" when none is needed.
    """
    directives = _directives(policy)
    by_name = {d[0].lower(): d for d in directives if d}
    nonce = ""

    def loosen(directive: list[str], *, script: bool) -> None:
        nonlocal nonce
        sources = [s for s in directive[1:] if s.lower() != "'none'"]
        lowered = [s.lower() for s in sources]
        # A nonce is added only where the policy already works with nonces or hashes (or
        # 'strict-dynamic'): elsewhere a nonce would switch off the page's 'unsafe-inline'.
        keyed = any(s.startswith(("'nonce-", "'sha256-", "'sha384-", "'sha512-")) for s in lowered)
        if script and (keyed or "'strict-dynamic'" in lowered):
            nonce = nonce or secrets.token_urlsafe(12)
            sources.append(f"'nonce-{nonce}'")
        if "'self'" not in lowered:
            sources.append("'self'")
        directive[1:] = sources

    default = by_name.get("default-src")

    def own(name: str) -> list[str] | None:
        # Loosen a copy of default-src under the specific name, never default-src itself,
        # so images, styles and frames keep the page's own policy.
        if name in by_name:
            return by_name[name]
        if default is None:
            return None
        directive = [name, *default[1:]]
        directives.append(directive)
        by_name[name] = directive
        return directive

    script_directive = by_name.get("script-src-elem") or by_name.get("script-src")
    if script_directive is None:
        script_directive = own("script-src-elem")
    if script_directive is not None:
        loosen(script_directive, script=True)
    connect_directive = own("connect-src")
    if connect_directive is not None:
        loosen(connect_directive, script=False)
    return "; ".join(" ".join(d) for d in directives), nonce

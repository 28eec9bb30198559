"""Detection: what a log line means (level, tags, priority, errors, builds, tests, URLs).

The rules live in ``rules.toml`` beside this module (loaded with :mod:`tomllib`) and can be
extended by the user's configuration through ``Detector(extra_rules=...)``. Detection
looks only at the ANSI-stripped text and never at more than ``max_detect_chars`` of a
line, so a 10 MB line costs no more than a short one.

Speed: a batch of lines is joined, lower-cased and scanned once per distinct *trigger*
substring; only the few lines containing a trigger (or following an open error) are looked
at one by one. Plain lines therefore cost a few nanoseconds per character in C.

This module is *not* a parser for every stack-trace format in existence: it recognises the
common ones (JavaScript/Node, TypeScript, React/Next/Vite, Python, Go, Rust, Java, ESLint,
network errors) and lets users add their own rules.

Thread safety: TS. A :class:`Detector` guards its per-process error-grouping state with
its own lock, never held while calling out.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from brummer.contracts import ThreadSafety, contract
from brummer.logs.model import _ANSI, ErrorGroup, LogLevel
from brummer.logs.rules import DetectionRule, _load

__all__ = ["Classification", "Detector", "Finding", "detect_urls", "strip_ansi"]

_COMPONENT = "logs"

_URL = re.compile(
    r"\b(?:https?|wss?)://"
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._~%-]*[A-Za-z0-9])?|[A-Za-z0-9])"
    r"(?::\d{1,5})?"
    r"(?:[/?#][^\s\"'<>`\x1b]*)?"
)
_URL_TRAILING = ".,;:!?'\"*"
_OPENER = {")": "(", "]": "[", "}": "{"}
_LOCAL_HOSTS = {"0.0.0.0": "localhost", "[::]": "localhost", "[::0]": "localhost"}
_COUNTS = re.compile(
    r"(\d+)\s+(passed|passing|failed|failing|skipped|pending|todo|ignored|errors?|total)\b",
    re.IGNORECASE,
)
_TOTAL_PAREN = re.compile(r"\((\d+)\)")
_NORMALISE = re.compile(r"0x[0-9a-fA-F]+|\d+")
_PYTHON_END = re.compile(r"^(?P<kind>[A-Za-z_][\w.]*)(?::\s*(?P<message>.*))?$")

LEVEL_PRIORITY: Mapping[LogLevel, int] = {
    LogLevel.DEBUG: 0,
    LogLevel.INFO: 10,
    LogLevel.WARNING: 30,
    LogLevel.ERROR: 50,
    LogLevel.CRITICAL: 70,
}
STDERR_PRIORITY = 5


@contract(ThreadSafety.TS)
def strip_ansi(text: str) -> str:
    """Return ``text`` without ANSI escape sequences (colours, cursor moves, OSC links).

    Thread safety: TS. Pure.
    """
    return _ANSI.sub("", text) if "\x1b" in text else text


@contract(ThreadSafety.TS)
def detect_urls(text: str) -> list[str]:
    """Find http, https, ws and wss URLs in ``text`` (ANSI codes ignored).

    Thread safety: TS. Pure.

    Trailing punctuation is trimmed (and a closing bracket unless the URL opened one),
    ``0.0.0.0`` and ``[::]`` become ``localhost``, an empty port (``http://host:``) is
    dropped, IPv6 literals such as ``[::1]`` are kept. Each URL appears once, in order.
    """
    plain = strip_ansi(text)
    if "://" not in plain:
        return []
    seen: dict[str, None] = {}
    for match in _URL.finditer(plain):
        url = _trim_url(match.group(0))
        if url:
            seen.setdefault(url, None)
    return list(seen)


def _trim_url(url: str) -> str:
    if (
        url[-1] not in _URL_TRAILING
        and url[-1] not in ")]}"
        and "0.0.0.0" not in url
        and "[::]" not in url
        and "[::0]" not in url
    ):
        return url  # the common case: nothing to trim or rewrite
    while url:
        last = url[-1]
        unbalanced = last in ")]}" and url.count(_OPENER[last]) < url.count(last)
        if last in _URL_TRAILING or unbalanced:
            url = url[:-1]
        else:
            break
    scheme, _, rest = url.partition("://")
    if not rest:
        return ""
    host_end = len(rest)
    for sep in "/?#":
        pos = rest.find(sep)
        if pos != -1:
            host_end = min(host_end, pos)
    authority, path = rest[:host_end], rest[host_end:]
    if authority.startswith("["):
        host, _, port = authority[1:].partition("]")
        host = f"[{host}]"
        port = port.removeprefix(":")
    else:
        host, _, port = authority.partition(":")
    host = _LOCAL_HOSTS.get(host, host)
    if not host:
        return ""
    return f"{scheme}://{host}{':' + port if port else ''}{path}"


@contract(ThreadSafety.TS)
@attrs.frozen
class Classification:
    """Level, tags and priority of one line, as detection decided from its content.

    Thread safety: TS (immutable).
    """

    level: LogLevel = LogLevel.INFO
    tags: tuple[str, ...] = ()
    priority: int = LEVEL_PRIORITY[LogLevel.INFO]


@contract(ThreadSafety.TS)
@attrs.frozen
class Finding:
    """Something detection found that is worth an event (``kind`` is an EventType value).

    Thread safety: TS (immutable).

    ``kind`` is one of ``"error.detected"``, ``"build.event"``, ``"test.passed"``,
    ``"test.failed"`` or ``"url.detected"``; ``data`` is the event payload.
    """

    kind: str
    process_id: str
    data: Mapping[str, Any]


class _OpenGroup:
    """An error group still collecting lines (mutable; only touched under Detector._lock)."""

    __slots__ = (
        "blank_pending",
        "first_seen",
        "kind",
        "language",
        "last_mono",
        "last_seen",
        "lines",
        "message",
        "process_name",
        "style",
    )

    def __init__(
        self, rule: DetectionRule, kind: str, message: str, line: str, process_name: str
    ) -> None:
        now = datetime.now(UTC)
        self.kind = kind
        self.language = rule.language
        self.style = rule.style
        self.message = message
        self.lines = [line]
        self.process_name = process_name
        self.first_seen = now
        self.last_seen = now
        self.last_mono = time.monotonic()
        self.blank_pending = False


class _GroupRecord:
    """A closed, deduplicated error group (mutable; only touched under Detector._lock)."""

    __slots__ = ("count", "first_seen", "id", "kind", "language", "last_seen", "lines", "message")

    def __init__(self, group_id: str, group: _OpenGroup) -> None:
        self.id = group_id
        self.kind = group.kind
        self.language = group.language
        self.message = group.message
        self.lines = tuple(group.lines)
        self.first_seen = group.first_seen
        self.last_seen = group.last_seen
        self.count = 1


@attrs.frozen
class _Batch:
    keys: list[str]
    special: dict[int, Classification]
    findings: list[Finding]
    urls: list[tuple[int, str, str]]  # (line index, url, context)


@contract(ThreadSafety.TS)
class Detector:
    """Classifies lines and groups multi-line errors, per process.

    Thread safety: TS. Stateless classification may run in many threads at once; the
    per-process error-grouping state is guarded by an internal lock held only for the
    bookkeeping of one batch (regex work on trigger lines included, never I/O or events).

    Args:
        extra_rules: user rules in the ``rules.toml`` format: a path to a TOML file, an
            already parsed mapping (e.g. a table of ``.brum.toml``), or a list of them.
        max_groups: how many distinct error groups to keep (oldest dropped first).
    """

    def __init__(
        self,
        extra_rules: str
        | Path
        | Mapping[str, Any]
        | Sequence[str | Path | Mapping[str, Any]]
        | None = None,
        *,
        max_groups: int = 500,
    ) -> None:
        ruleset = _load(extra_rules)
        self._settings = ruleset.settings
        self._rules = ruleset.rules
        self._max_groups = max_groups
        continuations = [r for r in ruleset.rules if r.section == "continuation"]
        # one alternation instead of one match() per rule; each keeps its own case flag
        self._continuation = _alternation([r.pattern for r in continuations])
        self._python_chain = _alternation(
            [r.pattern for r in continuations if r.name == "python-chain"]
        )
        by_trigger: dict[str, list[DetectionRule]] = {}
        for rule in ruleset.rules:
            for trigger in rule.triggers:
                by_trigger.setdefault(trigger, []).append(rule)
        by_trigger.setdefault("://", [])
        order = {rule: i for i, rule in enumerate(ruleset.rules)}
        self._by_trigger = {
            t: tuple(sorted(set(rs), key=order.__getitem__)) for t, rs in by_trigger.items()
        }
        self._order = order
        self._ascii_triggers = tuple(t for t in self._by_trigger if t.isascii())
        self._other_triggers = tuple(t for t in self._by_trigger if not t.isascii())
        self._lock = threading.Lock()  # guards _open, _groups, _next_group
        self._open: dict[str, _OpenGroup] = {}
        self._groups: OrderedDict[tuple[str, str, str], _GroupRecord] = OrderedDict()
        self._group_process: dict[str, tuple[str, str]] = {}
        self._next_group = itertools.count(1)
        self._rules_cache: dict[tuple[tuple[str, ...], bool], tuple[DetectionRule, ...]] = {}
        self._classification_cache: dict[tuple[LogLevel, tuple[str, ...], int], Classification] = {}

    @property
    @contract(ThreadSafety.TS)
    def rules(self) -> tuple[DetectionRule, ...]:
        """The compiled rules in evaluation order.

        Thread safety: TS (immutable tuple).
        """
        return self._rules

    @contract(ThreadSafety.TS)
    def classify(self, content: str) -> Classification:
        """Level, tags and priority of one line from its content alone (no grouping state).

        Thread safety: TS. Pure.
        """
        return self._classify_line(strip_ansi(content[: self._settings.max_detect_chars]))[0]

    # ------------------------------------------------------------------ batch scanning

    def _scan(self, process_id: str, process_name: str, contents: Sequence[str]) -> _Batch:
        """Classify a batch of lines of one process; keys are lowered, ANSI-stripped texts."""
        n = len(contents)
        cap = self._settings.max_detect_chars
        if n and max(map(len, contents)) > cap:  # huge lines: full keys, capped detection
            keys = [strip_ansi(c).lower().replace("\n", " ") for c in contents]
            lowered = "\n".join(k[:cap] for k in keys)
        else:
            blob = "\n".join(contents)
            if "\x1b" in blob:
                blob = _ANSI.sub("", blob)
            if blob.isascii():
                lowered = blob.lower()
                keys = lowered.split("\n")
            else:  # str.lower is slow on non-ASCII text: line by line (ASCII lines fast)
                keys = list(map(str.lower, blob.split("\n")))
                lowered = "\n".join(keys)
            if len(keys) != n:  # a content held "\n" itself (or n == 0): line by line
                keys = [strip_ansi(c).lower().replace("\n", " ") for c in contents]
                lowered = "\n".join(keys)
        hits: dict[int, list[str]] = {}
        triggers = self._ascii_triggers if lowered.isascii() else self._by_trigger
        for trigger in [t for t in triggers if t in lowered]:
            pos = lowered.find(trigger)
            line = 0
            last = 0
            while pos != -1:
                line += lowered.count("\n", last, pos)
                found = hits.get(line)
                if found is None:
                    hits[line] = [trigger]
                elif found[-1] != trigger:
                    found.append(trigger)
                last = lowered.find("\n", pos)
                if last == -1:
                    break
                pos = lowered.find(trigger, last + 1)
        special: dict[int, Classification] = {}
        findings: list[Finding] = []
        urls: list[tuple[int, str, str]] = []
        if not hits and process_id not in self._open:
            return _Batch(keys, special, findings, urls)
        with self._lock:
            group = self._open.get(process_id)
            candidates = sorted(hits)
            ci = 0
            i = 0
            while True:
                if group is None:
                    while ci < len(candidates) and candidates[ci] < i:
                        ci += 1
                    if ci == len(candidates):
                        break
                    i = candidates[ci]
                if i >= n:
                    break
                raw = contents[i]
                text = strip_ansi(raw[:cap]) if "\x1b" in raw else raw[:cap]
                line_hits = hits.get(i, ())
                group, cls = self._feed(process_id, process_name, group, text, line_hits, findings)
                if cls is not None:
                    special[i] = cls
                if "://" in line_hits:
                    found_urls = detect_urls(text)
                    if found_urls:
                        urls.extend((i, url, text) for url in found_urls)
                        base = cls or self._make_class(LogLevel.INFO, (), 0)
                        special[i] = self._make_class(
                            base.level,
                            _merge(base.tags, ("url",)),
                            base.priority - LEVEL_PRIORITY[base.level],
                        )
                i += 1
            if group is None:
                self._open.pop(process_id, None)
            else:
                self._open[process_id] = group
        return _Batch(keys, special, findings, urls)

    def _feed(
        self,
        process_id: str,
        process_name: str,
        group: _OpenGroup | None,
        text: str,
        line_hits: Sequence[str],
        findings: list[Finding],
    ) -> tuple[_OpenGroup | None, Classification | None]:
        """One line through the grouping state machine; called with _lock held."""
        settings = self._settings
        if group is not None:
            if not text.strip():
                if group.blank_pending:
                    self._close(process_id, group, findings)
                    group = None
                else:
                    group.blank_pending = True
                    return group, None
            elif self._continues(group, text):
                group.blank_pending = False
                self._append(group, text)
                cls, _ = self._classify_line(text, line_hits) if line_hits else (None, None)
                level = LogLevel.ERROR
                if cls is not None and cls.level >= LogLevel.WARNING:
                    level = cls.level  # a warning listed under an error stays a warning
                tags = ("error", "stack") if cls is None else _merge(cls.tags, ("error", "stack"))
                if len(group.lines) >= settings.max_group_lines:
                    self._close(process_id, group, findings)
                    group = None
                return group, self._make_class(level, tags, 0)
            elif group.style == "python" and not text[0].isspace():
                match = _PYTHON_END.match(text.strip())
                self._append(group, text)
                if match:
                    group.kind = match.group("kind").rsplit(".", 1)[-1]
                    group.message = text.strip()
                self._close(process_id, group, findings)
                return None, self._make_class(LogLevel.ERROR, ("error",), 0)
            else:
                self._close(process_id, group, findings)
                group = None
        if not line_hits:
            return group, None
        cls, error_rule = self._classify_line(text, line_hits)
        if error_rule is not None:
            rule, match = error_rule
            kind = match.groupdict().get("kind") or rule.kind or "Error"
            message = (
                match.groupdict().get("message") or match.groupdict().get("m2") or text.strip()
            )
            group = _OpenGroup(
                rule,
                kind,
                message.strip()[: settings.max_group_line_chars] or text.strip(),
                text[: settings.max_group_line_chars],
                process_name,
            )
        self._build_and_test(process_id, process_name, text, line_hits, findings)
        return group, cls

    def _continues(self, group: _OpenGroup, text: str) -> bool:
        if group.style == "python":
            return text[0].isspace() or bool(
                self._python_chain is not None and self._python_chain.match(text)
            )
        return self._continuation is not None and self._continuation.match(text) is not None

    def _append(self, group: _OpenGroup, text: str) -> None:
        group.lines.append(text[: self._settings.max_group_line_chars])
        group.last_seen = datetime.now(UTC)
        group.last_mono = time.monotonic()

    def _classify_line(
        self, text: str, line_hits: Iterable[str] | None = None
    ) -> tuple[Classification, tuple[DetectionRule, re.Match[str]] | None]:
        """Apply level/tag/error rules to one ANSI-stripped line."""
        if line_hits is None:
            lower = text.lower()
            line_hits = [t for t in self._by_trigger if t in lower]
        rules = self._rules_for(tuple(line_hits))
        if not rules:
            return self._make_class(LogLevel.INFO, (), 0), None
        found: LogLevel | None = None
        tags: tuple[str, ...] = ()
        boost = 0
        error_rule: tuple[DetectionRule, re.Match[str]] | None = None
        for rule in rules:
            section = rule.section
            if section == "error":
                if error_rule is None:
                    match = rule.pattern.search(text)
                    if match:
                        error_rule = (rule, match)
                        tags = _merge(
                            tags, ("error", rule.language) if rule.language else ("error",)
                        )
                        found = max(found or LogLevel.DEBUG, rule.level or LogLevel.ERROR)
                continue
            subject = rule.unless.sub(" ", text) if rule.unless is not None else text
            if rule.pattern.search(subject):
                if rule.level is not None:
                    found = rule.level if found is None else max(found, rule.level)
                if rule.tags:
                    tags = _merge(tags, rule.tags)
                boost = max(boost, rule.priority)
        level = LogLevel.INFO if found is None else found
        return self._make_class(level, tags, boost), error_rule

    def _rules_for(
        self, hits: tuple[str, ...], *, outcomes: bool = False
    ) -> tuple[DetectionRule, ...]:
        """Rules to try for a set of triggers, in file order (cached per trigger set).

        Level/tag/error rules, or with ``outcomes`` the build/test rules.
        """
        key = (hits, outcomes)
        rules = self._rules_cache.get(key)
        if rules is None:
            wanted = {r for t in hits for r in self._by_trigger.get(t, ())}
            rules = tuple(
                r
                for r in sorted(wanted, key=self._order.__getitem__)
                if (r.section in ("build", "test")) == outcomes
            )
            if len(self._rules_cache) < 4096:
                self._rules_cache[key] = rules
        return rules

    def _make_class(self, level: LogLevel, tags: tuple[str, ...], boost: int) -> Classification:
        key = (level, tags, boost)
        cls = self._classification_cache.get(key)
        if cls is None:
            cls = Classification(level, tags, LEVEL_PRIORITY[level] + boost)
            if len(self._classification_cache) < 4096:
                self._classification_cache[key] = cls
        return cls

    def _build_and_test(
        self,
        process_id: str,
        process_name: str,
        text: str,
        line_hits: Sequence[str],
        findings: list[Finding],
    ) -> None:
        for rule in self._rules_for(tuple(line_hits), outcomes=True):
            match = rule.pattern.search(text)
            if not match:
                continue
            if rule.section == "build":
                status = rule.status
                errors = match.groupdict().get("errors")
                if errors is not None:
                    status = "failure" if int(errors) > 0 else "success"
                findings.append(
                    Finding(
                        "build.event",
                        process_id,
                        {
                            "status": status or "info",
                            "message": text.strip()[:300],
                            "rule": rule.name,
                            "process_name": process_name,
                        },
                    )
                )
                return
            findings.append(_test_finding(rule, match, process_id, process_name, text))
            return

    def _close(self, process_id: str, group: _OpenGroup, findings: list[Finding]) -> None:
        """Finalize an open group into the deduplicated table; called with _lock held."""
        signature = (process_id, group.kind, _NORMALISE.sub("#", group.message))
        record = self._groups.get(signature)
        if record is None:
            record = _GroupRecord(f"{process_id}-err-{next(self._next_group)}", group)
            self._groups[signature] = record
            self._group_process[record.id] = (process_id, group.process_name)
            while len(self._groups) > self._max_groups:
                _, dropped = self._groups.popitem(last=False)
                self._group_process.pop(dropped.id, None)
        else:
            record.count += 1
            record.last_seen = group.last_seen
            record.lines = tuple(group.lines)
            self._groups.move_to_end(signature)
        findings.append(
            Finding(
                "error.detected",
                process_id,
                {
                    "group_id": record.id,
                    "kind": record.kind,
                    "language": record.language,
                    "message": record.message,
                    "lines": record.lines,
                    "count": record.count,
                    "process_name": group.process_name,
                },
            )
        )

    # ------------------------------------------------------------------ group access

    def _flush(self, process_id: str | None = None, *, idle_only: bool = False) -> list[Finding]:
        """Close open groups (of one process or all; only idle ones if asked)."""
        findings: list[Finding] = []
        if not self._open:
            return findings
        limit = time.monotonic() - self._settings.group_idle_seconds
        with self._lock:
            for pid in [process_id] if process_id is not None else list(self._open):
                group = self._open.get(pid)
                if group is None or (idle_only and group.last_mono > limit):
                    continue
                del self._open[pid]
                self._close(pid, group, findings)
        return findings

    def _group_count(self) -> int:
        with self._lock:
            return len(self._groups) + len(self._open)

    def _groups_snapshot(self) -> list[ErrorGroup]:
        with self._lock:
            out = [
                ErrorGroup(
                    id=r.id,
                    process_id=pid,
                    process_name=self._group_process.get(r.id, (pid, pid))[1],
                    first_seen=r.first_seen,
                    last_seen=r.last_seen,
                    kind=r.kind,
                    message=r.message,
                    lines=r.lines,
                    count=r.count,
                    language=r.language,
                )
                for (pid, _, _), r in self._groups.items()
            ]
            out.extend(
                ErrorGroup(
                    id=f"{pid}-open",
                    process_id=pid,
                    process_name=g.process_name,
                    first_seen=g.first_seen,
                    last_seen=g.last_seen,
                    kind=g.kind,
                    message=g.message,
                    lines=tuple(g.lines),
                    count=1,
                    language=g.language,
                )
                for pid, g in self._open.items()
            )
        return out

    def _clear(self, process_id: str | None = None) -> None:
        with self._lock:
            if process_id is None:
                self._open.clear()
                self._groups.clear()
                self._group_process.clear()
                return
            self._open.pop(process_id, None)
            for signature in [s for s in self._groups if s[0] == process_id]:
                record = self._groups.pop(signature)
                self._group_process.pop(record.id, None)


def _alternation(patterns: list[re.Pattern[str]]) -> re.Pattern[str] | _AnyMatch | None:
    """One regex matching where any of ``patterns`` matches (each keeps its case flag)."""
    if not patterns:
        return None
    try:
        return re.compile(
            "|".join(f"(?{'i' if p.flags & re.IGNORECASE else '-i'}:{p.pattern})" for p in patterns)
        )
    except re.error:  # e.g. a user pattern with global inline flags: try them one by one
        return _AnyMatch(patterns)


class _AnyMatch:
    """Fallback for :func:`_alternation`: ``match`` tries each pattern in turn."""

    __slots__ = ("_patterns",)

    def __init__(self, patterns: list[re.Pattern[str]]) -> None:
        self._patterns = patterns

    def match(self, text: str) -> re.Match[str] | None:
        for pattern in self._patterns:
            found = pattern.match(text)
            if found:
                return found
        return None


def _merge(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    if not a:
        return b
    return a + tuple(t for t in b if t not in a)


def _test_finding(
    rule: DetectionRule, match: re.Match[str], process_id: str, process_name: str, text: str
) -> Finding:
    counts: dict[str, int] = {}
    for number, raw_word in _COUNTS.findall(text):
        word = raw_word.lower()
        key = {
            "passing": "passed",
            "failing": "failed",
            "error": "errors",
            "pending": "skipped",
            "todo": "skipped",
            "ignored": "skipped",
        }.get(word, word)
        counts[key] = counts.get(key, 0) + int(number)
    if "total" not in counts:
        paren = _TOTAL_PAREN.search(text)
        if paren and rule.name == "vitest":
            counts["total"] = int(paren.group(1))
    outcome = (match.groupdict().get("outcome") or "").lower()
    if outcome in ("fail", "failed"):
        failed = True
    elif outcome in ("ok", "pass", "passed"):
        failed = False
    else:
        failed = counts.get("failed", 0) > 0 or counts.get("errors", 0) > 0
    return Finding(
        "test.failed" if failed else "test.passed",
        process_id,
        {
            "passed": counts.get("passed", 0),
            "failed": counts.get("failed", 0),
            "skipped": counts.get("skipped", 0),
            "errors": counts.get("errors", 0),
            "total": counts.get(
                "total",
                counts.get("passed", 0) + counts.get("failed", 0) + counts.get("skipped", 0),
            ),
            "framework": rule.name,
            "message": text.strip()[:300],
            "process_name": process_name,
        },
    )

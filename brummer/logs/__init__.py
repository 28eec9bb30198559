"""Logs: the bounded log store and the detection of levels, errors, builds, tests and URLs.

Thread safety: TS. See :mod:`brummer.logs.store` and :mod:`brummer.logs.detect`.
"""

from brummer.logs.detect import (
    Classification as Classification,
    Detector as Detector,
    Finding as Finding,
    detect_urls as detect_urls,
    strip_ansi as strip_ansi,
)
from brummer.logs.model import (
    CollapsedEntry as CollapsedEntry,
    CursorPage as CursorPage,
    ErrorGroup as ErrorGroup,
    LogEntry as LogEntry,
    LogEntryInput as LogEntryInput,
    LogLevel as LogLevel,
    LogStoreMetrics as LogStoreMetrics,
    SearchPage as SearchPage,
    SearchQuery as SearchQuery,
    URLEntry as URLEntry,
)
from brummer.logs.rules import DetectionRule as DetectionRule, load_rules as load_rules
from brummer.logs.store import EventSink as EventSink, LogStore as LogStore

__all__ = [
    "Classification",
    "CollapsedEntry",
    "CursorPage",
    "DetectionRule",
    "Detector",
    "ErrorGroup",
    "EventSink",
    "Finding",
    "LogEntry",
    "LogEntryInput",
    "LogLevel",
    "LogStore",
    "LogStoreMetrics",
    "SearchPage",
    "SearchQuery",
    "URLEntry",
    "detect_urls",
    "load_rules",
    "strip_ansi",
]

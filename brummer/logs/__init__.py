"""Logs: the bounded log store and the detection of levels, errors, builds, tests and URLs.

Thread safety: TS. See :mod:`brummer.logs.store` and :mod:`brummer.logs.detect`.
"""

from brummer.logs.detect import (
    Classification as Classification,
    DetectionRule as DetectionRule,
    Detector as Detector,
    Finding as Finding,
    detect_urls as detect_urls,
    load_rules as load_rules,
    strip_ansi as strip_ansi,
)
from brummer.logs.model import (
    CollapsedEntry as CollapsedEntry,
    ErrorGroup as ErrorGroup,
    LogEntry as LogEntry,
    LogEntryInput as LogEntryInput,
    LogLevel as LogLevel,
    LogStoreMetrics as LogStoreMetrics,
    SearchPage as SearchPage,
    SearchQuery as SearchQuery,
    URLEntry as URLEntry,
)
from brummer.logs.store import EventSink as EventSink, LogStore as LogStore

__all__ = [
    "Classification",
    "CollapsedEntry",
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

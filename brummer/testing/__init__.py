"""Test support: mocks, a linearizability checker and conformance suites that take a factory.

``brummer.testing`` is for code that *uses* brummer components (mocks) and for anyone who
writes another implementation of a brummer interface (the conformance suites judge it by
the same contract checks as ours). The suites need ``hypothesis`` (the ``test`` extra).
"""

from __future__ import annotations

from brummer.testing.linearizability import (
    CheckOutcome as CheckOutcome,
    CheckResult as CheckResult,
    EventBusModel as EventBusModel,
    HistoryRecorder as HistoryRecorder,
    LogStoreModel as LogStoreModel,
    Model as Model,
    Operation as Operation,
    Raised as Raised,
    ResourceModel as ResourceModel,
    Violation as Violation,
    check_history as check_history,
    format_history as format_history,
)

__all__ = [
    "CheckOutcome",
    "CheckResult",
    "EventBusModel",
    "HistoryRecorder",
    "LogStoreModel",
    "Model",
    "Operation",
    "Raised",
    "ResourceModel",
    "Violation",
    "check_history",
    "format_history",
]

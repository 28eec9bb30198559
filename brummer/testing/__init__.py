"""Test support: mocks, a linearizability checker and conformance suites that take a factory.

``brummer.testing`` is for code that *uses* brummer components (mocks) and for anyone who
writes another implementation of a brummer interface (the conformance suites judge it by
the same contract checks as ours). The suites need ``hypothesis`` (the ``test`` extra).

Judge an implementation by the same checks as brummer's own::

    from brummer.events import EventBus
    from brummer.testing import MockEventBus, check_event_bus, check_log_store

    check_event_bus(EventBus)          # raises AssertionError naming the broken guarantee
    check_event_bus(MockEventBus)      # the mock honours the same contract
    check_log_store(MyLogStore)        # any class taking max_entries=...

``python -m brummer.testing --check-contracts`` lists public callables without an agreeing
``@contract`` mark and ``Thread safety:`` docstring line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from brummer.testing.contract_check import (
    ContractProblem as ContractProblem,
    ContractReport as ContractReport,
    check_contracts as check_contracts,
)
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
from brummer.testing.mocks import (
    MockEventBus as MockEventBus,
    MockProcess as MockProcess,
    MockProcessManager as MockProcessManager,
)

if TYPE_CHECKING:
    from brummer.testing.conformance import (
        ConformanceError as ConformanceError,
        check_event_bus as check_event_bus,
        check_locks as check_locks,
        check_log_store as check_log_store,
        check_process_manager as check_process_manager,
        check_resource_manager as check_resource_manager,
        check_worker_pool as check_worker_pool,
    )

_SUITES = frozenset(
    {
        "ConformanceError",
        "check_event_bus",
        "check_locks",
        "check_log_store",
        "check_process_manager",
        "check_resource_manager",
        "check_worker_pool",
    }
)


def __getattr__(name: str) -> Any:
    # The suites import hypothesis: load them on first use, so the mocks work without it.
    if name in _SUITES:
        return getattr(importlib.import_module("brummer.testing.conformance"), name)
    raise AttributeError(f"module 'brummer.testing' has no attribute {name!r}")


__all__ = [
    "CheckOutcome",
    "CheckResult",
    "ConformanceError",
    "ContractProblem",
    "ContractReport",
    "EventBusModel",
    "HistoryRecorder",
    "LogStoreModel",
    "MockEventBus",
    "MockProcess",
    "MockProcessManager",
    "Model",
    "Operation",
    "Raised",
    "ResourceModel",
    "Violation",
    "check_contracts",
    "check_event_bus",
    "check_history",
    "check_locks",
    "check_log_store",
    "check_process_manager",
    "check_resource_manager",
    "check_worker_pool",
    "format_history",
]

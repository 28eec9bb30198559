"""Conformance suites: functions that take a factory and judge any implementation by the contract.

Each ``check_*`` function builds fresh instances with the factory, drives them with
hypothesis-generated concurrent scenarios (real threads released together by a
``threading.Barrier``) and raises ``AssertionError`` (a ``ConformanceError``) naming the first
broken guarantee. Pass ``settings=hypothesis.settings(...)`` to run longer.
"""

from __future__ import annotations

from brummer.testing.conformance._harness import ConformanceError as ConformanceError
from brummer.testing.conformance.event_bus import check_event_bus as check_event_bus
from brummer.testing.conformance.locks import check_locks as check_locks
from brummer.testing.conformance.log_store import check_log_store as check_log_store
from brummer.testing.conformance.process_manager import (
    check_process_manager as check_process_manager,
)
from brummer.testing.conformance.resource_manager import (
    check_resource_manager as check_resource_manager,
)
from brummer.testing.conformance.worker_pool import check_worker_pool as check_worker_pool

__all__ = [
    "ConformanceError",
    "check_event_bus",
    "check_locks",
    "check_log_store",
    "check_process_manager",
    "check_resource_manager",
    "check_worker_pool",
]

"""brummer: a development process manager and a library with explicit concurrency contracts.

Every name of ``API.md`` is importable from here (the test doubles and conformance suites
live in :mod:`brummer.testing`). See README.md for a tour.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from brummer.contracts import (
    BLOCKING as BLOCKING,
    NON_BLOCKING as NON_BLOCKING,
    Cleanup as Cleanup,
    Contract as Contract,
    LockRequirement as LockRequirement,
    RWLock as RWLock,
    STGuard as STGuard,
    ThreadSafety as ThreadSafety,
    TSLock as TSLock,
    contract as contract,
    contract_of as contract_of,
    lock_for as lock_for,
)
from brummer.errors import BrummerError as BrummerError, ErrorCode as ErrorCode

if TYPE_CHECKING:
    from brummer.app import (
        Brummer as Brummer,
    )
    from brummer.config import (
        Config as Config,
    )
    from brummer.events import (
        Backpressure as Backpressure,
        Event as Event,
        EventBus as EventBus,
        EventBusMetrics as EventBusMetrics,
        EventType as EventType,
        SubscriptionID as SubscriptionID,
    )
    from brummer.logs import (
        ErrorGroup as ErrorGroup,
        LogEntry as LogEntry,
        LogEntryInput as LogEntryInput,
        LogLevel as LogLevel,
        LogStore as LogStore,
        LogStoreMetrics as LogStoreMetrics,
        SearchQuery as SearchQuery,
        URLEntry as URLEntry,
    )
    from brummer.mcp import (
        ConnectionInfo as ConnectionInfo,
        ConnectionState as ConnectionState,
        MCPClient as MCPClient,
        MCPConnectionManager as MCPConnectionManager,
        MCPServer as MCPServer,
    )
    from brummer.operations import (
        Context as Context,
        ContextualOperation as ContextualOperation,
        OperationProgress as OperationProgress,
    )
    from brummer.pool import (
        Job as Job,
        PoolMetrics as PoolMetrics,
        Priority as Priority,
        WorkerPool as WorkerPool,
    )
    from brummer.process import (
        CallbackID as CallbackID,
        Process as Process,
        ProcessInfo as ProcessInfo,
        ProcessManager as ProcessManager,
        ProcessStatus as ProcessStatus,
        RestartPolicy as RestartPolicy,
        Script as Script,
    )
    from brummer.proxy import (
        HTTPRequest as HTTPRequest,
        ProxyMetrics as ProxyMetrics,
        ProxyServer as ProxyServer,
        TelemetryStore as TelemetryStore,
        URLMapping as URLMapping,
    )
    from brummer.resources import (
        ResourceHandle as ResourceHandle,
        ResourceManager as ResourceManager,
        ResourceMetrics as ResourceMetrics,
        ResourceType as ResourceType,
    )

# Components are imported on first use (PEP 562), so `import brummer` stays cheap and the
# terminal UI draws its first frame before werkzeug and the MCP stack are loaded.
_LAZY: dict[str, str] = {
    "Brummer": "brummer.app",
    "Config": "brummer.config",
    "Backpressure": "brummer.events",
    "Event": "brummer.events",
    "EventBus": "brummer.events",
    "EventBusMetrics": "brummer.events",
    "EventType": "brummer.events",
    "SubscriptionID": "brummer.events",
    "ErrorGroup": "brummer.logs",
    "LogEntry": "brummer.logs",
    "LogEntryInput": "brummer.logs",
    "LogLevel": "brummer.logs",
    "LogStore": "brummer.logs",
    "LogStoreMetrics": "brummer.logs",
    "SearchQuery": "brummer.logs",
    "URLEntry": "brummer.logs",
    "ConnectionInfo": "brummer.mcp",
    "ConnectionState": "brummer.mcp",
    "MCPClient": "brummer.mcp",
    "MCPConnectionManager": "brummer.mcp",
    "MCPServer": "brummer.mcp",
    "Context": "brummer.operations",
    "ContextualOperation": "brummer.operations",
    "OperationProgress": "brummer.operations",
    "Job": "brummer.pool",
    "PoolMetrics": "brummer.pool",
    "Priority": "brummer.pool",
    "WorkerPool": "brummer.pool",
    "CallbackID": "brummer.process",
    "Process": "brummer.process",
    "ProcessInfo": "brummer.process",
    "ProcessManager": "brummer.process",
    "ProcessStatus": "brummer.process",
    "RestartPolicy": "brummer.process",
    "Script": "brummer.process",
    "HTTPRequest": "brummer.proxy",
    "ProxyMetrics": "brummer.proxy",
    "ProxyServer": "brummer.proxy",
    "TelemetryStore": "brummer.proxy",
    "URLMapping": "brummer.proxy",
    "ResourceHandle": "brummer.resources",
    "ResourceManager": "brummer.resources",
    "ResourceMetrics": "brummer.resources",
    "ResourceType": "brummer.resources",
}

__version__ = "0.1.0"

__all__ = [
    "BLOCKING",
    "NON_BLOCKING",
    "Backpressure",
    "Brummer",
    "BrummerError",
    "CallbackID",
    "Cleanup",
    "Config",
    "ConnectionInfo",
    "ConnectionState",
    "Context",
    "ContextualOperation",
    "Contract",
    "ErrorCode",
    "ErrorGroup",
    "Event",
    "EventBus",
    "EventBusMetrics",
    "EventType",
    "HTTPRequest",
    "Job",
    "LockRequirement",
    "LogEntry",
    "LogEntryInput",
    "LogLevel",
    "LogStore",
    "LogStoreMetrics",
    "MCPClient",
    "MCPConnectionManager",
    "MCPServer",
    "OperationProgress",
    "PoolMetrics",
    "Priority",
    "Process",
    "ProcessInfo",
    "ProcessManager",
    "ProcessStatus",
    "ProxyMetrics",
    "ProxyServer",
    "RWLock",
    "ResourceHandle",
    "ResourceManager",
    "ResourceMetrics",
    "ResourceType",
    "RestartPolicy",
    "STGuard",
    "Script",
    "SearchQuery",
    "TSLock",
    "TelemetryStore",
    "ThreadSafety",
    "URLEntry",
    "URLMapping",
    "WorkerPool",
    "__version__",
    "contract",
    "contract_of",
    "lock_for",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'brummer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

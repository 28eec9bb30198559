"""The names and signatures API.md promises are importable from ``brummer`` itself."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import brummer

API_NAMES = [
    "ThreadSafety",
    "LockRequirement",
    "Cleanup",
    "BLOCKING",
    "NON_BLOCKING",
    "Contract",
    "contract",
    "contract_of",
    "TSLock",
    "RWLock",
    "STGuard",
    "lock_for",
    "ErrorCode",
    "BrummerError",
    "Context",
    "ContextualOperation",
    "OperationProgress",
    "Priority",
    "Job",
    "WorkerPool",
    "PoolMetrics",
    "EventType",
    "Event",
    "Backpressure",
    "EventBus",
    "EventBusMetrics",
    "ProcessStatus",
    "Process",
    "ProcessManager",
    "Script",
    "RestartPolicy",
    "LogLevel",
    "LogEntry",
    "LogEntryInput",
    "SearchQuery",
    "URLEntry",
    "ErrorGroup",
    "LogStore",
    "ProxyServer",
    "TelemetryStore",
    "MCPServer",
    "MCPClient",
    "ConnectionState",
    "MCPConnectionManager",
    "ResourceType",
    "ResourceManager",
    "Brummer",
]


@pytest.mark.parametrize("name", API_NAMES)
def test_api_name_is_exported(name: str) -> None:
    assert name in brummer.__all__
    assert getattr(brummer, name) is not None


def test_all_lists_only_real_names() -> None:
    missing = [name for name in brummer.__all__ if not hasattr(brummer, name)]
    assert missing == []


@pytest.mark.parametrize(
    ("cls", "method", "params"),
    [
        ("WorkerPool", "__init__", ["self", "max_workers", "queue_size", "submit_timeout", "name"]),
        ("WorkerPool", "submit_job", ["self", "job", "priority", "timeout"]),
        (
            "EventBus",
            "__init__",
            ["self", "workers", "queue_size", "backpressure", "publish_timeout", "pool"],
        ),
        ("EventBus", "subscribe", ["self", "event_type", "handler"]),
        (
            "ProcessManager",
            "__init__",
            [
                "self",
                "work_dir",
                "event_bus",
                "log_store",
                "package_manager",
                "env",
                "stop_timeout",
            ],
        ),
        ("ProcessManager", "start_script", ["self", "name", "allow_duplicate", "restart", "ctx"]),
        (
            "ProcessManager",
            "start_command",
            ["self", "name", "command", "args", "cwd", "env", "ctx"],
        ),
        ("ProcessManager", "stop_process", ["self", "process_id", "timeout"]),
        ("LogStore", "__init__", ["self", "max_entries", "max_errors", "max_urls", "event_bus"]),
        ("LogStore", "add", ["self", "process_id", "process_name", "content", "is_error"]),
        ("ResourceManager", "acquire", ["self", "kind", "amount", "timeout"]),
        ("Brummer", "__init__", ["self", "work_dir", "config"]),
    ],
)
def test_signature_matches_api(cls: str, method: str, params: list[str]) -> None:
    signature = inspect.signature(getattr(getattr(brummer, cls), method))
    assert list(signature.parameters)[: len(params)] == params


def test_import_does_not_pull_test_dependencies() -> None:
    code = "import sys, brummer; print(sorted(m for m in ('hypothesis', 'pytest') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"


def test_version_flag_prints_the_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "brummer", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert brummer.__version__ in out

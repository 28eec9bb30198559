"""check_process_manager against the real ProcessManager, the mock, and broken managers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from brummer.process import ProcessManager
from brummer.testing.conformance import ConformanceError, check_process_manager
from brummer.testing.mocks import MockProcess, MockProcessManager


@pytest.mark.parametrize(
    "factory",
    [lambda d: ProcessManager(d, stop_timeout=1.0), lambda d: MockProcessManager(work_dir=d)],
    ids=["ProcessManager", "MockProcessManager"],
)
def test_managers_conform(factory: Callable[[str], Any]) -> None:
    check_process_manager(factory)


class StopIsANoOp(MockProcessManager):
    """Broken: stop_process returns without stopping anything."""

    def stop_process(self, process_id: str, timeout: float | None = None) -> None:
        self._require(process_id)


class RestartKeepsId(MockProcessManager):
    """Broken: restart revives the same process instead of starting a new one."""

    def restart_process(self, process_id: str) -> MockProcess:
        return self._require(process_id)


class ForgetsStopped(MockProcessManager):
    """Broken: a stopped process disappears from the history."""

    def stop_process(self, process_id: str, timeout: float | None = None) -> None:
        super().stop_process(process_id, timeout)
        with self._lock:
            self._processes.pop(process_id, None)


@pytest.mark.parametrize(
    ("cls", "complaint"),
    [
        (StopIsANoOp, "was stopped but its status is RUNNING"),
        (RestartKeepsId, "not new"),
        (ForgetsStopped, "missing from get_all_processes|NOT_FOUND|unknown"),
    ],
    ids=["stop-no-op", "restart-same-id", "forgets-stopped"],
)
def test_broken_managers_are_caught(cls: type[MockProcessManager], complaint: str) -> None:
    with pytest.raises(ConformanceError, match=complaint):
        check_process_manager(lambda d: cls(work_dir=d))

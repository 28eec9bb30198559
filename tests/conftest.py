"""Test-wide fixtures: every test proves it leaked no thread and no child process."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import psutil
import pytest
from hypothesis import HealthCheck, settings

from tests.helpers import child_processes, live_threads, wait_until

settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves a thread or a child process behind."""
    threads_before = live_threads()
    children_before = {p.pid for p in child_processes()}
    yield
    leaked_threads = wait_until(lambda: live_threads() <= threads_before, timeout=5.0)
    assert leaked_threads, (
        f"leaked threads: {sorted(t.name for t in live_threads() - threads_before)}"
    )

    def no_new_children() -> bool:
        return {p.pid for p in child_processes()} <= children_before

    if not wait_until(no_new_children, timeout=5.0):
        extra = [p for p in child_processes() if p.pid not in children_before]
        for proc in extra:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        pytest.fail(f"leaked child processes: {[(p.pid, p.name()) for p in extra]}")

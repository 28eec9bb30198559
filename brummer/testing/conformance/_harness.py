"""Shared machinery of the conformance suites: threads released together, deadlines, leaks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import hypothesis
import hypothesis.errors
from hypothesis import HealthCheck

from brummer.errors import BrummerError, ErrorCode

DEADLOCK_TIMEOUT = 20.0  # a scenario's threads must all finish within this


class ConformanceError(AssertionError):
    """An implementation broke the contract; the message says how."""


def fail(message: str) -> ConformanceError:
    return ConformanceError(message)


def suite_settings(
    user: hypothesis.settings | None, *, max_examples: int = 10
) -> hypothesis.settings:
    """The settings a suite runs under: the caller's, or a bounded default (no database)."""
    if user is not None:
        return user
    return hypothesis.settings(
        max_examples=min(max_examples, hypothesis.settings().max_examples),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=False,
    )


def run_property(test: Callable[[], None]) -> None:
    """Run a hypothesis test; a failure that did not replay is still reported as a failure.

    Concurrency failures depend on timing, so hypothesis may see one once and not again
    (``Flaky``); the first ``ConformanceError`` inside is raised with a note saying so.
    """
    try:
        test()
    except hypothesis.errors.Flaky as exc:
        found = _first_conformance(exc)
        if found is None:
            raise
        raise fail(
            f"{found}\n(seen once; the replay passed: this failure depends on timing)"
        ) from exc


def _first_conformance(exc: BaseException) -> ConformanceError | None:
    if isinstance(exc, ConformanceError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_conformance(inner)
            if found is not None:
                return found
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None and linked is not exc:
            found = _first_conformance(linked)
            if found is not None:
                return found
    return None


def run_together(
    targets: list[Callable[[], None]], *, timeout: float = DEADLOCK_TIMEOUT, what: str = "scenario"
) -> None:
    """Run each target in its own thread, all released by one Barrier; re-raise the first failure.

    Raises:
        ConformanceError: when a thread does not finish within ``timeout`` (deadlock or hang).
    """
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(target: Callable[[], None]) -> None:
        try:
            barrier.wait(timeout=timeout)
            target()
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(t,), name=f"conformance-{what}-{i}", daemon=True)
        for i, t in enumerate(targets)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        raise fail(f"{what}: threads {stuck} did not finish within {timeout} s (deadlock or hang)")
    if errors:
        first = errors[0]
        if isinstance(first, AssertionError):
            raise first
        raise fail(f"{what}: a thread raised {first!r}") from first


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` until true; ConformanceError naming ``what`` when ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.001)


def yield_gil() -> None:
    """Invite a thread switch inside a critical section (makes races visible; not a wait)."""
    time.sleep(0)


@contextmanager
def no_thread_leak(what: str, timeout: float = 5.0) -> Iterator[None]:
    """Fail when the block leaves threads behind that it did not find."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + timeout
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        if time.monotonic() > deadline:
            raise fail(f"{what} leaked threads: {sorted(t.name for t in extra)}")
        time.sleep(0.002)


def expect_error(
    code: ErrorCode, fn: Callable[[], Any], what: str, *, builtin: type[BaseException] | None = None
) -> BrummerError:
    """Call ``fn`` and insist it raises BrummerError(code) (also ``builtin`` when given)."""
    try:
        fn()
    except BrummerError as exc:
        if exc.code is not code:
            raise fail(
                f"{what}: expected BrummerError({code.value}), got {exc.code.value}: {exc}"
            ) from exc
        if builtin is not None and not isinstance(exc, builtin):
            raise fail(f"{what}: the {code.value} error is not a {builtin.__name__}") from exc
        return exc
    except Exception as exc:
        raise fail(f"{what}: expected BrummerError({code.value}), got {exc!r}") from exc
    raise fail(f"{what}: expected BrummerError({code.value}), but it succeeded")


def undecided(what: str, operations: int, budget: float) -> ConformanceError:
    """The failure for a history the checker could not decide within its budget."""
    return fail(
        f"{what}: the linearizability check of {operations} operations did not finish within "
        f"{budget} s (too many overlapping operations to search); the run proves nothing. "
        "Rerun with fewer clients or steps per client"
    )

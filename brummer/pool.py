"""Priority worker pool: :class:`WorkerPool`, :class:`PoolMetrics`, the :class:`Job` protocol.

:class:`WorkerPool` is a :class:`concurrent.futures.Executor` of its own (it does not
subclass ``ThreadPoolExecutor``, whose ``None`` shutdown sentinels do not mix with
priorities and whose internals change between Python versions):

- three deques, one per :class:`Priority`, under one mutex shared by two conditions
  (``_not_empty`` for workers, ``_not_full`` for submitters), and a sequence counter;
- strict priority between levels, FIFO within a level;
- a bounded queue: ``submit`` waits up to ``submit_timeout`` for room, then raises
  ``BrummerError(RESOURCE_LIMIT, temporary=True)``;
- threads are started lazily, never more than ``max_workers``;
- a worker takes a batch of queued items per lock acquisition, and a submitter wakes a
  worker only when one is idle and not already woken. While jobs are fast (mean run time
  under :data:`FAST_JOB`) it does not even do that when another worker is busy and made
  progress lately (within twice the GIL switch interval), or was already woken and is on
  its way: that worker reaches the item sooner than another woken thread would, and waking
  more threads than that only makes them fight over the GIL and the mutex (several
  submitters used to wake every idle worker this way). A delayed "kick" (on the watchdog
  thread, at most one armed at a time) wakes idle workers or starts threads if the busy
  worker stalls on a job that blocks; while it is armed, a submit of a fast job makes no
  wake-up decision at all (the kick will), which keeps the submit's critical section short;
- a worker gives the rest of its batch back to the queue as soon as a higher-priority item
  is waiting or the batch has run for more than :data:`BATCH_SLICE`, and a worker about to
  sleep first takes ("steals") items another worker claimed but has not started. So
  batching never starves a priority level, slow jobs spread over all workers, and a job
  that waits for a later job does not wait on an item parked in a busy worker's batch.

Besides the workers (never more than ``max_workers``) the pool runs at most one more
thread, ``<name>-watchdog``, started on first need, for per-job timeouts and kicks.

Thread safety: TS. Every public method may be called from any thread, including from
inside a job running on the pool.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import Any, Protocol, TypeVar

import attrs

from brummer.contracts import BLOCKING, Cleanup, ThreadSafety, check_timeout, contract
from brummer.errors import BrummerError, ErrorCode

__all__ = ["BATCH_SLICE", "FAST_JOB", "MAX_BATCH", "Job", "PoolMetrics", "Priority", "WorkerPool"]

_T = TypeVar("_T")
_COMPONENT = "pool"
_log = logging.getLogger("brummer.pool")

MAX_BATCH = 256
"""Most items a worker takes from the queue in one lock acquisition."""

BATCH_SLICE = 0.002
"""Seconds a worker may spend on one batch before it gives the rest back to the queue."""

FAST_JOB = 0.00005
"""Jobs shorter than this on average (seconds) are "fast": waking a sleeping worker for one
costs more than waiting for a busy worker to reach it, so the pool does not."""

# A busy worker counts as stalled once it has not started an item for this long. Above the
# GIL switch interval: a worker that is merely waiting for the GIL (held by a submitter)
# is not stalled, and waking a sleeping thread then only adds a contender for the GIL.
_STALL = max(BATCH_SLICE, 2 * sys.getswitchinterval())


@contract(ThreadSafety.TS)
class Priority(enum.IntEnum):
    """Scheduling priority: HIGH runs before MEDIUM before LOW; FIFO within a level.

    Thread safety: TS (immutable enum).
    """

    HIGH = 0
    MEDIUM = 1
    LOW = 2


@contract(ThreadSafety.TS)
class Job(Protocol):
    """A unit of work with an id and an optional time limit, for :meth:`WorkerPool.submit_job`.

    Thread safety: TS. ``execute`` runs on a pool thread; ``id`` and ``timeout`` are read
    once, on the submitting thread. Structural: any object with these three members is a
    Job (not runtime-checkable; ``submit_job`` checks for a callable ``execute``).
    """

    @property
    @contract(ThreadSafety.TS)
    def id(self) -> str:
        """A name for the job, used in errors and logs.

        Thread safety: TS.
        """
        ...

    @property
    @contract(ThreadSafety.TS)
    def timeout(self) -> float | None:
        """Seconds the job may run before its Future fails with TIMEOUT; None: no limit.

        Thread safety: TS.
        """
        ...

    @contract(ThreadSafety.TS)
    def execute(self) -> Any:
        """Do the work; the return value becomes the Future's result.

        Thread safety: TS (runs on one pool thread).
        """
        ...


@contract(ThreadSafety.TS)
@attrs.frozen
class PoolMetrics:
    """A snapshot of a :class:`WorkerPool`'s counters.

    Thread safety: TS (frozen value object).

    Attributes:
        submitted: items accepted by submit/submit_job.
        completed: items that returned normally (and did not time out).
        failed: items that raised (and did not time out).
        rejected: submits refused because the queue stayed full.
        timed_out: jobs whose Future failed with TIMEOUT because they ran too long.
        active_workers: workers running an item right now.
        max_workers: the thread limit.
        queue_depth: items waiting per priority (HIGH, MEDIUM, LOW), not yet taken by a worker.
        threads: worker threads alive now (lazily started, never above max_workers).
        cancelled: accepted items whose Future was cancelled before they ran.
    """

    submitted: int
    completed: int
    failed: int
    rejected: int
    timed_out: int
    active_workers: int
    max_workers: int
    queue_depth: tuple[int, int, int]
    threads: int = 0
    cancelled: int = 0


class _Item:
    """One accepted piece of work. Built by the submitter, run by exactly one worker."""

    __slots__ = ("args", "fn", "future", "kwargs", "name", "priority", "timeout")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        future: Future[Any],
        priority: int,
        timeout: float | None,
        name: str,
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.future = future
        self.priority = priority
        self.timeout = timeout
        self.name = name


class _WorkerStats:
    """Counters owned by one worker thread: only it writes them; metrics() sums them.

    Plain int attributes written by one thread and read by others are safe under the GIL;
    each reader sees a value the writer really had. The counters are bumped *before* the
    Future is resolved, so a caller that saw the result also sees the count.
    """

    __slots__ = ("cancelled", "completed", "failed", "running")

    def __init__(self) -> None:
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self.running = False


_ARMED, _SETTLED, _FIRED = 0, 1, 2  # _Timer.state: waiting, job finished in time, went off
_COMPACT_AFTER = 64  # settled timers left in the watchdog's heap before it is rebuilt
_AVG_WEIGHT = 0.25  # weight of the newest batch in the running mean of item run time


class _Timer:
    """A job deadline (``item``) or a delayed call (``action``); ``state`` is _ARMED,
    _SETTLED (the worker finished the job in time) or _FIRED."""

    __slots__ = ("action", "deadline", "item", "state")

    def __init__(
        self, deadline: float, item: _Item | None, action: Callable[[], None] | None = None
    ) -> None:
        self.deadline = deadline
        self.item = item
        self.action = action
        self.state = _ARMED

    def __lt__(self, other: _Timer) -> bool:
        return self.deadline < other.deadline


class _Watchdog:
    """One thread that fails the Futures of jobs running past their deadline.

    Python cannot stop a running thread, so a timed-out job keeps running on its worker;
    only its Future is failed (and the result it later produces is dropped).
    """

    def __init__(self, name: str, on_fire: Callable[[], None]) -> None:
        self._name = name
        self._on_fire = on_fire
        self._cond = threading.Condition(threading.Lock())  # guards everything below
        self._heap: list[_Timer] = []
        self._settled = 0  # settled timers still in the heap
        self._thread: threading.Thread | None = None
        self._stopping = False

    def arm(
        self, item: _Item | None, seconds: float, action: Callable[[], None] | None = None
    ) -> _Timer:
        timer = _Timer(time.monotonic() + seconds, item, action)
        with self._cond:
            heapq.heappush(self._heap, timer)
            if self._heap[0] is timer:
                self._cond.notify()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"{self._name}-watchdog", daemon=True
                )
                self._thread.start()  # under the lock, so stop() never joins an unstarted thread
        return timer

    def settle(self, timer: _Timer) -> bool:
        """The worker finished the job: True when it still owns the outcome."""
        with self._cond:
            if timer.state == _FIRED:
                return False
            timer.state = _SETTLED
            self._settled += 1
            if self._stopping:
                self._cond.notify()  # this may have been the last armed timer: let it exit
            if self._settled > _COMPACT_AFTER and self._settled * 2 > len(self._heap):
                self._heap = [t for t in self._heap if t.state == _ARMED]
                heapq.heapify(self._heap)
                self._settled = 0
            return True

    def _run(self) -> None:
        while True:
            fired: list[_Timer] = []
            with self._cond:
                while not fired:
                    if self._stopping and not any(t.state == _ARMED for t in self._heap):
                        self._thread = None  # a later arm() starts a new thread
                        return
                    if not self._heap:
                        self._cond.wait()
                        continue
                    now = time.monotonic()
                    while self._heap and self._heap[0].deadline <= now:
                        timer = heapq.heappop(self._heap)
                        if timer.state == _ARMED:
                            timer.state = _FIRED
                            fired.append(timer)
                        else:
                            self._settled -= 1
                    if not fired and self._heap:
                        self._cond.wait(self._heap[0].deadline - now)
            for timer in fired:
                if timer.action is not None:
                    timer.action()
                    continue
                self._on_fire()
                item = timer.item
                assert item is not None
                item.future.set_exception(
                    BrummerError(
                        _COMPONENT,
                        ErrorCode.TIMEOUT,
                        f"job {item.name!r} ran longer than its timeout of {item.timeout} s",
                        hint="give the job a longer timeout or make it honour a Context; "
                        "its thread keeps running until the job returns",
                        context={"job": item.name, "timeout": item.timeout},
                    )
                )

    def stop(self, deadline: float | None, join: bool) -> None:
        with self._cond:
            self._stopping = True
            self._heap = [t for t in self._heap if t.state == _ARMED]
            heapq.heapify(self._heap)
            self._settled = 0
            self._cond.notify_all()
            thread = self._thread
        if join and thread is not None and thread is not threading.current_thread():
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def is_current(self) -> bool:
        with self._cond:
            return self._thread is threading.current_thread()

    def alive(self) -> bool:
        with self._cond:
            return self._thread is not None and self._thread.is_alive()


def _default_workers() -> int:
    return min(32, (os.cpu_count() or 1) * 4)


@contract(
    ThreadSafety.TS,
    cleanup=Cleanup.MANUAL,
    guarantees="an accepted item runs exactly once (unless shutdown(cancel_futures=True)); "
    "strict priority, FIFO within a level; never more than max_workers threads",
)
class WorkerPool(Executor):
    """A bounded, prioritised thread pool with the ``concurrent.futures.Executor`` API.

    Thread safety: TS. Every public method may be called from any thread, including from
    inside a job running on this pool; ``stop()`` and ``shutdown()`` are idempotent.

    Args:
        max_workers: thread limit (default ``min(32, cpu_count * 4)``); threads start lazily.
        queue_size: how many items may wait (default 1000).
        submit_timeout: how long ``submit`` waits for room in a full queue (default 0.1 s).
        name: prefix of the worker thread names.

    Raises:
        BrummerError: INVALID_ARGUMENT for ``max_workers < 1``, ``queue_size < 1`` or a bad
            ``submit_timeout``.

    Call :meth:`stop` (or use the pool as a context manager): it runs every accepted item,
    then joins the threads. Worker threads are daemon threads so that a forgotten pool does
    not hang the interpreter at exit, but items still queued then are lost.

    Per-job timeouts: Python cannot kill a thread. When a job runs past its timeout its
    Future fails with ``BrummerError(TIMEOUT)`` at once (a watchdog thread does this) and it is
    counted in ``timed_out``, but the job keeps running on its worker until it returns, and
    that worker is busy meanwhile. Jobs that may hang should honour a
    :class:`brummer.operations.Context`.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        queue_size: int = 1000,
        submit_timeout: float = 0.1,
        name: str = "brummer-pool",
    ) -> None:
        if max_workers is None:
            max_workers = _default_workers()
        for arg, value in (("max_workers", max_workers), ("queue_size", queue_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.INVALID_ARGUMENT,
                    f"{arg} must be an int ≥ 1, not {value!r}",
                    hint=f"pass {arg}=1 or more (max_workers=None picks min(32, cpu_count * 4))",
                )
        timeout = check_timeout(_COMPONENT, submit_timeout, name="submit_timeout")
        if timeout is None:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                "submit_timeout must be a number of seconds, not None",
                hint="pass submit_timeout=0 to fail at once on a full queue, or a number of seconds",
            )
        self._max_workers = max_workers
        self._queue_size = queue_size
        self._submit_timeout = timeout
        self._name = name
        self._seq = itertools.count(1)  # names plain callables; next() is atomic under the GIL

        self._mutex = threading.Lock()  # guards every field below up to the watchdog
        self._not_empty = threading.Condition(self._mutex)  # workers wait for items here
        self._not_full = threading.Condition(self._mutex)  # submitters wait for room here
        self._queues: tuple[deque[_Item], deque[_Item], deque[_Item]] = (deque(), deque(), deque())
        self._depth = 0  # items in the three deques
        self._idle = 0  # workers waiting on _not_empty
        self._signalled = 0  # of those, already notified and not yet awake
        self._full_waiters = 0  # submitters waiting on _not_full
        self._threads: list[threading.Thread] = []
        self._stats: list[_WorkerStats] = []
        self._batches: list[deque[_Item]] = []  # each worker's claimed, not started items
        self._stopping = False
        self._cancel_queued = False
        self._submitted = 0
        self._rejected = 0
        self._timed_out = 0
        self._cancelled = 0
        self._avg_run = 0.0  # recent mean run time of one item (seconds); approximate
        self._progress = 0.0  # monotonic time a worker last started an item; approximate
        self._kick_pending = False  # a delayed _kick is armed on the watchdog

        self._watchdog = _Watchdog(name, self._count_timeout)

    # ------------------------------------------------------------------ submitting

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        """Queue ``fn(*args, **kwargs)`` at :attr:`Priority.MEDIUM`; return its Future.

        Thread safety: TS. Waits up to ``submit_timeout`` when the queue is full.

        Raises:
            BrummerError: INVALID_ARGUMENT when ``fn`` is not callable; RESOURCE_LIMIT
                (temporary) when the queue stayed full; INVALID_STATE after stop.
        """
        if not callable(fn):
            raise _not_callable(fn)
        future: Future[_T] = Future()
        self._put(_Item(fn, args, kwargs, future, 1, None, ""), self._submit_timeout)
        return future

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def submit_with_priority(
        self, priority: Priority, fn: Callable[..., _T], /, *args: Any, **kwargs: Any
    ) -> Future[_T]:
        """Like :meth:`submit`, at the given priority.

        Thread safety: TS.

        Raises:
            BrummerError: as :meth:`submit`; INVALID_ARGUMENT for an unknown priority.
        """
        level = _check_priority(priority)
        if not callable(fn):
            raise _not_callable(fn)
        future: Future[_T] = Future()
        self._put(_Item(fn, args, kwargs, future, level, None, ""), self._submit_timeout)
        return future

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def submit_job(
        self, job: Job, priority: Priority = Priority.MEDIUM, *, timeout: float | None = None
    ) -> Future[Any]:
        """Queue ``job.execute()`` at ``priority``; return its Future.

        Thread safety: TS. Waits up to ``submit_timeout`` when the queue is full.

        Args:
            job: anything with ``id``, ``timeout`` and ``execute()`` (the :class:`Job` protocol).
            priority: HIGH, MEDIUM or LOW.
            timeout: run-time limit overriding ``job.timeout``; None uses ``job.timeout``.
                When exceeded the Future fails with ``BrummerError(TIMEOUT)``; the thread
                keeps running the job (Python cannot kill it).

        Raises:
            BrummerError: INVALID_ARGUMENT for a job without a callable ``execute``, an unknown
                priority or a bad timeout; RESOURCE_LIMIT when the queue stayed full;
                INVALID_STATE after stop.
        """
        level = _check_priority(priority)
        execute = getattr(job, "execute", None)
        if not callable(execute):
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                f"not a Job: {type(job).__name__} has no callable execute()",
                hint="pass an object with id, timeout and execute(), or use submit(fn)",
            )
        job_id = str(getattr(job, "id", "") or f"job-{next(self._seq)}")
        limit = check_timeout(_COMPONENT, getattr(job, "timeout", None), name="job.timeout")
        if timeout is not None:
            limit = check_timeout(_COMPONENT, timeout)
        future: Future[Any] = Future()
        self._put(_Item(execute, (), {}, future, level, limit, job_id), self._submit_timeout)
        return future

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def map(
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[_T]:
        """``Executor.map``: run ``fn`` over the iterables; results in input order.

        Thread safety: TS.

        Raises:
            BrummerError: INVALID_ARGUMENT for a non-callable or a bad timeout; as
                :meth:`submit` while submitting.
        """
        if not callable(fn):
            raise _not_callable(fn)
        timeout = check_timeout(_COMPONENT, timeout)
        return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)

    def _put(self, item: _Item, wait: float) -> None:
        with self._mutex:
            if self._stopping:
                raise self._stopped_error()
            if self._depth >= self._queue_size:
                self._wait_for_room(wait)
            self._queues[item.priority].append(item)
            self._depth += 1
            self._submitted += 1
            if self._idle <= self._signalled and len(self._threads) >= self._max_workers:
                return  # every worker is busy or already woken: one of them takes it
            if (
                self._kick_pending
                and self._avg_run < FAST_JOB
                and (self._signalled or len(self._threads) > self._idle)
            ):
                return  # a worker is on fast jobs (or on its way); the armed kick checks it
            if self._fast_busy():
                self._schedule_kick()  # a worker on fast jobs takes it in microseconds
            elif self._idle > self._signalled:
                self._signalled += 1
                self._not_empty.notify()
            else:
                self._spawn(self._queues[item.priority])  # under the mutex: see _spawn

    def _fast_busy(self) -> bool:
        """Whether a worker runs fast jobs right now, so waking another one would not pay.

        Mutex held. A hand-off to a sleeping thread costs tens of microseconds; for jobs
        shorter than :data:`FAST_JOB` the running worker gets to a new item sooner.
        """
        if self._avg_run >= FAST_JOB:
            return False
        if self._signalled:
            return True  # a worker is already on its way: it takes the queue in batches
        return len(self._threads) > self._idle and time.monotonic() - self._progress < _STALL

    def _schedule_kick(self) -> None:
        """Make sure :meth:`_kick` runs within BATCH_SLICE; mutex held."""
        if not self._kick_pending:
            self._kick_pending = True
            self._watchdog.arm(None, BATCH_SLICE, self._kick)

    def _kick(self) -> None:
        """Delayed wake-up (watchdog thread): if work waits and the busy worker stalled, wake
        idle workers or start new ones; if it is still going, look again later."""
        with self._mutex:
            self._kick_pending = False
            pending = self._depth + sum(len(b) for b in self._batches)
            if not pending:
                return
            if self._fast_busy():
                self._schedule_kick()
                return
            wake = min(pending, self._idle - self._signalled)
            if wake > 0:
                self._signalled += wake
                self._not_empty.notify(wake)
            pending -= max(0, wake)
            while pending > 0 and not self._stopping and len(self._threads) < self._max_workers:
                self._spawn(None)
                pending -= 1

    def _wait_for_room(self, wait: float) -> None:
        """Called with the mutex held and the queue full; returns with room or raises."""
        deadline = time.monotonic() + wait
        self._full_waiters += 1
        try:
            while self._depth >= self._queue_size:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._rejected += 1
                    raise BrummerError(
                        _COMPONENT,
                        ErrorCode.RESOURCE_LIMIT,
                        f"queue full ({self._queue_size} items waiting) for {wait} s",
                        hint="retry later, raise queue_size or submit_timeout, or add workers",
                        temporary=True,
                        context={"queue_size": self._queue_size, "waited": wait},
                    )
                self._not_full.wait(left)
                if self._stopping:
                    raise self._stopped_error()
        finally:
            self._full_waiters -= 1

    def _spawn(self, queue: deque[_Item] | None) -> None:
        """Start one more worker; called with the mutex held."""
        stats = _WorkerStats()
        thread = threading.Thread(
            target=self._work,
            args=(stats,),
            name=f"{self._name}-{len(self._threads) + 1}",
            daemon=True,
        )
        try:
            thread.start()  # does not need the mutex: the new thread only signals it started
        except RuntimeError as exc:  # the OS refused another thread
            _log.warning("%s: could not start a worker thread: %s", self._name, exc)
            if self._threads or queue is None:
                return  # the running workers will take the item
            queue.pop()  # the item just queued: nobody could run it
            self._depth -= 1
            self._submitted -= 1
            raise BrummerError(
                _COMPONENT,
                ErrorCode.RESOURCE_LIMIT,
                "could not start a worker thread",
                hint="the system is out of threads; lower max_workers or stop other pools",
                cause=exc,
            ) from exc
        self._threads.append(thread)
        self._stats.append(stats)

    def _stopped_error(self) -> BrummerError:
        return BrummerError(
            _COMPONENT,
            ErrorCode.INVALID_STATE,
            f"pool {self._name!r} is stopped",
            hint="create a new WorkerPool; a stopped pool accepts no work",
        )

    # ------------------------------------------------------------------ working

    def _work(self, stats: _WorkerStats) -> None:
        batch: deque[_Item] = deque()  # items this worker claimed; idle workers steal from it
        with self._mutex:
            self._batches.append(batch)
        queues = self._queues
        high, medium, _ = queues
        limit = 1  # batch size: doubles while batches finish within BATCH_SLICE
        while True:
            with self._mutex:
                while not self._depth:
                    stolen = self._steal()
                    if stolen is not None:
                        batch.append(stolen)
                        break
                    if self._stopping:
                        return
                    self._idle += 1
                    self._not_empty.wait()
                    self._idle -= 1
                    if self._signalled:
                        self._signalled -= 1
                else:
                    self._progress = time.monotonic()
                    fast = self._avg_run < FAST_JOB
                    # Slow jobs: batch only when saturated (no idle worker, no thread left to
                    # start), so slow items spread over the workers. Fast jobs: batch anyway;
                    # a delayed kick wakes the others should this worker stall (see _kick).
                    saturated = self._idle == 0 and len(self._threads) >= self._max_workers
                    take = min(self._depth, limit) if fast or saturated else 1
                    self._depth -= take
                    for queue in queues:
                        while take and queue:
                            batch.append(queue.popleft())
                            take -= 1
                    if self._full_waiters:
                        self._not_full.notify(len(batch))
                    if fast and (self._depth or len(batch) > 1) and self._idle > self._signalled:
                        self._schedule_kick()
                    elif self._depth and self._idle > self._signalled:
                        self._signalled += 1
                        self._not_empty.notify()  # more work than this batch: wake a helper
            started = now = time.monotonic()
            ran = 0
            while True:
                try:
                    item = batch.popleft()  # atomic: an idle worker may steal concurrently
                except IndexError:
                    break
                level = item.priority
                if level and (high or (level == 2 and medium)):
                    self._give_back(item, batch)  # a higher level is waiting: it goes first
                    break
                if ran:
                    now = time.monotonic()
                    self._progress = now
                if batch and (
                    (self._idle > self._signalled and self._avg_run >= FAST_JOB)
                    or now - started > BATCH_SLICE
                ):
                    self._give_back(None, batch)  # let idle or other workers have the rest
                    limit = max(1, ran)
                ran += 1
                if item.timeout is not None:
                    self._run_timed(item, stats)
                    continue
                future = item.future  # the common case, inlined: it is the hot loop
                if not future.set_running_or_notify_cancel():
                    stats.cancelled += 1
                    continue
                stats.running = True
                try:
                    if item.kwargs:
                        result = item.fn(*item.args, **item.kwargs)
                    else:
                        result = item.fn(*item.args)  # no copy of an empty kwargs dict
                except BaseException as exc:
                    stats.running = False
                    stats.failed += 1
                    future.set_exception(exc)
                else:
                    stats.running = False
                    stats.completed += 1
                    future.set_result(result)
            if ran:
                elapsed = time.monotonic() - started
                # approximate on purpose: workers race on this average, any recent value will do
                self._avg_run += (elapsed / ran - self._avg_run) * _AVG_WEIGHT
                if elapsed <= BATCH_SLICE:
                    limit = min(MAX_BATCH, limit * 2)
                elif limit > 1:
                    limit //= 2

    def _steal(self) -> _Item | None:
        """Take the next item another worker claimed but has not started; mutex held."""
        for other in self._batches:
            try:
                return other.popleft()
            except IndexError:
                continue
        return None

    def _give_back(self, first: _Item | None, batch: deque[_Item]) -> None:
        with self._mutex:
            rest = [first] if first is not None else []
            while True:
                try:
                    rest.append(batch.popleft())
                except IndexError:
                    break
            if self._cancel_queued:  # shutdown(cancel_futures=True) ran since they were taken
                doomed, rest = rest, []
            else:
                doomed = []
            for item in reversed(rest):
                self._queues[item.priority].appendleft(item)
            self._depth += len(rest)
            if self._depth and self._idle > self._signalled:
                self._signalled += 1
                self._not_empty.notify()
        self._cancel(doomed)

    def _cancel(self, items: list[_Item]) -> None:
        """Cancel accepted items that will not run; mutex NOT held (callbacks run here)."""
        cancelled = 0
        for item in items:
            if item.future.cancel():
                item.future.set_running_or_notify_cancel()  # wakes wait() and as_completed()
                cancelled += 1
        if cancelled:
            with self._mutex:
                self._cancelled += cancelled

    def _run_timed(self, item: _Item, stats: _WorkerStats) -> None:
        future = item.future
        if not future.set_running_or_notify_cancel():
            stats.cancelled += 1
            return
        assert item.timeout is not None
        timer = self._watchdog.arm(item, item.timeout)
        stats.running = True
        try:
            result = item.fn(*item.args, **item.kwargs)
        except BaseException as exc:
            stats.running = False
            if self._watchdog.settle(timer):
                stats.failed += 1
                future.set_exception(exc)
        else:
            stats.running = False
            if self._watchdog.settle(timer):
                stats.completed += 1
                future.set_result(result)

    def _count_timeout(self) -> None:
        with self._mutex:
            self._timed_out += 1

    # ------------------------------------------------------------------ stopping

    @contract(ThreadSafety.TS, timeout=BLOCKING, guarantees="idempotent; runs every accepted item")
    def stop(self, timeout: float | None = None) -> None:
        """Refuse new work, run every accepted item, then join the threads.

        Thread safety: TS. Idempotent. Called from inside a job on this pool (or from a
        Future callback run by it) it cannot wait for the pool, which includes itself: it
        only begins the stop and returns; the remaining items still run.

        Raises:
            BrummerError: TIMEOUT when the threads have not finished within ``timeout``
                (they keep draining the queue); INVALID_ARGUMENT for a bad timeout.
        """
        timeout = check_timeout(_COMPONENT, timeout)
        self._stop(timeout, wait=True)

    @contract(ThreadSafety.TS, timeout=BLOCKING, guarantees="idempotent")
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """``Executor.shutdown``: refuse new work; optionally cancel what has not started.

        Thread safety: TS. Idempotent; from inside a job it never waits (see :meth:`stop`).

        Args:
            wait: join the threads before returning.
            cancel_futures: cancel every accepted item that has not started yet; their
                Futures count as done for ``concurrent.futures.wait``/``as_completed``, and
                their done-callbacks never run under the pool's lock.
        """
        self._stop(None, wait=wait, cancel=cancel_futures)

    def _stop(self, timeout: float | None, *, wait: bool, cancel: bool = False) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._mutex:
            self._stopping = True
            taken: list[_Item] = []
            if cancel:
                self._cancel_queued = True
                for queue in self._queues:
                    taken.extend(queue)
                    queue.clear()
                self._depth = 0
                while (stolen := self._steal()) is not None:
                    taken.append(stolen)
            self._signalled = self._idle
            self._not_empty.notify_all()
            self._not_full.notify_all()
            threads = list(self._threads)
        self._cancel(taken)
        inside = threading.current_thread() in threads or self._watchdog.is_current()
        if not wait or inside:
            self._watchdog.stop(None, join=False)
            return
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._watchdog.stop(deadline, join=True)
        alive = [t.name for t in threads if t.is_alive()]
        if alive or self._watchdog.alive():
            raise BrummerError(
                _COMPONENT,
                ErrorCode.TIMEOUT,
                f"pool {self._name!r}: {len(alive)} worker(s) still running after {timeout} s",
                hint="a job is still running (timed-out jobs keep their thread); call stop() "
                "again to keep waiting, or make long jobs honour a Context",
                context={"threads": alive},
            )

    # ------------------------------------------------------------------ observing

    @contract(ThreadSafety.TS)
    def metrics(self) -> PoolMetrics:
        """A snapshot of the counters.

        Thread safety: TS. Counters of running workers are read without stopping them, so
        ``completed``/``failed`` may trail other fields by the items finishing meanwhile.
        """
        with self._mutex:
            stats = list(self._stats)
            depth = (len(self._queues[0]), len(self._queues[1]), len(self._queues[2]))
            submitted, rejected = self._submitted, self._rejected
            timed_out, cancelled = self._timed_out, self._cancelled
            threads = sum(1 for t in self._threads if t.is_alive())
        return PoolMetrics(
            submitted=submitted,
            completed=sum(s.completed for s in stats),
            failed=sum(s.failed for s in stats),
            rejected=rejected,
            timed_out=timed_out,
            active_workers=sum(1 for s in stats if s.running),
            max_workers=self._max_workers,
            queue_depth=depth,
            threads=threads,
            cancelled=cancelled + sum(s.cancelled for s in stats),
        )

    @property
    @contract(ThreadSafety.TS)
    def max_workers(self) -> int:
        """The thread limit.

        Thread safety: TS (immutable).
        """
        return self._max_workers

    @property
    @contract(ThreadSafety.TS)
    def stopped(self) -> bool:
        """True once stop() or shutdown() was called.

        Thread safety: TS.
        """
        return self._stopping

    def __repr__(self) -> str:
        return (
            f"<WorkerPool {self._name!r} max_workers={self._max_workers} stopped={self._stopping}>"
        )


def _check_priority(priority: object) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 2:
        raise BrummerError(
            _COMPONENT,
            ErrorCode.INVALID_ARGUMENT,
            f"unknown priority {priority!r}",
            hint="pass Priority.HIGH, Priority.MEDIUM or Priority.LOW",
        )
    return int(priority)


def _not_callable(fn: object) -> BrummerError:
    return BrummerError(
        _COMPONENT,
        ErrorCode.INVALID_ARGUMENT,
        f"cannot run {type(fn).__name__} {fn!r}: not callable",
        hint="pass a function or other callable (and its arguments separately)",
    )

"""Contract enforcement beyond the marks: TS methods hammered from 8 threads, ST refusal.

For each main component, every public method marked TS is called from 8 threads released
together by a Barrier, with hypothesis-chosen arguments (good ones and bad ones). A call may
succeed or raise ``BrummerError``; anything else (TypeError, KeyError, a deadlock) fails the
test, and afterwards the component's invariants must hold. Every ST class of the package that
can be built without arguments must refuse use from a second thread with
``BrummerError(CONCURRENCY)``.
"""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
import threading
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import given, settings, strategies as st

import brummer
from brummer.contracts import ThreadSafety, contract_of
from brummer.errors import BrummerError, ErrorCode
from brummer.events import Event, EventBus, EventType
from brummer.logs import LogEntryInput, LogStore, SearchQuery
from brummer.pool import Priority, WorkerPool
from brummer.resources import ResourceManager, ResourceType
from brummer.testing import MockEventBus

THREADS = 8


def _noop(*_: object) -> None:
    return None


def _raises(*_: object) -> None:
    raise RuntimeError("hammer handler fails on purpose")


@attrs.frozen
class _Job:
    id: str = "hammer-job"
    timeout: float | None = None

    def execute(self) -> int:
        return 1


HANDLE = "$handle"  # replaced at call time by a handle acquired earlier (or junk)
SUB = "$sub"  # replaced at call time by a subscription id returned earlier (or junk)

_ids = st.sampled_from(["p1", "p2", "web"]) | st.sampled_from(["", None, 5])
ARGS: dict[str, st.SearchStrategy[Any]] = {
    "process_id": _ids,
    "process_name": _ids,
    "content": st.text(max_size=12) | st.just(b"bytes"),
    "contents": st.lists(st.text(max_size=8), max_size=4) | st.just("one string"),
    "is_error": st.booleans(),
    "entries": st.lists(
        st.builds(LogEntryInput, st.sampled_from(["p1", "p2"]), st.just("n"), st.text(max_size=8)),
        max_size=4,
    )
    | st.just(["junk"]),
    "cursor": st.integers(-1, 5),
    "limit": st.integers(-1, 5),
    "max_scan": st.integers(-1, 50),
    "before": st.none() | st.integers(-1, 50),
    "query": st.builds(
        SearchQuery,
        text=st.sampled_from(["", "a", "ERROR", "(["]),
        regex=st.booleans(),
        limit=st.integers(-1, 3),
        process_id=st.sampled_from([None, "p1"]),
    ),
    "url": st.sampled_from(["http://localhost:3000/", "not a url", ""]),
    "proxy_url": st.sampled_from([None, "http://127.0.0.1:20888/"]),
    "timeout": st.sampled_from([0.0, 0.01, -1.0, math.nan]),
    "event_type": st.sampled_from([EventType.LOG_LINE, "hammer.x", "", 3]),
    "handler": st.sampled_from([_noop, _raises, 3]),
    "fn": st.sampled_from([_noop, _raises, "not callable"]),
    "event": st.builds(
        Event,
        st.sampled_from([EventType.LOG_LINE, "hammer.x"]),
        st.just({"k": 1}),
        st.sampled_from([None, "p1"]),
    )
    | st.just("not an event"),
    "sub_id": st.sampled_from([SUB, "no-such-sub"]),
    "kind": st.sampled_from([ResourceType.THREADS, ResourceType.FILES, "bogus"]),
    "amount": st.integers(-1, 3),
    "handle": st.sampled_from([HANDLE, "junk"]),
    "priority": st.sampled_from([Priority.HIGH, Priority.LOW, 0, 7]),
    "job": st.sampled_from([_Job(), _Job(timeout=0.001), object()]),
    "wait": st.booleans(),
    "enabled": st.booleans(),
    "code": st.sampled_from([None, ErrorCode.TIMEOUT, ErrorCode.RESOURCE_LIMIT, "TIMEOUT"]),
    "count": st.integers(-1, 3),
    "cancel_futures": st.booleans(),
}

SKIP_METHODS = {"map"}  # needs iterables; covered by the pool's own tests


def _calls(cls: type) -> tuple[dict[str, st.SearchStrategy[Any]], list[str]]:
    """A strategy of (method, args, kwargs) per TS method, and the methods left out."""
    strategies: dict[str, st.SearchStrategy[Any]] = {}
    left_out: list[str] = []
    for name, raw in vars(cls).items():
        if name.startswith("_") or name in SKIP_METHODS or not inspect.isfunction(raw):
            continue
        mark = contract_of(raw)
        if mark is None or mark.thread_safety is not ThreadSafety.TS:
            continue
        positional: list[st.SearchStrategy[Any]] = []
        keywords: dict[str, st.SearchStrategy[Any]] = {}
        optional: dict[str, st.SearchStrategy[Any]] = {}
        usable = True
        for param in list(inspect.signature(raw).parameters.values())[1:]:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            strategy = ARGS.get(param.name)
            if strategy is None:
                if param.default is param.empty:
                    usable = False
                continue
            if param.kind is param.KEYWORD_ONLY:
                # A blocking call always gets a timeout: without one, acquire() on an exhausted
                # ResourceManager rightly waits forever for a release no script will make.
                required = param.default is param.empty or param.name == "timeout"
                (keywords if required else optional)[param.name] = strategy
            else:
                positional.append(strategy)
        if not usable:
            left_out.append(name)
            continue
        strategies[name] = st.tuples(
            st.just(name),
            st.tuples(*positional),
            st.fixed_dictionaries(keywords, optional=optional),
        )
    return strategies, left_out


@attrs.define
class Target:
    make: Callable[[], Any]
    check: Callable[[Any, dict[str, list[Any]]], None]


def _check_store(store: LogStore, _: dict[str, list[Any]]) -> None:
    entries = store.get_all()
    assert store.metrics().total_entries == len(entries)
    for pid in {e.process_id for e in entries}:
        seqs = [e.seq for e in store.get_by_process(pid)]
        assert seqs == sorted(set(seqs)), f"seq of {pid} not strictly increasing: {seqs}"
    store.close()


def _check_bus(bus: Any, _: dict[str, list[Any]]) -> None:
    bus.stop(10.0)
    m = bus.metrics()
    assert m.queue_depth == (0, 0, 0)
    assert m.events_published == m.events_processed + m.events_dropped


def _check_resources(manager: ResourceManager, found: dict[str, list[Any]]) -> None:
    for handle in found["handles"]:
        try:
            manager.release(handle)
        except BrummerError as exc:  # released during the run already
            code = exc.code
            assert code is ErrorCode.INVALID_STATE
    m = manager.metrics()
    assert all(v == 0 for v in m.in_use.values()), m.in_use
    assert all(v == 0 for v in m.waiters.values()), m.waiters
    assert all(m.available[k] == m.limits[k] for k in m.limits)


def _check_pool(pool: WorkerPool, _: dict[str, list[Any]]) -> None:
    pool.stop(10.0)
    m = pool.metrics()
    assert m.queue_depth == (0, 0, 0)
    # every accepted item ends in exactly one of these (PoolMetrics documents them disjoint)
    assert m.submitted == m.completed + m.failed + m.timed_out + m.cancelled, m


TARGETS = {
    "LogStore": (LogStore, Target(lambda: LogStore(max_entries=50), _check_store)),
    "EventBus": (EventBus, Target(EventBus, _check_bus)),
    "MockEventBus": (MockEventBus, Target(MockEventBus, _check_bus)),
    "ResourceManager": (
        ResourceManager,
        Target(
            lambda: ResourceManager({ResourceType.THREADS: 2, ResourceType.FILES: 3}),
            _check_resources,
        ),
    ),
    "WorkerPool": (WorkerPool, Target(lambda: WorkerPool(3, queue_size=20), _check_pool)),
}


@pytest.mark.parametrize("which", sorted(TARGETS))
def test_ts_methods_hammered_from_eight_threads(which: str) -> None:
    cls, target = TARGETS[which]
    strategies, left_out = _calls(cls)
    assert len(strategies) >= 3, f"{which}: too few TS methods reachable ({left_out} left out)"
    call = st.sampled_from(sorted(strategies)).flatmap(strategies.__getitem__)

    @settings(max_examples=15, deadline=None)
    @given(st.lists(st.lists(call, min_size=1, max_size=8), min_size=THREADS, max_size=THREADS))
    def hammer(scripts: list[list[tuple[str, tuple[Any, ...], dict[str, Any]]]]) -> None:
        component = target.make()
        found: dict[str, list[Any]] = {"handles": [], "subs": []}
        guard = threading.Lock()
        failures: list[str] = []
        barrier = threading.Barrier(THREADS)

        def resolve(value: Any) -> Any:
            if value == HANDLE:
                with guard:
                    return found["handles"][-1] if found["handles"] else "junk"
            if value == SUB:
                with guard:
                    return found["subs"][-1] if found["subs"] else "no-such-sub"
            return value

        def run(script: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
            barrier.wait(10)
            for name, raw_args, raw_kwargs in script:
                args = tuple(resolve(a) for a in raw_args)
                kwargs = {k: resolve(v) for k, v in raw_kwargs.items()}
                try:
                    result = getattr(component, name)(*args, **kwargs)
                except BrummerError:
                    continue
                except Exception as exc:
                    with guard:
                        failures.append(f"{which}.{name}{args}{kwargs} raised {exc!r}")
                    continue
                with guard:
                    if name == "acquire":
                        found["handles"].append(result)
                    elif name in ("subscribe", "subscribe_all"):
                        found["subs"].append(result)

        threads = [threading.Thread(target=run, args=(s,)) for s in scripts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads), (
            f"{which}: a thread did not finish (deadlock?)"
        )
        assert not failures, failures[:3]
        target.check(component, found)

    hammer()


def _st_classes() -> list[type]:
    found = []
    for info in pkgutil.walk_packages(brummer.__path__, "brummer."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and obj.__module__ == module.__name__
                and not obj.__name__.startswith("_")
            ):
                mark = contract_of(obj)
                if mark is not None and mark.thread_safety is ThreadSafety.ST:
                    found.append(obj)
    return found


SAMPLE = {"bytes": b"x\n", "str": "x", "int": 1, "float": 0.1, "bool": True}


def _sample_call(obj: Any) -> Callable[[], Any] | None:
    """A call of the object's first ST method with simple arguments, or ``with obj:``."""
    for name, raw in vars(type(obj)).items():
        if name.startswith("_") or not inspect.isfunction(raw):
            continue
        mark = contract_of(raw)
        if mark is None or mark.thread_safety is not ThreadSafety.ST:
            continue
        args = []
        for param in list(inspect.signature(raw).parameters.values())[1:]:
            if param.default is not param.empty:
                continue
            value = SAMPLE.get(str(param.annotation).strip("'\""))
            if value is None:
                break
            args.append(value)
        else:
            return lambda raw=raw, args=args: raw(obj, *args)
    if hasattr(obj, "__enter__"):

        def enter() -> None:
            with obj:
                pass

        return enter
    return None


def test_st_classes_refuse_a_second_thread() -> None:
    checked, unconstructible, wrong = [], [], []
    for cls in _st_classes():
        try:
            obj = cls()
        except Exception:
            unconstructible.append(cls.__qualname__)
            continue
        use = _sample_call(obj)
        if use is None:
            unconstructible.append(cls.__qualname__)
            continue
        use()  # the first thread takes it
        outcome: list[BaseException | None] = []

        def other(
            use: Callable[[], Any] = use, outcome: list[BaseException | None] = outcome
        ) -> None:
            try:
                use()
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join(10)
        checked.append(cls.__qualname__)
        err = outcome[0] if outcome else None
        if not (isinstance(err, BrummerError) and err.code is ErrorCode.CONCURRENCY):
            wrong.append(f"{cls.__module__}.{cls.__qualname__} (second thread got {err!r})")
    print(f"ST classes checked: {checked}; not constructible without arguments: {unconstructible}")
    assert checked, "no ST class could be checked"
    assert not wrong, f"ST classes that do not refuse a second thread: {wrong}"

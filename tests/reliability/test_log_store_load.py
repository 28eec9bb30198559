"""The log store under 10 writers, searchers and clearers at once: no accepted line is lost.

Writers each own a process id and record every entry ``add``/``add_batch`` returned. Clearers
clear only their own scratch processes (and write to them); searchers search all the time.
Afterwards every writer's retained lines must be exactly the newest of what it was told was
stored, in order, with strictly increasing seq (a suffix: eviction takes the oldest first, so
a gap would be a lost line). CI runs a second; ``BRUMMER_SOAK=1`` runs a minute.
"""

from __future__ import annotations

import random
import threading

import pytest

from brummer.logs import LogEntryInput, LogStore, SearchQuery
from tests.reliability._budget import SOAK, no_leaks, seconds

pytestmark = pytest.mark.reliability

WRITERS = 10
SEARCHERS = 3
CLEARERS = 2


def test_writers_searchers_and_clearers_lose_nothing() -> None:
    duration = seconds(1.0, 60.0)
    capacity = 2_000_000 if SOAK else 200_000
    store = LogStore(max_entries=capacity)
    stop = threading.Event()
    accepted: dict[str, list[tuple[int, str]]] = {f"w{i}": [] for i in range(WRITERS)}
    errors: list[BaseException] = []
    counts = {"searches": 0, "clears": 0, "hits": 0}
    count_guard = threading.Lock()
    barrier = threading.Barrier(WRITERS + SEARCHERS + CLEARERS)

    def guarded(fn):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                barrier.wait(10)
                fn()
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        return run

    def writer(pid: str, seed: int) -> None:
        rnd = random.Random(seed)
        mine = accepted[pid]
        n = 0
        while not stop.is_set():
            if rnd.random() < 0.3:
                batch = [
                    LogEntryInput(pid, pid, f"{pid} line {n + j} token{rnd.randrange(50)}")
                    for j in range(rnd.randint(1, 20))
                ]
                n += len(batch)
                mine.extend((e.seq, e.content) for e in store.add_batch(batch))
            else:
                e = store.add(
                    pid, pid, f"{pid} line {n} token{rnd.randrange(50)}", rnd.random() < 0.1
                )
                n += 1
                mine.append((e.seq, e.content))

    def searcher(seed: int) -> None:
        rnd = random.Random(seed)
        while not stop.is_set():
            token = f"token{rnd.randrange(50)}"
            query = SearchQuery(
                text=token,
                limit=rnd.choice((0, 10, 100)),
                process_id=rnd.choice((None, "w1", "scratch0")),
            )
            found = store.search(query)
            assert all(token in e.content for e in found)
            if query.limit:
                assert len(found) <= query.limit
            with count_guard:
                counts["searches"] += 1
                counts["hits"] += len(found)

    def clearer(k: int) -> None:
        pid = f"scratch{k}"
        while not stop.is_set():
            for j in range(50):
                store.add(pid, pid, f"scratch token{j}")
            store.clear_for_process(pid)
            assert store.get_by_process(pid) == []
            with count_guard:
                counts["clears"] += 1

    threads = [
        threading.Thread(target=guarded(lambda i=i: writer(f"w{i}", i))) for i in range(WRITERS)
    ]
    threads += [
        threading.Thread(target=guarded(lambda i=i: searcher(100 + i))) for i in range(SEARCHERS)
    ]
    threads += [threading.Thread(target=guarded(lambda i=i: clearer(i))) for i in range(CLEARERS)]
    with no_leaks("log store load"):
        for t in threads:
            t.start()
        stop.wait(duration)
        stop.set()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
    assert not errors, errors[0]

    total = 0
    evicted_any = False
    for pid, mine in accepted.items():
        kept = [(e.seq, e.content) for e in store.get_by_process(pid)]
        seqs = [s for s, _ in mine]
        assert seqs == sorted(set(seqs)), f"{pid}: seq not strictly increasing"
        assert kept == mine[len(mine) - len(kept) :], (
            f"{pid}: retained lines are not the newest accepted ones"
        )
        if len(kept) < len(mine):
            evicted_any = True
        total += len(mine)
    retained = store.metrics().total_entries
    assert retained <= capacity
    if not evicted_any:
        assert sum(len(store.get_by_process(p)) for p in accepted) == total  # nothing lost at all
    store.close()
    print(
        f"[reliability] log store: {duration:.0f} s, {WRITERS} writers accepted {total} lines "
        f"({total / duration:,.0f}/s), {counts['searches']} searches ({counts['hits']} hits), "
        f"{counts['clears']} clears; lost 0; evicted {'some (suffix kept)' if evicted_any else 'none'}"
    )

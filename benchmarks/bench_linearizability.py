"""How long the linearizability checker takes on histories of a few hundred operations.

Run: python benchmarks/bench_linearizability.py

Histories come from 8 real threads driving a real LogStore (mostly sequential under the GIL)
and from synthetic histories where every operation overlaps 8 or 16 neighbours (more work
for the search). Each figure is the mean over repetitions totalling at least 100 ms.
"""

from __future__ import annotations

import random
import threading
import time
from functools import partial

from brummer.logs import LogStore
from brummer.testing.linearizability import (
    HistoryRecorder,
    LogStoreModel,
    Operation,
    check_history,
)


def real_history(threads: int, per_thread: int, capacity: int) -> list[Operation]:
    store = LogStore(max_entries=capacity)
    rec = HistoryRecorder()
    barrier = threading.Barrier(threads)

    def client(c: int) -> None:
        rnd = random.Random(c)
        barrier.wait()
        for k in range(per_thread):
            pid, roll = rnd.choice("abc"), rnd.random()
            if roll < 0.6:
                rec.record(
                    c,
                    "add",
                    (pid, f"{c}.{k}"),
                    partial(store.add, pid, pid, f"{c}.{k}"),
                    observe=lambda e: (e.process_id, e.content, e.seq),
                )
            elif roll < 0.8:
                rec.record(
                    c,
                    "get_by_process",
                    (pid,),
                    partial(store.get_by_process, pid),
                    observe=lambda r: tuple((e.content, e.seq) for e in r),
                )
            elif roll < 0.95:
                rec.record(
                    c,
                    "get_all",
                    (),
                    store.get_all,
                    observe=lambda r: tuple((e.process_id, e.content, e.seq) for e in r),
                )
            else:
                rec.record(c, "clear_for_process", (pid,), partial(store.clear_for_process, pid))

    workers = [threading.Thread(target=client, args=(c,)) for c in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    store.close()
    return rec.operations()


def stretched_history(n: int, window: int, capacity: int) -> list[Operation]:
    """A legal sequential run whose operations are stretched to overlap ``window`` neighbours."""
    rnd = random.Random(1)
    entries: list[tuple[str, str, int]] = []
    seq: dict[str, int] = {}
    ops = []
    for i in range(n):
        pid, roll = rnd.choice("ab"), rnd.random()
        if roll < 0.6:
            seq[pid] = seq.get(pid, 0) + 1
            entries = [*entries, (pid, str(i), seq[pid])][-capacity:]
            name, args, result = "add", (pid, str(i)), (pid, str(i), seq[pid])
        elif roll < 0.9:
            name, args, result = (
                "get_by_process",
                (pid,),
                tuple((c, s) for p, c, s in entries if p == pid),
            )
        else:
            entries = [e for e in entries if e[0] != pid]
            name, args, result = "clear_for_process", (pid,), None
        ops.append(Operation(i, i % 8, name, args, result, i * 10, i * 10 + window * 10))
    return ops


def measure(label: str, ops: list[Operation], capacity: int) -> None:
    model = LogStoreModel(capacity)
    runs, spent, outcome = 0, 0.0, None
    while spent < 0.1 or runs < 3:
        started = time.perf_counter()
        outcome = check_history(model, ops, time_budget=30.0)
        spent += time.perf_counter() - started
        runs += 1
    assert outcome is not None
    print(
        f"{label:<48} {len(ops):>4} ops  {outcome.outcome.value:<7} {spent / runs * 1000:8.2f} ms/check ({runs} runs)"
    )


def main() -> None:
    measure("8 threads x 40 ops on LogStore, capacity 20", real_history(8, 40, 20), 20)
    measure("8 threads x 60 ops on LogStore, capacity 20", real_history(8, 60, 20), 20)
    measure("16 threads x 40 ops on LogStore, capacity 20", real_history(16, 40, 20), 20)
    measure("synthetic, each op overlaps 8 neighbours", stretched_history(300, 8, 20), 20)
    measure("synthetic, each op overlaps 16 neighbours", stretched_history(500, 16, 20), 20)
    broken = stretched_history(300, 8, 20)
    reads = [i for i, op in enumerate(broken) if op.name == "get_by_process" and op.result]
    victim = broken[reads[len(reads) // 2]]
    broken[victim.id] = Operation(
        victim.id,
        victim.client,
        victim.name,
        victim.args,
        (*victim.result, ("never added", 999)),
        victim.call,
        victim.ret,
    )
    measure("synthetic 300 ops, one phantom read", broken, 20)
    stale = stretched_history(300, 1, 20)
    reads = [i for i, op in enumerate(stale) if op.name == "get_by_process" and op.result]
    victim = stale[reads[len(reads) // 2]]
    stale[victim.id] = Operation(
        victim.id,
        victim.client,
        victim.name,
        victim.args,
        victim.result[:-1],
        victim.call,
        victim.ret,
    )
    measure("synthetic 300 ops, overlap 1, one stale read", stale, 20)


if __name__ == "__main__":
    main()

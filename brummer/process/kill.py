"""Tree kill: end a child brummer started together with everything it started.

The recipe (honcho's, hardened with the psutil "kill tree" notes):

1. Snapshot the tree *before* signalling: the child, its descendants (walking parent
   links) and every member of its process group. Once a parent dies its children are
   re-parented and can no longer be found by walking the tree.
2. SIGTERM the process group and every process in the snapshot (some may have left the
   group with ``setsid``).
3. Wait up to the grace period for the whole snapshot to be gone (a zombie counts as gone).
4. SIGKILL the group and whatever is left; wait for it.
5. Sweep once more for processes forked during the kill (their pid is newer than the
   snapshot; on Linux only those pids are read, from ``/proc/loadavg``'s last pid on) that
   are in one of the tree's groups or children of a member, and SIGKILL them. Where that is
   not possible (no /proc, pid wrap-around, survivors) the whole process table is re-scanned.

POSIX only: Linux reads ``/proc`` directly; elsewhere psutil lists the processes.

What it never does: signal a process that is not in a tree brummer started. There are no
port sweeps and no name patterns. A process is signalled only after checking it is still
the same process (pid and start time) that was found in the snapshot, and a process group
is signalled only while its id cannot belong to someone else (see :class:`KillTarget`).

Known limit: a grandchild that both left the session (``setsid``) and was re-parented
before the stop began (its parent already exited) is in neither the group nor the tree,
and so escapes. Linux's child-subreaper flag would catch it; brummer does not set it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

import attrs

from brummer.contracts import BLOCKING, ThreadSafety, check_timeout, contract

__all__ = ["KILL_WAIT", "KillResult", "KillTarget", "kill_trees", "tree_pids"]

KILL_WAIT = 2.0
"""Seconds to wait for processes to disappear after SIGKILL (each of two rounds)."""

_PROC = "/proc"
_GONE_STATES = frozenset("ZXx")
_POLL_FIRST = 0.0002
_POLL_MAX = 0.01
_SWEEP_RANGE = 4096  # most new pids read one by one in the sweep before a full scan instead
_SWEEP_SLACK = 32  # pids just before the snapshot, allocated but maybe not yet listed in /proc


@contract(ThreadSafety.TS)
@attrs.frozen
class KillTarget:
    """A child brummer spawned in its own session, to be killed with its tree.

    Thread safety: TS (frozen value object).

    Attributes:
        pid: the child's pid; it is also its process group id (``start_new_session``).
        reaped: the child was already reaped. Its pid may then belong to another process;
            the group is signalled only if no process with that pid exists (Linux never
            hands out a pid that is still in use as a process group id, so the group's
            surviving members are the child's own).
    """

    pid: int
    reaped: bool = False


@contract(ThreadSafety.TS)
@attrs.frozen
class KillResult:
    """What a tree kill did.

    Thread safety: TS (frozen value object).

    Attributes:
        terminated: pids sent SIGTERM (the snapshot).
        killed: pids that needed SIGKILL (ignored SIGTERM, or appeared during the kill).
        survivors: pids still alive at the end (normally empty: uninterruptible sleep).
        elapsed: seconds the kill took.
    """

    terminated: tuple[int, ...]
    killed: tuple[int, ...]
    survivors: tuple[int, ...]
    elapsed: float


_Stat = tuple[int, int, str, float]  # ppid, pgrp, state, start time (ticks or epoch seconds)


def _read_stat(pid: int) -> _Stat | None:
    try:
        fd = os.open(f"{_PROC}/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    rest = raw[raw.rfind(b")") + 2 :].split()
    try:
        return int(rest[1]), int(rest[2]), rest[0].decode(), float(rest[19])
    except (IndexError, ValueError):
        return None


def _scan_proc() -> dict[int, _Stat]:
    table: dict[int, _Stat] = {}
    for name in os.listdir(_PROC):
        if name.isdigit():
            stat = _read_stat(int(name))
            if stat is not None:
                table[int(name)] = stat
    return table


def _scan_psutil() -> dict[int, _Stat]:
    import psutil

    table: dict[int, _Stat] = {}
    for proc in psutil.process_iter(["ppid", "status", "create_time"]):
        info = proc.info
        try:
            pgrp = os.getpgid(proc.pid)
        except OSError:
            continue
        state = "Z" if info["status"] == psutil.STATUS_ZOMBIE else "S"
        table[proc.pid] = (info["ppid"] or 0, pgrp, state, float(info["create_time"] or 0.0))
    return table


def _stat_of(pid: int) -> _Stat | None:
    if _HAVE_PROC:
        return _read_stat(pid)
    return _scan_psutil().get(pid)


_HAVE_PROC = os.path.isdir(f"{_PROC}/self")
_scan = _scan_proc if _HAVE_PROC else _scan_psutil


def _snapshot(
    targets: Sequence[KillTarget], table: dict[int, _Stat]
) -> tuple[dict[int, float], list[int]]:
    """Members (pid → start time) and the process groups that are safe to signal."""
    children: defaultdict[int, list[int]] = defaultdict(list)
    by_group: defaultdict[int, list[int]] = defaultdict(list)
    for pid, (ppid, pgrp, state, _) in table.items():
        if state not in _GONE_STATES:
            children[ppid].append(pid)
            by_group[pgrp].append(pid)
    me = os.getpid()
    own_group = os.getpgid(0)
    members: dict[int, float] = {}
    groups: list[int] = []
    for target in targets:
        roots: list[int] = []
        if not target.reaped:
            roots.append(target.pid)
            group_ok = True
        else:
            group_ok = target.pid not in table  # otherwise the pid was reused
        if group_ok and target.pid != own_group:
            groups.append(target.pid)
            roots.extend(by_group.get(target.pid, ()))
        stack = [pid for pid in roots if pid in table]
        while stack:
            pid = stack.pop()
            if pid in members or pid == me:
                continue
            stat = table[pid]
            if stat[2] not in _GONE_STATES:
                members[pid] = stat[3]
            stack.extend(children.get(pid, ()))
    return members, groups


def _alive(pid: int, start: float) -> bool:
    stat = _stat_of(pid)
    return stat is not None and stat[3] == start and stat[2] not in _GONE_STATES


def _signal(members: dict[int, float], groups: Iterable[int], sig: int) -> None:
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, sig)
    for pid, start in members.items():
        if _alive(pid, start):  # same process as in the snapshot, not a reused pid
            with contextlib.suppress(OSError):
                os.kill(pid, sig)


def _wait_gone(members: dict[int, float], deadline: float) -> dict[int, float]:
    """Poll until every member is gone or the deadline passes; return those still alive."""
    alive = dict(members)
    delay = _POLL_FIRST
    while True:
        alive = {pid: start for pid, start in alive.items() if _alive(pid, start)}
        now = time.monotonic()
        if not alive or now >= deadline:
            return alive
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 2, _POLL_MAX)


def _last_pid() -> int | None:
    """The most recently allocated pid (Linux ``/proc/loadavg``), or None."""
    try:
        fd = os.open(f"{_PROC}/loadavg", os.O_RDONLY)
    except OSError:
        return None
    try:
        return int(os.read(fd, 256).split()[4])
    except (OSError, ValueError, IndexError):
        return None
    finally:
        os.close(fd)


def _new_members(
    first: int, last: int, members: dict[int, float], groups: set[int]
) -> dict[int, float]:
    """Processes created after the snapshot (pids up to ``last``, from just before ``first``)
    that belong to the tree: children of a member (or of another such process) or members of
    one of its groups."""
    fresh = {
        pid: stat
        for pid in range(max(1, first - _SWEEP_SLACK), last + 1)
        if pid not in members and (stat := _read_stat(pid))
    }
    known = set(members)
    found: dict[int, float] = {}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, pgrp, state, start) in fresh.items():
            if pid in found or state in _GONE_STATES:
                continue
            if ppid in known or pgrp in groups:
                found[pid] = start
                known.add(pid)
                grew = True
    return found


@contract(ThreadSafety.TS)
def tree_pids(target: KillTarget) -> list[int]:
    """The live pids of the tree of ``target`` (child, descendants, group members).

    Thread safety: TS. Reads /proc (or psutil) only; signals nothing.
    """
    members, _ = _snapshot([target], _scan())
    return sorted(members)


@contract(ThreadSafety.TS, timeout=BLOCKING)
def kill_trees(targets: Sequence[KillTarget], grace: float) -> KillResult:
    """Terminate the trees of ``targets``: SIGTERM, wait ``grace`` seconds, SIGKILL, sweep.

    Thread safety: TS. Several calls may run at once (signals to a dead process are ignored).
    Blocks for at most ``grace`` plus two rounds of :data:`KILL_WAIT`; returns as soon as
    every process of the trees is gone.

    Raises:
        BrummerError: INVALID_ARGUMENT for a negative or non-finite grace.
    """
    grace = check_timeout("process", grace, name="grace") or 0.0
    began = time.monotonic()
    first = _last_pid()  # read before the scan: anything forked later has a higher pid
    table = _scan()
    members, groups = _snapshot(targets, table)
    own_group = os.getpgid(0)
    member_groups = {table[pid][1] for pid in members} | set(groups)
    member_groups.discard(own_group)
    terminated = tuple(sorted(members))
    _signal(members, groups, signal.SIGTERM)
    alive = _wait_gone(members, began + grace)
    killed: set[int] = set(alive)
    if alive:
        _signal(alive, groups, signal.SIGKILL)
        alive = _wait_gone(alive, time.monotonic() + KILL_WAIT)
    # Sweep: whatever was forked during the kill. Only pids allocated since the snapshot can
    # be new members, so on Linux only those are read; otherwise (or when pids wrapped
    # around, or survivors need their descendants) /proc is scanned again.
    last = _last_pid()
    if not alive and first is not None and last is not None and 0 <= last - first <= _SWEEP_RANGE:
        late = _new_members(first, last, members, member_groups)
        if late:
            killed.update(late)
            _signal(late, groups, signal.SIGKILL)
            alive = _wait_gone(late, time.monotonic() + KILL_WAIT)
    else:
        table = _scan()
        late, late_groups = _snapshot(targets, table)
        for pid in alive:
            for extra_pid, start in _snapshot([KillTarget(pid)], table)[0].items():
                late.setdefault(extra_pid, start)
        if late:
            killed.update(late)
            _signal(late, late_groups, signal.SIGKILL)
            alive = _wait_gone(late, time.monotonic() + KILL_WAIT)
    return KillResult(
        terminated=terminated,
        killed=tuple(sorted(killed)),
        survivors=tuple(sorted(alive)),
        elapsed=time.monotonic() - began,
    )

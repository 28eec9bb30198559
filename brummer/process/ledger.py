"""Child ledger: remember the children of a brummer on disk, so orphans can be found later.

If brummer itself dies without stopping its children (SIGKILL, OOM killer, a crash), the
children live on: each was started in its own session, so nothing signals them. A
:class:`ChildLedger` keeps one small JSON file per brummer instance listing its owner (pid
and create time) and every child still alive (pid, create time, process group, session,
name, command). A fresh brummer calls :func:`find_orphans` to list the children of ledgers
whose owner is dead, and :func:`clean_orphans` to stop them (SIGTERM, grace, SIGKILL).

Where: ``<state>/children/<owner pid>-<random>.json``, where ``<state>`` is the directory
that holds the MCP ``instances`` folder (``$BRUMMER_STATE_DIR``, else
``$XDG_RUNTIME_DIR/brummer``, else ``<tempdir>/brummer-<uid>``; ``brummer._state`` holds
the rule for both). The folder has mode 0700, files 0600; every write is atomic
(temporary file, then ``os.replace``), so a reader never sees half a file.

Identity: a process is taken to be the recorded child only if its pid exists *and* its
psutil ``create_time`` is the one recorded at spawn, so a reused pid is never signalled.
Descendants are found through the child's process group and session (brummer starts each
child as the leader of a new session) and parent links. Linux keeps a pid out of use while
a process group or session still bears its number, so when the child is gone but members of
its group or session are alive, those members are still the child's own. There are no name
patterns and no port sweeps.

Known limits: a child spawned and SIGKILLed-with-brummer before its entry was written
(a window of microseconds after the spawn) is not recorded; a descendant that left the
session with ``setsid`` and was re-parented before the check is not found (as in
``brummer.process.kill``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import tempfile
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import psutil

from brummer._state import state_dir as _default_state_dir
from brummer.contracts import BLOCKING, ThreadSafety, check_timeout, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.process.kill import KillResult, KillTarget, kill_trees, tree_pids

__all__ = [
    "ChildLedger",
    "LedgerEntry",
    "OrphanInfo",
    "clean_orphans",
    "find_orphans",
    "ledgers_dir",
]

_log = logging.getLogger("brummer.process")
_COMPONENT = "process"
_SUFFIX = ".json"
_FORMAT = 1
_TIME_SLACK = 0.005  # create times are read twice from /proc; they agree to the tick
_DEFAULT_GRACE = 5.0


@contract(ThreadSafety.TS)
def ledgers_dir(state_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the ledger files (not created here).

    Thread safety: TS. Reads the environment at each call.

    Args:
        state_dir: the brummer state folder; None uses ``$BRUMMER_STATE_DIR``, else
            ``$XDG_RUNTIME_DIR/brummer``, else ``<tempdir>/brummer-<uid>`` (the parent of
            the MCP instances folder).
    """
    if state_dir is not None:
        return Path(state_dir) / "children"
    return _default_state_dir() / "children"


def _create_time(pid: int) -> float | None:
    """psutil's create time of ``pid``, or None when there is no such (non-zombie) process."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(proc.create_time())
    except psutil.Error:
        return None


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= _TIME_SLACK


def _is_alive(pid: int, create_time: float) -> bool:
    found = _create_time(pid)
    return found is not None and _same(found, create_time)


@contract(ThreadSafety.TS)
@attrs.frozen
class LedgerEntry:
    """One child as recorded in a ledger.

    Thread safety: TS (frozen value object).

    Attributes:
        process_id: the ProcessManager id of the process.
        name: its display name.
        command: its command line as shown to the user.
        pid: the child's pid.
        create_time: psutil ``create_time`` of the child, read at spawn (epoch seconds).
        pgid: its process group id (its pid: it leads a new session).
        sid: its session id (its pid as well).
        started_at: when it was recorded (UTC).
        exited: the child itself ended but members of its group or session lived on.
    """

    process_id: str
    name: str
    command: str
    pid: int
    create_time: float
    pgid: int
    sid: int
    started_at: datetime
    exited: bool = False

    @contract(ThreadSafety.TS)
    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON object.

        Thread safety: TS. Pure.
        """
        return {
            "process_id": self.process_id,
            "name": self.name,
            "command": self.command,
            "pid": self.pid,
            "create_time": self.create_time,
            "pgid": self.pgid,
            "sid": self.sid,
            "started_at": self.started_at.isoformat(),
            "exited": self.exited,
        }


@contract(ThreadSafety.TS)
@attrs.frozen
class OrphanInfo:
    """A child of a dead brummer that is (or whose group or session is) still alive.

    Thread safety: TS (frozen value object; a snapshot taken by :func:`find_orphans`).

    Attributes:
        ledger: the ledger file that recorded it.
        owner_pid: the pid of the brummer that started it (now dead).
        entry: what the ledger recorded about the child.
        alive: the child itself is still alive (same pid and create time).
        processes: ``(pid, create_time)`` of every live process of its tree: the child if
            alive, its descendants and the members of its process group and session.
    """

    ledger: str
    owner_pid: int
    entry: LedgerEntry
    alive: bool
    processes: tuple[tuple[int, float], ...]

    @property
    @contract(ThreadSafety.TS)
    def pids(self) -> tuple[int, ...]:
        """The pids of :attr:`processes`, ascending.

        Thread safety: TS.
        """
        return tuple(sorted(pid for pid, _ in self.processes))

    @property
    @contract(ThreadSafety.TS)
    def pid(self) -> int:
        """The recorded child's pid.

        Thread safety: TS.
        """
        return self.entry.pid

    @property
    @contract(ThreadSafety.TS)
    def name(self) -> str:
        """The recorded child's display name.

        Thread safety: TS.
        """
        return self.entry.name

    @property
    @contract(ThreadSafety.TS)
    def command(self) -> str:
        """The recorded child's command line.

        Thread safety: TS.
        """
        return self.entry.command


@contract(ThreadSafety.TS)
class ChildLedger:
    """The on-disk list of this brummer's live children (one JSON file).

    Thread safety: TS. Every method may be called from any thread; writes are serialised
    by an internal lock and atomic on disk.

    The file is written on the first :meth:`record_start`, rewritten on every change, and
    removed when no child is left (so a clean shutdown leaves nothing behind) and by
    :meth:`close`.

    Args:
        state_dir: the brummer state folder (see :func:`ledgers_dir`).
        work_dir: the project folder, stored for the user's information.

    Raises:
        BrummerError: PERMISSION when the ledger folder cannot be created.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        work_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._dir = ledgers_dir(state_dir)
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.PERMISSION,
                f"cannot create the child ledger folder {self._dir}: {exc}",
                hint="check the folder's permissions, or set BRUMMER_STATE_DIR",
                cause=exc,
            ) from exc
        self._owner_pid = os.getpid()
        self._owner_time = _create_time(self._owner_pid) or 0.0
        self._path = self._dir / f"{self._owner_pid}-{secrets.token_hex(6)}{_SUFFIX}"
        self._work_dir = "" if work_dir is None else str(Path(work_dir).resolve())
        self._lock = threading.Lock()
        self._entries: dict[str, LedgerEntry] = {}
        self._closed = False

    @property
    @contract(ThreadSafety.TS)
    def path(self) -> Path:
        """The ledger file (it exists only while children are recorded).

        Thread safety: TS. Immutable.
        """
        return self._path

    def __contains__(self, process_id: object) -> bool:
        """Whether the process is recorded (its tree may still be alive)."""
        with self._lock:
            return process_id in self._entries

    @contract(ThreadSafety.TS)
    def entries(self) -> list[LedgerEntry]:
        """The recorded children, oldest first.

        Thread safety: TS. A snapshot.
        """
        with self._lock:
            return list(self._entries.values())

    @contract(ThreadSafety.TS, guarantees="the entry is on disk when this returns")
    def record_start(
        self, process_id: str, pid: int, *, name: str = "", command: str = ""
    ) -> LedgerEntry | None:
        """Record a child just spawned (before it is reaped); return its entry.

        Thread safety: TS.

        Returns None when the pid is already gone (nothing to remember).

        Raises:
            BrummerError: INVALID_ARGUMENT for a bad id or pid; INVALID_STATE after
                :meth:`close`; PERMISSION when the file cannot be written.
        """
        if not isinstance(process_id, str) or not process_id:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                "process_id must be a non-empty string",
                hint="pass the ProcessManager id of the process",
            )
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.INVALID_ARGUMENT,
                f"pid must be a positive int, not {pid!r}",
                hint="pass the pid of the spawned child",
            )
        try:
            proc = psutil.Process(pid)
            created = float(proc.create_time())  # works on a zombie not yet reaped
            pgid, sid = os.getpgid(pid), os.getsid(pid)
        except (psutil.Error, OSError):
            return None
        entry = LedgerEntry(
            process_id=process_id,
            name=name,
            command=command,
            pid=pid,
            create_time=created,
            pgid=pgid,
            sid=sid,
            started_at=datetime.now(UTC),
        )
        with self._lock:
            if self._closed:
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.INVALID_STATE,
                    "the child ledger was closed",
                    hint="create a new ChildLedger",
                )
            self._entries[process_id] = entry
            self._write_locked()
        return entry

    @contract(ThreadSafety.TS)
    def record_exit(self, process_id: str) -> None:
        """The child itself ended: forget it, unless members of its group or session live on.

        Thread safety: TS. An unknown id is ignored (already forgotten). Reads the process
        table once to look for surviving group or session members; those keep the entry
        (marked ``exited``) until :meth:`forget`.
        """
        with self._lock:
            entry = self._entries.get(process_id)
        if entry is None:
            return
        survivors = _tree_of(entry, alive=False)
        with self._lock:
            if self._entries.get(process_id) is not entry:
                return
            if survivors:
                self._entries[process_id] = attrs.evolve(entry, exited=True)
            else:
                del self._entries[process_id]
            self._write_locked()

    @contract(ThreadSafety.TS)
    def forget(self, process_ids: Iterable[str]) -> None:
        """Drop entries whose whole tree is known to be gone (a successful tree kill).

        Thread safety: TS. Unknown ids are ignored.
        """
        with self._lock:
            changed = False
            for process_id in process_ids:
                changed |= self._entries.pop(process_id, None) is not None
            if changed:
                self._write_locked()

    @contract(ThreadSafety.TS)
    def close(self) -> bool:
        """Stop recording; remove the file if no child is recorded. Return whether it was.

        Thread safety: TS. Idempotent. Entries still recorded (children that could not be
        stopped) keep the file, so a later brummer finds them as orphans.
        """
        with self._lock:
            self._closed = True
            if self._entries:
                _log.warning(
                    "child ledger %s kept: %d child(ren) still recorded",
                    self._path,
                    len(self._entries),
                )
                return False
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
            return True

    def _write_locked(self) -> None:
        if not self._entries:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
            return
        data = {
            "format": _FORMAT,
            "owner": {
                "pid": self._owner_pid,
                "create_time": self._owner_time,
                "work_dir": self._work_dir,
            },
            "children": [e.to_json() for e in self._entries.values()],
        }
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self._path.stem}.", suffix=".tmp", dir=self._dir)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(data, out)
                os.chmod(tmp, 0o600)
                os.replace(tmp, self._path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise BrummerError(
                _COMPONENT,
                ErrorCode.PERMISSION,
                f"cannot write the child ledger {self._path}: {exc}",
                hint="check the folder's permissions and free space, or set BRUMMER_STATE_DIR",
                cause=exc,
            ) from exc


# -- reading ledgers -----------------------------------------------------------------------


@attrs.frozen
class _Ledger:
    path: Path
    owner_pid: int
    owner_time: float
    entries: tuple[LedgerEntry, ...]


def _read_ledger(path: Path) -> _Ledger | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        owner = data["owner"]
        entries = tuple(
            LedgerEntry(
                process_id=_typed(c, "process_id", str),
                name=_typed(c, "name", str),
                command=_typed(c, "command", str),
                pid=_typed(c, "pid", int),
                create_time=float(_typed(c, "create_time", (int, float))),
                pgid=_typed(c, "pgid", int),
                sid=_typed(c, "sid", int),
                started_at=datetime.fromisoformat(_typed(c, "started_at", str)),
                exited=bool(c.get("exited", False)),
            )
            for c in data["children"]
        )
        ledger = _Ledger(
            path,
            _typed(owner, "pid", int),
            float(_typed(owner, "create_time", (int, float))),
            entries,
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        _log.warning("skipping %s: not a brummer child ledger (%s)", path, exc)
        return None
    if ledger.owner_pid <= 0 or any(e.pid <= 0 for e in entries):
        _log.warning("skipping %s: not a brummer child ledger (bad pid)", path)
        return None
    return ledger


def _typed(data: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{key} has the wrong type {type(value).__name__}")
    return value


def _tree_of(entry: LedgerEntry, *, alive: bool) -> dict[int, float]:
    """Live processes of the child's tree: pid → create time.

    With ``alive`` the child (verified) is included with its descendants and group; without,
    the pid is treated as gone and only its group and session members count.
    """
    if not alive and _create_time(entry.pid) is not None:
        return {}  # the pid was reused: group and session numbers may be someone else's
    me = os.getpid()
    found: dict[int, float] = {}
    candidates = set(tree_pids(KillTarget(entry.pid, reaped=not alive)))
    # The session counts only when the child led it (brummer starts every child so);
    # otherwise it is someone else's session, e.g. the terminal's.
    for proc in psutil.process_iter() if entry.sid == entry.pid else ():
        if proc.pid in candidates or proc.pid == me:
            continue
        with contextlib.suppress(OSError):
            if os.getsid(proc.pid) == entry.sid:
                candidates.add(proc.pid)
    for pid in candidates:
        if pid == me:
            continue
        created = _create_time(pid)
        if created is None or created < entry.create_time - _TIME_SLACK:
            continue  # gone, or older than the child: cannot be of its tree
        found[pid] = created
    return found


def _owner_alive(ledger: _Ledger) -> bool:
    return _is_alive(ledger.owner_pid, ledger.owner_time)


@contract(ThreadSafety.TS, timeout=BLOCKING)
def find_orphans(state_dir: str | os.PathLike[str] | None = None) -> list[OrphanInfo]:
    """Children left alive by brummers that died: ledgers whose owner is gone.

    Thread safety: TS. Signals nothing. Reads the ledger folder and the process table.

    A child is listed when it is alive with the recorded pid *and* create time, or when it
    is gone but members of its process group or session are alive. Ledgers whose owner is
    dead and that have nothing alive left are deleted; ledgers of live brummers (this one
    included) are left alone; unreadable files are skipped with a warning.

    Args:
        state_dir: the brummer state folder (see :func:`ledgers_dir`).
    """
    folder = ledgers_dir(state_dir)
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == _SUFFIX)
    except (FileNotFoundError, NotADirectoryError):
        return []
    orphans: list[OrphanInfo] = []
    for file in files:
        ledger = _read_ledger(file)
        if ledger is None or _owner_alive(ledger):
            continue
        found: list[OrphanInfo] = []
        for entry in ledger.entries:
            alive = _is_alive(entry.pid, entry.create_time) and not entry.exited
            tree = _tree_of(entry, alive=alive)
            if tree:
                found.append(
                    OrphanInfo(
                        ledger=str(file),
                        owner_pid=ledger.owner_pid,
                        entry=entry,
                        alive=alive,
                        processes=tuple(sorted(tree.items())),
                    )
                )
        if found:
            orphans.extend(found)
        else:
            _log.info("removing stale child ledger %s (owner %d)", file, ledger.owner_pid)
            with contextlib.suppress(OSError):
                file.unlink()
    return orphans


@contract(ThreadSafety.TS, timeout=BLOCKING, guarantees="signals only verified orphans")
def clean_orphans(orphans: Sequence[OrphanInfo], timeout: float = _DEFAULT_GRACE) -> KillResult:
    """Stop orphans found by :func:`find_orphans`: SIGTERM their trees, wait, SIGKILL, sweep.

    Thread safety: TS. Blocks for at most ``timeout`` plus the SIGKILL rounds of
    :func:`brummer.process.kill.kill_trees`.

    Before signalling, each process is checked again (same pid and create time); a process
    that changed is left alone. Ledger files whose orphans are all gone afterwards are
    deleted (the ledger of a live brummer never is).

    Args:
        orphans: what :func:`find_orphans` returned (or a part of it).
        timeout: grace period between SIGTERM and SIGKILL, in seconds.

    Raises:
        BrummerError: INVALID_ARGUMENT for a bad timeout or something that is not an
            OrphanInfo; TIMEOUT when some process survived SIGKILL (the ledger is kept).
    """
    grace = check_timeout(_COMPONENT, timeout)
    grace = _DEFAULT_GRACE if grace is None else grace
    given: object = orphans
    if (
        isinstance(given, (str, bytes))
        or not isinstance(given, Sequence)
        or not all(isinstance(o, OrphanInfo) for o in given)
    ):
        raise BrummerError(
            _COMPONENT,
            ErrorCode.INVALID_ARGUMENT,
            "orphans must be a sequence of OrphanInfo",
            hint="pass the list returned by find_orphans()",
        )
    targets: list[KillTarget] = []
    seen: set[int] = set()
    for orphan in orphans:
        child_alive = orphan.alive and _is_alive(orphan.entry.pid, orphan.entry.create_time)
        if orphan.entry.pid not in seen:
            seen.add(orphan.entry.pid)
            targets.append(KillTarget(orphan.entry.pid, reaped=not child_alive))
        for pid, created in orphan.processes:
            if pid not in seen and _is_alive(pid, created):
                seen.add(pid)
                targets.append(KillTarget(pid))
    result = (
        kill_trees(targets, grace)
        if targets
        else KillResult(terminated=(), killed=(), survivors=(), elapsed=0.0)
    )
    if result.survivors:
        raise BrummerError(
            _COMPONENT,
            ErrorCode.TIMEOUT,
            f"{len(result.survivors)} orphan process(es) survived SIGKILL: "
            f"{list(result.survivors)}",
            hint="they are probably stuck in the kernel (uninterruptible I/O); check them with ps",
            context={"pids": result.survivors},
        )
    for path in sorted({o.ledger for o in orphans}):
        ledger = _read_ledger(Path(path))
        if ledger is None or _owner_alive(ledger):
            continue
        if not any(_tree_of(e, alive=_is_alive(e.pid, e.create_time)) for e in ledger.entries):
            with contextlib.suppress(OSError):
                Path(path).unlink()
    _log.info("cleaned %d orphan process(es) in %.3f s", len(result.terminated), result.elapsed)
    return result

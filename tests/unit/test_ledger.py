"""ChildLedger, find_orphans and clean_orphans against real processes and hand-made ledgers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from brummer._state import state_dir
from brummer.errors import BrummerError, ErrorCode
from brummer.mcp.discovery import instances_dir
from brummer.process import (
    ChildLedger,
    OrphanInfo,
    ProcessManager,
    clean_orphans,
    find_orphans,
    ledgers_dir,
)
from brummer.process.kill import KillTarget, tree_pids
from tests.helpers import wait_until

PY = sys.executable
SLEEPER = "import sys; sys.stdin.read()"  # lives until its stdin closes


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv("BRUMMER_STATE_DIR", str(folder))
    return folder


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([PY, "-c", SLEEPER], stdin=subprocess.PIPE, start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10.0)
        assert proc.stdin is not None
        proc.stdin.close()


def _dead_owner() -> tuple[int, float]:
    """The pid and create time of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([PY, "-c", SLEEPER], stdin=subprocess.PIPE)
    created = psutil.Process(proc.pid).create_time()
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10.0)
    return proc.pid, created


def _write_ledger(
    state: Path, owner: tuple[int, float], children: list[dict[str, Any]], name: str = "x"
) -> Path:
    folder = ledgers_dir(state)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{owner[0]}-{name}.json"
    data = {
        "format": 1,
        "owner": {"pid": owner[0], "create_time": owner[1], "work_dir": ""},
        "children": children,
    }
    path.write_text(json.dumps(data))
    return path


def _child(pid: int, created: float, process_id: str = "p-1", **extra: Any) -> dict[str, Any]:
    return {
        "process_id": process_id,
        "name": "web",
        "command": "npm run dev",
        "pid": pid,
        "create_time": created,
        "pgid": pid,
        "sid": pid,
        "started_at": datetime.now(UTC).isoformat(),
        **extra,
    }


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# -- where ------------------------------------------------------------------------------------


def test_ledgers_dir_sits_in_the_state_folder(state: Path) -> None:
    assert ledgers_dir() == state / "children"
    assert ledgers_dir() == state_dir() / "children"
    assert ledgers_dir().parent == instances_dir().parent
    assert ledgers_dir("/elsewhere") == Path("/elsewhere/children")


def test_state_dir_falls_back_to_xdg_runtime_then_tempdir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BRUMMER_STATE_DIR", str(tmp_path / "state"))
    assert state_dir() == tmp_path / "state"
    monkeypatch.setenv("BRUMMER_STATE_DIR", "")  # empty counts as unset
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1234")
    assert state_dir() == Path("/run/user/1234/brummer")
    assert ledgers_dir() == Path("/run/user/1234/brummer/children")
    assert instances_dir() == Path("/run/user/1234/brummer/instances")
    monkeypatch.delenv("BRUMMER_STATE_DIR")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    assert state_dir() == tmp_path / "tmp" / f"brummer-{os.getuid()}"


# -- writing ----------------------------------------------------------------------------------


def test_record_start_writes_pid_create_time_and_group(
    state: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    ledger = ChildLedger(work_dir=state.parent)
    assert not ledger.path.exists()
    entry = ledger.record_start("web-1", sleeper.pid, name="web", command="npm run dev")
    assert entry is not None
    assert entry.create_time == psutil.Process(sleeper.pid).create_time()
    assert entry.pgid == entry.sid == sleeper.pid  # the child leads a new session
    data = json.loads(ledger.path.read_text())
    assert data["owner"]["pid"] == os.getpid()
    assert data["owner"]["create_time"] == psutil.Process().create_time()
    assert data["children"] == [entry.to_json()]
    assert oct(ledger.path.stat().st_mode & 0o777) == oct(0o600)
    assert [p.name for p in ledger.path.parent.iterdir()] == [ledger.path.name]  # no tmp left
    assert ledger.entries() == [entry]

    ledger.record_exit("web-1")  # nothing else in its group: forgotten
    assert ledger.entries() == []
    assert not ledger.path.exists()
    assert ledger.close()


def test_forget_and_close(state: Path, sleeper: subprocess.Popen[bytes]) -> None:
    ledger = ChildLedger()
    ledger.record_start("a", sleeper.pid)
    assert not ledger.close()  # a child is still recorded: the file stays for a later brummer
    assert ledger.path.exists()
    with pytest.raises(BrummerError) as err:
        ledger.record_start("b", sleeper.pid)
    assert err.value.code is ErrorCode.INVALID_STATE
    ledger.forget(["a", "unknown"])
    assert not ledger.path.exists()
    assert ledger.close()


@pytest.mark.parametrize(
    ("process_id", "pid"), [("", 1), (None, 1), ("a", 0), ("a", -5), ("a", True), ("a", "12")]
)
def test_record_start_refuses_bad_input(state: Path, process_id: Any, pid: Any) -> None:
    ledger = ChildLedger()
    with pytest.raises(BrummerError) as err:
        ledger.record_start(process_id, pid)
    assert err.value.code is ErrorCode.INVALID_ARGUMENT
    assert err.value.hint
    assert ledger.entries() == []


def test_record_start_of_a_gone_pid_records_nothing(state: Path) -> None:
    pid, _ = _dead_owner()
    ledger = ChildLedger()
    assert ledger.record_start("gone", pid) is None or _alive(pid)  # pid reuse is possible
    ledger.forget(["gone"])
    assert ledger.close()


def test_unwritable_state_dir_is_a_permission_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BrummerError) as err:
        ChildLedger(blocker)
    assert err.value.code is ErrorCode.PERMISSION
    assert "BRUMMER_STATE_DIR" in err.value.hint


# -- finding ----------------------------------------------------------------------------------


def test_a_live_owner_has_no_orphans(state: Path, sleeper: subprocess.Popen[bytes]) -> None:
    ledger = ChildLedger()
    ledger.record_start("a", sleeper.pid)
    try:
        assert find_orphans() == []
        assert ledger.path.exists()  # a live brummer's ledger is never touched
    finally:
        ledger.forget(["a"])


def test_a_dead_owner_orphan_is_found_and_cleaned(
    state: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    created = psutil.Process(sleeper.pid).create_time()
    path = _write_ledger(state, _dead_owner(), [_child(sleeper.pid, created)])
    orphans = find_orphans()
    assert len(orphans) == 1
    orphan = orphans[0]
    assert isinstance(orphan, OrphanInfo)
    assert (orphan.pid, orphan.name, orphan.command, orphan.alive) == (
        sleeper.pid,
        "web",
        "npm run dev",
        True,
    )
    assert orphan.pids == (sleeper.pid,)
    assert orphan.ledger == str(path)
    result = clean_orphans(orphans, timeout=1.0)
    assert result.survivors == ()
    assert sleeper.wait(timeout=10.0) == -signal.SIGTERM
    assert not path.exists()
    assert find_orphans() == []


def test_a_reused_pid_is_never_listed(state: Path, sleeper: subprocess.Popen[bytes]) -> None:
    created = psutil.Process(sleeper.pid).create_time()
    # Same pid, another create time: the recorded child is gone and the pid was reused.
    path = _write_ledger(state, _dead_owner(), [_child(sleeper.pid, created - 100.0)])
    assert find_orphans() == []
    assert not path.exists()  # nothing alive is left of that ledger: it was stale
    assert sleeper.poll() is None


def test_group_members_of_a_gone_child_are_found(state: Path, tmp_path: Path) -> None:
    # sh leads a new session, starts a background child in its group, then exits.
    script = f"{PY} -c 'import time; time.sleep(600)' & read line"
    sh = subprocess.Popen(
        ["sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    leader = sh.pid
    try:
        created = psutil.Process(leader).create_time()
        assert wait_until(lambda: len(psutil.Process(leader).children()) == 1, timeout=10.0)
        member = psutil.Process(leader).children()[0].pid
        assert sh.stdin is not None
        sh.stdin.close()
        assert sh.wait(timeout=10.0) == 1  # read hit EOF
        path = _write_ledger(state, _dead_owner(), [_child(leader, created)])
        orphans = find_orphans()
        assert len(orphans) == 1
        assert not orphans[0].alive
        assert orphans[0].pids == (member,)
        assert clean_orphans(orphans, timeout=0.5).survivors == ()
        assert wait_until(lambda: not _alive(member), timeout=10.0)
        assert not path.exists()
    finally:
        with contextlib.suppress(OSError):
            os.killpg(leader, signal.SIGKILL)  # the group outlives sh: its id is not reused
        if sh.poll() is None:
            sh.kill()
            sh.wait(timeout=10.0)


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not json",
        "[]",
        '{"owner": {"pid": "x", "create_time": 1}, "children": []}',
        '{"owner": {"pid": 1}, "children": []}',
        '{"owner": {"pid": 0, "create_time": 1.0}, "children": []}',
        '{"owner": {"pid": 999999999, "create_time": 1.0}, "children": [{"pid": 1}]}',
    ],
)
def test_broken_ledger_files_are_skipped(state: Path, content: str) -> None:
    folder = ledgers_dir()
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text(content)
    assert find_orphans() == []


def test_no_state_folder_means_no_orphans(tmp_path: Path) -> None:
    assert find_orphans(tmp_path / "missing") == []


# -- cleaning ---------------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [-1.0, float("nan"), float("inf")])
def test_clean_orphans_refuses_a_bad_timeout(timeout: float) -> None:
    with pytest.raises(BrummerError) as err:
        clean_orphans([], timeout=timeout)
    assert err.value.code is ErrorCode.INVALID_ARGUMENT


@pytest.mark.parametrize("orphans", [["x"], "abc", [None], 5])
def test_clean_orphans_refuses_what_is_not_an_orphan(orphans: Any) -> None:
    with pytest.raises(BrummerError) as err:
        clean_orphans(orphans)
    assert err.value.code is ErrorCode.INVALID_ARGUMENT
    assert "find_orphans" in err.value.hint


def test_clean_nothing(state: Path) -> None:
    result = clean_orphans([], timeout=0.0)
    assert result.terminated == result.killed == result.survivors == ()


def test_clean_leaves_a_process_whose_create_time_changed(
    state: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    created = psutil.Process(sleeper.pid).create_time()
    _write_ledger(state, _dead_owner(), [_child(sleeper.pid, created)])
    (orphan,) = find_orphans()
    forged = OrphanInfo(
        ledger=orphan.ledger,
        owner_pid=orphan.owner_pid,
        entry=orphan.entry,
        alive=False,
        processes=((sleeper.pid, created - 50.0),),
    )
    clean_orphans([forged], timeout=0.0)
    assert sleeper.poll() is None  # neither the pid (wrong time) nor its "group" was signalled


# -- ProcessManager wiring --------------------------------------------------------------------


def test_manager_records_children_while_their_tree_lives(state: Path, tmp_path: Path) -> None:
    ledger = ChildLedger(work_dir=tmp_path)
    pm = ProcessManager(tmp_path, ledger=ledger, stop_timeout=0.5)
    try:
        proc = pm.start_command("sleeper", PY, ["-c", "import time; time.sleep(600)"])
        entries = ledger.entries()
        assert [(e.process_id, e.pid, e.name) for e in entries] == [(proc.id, proc.pid, "sleeper")]
        assert json.loads(ledger.path.read_text())["children"][0]["pid"] == proc.pid
        quick = pm.start_command("quick", PY, ["-c", "pass"])
        assert quick.wait(10.0).finished
        assert wait_until(lambda: quick.id not in {e.process_id for e in ledger.entries()})
        pm.stop_process(proc.id)
        assert ledger.entries() == []
        assert not ledger.path.exists()
    finally:
        pm.cleanup()
    assert ledger.close()


def test_manager_keeps_an_exited_child_whose_group_lives_on(state: Path, tmp_path: Path) -> None:
    ledger = ChildLedger()
    pm = ProcessManager(tmp_path, ledger=ledger, stop_timeout=0.5)
    daemons: list[psutil.Process] = []
    try:
        # The background process closes its output: only the ledger still knows about it.
        proc = pm.start_command(
            "daemonish", f"{PY} -c 'import time; time.sleep(600)' > /dev/null 2>&1 & exit 0"
        )
        assert proc.wait(10.0).finished
        assert proc.pid is not None
        assert wait_until(lambda: [e.exited for e in ledger.entries()] == [True], timeout=10.0)
        daemons = [psutil.Process(pid) for pid in tree_pids(KillTarget(proc.pid, reaped=True))]
        assert len(daemons) == 1
        pm.cleanup()  # kills the rest of the tree and forgets it
        assert wait_until(lambda: not any(_alive(d.pid) and d.is_running() for d in daemons))
        assert ledger.entries() == []
        assert ledger.close()
    finally:
        pm.cleanup()
        for daemon in daemons:
            with contextlib.suppress(psutil.Error):
                daemon.kill()  # is_running() inside: checks the create time first


def test_manager_refuses_a_bad_ledger(tmp_path: Path) -> None:
    with pytest.raises(BrummerError) as err:
        ProcessManager(tmp_path, ledger="ledger.json")  # type: ignore[arg-type]
    assert err.value.code is ErrorCode.INVALID_ARGUMENT


def test_a_child_that_did_not_lead_its_session_brings_only_itself(state: Path) -> None:
    # Children in the test's own session and group: only the recorded one is listed, not
    # the younger process next to it in that session.
    plain = subprocess.Popen([PY, "-c", SLEEPER], stdin=subprocess.PIPE)
    younger = subprocess.Popen([PY, "-c", SLEEPER], stdin=subprocess.PIPE)
    try:
        assert psutil.Process(younger.pid).create_time() >= psutil.Process(plain.pid).create_time()
        created = psutil.Process(plain.pid).create_time()
        entry = _child(plain.pid, created, pgid=os.getpgid(0), sid=os.getsid(0))
        _write_ledger(state, _dead_owner(), [entry])
        (orphan,) = find_orphans()
        assert orphan.pids == (plain.pid,)
    finally:
        for proc in (plain, younger):
            proc.kill()
            proc.wait(timeout=10.0)
            assert proc.stdin is not None
            proc.stdin.close()

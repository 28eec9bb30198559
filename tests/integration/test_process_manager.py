"""ProcessManager against real children: Python children via sys.executable, npm for the fixture."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import given, settings, strategies as st

from brummer.errors import BrummerError, ErrorCode
from brummer.events import Event, EventBus, EventType
from brummer.process import (
    Process,
    ProcessManager,
    ProcessStatus,
    RestartPolicy,
)
from brummer.process.child import Child
from brummer.process.kill import KillTarget, kill_trees, tree_pids
from tests.helpers import wait_until

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PY = sys.executable


class RecordingStore:
    """A log store fake: records what the manager hands it (the real one is tested apart)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, str, bool]] = []

    def add(self, process_id: str, process_name: str, content: str, is_error: bool = False) -> Any:
        with self._lock:
            self.entries.append((process_id, content, is_error))

    def add_batch(self, entries: Sequence[Any]) -> Any:
        with self._lock:
            self.entries.extend((e.process_id, e.content, e.is_error) for e in entries)

    def lines(self, process_id: str, is_error: bool | None = None) -> list[str]:
        with self._lock:
            return [
                c
                for p, c, e in self.entries
                if p == process_id and (is_error is None or e == is_error)
            ]


def py(code: str) -> list[str]:
    return ["-c", textwrap.dedent(code)]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def manager(store: RecordingStore, tmp_path: Path) -> Iterator[ProcessManager]:
    pm = ProcessManager(tmp_path, log_store=store, stop_timeout=2.0)
    yield pm
    pm.cleanup(timeout=10.0)


TREE = """
import os, subprocess, sys, time
level = int(sys.argv[1]) if len(sys.argv) > 1 else 0
ignore = len(sys.argv) > 2
if ignore:
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if level < 2:
    subprocess.Popen([sys.executable, __file__, str(level + 1)] + sys.argv[2:])
print(f"level {level} pid {os.getpid()}", flush=True)
time.sleep(300)
"""


@pytest.fixture
def tree_script(tmp_path: Path) -> str:
    path = tmp_path / "tree.py"
    path.write_text(TREE)
    return str(path)


def start_tree(
    pm: ProcessManager, store: RecordingStore, script: str, *, ignore_term: bool = False
) -> tuple[Process, list[int]]:
    args = [script, "0", "ignore"] if ignore_term else [script, "0"]
    proc = pm.start_command("tree", PY, args)
    assert wait_until(lambda: len([x for x in store.lines(proc.id) if x.startswith("level")]) == 3)
    assert proc.pid is not None
    pids = tree_pids(KillTarget(proc.pid))
    assert len(pids) == 3
    return proc, pids


# -- output ---------------------------------------------------------------------------------


def test_stdout_stderr_and_partial_last_line_reach_the_store(
    manager: ProcessManager, store: RecordingStore
) -> None:
    proc = manager.start_command(
        "printer",
        PY,
        py("""
            import sys
            print("one"); print("two")
            sys.stderr.write("oops\\n"); sys.stderr.flush()
            sys.stdout.write("tail without newline")
        """),
    )
    assert proc.wait(10) is ProcessStatus.SUCCESS
    assert store.lines(proc.id, False) == ["one", "two", "tail without newline"]
    assert store.lines(proc.id, True) == ["oops"]
    info = proc.snapshot()
    assert info.exit_code == 0
    assert info.end_time is not None
    assert info.end_time >= info.start_time
    assert info.start_time.tzinfo is not None
    assert info.pgid == info.pid


def test_environment_forces_colour_and_unbuffered_output(
    manager: ProcessManager, store: RecordingStore
) -> None:
    proc = manager.start_command(
        "env",
        "echo $FORCE_COLOR $COLORTERM $PYTHONUNBUFFERED $EXTRA",
        env={"EXTRA": "yes"},
    )
    assert proc.wait(10) is ProcessStatus.SUCCESS
    assert store.lines(proc.id) == ["1 truecolor 1 yes"]


def test_every_child_runs_in_its_own_session(manager: ProcessManager) -> None:
    proc = manager.start_command("sleeper", PY, py("import time; time.sleep(60)"))
    assert proc.pid is not None
    assert os.getsid(proc.pid) == proc.pid
    assert os.getpgid(proc.pid) == proc.pid
    assert os.getsid(proc.pid) != os.getsid(0)


def test_events_on_the_bus_in_order_with_process_id(store: RecordingStore, tmp_path: Path) -> None:
    bus = EventBus(workers=1)
    seen: list[Event] = []
    lock = threading.Lock()

    def handler(event: Event) -> None:
        with lock:
            seen.append(event)

    bus.subscribe_all(handler)
    pm = ProcessManager(tmp_path, event_bus=bus, log_store=store)
    try:
        proc = pm.start_command("evented", PY, py("print('a'); print('b')"))
        assert proc.wait(10) is ProcessStatus.SUCCESS
        assert wait_until(lambda: any(e.type is EventType.PROCESS_EXITED for e in seen))
    finally:
        pm.cleanup()
        bus.stop()
    mine = [e for e in seen if e.process_id == proc.id]
    assert mine[0].type is EventType.PROCESS_STARTED
    assert mine[0].data["pid"] == proc.pid
    assert mine[-1].type is EventType.PROCESS_EXITED
    assert mine[-1].data["status"] == "success"
    assert mine[-1].data["exit_code"] == 0
    lines = [line for e in mine if e.type is EventType.LOG_LINE for line in e.data["lines"]]
    assert lines == ["a", "b"]


def test_log_callbacks_get_every_line_and_a_raising_one_does_not_stop_others(
    manager: ProcessManager,
) -> None:
    got: list[tuple[str, str, bool]] = []

    def bad(pid: str, line: str, is_error: bool) -> None:
        raise RuntimeError("callback bug")

    manager.register_log_callback(bad)
    cb = manager.register_log_callback(lambda p, line, e: got.append((p, line, e)))
    proc = manager.start_command("cb", "echo out; echo err >&2")
    assert proc.wait(10) is ProcessStatus.SUCCESS
    assert sorted(got) == sorted([(proc.id, "out", False), (proc.id, "err", True)])
    manager.unregister_log_callback(cb)
    with pytest.raises(BrummerError) as info:
        manager.unregister_log_callback(cb)
    assert info.value.code is ErrorCode.NOT_FOUND
    got.clear()
    again = manager.start_command("cb2", "echo more")
    assert again.wait(10) is ProcessStatus.SUCCESS
    assert got == []


def test_unregistered_callback_receives_nothing_after_unregister_returns(
    manager: ProcessManager,
) -> None:
    calls: list[str] = []
    unregistered = threading.Event()
    late: list[str] = []

    def cb(pid: str, line: str, is_error: bool) -> None:
        calls.append(line)
        if unregistered.is_set():
            late.append(line)

    cb_id = manager.register_log_callback(cb)
    proc = manager.start_command(
        "stream",
        PY,
        py("import time\nwhile True:\n    print('x' * 10, flush=True)\n    time.sleep(0.0005)"),
    )
    assert wait_until(lambda: len(calls) > 50)
    manager.unregister_log_callback(cb_id)
    unregistered.set()
    manager.stop_process(proc.id)
    assert late == []


# -- statuses and bad input ------------------------------------------------------------------


def test_nonzero_exit_is_failed_with_its_code_and_a_clear_line(
    manager: ProcessManager, store: RecordingStore
) -> None:
    proc = manager.start_command("failer", PY, py("import sys; print('bye'); sys.exit(7)"))
    assert proc.wait(10) is ProcessStatus.FAILED
    assert proc.exit_code == 7
    assert "failed (exit code 7)" in store.lines(proc.id, True)[-1]


def test_missing_shell_command_fails_with_127_and_says_so(
    manager: ProcessManager, store: RecordingStore
) -> None:
    proc = manager.start_command("missing", "brummer-no-such-command-xyz --flag")
    assert proc.wait(10) is ProcessStatus.FAILED
    assert proc.exit_code == 127
    assert any("command not found" in line for line in store.lines(proc.id, True))


def test_missing_executable_fails_at_once_with_a_clear_line(
    manager: ProcessManager, store: RecordingStore
) -> None:
    proc = manager.start_command("missing", "/nonexistent/brummer-tool", ["--x"])
    assert proc.status is ProcessStatus.FAILED
    assert proc.wait(0) is ProcessStatus.FAILED
    assert proc.pid is None
    assert proc.exit_code is None
    (line,) = store.lines(proc.id, True)
    assert "cannot start" in line
    assert "No such file" in line
    manager.stop_process(proc.id)  # no-op
    assert proc.status is ProcessStatus.FAILED


@pytest.mark.parametrize("command", ["", "   "])
def test_empty_command_is_invalid_argument(manager: ProcessManager, command: str) -> None:
    with pytest.raises(BrummerError) as info:
        manager.start_command("empty", command)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert isinstance(info.value, ValueError)
    assert info.value.hint
    assert manager.get_all_processes() == []


def test_other_bad_arguments(manager: ProcessManager, tmp_path: Path) -> None:
    cases: list[Callable[[], object]] = [
        lambda: manager.start_command("", "echo"),
        lambda: manager.start_command("x", "echo", "not-a-list"),
        lambda: manager.start_command("x", "echo", cwd=tmp_path / "missing"),
        lambda: manager.start_command("x", "echo", env={"A=B": "c"}),
        lambda: manager.start_script("x", restart="always"),  # type: ignore[arg-type]
        lambda: manager.register_log_callback("not callable"),  # type: ignore[arg-type]
        lambda: RestartPolicy(mode="sometimes"),
        lambda: RestartPolicy(backoff_initial=-1),
        lambda: ProcessManager(tmp_path, stop_timeout=-1),
        lambda: ProcessManager(tmp_path, package_manager="pip"),
        lambda: ProcessManager(tmp_path / "missing"),
    ]
    for case in cases:
        with pytest.raises(BrummerError) as info:
            case()
        assert info.value.code in (ErrorCode.INVALID_ARGUMENT, ErrorCode.NOT_FOUND), case


def test_unknown_script_and_process_ids_are_not_found(manager: ProcessManager) -> None:
    for call in (
        lambda: manager.start_script("nope"),
        lambda: manager.stop_process("nope-1"),
        lambda: manager.restart_process("nope-1"),
    ):
        with pytest.raises(BrummerError) as info:
            call()
        assert info.value.code is ErrorCode.NOT_FOUND
        assert isinstance(info.value, LookupError)
    assert manager.get_process("nope-1") is None


def test_bad_timeouts_are_invalid_argument(manager: ProcessManager) -> None:
    proc = manager.start_command("t", "true")
    for call in (
        lambda: manager.stop_process(proc.id, timeout=-1),
        lambda: manager.stop_process(proc.id, timeout=float("nan")),
        lambda: proc.wait(-1),
        lambda: manager.cleanup(timeout=-5),
    ):
        with pytest.raises(BrummerError) as info:
            call()
        assert info.value.code is ErrorCode.INVALID_ARGUMENT
    proc.wait(10)


def test_wait_with_timeout_returns_the_current_status(manager: ProcessManager) -> None:
    proc = manager.start_command("sleeper", PY, py("import time; time.sleep(60)"))
    assert proc.wait(0.01) is ProcessStatus.RUNNING
    assert proc.is_running()


def test_ids_are_unique_even_for_simultaneous_starts(manager: ProcessManager) -> None:
    procs: list[Process] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def starter() -> None:
        barrier.wait()
        for _ in range(3):
            p = manager.start_command("same", "true")
            with lock:
                procs.append(p)

    threads = [threading.Thread(target=starter) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.id for p in procs}) == 24
    assert all(p.wait(10) is ProcessStatus.SUCCESS for p in procs)
    assert {p.id for p in manager.get_all_processes()} == {p.id for p in procs}
    assert manager.clear_finished() == 24
    assert manager.get_all_processes() == []


def test_binary_flood_is_read_without_killing_the_reader(
    manager: ProcessManager, store: RecordingStore
) -> None:
    proc = manager.start_command(
        "flood",
        PY,
        py("""
            import os, sys
            data = os.urandom(4 * 1024 * 1024)
            sys.stdout.buffer.write(data); sys.stdout.flush()
            print("after the flood")
        """),
    )
    assert proc.wait(20) is ProcessStatus.SUCCESS
    lines = store.lines(proc.id)
    assert lines[-1].endswith("after the flood")
    assert max(map(len, lines)) <= 64 * 1024


def test_a_ten_megabyte_line_is_split_into_pieces(
    manager: ProcessManager, store: RecordingStore
) -> None:
    proc = manager.start_command(
        "long", PY, py("import sys; sys.stdout.write('q' * (10 * 1024 * 1024) + '\\nnext\\n')")
    )
    assert proc.wait(20) is ProcessStatus.SUCCESS
    lines = store.lines(proc.id)
    assert lines[-1] == "next"
    assert len(lines) == 161
    assert sum(map(len, lines[:-1])) == 10 * 1024 * 1024


def test_child_closing_stdout_but_running_is_still_running_and_stoppable(
    manager: ProcessManager, store: RecordingStore
) -> None:
    proc = manager.start_command(
        "closer",
        PY,
        py("""
            import os, sys, time
            print("before close", flush=True)
            os.close(1)
            sys.stderr.write("still here\\n"); sys.stderr.flush()
            time.sleep(60)
        """),
    )
    assert wait_until(lambda: store.lines(proc.id, True) == ["still here"])
    assert store.lines(proc.id, False) == ["before close"]
    assert proc.status is ProcessStatus.RUNNING
    manager.stop_process(proc.id)
    assert proc.status is ProcessStatus.STOPPED


def test_child_exiting_before_its_reader_starts_loses_nothing(
    manager: ProcessManager, store: RecordingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Child.watch

    def late_watch(self: Child) -> None:
        pid = self.pid
        assert pid is not None
        assert wait_until(lambda: gone(pid))  # exited (a zombie) before anything reads
        original(self)

    monkeypatch.setattr(Child, "watch", late_watch)
    proc = manager.start_command("quick", "echo fast; echo err >&2; exit 3")
    assert proc.wait(10) is ProcessStatus.FAILED
    assert proc.exit_code == 3
    assert store.lines(proc.id, False) == ["fast"]
    assert store.lines(proc.id, True)[0] == "err"


# -- stopping ----------------------------------------------------------------------------------


def test_stop_kills_a_three_level_tree_and_status_stays_stopped(
    manager: ProcessManager, store: RecordingStore, tree_script: str
) -> None:
    proc, pids = start_tree(manager, store, tree_script)
    began = time.monotonic()
    manager.stop_process(proc.id)
    elapsed = time.monotonic() - began
    assert all(gone(pid) for pid in pids)
    assert proc.status is ProcessStatus.STOPPED
    assert proc.exit_code is not None
    assert proc.exit_code < 0
    assert elapsed < 1.5  # cooperative: no grace period spent
    assert proc.wait(1) is ProcessStatus.STOPPED
    assert proc.snapshot().stop_requested


def test_stop_kills_sigterm_ignoring_tree_after_the_grace_period(
    manager: ProcessManager, store: RecordingStore, tree_script: str
) -> None:
    proc, pids = start_tree(manager, store, tree_script, ignore_term=True)
    began = time.monotonic()
    manager.stop_process(proc.id, timeout=0.3)
    elapsed = time.monotonic() - began
    assert all(gone(pid) for pid in pids)
    assert proc.status is ProcessStatus.STOPPED
    assert proc.exit_code == -9
    assert 0.3 <= elapsed < 2.0


def test_stop_of_a_stopped_or_finished_process_is_a_no_op(manager: ProcessManager) -> None:
    done = manager.start_command("done", "true")
    assert done.wait(10) is ProcessStatus.SUCCESS
    manager.stop_process(done.id)
    assert done.status is ProcessStatus.SUCCESS
    assert not done.snapshot().stop_requested
    running = manager.start_command("run", PY, py("import time; time.sleep(60)"))
    manager.stop_process(running.id)
    end = running.end_time
    manager.stop_process(running.id)
    assert running.status is ProcessStatus.STOPPED
    assert running.end_time == end


def test_stop_during_start_ends_stopped(
    manager: ProcessManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    original = Child.start

    def slow_start(self: Child) -> None:
        release.wait(10)
        original(self)

    monkeypatch.setattr(Child, "start", slow_start)
    started: list[Process] = []
    starter = threading.Thread(
        target=lambda: started.append(
            manager.start_command("slow", PY, py("import time; time.sleep(60)"))
        )
    )
    starter.start()
    assert wait_until(lambda: len(manager.get_all_processes()) == 1)
    (pending,) = manager.get_all_processes()
    assert pending.status is ProcessStatus.PENDING
    stopper = threading.Thread(target=manager.stop_process, args=(pending.id,))
    stopper.start()
    assert wait_until(lambda: pending.snapshot().stop_requested)
    release.set()
    starter.join(10)
    stopper.join(10)
    assert started == [pending]
    assert pending.status is ProcessStatus.STOPPED
    assert pending.pid is not None
    assert gone(pending.pid)


def test_concurrent_stops_of_one_process_both_return_when_it_is_gone(
    manager: ProcessManager, store: RecordingStore, tree_script: str
) -> None:
    proc, pids = start_tree(manager, store, tree_script)
    errors: list[BaseException] = []

    def stop() -> None:
        try:
            manager.stop_process(proc.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=stop) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert all(gone(pid) for pid in pids)
    assert proc.status is ProcessStatus.STOPPED


def test_orphaned_grandchild_holding_the_pipe_is_killed_by_stop(
    manager: ProcessManager, store: RecordingStore
) -> None:
    proc = manager.start_command("orphaner", "sleep 60 & echo started")
    assert proc.wait(10) is ProcessStatus.SUCCESS  # the shell exits; sleep keeps the pipe
    assert proc.pid is not None
    orphans = tree_pids(KillTarget(proc.pid, reaped=True))
    assert len(orphans) == 1
    manager.stop_process(proc.id)
    assert gone(orphans[0])
    assert proc.status is ProcessStatus.SUCCESS  # a finished status is never changed


def test_kill_never_signals_processes_outside_the_tree(tree_script: str) -> None:
    outsider = psutil.Popen([PY, "-c", "import time; time.sleep(60)"])
    try:
        result = kill_trees([KillTarget(outsider.pid + 10_000_000, reaped=True)], 0.1)
        assert result.terminated == ()
        assert outsider.is_running()
        assert outsider.status() != psutil.STATUS_ZOMBIE
    finally:
        outsider.kill()
        outsider.wait(10)


# -- restart -----------------------------------------------------------------------------------


def test_restart_of_a_running_process_gives_a_new_one(
    manager: ProcessManager, store: RecordingStore
) -> None:
    old = manager.start_command(
        "srv", PY, py("import time; print('up', flush=True); time.sleep(60)")
    )
    assert wait_until(lambda: store.lines(old.id) == ["up"])
    new = manager.restart_process(old.id)
    assert new.id != old.id
    assert old.status is ProcessStatus.STOPPED
    assert new.name == old.name
    assert new.command == old.command
    assert wait_until(lambda: store.lines(new.id) == ["up"])
    assert [p.id for p in manager.get_all_processes()] == [old.id, new.id]


def test_restart_of_a_finished_process_starts_it(manager: ProcessManager) -> None:
    old = manager.start_command("once", "exit 4")
    assert old.wait(10) is ProcessStatus.FAILED
    new = manager.restart_process(old.id)
    assert new.wait(10) is ProcessStatus.FAILED
    assert old.status is ProcessStatus.FAILED
    assert new.id != old.id


@pytest.fixture
def procfile_project(tmp_path: Path) -> Path:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "Procfile").write_text(
        f"sleeper: {PY} -c 'import time; time.sleep(60)'\n"
        f"crasher: {PY} -c 'import sys; print(\"crash\"); sys.exit(2)'\n"
        f"quick: {PY} -c 'print(\"quick\")'\n"
    )
    return project


def test_start_script_twice_is_already_exists_unless_allowed(
    procfile_project: Path, store: RecordingStore
) -> None:
    pm = ProcessManager(procfile_project, log_store=store)
    try:
        first = pm.start_script("procfile:sleeper")
        assert first.snapshot().script == "procfile:sleeper"
        with pytest.raises(BrummerError) as info:
            pm.start_script("procfile:sleeper")
        assert info.value.code is ErrorCode.ALREADY_EXISTS
        assert info.value.context["process_id"] == first.id
        second = pm.start_script("procfile:sleeper", allow_duplicate=True)
        assert second.id != first.id
        pm.stop_process(first.id)
        pm.stop_process(second.id)
        third = pm.start_script("procfile:sleeper")  # nothing running: allowed again
        assert third.is_running()
    finally:
        pm.cleanup()


def test_concurrent_start_script_starts_exactly_one(
    procfile_project: Path, store: RecordingStore
) -> None:
    pm = ProcessManager(procfile_project, log_store=store)
    barrier = threading.Barrier(6)
    outcomes: list[object] = []

    def start() -> None:
        barrier.wait()
        try:
            outcomes.append(pm.start_script("procfile:sleeper"))
        except BrummerError as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=start) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sum(isinstance(o, Process) for o in outcomes) == 1
        assert outcomes.count(ErrorCode.ALREADY_EXISTS) == 5
    finally:
        pm.cleanup()


def test_on_failure_policy_restarts_with_backoff_then_gives_up(
    procfile_project: Path, store: RecordingStore
) -> None:
    pm = ProcessManager(procfile_project, log_store=store)
    policy = RestartPolicy(
        mode="on-failure", max_restarts=3, backoff_initial=0.01, backoff_max=0.05
    )
    try:
        pm.start_script("procfile:crasher", restart=policy)
        assert wait_until(
            lambda: len(pm.get_all_processes()) == 4 and not pm.get_all_processes()[-1].is_running()
        )
        procs = pm.get_all_processes()
        assert [p.snapshot().restarts for p in procs] == [0, 1, 2, 3]
        assert all(p.wait(5) is ProcessStatus.FAILED for p in procs)
        assert wait_until(lambda: "not restarting" in store.lines(procs[-1].id, True)[-1])
        assert any("restarting" in line for line in store.lines(procs[0].id))
    finally:
        pm.cleanup()
    assert len(pm.get_all_processes()) == 4


def test_policy_never_restarts_after_a_user_stop(
    procfile_project: Path, store: RecordingStore
) -> None:
    pm = ProcessManager(procfile_project, log_store=store)
    policy = RestartPolicy(mode="always", max_restarts=5, backoff_initial=0.01)
    try:
        proc = pm.start_script("procfile:sleeper", restart=policy)
        pm.stop_process(proc.id)
        assert proc.status is ProcessStatus.STOPPED
        assert not wait_until(lambda: len(pm.get_all_processes()) > 1, timeout=0.3)
    finally:
        pm.cleanup()


def test_always_policy_restarts_a_successful_exit(
    procfile_project: Path, store: RecordingStore
) -> None:
    pm = ProcessManager(procfile_project, log_store=store)
    policy = RestartPolicy(mode="always", max_restarts=2, backoff_initial=0.01)
    try:
        pm.start_script("procfile:quick", restart=policy)
        assert wait_until(lambda: len(pm.get_all_processes()) == 3)
        assert all(p.wait(5) is ProcessStatus.SUCCESS for p in pm.get_all_processes())
    finally:
        pm.cleanup()


def test_pending_restart_is_cancelled_by_stop_and_by_cleanup(
    procfile_project: Path, store: RecordingStore
) -> None:
    pm = ProcessManager(procfile_project, log_store=store)
    policy = RestartPolicy(mode="on-failure", backoff_initial=30.0)
    proc = pm.start_script("procfile:crasher", restart=policy)
    assert proc.wait(10) is ProcessStatus.FAILED
    assert wait_until(lambda: any("restarting" in x for x in store.lines(proc.id)))
    pm.stop_process(proc.id)  # cancels the restart due in 30 s
    second = pm.start_script("procfile:crasher", restart=policy)
    assert second.wait(10) is ProcessStatus.FAILED
    began = time.monotonic()
    pm.cleanup(timeout=5)  # must not wait for the 30 s restart
    assert time.monotonic() - began < 5
    assert len(pm.get_all_processes()) == 2


def test_restart_policy_backoff_is_exponential_and_capped() -> None:
    policy = RestartPolicy(mode="on-failure", backoff_initial=0.5, backoff_max=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.applies_to(ProcessStatus.FAILED)
    assert not policy.applies_to(ProcessStatus.SUCCESS)
    assert not policy.applies_to(ProcessStatus.STOPPED)
    assert RestartPolicy(mode="always").applies_to(ProcessStatus.SUCCESS)
    assert not RestartPolicy().applies_to(ProcessStatus.FAILED)


# -- cleanup ------------------------------------------------------------------------------------


def test_cleanup_leaves_no_process_and_is_idempotent(
    store: RecordingStore, tmp_path: Path, tree_script: str
) -> None:
    pm = ProcessManager(tmp_path, log_store=store, stop_timeout=0.3)
    all_pids: list[int] = []
    for ignore in (False, True):
        _, pids = start_tree(pm, store, tree_script, ignore_term=ignore)
        all_pids += pids
    orphaner = pm.start_command("orphaner", "sleep 60 & echo started")
    orphaner.wait(10)
    assert orphaner.pid is not None
    all_pids += tree_pids(KillTarget(orphaner.pid, reaped=True))
    assert len(all_pids) == 7
    began = time.monotonic()
    pm.cleanup(timeout=5.0)
    assert time.monotonic() - began < 5.0
    assert all(gone(pid) for pid in all_pids)
    pm.cleanup(timeout=5.0)
    with pytest.raises(BrummerError) as info:
        pm.start_command("late", "true")
    assert info.value.code is ErrorCode.INVALID_STATE


def test_fifty_supervised_children_at_once(store: RecordingStore, tmp_path: Path) -> None:
    pm = ProcessManager(tmp_path, log_store=store)
    try:
        procs = [pm.start_command(f"c{i}", f"echo child {i}; exec sleep 60") for i in range(50)]
        assert wait_until(lambda: all(store.lines(p.id) for p in procs), timeout=20)
        assert all(p.status is ProcessStatus.RUNNING for p in procs)
    finally:
        pm.cleanup(timeout=20)
    assert all(p.status is ProcessStatus.STOPPED for p in procs)
    assert all(p.pid is not None and gone(p.pid) for p in procs)


@settings(max_examples=6)
@given(ops=st.lists(st.sampled_from(["start", "stop", "restart", "quick"]), min_size=1, max_size=8))
def test_random_concurrent_operations_keep_the_invariants(
    ops: list[str], tmp_path_factory: Any
) -> None:
    store = RecordingStore()
    pm = ProcessManager(tmp_path_factory.mktemp("ops"), log_store=store, stop_timeout=1.0)
    errors: list[BaseException] = []

    def run(op: str) -> None:
        try:
            if op == "quick":
                pm.start_command("quick", "echo hi")
            elif op == "start":
                pm.start_command("sleeper", "exec sleep 60")
            else:
                procs = pm.get_all_processes()
                if procs:
                    target = procs[len(procs) // 2]
                    if op == "stop":
                        pm.stop_process(target.id)
                    else:
                        pm.restart_process(target.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(op,)) for op in ops]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    pm.cleanup(timeout=10)
    assert errors == []
    procs = pm.get_all_processes()
    assert len({p.id for p in procs}) == len(procs)
    assert all(p.status.finished for p in procs)
    for p in procs:
        if p.snapshot().stop_requested and p.pid is not None:
            assert p.status is ProcessStatus.STOPPED
        assert p.pid is None or gone(p.pid)


# -- the npm fixture ------------------------------------------------------------------------------


@pytest.fixture
def npm_manager(store: RecordingStore) -> Iterator[ProcessManager]:
    pm = ProcessManager(FIXTURES / "npm-project", log_store=store, stop_timeout=0.5)
    yield pm
    pm.cleanup(timeout=10.0)


def test_npm_script_output_success_and_failure(
    npm_manager: ProcessManager, store: RecordingStore
) -> None:
    assert npm_manager.package_manager == "npm"
    hello = npm_manager.start_script("hello")
    fail = npm_manager.start_script("fail")
    assert hello.command == "npm run hello"
    assert hello.wait(30) is ProcessStatus.SUCCESS
    out = store.lines(hello.id, False)
    assert "hello from npm" in out
    assert "\x1b[32mgreen line\x1b[0m" in out  # colours kept as they are
    assert out[-1] == "no newline at the end"
    assert store.lines(hello.id, True) == ["a warning on stderr"]
    assert fail.wait(30) is ProcessStatus.FAILED
    assert fail.exit_code == 3
    assert "npm ERR! something went wrong" in store.lines(fail.id, True)


def test_npm_stack_trace_and_urls_are_captured(
    npm_manager: ProcessManager, store: RecordingStore
) -> None:
    stack = npm_manager.start_script("stack")
    urls = npm_manager.start_script("urls")
    assert stack.wait(30) is ProcessStatus.FAILED
    err = store.lines(stack.id, True)
    assert any("TypeError: Cannot read properties of undefined" in line for line in err)
    assert any(line.strip().startswith("at inner") for line in err)
    assert urls.wait(30) is ProcessStatus.SUCCESS
    assert any("http://localhost:5173/" in line for line in store.lines(urls.id))


def test_npm_tree_and_stubborn_scripts_are_stopped_with_their_grandchildren(
    npm_manager: ProcessManager, store: RecordingStore
) -> None:
    tree = npm_manager.start_script("tree")
    stubborn = npm_manager.start_script("stubborn")
    assert wait_until(
        lambda: len([x for x in store.lines(tree.id) if "tree level" in x]) == 3, timeout=30
    )
    assert wait_until(
        lambda: len([x for x in store.lines(stubborn.id) if "stubborn level" in x]) == 2, timeout=30
    )
    assert tree.pid is not None
    assert stubborn.pid is not None
    pids = tree_pids(KillTarget(tree.pid)) + tree_pids(KillTarget(stubborn.pid))
    assert len(pids) >= 5  # npm, sh, node x3 / npm, sh, node x2 (sh may exec)
    npm_manager.stop_process(tree.id)
    npm_manager.stop_process(stubborn.id, timeout=0.3)
    assert all(gone(pid) for pid in pids)
    assert tree.status is ProcessStatus.STOPPED
    assert stubborn.status is ProcessStatus.STOPPED


def test_npm_dev_server_cleanup_leaves_nothing(store: RecordingStore) -> None:
    pm = ProcessManager(FIXTURES / "npm-project", log_store=store, stop_timeout=0.5)
    try:
        dev = pm.start_script("dev")
        stubborn = pm.start_script("stubborn")
        assert wait_until(lambda: "ready" in store.lines(dev.id), timeout=30)
        assert wait_until(
            lambda: len([x for x in store.lines(stubborn.id) if "stubborn level" in x]) == 2,
            timeout=30,
        )
        assert dev.pid is not None
        assert stubborn.pid is not None
        pids = tree_pids(KillTarget(dev.pid)) + tree_pids(KillTarget(stubborn.pid))
    finally:
        pm.cleanup(timeout=10)
    assert all(gone(pid) for pid in pids)
    assert dev.status is ProcessStatus.STOPPED


def test_workspace_script_runs_in_its_package_folder(store: RecordingStore) -> None:
    root = FIXTURES / "yarn-workspace"
    pm = ProcessManager(root, log_store=store, package_manager="npm")  # yarn is not installed here
    try:
        proc = pm.start_script("@demo/web:dev")
        assert proc.cwd == str(root / "packages" / "web")
        assert proc.wait(30) is ProcessStatus.SUCCESS
        assert f"web dev in {root / 'packages' / 'web'}" in store.lines(proc.id)
    finally:
        pm.cleanup()


def test_broken_package_json_is_a_clear_not_found(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{ not json")
    pm = ProcessManager(tmp_path)
    try:
        assert pm.scripts() == {}
        assert "not valid JSON" in pm.script_problems()[0]
        with pytest.raises(BrummerError) as info:
            pm.start_script("dev")
        assert info.value.code is ErrorCode.NOT_FOUND
        assert "not valid JSON" in info.value.hint
        proc = pm.start_command("still works", "true")  # commands run without package.json
        assert proc.wait(10) is ProcessStatus.SUCCESS
    finally:
        pm.cleanup()


def test_real_log_store_and_bus_get_every_line_and_urls_go_inactive_at_exit(
    tmp_path: Path,
) -> None:
    from brummer.logs import LogStore

    bus = EventBus(workers=1)
    logs = LogStore(event_bus=bus)
    pm = ProcessManager(tmp_path, event_bus=bus, log_store=logs)
    try:
        proc = pm.start_command(
            "web",
            PY,
            py("""
                import sys
                print("\\x1b[32mready\\x1b[0m at http://127.0.0.1:5555/ now")
                sys.stderr.write("Traceback (most recent call last):\\n")
                sys.stderr.write('  File "app.py", line 1, in <module>\\n')
                sys.stderr.write("ValueError: boom\\n")
                print("last line, no newline", end="")
            """),
        )
        assert proc.wait(10) is ProcessStatus.SUCCESS
        entries = logs.get_by_process(proc.id)
        assert [e.content for e in entries if not e.is_error] == [
            "\x1b[32mready\x1b[0m at http://127.0.0.1:5555/ now",
            "last line, no newline",
        ]
        assert [e.content for e in entries if e.is_error][-1] == "ValueError: boom"
        assert [e.seq for e in entries] == sorted(e.seq for e in entries)
        (url,) = logs.get_urls()
        assert url.url == "http://127.0.0.1:5555/"
        assert url.process_id == proc.id
        assert wait_until(lambda: not logs.get_urls()[0].active)
    finally:
        pm.cleanup()
        logs.close()
        bus.stop()


def test_many_lines_arrive_complete_and_in_order(
    manager: ProcessManager, store: RecordingStore
) -> None:
    proc = manager.start_command(
        "burst",
        PY,
        py("import sys\nsys.stdout.write(''.join(f'{i}\\n' for i in range(200_000)))"),
        env={"PYTHONUNBUFFERED": ""},
    )
    assert proc.wait(30) is ProcessStatus.SUCCESS
    assert store.lines(proc.id) == [str(i) for i in range(200_000)]


def test_a_failing_store_does_not_stop_the_reader_or_the_callbacks(tmp_path: Path) -> None:
    class ClosedStore(RecordingStore):
        def add_batch(self, entries: Sequence[Any]) -> Any:
            raise BrummerError("logs", ErrorCode.INVALID_STATE, "closed")

    pm = ProcessManager(tmp_path, log_store=ClosedStore())
    got: list[str] = []
    pm.register_log_callback(lambda pid, line, err: got.append(line))
    try:
        proc = pm.start_command("w", "echo a; echo b")
        assert proc.wait(10) is ProcessStatus.SUCCESS
        assert got == ["a", "b"]
    finally:
        pm.cleanup()


def test_no_file_descriptor_leaks(store: RecordingStore, tmp_path: Path) -> None:
    from tests.helpers import open_fd_count

    before = open_fd_count()
    pm = ProcessManager(tmp_path, log_store=store)
    procs = [pm.start_command(f"p{i}", "echo hi") for i in range(10)]
    procs += [pm.start_command(f"s{i}", "exec sleep 60") for i in range(5)]
    procs.append(pm.start_command("missing", "/no/such/binary", ["x"]))
    assert all(p.wait(10) is ProcessStatus.SUCCESS for p in procs[:10])
    pm.cleanup()
    assert wait_until(lambda: open_fd_count() <= before)


def test_a_cancelled_context_starts_nothing(manager: ProcessManager) -> None:
    from brummer.operations import Context

    ctx = Context.background().with_cancel()
    ctx.cancel()
    with pytest.raises(BrummerError) as info:
        manager.start_command("never", "true", ctx=ctx)
    assert info.value.code is ErrorCode.INVALID_STATE
    with pytest.raises(BrummerError) as info:
        manager.start_command("never", "true", ctx="soon")  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert manager.get_all_processes() == []
    live = Context.background()
    assert manager.start_command("ok", "true", ctx=live).wait(10) is ProcessStatus.SUCCESS


def test_nul_in_command_is_invalid_argument(manager: ProcessManager) -> None:
    for call in (
        lambda: manager.start_command("nul", "echo a\0b"),
        lambda: manager.start_command("nul", "echo", ["a\0b"]),
        lambda: manager.start_command("nul", "echo", 5),  # type: ignore[arg-type]
    ):
        with pytest.raises(BrummerError) as info:
            call()
        assert info.value.code is ErrorCode.INVALID_ARGUMENT


def test_a_callback_may_stop_its_own_process(manager: ProcessManager) -> None:
    stopped = threading.Event()

    def cb(pid: str, line: str, is_error: bool) -> None:
        if line == "stop me" and not stopped.is_set():
            stopped.set()
            manager.stop_process(pid)

    manager.register_log_callback(cb)
    proc = manager.start_command(
        "self-stop", PY, py("import time; print('stop me', flush=True); time.sleep(60)")
    )
    began = time.monotonic()
    assert proc.wait(10) is ProcessStatus.STOPPED
    assert time.monotonic() - began < 5


def test_grandchild_in_its_own_session_is_found_by_the_tree_walk(
    manager: ProcessManager, store: RecordingStore
) -> None:
    proc = manager.start_command(
        "setsid",
        PY,
        py("""
            import subprocess, sys, time
            child = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
            )
            print(f"grandchild {child.pid}", flush=True)
            time.sleep(60)
        """),
    )
    assert wait_until(lambda: store.lines(proc.id))
    grandchild = int(store.lines(proc.id)[0].split()[1])
    assert os.getpgid(grandchild) != proc.pid  # not reachable through the process group
    manager.stop_process(proc.id)
    assert gone(grandchild)


def test_child_forked_during_the_stop_is_caught_by_the_sweep(
    manager: ProcessManager, store: RecordingStore
) -> None:
    proc = manager.start_command(
        "forker",
        PY,
        py("""
            import os, signal, subprocess, sys, time
            def on_term(signum, frame):
                late = subprocess.Popen(["sleep", "60"])  # same group, after the SIGTERM
                sys.stderr.write(f"late {late.pid}\\n"); sys.stderr.flush()
                os._exit(0)
            signal.signal(signal.SIGTERM, on_term)
            print("ready", flush=True)
            time.sleep(60)
        """),
    )
    assert wait_until(lambda: store.lines(proc.id) == ["ready"])
    manager.stop_process(proc.id)
    late = [line for line in store.lines(proc.id, True) if line.startswith("late ")]
    assert len(late) == 1
    assert gone(int(late[0].split()[1]))
    assert proc.status is ProcessStatus.STOPPED


def test_a_callback_may_unregister_itself_after_a_nested_delivery() -> None:
    """A delivery nested inside a callback (e.g. a failed start_command reports its error
    line on the caller's thread) must not make the outer callback's own unregister wait
    for itself."""
    from brummer.process.callbacks import UNREGISTER_WAIT, LogCallbacks

    callbacks = LogCallbacks()
    ids: list[str] = []
    seen: list[str] = []
    waited: list[float] = []

    def cb(process_id: str, line: str, is_error: bool) -> None:
        seen.append(line)
        if line != "outer":
            return
        callbacks.deliver("other", ["nested"], True)
        began = time.monotonic()
        callbacks.unregister(ids[0])
        waited.append(time.monotonic() - began)

    ids.append(callbacks.register(cb))
    callbacks.deliver("p", ["outer", "after"], False)
    assert seen == ["outer", "nested"]  # nothing after unregister returned
    assert len(waited) == 1
    assert waited[0] < UNREGISTER_WAIT / 2

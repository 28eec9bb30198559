"""brummer SIGKILLed while its children run: a fresh brummer finds the orphans and cleans them.

A real brummer-like process (``FAKE_BRUMMER`` below: a ProcessManager with a ChildLedger in
a temporary ``BRUMMER_STATE_DIR``) starts two process trees whose every member ignores
SIGTERM. One grandchild of each tree leaves the process group and is re-parented (its
parent exits), so only the session finds it. The brummer is SIGKILLed; then, in the test
process, :func:`find_orphans` must list exactly those trees (not a stranger started by the
test with the very same command line), :func:`clean_orphans` must leave zero survivors,
and the stale ledger must be gone. CI runs a few rounds; ``BRUMMER_SOAK=1`` runs 50.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

import brummer
from brummer.process import OrphanInfo, clean_orphans, find_orphans, ledgers_dir
from tests.helpers import wait_until
from tests.reliability._budget import no_leaks, scale

pytestmark = pytest.mark.reliability

TREE = r"""
import os, signal, subprocess, sys, time
role, me = sys.argv[1], sys.argv[2]
signal.signal(signal.SIGTERM, signal.SIG_IGN)
def spawn(r):
    return subprocess.Popen([sys.executable, "-c", me, r, me])
if role == "root":
    for _ in range(2):
        spawn("mid")
    spawn("hop").wait()  # hop starts "lone" and exits: lone is re-parented
elif role == "mid":
    for _ in range(2):
        spawn("leaf")
elif role == "hop":
    spawn("lone")
    sys.exit(0)
elif role == "lone":
    os.setpgid(0, 0)  # leaves the child's process group, stays in its session
os.write(1, f"ready {os.getpid()}\n".encode())
while True:
    time.sleep(3600)
"""
PROCS_PER_TREE = 8  # root, 2 mid, 4 leaf, lone (hop has exited)
TREES = 2

FAKE_BRUMMER = r"""
import json, os, sys, threading
from brummer.process import ChildLedger, ProcessManager
work, tree, out = sys.argv[1], sys.argv[2], sys.argv[3]
ready = {}
guard = threading.Lock()
done = threading.Event()
def on_line(process_id, line, is_error):
    if line.startswith("ready "):
        with guard:
            ready.setdefault(process_id, []).append(int(line.split()[1]))
            if len(ready) == TREES_N and all(len(v) == PROCS_N for v in ready.values()):
                done.set()
ledger = ChildLedger(work_dir=work)
pm = ProcessManager(work, ledger=ledger, stop_timeout=0.2)
pm.register_log_callback(on_line)
procs = [pm.start_command(f"tree{i}", sys.executable, ["-c", tree, "root", tree])
         for i in range(TREES_N)]
done.wait()
with guard:
    data = {"ledger": str(ledger.path), "brummer": os.getpid(),
            "trees": {p.id: {"pid": p.pid, "name": p.name, "members": ready[p.id]} for p in procs}}
with open(out + ".tmp", "w") as f:
    json.dump(data, f)
os.replace(out + ".tmp", out)
threading.Event().wait()
""".replace("TREES_N", str(TREES)).replace("PROCS_N", str(PROCS_PER_TREE))


def _alive(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - created) < 0.01
    except psutil.Error:
        return False


def _create_times(pids: list[int]) -> dict[int, float]:
    times: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times[pid] = psutil.Process(pid).create_time()
    return times


def _kill_verified(known: dict[int, float]) -> None:
    for pid, created in known.items():
        if _alive(pid, created):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _one_round(tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = tmp_path / "up.json"
    repo = Path(brummer.__file__).resolve().parents[1]
    env = {
        **os.environ,
        "BRUMMER_STATE_DIR": str(state),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])),
    }
    known: dict[int, float] = {}  # every process of the trees, for the finally
    stranger: subprocess.Popen[bytes] | None = None
    fake = subprocess.Popen(
        [sys.executable, "-c", FAKE_BRUMMER, str(tmp_path), TREE, str(out)],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert wait_until(out.exists, timeout=60.0), "the fake brummer never reported its trees"
        info = json.loads(out.read_text())
        members = [pid for tree in info["trees"].values() for pid in tree["members"]]
        known.update(_create_times(members))
        assert len(set(members)) == TREES * PROCS_PER_TREE
        ledger = Path(info["ledger"])
        assert ledger.parent == ledgers_dir(state)
        assert ledger.exists()

        # A stranger with the very same command line as a tree's leaf, started by the test.
        stranger = subprocess.Popen(
            [sys.executable, "-c", TREE, "leaf", TREE],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert stranger.stdout is not None
        assert stranger.stdout.readline().startswith(b"ready ")
        stranger_time = psutil.Process(stranger.pid).create_time()

        # Before brummer dies nothing is an orphan: its owner is alive.
        assert find_orphans(state) == []

        fake.send_signal(signal.SIGKILL)
        assert fake.wait(timeout=10.0) == -signal.SIGKILL
        assert all(_alive(pid, t) for pid, t in known.items()), "the trees died with brummer"

        orphans = find_orphans(state)
        assert all(isinstance(o, OrphanInfo) for o in orphans)
        by_id = {o.entry.process_id: o for o in orphans}
        assert set(by_id) == set(info["trees"]), orphans
        for process_id, tree in info["trees"].items():
            orphan = by_id[process_id]
            assert orphan.alive
            assert orphan.pid == tree["pid"]
            assert orphan.name == tree["name"]
            assert orphan.owner_pid == info["brummer"]
            assert orphan.ledger == str(ledger)
            assert set(orphan.pids) == set(tree["members"]), (orphan.pids, tree["members"])
        listed = {pid for o in orphans for pid in o.pids}
        assert stranger.pid not in listed

        result = clean_orphans(orphans, timeout=0.2)
        assert result.survivors == ()
        assert set(members) <= set(result.terminated) | set(result.killed)
        assert wait_until(lambda: not any(_alive(p, t) for p, t in known.items()), timeout=10.0)
        assert _alive(stranger.pid, stranger_time), "clean_orphans killed the stranger"
        assert stranger.poll() is None
        assert not ledger.exists(), "the stale ledger was not removed"
        assert find_orphans(state) == []
    finally:
        if fake.poll() is None:
            fake.kill()
        fake.wait(timeout=10.0)
        _kill_verified(known)
        if stranger is not None:
            stranger.kill()
            stranger.wait(timeout=10.0)
            if stranger.stdout is not None:
                stranger.stdout.close()
        out.unlink(missing_ok=True)


def test_sigkilled_brummer_leaves_orphans_that_a_fresh_one_finds_and_cleans(
    tmp_path: Path,
) -> None:
    rounds = scale(2, 50)
    with no_leaks("orphans of a SIGKILLed brummer"):
        for round_no in range(rounds):
            folder = tmp_path / f"round{round_no}"
            folder.mkdir()
            _one_round(folder)

"""The container and the headless CLI over the real components, real children and real ports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from brummer.app import Brummer
from brummer.cli import demo_dir
from brummer.config import Config, load_config
from brummer.errors import BrummerError, ErrorCode
from brummer.tui.app import BrummerTUI
from tests.helpers import wait_until

QUIET = Config(no_mcp=True, no_proxy=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose scripts are tiny Python programs."""
    (tmp_path / "package.json").write_text(
        """{"name": "p", "scripts": {
            "hello": "python3 -c \\"print('hello from script')\\"",
            "fail": "python3 -c \\"import sys; print('about to fail'); sys.exit(3)\\"",
            "stubborn": "python3 stubborn.py",
            "sleeper": "python3 -c \\"import time; print('sleeping', flush=True); time.sleep(60)\\""
        }}"""
    )
    (tmp_path / "stubborn.py").write_text(
        textwrap.dedent(
            """
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("ignoring SIGTERM", flush=True)
            while True:
                time.sleep(1)
            """
        )
    )
    return tmp_path


@pytest.fixture
def started(project: Path) -> Iterator[Brummer]:
    app = Brummer(project, QUIET)
    app.start()
    try:
        yield app
    finally:
        app.stop(timeout=15)


def lines_of(app: Brummer) -> list[str]:
    return [str(entry.content) for entry in app.logs.get_all()]


def test_runs_a_script_and_collects_its_lines(started: Brummer) -> None:
    proc = started.run("hello")
    assert proc.wait(timeout=20).name == "SUCCESS"
    assert wait_until(lambda: "hello from script" in lines_of(started), timeout=10)
    failing = started.run("fail")
    assert failing.wait(timeout=20).name == "FAILED"
    assert failing.exit_code == 3


def test_configured_restart_policy_is_applied(project: Path) -> None:
    from brummer.config import RestartSettings

    policy = RestartSettings(
        mode="on-failure", max_restarts=2, backoff_initial=0.05, backoff_max=0.1
    )
    with Brummer(project, Config(no_mcp=True, no_proxy=True, restart={"fail": policy})) as app:
        app.run("fail")
        assert wait_until(lambda: lines_of(app).count("about to fail") == 3, timeout=20)
        assert wait_until(
            lambda: all(not p.is_running() for p in app.processes.get_all_processes()), timeout=10
        )
        assert len(app.processes.get_all_processes()) == 3


def test_configured_error_rules_reach_the_log_store(project: Path) -> None:
    (project / ".brum.toml").write_text(
        "[[error_rules]]\npattern = 'ERR_[A-Z_]+'\nkind = 'NodeError'\n"
    )
    config = load_config(project, home=project / "nohome", env={})
    assert config.problems == ()
    with Brummer(project, config.with_overrides("test", no_mcp=True, no_proxy=True)) as app:
        app.run("python3 -c \"print('ERR_DISK_FULL: no space left')\"").wait(timeout=20)
        assert wait_until(
            lambda: any(g.kind == "NodeError" for g in app.logs.get_error_groups()), timeout=10
        ), app.logs.get_error_groups()


def test_a_command_that_is_not_a_script_runs_in_the_shell(started: Brummer) -> None:
    proc = started.run("python3 -c \"print('ad hoc')\"")
    assert proc.name == "python3"
    proc.wait(timeout=20)
    assert wait_until(lambda: "ad hoc" in lines_of(started), timeout=10)


def test_stop_is_idempotent_and_bounded_even_when_a_child_ignores_sigterm(project: Path) -> None:
    app = Brummer(project, Config(no_mcp=True, no_proxy=True, stop_timeout=0.5))
    app.start()
    proc = app.run("stubborn")
    assert wait_until(lambda: "ignoring SIGTERM" in lines_of(app), timeout=15)
    pid = proc.pid
    assert pid is not None
    began = time.monotonic()
    app.stop(timeout=10)
    assert time.monotonic() - began < 10
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    app.stop()
    assert not app.is_running
    with pytest.raises(BrummerError) as info:
        app.start()
    assert info.value.code is ErrorCode.INVALID_STATE


def test_stop_goes_in_reverse_start_order(project: Path) -> None:
    from brummer.resources import ResourceManager

    app = Brummer(project, QUIET)
    app.start()
    assert isinstance(app.resources, ResourceManager)
    order: list[str] = []
    for name, method in (
        ("pool", "stop"),
        ("events", "stop"),
        ("logs", "close"),
        ("processes", "cleanup"),
    ):
        component = getattr(app, name)
        original = getattr(component, method)

        def record(*args: object, _name: str = name, _orig: Any = original, **kw: object) -> Any:
            order.append(_name)
            return _orig(*args, **kw)

        setattr(component, method, record)
    app.stop(timeout=15)
    assert order == ["processes", "logs", "events", "pool"]


def test_context_manager_stops_children(project: Path) -> None:
    with Brummer(project, QUIET) as app:
        proc = app.run("stubborn")
        assert wait_until(lambda: proc.pid is not None and proc.is_running(), timeout=15)
        pid = proc.pid
    assert pid is not None
    assert wait_until(lambda: not psutil.pid_exists(pid), timeout=5)


def test_start_is_all_or_nothing_when_the_proxy_port_is_taken(project: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = Config(no_mcp=True).with_overrides("command line", proxy_port=port)
        app = Brummer(project, config)
        with pytest.raises(BrummerError) as info:
            app.start()
        assert info.value.code is ErrorCode.RESOURCE_LIMIT
    assert app.processes is None
    assert app.events is None
    assert not app.is_running
    app.stop()


def test_a_busy_default_proxy_port_falls_back_to_a_free_one(project: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with Brummer(project, Config(no_mcp=True, proxy_port=port)) as app:
            assert app.proxy.is_running
            assert app.proxy.port != port


def test_full_stack_with_proxy_and_mcp_announces_and_withdraws_the_instance(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from brummer.mcp.discovery import list_instances

    monkeypatch.setenv("BRUMMER_STATE_DIR", str(tmp_path / "state"))
    config = Config(mcp_port=free_port(), proxy_port=free_port())
    with Brummer(project, config) as app:
        assert app.proxy is not None
        assert app.mcp is not None
        assert app.proxy.is_running
        url = str(app.mcp.url)
        assert url.endswith("/mcp")
        (instance,) = list_instances()
        assert instance.url == url
        assert instance.directory == app.work_dir
    assert list_instances() == []


def test_missing_project_directory(tmp_path: Path) -> None:
    with pytest.raises(BrummerError) as info:
        Brummer(tmp_path / "missing")
    assert info.value.code is ErrorCode.NOT_FOUND


# ------------------------------------------------------------------ the headless CLI


def brummer_cli(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "brummer", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def test_headless_prints_lines_and_exits_with_the_worst_code() -> None:
    cli = brummer_cli("--no-tui", "--no-mcp", "--no-proxy", "-d", str(demo_dir()), "test", "build")
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 1, err
    lines = out.splitlines()
    assert any(
        re.fullmatch(r"\S+ test +\| Tests: 1 failed, 3 passed, 4 total", line) for line in lines
    ), (out, err)
    assert any(" build | [build] build completed successfully" in line for line in lines), (
        out,
        err,
    )
    stamp = re.compile(r"^\d\d:\d\d:\d\d \S+ +\| ")
    assert all(stamp.match(line) for line in lines), lines[:5]
    # the names are padded so that the | column lines up
    assert len({line.index(" | ") for line in lines}) == 1, lines


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _runs_stubborn(pid: int) -> bool:
    for proc in _descendants(pid):
        try:
            if "stubborn" in " ".join(proc.cmdline()):
                return True
        except psutil.Error:
            continue
    return False


def test_headless_sigterm_stops_every_child_tree(project: Path) -> None:
    cli = brummer_cli("--no-tui", "--no-mcp", "--no-proxy", "-d", str(project), "stubborn")
    try:
        assert wait_until(lambda: _runs_stubborn(cli.pid), timeout=20)
        children = _descendants(cli.pid)
        cli.send_signal(signal.SIGTERM)
        cli.communicate(timeout=30)
        assert wait_until(lambda: not any(p.is_running() for p in children), timeout=5)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.communicate()


def test_second_ctrl_c_kills_at_once(project: Path) -> None:
    """Ctrl-C, wait until brummer says it is stopping (the wrappers got SIGTERM), Ctrl-C."""
    (project / ".brum.toml").write_text("stop_timeout = 60\n")  # the grace would be long
    cli = brummer_cli("--no-tui", "--no-mcp", "--no-proxy", "-d", str(project), "stubborn")
    try:
        assert wait_until(lambda: _runs_stubborn(cli.pid), timeout=20)
        children = _descendants(cli.pid)
        stubborn = [p for p in children if "stubborn" in " ".join(p.cmdline())]
        cli.send_signal(signal.SIGINT)
        assert cli.stderr is not None
        while "stopping every process" not in cli.stderr.readline():
            assert cli.poll() is None
        assert stubborn
        assert all(alive(p) for p in stubborn)  # it ignores the SIGTERM of the first Ctrl-C
        began = time.monotonic()
        cli.send_signal(signal.SIGINT)
        cli.communicate(timeout=30)
        assert time.monotonic() - began < 5
        assert wait_until(lambda: not any(alive(p) for p in stubborn), timeout=5)
        assert wait_until(lambda: not any(alive(p) for p in children), timeout=5)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.communicate()


def test_the_interface_over_the_real_container(project: Path) -> None:
    """Run a script from the command line, see its lines, stop it from Processes, all real."""
    with Brummer(project, QUIET) as app:
        tui = BrummerTUI(app, inline_background=True)
        size = (100, 24)

        def screen() -> str:
            tui.refresh()
            return "\n".join(row.decode() for row in tui.top.render(size, focus=True).text)

        assert "sleeper" in screen()
        tui.execute("run sleeper")
        assert wait_until(lambda: "sleeping" in screen(), timeout=15)
        tui.keypress(size, "2")
        assert wait_until(lambda: "▶ sleeper" in screen(), timeout=5)
        (proc,) = [p for p in app.processes.get_all_processes() if p.name == "sleeper"]
        tui.keypress(size, "s")
        assert not proc.is_running()
        assert wait_until(lambda: "■ sleeper" in screen(), timeout=5)
        tui.execute("run fail")
        assert tui.current == "logs"
        assert wait_until(lambda: "about to fail" in screen(), timeout=15)
        tui.keypress(size, "2")
        assert wait_until(lambda: "✗ fail" in screen(), timeout=15)
        assert "exit 3" in screen()


def test_cli_in_process_with_a_config_that_is_not_toml(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from brummer.cli import main

    (project / ".brum.toml").write_text("stop_timeout = 2\nthis is not [toml\n")
    code = main(["--no-tui", "--no-mcp", "--no-proxy", "-d", str(project), "hello", "fail"])
    out, err = capsys.readouterr()
    assert code == 3
    assert f"warning: {project / '.brum.toml'}:2: not valid TOML" in err
    assert "Traceback" not in err
    assert re.search(r"^\d\d:\d\d:\d\d hello +\| hello from script$", out, re.MULTILINE)
    assert re.search(r"^\d\d:\d\d:\d\d fail +\| about to fail$", out, re.MULTILINE)


def test_mcp_flag_runs_the_stdio_hub(tmp_path: Path) -> None:
    request = (
        '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
        '"capabilities":{},"clientInfo":{"name":"test","version":"1"}}}\n'
    )
    env = {**os.environ, "BRUMMER_STATE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "brummer", "--mcp"],
        input=request,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"serverInfo":{"name":"brummer-hub"' in done.stdout.replace(" ", "")

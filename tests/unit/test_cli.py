"""The command line: flags, --version, --settings, --mcp-config, bad input, the line printer."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import threading
from pathlib import Path

import pytest

from brummer.cli import EXIT_USAGE, LinePrinter, build_parser, demo_dir, main, mcp_config_snippets


def test_every_flag_of_the_issue_parses() -> None:
    args = build_parser().parse_args(
        [
            "-d",
            "proj",
            "--no-tui",
            "--mcp",
            "-p",
            "8000",
            "--no-mcp",
            "--proxy-port",
            "9000",
            "--proxy-mode",
            "full",
            "--no-proxy",
            "--settings",
            "--mcp-config",
            "--demo",
            "dev",
            "python -m http.server",
        ]
    )
    assert args.dir == "proj"
    assert args.no_tui
    assert args.mcp
    assert args.port == 8000
    assert args.no_mcp
    assert args.proxy_port == 9000
    assert args.proxy_mode == "full"
    assert args.no_proxy
    assert args.settings
    assert args.mcp_config
    assert args.demo
    assert args.targets == ["dev", "python -m http.server"]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert re.fullmatch(r"brummer \d+\.\d+\.\d+\n", capsys.readouterr().out)


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_bad_port_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--settings", "-p", port])
    assert info.value.code == 2
    assert "port" in capsys.readouterr().err


def test_settings_shows_each_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / ".brum.toml").write_text("proxy_port = 20000\nbad_key = 1\n")
    assert main(["--settings", "-d", str(tmp_path), "-p", "8123"]) == 0
    out = capsys.readouterr().out
    assert "mcp_port = 8123  # command line" in out
    assert f"proxy_port = 20000  # {tmp_path / '.brum.toml'}:1" in out
    assert "bad_key: unknown key" in out


def test_mcp_config_prints_snippets_for_three_clients(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRUMMER_STATE_DIR", str(tmp_path))
    assert main(["--mcp-config", "-p", "7999", "-d", str(demo_dir())]) == 0
    out = capsys.readouterr().out
    assert "claude mcp add --transport http brummer http://127.0.0.1:7999/mcp" in out
    blocks = [json.loads(b) for b in re.findall(r"^\{.*?^\}", out, re.MULTILINE | re.DOTALL)]
    assert {"mcpServers": {"brummer": {"url": "http://127.0.0.1:7999/mcp"}}} in blocks
    assert {"servers": {"brummer": {"type": "http", "url": "http://127.0.0.1:7999/mcp"}}} in blocks
    assert mcp_config_snippets(7999) == out


def test_missing_project_dir_is_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--no-tui", "-d", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "does not exist" in err
    assert "Traceback" not in err


def test_demo_project_is_found() -> None:
    project = demo_dir()
    scripts = json.loads((project / "package.json").read_text())["scripts"]
    assert {"dev", "watch", "test", "build"} <= set(scripts)


def test_line_printer_format_plain_and_coloured() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5)
    plain = LinePrinter(io.StringIO(), None, colour=False)
    assert plain.format("dev", "hello\n", False, when) == "03:04:05 dev | hello"
    assert plain.format("dev", "\x1b[32mgreen\x1b[0m", False, when) == "03:04:05 dev | green"
    colour = LinePrinter(io.StringIO(), None, colour=True)
    line = colour.format("dev", "oops", True, when)
    assert "\x1b[31moops\x1b[0m" in line
    assert re.sub(r"\x1b\[[0-9;]*m", "", line) == "03:04:05 dev | oops"


def test_line_printer_never_interleaves_lines_from_threads() -> None:
    class Procs:
        def get_process(self, pid: str) -> object:
            return type("P", (), {"name": f"name-{pid}"})()

    app = type("A", (), {"processes": Procs()})()
    out = io.StringIO()
    printer = LinePrinter(out, app, colour=False)
    barrier = threading.Barrier(6)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(300):
            printer(f"p{n}", f"line {i} " + "x" * 50, False)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1800
    pattern = re.compile(r"\d\d:\d\d:\d\d name-p\d \| line \d+ x{50}")
    assert all(pattern.fullmatch(line) for line in lines)


def test_mcp_config_uses_the_port_of_a_running_instance(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from brummer.mcp.discovery import InstanceInfo, write_instance

    monkeypatch.setenv("BRUMMER_STATE_DIR", str(tmp_path))
    project = demo_dir()
    write_instance(
        InstanceInfo(
            id="demo-1",
            name="demo",
            directory=str(project.resolve()),
            port=7805,
            pid=os.getpid(),
            started_at=dt.datetime.now(dt.UTC),
        )
    )
    assert main(["--mcp-config", "-d", str(project)]) == 0
    assert "http://127.0.0.1:7805/mcp" in capsys.readouterr().out


def test_orphans_flag_reports_none_in_an_empty_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BRUMMER_STATE_DIR", str(tmp_path))
    assert main(["--orphans"]) == 0
    assert capsys.readouterr().out == "no orphaned processes\n"


class _FakeProcesses:
    def scripts(self) -> dict[str, str]:
        return {"dev": "vite"}


class _FakeApp:
    def __init__(self) -> None:
        self.processes = _FakeProcesses()
        self.ran: list[str] = []

    def run(self, target: str) -> None:
        self.ran.append(target)


@pytest.mark.parametrize(
    ("targets", "warned"),
    [
        (["dev", "lint"], ["lint"]),  # several bare names, one unknown: likely a typo
        (["lint"], []),  # a single target may be a command
        (["dev", "python -m http.server"], []),  # a command with spaces is meant as one
        (["dev"], []),
    ],
)
def test_unknown_script_names_among_several_targets_are_reported(
    targets: list[str], warned: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from brummer.cli import _start_targets

    app = _FakeApp()
    assert _start_targets(app, targets) == 0
    assert app.ran == targets
    err = capsys.readouterr().err
    assert re.findall(r"no script named '([^']+)'", err) == warned

"""The command line: ``python -m brummer`` and the ``brummer`` console script.

``brummer [options] [script ...]`` starts the named package.json scripts (or a quoted shell
command) and opens the urwid interface; ``--no-tui`` prints every line as
``HH:MM:SS name | line`` instead. SIGINT, SIGTERM and SIGHUP (a closed terminal) stop every
child process tree before brummer exits; a second Ctrl-C kills them at once.

Thread safety: ST. ``main`` runs on the main thread (it installs signal handlers).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from brummer.config import Config, format_settings, load_config
from brummer.contracts import ThreadSafety, contract
from brummer.errors import BrummerError

__all__ = ["EXIT_USAGE", "build_parser", "demo_dir", "main", "mcp_config_snippets"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
STOP_TIMEOUT = 15.0  # seconds the whole shutdown may take after the first signal
ESCALATED_STOP_TIMEOUT = 3.0  # after the second signal


def _version() -> str:
    import brummer

    return str(getattr(brummer, "__version__", "0"))


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, got {value}")
    return value


@contract(ThreadSafety.TS, guarantees="pure")
def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every flag brummer understands.

    Thread safety: TS. Returns a new parser each call.
    """
    parser = argparse.ArgumentParser(
        prog="brummer",
        description=(
            "Development process manager: runs package.json scripts and commands, keeps their "
            "logs, finds errors and URLs, proxies web traffic and serves it all over MCP."
        ),
        epilog=(
            "examples:\n"
            "  brummer                 open the interface in the current project\n"
            "  brummer dev test        start the 'dev' and 'test' scripts\n"
            "  brummer 'python -m http.server'   run a command\n"
            "  brummer --no-tui dev    headless: print every line as HH:MM:SS name | line\n"
            "  brummer --demo          try it on the bundled example project"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "targets", nargs="*", metavar="script", help="package.json scripts or a quoted command"
    )
    parser.add_argument("-d", "--dir", default=".", help="project directory (default: .)")
    parser.add_argument("--demo", action="store_true", help="run the bundled example project")
    parser.add_argument("--no-tui", action="store_true", help="headless: print logs to stdout")
    parser.add_argument("--mcp", action="store_true", help="run the MCP hub on stdio")
    parser.add_argument("-p", "--port", type=_port, help="MCP server port (default 7777)")
    parser.add_argument("--no-mcp", action="store_true", help="do not start the MCP server")
    parser.add_argument("--proxy-port", type=_port, help="proxy port (default 19888)")
    parser.add_argument(
        "--proxy-mode", choices=("reverse", "full"), help="proxy mode (default reverse)"
    )
    parser.add_argument("--no-proxy", action="store_true", help="do not start the proxy")
    parser.add_argument(
        "--settings", action="store_true", help="print the merged configuration and exit"
    )
    parser.add_argument(
        "--mcp-config",
        action="store_true",
        help="print the MCP client configuration for Claude Code, Cursor and VS Code",
    )
    parser.add_argument(
        "--orphans",
        action="store_true",
        help="list processes left running by a brummer that was killed, and exit",
    )
    parser.add_argument(
        "--clean-orphans",
        action="store_true",
        help="stop the processes left running by a brummer that was killed, and exit",
    )
    parser.add_argument("--version", action="version", version=f"brummer {_version()}")
    return parser


@contract(ThreadSafety.TS, guarantees="pure (reads the file system)")
def demo_dir() -> Path:
    """The bundled example project.

    Thread safety: TS. Pure.

    Raises:
        BrummerError: NOT_FOUND when this installation carries no example project.
    """
    from brummer.errors import ErrorCode

    here = Path(__file__).resolve().parent
    for candidate in (here / "examples" / "demo", here.parent / "examples" / "demo-project"):
        if (candidate / "package.json").is_file():
            return candidate
    raise BrummerError(
        "cli",
        ErrorCode.NOT_FOUND,
        "the bundled example project is not part of this installation",
        hint="run from a source checkout (examples/demo-project) or pass -d <project>",
    )


@contract(ThreadSafety.TS, guarantees="pure")
def mcp_config_snippets(port: int, host: str = "127.0.0.1") -> str:
    """Text telling how to add this brummer to Claude Code, Cursor and VS Code.

    Thread safety: TS. Pure.
    """
    url = f"http://{host}:{port}/mcp"
    cursor = {"mcpServers": {"brummer": {"url": url}}}
    vscode = {"servers": {"brummer": {"type": "http", "url": url}}}
    hub = {"mcpServers": {"brummer-hub": {"command": "brummer", "args": ["--mcp"]}}}
    return "\n".join(
        [
            f"# brummer MCP endpoint: {url}",
            "",
            "# Claude Code (run once in your project):",
            f"claude mcp add --transport http brummer {url}",
            "",
            "# Cursor: ~/.cursor/mcp.json or .cursor/mcp.json",
            json.dumps(cursor, indent=2),
            "",
            "# VS Code: .vscode/mcp.json",
            json.dumps(vscode, indent=2),
            "",
            "# Any client, through the hub (finds every running brummer; stdio):",
            json.dumps(hub, indent=2),
            "",
        ]
    )


def _err(message: str) -> None:
    """Print to stderr; never raise: the terminal may be gone (a closed window, a hang-up)."""
    with contextlib.suppress(OSError, ValueError):
        print(f"brummer: {message}", file=sys.stderr, flush=True)


@contract(ThreadSafety.ST)
def main(argv: Sequence[str] | None = None) -> int:
    """Run brummer with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Thread safety: ST. Main thread only: it installs signal handlers.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        project = demo_dir() if args.demo else Path(args.dir).expanduser()
        config = load_config(project)
        config = config.with_overrides(
            "command line",
            mcp_port=args.port,
            no_mcp=True if args.no_mcp else None,
            proxy_port=args.proxy_port,
            proxy_mode=args.proxy_mode,
            no_proxy=True if args.no_proxy else None,
        )
    except BrummerError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if args.settings:
        sys.stdout.write(format_settings(config))
        return EXIT_OK
    if args.mcp_config:
        sys.stdout.write(mcp_config_snippets(_running_port(project) or config.mcp_port))
        return EXIT_OK
    if args.orphans or args.clean_orphans:
        return _orphans(clean=args.clean_orphans)
    for problem in config.problems:
        _err(f"warning: {problem}")
    if args.mcp:
        return _run_hub()
    use_tui = not args.no_tui and sys.stdin.isatty() and sys.stdout.isatty()
    if not args.no_tui and not use_tui:
        _err("not a terminal: running headless (same as --no-tui)")
    return _run(project, config, list(args.targets), tui=use_tui)


def _orphans(*, clean: bool) -> int:
    """List (and with ``clean`` stop) the children of brummers that died; return the exit code."""
    from brummer.process import clean_orphans, find_orphans

    try:
        orphans = find_orphans()
        for o in orphans:
            state = "running" if o.alive else "exited, its group lives on"
            sys.stdout.write(
                f"{o.name}\tpid {o.pid} ({state})\t{len(o.pids)} process(es)\t"
                f"brummer pid {o.owner_pid}\t{o.command}\n"
            )
        if not orphans:
            sys.stdout.write("no orphaned processes\n")
        elif clean:
            result = clean_orphans(orphans, timeout=5.0)
            stopped = set(result.terminated) | set(result.killed)
            sys.stdout.write(f"stopped {len(stopped)} process(es)\n")
    except BrummerError as exc:
        _err(str(exc))
        return EXIT_FAILURE
    return EXIT_OK


def _running_port(project: Path) -> int | None:
    """The MCP port of a brummer already running for ``project`` (from discovery), if any."""
    try:
        from brummer.mcp.discovery import list_instances

        directory = str(project.resolve())
        ports = [i.port for i in list_instances(clean=False) if i.directory == directory]
    except Exception:
        return None
    return ports[-1] if ports else None


def _run_hub() -> int:
    from brummer.mcp import run_hub_stdio

    try:
        return int(run_hub_stdio() or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


class _Signals:
    """SIGINT/SIGTERM/SIGHUP → ``on_stop`` the first time, ``on_escalate`` the second.

    Once shutdown has begun (``stopping``), the first signal already escalates.
    """

    def __init__(self, on_stop: Callable[[], None], on_escalate: Callable[[], None]) -> None:
        self.count = 0
        self.stopping = False  # set once shutdown has begun: then any signal escalates
        self._on_stop = on_stop
        self._on_escalate = on_escalate
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1 and not self.stopping:
            self._on_stop()
        else:
            self._on_escalate()


def _kill_trees_now(app: Any) -> None:
    """Second Ctrl-C: SIGKILL every child tree at once, without waiting for grace periods.

    Each child leads its own process group, and the first Ctrl-C has usually killed the
    wrappers already (``npm``, ``sh``): what ignores SIGTERM is then no longer a descendant
    of anything brummer knows, but it is still in the group. So the whole group is killed,
    and then whatever descendants are still found (in case one left the group).
    """
    import psutil

    processes = getattr(app, "processes", None)
    if processes is None:
        return
    with contextlib.suppress(Exception):
        for proc in processes.get_all_processes():
            pid = proc.pid
            if pid is None or not proc.is_running():
                continue
            descendants: list[psutil.Process] = []
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                descendants = [*root.children(recursive=True), root]
            group = getattr(proc.snapshot(), "pgid", None) or pid
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGKILL)
            for child in descendants:
                with contextlib.suppress(psutil.Error):
                    child.kill()


def _run(project: Path, config: Config, targets: list[str], *, tui: bool) -> int:
    from brummer.app import Brummer

    stop_requested = threading.Event()
    escalated = threading.Event()
    holder: list[Any] = []

    def escalate() -> None:
        escalated.set()
        stop_requested.set()
        if holder:
            _kill_trees_now(holder[0])

    signals = _Signals(stop_requested.set, escalate)
    signals.install()  # before anything starts: a Ctrl-C now still stops cleanly
    try:
        try:
            app = Brummer(project, config)
            app.start()
        except BrummerError as exc:
            _err(str(exc))
            return EXIT_FAILURE
        holder.append(app)
        try:
            return _serve(
                app, config, targets, tui=tui, stop_requested=stop_requested, escalate=escalate
            )
        finally:
            # Nothing here may raise before app.stop(): the children must not outlive us.
            signals.stopping = True
            with contextlib.suppress(Exception):
                if any(p.is_running() for p in app.processes.get_all_processes()):
                    _err("stopping every process… (Ctrl-C again kills them at once)")
            timeout = ESCALATED_STOP_TIMEOUT if escalated.is_set() else STOP_TIMEOUT
            app.stop(timeout=timeout)
    finally:
        signals.restore()


def _serve(
    app: Any,
    config: Config,
    targets: list[str],
    *,
    tui: bool,
    stop_requested: threading.Event,
    escalate: Callable[[], None],
) -> int:
    if not tui:
        app.processes.register_log_callback(LinePrinter(sys.stdout, app))
        with contextlib.suppress(Exception):
            for problem in app.processes.script_problems():
                _err(f"warning: {problem}")
    code = _start_targets(app, targets)
    if tui:
        from brummer.tui.app import run_tui

        run_tui(app, initial=targets, stop_requested=stop_requested, escalate=escalate)
    else:
        exits_alone = bool(targets) and config.no_mcp and config.no_proxy
        if not exits_alone:
            _err(_serving_banner(app))
        _wait(app, stop_requested, exits_alone)
    return code or _worst_exit_code(app)


def _serving_banner(app: Any) -> str:
    parts = []
    if app.mcp is not None:
        parts.append(f"MCP {getattr(app.mcp, 'url', '')}")
    if app.proxy is not None:
        parts.append(f"proxy 127.0.0.1:{getattr(app.proxy, 'port', '')}")
    served = ", ".join(parts) if parts else "nothing"
    return f"headless: serving {served}; Ctrl-C stops everything"


def _start_targets(app: Any, targets: list[str]) -> int:
    code = EXIT_OK
    scripts = app.processes.scripts()
    unknown = [t for t in targets if t not in scripts]
    if len(targets) > 1 and unknown and all(" " not in t for t in unknown):
        for target in unknown:
            _err(f"no script named {target!r}; running it as a command")
    for target in targets:
        try:
            app.run(target)
        except BrummerError as exc:
            _err(str(exc))
            code = EXIT_FAILURE
    return code


def _wait(app: Any, stop_requested: threading.Event, exits_alone: bool) -> None:
    while not stop_requested.wait(0.1):
        if exits_alone and not any(p.is_running() for p in app.processes.get_all_processes()):
            return


def _worst_exit_code(app: Any) -> int:
    worst = EXIT_OK
    with contextlib.suppress(Exception):
        for proc in app.processes.get_all_processes():
            status = getattr(getattr(proc, "status", None), "name", "")
            code = proc.exit_code
            if status == "STOPPED" or code is None:
                continue
            if code < 0:
                code = 128 - code
            worst = max(worst, code)
    return worst


_NAME_WIDTH_MIN, _NAME_WIDTH_MAX = 5, 20  # padding of the name column in headless output
_COLOURS = (36, 33, 35, 32, 34, 96, 93, 95, 92, 94)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@contract(ThreadSafety.TS)
class LinePrinter:
    """A process-manager log callback printing ``HH:MM:SS name | line``.

    Names are padded to the longest one printed so far (at most 20 characters), so the
    ``|`` column lines up as in honcho and concurrently.

    Thread safety: TS. Calls from several reader threads are serialised by one lock, so
    lines never interleave mid-line. Colours the name (and stderr lines) only when the
    stream is a terminal; otherwise the children's own colour codes are removed too.
    """

    def __init__(self, stream: TextIO, app: Any, *, colour: bool | None = None) -> None:
        self._stream = stream
        self._app = app
        self._lock = threading.Lock()  # guards writes to the stream and the name cache
        self._names: dict[str, str] = {}
        self._width = _NAME_WIDTH_MIN  # names are padded to the longest seen, up to a cap
        isatty = getattr(stream, "isatty", lambda: False)
        self._colour = bool(isatty()) if colour is None else colour

    def _name(self, process_id: str) -> str:
        name = self._names.get(process_id)
        if name is None:
            proc = None
            with contextlib.suppress(Exception):
                proc = self._app.processes.get_process(process_id)
            name = proc.name if proc is not None else process_id
            self._names[process_id] = name
            self._width = max(self._width, min(len(name), _NAME_WIDTH_MAX))
        return name.ljust(self._width)

    @contract(ThreadSafety.TS)
    def format(self, name: str, line: str, is_error: bool, when: dt.datetime) -> str:
        """One output line for ``line`` from process ``name``.

        Thread safety: TS. Pure.
        """
        stamp = when.strftime("%H:%M:%S")
        line = line.rstrip("\r\n")
        if not self._colour:
            return f"{stamp} {name} | {_ANSI.sub('', line)}"
        colour = _COLOURS[sum(name.rstrip().encode()) % len(_COLOURS)]
        text = f"\x1b[31m{line}\x1b[0m" if is_error else line
        return f"\x1b[2m{stamp}\x1b[0m \x1b[{colour}m{name}\x1b[0m | {text}"

    def __call__(self, process_id: str, line: str, is_error: bool) -> None:
        now = dt.datetime.now().astimezone()
        with self._lock:
            text = self.format(self._name(process_id), line, is_error, now)
            try:
                self._stream.write(text + "\n")
                self._stream.flush()
            except (OSError, ValueError):
                return  # stdout closed (terminal gone): keep running until the signal arrives

"""The interface: tabs, header, status line, command line, help; and ``run_tui``.

:class:`BrummerTUI` holds the palette and the widget tree and handles every key. It reads
the container's components only from the loop thread; event-bus handlers merely mark views
dirty through the :class:`~brummer.tui.bridge.UIBridge`, and refreshes are coalesced to at
most one per frame (:data:`FRAME_INTERVAL`), so a log flood never starves input.

Thread safety: ST. Everything except ``UIBridge`` calls runs in the urwid loop thread.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import urwid

from brummer.contracts import ThreadSafety, contract
from brummer.tui.bridge import UIBridge
from brummer.tui.palette import PALETTE
from brummer.tui.views.base import View
from brummer.tui.views.lists import (
    ErrorsView,
    ProcessesView,
    ScriptsView,
    URLsView,
    WebView,
    latest_runs,
)
from brummer.tui.views.logs import LogsView
from brummer.tui.views.settings import SettingsView

__all__ = ["FRAME_INTERVAL", "MIN_COLS", "MIN_ROWS", "VIEW_ORDER", "BrummerTUI", "run_tui"]

FRAME_INTERVAL = 0.05  # seconds: at most 20 data refreshes a second, however fast lines arrive
TICK_INTERVAL = 1.0  # uptime and unread-error markers
MIN_COLS, MIN_ROWS = 40, 10
VIEW_ORDER = ("scripts", "processes", "logs", "errors", "urls", "web", "settings")
COMMANDS = ("run", "stop", "restart", "clear", "show", "hide", "save", "help", "quit")

_log = logging.getLogger("brummer.tui")

_LIVE_FILTER = frozenset({"scripts", "processes", "errors", "urls", "web"})  # "/" filters live
_EVENT_TAGS = {
    "log.line": ("logs",),
    "process.started": ("processes",),
    "process.exited": ("processes",),
    "error.detected": ("errors", "logs"),
    "url.detected": ("urls", "processes"),
    "proxy.request": ("web",),
    "telemetry.event": ("web",),
    "mcp.connected": ("settings",),
    "mcp.disconnected": ("settings",),
}

GLOBAL_KEYS = (
    ("Tab / Shift+Tab", "next / previous view"),
    ("1 … 7", "Scripts Processes Logs Errors URLs Web Settings"),
    (": or /", "command line: run, stop, restart, clear, show, hide, save, help, quit"),
    ("/text", "search (Logs) or filter (lists)"),
    ("?", "this help"),
    ("q", "quit: stops every process tree first"),
)


class _Header(urwid.Text):
    """The tab bar: every title when it fits, else numbers with only the current title."""

    def __init__(self) -> None:
        super().__init__("", wrap="clip")
        self._compact: urwid.Text = urwid.Text("", wrap="clip")

    def set_tabs(self, full: list[Any], compact: list[Any]) -> None:
        self.set_text(full)
        self._compact.set_text(compact)

    def render(self, size: tuple[int] | tuple[()], focus: bool = False) -> urwid.TextCanvas:  # type: ignore[override]
        if size and urwid.str_util.calc_width(self.text, 0, len(self.text)) > size[0]:
            return self._compact.render(size, focus)
        return super().render(size, focus)


class _Top(urwid.WidgetWrap[urwid.Widget]):
    """Root widget: a "too small" screen below 40x10, the help overlay, key routing."""

    def __init__(self, tui: BrummerTUI) -> None:
        self._tui = tui
        super().__init__(tui.frame)

    def render(self, size: tuple[int, ...], focus: bool = False) -> urwid.Canvas:
        cols, rows = (*size, MIN_ROWS)[:2]
        if cols < MIN_COLS or rows < MIN_ROWS:
            text = urwid.Text(
                (
                    "too small",
                    f"terminal too small: {cols}x{rows}, brummer needs {MIN_COLS}x{MIN_ROWS}",
                ),
                align="center",
            )
            return urwid.Filler(text).render((cols, rows), focus)
        return super().render(size, focus)

    def keypress(self, size: tuple[int, ...], key: str) -> str | None:
        return self._tui.keypress(size, key)

    def mouse_event(
        self, size: tuple[int, ...], event: str, button: int, col: int, row: int, focus: bool
    ) -> bool | None:
        if self._tui.quitting:
            return True
        return bool(super().mouse_event(size, event, button, col, row, focus))


@contract(ThreadSafety.ST)
class BrummerTUI:
    """The urwid interface over a Brummer container.

    Thread safety: ST. Construct and use from one thread (the urwid loop thread); other
    threads talk to it only through ``self.bridge``.

    Args:
        app: the container (``processes``, ``logs``, ``proxy``, ``mcp``, ``events``,
            ``config``, ``run()``).
        initial: script names or commands started on the command line (opens Logs).
        inline_background: run background work inline (tests without a main loop).
    """

    def __init__(
        self, app: Any, *, initial: Sequence[str] = (), inline_background: bool = False
    ) -> None:
        self.app = app
        self.loop: urwid.MainLoop | None = None
        self.bridge: UIBridge | None = None
        self.quitting = False
        self.exit_requested = False
        self._inline = inline_background
        self._sub_id: Any = None
        self._last_refresh = 0.0
        self._refresh_alarm: Any = None
        self._errors_seen = 0
        self._error_count = 0
        self.views: dict[str, View] = {
            "scripts": ScriptsView(self),
            "processes": ProcessesView(self),
            "logs": LogsView(self),
            "errors": ErrorsView(self),
            "urls": URLsView(self),
            "web": WebView(self),
            "settings": SettingsView(self),
        }
        self.header = _Header()
        self.status_text = urwid.Text("", wrap="clip")
        self.hints = urwid.Text("", wrap="clip")
        self.command = urwid.Edit(":")
        self.command_prefix = ":"
        self.command_active = False
        self.help_shown = False
        self.footer = urwid.Pile(
            [urwid.AttrMap(self.status_text, "status"), urwid.AttrMap(self.hints, "footer")]
        )
        self.frame: urwid.Frame[Any, Any, Any] = urwid.Frame(
            urwid.SolidFill(" "),  # replaced by the first view below
            header=urwid.AttrMap(self.header, "header"),
            footer=self.footer,
        )
        self.top = _Top(self)
        self.current = ""
        urwid.connect_signal(self.command, "postchange", self._command_changed)
        # Scripts first, even when there are none: its empty text says why and what to do.
        self.switch_to("logs" if initial else "scripts")
        self.status("Tab switches views · : runs commands · ? help · q quits")
        self._report_problems()

    # ------------------------------------------------------------------ host API

    @contract(ThreadSafety.ST)
    def status(self, message: str, *, error: bool = False) -> None:
        """Show ``message`` in the status line (red when ``error``).

        Thread safety: ST.
        """
        stamp = time.strftime("%H:%M:%S")
        self.status_text.set_text(("status error" if error else "status", f" {stamp} {message}"))

    @contract(ThreadSafety.ST)
    def background(self, fn: Callable[[], object], done: str = "") -> None:
        """Run ``fn`` off the loop thread (on the container's pool); report the outcome.

        Thread safety: ST.
        """

        def report(error: BaseException | None) -> None:
            if error is not None:
                self.status(str(error), error=True)
            elif done:
                self.status(done)
            self._mark_all_dirty()

        if self._inline or self.bridge is None:
            try:
                fn()
            except Exception as exc:
                report(exc)
            else:
                report(None)
            return
        bridge = self.bridge

        def job() -> None:
            error: BaseException | None = None
            try:
                fn()
            except Exception as exc:
                error = exc
            bridge.post(lambda: report(error))

        pool = getattr(self.app, "pool", None)
        try:
            if pool is None:
                raise RuntimeError("no pool")
            pool.submit(job)
        except Exception:
            threading.Thread(target=job, name="brummer-tui-job", daemon=True).start()

    @contract(ThreadSafety.ST)
    def switch_to(self, name: str, **options: Any) -> None:
        """Show the view called ``name`` (options go to its ``on_show``).

        Thread safety: ST.
        """
        view = self.views[name]
        self.current = name
        self.frame.body = view
        self.frame.focus_position = "body"
        try:
            view.on_show(**options)
        except Exception as exc:
            _log.exception("showing %s failed", name)
            self.status(f"cannot show {view.title}: {exc}", error=True)
        if name == "errors":
            self._errors_seen = self._error_count
        self.hints.set_text(self._hint_line(view))
        self._update_header()

    @contract(ThreadSafety.ST)
    def write_terminal(self, data: str) -> None:
        """Write ``data`` (an escape sequence such as OSC 52) straight to the terminal.

        Thread safety: ST.
        """
        screen = getattr(self.loop, "screen", None)
        write = getattr(screen, "write", None)
        if write is None:
            raise RuntimeError("no terminal to write to")
        write(data)
        flush = getattr(screen, "flush", None)
        if flush is not None:
            flush()

    def _report_problems(self) -> None:
        """Say at start-up what was wrong in .brum.toml files or in the project's scripts."""
        problems = [str(p) for p in getattr(getattr(self.app, "config", None), "problems", ())]
        processes = getattr(self.app, "processes", None)
        script_problems = getattr(processes, "script_problems", None)
        if script_problems is not None:
            with contextlib.suppress(Exception):
                problems += [str(p) for p in script_problems()]
        if problems:
            more = f" (+{len(problems) - 1} more, see 7 Settings)" if len(problems) > 1 else ""
            self.status(f"{problems[0]}{more}", error=True)

    # ------------------------------------------------------------------ refresh

    def _scripts(self) -> dict[str, Any]:
        processes = getattr(self.app, "processes", None)
        if processes is None:
            return {}
        try:
            return dict(processes.scripts())
        except Exception:
            return {}

    @property
    @contract(ThreadSafety.ST)
    def view(self) -> View:
        """The view shown now.

        Thread safety: ST.
        """
        return self.views[self.current]

    def _hint_line(self, view: View) -> str:
        own = f"{view.hint} · " if view.hint else ""
        return f" {own}Tab views  : command  ? help  q quit"

    def _update_header(self) -> None:
        processes = getattr(self.app, "processes", None)
        logs = getattr(self.app, "logs", None)
        running = failed = 0
        if processes is not None:
            with contextlib.suppress(Exception):
                for proc in latest_runs(processes.get_all_processes()):  # not restarted runs
                    if proc.is_running():
                        running += 1
                    elif str(getattr(proc.status, "name", proc.status)) == "FAILED":
                        failed += 1
        if logs is not None:
            with contextlib.suppress(Exception):
                self._error_count = len(logs.get_error_groups())
        if self.current == "errors":
            self._errors_seen = self._error_count
        markup: list[Any] = [("header", " brummer ")]
        compact: list[Any] = [("header", " ")]
        for index, name in enumerate(VIEW_ORDER, start=1):
            title = self.views[name].title
            extra = ""
            attr = "tab focus" if name == self.current else "tab"
            if name == "processes" and (running or failed):
                extra = (f" ▶{running}" if running else "") + (f" ✗{failed}" if failed else "")
            if name == "errors" and self._error_count > self._errors_seen:
                extra = f" •{self._error_count - self._errors_seen}"
                if name != self.current:
                    attr = "tab alert"
            markup.append((attr, f" {index} {title}{extra} "))
            short = f" {index} {title}{extra} " if name == self.current else f" {index}{extra} "
            compact.append((attr, short))
        self.header.set_tabs(markup, compact)

    @contract(ThreadSafety.ST)
    def refresh(self, tags: Iterable[str] | None = None) -> None:
        """Refresh the header, and the current view when ``tags`` (None: any) concern it.

        Thread safety: ST.
        """
        self._last_refresh = time.monotonic()
        view = self.view
        if tags is None or view.tags & set(tags):
            try:
                view.refresh()
            except Exception as exc:
                _log.exception("refreshing %s failed", view.name)
                self.status(f"refreshing {view.title} failed: {exc}", error=True)
        self._update_header()

    def _on_dirty(self) -> None:
        if self.loop is None or self.bridge is None or self._refresh_alarm is not None:
            return
        wait = FRAME_INTERVAL - (time.monotonic() - self._last_refresh)
        if wait <= 0:
            self.refresh(self.bridge.take_dirty())
            return

        def later(_loop: Any, _data: Any) -> None:
            self._refresh_alarm = None
            if self.bridge is not None:
                self.refresh(self.bridge.take_dirty())

        self._refresh_alarm = self.loop.set_alarm_in(wait, later)

    def _mark_all_dirty(self) -> None:
        if self.bridge is not None:
            for tag in self.view.tags:
                self.bridge.mark_dirty(tag)
        else:
            self.refresh()

    def _on_event(self, event: Any) -> None:
        """Event-bus handler (any thread): only marks views dirty."""
        bridge = self.bridge
        if bridge is None:
            return
        kind = getattr(event.type, "value", event.type)
        for tag in _EVENT_TAGS.get(str(kind), ()):
            bridge.mark_dirty(tag)

    def _tick(self, loop: Any, _data: Any) -> None:
        if self.quitting:
            return
        self.refresh({"processes", "logs", "errors", "urls", "web"})
        loop.set_alarm_in(TICK_INTERVAL, self._tick)

    # ------------------------------------------------------------------ input

    @contract(ThreadSafety.ST)
    def keypress(self, size: tuple[int, ...], key: str) -> str | None:
        """Route one key: help overlay, command line, the view, then global keys.

        Thread safety: ST.
        """
        if self.quitting:
            return None
        if key.startswith("meta ") and len(key) == 6:
            # Esc and a key typed quickly arrive as one "meta" key (the terminal cannot tell
            # them apart): do both, as the user meant.
            self.keypress(size, "esc")
            return self.keypress(size, key[5:])
        if self.help_shown:
            self._hide_help()
            return None
        if self.command_active:
            return self._command_key(size, key)
        if key in (":", "/"):
            self._open_command(key)
            return None
        cols, rows = (*size, MIN_ROWS)[:2]
        if cols >= MIN_COLS and rows >= MIN_ROWS:
            key_left = self.frame.keypress((cols, rows), key)
            if key_left is None:
                return None
        return self._global_key(key)

    def _global_key(self, key: str) -> str | None:
        if key in ("tab", "right", "shift tab", "left"):
            step = 1 if key in ("tab", "right") else -1
            index = (VIEW_ORDER.index(self.current) + step) % len(VIEW_ORDER)
            self.switch_to(VIEW_ORDER[index])
            return None
        if len(key) == 1 and key.isdigit() and 1 <= int(key) <= len(VIEW_ORDER):
            self.switch_to(VIEW_ORDER[int(key) - 1])
            return None
        if key == "?":
            self._show_help()
            return None
        if key in ("q", "Q"):
            self.quit()
            return None
        if key == "esc" and self.current in ("logs", "errors", "urls", "web"):
            self.switch_to("processes")
            return None
        return key

    def _open_command(self, prefix: str) -> None:
        self.command_prefix = prefix
        self.command.set_caption(prefix)
        self.command.set_edit_text("")
        self.command_active = True
        self.footer.contents[0] = (urwid.AttrMap(self.command, "command"), ("pack", None))  # type: ignore[assignment]
        self.frame.focus_position = "footer"

    def _close_command(self) -> None:
        self.command_active = False
        self.footer.contents[0] = (urwid.AttrMap(self.status_text, "status"), ("pack", None))  # type: ignore[assignment]
        self.frame.focus_position = "body"

    def _command_key(self, size: tuple[int, ...], key: str) -> str | None:
        if key == "esc":
            self._close_command()
            if self.command_prefix == "/" and self.current in _LIVE_FILTER:
                self.view.search("")
            return None
        if key == "enter":
            text = self.command.edit_text.strip()
            self._close_command()
            self.execute(text, prefix=self.command_prefix)
            return None
        if key == "tab":
            self._complete()
            return None
        self.command.keypress((max(1, (size or (80,))[0]),), key)
        return None

    def _command_changed(self, _edit: Any, _old: Any) -> None:
        # Live filtering: "/text" in a list view narrows the list as you type.
        if self.command_active and self.command_prefix == "/" and self.current in _LIVE_FILTER:
            text = self.command.edit_text
            if text.split(" ", 1)[0] not in COMMANDS:
                self.view.search(text)

    def _complete(self) -> None:
        text = self.command.edit_text
        word, _, rest = text.partition(" ")
        if not rest and " " not in text:
            matches = [c for c in COMMANDS if c.startswith(word)]
            if len(matches) == 1:
                self.command.set_edit_text(matches[0] + " ")
                self.command.set_edit_pos(len(self.command.edit_text))
            return
        if word in ("run", "stop", "restart"):
            names = sorted(self._scripts()) if word == "run" else self._process_names()
            matches = [n for n in names if n.startswith(rest)]
            if len(matches) == 1:
                self.command.set_edit_text(f"{word} {matches[0]}")
                self.command.set_edit_pos(len(self.command.edit_text))
            elif matches:
                self.status("  ".join(matches[:12]))

    def _process_names(self) -> list[str]:
        processes = getattr(self.app, "processes", None)
        if processes is None:
            return []
        return sorted({p.name for p in processes.get_all_processes()})

    @contract(ThreadSafety.ST)
    def execute(self, text: str, *, prefix: str = ":") -> None:
        """Run one command-line entry (``run dev``, ``show error``, or a search with ``/``).

        Thread safety: ST. Problems are shown in the status line, never raised.
        """
        if not text:
            return
        word, _, arg = text.partition(" ")
        arg = arg.strip()
        if word not in COMMANDS:
            if prefix == "/":
                self.view.search(text)
                return
            self.status(f"unknown command {word!r}; commands: {', '.join(COMMANDS)}", error=True)
            return
        try:
            getattr(self, f"_cmd_{word}")(arg)
        except Exception as exc:
            self.status(f"{word}: {exc}", error=True)

    def _cmd_run(self, arg: str) -> None:
        if not arg:
            self.status("run what? :run <script> or :run <command>", error=True)
            return
        done = f"started {arg}"
        if " " not in arg and arg not in self._scripts():
            done = f"no script named {arg!r}: started it as a shell command"
        self.background(lambda: self.app.run(arg), done)
        self.switch_to("logs", process_id=None)

    def _targets(self, arg: str) -> list[Any]:
        processes = self.app.processes
        running = [p for p in processes.get_all_processes() if p.is_running()]
        if arg in ("", "all"):
            return running
        chosen = [p for p in running if arg in (p.name, p.id)]
        if not chosen:
            raise LookupError(f"no running process named {arg!r}")
        return chosen

    def _cmd_stop(self, arg: str) -> None:
        processes = self.app.processes
        targets = self._targets(arg)
        if not targets:
            self.status("nothing is running")
        for proc in targets:
            self.background(
                functools.partial(processes.stop_process, proc.id), f"stopped {proc.name}"
            )

    def _cmd_restart(self, arg: str) -> None:
        processes = self.app.processes
        running = [p for p in processes.get_all_processes() if p.is_running()]
        if arg in ("", "all"):
            targets = running
            if not targets:
                self.status("nothing is running")
        else:
            targets = [p for p in running if arg in (p.name, p.id)]
            if not targets:  # restarting something that is not running starts it
                self._cmd_run(arg)
                return
        for proc in targets:
            self.background(
                functools.partial(processes.restart_process, proc.id), f"restarted {proc.name}"
            )

    def _cmd_clear(self, arg: str) -> None:
        what = arg or "logs"
        logs = self.app.logs
        if what not in ("logs", "errors", "web", "all"):
            raise ValueError(f"clear what? logs, errors, web or all (got {what!r})")
        if what in ("logs", "errors", "all"):
            logs.clear()
        if what in ("web", "all") and getattr(self.app, "proxy", None) is not None:
            self.app.proxy.clear_requests()
        self._logs_view().reload()
        self.refresh()
        if what in ("logs", "errors"):
            self.status("cleared the logs and the errors (the store keeps them together)")
        else:
            self.status(f"cleared {what}")

    def _logs_view(self) -> LogsView:
        view = self.views["logs"]
        assert isinstance(view, LogsView)
        return view

    def _cmd_show(self, arg: str) -> None:
        try:
            self._logs_view().set_show(arg or None)
        except re.error as exc:
            self.status(f"show: the pattern {arg!r} does not compile: {exc}", error=True)
            return
        self.switch_to("logs")
        self.status(f"showing lines matching /{arg}/" if arg else "showing all lines")

    def _cmd_hide(self, arg: str) -> None:
        try:
            self._logs_view().set_hide(arg or None)
        except re.error as exc:
            self.status(f"hide: the pattern {arg!r} does not compile: {exc}", error=True)
            return
        self.switch_to("logs")
        self.status(f"hiding lines matching /{arg}/" if arg else "hiding nothing")

    def _cmd_save(self, arg: str) -> None:
        name = arg or time.strftime("brummer-logs-%Y%m%d-%H%M%S.txt")
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = Path(str(getattr(self.app, "work_dir", "."))) / path
        lines = self._logs_view().export_lines()
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.status(f"saved {len(lines)} shown log lines to {path}")

    def _cmd_help(self, _arg: str) -> None:
        self._show_help()

    def _cmd_quit(self, _arg: str) -> None:
        self.quit()

    # ------------------------------------------------------------------ help and quit

    def _show_help(self) -> None:
        view = self.view
        lines: list[Any] = [("title", f"{view.title} view"), view.help_text(), ""]
        lines += [("title", "Everywhere"), "\n".join(f"  {k:<12} {w}" for k, w in GLOBAL_KEYS)]
        lines += ["", ("dim", "press any key to close")]
        body = urwid.ListBox(urwid.SimpleListWalker([urwid.Text(line) for line in lines]))
        box = urwid.LineBox(body, title="help")
        self.top._w = urwid.Overlay(
            box, self.frame, "center", ("relative", 80), "middle", ("relative", 80)
        )
        self.help_shown = True

    def _hide_help(self) -> None:
        self.top._w = self.frame
        self.help_shown = False

    @contract(ThreadSafety.ST)
    def quit(self) -> None:
        """Leave the interface; the caller then stops every process tree.

        Thread safety: ST. Keys pressed afterwards are ignored.
        """
        self.quitting = True
        self.exit_requested = True
        self.status("quitting: stopping every process…")
        if self.loop is not None:
            raise urwid.ExitMainLoop()

    # ------------------------------------------------------------------ loop

    @contract(ThreadSafety.ST)
    def build_loop(self, screen: Any = None) -> urwid.MainLoop:
        """Create the urwid main loop, the bridge and the event subscription.

        Thread safety: ST. Call from the thread that will run the loop.
        """
        loop = urwid.MainLoop(self.top, PALETTE, screen=screen, handle_mouse=True)  # type: ignore[arg-type]
        self.loop = loop
        self.bridge = UIBridge(loop.watch_pipe, self._on_dirty, loop.remove_watch_pipe)
        events = getattr(self.app, "events", None)
        if events is not None:
            try:
                self._sub_id = events.subscribe_all(self._on_event)
            except Exception as exc:
                self.status(f"live updates are off: {exc}", error=True)
        loop.set_alarm_in(TICK_INTERVAL, self._tick)
        return loop

    @contract(ThreadSafety.ST)
    def close(self) -> None:
        """Unsubscribe from the event bus and close the bridge. Idempotent.

        Thread safety: ST.
        """
        self.quitting = True
        events = getattr(self.app, "events", None)
        if self._sub_id is not None and events is not None:
            with contextlib.suppress(Exception):
                events.unsubscribe(self._sub_id)
            self._sub_id = None
        if self.bridge is not None:
            self.bridge.close()


@contract(ThreadSafety.ST)
def run_tui(
    app: Any,
    *,
    initial: Sequence[str] = (),
    stop_requested: threading.Event | None = None,
    escalate: Callable[[], None] | None = None,
    screen: Any = None,
) -> None:
    """Run the interface until the user quits or a signal arrives.

    Thread safety: ST. Main thread only (signal handlers). SIGINT, SIGTERM and SIGHUP ask
    the interface to quit; a second one calls ``escalate`` at once.
    """
    tui = BrummerTUI(app, initial=initial)
    loop = tui.build_loop(screen)
    bridge = tui.bridge
    assert bridge is not None
    count = [0]

    def request_quit() -> None:
        tui.quit()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        count[0] += 1
        if stop_requested is not None:
            stop_requested.set()
        if count[0] == 1:
            bridge.post(request_quit)
        elif escalate is not None:
            escalate()

    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            previous[sig] = signal.signal(sig, handler)
    try:
        if stop_requested is not None and stop_requested.is_set():
            return
        loop.run()
    except (urwid.display.common.InputClosedError, OSError):
        # The terminal went away (window closed, ssh dropped): the same as quitting; the
        # caller stops every process tree next.
        _log.info("the terminal was closed; quitting")
        if stop_requested is not None:
            stop_requested.set()
    finally:
        for sig, old in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, old)
        tui.close()

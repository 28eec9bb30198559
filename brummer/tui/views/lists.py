"""The list views: Scripts, Processes, Errors, URLs and Web requests.

Each rebuilds its rows from a snapshot on refresh and keeps the selection on the same item.

Thread safety: ST. Loop thread only.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import webbrowser
from collections.abc import Iterable, Sequence
from typing import Any

import urwid

from brummer.contracts import ThreadSafety, contract
from brummer.tui.palette import clean_text, status_symbol
from brummer.tui.views.base import Host, Row, View, format_duration, local_time

_log = logging.getLogger("brummer.tui")

__all__ = [
    "ErrorsView",
    "ListView",
    "ProcessesView",
    "ScriptsView",
    "URLsView",
    "WebView",
    "copy_to_clipboard",
    "latest_runs",
]


@contract(ThreadSafety.ST)
class ListView(View):
    """A view whose body is a list of selectable rows, optionally above a detail pane.

    Thread safety: ST.
    """

    empty_text = "nothing here yet"

    def __init__(self, host: Host, *, detail: bool = False) -> None:
        self.walker: urwid.SimpleFocusListWalker[Any] = urwid.SimpleFocusListWalker([])
        self.listbox = urwid.ListBox(self.walker)
        self.info = urwid.Text("", wrap="clip")
        self.detail = urwid.Text("")
        self.filter_text = ""
        body: urwid.Widget = self.listbox
        if detail:
            pane = urwid.LineBox(urwid.Filler(self.detail, valign="top"), title="details")
            body = urwid.Pile([("weight", 1, self.listbox), ("weight", 1, pane)])
        frame: urwid.Widget = urwid.Frame(body, header=urwid.AttrMap(self.info, "dim"))
        super().__init__(host, frame)
        urwid.connect_signal(self.walker, "modified", self._focus_changed)

    @contract(ThreadSafety.ST)
    def items(self) -> Sequence[Any]:
        """The items to show (override).

        Thread safety: ST.
        """
        return ()

    @contract(ThreadSafety.ST)
    def key_of(self, item: Any) -> Any:
        """A stable identity of ``item`` to keep the selection on (override).

        Thread safety: ST.
        """
        return getattr(item, "id", item)

    @contract(ThreadSafety.ST)
    def markup(self, item: Any) -> Any:
        """The row text of ``item`` (override).

        Thread safety: ST.
        """
        return str(item)

    @contract(ThreadSafety.ST)
    def describe(self, item: Any) -> str:
        """The detail-pane text of ``item`` (override).

        Thread safety: ST.
        """
        return ""

    @contract(ThreadSafety.ST)
    def heading(self, count: int) -> str:
        """The line above the list.

        Thread safety: ST.
        """
        suffix = f" · filter {self.filter_text!r}" if self.filter_text else ""
        return f" {self.title}: {count}{suffix}"

    @property
    @contract(ThreadSafety.ST)
    def selected(self) -> Any:
        """The item under the cursor, None when the list is empty.

        Thread safety: ST.
        """
        widget, _ = self.walker.get_focus()
        return getattr(widget, "value", None)

    @contract(ThreadSafety.ST)
    def refresh(self) -> None:
        """Refresh: overrides the base view (see there).

        Thread safety: ST.
        """
        items = list(self.items())
        if self.filter_text:
            needle = self.filter_text.lower()
            items = [i for i in items if needle in _plain(self.markup(i)).lower()]
        old_key = self.key_of(self.selected) if self.selected is not None else None
        _, old_pos = self.walker.get_focus()
        rows: list[urwid.Widget] = [Row(self.markup(item), item) for item in items]
        if not rows:
            rows = [urwid.Text(("dim", f"  {self.empty_text}"))]
        self.walker[:] = rows
        keys = [self.key_of(i) for i in items]
        if old_key is not None and old_key in keys:
            self.walker.set_focus(keys.index(old_key))
        elif old_pos is not None:
            self.walker.set_focus(min(old_pos, len(rows) - 1))
        else:
            self.walker.set_focus(0)
        self.info.set_text(self.heading(len(items)))
        self._focus_changed()

    def _focus_changed(self) -> None:
        item = self.selected
        self.detail.set_text(self.describe(item) if item is not None else "")

    @contract(ThreadSafety.ST)
    def search(self, text: str) -> None:
        """Search: overrides the base view (see there).

        Thread safety: ST.
        """
        self.filter_text = text
        self.refresh()

    @contract(ThreadSafety.ST)
    def keypress(self, size: tuple[int, ...], key: str) -> str | None:
        """Keypress: the urwid widget protocol.

        Thread safety: ST.
        """
        if key == "esc" and self.filter_text:
            self.search("")
            return None
        return super().keypress(size, key)

    @contract(ThreadSafety.ST)
    def mouse_event(
        self, size: tuple[int, ...], event: str, button: int, col: int, row: int, focus: bool
    ) -> bool | None:
        """Mouse event: the urwid widget protocol.

        Thread safety: ST.
        """
        if event == "mouse press" and button in (4, 5):
            self.keypress(size, "up" if button == 4 else "down")
            return True
        return bool(super().mouse_event(size, event, button, col, row, focus))


def _plain(markup: Any) -> str:
    if isinstance(markup, str):
        return markup
    if isinstance(markup, tuple):
        return _plain(markup[1])
    if isinstance(markup, list):
        return "".join(_plain(m) for m in markup)
    return ""


# ---------------------------------------------------------------------- scripts


@contract(ThreadSafety.ST)
class ScriptsView(ListView):
    """Everything runnable: package.json and workspace scripts, detected commands, tasks.

    Thread safety: ST.
    """

    name = "scripts"
    title = "Scripts"
    hint = "Enter run  / filter"
    tags = frozenset({"scripts"})
    empty_text = "no scripts found (package.json, Procfile, Makefile...); :run <command> runs one"

    @contract(ThreadSafety.ST)
    def refresh(self) -> None:
        """Refresh: overrides the base view; an empty list also says what went wrong.

        Thread safety: ST.
        """
        problems: list[str] = []
        script_problems = getattr(
            getattr(self.host.app, "processes", None), "script_problems", None
        )
        if script_problems is not None:
            with contextlib.suppress(Exception):
                problems = [str(p) for p in script_problems()]
        base = type(self).empty_text
        self.empty_text = "\n  ".join([base, *problems]) if problems else base
        super().refresh()

    keys = (
        ("↑ ↓", "select"),
        ("Enter", "run the selected script"),
        ("/text", "filter the list (Esc clears)"),
    )

    @contract(ThreadSafety.ST)
    def items(self) -> Sequence[Any]:
        """Items: overrides the base view (see there).

        Thread safety: ST.
        """
        processes = getattr(self.host.app, "processes", None)
        if processes is None:
            return ()
        scripts = processes.scripts()
        # (key, script): the key is what start_script takes ("<package>:<script>" for workspaces)
        return sorted(scripts.items(), key=lambda kv: (_source_rank(kv[1]), kv[0]))

    @contract(ThreadSafety.ST)
    def key_of(self, item: Any) -> Any:
        """Key of: overrides the base view (see there).

        Thread safety: ST.
        """
        return item[0]

    @contract(ThreadSafety.ST)
    def markup(self, item: Any) -> Any:
        """Markup: overrides the base view (see there).

        Thread safety: ST.
        """
        key, script = item
        source = str(getattr(script, "source", ""))
        # What the script does (its package.json body), not the "npm run x" that launches it.
        body = str(getattr(script, "description", "") or script.command)
        return [
            ("name", f" {key:<24}"),
            ("dim", f" {source:<12} "),
            clean_text(body, 200),
        ]

    @contract(ThreadSafety.ST)
    def keypress(self, size: tuple[int, ...], key: str) -> str | None:
        """Keypress: the urwid widget protocol.

        Thread safety: ST.
        """
        if key == "enter" and self.selected is not None:
            name = self.selected[0]
            self.host.background(lambda: self.host.app.run(name), f"started {name}")
            self.host.switch_to("logs", process_id=None)
            return None
        return super().keypress(size, key)


def _source_rank(script: Any) -> int:
    order = ("package.json", "workspace", "procfile", "makefile", "vscode", "detected")
    source = str(getattr(script, "source", ""))
    return order.index(source) if source in order else len(order)


# ---------------------------------------------------------------------- processes


@contract(ThreadSafety.ST)
class ProcessesView(ListView):
    """Every process with its status, uptime, exit code and URLs.

    Thread safety: ST.
    """

    name = "processes"
    title = "Processes"
    hint = "Enter logs  s stop  r restart  ^R restart all"
    tags = frozenset({"processes", "urls"})
    empty_text = "no processes: pick a script in Scripts (1) or type :run <script>"
    keys = (
        ("↑ ↓", "select"),
        ("Enter", "show the selected process's logs"),
        ("s", "stop the selected process (its whole tree)"),
        ("r", "restart the selected process (starts it if stopped)"),
        ("Ctrl+R", "restart every running process"),
    )

    @contract(ThreadSafety.ST)
    def items(self) -> Sequence[Any]:
        """Items: overrides the base view (see there).

        Thread safety: ST.
        """
        processes = getattr(self.host.app, "processes", None)
        if processes is None:
            return ()
        return latest_runs(processes.get_all_processes())

    @contract(ThreadSafety.ST)
    def key_of(self, item: Any) -> Any:
        """Key of: the name, so the selection stays on a process across its restarts.

        Thread safety: ST.
        """
        return item.name

    def _urls(self) -> dict[str, list[str]]:
        logs = getattr(self.host.app, "logs", None)
        found: dict[str, list[str]] = {}
        if logs is None:
            return found
        for entry in logs.get_urls():
            found.setdefault(entry.process_id, []).append(entry.proxy_url or entry.url)
        return found

    @contract(ThreadSafety.ST)
    def refresh(self) -> None:
        """Refresh: overrides the base view (see there).

        Thread safety: ST.
        """
        self._url_map = self._urls()
        super().refresh()

    @contract(ThreadSafety.ST)
    def markup(self, item: Any) -> Any:
        """Markup: overrides the base view (see there).

        Thread safety: ST.
        """
        attr, symbol = status_symbol(item.status)
        status = str(getattr(item.status, "name", item.status)).lower()
        if item.is_running():
            age = format_duration(_now() - _timestamp(item.start_time))
        elif item.end_time is not None:
            age = f"ran {format_duration(_timestamp(item.end_time) - _timestamp(item.start_time))}"
        else:
            age = ""
        code = "" if item.exit_code is None else f"exit {item.exit_code}"
        urls = " ".join(getattr(self, "_url_map", {}).get(item.id, [])[:2])
        return [
            (attr, f" {symbol} "),
            ("name", f"{item.name:<20} "),
            (attr, f"{status:<8} "),
            ("dim", f"pid {item.pid or '-':<7} {age:<12} {code:<8} "),
            ("url", urls),
        ]

    @contract(ThreadSafety.ST)
    def describe(self, item: Any) -> str:
        """Describe: overrides the base view (see there).

        Thread safety: ST.
        """
        return f"{item.name}: {item.command}  (id {item.id}, cwd {item.cwd})"

    @contract(ThreadSafety.ST)
    def keypress(self, size: tuple[int, ...], key: str) -> str | None:
        """Keypress: the urwid widget protocol.

        Thread safety: ST.
        """
        proc = self.selected
        processes = getattr(self.host.app, "processes", None)
        if key == "ctrl r" and processes is not None:
            running = [p for p in processes.get_all_processes() if p.is_running()]
            for p in running:
                self.host.background(
                    functools.partial(processes.restart_process, p.id), f"restarted {p.name}"
                )
            if not running:
                self.host.status("nothing is running")
            return None
        if proc is None or processes is None:
            return super().keypress(size, key)
        if key == "enter":
            self.host.switch_to("logs", process_id=proc.id, process_name=proc.name)
            return None
        if key == "s":
            if not proc.is_running():
                self.host.status(f"{proc.name} is not running")
            else:
                self.host.status(f"stopping {proc.name}…")
                self.host.background(
                    lambda: processes.stop_process(proc.id), f"stopped {proc.name}"
                )
            return None
        if key == "r":
            self.host.status(f"restarting {proc.name}…")
            self.host.background(
                lambda: processes.restart_process(proc.id), f"restarted {proc.name}"
            )
            return None
        return super().keypress(size, key)


@contract(ThreadSafety.TS, guarantees="pure")
def latest_runs(processes: Iterable[Any]) -> list[Any]:
    """One row per process name: its running instances, or else its latest run.

    Thread safety: TS. Pure. A restart creates a new process; the run it replaced is history
    and would push the list around. Names keep the order in which they first started, so
    rows do not jump when a process restarts or exits.
    """
    first_start: dict[str, float] = {}
    by_name: dict[str, list[Any]] = {}
    for proc in processes:
        started = _timestamp(proc.start_time)
        name = str(proc.name)
        first_start[name] = min(first_start.get(name, started), started)
        by_name.setdefault(name, []).append(proc)
    rows: list[Any] = []
    for name in sorted(by_name, key=lambda n: (first_start[n], n)):
        runs = sorted(by_name[name], key=lambda p: _timestamp(p.start_time))
        running = [p for p in runs if p.is_running()]
        rows += running or runs[-1:]
    return rows


def _timestamp(when: dt.datetime | None) -> float:
    return when.timestamp() if when is not None else 0.0


def _now() -> float:
    return dt.datetime.now(dt.UTC).timestamp()


# ---------------------------------------------------------------------- errors


@contract(ThreadSafety.TS, guarantees="best effort; never raises")
def copy_to_clipboard(text: str, write_terminal: Any = None) -> list[str]:
    """Copy ``text`` via OSC 52 (through ``write_terminal``) and a system tool when present.

    Thread safety: TS. Returns the names of the methods that were used.
    """
    used: list[str] = []
    if write_terminal is not None:
        payload = base64.b64encode(text.encode("utf-8", "replace")).decode("ascii")
        try:
            write_terminal(f"\x1b]52;c;{payload}\x07")
            used.append("OSC 52")
        except Exception as exc:
            _log.debug("OSC 52 copy failed: %s", exc)
    for tool in (
        ["wl-copy"],
        ["xclip", "-selection", "clipboard"],
        ["xsel", "--clipboard", "--input"],
        ["pbcopy"],
    ):
        if shutil.which(tool[0]) is None:
            continue
        try:
            subprocess.run(tool, input=text.encode(), timeout=2, check=True, capture_output=True)
            used.append(tool[0])
            break
        except (OSError, subprocess.SubprocessError):
            continue
    return used


@contract(ThreadSafety.ST)
class ErrorsView(ListView):
    """Error groups (an error with its stack), newest first, with a detail pane.

    Thread safety: ST.
    """

    name = "errors"
    title = "Errors"
    hint = "c copy  Enter logs"
    tags = frozenset({"errors"})
    empty_text = "no errors detected"
    keys = (
        ("↑ ↓", "select"),
        ("c", "copy the selected error with its stack (OSC 52 and a clipboard tool)"),
        ("Enter", "show the logs of the process that raised it"),
    )

    def __init__(self, host: Host) -> None:
        super().__init__(host, detail=True)

    @contract(ThreadSafety.ST)
    def items(self) -> Sequence[Any]:
        """Items: overrides the base view (see there).

        Thread safety: ST.
        """
        logs = getattr(self.host.app, "logs", None)
        if logs is None:
            return ()
        groups = list(logs.get_error_groups())
        groups.sort(key=lambda g: _timestamp(g.last_seen), reverse=True)
        return groups

    @contract(ThreadSafety.ST)
    def markup(self, item: Any) -> Any:
        """Markup: overrides the base view (see there).

        Thread safety: ST.
        """
        count = f"x{item.count}" if item.count > 1 else ""
        return [
            ("time", f" {local_time(item.last_seen)} "),
            ("name", f"{str(item.process_name)[:14]:<14} "),
            ("error", f"{item.kind:<16} "),
            clean_text(str(item.message), 300),
            ("dim", f"  {count}"),
        ]

    @contract(ThreadSafety.ST)
    def describe(self, item: Any) -> str:
        """Describe: overrides the base view (see there).

        Thread safety: ST.
        """
        seen = "once" if item.count == 1 else f"{item.count} times"
        head = f"{item.kind} in {item.process_name} · seen {seen} · first {local_time(item.first_seen)}"
        lines = [clean_text(str(line), 500) for line in item.lines[:40]]
        more = len(item.lines) - 40
        if more > 0:
            lines.append(f"... and {more} more lines")
        return "\n".join([head, *lines])

    @contract(ThreadSafety.ST)
    def keypress(self, size: tuple[int, ...], key: str) -> str | None:
        """Keypress: the urwid widget protocol.

        Thread safety: ST.
        """
        item = self.selected
        if key == "c" and item is not None:
            text = "\n".join(str(line) for line in item.lines) or str(item.message)
            used = copy_to_clipboard(text, self.host.write_terminal)
            self.host.status(f"copied the error ({', '.join(used) or 'no clipboard found'})")
            return None
        if key == "enter" and item is not None:
            self.host.switch_to("logs", process_id=item.process_id, process_name=item.process_name)
            return None
        return super().keypress(size, key)


# ---------------------------------------------------------------------- URLs


@contract(ThreadSafety.ST)
class URLsView(ListView):
    """Detected URLs and the proxy URL that fronts each.

    Thread safety: ST.
    """

    name = "urls"
    title = "URLs"
    hint = "Enter open in browser"
    tags = frozenset({"urls"})
    empty_text = "no URLs seen in the logs yet"
    keys = (("↑ ↓", "select"), ("Enter", "open the URL (through the proxy) in the browser"))

    @contract(ThreadSafety.ST)
    def items(self) -> Sequence[Any]:
        """Items: overrides the base view (see there).

        Thread safety: ST.
        """
        logs = getattr(self.host.app, "logs", None)
        if logs is None:
            return ()
        return sorted(logs.get_urls(), key=lambda u: (str(u.process_name), str(u.url)))

    @contract(ThreadSafety.ST)
    def key_of(self, item: Any) -> Any:
        """Key of: overrides the base view (see there).

        Thread safety: ST.
        """
        return item.url

    @contract(ThreadSafety.ST)
    def markup(self, item: Any) -> Any:
        """Markup: overrides the base view (see there).

        Thread safety: ST.
        """
        proxy = [("dim", " → "), ("url", str(item.proxy_url))] if item.proxy_url else []
        return [("name", f" {str(item.process_name)[:14]:<14} "), ("url", str(item.url)), *proxy]

    @contract(ThreadSafety.ST)
    def keypress(self, size: tuple[int, ...], key: str) -> str | None:
        """Keypress: the urwid widget protocol.

        Thread safety: ST.
        """
        item = self.selected
        if key == "enter" and item is not None:
            target = str(item.proxy_url or item.url)
            if not _graphical_session():
                # A console browser (lynx, w3m) would take over this very terminal.
                used = copy_to_clipboard(target, self.host.write_terminal)
                copied = f"; copied it ({', '.join(used)})" if used else ""
                self.host.status(f"no graphical browser here: open {target} yourself{copied}")
                return None
            self.host.background(lambda: _open_browser(target), f"opened {target}")
            return None
        return super().keypress(size, key)


def _graphical_session() -> bool:
    """Whether a browser can open without taking over the terminal brummer draws on."""
    if sys.platform in ("darwin", "win32"):
        return True
    return any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"))


def _open_browser(url: str) -> None:
    if not webbrowser.open(url):
        raise RuntimeError(f"no browser could open {url}; open it yourself")


# ---------------------------------------------------------------------- web


_IMAGE = re.compile(r"\.(png|jpe?g|gif|svg|webp|ico|avif)(\?|$)", re.IGNORECASE)
_ASSET = re.compile(r"\.(js|css|map|woff2?|ttf|json|xml|txt)(\?|$)", re.IGNORECASE)
WEB_FILTERS = ("all", "pages", "api", "images")


def _size(size: int) -> str:
    return f"{size}B" if size < 1024 else f"{size / 1024:.1f}kB"


def _request_kind(request: Any) -> str:
    url = str(getattr(request, "url", ""))
    path = "/" + url.split("://", 1)[-1].partition("/")[2]
    ctype = str(getattr(request, "content_type", "") or "")
    if _IMAGE.search(path) or ctype.startswith("image/"):
        return "images"
    if (
        "/api/" in path
        or "/graphql" in path
        or "json" in ctype
        or getattr(request, "is_xhr", False)
    ):
        return "api"
    if "html" in ctype or path.endswith(("/", ".html")) or not _ASSET.search(path):
        return "pages"
    return "other"


@contract(ThreadSafety.ST)
class WebView(ListView):
    """Requests that went through the proxy, with a detail pane (and telemetry when linked).

    Thread safety: ST.
    """

    name = "web"
    title = "Web"
    hint = "f filter (all/pages/api/images)"
    tags = frozenset({"web"})
    empty_text = "no proxied requests yet (open a URL from the URLs view)"
    keys = (("↑ ↓", "select"), ("f", "filter: all → pages → api → images"))

    def __init__(self, host: Host) -> None:
        self.kind = "all"
        super().__init__(host, detail=True)

    @contract(ThreadSafety.ST)
    def items(self) -> Sequence[Any]:
        """Items: overrides the base view (see there).

        Thread safety: ST.
        """
        proxy = getattr(self.host.app, "proxy", None)
        if proxy is None:
            return ()
        requests = list(proxy.get_requests())
        if self.kind != "all":
            requests = [r for r in requests if _request_kind(r) == self.kind]
        return list(reversed(requests))

    @contract(ThreadSafety.ST)
    def heading(self, count: int) -> str:
        """Heading: overrides the base view (see there).

        Thread safety: ST.
        """
        proxy = getattr(self.host.app, "proxy", None)
        state = "proxy off" if proxy is None else f"filter {self.kind}"
        return f"{super().heading(count)} · {state}"

    @contract(ThreadSafety.ST)
    def markup(self, item: Any) -> Any:
        """Markup: overrides the base view (see there).

        Thread safety: ST.
        """
        status = int(getattr(item, "status", 0) or 0)
        failed = bool(str(getattr(item, "error", "") or ""))
        attr = "error" if failed or status >= 400 or status == 0 else "success"
        duration = float(getattr(item, "duration", 0.0) or 0.0)
        size = int(getattr(item, "response_size", 0) or 0)
        return [
            ("time", f" {local_time(getattr(item, 'timestamp', None))} "),
            (attr, f"{status:>3} "),
            ("name", f"{getattr(item, 'method', ''):<6} "),
            clean_text(str(getattr(item, "url", "")), 300),
            (
                "dim",
                f"  {_size(size)} {duration * 1000:.0f}ms  {getattr(item, 'process_name', '')}",
            ),
        ]

    @contract(ThreadSafety.ST)
    def describe(self, item: Any) -> str:
        """Describe: overrides the base view (see there).

        Thread safety: ST.
        """
        fields = (
            ("method", "method"),
            ("url", "url"),
            ("status", "status"),
            ("content_type", "content type"),
            ("duration", "duration"),
            ("process_name", "process"),
            ("request_size", "request bytes"),
            ("response_size", "response bytes"),
            ("is_xhr", "XHR/fetch"),
            ("error", "error"),
        )
        lines = []
        for field, label in fields:
            value = getattr(item, field, None)
            if field == "duration" and isinstance(value, (int, float)):
                value = f"{value * 1000:.1f} ms"
            if value not in (None, "", False):
                lines.append(f"{label}: {value}")
        lines += self._telemetry(str(getattr(item, "process_name", "")))
        return "\n".join(lines)

    def _telemetry(self, process_name: str) -> list[str]:
        telemetry = getattr(getattr(self.host.app, "proxy", None), "telemetry", None)
        if telemetry is None or not process_name:
            return []
        try:
            sessions = telemetry.get_sessions_for_process(process_name)
        except Exception:
            return []
        if not sessions:
            return ["telemetry: no browser session yet (open the page through the proxy)"]
        latest = max(sessions, key=lambda s: _timestamp(s.last_activity))
        return [
            f"telemetry: {len(sessions)} browser session(s); latest {latest.url}",
            f"  {len(latest.events)} events, {latest.error_count} errors, "
            f"last activity {local_time(latest.last_activity)}",
        ]

    @contract(ThreadSafety.ST)
    def keypress(self, size: tuple[int, ...], key: str) -> str | None:
        """Keypress: the urwid widget protocol.

        Thread safety: ST.
        """
        if key == "f":
            self.kind = WEB_FILTERS[(WEB_FILTERS.index(self.kind) + 1) % len(WEB_FILTERS)]
            self.refresh()
            return None
        return super().keypress(size, key)

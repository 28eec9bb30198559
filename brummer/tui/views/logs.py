"""The Logs view: every process or one, ANSI colours, follow mode, search and filters.

Only the lines on screen are drawn (:class:`~brummer.tui.views.logpane.LogPane`), so a store of
100,000 lines costs nothing to scroll. Refreshes are incremental: the store's cursor reads
hand over only what is new, which is filtered and appended (consecutive repeats collapse into
one line with a count).

Thread safety: ST. Loop thread only.
"""

from __future__ import annotations

import contextlib
import heapq
import re
from typing import Any

import urwid

from brummer.contracts import ThreadSafety, contract
from brummer.tui.views.base import Host, View, local_time
from brummer.tui.views.logpane import HIGH_PRIORITY, LogLine, LogPane, is_high_priority

__all__ = ["HIGH_PRIORITY", "LogsView"]


@contract(ThreadSafety.ST)
class LogsView(View):
    """Log lines of all processes or one, following new lines until you scroll up.

    Thread safety: ST. Loop thread only.
    """

    name = "logs"
    title = "Logs"
    tags = frozenset({"logs"})
    hint = "/ search  n N matches  p priority  x clear  End follow"
    keys = (
        ("↑ ↓ PgUp PgDn", "scroll (scrolling up pauses follow)"),
        ("Home / End", "first line / last line and follow again"),
        ("/text", "search; n next match, N previous match"),
        ("p", "only high-priority lines (errors, failures)"),
        ("x", "clear the shown logs"),
        ("Esc", "back to all processes, drop filters and search"),
        (":show RE", "only lines matching RE (:hide RE drops them)"),
    )

    def __init__(self, host: Host) -> None:
        self.pane = LogPane()
        self.info = urwid.Text("", wrap="clip")
        self.process_id: str | None = None
        self.process_name = ""
        self.high_only = False
        self.show_re: re.Pattern[str] | None = None
        self.hide_re: re.Pattern[str] | None = None
        self.search_text = ""
        self._last_id: Any = None  # id of the newest entry seen by the last refresh
        self._pending_rebuild: list[Any] | None = None
        self._cap = int(getattr(getattr(host.app, "config", None), "log_max_entries", 10_000))
        body: urwid.Widget = urwid.Frame(self.pane, header=urwid.AttrMap(self.info, "dim"))
        super().__init__(host, body)

    # ------------------------------------------------------------------ data

    def _snapshot(self) -> list[Any]:
        logs = getattr(self.host.app, "logs", None)
        if logs is None:
            return []
        if self.process_id is None:
            entries: list[Any] = logs.get_all()  # a fresh list already: no second copy
            return entries
        runs: list[list[Any]] = [logs.get_by_process(run) for run in self._runs()]
        if len(runs) == 1:
            return runs[0]
        return list(heapq.merge(*runs, key=lambda entry: entry.seq))

    def _runs(self) -> list[str]:
        """Ids of every run of the shown process: a restart is a new process with the same
        name, and its earlier output (the crash that caused the restart) belongs here too."""
        assert self.process_id is not None
        processes: Any = getattr(self.host.app, "processes", None)
        ids: list[str] = []
        with contextlib.suppress(Exception):
            ids = [p.id for p in processes.get_all_processes() if p.name == self.process_name]
        return ids if self.process_id in ids else [*ids, self.process_id]

    def _read_new(self) -> list[Any] | None:
        """Entries added since the last refresh; None when the view must be rebuilt.

        Takes one snapshot of the store (a C-level list copy, about 0.5 ms for 100,000
        lines) and finds the newest entry seen last time by scanning back from the end, so
        the work done per refresh is what is new. An entry no longer there means the store
        was cleared (here or elsewhere): the view is rebuilt from the snapshot.
        """
        entries = self._snapshot()
        start = self._new_from(entries)
        self._last_id = entries[-1].id if entries else None
        if start is None:
            self._pending_rebuild = entries
            return None
        return entries[start:]

    def _passes(self, line: LogLine) -> bool:
        entry = line.entry
        if self.high_only and not is_high_priority(entry):
            return False
        if self.show_re is not None and not self.show_re.search(line.plain):
            return False
        return not (self.hide_re is not None and self.hide_re.search(line.plain))

    @contract(ThreadSafety.ST)
    def refresh(self) -> None:
        """Append what is new in the store; rebuild when the store was cleared.

        Thread safety: ST.
        """
        new = self._read_new()
        if new is None:
            self.pane.lines = []
            new = self._pending_rebuild or []
            self._pending_rebuild = None
        lines = self.pane.lines
        added = False
        for entry in new:
            line = LogLine(entry)
            if not self._passes(line):
                continue
            if lines:
                last = lines[-1]
                same = (
                    last.entry.process_id == entry.process_id
                    and last.entry.content == entry.content
                    and last.entry.is_error == entry.is_error
                )
                if same:
                    last.count += 1
                    added = True
                    continue
            lines.append(line)
            added = True
        if len(lines) > self._cap + self._cap // 10:
            cut = len(lines) - self._cap
            del lines[:cut]
            self.pane.cursor = max(0, self.pane.cursor - cut)
            self.pane.top = max(0, self.pane.top - cut)
        if self.follow and lines:
            self.pane.cursor = len(lines) - 1
        if added or not lines:
            self.pane.changed()
        self._update_info()

    def _new_from(self, entries: list[Any]) -> int | None:
        """Index of the first entry not seen yet; None when the view must be rebuilt."""
        if self._last_id is None:
            return 0 if not self.pane.lines else None
        if entries and entries[-1].id == self._last_id:
            return len(entries)
        for index in range(len(entries) - 1, -1, -1):
            if entries[index].id == self._last_id:
                return index + 1
        return None

    @contract(ThreadSafety.ST)
    def export_lines(self) -> list[str]:
        """The shown lines as plain text (ANSI removed), for ``:save``.

        Thread safety: ST.
        """
        out = []
        for line in self.pane.lines:
            entry = line.entry
            repeat = f" (x{line.count})" if line.count > 1 else ""
            out.append(f"{local_time(entry.timestamp)} {entry.process_name} | {line.plain}{repeat}")
        return out

    @contract(ThreadSafety.ST)
    def reload(self) -> None:
        """Re-read everything from the store (after a clear made elsewhere).

        Thread safety: ST.
        """
        self._rebuild()

    def _rebuild(self) -> None:
        self._last_id = None
        self.pane.lines = []
        self.pane.cursor = self.pane.top = 0
        self.pane.changed()
        self.refresh()

    @property
    @contract(ThreadSafety.ST)
    def follow(self) -> bool:
        """Whether the view follows new lines (False while scrolled up).

        Thread safety: ST.
        """
        return self.pane.follow

    @follow.setter
    def follow(self, value: bool) -> None:
        self.pane.follow = value
        self.pane.changed()

    def _focus(self, position: int) -> None:
        if not self.pane.lines:
            return
        self.pane.set_cursor(position)
        self.pane.top = min(self.pane.top, self.pane.cursor)

    def _update_info(self) -> None:
        who = f"process {self.process_name}" if self.process_id else "all processes"
        parts = [f" Logs: {who}", "following" if self.follow else "paused (End resumes)"]
        if self.high_only:
            parts.append("high priority only")
        if self.show_re is not None:
            parts.append(f"show /{self.show_re.pattern}/")
        if self.hide_re is not None:
            parts.append(f"hide /{self.hide_re.pattern}/")
        if self.search_text:
            parts.append(f"search {self.search_text!r}")
        parts.append(f"{len(self.pane.lines)} lines")
        self.info.set_text(" · ".join(parts))

    # ------------------------------------------------------------------ commands

    @contract(ThreadSafety.ST)
    def on_show(self, **options: Any) -> None:
        """On show: overrides the base view (see there).

        Thread safety: ST.
        """
        if "process_id" in options:
            pid = options.get("process_id")
            if pid != self.process_id:
                self.process_id = pid
                self.process_name = str(options.get("process_name") or pid or "")
                self.follow = True
                self._rebuild()
                return
        self.refresh()

    @contract(ThreadSafety.ST)
    def set_show(self, pattern: str | None) -> None:
        """Keep only lines matching ``pattern`` (None: keep all).

        Thread safety: ST.

        Raises:
            re.error: the pattern does not compile (nothing is changed).
        """
        self.show_re = re.compile(pattern, re.IGNORECASE) if pattern else None
        self._rebuild()

    @contract(ThreadSafety.ST)
    def set_hide(self, pattern: str | None) -> None:
        """Drop lines matching ``pattern`` (None: drop none).

        Thread safety: ST.

        Raises:
            re.error: the pattern does not compile (nothing is changed).
        """
        self.hide_re = re.compile(pattern, re.IGNORECASE) if pattern else None
        self._rebuild()

    @contract(ThreadSafety.ST)
    def set_high_only(self, enabled: bool) -> None:
        """Show only high-priority lines.

        Thread safety: ST.
        """
        self.high_only = enabled
        self._rebuild()

    @contract(ThreadSafety.ST)
    def clear(self) -> None:
        """Clear the shown logs in the store (one process's, or all).

        Thread safety: ST.
        """
        logs = getattr(self.host.app, "logs", None)
        if logs is not None:
            if self.process_id is None:
                logs.clear()
            else:
                for run in self._runs():
                    logs.clear_for_process(run)
        self._rebuild()
        self.host.status("logs cleared")

    @contract(ThreadSafety.ST)
    def search(self, text: str) -> None:
        """Search the shown lines for ``text`` and jump to the nearest match above.

        Thread safety: ST.
        """
        self.search_text = text
        self.pane.search = re.compile(re.escape(text), re.IGNORECASE) if text else None
        self.pane.changed()
        if text and not self.find(forward=False, include_focus=True):
            self.host.status(f"no line matches {text!r}", error=True)
        self._update_info()

    @contract(ThreadSafety.ST)
    def find(self, *, forward: bool, include_focus: bool = False) -> bool:
        """Move to the next (or previous) line matching the search; False when none.

        Thread safety: ST.
        """
        pattern = self.pane.search
        lines = self.pane.lines
        if pattern is None or not lines:
            return False
        start = self.pane.cursor
        if forward:
            order = range(start if include_focus else start + 1, len(lines))
        else:
            order = range(start if include_focus else start - 1, -1, -1)
        for index in order:
            if pattern.search(lines[index].plain):
                self.follow = False
                self._focus(index)
                self._update_info()
                return True
        return False

    # ------------------------------------------------------------------ input

    @contract(ThreadSafety.ST)
    def keypress(self, size: tuple[int, ...], key: str) -> str | None:
        """Keypress: the urwid widget protocol.

        Thread safety: ST.
        """
        if key in ("n", "N"):
            if not self.find(forward=key == "n"):
                self.host.status("no more matches", error=True)
            return None
        if key == "p":
            self.set_high_only(not self.high_only)
            return None
        if key == "x":
            self.clear()
            return None
        if key == "home":
            self.follow = False
            self._focus(0)
            self._update_info()
            return None
        if key == "end":
            self.follow = True
            self._focus(len(self.pane.lines) - 1)
            self._update_info()
            return None
        if key == "esc" and (
            self.process_id or self.search_text or self.show_re or self.hide_re or self.high_only
        ):
            self.process_id = None
            self.search_text = ""
            self.pane.search = None
            self.show_re = self.hide_re = None
            self.high_only = False
            self.follow = True
            self._rebuild()
            return None
        result = super().keypress(size, key)
        if key in ("up", "page up", "down", "page down"):
            self._update_info()
        return result

    @contract(ThreadSafety.ST)
    def mouse_event(
        self, size: tuple[int, ...], event: str, button: int, col: int, row: int, focus: bool
    ) -> bool | None:
        """Mouse event: the urwid widget protocol.

        Thread safety: ST.
        """
        handled = bool(super().mouse_event(size, event, button, col, row, focus))
        self._update_info()
        return handled

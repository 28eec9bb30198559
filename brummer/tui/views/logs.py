"""The Logs view: every process or one, ANSI colours, follow mode, search and filters.

Only the rows on screen are ever turned into widgets: :class:`LogWalker` hands the ListBox
one widget per position on demand, so a store of 100,000 lines costs nothing to scroll.
Refreshes are incremental: new entries are found from the end of the store's snapshot and
appended (consecutive repeats collapse into one row with a count).

Thread safety: ST. Loop thread only.
"""

from __future__ import annotations

import re
from typing import Any

import urwid

from brummer.contracts import ThreadSafety, contract
from brummer.tui.palette import ansi_markup, clean_text
from brummer.tui.views.base import Host, View, local_time

__all__ = ["HIGH_PRIORITY", "LogWalker", "LogsView"]

HIGH_PRIORITY = 50  # entries with priority above this (or level ERROR+) pass the `p` filter
NAME_WIDTH = 12
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CACHE_LIMIT = 512
_BATCH = 10_000


def _drain(read: Any, advance: Any) -> list[Any]:
    """Call ``read`` until it returns a short batch, advancing the cursor after each."""
    entries: list[Any] = []
    while True:
        batch = read()
        entries += batch
        if batch:
            advance(batch)
        if len(batch) < _BATCH:
            return entries


class _Line:
    __slots__ = ("count", "entry", "plain")

    def __init__(self, entry: Any) -> None:
        self.entry = entry
        self.count = 1
        self.plain = _ANSI.sub("", str(entry.content))


@contract(ThreadSafety.ST)
class LogWalker(urwid.ListWalker):  # type: ignore[type-arg]
    """A ListBox body over a list of log rows that builds widgets only for visible positions.

    Thread safety: ST. Loop thread only.
    """

    def __init__(self) -> None:
        self.lines: list[_Line] = []
        self.focus = 0
        self.search: re.Pattern[str] | None = None
        self._cache: dict[int, tuple[int, int, urwid.Widget]] = {}

    def __getitem__(self, position: int) -> urwid.Widget:
        if not 0 <= position < len(self.lines):
            raise IndexError(position)
        line = self.lines[position]
        cached = self._cache.get(position)
        if cached is not None and cached[0] == id(line) and cached[1] == line.count:
            return cached[2]
        widget = self._widget(line)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[position] = (id(line), line.count, widget)
        return widget

    def _widget(self, line: _Line) -> urwid.Widget:
        entry = line.entry
        level = int(getattr(entry, "level", 1))
        default = "error" if entry.is_error or level >= 3 else ("warning" if level == 2 else None)
        name = str(entry.process_name)[:NAME_WIDTH].ljust(NAME_WIDTH)
        marker: Any = " "
        if self.search is not None and self.search.search(line.plain):
            marker = ("match", "»")
        markup: list[Any] = [
            marker,
            ("time", local_time(entry.timestamp)),
            " ",
            ("name", name),
            ("dim", "│ "),
            *ansi_markup(clean_text(str(entry.content)), default),
        ]
        if line.count > 1:
            markup.append(("dim", f"  (x{line.count})"))
        return urwid.AttrMap(urwid.Text(markup, wrap="any"), None, focus_map={None: "focus"})

    @contract(ThreadSafety.ST)
    def invalidate(self) -> None:
        """Forget cached widgets (after a filter or search change).

        Thread safety: ST.
        """
        self._cache.clear()
        self._modified()

    @contract(ThreadSafety.ST)
    def next_position(self, position: int) -> int:
        """Next position (urwid widget protocol).

        Thread safety: ST.
        """
        if position + 1 >= len(self.lines):
            raise IndexError(position)
        return position + 1

    @contract(ThreadSafety.ST)
    def prev_position(self, position: int) -> int:
        """Prev position (urwid widget protocol).

        Thread safety: ST.
        """
        if position <= 0:
            raise IndexError(position)
        return position - 1

    @contract(ThreadSafety.ST)
    def set_focus(self, position: int) -> None:
        """Set focus (urwid widget protocol).

        Thread safety: ST.
        """
        self.focus = max(0, min(position, len(self.lines) - 1))
        self._modified()

    @contract(ThreadSafety.ST)
    def positions(self, reverse: bool = False) -> range:
        """Positions (urwid widget protocol).

        Thread safety: ST.
        """
        count = len(self.lines)
        return range(count - 1, -1, -1) if reverse else range(count)


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
        self.walker = LogWalker()
        self.listbox = urwid.ListBox(self.walker)
        self.info = urwid.Text("", wrap="clip")
        self.process_id: str | None = None
        self.process_name = ""
        self.follow = True
        self.high_only = False
        self.show_re: re.Pattern[str] | None = None
        self.hide_re: re.Pattern[str] | None = None
        self.search_text = ""
        self._last_id: Any = None  # snapshot mode: id of the newest entry seen
        self._cursor: int | None = None  # cursor mode: store-wide position read up to
        self._last_seq: int | None = None  # cursor mode, one process: its newest seq seen
        self._pending_rebuild: list[Any] | None = None
        self._cap = int(getattr(getattr(host.app, "config", None), "log_max_entries", 10_000))
        body: urwid.Widget = urwid.Frame(self.listbox, header=urwid.AttrMap(self.info, "dim"))
        super().__init__(host, body)

    # ------------------------------------------------------------------ data

    def _snapshot(self) -> list[Any]:
        logs = getattr(self.host.app, "logs", None)
        if logs is None:
            return []
        if self.process_id is None:
            return list(logs.get_all())
        return list(logs.get_by_process(self.process_id))

    def _read_new(self) -> list[Any] | None:
        """Entries added since the last refresh; None when the view must be rebuilt.

        Uses the store's cursor reads (``cursor``/``get_since``) when it has them, so a
        refresh costs what is new, not what is stored; else diffs a full snapshot.
        """
        logs = getattr(self.host.app, "logs", None)
        if logs is None:
            return []
        if not hasattr(logs, "get_since"):
            entries = self._snapshot()
            start = self._new_from(entries)
            self._last_id = entries[-1].id if entries else None
            if start is None:
                self._pending_rebuild = entries
                return None
            return entries[start:]
        cursor = logs.cursor()
        if self._cursor is not None and cursor < self._cursor:
            self._cursor = None
            self._last_seq = None
            self._pending_rebuild = None
            return None
        if self.process_id is not None:
            if self._last_seq is None:
                entries = list(logs.get_by_process(self.process_id))
            else:
                entries = _drain(
                    lambda: logs.get_since(
                        self._last_seq, process_id=self.process_id, limit=_BATCH
                    ),
                    lambda batch: setattr(self, "_last_seq", batch[-1].seq),
                )
            if entries:
                self._last_seq = entries[-1].seq
            self._cursor = cursor
            return entries
        if self._cursor is None:
            self._cursor = 0
        entries = []
        while True:
            batch = logs.get_since(self._cursor, limit=_BATCH)
            entries += batch
            self._cursor += len(batch)
            if len(batch) < _BATCH:
                break
        return entries

    def _passes(self, line: _Line) -> bool:
        entry = line.entry
        if self.high_only and not (
            entry.is_error
            or int(getattr(entry, "level", 1)) >= 3
            or int(getattr(entry, "priority", 0)) > HIGH_PRIORITY
        ):
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
            self.walker.lines = []
            self.walker.invalidate()
            new = self._pending_rebuild if self._pending_rebuild is not None else []
            self._pending_rebuild = None
            if not new and hasattr(getattr(self.host.app, "logs", None), "get_since"):
                new = self._read_new() or []
        lines = self.walker.lines
        added = False
        for entry in new:
            line = _Line(entry)
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
            self.walker.focus = max(0, self.walker.focus - cut)
            self.walker.invalidate()
        if added or not lines:
            if self.follow and lines:
                self._focus(len(lines) - 1, bottom=True)
            else:
                self.walker._modified()
        self._update_info()

    def _new_from(self, entries: list[Any]) -> int | None:
        """Index of the first entry not seen yet; None when the view must be rebuilt."""
        if self._last_id is None:
            return 0 if not self.walker.lines else None
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
        for line in self.walker.lines:
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
        self._cursor = None
        self._last_seq = None
        self.walker.lines = []
        self.walker.focus = 0
        self.walker.invalidate()
        self.refresh()

    def _focus(self, position: int, *, bottom: bool = False) -> None:
        if not self.walker.lines:
            return
        position = max(0, min(position, len(self.walker.lines) - 1))
        self.listbox.set_focus(position, coming_from="above" if bottom else None)
        self.walker.focus = position

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
        parts.append(f"{len(self.walker.lines)} lines")
        self.info.set_text(" · ".join(parts))

    # ------------------------------------------------------------------ commands

    @contract(ThreadSafety.ST)
    def on_show(self, **options: Any) -> None:
        """On show (urwid widget protocol).

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
                logs.clear_for_process(self.process_id)
        self._rebuild()
        self.host.status("logs cleared")

    @contract(ThreadSafety.ST)
    def search(self, text: str) -> None:
        """Search (urwid widget protocol).

        Thread safety: ST.
        """
        self.search_text = text
        self.walker.search = re.compile(re.escape(text), re.IGNORECASE) if text else None
        self.walker.invalidate()
        if text and not self.find(forward=False, include_focus=True):
            self.host.status(f"no line matches {text!r}", error=True)
        self._update_info()

    @contract(ThreadSafety.ST)
    def find(self, *, forward: bool, include_focus: bool = False) -> bool:
        """Move to the next (or previous) line matching the search; False when none.

        Thread safety: ST.
        """
        pattern = self.walker.search
        lines = self.walker.lines
        if pattern is None or not lines:
            return False
        start = self.walker.focus
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
        """Keypress (urwid widget protocol).

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
            self._focus(len(self.walker.lines) - 1, bottom=True)
            self._update_info()
            return None
        if key == "esc" and (
            self.process_id or self.search_text or self.show_re or self.hide_re or self.high_only
        ):
            self.process_id = None
            self.search_text = ""
            self.walker.search = None
            self.show_re = self.hide_re = None
            self.high_only = False
            self.follow = True
            self._rebuild()
            return None
        result = super().keypress(size, key)
        if key in ("up", "page up", "down", "page down"):
            self._after_scroll()
        return result

    def _after_scroll(self) -> None:
        at_bottom = self.walker.focus >= len(self.walker.lines) - 1
        self.follow = at_bottom
        self._update_info()

    @contract(ThreadSafety.ST)
    def mouse_event(
        self, size: tuple[int, ...], event: str, button: int, col: int, row: int, focus: bool
    ) -> bool | None:
        """Mouse event (urwid widget protocol).

        Thread safety: ST.
        """
        if event == "mouse press" and button in (4, 5):
            step = -3 if button == 4 else 3
            self._focus(self.walker.focus + step)
            self._after_scroll()
            return True
        return bool(super().mouse_event(size, event, button, col, row, focus))

"""A log pane that draws only the lines on screen, straight into a text canvas.

urwid's general text layout costs about 0.2 ms per line; at 10,000 lines a second every row
on screen is new at every frame, so the Logs view cannot afford a widget per line. The pane
keeps the filtered lines in a list and, per frame, lays out only the window it shows: each
line's colour runs (from its ANSI codes) are cut into rows of the screen width and written
into one ``TextCanvas``. A line's rows are cached for its width, so scrolling through 100,000
stored lines costs the same as showing the last 40.

Thread safety: ST. Loop thread only.
"""

from __future__ import annotations

import re
from typing import Any

import urwid
from urwid.str_util import calc_text_pos, calc_width

from brummer.contracts import STGuard, ThreadSafety, contract
from brummer.tui.palette import ansi_markup, clean_text, name_attr
from brummer.tui.views.base import local_time

__all__ = ["LogLine", "LogPane", "is_high_priority", "level_attr"]

NAME_WIDTH = 12
TEXT_COLUMN = 1 + 8 + 1 + NAME_WIDTH + 2  # marker, HH:MM:SS, space, name, "| "
MAX_PLAIN = 65_536
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# LogLevel values (brummer.logs.LogLevel is an IntEnum with the stdlib logging numbers)
_WARNING, _ERROR = 30, 40
HIGH_PRIORITY = 50  # entries with a priority above this pass the `p` filter


@contract(ThreadSafety.TS, guarantees="pure")
def level_attr(entry: Any) -> str | None:
    """The palette attribute of an entry's uncoloured text: by the level found in its content.

    Thread safety: TS. Pure. Lines on stderr are not red by themselves: many tools write
    progress and banners there; the store's level says what is an error or a warning.
    """
    level = int(getattr(entry, "level", 0))
    if level >= _ERROR:
        return "error"
    if level >= _WARNING:
        return "warning"
    return None


@contract(ThreadSafety.TS, guarantees="pure")
def is_high_priority(entry: Any) -> bool:
    """Whether ``entry`` passes the Logs view's ``p`` filter: warnings, errors, failures.

    Thread safety: TS. Pure.
    """
    return (
        int(getattr(entry, "level", 0)) >= _WARNING
        or int(getattr(entry, "priority", 0)) > HIGH_PRIORITY
    )


_Row = tuple[bytes, list[tuple[Any, int]]]
_Shown = list[tuple[int, _Row]]  # (line index, row) for each row on screen


@contract(ThreadSafety.ST)
class LogLine:
    """One shown log line: the entry, how often it repeated, its plain text and cached rows.

    Thread safety: ST.
    """

    __slots__ = ("_rows", "count", "entry", "plain")

    def __init__(self, entry: Any) -> None:
        self.entry = entry
        self.count = 1
        # Search and filters look at the first MAX_PLAIN characters: a 10 MB line costs once.
        self.plain = _ANSI.sub("", str(entry.content)[:MAX_PLAIN])
        self._rows: tuple[Any, list[_Row]] | None = None

    def _segments(self, search: re.Pattern[str] | None) -> list[tuple[Any, str]]:
        entry = self.entry
        default = level_attr(entry)
        name = str(entry.process_name)[:NAME_WIDTH].ljust(NAME_WIDTH)
        content: list[tuple[Any, str]] = [
            item if isinstance(item, tuple) else (None, item)
            for item in ansi_markup(clean_text(str(entry.content)), default)
        ]
        if search is not None:
            content = _highlight(content, search)
        segments: list[tuple[Any, str]] = [
            ("match", "»") if search is not None else (None, " "),
            ("time", local_time(entry.timestamp)),
            (None, " "),
            (name_attr(str(entry.process_name)), name),
            ("dim", "| "),
        ]
        segments += content
        if self.count > 1:
            segments.append(("dim", f"  (x{self.count})"))
        return segments

    @contract(ThreadSafety.ST)
    def rows(self, cols: int, search: re.Pattern[str] | None, wrap: bool) -> list[_Row]:
        """This line laid out in rows of ``cols`` columns (cached per width and search).

        Thread safety: ST.
        """
        marker = search is not None and bool(search.search(self.plain))
        key = (cols, self.count, marker, wrap)
        if self._rows is not None and self._rows[0] == key:
            return self._rows[1]
        rows = _layout(self._segments(search if marker else None), cols, wrap, TEXT_COLUMN)
        self._rows = (key, rows)
        return rows


def _highlight(segments: list[tuple[Any, str]], search: re.Pattern[str]) -> list[tuple[Any, str]]:
    """``segments`` with every match of ``search`` drawn in the "match" attribute."""
    text = "".join(chunk for _, chunk in segments)
    spans = [m.span() for m in search.finditer(text) if m.end() > m.start()]
    if not spans:
        return segments
    out: list[tuple[Any, str]] = []
    position = 0  # offset of the current segment in ``text``
    for attr, chunk in segments:
        end = position + len(chunk)
        cut = position
        for start, stop in spans:
            if stop <= cut or start >= end:
                continue
            if start > cut:
                out.append((attr, text[cut:start]))
            cut = min(stop, end)
            out.append(("match", text[max(start, position) : cut]))
        if cut < end:
            out.append((attr, text[cut:end]))
        position = end
    return out


def _layout(segments: list[tuple[Any, str]], cols: int, wrap: bool, indent: int = 0) -> list[_Row]:
    """Cut ``segments`` into rows of ``cols``; wrapped rows start ``indent`` columns in."""
    rows: list[_Row] = []
    parts: list[bytes] = []
    runs: list[tuple[Any, int]] = []
    width = 0
    if indent * 2 > cols:
        indent = min(2, cols // 4)  # a narrow pane: keep room for the text

    def flush() -> None:
        nonlocal parts, runs, width
        if width < cols:
            parts.append(b" " * (cols - width))
            runs.append((None, cols - width))
        rows.append((b"".join(parts), runs))
        parts, runs, width = [], [], 0
        if indent:  # the next row continues the same line: line it up under the text
            parts.append(b" " * indent)
            runs.append((None, indent))
            width = indent

    for attr, chunk in segments:
        text = chunk
        while text:
            room = cols - width
            if room <= 0:
                if not wrap:
                    text = ""
                    break
                flush()
                continue
            if text.isascii():
                piece = text[:room]
                used = len(piece)
            else:
                end, used = calc_text_pos(text, 0, len(text), room)
                piece = text[:end]
                if not piece:
                    if width:  # a wide character does not fit at the end of this row
                        if not wrap:
                            text = ""
                            break
                        flush()
                        continue
                    piece, used = text[:1], min(cols, calc_width(text, 0, 1))
            data = piece.encode("utf-8")
            parts.append(data)
            runs.append((attr, len(data)))
            width += used
            text = text[len(piece) :]
    flush()
    return rows


@contract(ThreadSafety.ST)
class LogPane(urwid.Widget):
    """A box widget showing ``lines`` around ``focus``, or the last lines when following.

    Thread safety: ST. Loop thread only.
    """

    _sizing = frozenset([urwid.Sizing.BOX])
    _selectable = True

    def __init__(self) -> None:
        super().__init__()
        self._st = STGuard("LogPane")  # the loop thread claims it on first use
        self.lines: list[LogLine] = []
        self.cursor = 0  # index of the line under the cursor
        self.top = 0
        self.follow = True
        self.wrap = True
        self.search: re.Pattern[str] | None = None
        self.empty_text = "no log lines yet"
        self._last_rows = 20
        self._row_lines: list[int] = []  # line index of every row drawn last time

    @contract(ThreadSafety.ST)
    def changed(self) -> None:
        """Redraw on the next frame (lines, focus or options changed).

        Thread safety: ST.
        """
        self._st.check()
        self._invalidate()

    @contract(ThreadSafety.ST)
    def set_cursor(self, position: int) -> None:
        """Put the cursor on line ``position`` (clamped).

        Thread safety: ST.
        """
        self._st.check()
        self.cursor = max(0, min(position, len(self.lines) - 1))
        self._invalidate()

    @contract(ThreadSafety.ST)
    def at_bottom(self) -> bool:
        """Whether the cursor is on the last line.

        Thread safety: ST.
        """
        self._st.check()
        return self.cursor >= len(self.lines) - 1

    @contract(ThreadSafety.ST)
    def render(self, size: tuple[int, int], focus: bool = False) -> urwid.Canvas:  # type: ignore[override]
        """Draw the visible window of lines into one text canvas.

        Thread safety: ST.
        """
        self._st.check()
        cols, rows = size
        self._last_rows = rows
        if not self.lines:
            text = urwid.Text(("dim", f"  {self.empty_text}"))
            return urwid.Filler(text, valign="top").render((cols, rows), False)
        if self.follow:
            self.cursor = len(self.lines) - 1
            shown = self._from_bottom(self.cursor, cols, rows, highlight=False)
        else:
            self.cursor = max(0, min(self.cursor, len(self.lines) - 1))
            self.top = max(0, min(self.top, self.cursor))
            shown, last_full = self._from_top(self.top, cols, rows)
            if self.cursor > last_full:
                shown = self._from_bottom(self.cursor, cols, rows, highlight=True)
            else:
                shown, _ = self._from_top(self.top, cols, rows, highlight=True)
        self._row_lines = [index for index, _ in shown]
        out = [row for _, row in shown]
        while len(out) < rows:
            out.append((b" " * cols, [(None, cols)]))
        texts = [row[0] for row in out]
        return urwid.TextCanvas(
            texts,
            [row[1] for row in out],
            [[(None, len(t))] for t in texts],
            maxcol=cols,
            check_width=False,
        )

    def _rows_of(self, index: int, cols: int, highlight: bool) -> list[_Row]:
        rows = self.lines[index].rows(cols, self.search, self.wrap)
        if highlight and index == self.cursor:
            return [
                (text, [("focus" if a is None else a, n) for a, n in runs]) for text, runs in rows
            ]
        return rows

    def _from_bottom(self, index: int, cols: int, rows: int, *, highlight: bool) -> _Shown:
        out: _Shown = []
        first = index
        while first >= 0 and len(out) < rows:
            out[:0] = [(first, row) for row in self._rows_of(first, cols, highlight)]
            first -= 1
        self.top = first + 1
        return out[-rows:]

    def _from_top(
        self, index: int, cols: int, rows: int, *, highlight: bool = False
    ) -> tuple[_Shown, int]:
        out: _Shown = []
        last_full = index - 1
        position = index
        while position < len(self.lines) and len(out) < rows:
            out += [(position, row) for row in self._rows_of(position, cols, highlight)]
            if len(out) <= rows:
                last_full = position
            position += 1
        return out[:rows], last_full

    @contract(ThreadSafety.ST)
    def move(self, delta: int) -> None:
        """Move the cursor by ``delta`` lines; leaves follow mode unless at the bottom.

        Thread safety: ST.
        """
        self._st.check()
        if not self.lines:
            return
        if self.follow:
            self.cursor = len(self.lines) - 1
            self.follow = False
        self.set_cursor(self.cursor + delta)
        self.top = min(self.top, self.cursor)
        if delta > 0 and self.at_bottom():
            self.follow = True
        self._invalidate()

    @contract(ThreadSafety.ST)
    def mouse_event(  # type: ignore[override]
        self, size: tuple[int, int], event: str, button: int, col: int, row: int, focus: bool
    ) -> bool:
        """Click puts the cursor on a line (and pauses follow); the wheel scrolls.

        Thread safety: ST.
        """
        self._st.check()
        if event != "mouse press":
            return False
        if button in (4, 5):
            self.move(-3 if button == 4 else 3)
            return True
        if button == 1 and 0 <= row < len(self._row_lines):
            self.follow = False
            self.set_cursor(self._row_lines[row])
            if self.at_bottom():
                self.follow = True
            return True
        return False

    @contract(ThreadSafety.ST)
    def keypress(self, size: tuple[int, int], key: str) -> str | None:  # type: ignore[override]
        """Scroll keys: up, down, page up, page down.

        Thread safety: ST.
        """
        self._st.check()
        page = max(1, (size[1] if len(size) > 1 else self._last_rows) - 1)
        steps = {"up": -1, "down": 1, "page up": -page, "page down": page}
        if key in steps:
            self.move(steps[key])
            return None
        return key

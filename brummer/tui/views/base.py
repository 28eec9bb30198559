"""What every view shares: the host it talks to, its keys, and a selectable list row.

Thread safety: ST. Views are urwid widgets owned by the loop thread.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol

import urwid

from brummer.contracts import ThreadSafety, contract
from brummer.tui.palette import PALETTE

__all__ = ["Host", "Row", "View", "format_duration", "local_time"]


@contract(ThreadSafety.ST)
class Host(Protocol):
    """What a view may ask of the interface that holds it.

    Thread safety: ST. Called from the loop thread only.
    """

    app: Any  # the Brummer container (or anything with the same attributes)

    @contract(ThreadSafety.ST)
    def status(self, message: str, *, error: bool = False) -> None:
        """Show ``message`` in the status line.

        Thread safety: ST.
        """

    @contract(ThreadSafety.ST)
    def background(self, fn: Callable[[], object], done: str = "") -> None:
        """Run ``fn`` off the loop thread; show ``done`` (or its error) when it ends.

        Thread safety: ST.
        """

    @contract(ThreadSafety.ST)
    def switch_to(self, name: str, **options: Any) -> None:
        """Show the view called ``name``.

        Thread safety: ST.
        """

    @contract(ThreadSafety.ST)
    def write_terminal(self, data: str) -> None:
        """Write raw bytes (an escape sequence) to the terminal.

        Thread safety: ST.
        """


@contract(ThreadSafety.ST)
class View(urwid.WidgetWrap[urwid.Widget]):
    """A tab of the interface.

    Thread safety: ST. ``refresh`` re-reads data from the container; the loop thread calls
    it when the view is shown and when something it shows changed.
    """

    name = "view"
    title = "View"
    keys: tuple[tuple[str, str], ...] = ()
    hint = ""  # the view's keys in a few words, for the bottom line
    tags: frozenset[str] = frozenset()  # dirty tags that make this view refresh

    def __init__(self, host: Host, body: urwid.Widget) -> None:
        self.host = host
        super().__init__(body)

    @contract(ThreadSafety.ST)
    def refresh(self) -> None:
        """Re-read what this view shows.

        Thread safety: ST.
        """

    @contract(ThreadSafety.ST)
    def search(self, text: str) -> None:
        """Apply ``/text`` typed while this view is shown (default: a status hint).

        Thread safety: ST.
        """
        self.host.status(f"unknown command {text!r}; press ? for help", error=True)

    @contract(ThreadSafety.ST)
    def on_show(self, **options: Any) -> None:
        """Called when the view becomes visible.

        Thread safety: ST.
        """
        self.refresh()

    @contract(ThreadSafety.ST)
    def help_text(self) -> str:
        """The view's key help, one key per line.

        Thread safety: ST.
        """
        return "\n".join(f"  {key:<12} {what}" for key, what in self.keys)


# Every attribute becomes "focus" on the selected row: a row drawn in several colours (status,
# name, URL) must still show the cursor across its whole width.
_FOCUS_MAP: dict[str | None, str] = {None: "focus", **{entry[0]: "focus" for entry in PALETTE}}


@contract(ThreadSafety.ST)
class Row(urwid.WidgetWrap[urwid.Widget]):
    """One selectable line of a list: highlighted when focused.

    Thread safety: ST.
    """

    def __init__(self, markup: Any, value: Any = None, *, wrap: str = "clip") -> None:
        self.value = value
        self._text = urwid.Text(markup, wrap=wrap)  # type: ignore[arg-type]
        super().__init__(urwid.AttrMap(self._text, None, focus_map=_FOCUS_MAP))

    @contract(ThreadSafety.ST)
    def selectable(self) -> bool:
        """Selectable: the urwid widget protocol.

        Thread safety: ST.
        """
        return True

    @contract(ThreadSafety.ST)
    def keypress(self, size: tuple[int, ...], key: str) -> str | None:
        """Keypress: the urwid widget protocol.

        Thread safety: ST.
        """
        return key


@contract(ThreadSafety.TS, guarantees="pure")
def format_duration(seconds: float) -> str:
    """``seconds`` as ``1h02m``, ``3m04s`` or ``5.2s``.

    Thread safety: TS. Pure.
    """
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@contract(ThreadSafety.TS, guarantees="pure")
def local_time(when: dt.datetime | None) -> str:
    """``HH:MM:SS`` in local time ("--:--:--" for None).

    Thread safety: TS. Pure.
    """
    if when is None:
        return "--:--:--"
    if when.tzinfo is not None:
        when = when.astimezone()
    return when.strftime("%H:%M:%S")

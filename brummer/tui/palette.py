"""Colours of the interface, and ANSI colour codes from child output turned into urwid markup.

Thread safety: TS. The palette is a constant; :func:`ansi_markup` is pure and its attribute
cache is a dict filled with immutable values (a race fills the same key twice, harmlessly).
"""

from __future__ import annotations

import re
import zlib
from typing import Any

import urwid

from brummer.contracts import ThreadSafety, contract

__all__ = [
    "MAX_LINE_CHARS",
    "NAME_ATTRS",
    "PALETTE",
    "ansi_markup",
    "clean_text",
    "name_attr",
    "status_symbol",
]

PALETTE: list[tuple[str, ...]] = [
    ("header", "white", "dark blue"),
    ("tab", "light gray", "dark blue"),
    ("tab focus", "black", "light gray", "bold"),
    ("tab alert", "light red,bold", "dark blue"),
    ("footer", "light gray", "dark gray"),
    ("status", "yellow", "dark gray"),
    ("status error", "light red,bold", "dark gray"),
    ("command", "white", "black"),
    ("focus", "black", "light cyan"),
    ("dim", "dark gray", "default"),
    ("time", "dark gray", "default"),
    ("name", "light cyan", "default"),
    ("name 1", "yellow", "default"),
    ("name 2", "light magenta", "default"),
    ("name 3", "light green", "default"),
    ("name 4", "light blue", "default"),
    ("name 5", "brown", "default"),
    ("error", "light red", "default"),
    ("warning", "yellow", "default"),
    ("success", "light green", "default"),
    ("running", "light green", "default"),
    ("failed", "light red", "default"),
    ("stopped", "light gray", "default"),
    ("pending", "yellow", "default"),
    ("url", "light blue,underline", "default"),
    ("match", "black", "yellow"),
    ("title", "white,bold", "default"),
    ("key", "light cyan,bold", "default"),
    ("too small", "white,bold", "dark red"),
]

MAX_LINE_CHARS = 2048  # longer lines are cut for display (the store keeps them whole)

_STATUS_SYMBOLS = {
    "RUNNING": ("running", "▶"),
    "PENDING": ("pending", "…"),
    "STOPPED": ("stopped", "■"),
    "FAILED": ("failed", "✗"),
    "SUCCESS": ("success", "✓"),
}


NAME_ATTRS = ("name", "name 1", "name 2", "name 3", "name 4", "name 5")


@contract(ThreadSafety.TS, guarantees="pure")
def name_attr(name: str) -> str:
    """The palette attribute of a process name: the same name always gets the same colour.

    Thread safety: TS. Pure. Lines of different processes interleave in the Logs view; a
    colour per process (as honcho and concurrently do) tells them apart at a glance.
    """
    return NAME_ATTRS[zlib.crc32(name.encode("utf-8", "replace")) % len(NAME_ATTRS)]


@contract(ThreadSafety.TS, guarantees="pure")
def status_symbol(status: object) -> tuple[str, str]:
    """The palette attribute and symbol for a process status (an enum or its name).

    Thread safety: TS. Pure.
    """
    name = str(getattr(status, "name", status)).upper()
    return _STATUS_SYMBOLS.get(name, ("dim", "?"))


_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_OTHER_ESCAPES = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]")
_BASIC = (
    "black",
    "dark red",
    "dark green",
    "brown",
    "dark blue",
    "dark magenta",
    "dark cyan",
    "light gray",
)
_BRIGHT = (
    "dark gray",
    "light red",
    "light green",
    "yellow",
    "light blue",
    "light magenta",
    "light cyan",
    "white",
)
_specs: dict[tuple[str, str, bool], urwid.AttrSpec] = {}


@contract(ThreadSafety.TS, guarantees="pure")
def clean_text(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """``text`` made safe to draw: cut to ``limit`` characters, tabs expanded, controls shown as ``?``.

    Thread safety: TS. Pure. SGR colour codes are kept (see :func:`ansi_markup`); other
    escape sequences (cursor moves, titles) are removed.
    """
    if len(text) > limit:
        text = f"{text[:limit]}… [{len(text) - limit} more characters]"
    text = text.replace("\r\n", "\n").rstrip("\n").replace("\r", " ").replace("\n", " ")
    text = _OTHER_ESCAPES.sub(lambda m: m.group(0) if m.group(0).endswith("m") else "", text)
    return _CONTROL.sub("?", text.expandtabs(4))


def _spec(fg: str, bg: str, bold: bool) -> urwid.AttrSpec:
    key = (fg, bg, bold)
    spec = _specs.get(key)
    if spec is None:
        spec = urwid.AttrSpec(f"{fg},bold" if bold and fg != "default" else fg, bg, 16)
        _specs[key] = spec
    return spec


@contract(ThreadSafety.TS, guarantees="pure")
def ansi_markup(text: str, default: Any = None) -> list[Any]:
    """urwid text markup for ``text``, its ANSI SGR colour codes turned into attributes.

    Thread safety: TS. Pure. Unknown codes are dropped; 256-colour and true-colour codes
    fall back to the default colour. ``default`` is the attribute of uncoloured text.
    """
    if "\x1b" not in text:
        return [(default, text)] if default is not None else [text]
    markup: list[Any] = []
    fg, bg, bold = "default", "default", False
    pos = 0
    for match in _SGR.finditer(text):
        if match.start() > pos:
            chunk = text[pos : match.start()]
            plain = fg == "default" and bg == "default" and not bold
            markup.append((default if plain else _spec(fg, bg, bold), chunk))
        pos = match.end()
        codes = [int(c) for c in match.group(1).split(";") if c.isdigit()] or [0]
        index = 0
        while index < len(codes):
            code = codes[index]
            if code == 0:
                fg, bg, bold = "default", "default", False
            elif code == 1:
                bold = True
            elif code == 22:
                bold = False
            elif 30 <= code <= 37:
                fg = _BASIC[code - 30]
            elif 90 <= code <= 97:
                fg = _BRIGHT[code - 90]
            elif code == 39:
                fg = "default"
            elif 40 <= code <= 47:
                bg = _BASIC[code - 40]
            elif 100 <= code <= 107:
                bg = _BRIGHT[code - 100]
            elif code == 49:
                bg = "default"
            elif code in (38, 48):
                index += 2 if index + 1 < len(codes) and codes[index + 1] == 5 else 4
            index += 1
    if pos < len(text):
        plain = fg == "default" and bg == "default" and not bold
        markup.append((default if plain else _spec(fg, bg, bold), text[pos:]))
    return [(a, t) if a is not None else t for a, t in markup if t] or [""]

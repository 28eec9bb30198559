"""ANSI colour codes to urwid markup, text cleaning, and the log pane's row layout."""

from __future__ import annotations

import re

import urwid
from hypothesis import given, strategies as st
from urwid.str_util import calc_width

from brummer.tui.palette import ansi_markup, clean_text, status_symbol
from brummer.tui.views.logpane import _layout

_SGR = re.compile(r"\x1b\[[0-9;]*m")

sgr = st.sampled_from(["\x1b[0m", "\x1b[31m", "\x1b[1;32m", "\x1b[38;5;208m", "\x1b[44m", "\x1b[m"])
chunks = st.one_of(st.text(max_size=20), sgr)


def plain(markup: list[object]) -> str:
    return "".join(m if isinstance(m, str) else m[1] for m in markup)  # type: ignore[index]


@given(st.lists(chunks, max_size=12))
def test_ansi_markup_keeps_the_text_and_drops_the_codes(parts: list[str]) -> None:
    text = "".join(parts)
    markup = ansi_markup(text)
    assert plain(markup) == _SGR.sub("", text)


def test_ansi_markup_colours() -> None:
    markup = ansi_markup("a\x1b[31mred\x1b[0mb\x1b[1;94mbright\x1b[0m", "error")
    assert markup[0] == ("error", "a")
    assert markup[1][0] == urwid.AttrSpec("dark red", "default", 16)  # type: ignore[index]
    assert markup[1][1] == "red"  # type: ignore[index]
    assert markup[2] == ("error", "b")
    assert markup[3][0] == urwid.AttrSpec("light blue,bold", "default", 16)  # type: ignore[index]


def test_clean_text_cuts_and_replaces_controls() -> None:
    assert clean_text("a\tb\x00c\x07d\x1b[2Ke\x1b[31mf") == "a   b?c?de\x1b[31mf"
    long = clean_text("x" * 5000, 100)
    assert long.startswith("x" * 100)
    assert long.endswith("[4900 more characters]")
    assert clean_text("one\r\ntwo\rthree\n") == "one two three"


def test_status_symbols() -> None:
    assert status_symbol("RUNNING") == ("running", "▶")
    assert status_symbol("failed") == ("failed", "✗")
    assert status_symbol("whatever") == ("dim", "?")


text_parts = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Mn", "Me", "Cf", "Zl", "Zp")),
    max_size=60,
)


@given(
    segments=st.lists(st.tuples(st.sampled_from([None, "error", "dim"]), text_parts), max_size=6),
    cols=st.integers(2, 50),
    wrap=st.booleans(),
)
def test_layout_rows_are_exactly_as_wide_as_the_screen(
    segments: list[tuple[str | None, str]], cols: int, wrap: bool
) -> None:
    rows = _layout(segments, cols, wrap)
    assert rows
    joined = ""
    for data, runs in rows:
        text = data.decode("utf-8")
        assert calc_width(text, 0, len(text)) == cols
        assert sum(n for _, n in runs) == len(data)
        joined += text
    original = "".join(t for _, t in segments)
    if wrap:
        assert joined.replace(" ", "") == original.replace(" ", "")
    else:
        assert len(rows) == 1

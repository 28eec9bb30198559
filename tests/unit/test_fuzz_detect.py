"""Fuzzing detection: levels, URLs and error grouping never raise, whatever the line holds."""

from __future__ import annotations

from hypothesis import given, strategies as st

from brummer.logs import LogLevel, LogStore, detect_urls, strip_ansi
from brummer.logs.detect import Detector

_fragments = st.sampled_from(
    [
        "http://",
        "https://[::1]:3000/x",
        "ws://0.0.0.0:",
        "Error: ",
        "TypeError: x is not a function",
        "    at foo (file.js:1:2)",
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "panic: ",
        "error[E0308]",
        "npm ERR!",
        "src/a.ts(3,4): error TS2345",
        "Caused by: ",
        "\x1b[31m",
        "\x1b]8;;http://x\x07",
        "\x1b[",
        ").,;",
        "✓ 3 passed",
        "Tests: 1 failed",
        "\t",
        "\u200b",
    ]
)
_lines = st.lists(st.one_of(_fragments, st.text(max_size=20)), max_size=12).map("".join)


@given(_lines)
def test_strip_ansi_and_urls_never_raise(line: str) -> None:
    plain = strip_ansi(line)
    assert "\x1b[31m" not in plain
    for url in detect_urls(line):
        assert "://" in url
        assert url == url.strip()


@given(st.lists(_lines, max_size=20), st.booleans())
def test_store_with_detection_accepts_any_lines(lines: list[str], is_error: bool) -> None:
    store = LogStore(max_entries=50, max_errors=10, max_urls=5)
    try:
        entries = [store.add("p1", "web", line, is_error) for line in lines]
        assert [e.content for e in entries] == lines
        assert all(isinstance(e.level, LogLevel) for e in entries)
        store.get_error_groups()
        store.get_urls()
        assert len(store.get_urls()) <= 5
    finally:
        store.close()


@given(_lines)
def test_classify_is_total(line: str) -> None:
    result = Detector().classify(line)
    assert isinstance(result.level, LogLevel)


def test_a_huge_line_is_classified_quickly() -> None:
    store = LogStore()
    try:
        entry = store.add("p", "p", "Error: " + "a" * 10_000_000)
        assert len(entry.content) == 10_000_007
    finally:
        store.close()

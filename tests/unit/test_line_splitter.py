"""LineSplitter: bytes in any chunking → the same lines, bounded in length and memory."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from brummer.process.child import MAX_LINE_CHARS, LineSplitter


def split_all(chunks: list[bytes], max_line: int = MAX_LINE_CHARS) -> list[str]:
    splitter = LineSplitter(max_line)
    out: list[str] = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    return out + splitter.flush()


def test_newline_crlf_and_lone_cr_all_end_lines() -> None:
    assert split_all([b"a\nb\r\nc\rd"]) == ["a", "b", "c", "d"]


def test_progress_bar_redraws_become_separate_lines() -> None:
    assert split_all([b"10%\r50%\r100%\n"]) == ["10%", "50%", "100%"]


def test_crlf_split_across_two_reads_is_one_terminator() -> None:
    assert split_all([b"first\r", b"\nsecond\n"]) == ["first", "second"]


def test_cr_at_chunk_end_followed_by_text_is_a_terminator() -> None:
    assert split_all([b"first\r", b"second\n"]) == ["first", "second"]


def test_cr_held_back_is_released_by_flush() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"tail\r") == []
    assert splitter.flush() == ["tail"]


def test_empty_lines_are_kept() -> None:
    assert split_all([b"a\n\n\nb\n"]) == ["a", "", "", "b"]


def test_partial_last_line_only_comes_out_at_flush() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"complete\nparti") == ["complete"]
    assert splitter.feed(b"al") == []
    assert splitter.flush() == ["partial"]
    assert splitter.flush() == []


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert split_all([b"ok \xff\xfe bytes\n"]) == ["ok \ufffd\ufffd bytes"]


def test_multibyte_character_split_across_reads_is_decoded_whole() -> None:
    data = "grün → ✓ 😀\n".encode()
    for cut in range(1, len(data)):
        assert split_all([data[:cut], data[cut:]]) == ["grün → ✓ 😀"], cut


def test_truncated_multibyte_character_at_end_of_stream_is_replaced() -> None:
    assert split_all(["x😀".encode()[:-1]]) == ["x\ufffd"]


def test_long_line_is_cut_into_pieces_of_max_line() -> None:
    line = "x" * 25
    assert split_all([line.encode() + b"\nend\n"], max_line=10) == [
        "x" * 10,
        "x" * 10,
        "x" * 5,
        "end",
    ]


def test_endless_line_never_holds_more_than_max_line_in_memory() -> None:
    splitter = LineSplitter(1000)
    emitted: list[str] = []
    for _ in range(100):
        emitted += splitter.feed(b"y" * 777)
        assert len(splitter._carry) <= 1000
    emitted += splitter.flush()
    assert all(len(piece) == 1000 for piece in emitted[:-1])
    assert "".join(emitted) == "y" * 77_700


def test_ten_megabyte_line_is_split_not_dropped() -> None:
    data = b"z" * (10 * 1024 * 1024) + b"\n"
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    lines = split_all(chunks)
    assert len(lines) == 160
    assert {len(line) for line in lines} == {MAX_LINE_CHARS}


def test_binary_flood_yields_bounded_lines_and_no_error() -> None:
    data = bytes(range(256)) * 4096
    lines = split_all([data[i : i + 4096] for i in range(0, len(data), 4096)])
    assert all(len(line) <= MAX_LINE_CHARS for line in lines)
    assert lines


def test_bad_max_line_is_refused() -> None:
    with pytest.raises(ValueError, match="max_line"):
        LineSplitter(0)


_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=40
)


@given(
    lines=st.lists(_text, max_size=30),
    terminators=st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=30, max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
)
def test_any_chunking_gives_the_same_lines(
    lines: list[str], terminators: list[str], cuts: list[int]
) -> None:
    data = "".join(line + term for line, term in zip(lines, terminators, strict=False)).encode()
    bounds = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    assert split_all(chunks) == lines


@given(
    lines=st.lists(_text, min_size=1, max_size=10),
    max_line=st.integers(min_value=1, max_value=16),
    chunk=st.integers(min_value=1, max_value=50),
)
def test_no_piece_exceeds_max_line_and_content_is_kept(
    lines: list[str], max_line: int, chunk: int
) -> None:
    data = "\n".join(lines).encode() + b"\n"
    out = split_all([data[i : i + chunk] for i in range(0, len(data), chunk)], max_line)
    assert all(len(piece) <= max_line for piece in out)
    assert "".join(out) == "".join(lines)

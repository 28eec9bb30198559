"""Fuzzing the child-output line splitter: any bytes, any chunking, bounded lines."""

from __future__ import annotations

from hypothesis import given, strategies as st

from brummer.process.child import LineSplitter

_bytes = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"\n", b"\r", b"\r\n", b"\xe2\x82", b"\xac", b"\xff", b"\x1b[31m"]),
    ),
    max_size=40,
)


def _split_all(chunks: list[bytes], max_line: int) -> list[str]:
    splitter = LineSplitter(max_line)
    out: list[str] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    out.extend(splitter.flush())
    return out


def _expected(data: bytes, max_line: int) -> list[str]:
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    out: list[str] = []
    for line in lines:
        out.extend([line[i : i + max_line] for i in range(0, len(line), max_line)] or [""])
    return out


@given(_bytes, st.integers(1, 40))
def test_any_bytes_split_into_bounded_lines(chunks: list[bytes], max_line: int) -> None:
    lines = _split_all(chunks, max_line)
    assert all(isinstance(line, str) and len(line) <= max_line for line in lines)
    assert not any("\n" in line or "\r" in line for line in lines)


@given(_bytes, st.data())
def test_chunking_does_not_change_the_lines(chunks: list[bytes], data: st.DataObject) -> None:
    whole = b"".join(chunks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(whole)), max_size=10)))
    pieces = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    assert _split_all(pieces, 1000) == _split_all([whole], 1000) == _expected(whole, 1000)


def test_an_endless_line_never_accumulates() -> None:
    splitter = LineSplitter(64 * 1024)
    total = 0
    for _ in range(160):  # 10 MiB without a newline, fed in 64 KiB reads
        pieces = splitter.feed(b"y" * 65536)
        assert all(len(p) <= 64 * 1024 for p in pieces)
        total += sum(map(len, pieces))
    total += sum(map(len, splitter.flush()))
    assert total == 160 * 65536

"""Search matching over lower-cased, ANSI-stripped keys (private helper of store.py).

Thread safety: TS. Pure functions; the matchers they build hold no shared state.
"""

from __future__ import annotations

import bisect
import importlib
import itertools
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from brummer.errors import BrummerError, ErrorCode
from brummer.logs.model import SearchQuery

_parser: Any = importlib.import_module("re._parser")
_LITERAL = _parser.LITERAL
_SUBPATTERN = _parser.SUBPATTERN
_BRANCH = _parser.BRANCH
_MIN_LITERAL = 2
SEGMENT = 4096  # keys joined per str.find pass (and per cached blob in the store)
_DENSE_FRACTION = 8  # a chunk where more than 1/8 of the lines match is matched line by line


def _required_literals(subpattern: Any) -> list[str] | None:
    """Literals one of which every match of a parsed regex must contain (None: unknown)."""
    candidates: list[list[str]] = []
    run: list[str] = []
    for op, av in subpattern.data:
        if op is _LITERAL:
            run.append(chr(av))
            continue
        if run:
            candidates.append(["".join(run)])
            run = []
        if op is _SUBPATTERN:
            inner = _required_literals(av[-1])
            if inner:
                candidates.append(inner)
        elif op is _BRANCH:
            alternatives = [_required_literals(branch) for branch in av[1]]
            if all(alternatives):
                candidates.append([lit for alt in alternatives if alt for lit in alt])
    if run:
        candidates.append(["".join(run)])
    usable = [c for c in candidates if min(map(len, c)) >= _MIN_LITERAL]
    if not usable:
        return None
    return max(usable, key=lambda c: (min(map(len, c)), -len(c)))


class Matcher:
    """Matches search keys (lower-cased, ANSI-stripped, never holding a newline).

    ``match(keys)`` yields one truthy/falsy selector per key, lazily chunk by chunk (so
    a ``limit`` stops early). When the text (or every match of the regex) must contain a
    literal, ``literals`` is set and chunks are joined into one string scanned with
    ``str.find`` at memory speed; only lines holding a literal are looked at from
    Python, and a chunk where they are common is matched line by line instead.
    ``segment(blob, part)`` does the same for one chunk whose joined text the caller
    already has (the store caches them); ``lines(blob, part)`` returns that chunk's
    matching line indexes instead (None: dense, match line by line).
    """

    __slots__ = ("_dense", "line_by_line", "literals", "verify")

    def __init__(
        self,
        literals: list[str] | None,
        verify: Callable[[str], object],
        line_by_line: Callable[[list[str]], Iterable[object]],
    ) -> None:
        self.literals = literals
        self.verify = verify
        self.line_by_line = line_by_line
        self._dense = False  # once a chunk had many candidates, the rest goes line by line

    def match(self, keys: list[str]) -> Iterable[object]:
        if self.literals is None:
            return self.line_by_line(keys)
        chunks = (
            self.segment(None, keys[start : start + SEGMENT])
            for start in range(0, len(keys), SEGMENT)
        )
        return itertools.chain.from_iterable(chunks)

    def segment(
        self, blob: str | None, part: list[str] | None, starts: Sequence[int] | None = None
    ) -> Iterable[object]:
        """Selectors for one segment given as its joined text, its keys, or both.

        ``starts`` (offset of each line in ``blob``, then ``len(blob) + 1``) lets a hit be
        mapped to its line by bisection instead of counting newlines.
        """
        lines = self.lines(blob, part, starts)
        if lines is None:
            if part is None:
                assert blob is not None
                part = blob.split("\n")
            return self.line_by_line(part)
        if blob is None:
            assert part is not None
            size = len(part)
        else:
            size = len(starts) - 1 if starts is not None else blob.count("\n") + 1
        hits = bytearray(size)
        for line in lines:
            hits[line] = 1
        return hits

    def lines(
        self, blob: str | None, part: list[str] | None, starts: Sequence[int] | None = None
    ) -> list[int] | None:
        """Indexes (ascending) of the segment's matching lines; None: match line by line.

        None is returned when the matcher has no literal, or when the literals occur on
        more than one line in :data:`_DENSE_FRACTION` (then line-by-line matching is
        faster; later segments of this search go line by line at once). Hits are found
        with ``str.find`` in a loop that only collects offsets; they are mapped to lines
        by ``bisect`` inside ``map`` and deduplicated by ``dict.fromkeys`` (C code).
        """
        literals = self.literals
        if literals is None or self._dense:
            return None
        if blob is None:
            assert part is not None
            blob = "\n".join(part)
        if starts is None:
            starts = list(
                itertools.accumulate(
                    map(
                        operator.add,
                        map(len, blob.split("\n") if part is None else part),
                        itertools.repeat(1),
                    ),
                    initial=0,
                )
            )
        budget = (len(starts) - 1) // _DENSE_FRACTION  # more hits: line by line is faster
        found: dict[int, None] = {}
        find = blob.find
        for literal in literals:
            step = len(literal)
            positions: list[int] = []
            append = positions.append
            pos = find(literal)
            while pos != -1:  # the only Python code run per hit
                append(pos)
                budget -= 1
                if budget < 0:
                    self._dense = True
                    return None
                pos = find(literal, pos + step)
            found.update(
                dict.fromkeys(map(bisect.bisect_right, itertools.repeat(starts), positions))
            )
        lines = list(map(operator.sub, found, itertools.repeat(1)))
        if len(literals) > 1:
            lines.sort()
        verify = self.verify
        if verify is _always:
            return lines
        if part is not None:
            return [line for line in lines if verify(part[line])]
        return [line for line in lines if verify(blob[starts[line] : starts[line + 1] - 1])]


def _always(_key: str) -> bool:
    return True


def matcher_for(query: SearchQuery) -> Matcher | None:
    """The matcher for a query's text (None when the query has no text).

    A substring is found with ``str.find``; a lower-case regex needs no IGNORECASE (much
    faster); a regex whose every match must contain one of some literals is located by
    those literals first and matched only on those lines.

    Raises:
        BrummerError: INVALID_ARGUMENT for a regex that does not compile.
    """
    text = query.text
    if not text:
        return None
    if not query.regex:
        needle = text.lower()
        if "\n" in needle:
            return Matcher(None, _always, lambda keys: itertools.repeat(False, len(keys)))
        return Matcher(
            [needle],
            _always,
            lambda keys: map(operator.contains, keys, itertools.repeat(needle)),
        )
    try:
        flags = 0 if text == text.lower() else re.IGNORECASE
        search = re.compile(text, flags).search
        parsed = _parser.parse(text, flags)
        literals = _required_literals(parsed)
    except re.error as exc:
        raise BrummerError(
            "logs",
            ErrorCode.INVALID_ARGUMENT,
            f"search regex {text!r} does not compile: {exc}",
            hint="fix the regular expression, or search with regex=False for plain text",
            context={"pattern": text},
        ) from exc
    except RecursionError:  # absurdly nested pattern: no prefilter, plain matching
        literals = None
    if not literals or any("\n" in lit for lit in literals):
        return Matcher(None, search, lambda keys: map(search, keys))
    return Matcher([lit.lower() for lit in literals], search, lambda keys: map(search, keys))

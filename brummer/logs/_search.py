"""Search matching over lower-cased, ANSI-stripped keys (private helper of store.py).

Thread safety: TS. Pure functions; the matchers they build hold no shared state.
"""

from __future__ import annotations

import importlib
import itertools
import operator
import re
from collections.abc import Callable, Iterable
from typing import Any

from brummer.errors import BrummerError, ErrorCode
from brummer.logs.model import SearchQuery

_parser: Any = importlib.import_module("re._parser")
_LITERAL = _parser.LITERAL
_SUBPATTERN = _parser.SUBPATTERN
_BRANCH = _parser.BRANCH
_MIN_LITERAL = 2
_SEARCH_CHUNK = 8192  # keys joined per str.find pass of a search
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


def matcher_for(query: SearchQuery) -> Callable[[list[str]], Iterable[object]] | None:
    """A function mapping search keys to truthy/falsy match results.

    Keys are lower-cased, ANSI-stripped and never hold a newline. They are joined chunk by
    chunk (lazily, so a ``limit`` stops early) and scanned with ``str.find``, which runs
    at memory speed in C; only lines holding the text are looked at from Python. A chunk
    where the text is common is matched line by line with ``map`` instead. A lower-case
    regex needs no IGNORECASE (much faster); a regex whose every match must contain one
    of some literals is located by those literals first and then matched on those lines.
    """
    text = query.text
    if not text:
        return None
    if not query.regex:
        needle = text.lower()
        if "\n" in needle:
            return lambda keys: itertools.repeat(False, len(keys))
        return lambda keys: map(operator.contains, keys, itertools.repeat(needle))
    try:
        flags = 0 if text == text.lower() else re.IGNORECASE
        search = re.compile(text, flags).search
        parsed = _parser.parse(text, flags)
        # re already finds a literal prefix fast; prefilter only other patterns
        literals = (
            None
            if parsed.data[:1] and parsed.data[0][0] is _LITERAL
            else _required_literals(parsed)
        )
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
        return lambda keys: map(search, keys)
    return _chunked([lit.lower() for lit in literals], search, lambda part: map(search, part))


def _chunked(
    literals: list[str],
    verify: Callable[[str], object],
    line_by_line: Callable[[list[str]], Iterable[object]],
) -> Callable[[list[str]], Iterable[object]]:
    dense = False  # once a chunk had many candidates, the rest goes line by line

    def chunk_hits(part: list[str]) -> Iterable[object]:
        nonlocal dense
        if dense:
            return line_by_line(part)
        blob = "\n".join(part)
        hits = bytearray(len(part))
        seen = bytearray(len(part))
        budget = len(part) // _DENSE_FRACTION  # more candidates: line by line is faster
        for literal in literals:
            pos = blob.find(literal)
            line = 0
            last = 0
            while pos != -1:
                line += blob.count("\n", last, pos)
                if not seen[line]:
                    seen[line] = 1
                    budget -= 1
                    if budget < 0:
                        dense = True
                        return line_by_line(part)
                    if verify(part[line]):
                        hits[line] = 1
                last = blob.find("\n", pos)
                if last == -1:
                    break
                pos = blob.find(literal, last + 1)
        return hits

    def matcher(keys: list[str]) -> Iterable[object]:
        chunks = (
            chunk_hits(keys[start : start + _SEARCH_CHUNK])
            for start in range(0, len(keys), _SEARCH_CHUNK)
        )
        return itertools.chain.from_iterable(chunks)

    return matcher

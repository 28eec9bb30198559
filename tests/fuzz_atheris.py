"""Coverage-guided fuzzing of brummer's parsers with atheris (optional; not run by pytest).

Usage: ``python tests/fuzz_atheris.py TARGET [libFuzzer options]``, e.g.
``python tests/fuzz_atheris.py jsonrpc -atheris_runs=200000 -max_len=4096``.
Targets: jsonrpc, jsonc, splitter, detect, config. Each accepts any bytes and fails only on
an exception other than the documented ones. Needs ``pip install atheris`` (a wheel exists
for CPython 3.11 on x86_64 Linux); hypothesis covers the same parsers in tests/unit.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from brummer.config import load_config
    from brummer.logs import detect_urls, strip_ansi
    from brummer.logs.detect import Detector
    from brummer.mcp.jsonrpc import RPCError, decode
    from brummer.process.child import LineSplitter
    from brummer.process.scripts import loads_jsonc

_DETECTOR = Detector()
_TMP = Path(tempfile.mkdtemp(prefix="brummer-fuzz-"))


def jsonrpc(data: bytes) -> None:
    with contextlib.suppress(RPCError):
        decode(data)


def jsonc(data: bytes) -> None:
    with contextlib.suppress(json.JSONDecodeError):
        loads_jsonc(data.decode("utf-8", "replace"))


def splitter(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    split = LineSplitter(fdp.ConsumeIntInRange(1, 64))
    while fdp.remaining_bytes():
        for line in split.feed(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 32))):
            assert "\n" not in line
            assert "\r" not in line
    split.flush()


def detect(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    strip_ansi(text)
    detect_urls(text)
    _DETECTOR.classify(text)


def config(data: bytes) -> None:
    (_TMP / ".brum.toml").write_bytes(data)
    load_config(_TMP, home=_TMP / "no-home", env={})


TARGETS: dict[str, Callable[[bytes], None]] = {
    "jsonrpc": jsonrpc,
    "jsonc": jsonc,
    "splitter": splitter,
    "detect": detect,
    "config": config,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

"""Fuzzing project-file parsing: package.json, tasks.json (JSONC), pnpm-workspace, .brum.toml.

A broken file is a listed problem, never an exception.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

from hypothesis import given, strategies as st

from brummer.config import load_config
from brummer.process.scripts import discover, loads_jsonc

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
_junk = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
    _json.map(json.dumps),
    st.sampled_from(
        [
            '{"scripts": {"dev": 1}}',
            '{"scripts": []}',
            '{"workspaces": {"packages": 3}}',
            '{"workspaces": ["../../*", "/etc"]}',
            '{"packageManager": 7}',
            '{"scripts": {"a": "b"}, // c\n}',
            "\ufeff{}",
        ]
    ),
)


@given(_json)
def test_jsonc_reads_plain_json(value: object) -> None:
    text = json.dumps(value, indent=1)
    assert loads_jsonc(text) == value


@given(st.text(max_size=60))
def test_jsonc_raises_only_decode_errors(text: str) -> None:
    with contextlib.suppress(json.JSONDecodeError):
        loads_jsonc(text)


@given(package=_junk, tasks=_junk, workspace=_junk, toml=_junk)
def test_discovery_and_config_report_problems_instead_of_raising(
    package: str, tasks: str, workspace: str, toml: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "package.json").write_text(package, encoding="utf-8", errors="surrogatepass")
        (root / ".vscode").mkdir()
        (root / ".vscode" / "tasks.json").write_text(
            tasks, encoding="utf-8", errors="surrogatepass"
        )
        (root / "pnpm-workspace.yaml").write_text(
            workspace, encoding="utf-8", errors="surrogatepass"
        )
        (root / ".brum.toml").write_text(toml, encoding="utf-8", errors="surrogatepass")
        found = discover(root)
        assert all(isinstance(p, str) for p in found.problems)
        config = load_config(root, home=root / "no-home", env={})
        assert isinstance(config.problems, tuple)


def test_deeply_nested_files_are_problems_not_crashes(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("[" * 100_000)
    (tmp_path / ".vscode").mkdir()
    (tmp_path / ".vscode" / "tasks.json").write_text('{"tasks":' * 100_000)
    found = discover(tmp_path)
    assert any("package.json" in p for p in found.problems)

"""Every public callable of brummer carries @contract and an agreeing 'Thread safety:' line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from brummer.contracts import ThreadSafety
from brummer.testing.contract_check import check_contracts, docstring_safety


def test_the_whole_package_carries_contracts() -> None:
    report = check_contracts("brummer")
    assert "brummer.contracts" in report.modules
    assert "brummer.contracts.TSLock.acquire" in report.checked
    assert "brummer.contracts.RWLock.readers" in report.checked  # properties too
    assert report.ok, (
        f"{len(report.problems)} public callables lack an agreeing contract "
        f"(modules: {', '.join(report.failing_modules())}):\n"
        + "\n".join(str(p) for p in report.problems)
    )


FAKE = '''
"""A package with every kind of mistake."""
from brummer.contracts import ThreadSafety, contract
from brummer.contracts import TSLock as TSLock  # re-export: checked where defined, not here

@contract(ThreadSafety.TS)
def good() -> None:
    """Fine.

    Thread safety: TS.
    """

def unmarked() -> None:
    """Thread safety: TS."""

@contract(ThreadSafety.TS)
def undocumented() -> None:
    """No safety line."""

@contract(ThreadSafety.ST)
def disagrees() -> None:
    """Thread safety: TS."""

def _private() -> None:
    pass

@contract(ThreadSafety.RS)
class Thing:
    """Thread safety: RS."""

    def __init__(self) -> None:
        self.x = 1

    @property
    @contract(ThreadSafety.TS)
    def size(self) -> int:
        """Thread safety: TS."""
        return 1

    @property
    def bare(self) -> int:
        """Thread safety: TS."""
        return 1

    @classmethod
    def make(cls) -> "Thing":
        """No line."""
        return cls()

    @staticmethod
    @contract(ThreadSafety.TS)
    def helper() -> None:
        """Thread safety: TS."""

    def _hidden(self) -> None:
        pass

class NoMark:
    pass
'''


@pytest.fixture
def fake_package(tmp_path: Path) -> Iterator[str]:
    pkg = tmp_path / "fakecontracts"
    (pkg / "_private").mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(FAKE))
    (pkg / "sub.py").write_text("def broken(:\n")
    (pkg / "_private" / "__init__.py").write_text("def anything():\n    pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield "fakecontracts"
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("fakecontracts")]:
            del sys.modules[name]


def test_walker_names_every_kind_of_mistake(fake_package: str) -> None:
    report = check_contracts(fake_package)
    found = {p.qualname: p.problem for p in report.problems}
    assert set(found) == {
        "fakecontracts.unmarked",
        "fakecontracts.undocumented",
        "fakecontracts.disagrees",
        "fakecontracts.Thing.bare",
        "fakecontracts.Thing.make",
        "fakecontracts.NoMark",
        "fakecontracts.sub",
    }
    assert "no @contract mark" in found["fakecontracts.unmarked"]
    assert "lacks a 'Thread safety: TS' line" in found["fakecontracts.undocumented"]
    assert "@contract says ST but the docstring says TS" in found["fakecontracts.disagrees"]
    assert "does not import" in found["fakecontracts.sub"]
    assert "fakecontracts.good" in report.checked
    assert "fakecontracts.Thing.size" in report.checked
    assert "fakecontracts.Thing.helper" in report.checked
    assert not any("_private" in q or "_hidden" in q or "TSLock" in q for q in report.checked)
    assert report.failing_modules() == ["fakecontracts", "fakecontracts.sub"]
    assert not report.ok


def test_docstring_safety_reads_the_line() -> None:
    assert docstring_safety("Summary.\n\nThread safety: RS. Readers share.") is ThreadSafety.RS
    assert docstring_safety("Thread safety: XX") is None
    assert docstring_safety(None) is None


def test_command_line_reports_and_exits_nonzero_on_problems(
    fake_package: str, tmp_path: Path
) -> None:
    env_path = str(tmp_path)
    root = str(Path(__file__).resolve().parents[2])
    run = subprocess.run(
        [sys.executable, "-m", "brummer.testing", "--check-contracts", "--package", fake_package],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": f"{env_path}:{root}", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert "fakecontracts.unmarked: no @contract mark" in run.stdout
    assert "7 problems in: fakecontracts, fakecontracts.sub" in run.stdout
    helpless = subprocess.run(
        [sys.executable, "-m", "brummer.testing"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert helpless.returncode == 2
    assert "--check-contracts" in helpless.stdout

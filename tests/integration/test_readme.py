"""The README's library example runs as printed and leaves nothing behind."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _api_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## The API in ten lines", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "README lost its API example"
    return match.group(1)


def test_api_example_has_at_most_ten_lines_of_code() -> None:
    lines = [line for line in _api_example().splitlines() if line.strip()]
    assert len(lines) <= 11  # ten lines of code plus the import


def test_api_example_runs_and_prints_what_it_promises(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(_api_example(), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # the error handler runs on a bus thread, so its line may come before or after the search
    assert sorted(result.stdout.splitlines()) == sorted(["6", "error: ValueError: 42", "['hello']"])

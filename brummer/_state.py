"""Where brummer keeps its per-user state, free of heavy imports so every component can use it.

``brummer.mcp.discovery`` keeps its instance files in ``<state>/instances`` and
``brummer.process.ledger`` its child ledgers in ``<state>/children``; both ask
:func:`state_dir` so the two always sit side by side (and ``brummer.process`` does not
import werkzeug through ``brummer.mcp``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["state_dir"]


def state_dir() -> Path:
    """The brummer state folder (not created here); reads the environment at each call.

    ``$BRUMMER_STATE_DIR`` when set (tests use it), else ``$XDG_RUNTIME_DIR/brummer``,
    else ``<tempdir>/brummer-<uid>``.
    """
    override = os.environ.get("BRUMMER_STATE_DIR")
    if override:
        return Path(override)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "brummer"
    return Path(tempfile.gettempdir()) / f"brummer-{os.getuid()}"

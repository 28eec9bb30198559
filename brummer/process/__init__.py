"""Processes: discover a project's scripts, run them, capture their output, stop their trees.

Public names (API.md §6): :class:`ProcessManager`, :class:`Process`, :class:`ProcessInfo`,
:class:`ProcessStatus`, :class:`Script`, :class:`RestartPolicy`. The modules: ``scripts``
(discovery), ``child`` (one child and its reader thread), ``kill`` (tree kill), ``model``
(statuses, snapshots, policies, the Process handle), ``callbacks``, ``restart``,
``ledger`` (children recorded on disk; orphans of a killed brummer) and ``manager``.
"""

from brummer.process.callbacks import CallbackID as CallbackID, LogCallback as LogCallback
from brummer.process.child import LineSplitter as LineSplitter
from brummer.process.kill import (
    KillResult as KillResult,
    KillTarget as KillTarget,
    kill_trees as kill_trees,
)
from brummer.process.ledger import (
    ChildLedger as ChildLedger,
    LedgerEntry as LedgerEntry,
    OrphanInfo as OrphanInfo,
    clean_orphans as clean_orphans,
    find_orphans as find_orphans,
    ledgers_dir as ledgers_dir,
)
from brummer.process.manager import CHILD_ENV as CHILD_ENV, ProcessManager as ProcessManager
from brummer.process.model import (
    Process as Process,
    ProcessInfo as ProcessInfo,
    ProcessStatus as ProcessStatus,
    ProcessView as ProcessView,
    RestartPolicy as RestartPolicy,
)
from brummer.process.scripts import (
    Discovery as Discovery,
    Script as Script,
    detect_package_manager as detect_package_manager,
    discover as discover,
)

__all__ = [
    "CHILD_ENV",
    "CallbackID",
    "ChildLedger",
    "Discovery",
    "KillResult",
    "KillTarget",
    "LedgerEntry",
    "LineSplitter",
    "LogCallback",
    "OrphanInfo",
    "Process",
    "ProcessInfo",
    "ProcessManager",
    "ProcessStatus",
    "ProcessView",
    "RestartPolicy",
    "Script",
    "clean_orphans",
    "detect_package_manager",
    "discover",
    "find_orphans",
    "kill_trees",
    "ledgers_dir",
]

"""brummer: a development process manager and a library with explicit concurrency contracts.

Everything in API.md is importable from here; see README.md for a tour.
"""

from brummer.contracts import (
    BLOCKING as BLOCKING,
    NON_BLOCKING as NON_BLOCKING,
    Cleanup as Cleanup,
    Contract as Contract,
    LockRequirement as LockRequirement,
    RWLock as RWLock,
    STGuard as STGuard,
    ThreadSafety as ThreadSafety,
    TSLock as TSLock,
    contract as contract,
    contract_of as contract_of,
    lock_for as lock_for,
)
from brummer.errors import BrummerError as BrummerError, ErrorCode as ErrorCode

__version__ = "0.1.0"

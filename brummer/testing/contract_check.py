"""Contract enforcement: every public callable of a package carries ``@contract`` and says so.

:func:`check_contracts` imports every public module of a package (``pkgutil.walk_packages``)
and inspects every public class, method, property, classmethod, staticmethod and
module-level function *defined* there (re-exports are checked where they are defined). Each
must carry a :func:`brummer.contracts.contract` mark and a docstring line
``Thread safety: TS`` (or RS/ST) that agrees with the mark. Public means: no leading
underscore in the name nor in any module of the path; dunder methods are exempt.

Run it as ``python -m brummer.testing --check-contracts``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import re
import types
from collections.abc import Iterator

import attrs

from brummer.contracts import ThreadSafety, contract, contract_of

__all__ = ["ContractProblem", "ContractReport", "check_contracts", "docstring_safety"]

_SAFETY_LINE = re.compile(r"Thread safety:\s*(TS|RS|ST)\b")


@contract(ThreadSafety.TS)
@attrs.frozen
class ContractProblem:
    """One public callable whose contract is missing or disagrees with its docstring.

    Thread safety: TS (frozen value object).
    """

    qualname: str
    problem: str

    def __str__(self) -> str:
        return f"{self.qualname}: {self.problem}"


@contract(ThreadSafety.TS)
@attrs.frozen
class ContractReport:
    """What :func:`check_contracts` looked at and what it found wrong.

    Thread safety: TS (frozen value object).

    Attributes:
        checked: qualified names of every public callable inspected.
        problems: the ones that fail, with the reason.
        modules: the modules walked.
    """

    checked: tuple[str, ...]
    problems: tuple[ContractProblem, ...]
    modules: tuple[str, ...]

    @property
    @contract(ThreadSafety.TS)
    def ok(self) -> bool:
        """True when nothing is wrong.

        Thread safety: TS.
        """
        return not self.problems

    @contract(ThreadSafety.TS)
    def failing_modules(self) -> list[str]:
        """The modules with at least one problem, sorted.

        Thread safety: TS. Pure.
        """
        longest_first = sorted(self.modules, key=len, reverse=True)
        found: set[str] = set()
        for p in self.problems:
            owner = next(
                (m for m in longest_first if p.qualname == m or p.qualname.startswith(m + ".")),
                p.qualname,
            )
            found.add(owner)
        return sorted(found)


@contract(ThreadSafety.TS)
def docstring_safety(obj: object) -> ThreadSafety | None:
    """The level named by the ``Thread safety: XX`` line of ``obj``'s docstring, if any.

    Thread safety: TS. Pure.
    """
    doc = inspect.getdoc(obj) if not isinstance(obj, str) else obj
    if not doc:
        return None
    match = _SAFETY_LINE.search(doc)
    return ThreadSafety(match.group(1)) if match else None


def _is_public(name: str) -> bool:
    return not name.startswith("_")


def _modules(package: str) -> Iterator[tuple[str, types.ModuleType | BaseException]]:
    root = importlib.import_module(package)
    yield package, root
    path = getattr(root, "__path__", None)
    if path is None:
        return
    errors: list[str] = []
    for info in pkgutil.walk_packages(path, package + ".", onerror=errors.append):
        parts = info.name.split(".")
        if not all(_is_public(p) for p in parts):
            continue
        try:
            yield info.name, importlib.import_module(info.name)
        except Exception as exc:
            yield info.name, exc
    for name in errors:
        yield name, ImportError(f"could not import {name}")


def _check(obj: object, target: object, qualname: str) -> ContractProblem | None:
    mark = contract_of(target)
    said = docstring_safety(obj)
    if mark is None and said is None:
        return ContractProblem(qualname, "no @contract mark and no 'Thread safety:' docstring line")
    if mark is None:
        return ContractProblem(
            qualname, f"no @contract mark (docstring says {said.value if said else '?'})"
        )
    if said is None:
        return ContractProblem(
            qualname, f"docstring lacks a 'Thread safety: {mark.thread_safety.value}' line"
        )
    if said is not mark.thread_safety:
        return ContractProblem(
            qualname,
            f"@contract says {mark.thread_safety.value} but the docstring says {said.value}",
        )
    return None


def _members(cls: type, qual: str) -> Iterator[tuple[str, object, object]]:
    """(qualname, object carrying the docstring, object carrying the mark) of each public member."""
    for name, raw in vars(cls).items():
        if not _is_public(name):
            continue
        q = f"{qual}.{name}"
        if isinstance(raw, property):
            if raw.fget is not None:
                yield q, raw.fget, raw.fget
        elif isinstance(raw, classmethod | staticmethod):
            yield q, raw.__func__, raw.__func__
        elif isinstance(raw, functools.cached_property):
            yield q, raw.func, raw.func
        elif isinstance(raw, types.FunctionType):
            yield q, raw, raw
        elif isinstance(raw, type) and raw.__qualname__.startswith(cls.__qualname__ + "."):
            yield q, raw, raw
            yield from _members(raw, q)


def _defined_here(obj: object, module: types.ModuleType) -> bool:
    return getattr(obj, "__module__", None) == module.__name__


@contract(ThreadSafety.TS)
def check_contracts(package: str = "brummer") -> ContractReport:
    """Walk ``package`` and report every public callable without an agreeing contract.

    Thread safety: TS. Imports the package's public modules (their import side effects
    happen); reads only.

    Returns:
        A :class:`ContractReport`; a module that fails to import is itself a problem.
    """
    checked: list[str] = []
    problems: list[ContractProblem] = []
    modules: list[str] = []
    for modname, module in _modules(package):
        modules.append(modname)
        if isinstance(module, BaseException):
            problems.append(ContractProblem(modname, f"module does not import: {module!r}"))
            continue
        for name, obj in sorted(vars(module).items()):
            if not _is_public(name) or not _defined_here(obj, module):
                continue
            qual = f"{modname}.{name}"
            if isinstance(obj, type):
                checked.append(qual)
                found = _check(obj, obj, qual)
                if found:
                    problems.append(found)
                for q, doc_obj, mark_obj in _members(obj, qual):
                    checked.append(q)
                    found = _check(doc_obj, mark_obj, q)
                    if found:
                        problems.append(found)
            elif isinstance(obj, types.FunctionType):
                checked.append(qual)
                found = _check(obj, obj, qual)
                if found:
                    problems.append(found)
    return ContractReport(tuple(checked), tuple(problems), tuple(modules))

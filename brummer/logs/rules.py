"""Detection rules: the built-in ``rules.toml`` plus the user's, compiled and checked.

See the comment at the top of ``rules.toml`` for the format. A malformed rule is a clear
``BrummerError(INVALID_ARGUMENT)`` naming the rule, never a silently ignored one.

Thread safety: TS. Loading is pure apart from reading files; rules are immutable.
"""

from __future__ import annotations

import importlib.resources
import re
import tomllib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from brummer.contracts import ThreadSafety, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.logs.model import LogLevel

__all__ = ["DetectionRule", "load_rules"]

_COMPONENT = "logs"
_SECTIONS = ("level", "tag", "error", "continuation", "build", "test")
_STYLES = ("single", "stack", "python")


@contract(ThreadSafety.TS)
@attrs.frozen(eq=False)
class DetectionRule:
    """One compiled detection rule (see ``rules.toml`` for the meaning of each field).

    Thread safety: TS (immutable). Compared and hashed by identity.
    """

    section: str
    name: str
    triggers: tuple[str, ...]
    pattern: re.Pattern[str]
    level: LogLevel | None = None
    unless: re.Pattern[str] | None = None
    tags: tuple[str, ...] = ()
    priority: int = 0
    kind: str = ""
    language: str = ""
    style: str = "single"
    status: str = ""


@attrs.frozen
class _Settings:
    max_detect_chars: int = 4096
    max_group_lines: int = 50
    max_group_line_chars: int = 500
    group_idle_seconds: float = 1.0


@attrs.frozen
class _RuleSet:
    settings: _Settings
    rules: tuple[DetectionRule, ...]


def _bad_rule(where: str, message: str) -> BrummerError:
    return BrummerError(
        _COMPONENT,
        ErrorCode.INVALID_ARGUMENT,
        f"detection rule {where}: {message}",
        hint="fix the rule in your config; see brummer/logs/rules.toml for the format",
    )


def _compile_rule(section: str, raw: Mapping[str, Any], index: int) -> DetectionRule:
    name = raw.get("name", f"{section}-{index}")
    where = f"[[{section}]] {name!r}"
    if not isinstance(name, str) or not name:
        raise _bad_rule(where, "name must be a non-empty string")
    pattern = raw.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise _bad_rule(where, "pattern must be a non-empty regex string")
    flags = re.IGNORECASE if raw.get("ignore_case", True) else 0
    try:
        compiled = re.compile(pattern, flags)
        unless_raw = raw.get("unless")
        unless = re.compile(unless_raw, flags) if isinstance(unless_raw, str) else None
    except re.error as exc:
        raise _bad_rule(where, f"regex does not compile: {exc}") from exc
    triggers_raw = raw.get("triggers", [])
    if section != "continuation" and (
        not isinstance(triggers_raw, list)
        or not triggers_raw
        or not all(isinstance(t, str) and t for t in triggers_raw)
    ):
        raise _bad_rule(where, "triggers must be a non-empty list of non-empty strings")
    triggers = tuple(t.lower() for t in triggers_raw) if isinstance(triggers_raw, list) else ()
    level: LogLevel | None = None
    if "level" in raw:
        try:
            level = LogLevel[str(raw["level"]).upper()]
        except KeyError as exc:
            raise _bad_rule(where, f"unknown level {raw['level']!r}") from exc
    elif section == "level":
        raise _bad_rule(where, "a [[level]] rule needs level = DEBUG|INFO|WARNING|ERROR|CRITICAL")
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise _bad_rule(where, "tags must be a list of strings")
    style = raw.get("style", "single")
    if style not in _STYLES:
        raise _bad_rule(where, f"style must be one of {_STYLES}")
    priority = raw.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise _bad_rule(where, "priority must be an integer")
    return DetectionRule(
        section=section,
        name=name,
        triggers=triggers,
        pattern=compiled,
        level=level,
        unless=unless,
        tags=tuple(tags),
        priority=priority,
        kind=str(raw.get("kind", "")),
        language=str(raw.get("language", "")),
        style=style,
        status=str(raw.get("status", "")),
    )


def _read_toml(source: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    path = Path(source)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise BrummerError(
            _COMPONENT,
            ErrorCode.NOT_FOUND,
            f"cannot read detection rules from {path}: {exc.strerror}",
            hint="check the path of the rules file in your config",
            cause=exc,
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise BrummerError(
            _COMPONENT,
            ErrorCode.INVALID_ARGUMENT,
            f"detection rules in {path} are not valid TOML: {exc}",
            hint="fix the TOML syntax; see brummer/logs/rules.toml for the format",
            cause=exc,
        ) from exc


def _builtin_rules() -> Mapping[str, Any]:
    text = importlib.resources.files("brummer.logs").joinpath("rules.toml").read_text("utf-8")
    return tomllib.loads(text)


@contract(ThreadSafety.TS)
def load_rules(
    extra: str | Path | Mapping[str, Any] | Sequence[str | Path | Mapping[str, Any]] | None = None,
) -> tuple[DetectionRule, ...]:
    """Compile the built-in rules plus ``extra`` (TOML paths or already-parsed mappings).

    Thread safety: TS. Pure apart from reading files.

    A rule in ``extra`` with the same section and name as an earlier one replaces it;
    other rules are appended (for ``[[error]]``, placed before the built-in ones so a
    user's specific rule wins).

    Raises:
        BrummerError: INVALID_ARGUMENT for a malformed rule or regex, NOT_FOUND for a
            missing file.
    """
    return _load(extra).rules


def _load(
    extra: str | Path | Mapping[str, Any] | Sequence[str | Path | Mapping[str, Any]] | None,
) -> _RuleSet:
    sources: list[Mapping[str, Any]] = [_builtin_rules()]
    if extra is not None:
        if isinstance(extra, str | Path | Mapping):
            sources.append(_read_toml(extra))
        else:
            sources.extend(_read_toml(item) for item in extra)
    settings: dict[str, Any] = {}
    by_section: dict[str, OrderedDict[str, DetectionRule]] = {s: OrderedDict() for s in _SECTIONS}
    for number, source in enumerate(sources):
        raw_settings = source.get("settings", {})
        if not isinstance(raw_settings, Mapping):
            raise _bad_rule("[settings]", "must be a table")
        for key, value in raw_settings.items():
            if key not in attrs.fields_dict(_Settings):
                raise _bad_rule("[settings]", f"unknown setting {key!r}")
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise _bad_rule("[settings]", f"{key} must be a positive number")
            settings[key] = value
        for section in _SECTIONS:
            entries = source.get(section, [])
            if not isinstance(entries, list):
                raise _bad_rule(f"[[{section}]]", "must be an array of tables")
            for index, raw in enumerate(entries):
                if not isinstance(raw, Mapping):
                    raise _bad_rule(f"[[{section}]] #{index}", "must be a table")
                rule = _compile_rule(section, raw, index)
                table = by_section[section]
                if number > 0 and section == "error" and rule.name not in table:
                    table[rule.name] = rule
                    table.move_to_end(rule.name, last=False)
                else:
                    table[rule.name] = rule
    rules = tuple(rule for section in _SECTIONS for rule in by_section[section].values())
    return _RuleSet(
        settings=_Settings(
            max_detect_chars=int(settings.get("max_detect_chars", 4096)),
            max_group_lines=int(settings.get("max_group_lines", 50)),
            max_group_line_chars=int(settings.get("max_group_line_chars", 500)),
            group_idle_seconds=float(settings.get("group_idle_seconds", 1.0)),
        ),
        rules=rules,
    )

"""Small helpers for the MCP tools: a JSON Schema subset validator and JSON conversion.

The validator understands what the tool schemas use: ``type`` (object, string, integer,
number, boolean, array), ``properties``, ``required``, ``additionalProperties: false``,
``enum``, ``minimum``, ``maximum``, ``minLength`` and ``items``. It returns every problem
found, as sentences a model can act on.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _type_ok(expected: str, value: object) -> bool:
    if expected in ("integer", "number") and isinstance(value, bool):
        return False
    if expected == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(expected, (object,)))


def validate(schema: Mapping[str, Any], value: object, path: str = "arguments") -> list[str]:
    """Every way ``value`` fails ``schema`` (empty when it is valid)."""
    problems: list[str] = []
    expected = schema.get("type")
    if isinstance(expected, str) and not _type_ok(expected, value):
        return [f"{path} must be of type {expected}, not {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(repr(c) for c in schema["enum"])
        problems.append(f"{path} must be one of {choices}, not {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path} must be ≥ {schema['minimum']}, not {value}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path} must be ≤ {schema['maximum']}, not {value}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        problems.append(f"{path} must not be empty")
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                problems.append(f"{path}.{name} is required")
        for name, item in value.items():
            if name in props:
                problems.extend(validate(props[name], item, f"{path}.{name}"))
            elif schema.get("additionalProperties") is False:
                known = ", ".join(sorted(props)) or "none"
                problems.append(f"{path}.{name} is not a known argument (known: {known})")
    if isinstance(value, list | tuple) and "items" in schema:
        for index, item in enumerate(value):
            problems.extend(validate(schema["items"], item, f"{path}[{index}]"))
    return problems


def strip_ansi(text: str) -> str:
    """``text`` without ANSI colour and cursor sequences."""
    return _ANSI.sub("", text)


def jsonable(value: Any) -> Any:
    """A JSON-serialisable copy of ``value`` (attrs objects, enums, datetimes, mappings)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return strip_ansi(value)
    if isinstance(value, enum.Enum):
        return value.name.lower() if isinstance(value.value, int) else str(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return jsonable(to_dict())
    if attrs.has(type(value)):
        return {
            f.name: jsonable(getattr(value, f.name))
            for f in attrs.fields(type(value))
            if not f.name.startswith("_")
        }
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if hasattr(value, "snapshot") and callable(value.snapshot):
        return jsonable(value.snapshot())
    return str(value)


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An RFC 3339 timestamp, or a duration ago ("90s", "5m", "2h", "1d").

    Raises:
        ValueError: the text is neither.
    """
    match = _DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)

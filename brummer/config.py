"""Configuration: ``.brum.toml`` files, environment overrides and command-line flags.

Files are read with :mod:`tomllib` from the home directory first, then from every parent of
the project directory, outermost first, down to the project directory itself; a nearer file
overrides a farther one key by key. ``BRUMMER_<KEY>`` environment variables override the
files, and command-line flags override everything (:meth:`Config.with_overrides`).

Nothing is silently ignored: an unknown key, a value of the wrong type or a file that is not
TOML becomes a :class:`ConfigProblem` naming the file and line, the value is left at what the
farther files or the default said, and loading carries on. :func:`load_config` never raises
for a bad file; it raises only when the project directory itself is unusable.

Thread safety: TS. Everything here is pure or returns frozen values.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from brummer.contracts import ThreadSafety, contract
from brummer.errors import BrummerError, ErrorCode

__all__ = [
    "CONFIG_FILE_NAME",
    "Config",
    "ConfigProblem",
    "ErrorRule",
    "RestartSettings",
    "check_project_dir",
    "config_files",
    "format_settings",
    "load_config",
]

CONFIG_FILE_NAME = ".brum.toml"
ENV_PREFIX = "BRUMMER_"
PACKAGE_MANAGERS = ("npm", "yarn", "pnpm", "bun")
PROXY_MODES = ("reverse", "full")
RESTART_MODES = ("no", "on-failure", "always")
# Keys the Go original wrote; read under their new name so old files keep working.
_ALIASES = {"preferred_package_manager": "package_manager"}

_COMPONENT = "config"


@contract(ThreadSafety.TS)
@attrs.frozen
class RestartSettings:
    """Auto-restart policy of one script, as configured (``[restart.<script>]``).

    Thread safety: TS (immutable value).
    """

    mode: str = "no"
    max_restarts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 30.0


@contract(ThreadSafety.TS)
@attrs.frozen
class ErrorRule:
    """An extra error-detection rule (``[[error_rules]]``): a line matching ``pattern`` starts an error.

    Thread safety: TS (immutable value). ``triggers`` are lower-case substrings one of which
    must be in the line before the regex is tried (derived from a plain-text pattern).
    """

    pattern: str
    kind: str = "Error"
    triggers: tuple[str, ...] = ()


@contract(ThreadSafety.TS)
@attrs.frozen
class ConfigProblem:
    """One thing wrong in a configuration source, with where it is.

    Thread safety: TS (immutable value).
    """

    source: str
    line: int | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        what = f"{self.key}: " if self.key else ""
        return f"{where}: {what}{self.message}"


def _frozen_map(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@contract(ThreadSafety.TS)
@attrs.frozen
class Config:
    """The merged configuration of one brummer run.

    Thread safety: TS (immutable value). ``sources`` says where each key's value came from
    ("default", "<file>:<line>", "env BRUMMER_<KEY>" or "command line"); ``problems`` lists
    everything that was wrong in the sources and was not applied.
    """

    package_manager: str | None = None
    mcp_port: int = 7777
    no_mcp: bool = False
    proxy_port: int = 19888
    proxy_mode: str = "reverse"
    no_proxy: bool = False
    telemetry: bool = True
    command_run: bool = False
    log_max_entries: int = 10_000
    log_max_errors: int = 500
    log_max_urls: int = 100
    stop_timeout: float = 10.0
    restart: Mapping[str, RestartSettings] = attrs.field(factory=dict, converter=_frozen_map)
    error_rules: tuple[ErrorRule, ...] = ()
    sources: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    problems: tuple[ConfigProblem, ...] = ()

    @contract(ThreadSafety.TS, guarantees="pure")
    def source_of(self, key: str) -> str:
        """Where ``key``'s value came from ("default" when nothing set it).

        Thread safety: TS. Pure.
        """
        return self.sources.get(key, "default")

    @contract(ThreadSafety.TS, guarantees="pure")
    def restart_for(self, script: str) -> RestartSettings | None:
        """The restart policy configured for ``script`` (or for ``"*"``), None when unset.

        Thread safety: TS. Pure.
        """
        return self.restart.get(script) or self.restart.get("*")

    @contract(ThreadSafety.TS, guarantees="pure; returns a new Config")
    def with_overrides(self, source: str, **values: Any) -> Config:
        """A copy with ``values`` applied (None values are skipped), each recorded as from ``source``.

        Thread safety: TS. Pure.

        Raises:
            BrummerError: INVALID_ARGUMENT for an unknown key or a value that fails validation.
        """
        changes: dict[str, Any] = {}
        sources = dict(self.sources)
        for key, value in values.items():
            if value is None:
                continue
            spec = _SCALARS.get(key)
            if spec is None:
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.INVALID_ARGUMENT,
                    f"unknown configuration key {key!r}",
                    hint=f"known keys: {', '.join(sorted(_SCALARS))}",
                )
            error = spec.check(value)
            if error:
                raise BrummerError(
                    _COMPONENT,
                    ErrorCode.INVALID_ARGUMENT,
                    f"{key} from {source}: {error}",
                    hint=spec.doc,
                )
            changes[key] = spec.normalise(value)
            sources[key] = source
        return attrs.evolve(self, sources=sources, **changes)


# --------------------------------------------------------------------------- key specs


@attrs.frozen
class _Spec:
    kind: type
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def check(self, value: Any) -> str:
        """Return what is wrong with ``value`` ("" when it is fine)."""
        if self.kind is bool:
            if not isinstance(value, bool):
                return f"expected true or false, got {_show(value)}"
            return ""
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return f"expected an integer, got {_show(value)}"
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"expected a number, got {_show(value)}"
            if not math.isfinite(value):
                return f"expected a finite number, got {value!r}"
        elif self.kind is str:
            if not isinstance(value, str):
                return f"expected a string, got {_show(value)}"
            if self.choices and value not in self.choices:
                return f"expected one of {', '.join(self.choices)}, got {value!r}"
            return ""
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}, got {value!r}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}, got {value!r}"
        return ""

    def normalise(self, value: Any) -> Any:
        return float(value) if self.kind is float else value

    def parse_env(self, text: str) -> Any:
        """Turn an environment variable's text into a value of this key's type."""
        text = text.strip()
        if self.kind is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            return text
        if self.kind is int:
            try:
                return int(text)
            except ValueError:
                return text
        if self.kind is float:
            try:
                return float(text)
            except ValueError:
                return text
        return text


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


_SCALARS: dict[str, _Spec] = {
    "package_manager": _Spec(
        str, "package manager used to run package.json scripts", choices=PACKAGE_MANAGERS
    ),
    "mcp_port": _Spec(int, "port of the MCP server (0 = any free port)", minimum=0, maximum=65535),
    "no_mcp": _Spec(bool, "do not start the MCP server"),
    "proxy_port": _Spec(int, "port of the proxy (0 = any free port)", minimum=0, maximum=65535),
    "proxy_mode": _Spec(str, "reverse (one port per URL) or full (HTTP proxy)", PROXY_MODES),
    "no_proxy": _Spec(bool, "do not start the proxy"),
    "telemetry": _Spec(bool, "inject the browser telemetry script into proxied pages"),
    "command_run": _Spec(bool, "allow MCP clients to run arbitrary shell commands"),
    "log_max_entries": _Spec(int, "log lines kept in memory", minimum=1),
    "log_max_errors": _Spec(int, "error groups kept in memory", minimum=1),
    "log_max_urls": _Spec(int, "detected URLs kept in memory", minimum=1),
    "stop_timeout": _Spec(float, "seconds between SIGTERM and SIGKILL when stopping", minimum=0),
}
_TABLES = ("restart", "error_rules")
DOCUMENTED_KEYS: tuple[str, ...] = (*_SCALARS, *_TABLES)


# --------------------------------------------------------------------------- loading


@contract(ThreadSafety.TS, guarantees="pure (reads the file system)")
def config_files(project_dir: str | os.PathLike[str], *, home: Path | None = None) -> list[Path]:
    """The ``.brum.toml`` files that apply to ``project_dir``, farthest first (existing ones only).

    Thread safety: TS. Reads the file system only.
    """
    project = Path(project_dir).resolve()
    home_dir = (home if home is not None else Path.home()).resolve()
    candidates = [home_dir / CONFIG_FILE_NAME]
    candidates += [d / CONFIG_FILE_NAME for d in reversed(project.parents)]
    candidates.append(project / CONFIG_FILE_NAME)
    seen: set[Path] = set()
    result: list[Path] = []
    for path in candidates:
        if path in seen:
            continue
        seen.add(path)
        if path.is_file():
            result.append(path)
    return result


@contract(ThreadSafety.TS, guarantees="pure (reads the file system and the environment)")
def load_config(
    project_dir: str | os.PathLike[str] = ".",
    *,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Merge the defaults, every applicable ``.brum.toml`` and ``BRUMMER_<KEY>`` variables.

    Thread safety: TS. Reads files and the environment; shares no state.

    Raises:
        BrummerError: NOT_FOUND when ``project_dir`` does not exist or is not a directory,
            PERMISSION when it cannot be read. Problems inside files never raise: they are
            listed in ``Config.problems``.
    """
    project = Path(project_dir).expanduser()
    check_project_dir(project)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    restart: dict[str, RestartSettings] = {}
    rules: list[ErrorRule] = []
    problems: list[ConfigProblem] = []
    for path in config_files(project, home=home):
        _apply_file(path, values, sources, restart, rules, problems)
    _apply_env(os.environ if env is None else env, values, sources, problems)
    return Config(
        **values,
        restart=restart,
        error_rules=tuple(rules),
        sources=sources,
        problems=tuple(problems),
    )


@contract(ThreadSafety.TS, guarantees="pure (reads the file system)")
def check_project_dir(project: Path) -> None:
    """Raise a clear error when ``project`` cannot be used as the project directory.

    Thread safety: TS. Reads the file system only.
    """
    if not project.exists():
        raise BrummerError(
            _COMPONENT,
            ErrorCode.NOT_FOUND,
            f"project directory {str(project)!r} does not exist",
            hint="pass an existing directory with -d/--dir",
        )
    if not project.is_dir():
        raise BrummerError(
            _COMPONENT,
            ErrorCode.NOT_FOUND,
            f"{str(project)!r} is not a directory",
            hint="pass the project's directory (the one with package.json) with -d/--dir",
        )
    if not os.access(project, os.R_OK | os.X_OK):
        raise BrummerError(
            _COMPONENT,
            ErrorCode.PERMISSION,
            f"project directory {str(project)!r} is not readable",
            hint="fix its permissions or run brummer as a user who can read it",
        )


_TOML_LINE = re.compile(r"at line (\d+)")


def _apply_file(
    path: Path,
    values: dict[str, Any],
    sources: dict[str, str],
    restart: dict[str, RestartSettings],
    rules: list[ErrorRule],
    problems: list[ConfigProblem],
) -> None:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(ConfigProblem(name, None, None, f"cannot read the file: {exc}"))
        return
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        line = int(match.group(1)) if match else None
        problems.append(ConfigProblem(name, line, None, f"not valid TOML: {exc}"))
        return
    locate = _Locator(text)
    for raw_key, value in data.items():
        key = _ALIASES.get(raw_key, raw_key)
        line = locate(None, raw_key)

        def report(message: str, key: str = raw_key, line: int | None = line) -> None:
            problems.append(ConfigProblem(name, line, key, message))

        if key == "restart":
            _apply_restart(value, restart, name, locate, problems)
        elif key == "error_rules":
            _apply_rules(value, rules, name, locate, problems)
        elif key in _SCALARS:
            error = _SCALARS[key].check(value)
            if error:
                report(error)
                continue
            values[key] = _SCALARS[key].normalise(value)
            sources[key] = f"{name}:{line}" if line else name
        else:
            report(f"unknown key (known keys: {', '.join(DOCUMENTED_KEYS)})")


def _apply_restart(
    value: Any,
    restart: dict[str, RestartSettings],
    name: str,
    locate: _Locator,
    problems: list[ConfigProblem],
) -> None:
    if not isinstance(value, dict):
        problems.append(
            ConfigProblem(
                name, locate(None, "restart"), "restart", "expected a table [restart.<script>]"
            )
        )
        return
    for script, policy in value.items():
        line = locate("restart", script)
        key = f"restart.{script}"
        fields: dict[str, Any] = {}
        if isinstance(policy, str):
            fields["mode"] = policy
        elif isinstance(policy, dict):
            fields = dict(policy)
        else:
            problems.append(
                ConfigProblem(name, line, key, "expected a mode string or a table of settings")
            )
            continue
        error = _check_restart(fields)
        if error:
            problems.append(ConfigProblem(name, line, key, error))
            continue
        # A configured script restarts on failure unless it says otherwise; the other
        # settings keep RestartSettings' own defaults.
        settings = {field: _RESTART_SPECS[field].normalise(v) for field, v in fields.items()}
        restart[script] = RestartSettings(**{"mode": "on-failure", **settings})


_RESTART_SPECS = {
    "mode": _Spec(str, "no, on-failure or always", choices=RESTART_MODES),
    "max_restarts": _Spec(int, "restarts before giving up", minimum=0),
    "backoff_initial": _Spec(float, "first delay in seconds", minimum=0),
    "backoff_max": _Spec(float, "longest delay in seconds", minimum=0),
}


def _check_restart(fields: Mapping[str, Any]) -> str:
    for field, value in fields.items():
        spec = _RESTART_SPECS.get(field)
        if spec is None:
            return f"unknown setting {field!r} (known: {', '.join(_RESTART_SPECS)})"
        error = spec.check(value)
        if error:
            return f"{field}: {error}"
    return ""


def _apply_rules(
    value: Any,
    rules: list[ErrorRule],
    name: str,
    locate: _Locator,
    problems: list[ConfigProblem],
) -> None:
    line = locate(None, "error_rules")
    if not isinstance(value, list):
        problems.append(
            ConfigProblem(name, line, "error_rules", "expected an array of tables [[error_rules]]")
        )
        return
    for index, rule in enumerate(value):
        key = f"error_rules[{index}]"
        rule_line = locate.nth_array_table("error_rules", index) or line
        if not isinstance(rule, dict) or not isinstance(rule.get("pattern"), str):
            problems.append(ConfigProblem(name, rule_line, key, "needs a string 'pattern'"))
            continue
        unknown = set(rule) - {"pattern", "kind", "triggers"}
        if unknown:
            problems.append(
                ConfigProblem(name, rule_line, key, f"unknown settings {sorted(unknown)}")
            )
            continue
        try:
            re.compile(rule["pattern"])
        except re.error as exc:
            problems.append(ConfigProblem(name, rule_line, key, f"pattern does not compile: {exc}"))
            continue
        kind = rule.get("kind", "Error")
        if not isinstance(kind, str) or not kind:
            problems.append(ConfigProblem(name, rule_line, key, "kind must be a non-empty string"))
            continue
        triggers = rule.get("triggers")
        if triggers is None:
            literal = _literal(rule["pattern"])
            if not literal:
                problems.append(
                    ConfigProblem(
                        name,
                        rule_line,
                        key,
                        "add triggers = [...]: lower-case words one of which every matching "
                        "line contains (needed when the pattern does not start with text)",
                    )
                )
                continue
            triggers = [literal]
        if (
            not isinstance(triggers, list)
            or not triggers
            or not all(isinstance(t, str) and t for t in triggers)
        ):
            problems.append(
                ConfigProblem(name, rule_line, key, "triggers must be a list of non-empty strings")
            )
            continue
        rules.append(
            ErrorRule(
                pattern=rule["pattern"],
                kind=kind,
                triggers=tuple(t.lower() for t in triggers),
            )
        )


_META = set(".^$*+?{}[]()|")
_OPTIONAL_AFTER = set("*?{")


def _literal(pattern: str) -> str:
    """A lower-case word every line matching ``pattern`` contains, or "" when none is certain.

    The pattern's leading literal text (after ``^`` or ``\\b``) is such a word, unless the
    pattern has an alternation or the text is shorter than two characters; a last character
    made optional by ``?``, ``*`` or ``{0,…}`` is left out.
    """
    if "|" in pattern:
        return ""
    text = pattern
    for prefix in ("^", "\\b"):
        text = text.removeprefix(prefix)
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            if index + 1 < len(text) and not text[index + 1].isalnum():
                literal.append(text[index + 1])
                index += 2
                continue
            break
        if char in _META:
            if char in _OPTIONAL_AFTER and literal:
                literal.pop()
            break
        literal.append(char)
        index += 1
    word = "".join(literal).strip().lower()
    return word if len(word) >= 2 else ""


def _apply_env(
    env: Mapping[str, str],
    values: dict[str, Any],
    sources: dict[str, str],
    problems: list[ConfigProblem],
) -> None:
    for key, spec in _SCALARS.items():
        var = ENV_PREFIX + key.upper()
        if var not in env:
            continue
        value = spec.parse_env(env[var])
        error = spec.check(value)
        if error:
            problems.append(ConfigProblem(f"environment {var}", None, key, error))
            continue
        values[key] = spec.normalise(value)
        sources[key] = f"env {var}"


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")


class _Locator:
    """Finds the line a key was written on (tomllib does not report positions)."""

    def __init__(self, text: str) -> None:
        self._entries: list[tuple[str | None, str, int]] = []
        self._array_tables: dict[str, list[int]] = {}
        table: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header:
                table = _unquote_dotted(header.group(2))
                if header.group(1) == "[[":
                    self._array_tables.setdefault(table, []).append(number)
                self._entries.append((None, table.split(".")[0], number))
                parts = table.split(".")
                if len(parts) > 1:
                    self._entries.append((parts[0], parts[1], number))
                continue
            assign = _ASSIGN.match(line)
            if assign:
                dotted = _unquote_dotted(assign.group(1)).split(".")
                if table is None:
                    self._entries.append((None, dotted[0], number))
                    if len(dotted) > 1:
                        self._entries.append((dotted[0], dotted[1], number))
                else:
                    self._entries.append((table.split(".")[0], dotted[0], number))

    def __call__(self, table: str | None, key: str) -> int | None:
        for entry_table, entry_key, number in self._entries:
            if entry_table == table and entry_key == key:
                return number
        return None

    def nth_array_table(self, table: str, index: int) -> int | None:
        lines = self._array_tables.get(table, [])
        return lines[index] if index < len(lines) else None


def _unquote_dotted(text: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in text.split("."))


# --------------------------------------------------------------------------- display


@contract(ThreadSafety.TS, guarantees="pure")
def format_settings(config: Config) -> str:
    """The merged configuration as TOML, each value annotated with the source it came from.

    Thread safety: TS. Pure.
    """
    lines = ["# brummer settings: merged from defaults, .brum.toml files, environment, flags"]
    for key in _SCALARS:
        value = getattr(config, key)
        source = config.source_of(key)
        rendered = _toml_value(value)
        if value is None:
            lines.append(f"# {key} = (auto)  # {source}")
        else:
            lines.append(f"{key} = {rendered}  # {source}")
    for script, policy in sorted(config.restart.items()):
        lines += [
            "",
            f"[restart.{_toml_key(script)}]",
            f"mode = {_toml_value(policy.mode)}",
            f"max_restarts = {policy.max_restarts}",
            f"backoff_initial = {policy.backoff_initial}",
            f"backoff_max = {policy.backoff_max}",
        ]
    for rule in config.error_rules:
        lines += [
            "",
            "[[error_rules]]",
            f"pattern = {_toml_value(rule.pattern)}",
            f"kind = {_toml_value(rule.kind)}",
            f"triggers = [{', '.join(_toml_value(t) for t in rule.triggers)}]",
        ]
    if config.problems:
        lines += ["", "# problems (not applied):"]
        lines += [f"#   {problem}" for problem in config.problems]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'

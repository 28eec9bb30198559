"""Discovery of runnable things in a project folder.

What is found, in the order it wins a name clash:

- ``package.json`` scripts, run as ``<pm> run <script>`` with the package manager chosen by
  :func:`detect_package_manager`;
- workspace packages (``package.json`` ``workspaces`` as an array or object,
  ``pnpm-workspace.yaml``, ``lerna.json``, ``nx.json``, ``rush.json``): every script of every
  package, named ``<package>:<script>`` and run in that package's folder;
- ``Procfile`` entries (``procfile:<name>``), ``Makefile`` targets (``make:<target>``) and
  ``.vscode/tasks.json`` shell tasks (``vscode:<label>``; the file is JSONC: comments and
  trailing commas are allowed);
- commands of other ecosystems (Go, Rust, Gradle, Maven, .NET, Python, Ruby, PHP, Flutter),
  named ``<tool>:<verb>``.

A file that cannot be read or parsed never raises: its scripts are missing and a sentence
saying what is wrong goes into :attr:`Discovery.problems`. This module reads files only;
it runs nothing.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from brummer.contracts import ThreadSafety, contract
from brummer.errors import BrummerError, ErrorCode

__all__ = [
    "PACKAGE_MANAGERS",
    "Discovery",
    "Script",
    "detect_package_manager",
    "discover",
    "loads_jsonc",
    "makefile_targets",
    "procfile_entries",
    "workspace_dirs",
]

PACKAGE_MANAGERS = ("npm", "yarn", "pnpm", "bun")
"""The package managers brummer knows how to run scripts with."""

_LOCKFILES = (
    ("bun.lockb", "bun"),
    ("bun.lock", "bun"),
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("package-lock.json", "npm"),
)
_ENGINE_ORDER = ("yarn", "pnpm", "bun", "npm")
_SKIP_DIRS = frozenset({"node_modules", ".git"})
_MAX_WORKSPACE_PACKAGES = 500


@contract(ThreadSafety.TS)
@attrs.frozen
class Script:
    """Something runnable that discovery found.

    Thread safety: TS (frozen value object).

    Attributes:
        name: the key to start it by (``dev``, ``web:dev``, ``make:build``, ``go:run``).
        command: the shell command line brummer runs.
        cwd: the folder it runs in (absolute).
        source: ``package.json``, ``workspace``, ``detected``, ``vscode``, ``procfile`` or
            ``makefile``.
        package: the workspace package name, when ``source == "workspace"``.
        description: what the script does (the package.json body, the ecosystem command).
    """

    name: str
    command: str
    cwd: str
    source: str
    package: str | None = None
    description: str = ""


@contract(ThreadSafety.TS)
@attrs.frozen
class Discovery:
    """The result of :func:`discover`: scripts by name, the package manager and problems.

    Thread safety: TS (frozen value object; ``scripts`` is a fresh dict per call).
    """

    scripts: dict[str, Script]
    package_manager: str
    problems: tuple[str, ...] = ()


# -- JSONC -------------------------------------------------------------------------------


@contract(ThreadSafety.TS, guarantees="pure")
def loads_jsonc(text: str) -> Any:
    """Parse JSON with comments (``//``, ``/* */``) and trailing commas, as VS Code writes it.

    Thread safety: TS. Pure.

    Raises:
        json.JSONDecodeError: the text is not JSONC.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            out.append(" ")
            i = n if j < 0 else j + 2
        elif ch in "}]":
            # drop a trailing comma: the last non-space output before the bracket
            k = len(out) - 1
            while k >= 0 and out[k].isspace():
                k -= 1
            if k >= 0 and out[k] == ",":
                out[k] = " "
            out.append(ch)
            i += 1
        else:
            out.append(ch)
            i += 1
    return json.loads("".join(out))


def _read_json(path: Path, problems: list[str], *, jsonc: bool = False) -> Any:
    """The parsed file, or None (missing) — a broken file adds a problem and gives None."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot be read ({exc}); its scripts are not listed")
        return None
    try:
        return loads_jsonc(text) if jsonc else json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "fix the file to see its scripts"
        )
    except RecursionError:
        problems.append(f"{path}: nested too deeply to read; fix the file to see its scripts")
    return None


# -- package managers --------------------------------------------------------------------


@contract(ThreadSafety.TS)
def detect_package_manager(
    work_dir: str | Path, override: str | None = None, *, package_json: Any = None
) -> str:
    """Choose npm, yarn, pnpm or bun for a project.

    Thread safety: TS. Reads files only.

    Precedence: ``override`` (explicit or from config) → the ``packageManager`` field
    (``pnpm@9.1.0`` → ``pnpm``) → ``engines`` (yarn, pnpm, bun, npm) → lockfiles
    (``bun.lockb``/``bun.lock``, ``pnpm-lock.yaml``, ``yarn.lock``, ``package-lock.json``)
    → npm.

    Raises:
        BrummerError: INVALID_ARGUMENT when ``override`` is not a known package manager.
    """
    if override is not None:
        if override not in PACKAGE_MANAGERS:
            raise BrummerError(
                "process",
                ErrorCode.INVALID_ARGUMENT,
                f"unknown package manager {override!r}",
                hint=f"use one of {', '.join(PACKAGE_MANAGERS)}",
            )
        return override
    root = Path(work_dir)
    data = package_json
    if data is None:
        data = _read_json(root / "package.json", [])
    if isinstance(data, dict):
        field = data.get("packageManager")
        if isinstance(field, str):
            name = field.split("@", 1)[0].strip().lower()
            if name in PACKAGE_MANAGERS:
                return name
        engines = data.get("engines")
        if isinstance(engines, dict):
            for name in _ENGINE_ORDER:
                if name in engines:
                    return name
    for filename, name in _LOCKFILES:
        if (root / filename).exists():
            return name
    return "npm"


# -- workspaces --------------------------------------------------------------------------


def _pnpm_workspace_patterns(path: Path, problems: list[str]) -> list[str]:
    """The ``packages:`` list of a pnpm-workspace.yaml (a tiny YAML subset, enough for it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot be read ({exc})")
        return []
    patterns: list[str] = []
    in_packages = False
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not raw[0].isspace() and not line.lstrip().startswith("-"):
            key, _, rest = line.partition(":")
            in_packages = key.strip() == "packages"
            if in_packages and rest.strip().startswith("["):  # packages: ['a/*', 'b']
                items = rest.strip().strip("[]").split(",")
                patterns.extend(item.strip().strip("'\"") for item in items if item.strip())
                in_packages = False
            continue
        stripped = line.strip()
        if in_packages and stripped.startswith("-"):
            item = stripped[1:].strip().strip("'\"")
            if item:
                patterns.append(item)
    return patterns


def _workspace_patterns(root: Path, package_json: Any, problems: list[str]) -> list[str]:
    patterns: list[str] = []
    patterns += _pnpm_workspace_patterns(root / "pnpm-workspace.yaml", problems)
    if isinstance(package_json, dict):
        workspaces = package_json.get("workspaces")
        if isinstance(workspaces, dict):
            workspaces = workspaces.get("packages")
        if isinstance(workspaces, list):
            patterns += [p for p in workspaces if isinstance(p, str)]
    lerna = _read_json(root / "lerna.json", problems)
    if isinstance(lerna, dict):
        packages = lerna.get("packages", ["packages/*"])
        if isinstance(packages, list):
            patterns += [p for p in packages if isinstance(p, str)]
    if (root / "nx.json").exists():
        workspace = _read_json(root / "workspace.json", problems)
        projects = workspace.get("projects") if isinstance(workspace, dict) else None
        if isinstance(projects, dict):
            patterns += [p for p in projects.values() if isinstance(p, str)]
        else:
            patterns += ["apps/*", "libs/*", "packages/*"]
    rush = _read_json(root / "rush.json", problems, jsonc=True)
    if isinstance(rush, dict) and isinstance(rush.get("projects"), list):
        for project in rush["projects"]:
            if isinstance(project, dict) and isinstance(project.get("projectFolder"), str):
                patterns.append(project["projectFolder"])
    return patterns


@contract(ThreadSafety.TS)
def workspace_dirs(work_dir: str | Path, patterns: Iterable[str]) -> list[Path]:
    """Expand workspace globs (``!`` excludes) into package folders that hold a package.json.

    Thread safety: TS. Reads the file system only. Never leaves ``work_dir`` and never
    descends into ``node_modules``.
    """
    root = Path(work_dir).resolve()
    include: list[str] = []
    exclude: list[str] = []
    for raw in patterns:
        pattern = raw.strip().rstrip("/")
        if pattern.startswith("./"):
            pattern = pattern[2:]
        if not pattern or pattern.startswith(("/", "..")):
            continue
        (exclude if pattern.startswith("!") else include).append(pattern.lstrip("!"))
    found: dict[Path, None] = {}
    for pattern in include:
        try:
            candidates = sorted(root.glob(pattern))
        except (ValueError, OSError):
            continue
        for path in candidates:
            if len(found) >= _MAX_WORKSPACE_PACKAGES:
                break
            rel = path.relative_to(root)
            if _SKIP_DIRS.intersection(rel.parts) or path == root:
                continue
            if any(rel.match(ex) or str(rel) == ex for ex in exclude):
                continue
            if path.is_dir() and (path / "package.json").is_file():
                found[path] = None
    return list(found)


# -- other files ---------------------------------------------------------------------------

_MAKE_TARGET = re.compile(
    r"^([A-Za-z0-9_][A-Za-z0-9_./-]*(?:\s+[A-Za-z0-9_][A-Za-z0-9_./-]*)*)\s*:(?!=)"
)


@contract(ThreadSafety.TS)
def makefile_targets(path: str | Path) -> list[str]:
    """Explicit targets of a Makefile, in file order (no pattern rules, no ``.SPECIAL``).

    Thread safety: TS. Reads the file only; a missing or unreadable file gives [].
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    targets: dict[str, None] = {}
    for line in text.splitlines():
        if line.startswith(("\t", " ", "#")):
            continue
        match = _MAKE_TARGET.match(line)
        if match:
            for target in match.group(1).split():
                targets.setdefault(target, None)
    return list(targets)


@contract(ThreadSafety.TS)
def procfile_entries(path: str | Path) -> dict[str, str]:
    """``name: command`` entries of a Procfile, in file order.

    Thread safety: TS. Reads the file only; a missing or unreadable file gives {}.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    entries: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+)\s*:\s*(.+)$", line.strip())
        if match and not line.lstrip().startswith("#"):
            entries[match.group(1)] = match.group(2).strip()
    return entries


def _vscode_tasks(root: Path, problems: list[str]) -> list[Script]:
    data = _read_json(root / ".vscode" / "tasks.json", problems, jsonc=True)
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        return []
    scripts: list[Script] = []
    for task in data["tasks"]:
        if not isinstance(task, dict) or task.get("type", "shell") != "shell":
            continue
        label, command = task.get("label"), task.get("command")
        if not isinstance(label, str) or not isinstance(command, str) or not command.strip():
            continue
        args = task.get("args")
        if isinstance(args, list):
            command = " ".join([command, *(shlex.quote(str(a)) for a in args)])
        cwd = root
        options = task.get("options")
        if isinstance(options, dict) and isinstance(options.get("cwd"), str):
            raw = options["cwd"].replace("${workspaceFolder}", str(root))
            cwd = (root / raw).resolve()
        command = command.replace("${workspaceFolder}", str(root))
        scripts.append(Script(f"vscode:{label}", command, str(cwd), "vscode", None, command))
    return scripts


_ECOSYSTEMS: tuple[tuple[tuple[str, ...], tuple[tuple[str, str], ...]], ...] = (
    (("go.mod",), (("go:run", "go run ."), ("go:build", "go build ./..."), ("go:test", "go test ./..."), ("go:tidy", "go mod tidy"))),
    (("Cargo.toml",), (("cargo:run", "cargo run"), ("cargo:build", "cargo build"), ("cargo:test", "cargo test"), ("cargo:check", "cargo check"))),
    (("build.gradle", "build.gradle.kts"), (("gradle:run", "./gradlew run"), ("gradle:build", "./gradlew build"), ("gradle:test", "./gradlew test"), ("gradle:bootRun", "./gradlew bootRun"))),
    (("pom.xml",), (("mvn:spring-boot:run", "mvn spring-boot:run"), ("mvn:compile", "mvn compile"), ("mvn:test", "mvn test"), ("mvn:package", "mvn package"))),
    (("pyproject.toml", "setup.py", "requirements.txt"), (("python:pytest", "python -m pytest"),)),
    (("requirements.txt",), (("pip:install", "pip install -r requirements.txt"),)),
    (("main.py",), (("python:main", "python main.py"),)),
    (("Gemfile",), (("rails:server", "bundle exec rails server"), ("bundle:rspec", "bundle exec rspec"), ("bundle:install", "bundle install"))),
    (("composer.json",), (("php:serve", "php artisan serve"), ("composer:install", "composer install"), ("php:test", "./vendor/bin/phpunit"))),
    (("pubspec.yaml",), (("flutter:run", "flutter run"), ("flutter:build", "flutter build"), ("flutter:test", "flutter test"))),
)  # fmt: skip

_DOTNET_SUFFIXES = (".csproj", ".fsproj", ".vbproj", ".sln")


def _ecosystem_scripts(root: Path) -> list[Script]:
    scripts: list[Script] = []
    for markers, commands in _ECOSYSTEMS:
        if any((root / marker).is_file() for marker in markers):
            scripts += [Script(n, c, str(root), "detected", None, c) for n, c in commands]
    try:
        names = [p.name for p in root.iterdir()]
    except OSError:
        names = []
    if any(name.endswith(_DOTNET_SUFFIXES) for name in names):
        for verb in ("run", "build", "test", "watch run"):
            command = f"dotnet {verb}"
            scripts.append(
                Script(
                    f"dotnet:{verb.replace(' ', '-')}",
                    command,
                    str(root),
                    "detected",
                    None,
                    command,
                )
            )
    return scripts


# -- discovery -----------------------------------------------------------------------------


def _package_scripts(
    data: Any, pm: str, cwd: Path, source: str, package: str | None, problems: list[str]
) -> list[Script]:
    if not isinstance(data, dict):
        return []
    scripts = data.get("scripts", {})
    if not isinstance(scripts, Mapping):
        problems.append(f'{cwd / "package.json"}: "scripts" is not an object; ignored')
        return []
    found: list[Script] = []
    for name, body in scripts.items():
        if not isinstance(name, str) or not name or not isinstance(body, str):
            continue
        key = f"{package}:{name}" if package else name
        command = f"{pm} run {shlex.quote(name)}"
        found.append(Script(key, command, str(cwd), source, package, body))
    return found


@contract(ThreadSafety.TS)
def discover(work_dir: str | Path, package_manager: str | None = None) -> Discovery:
    """Find everything runnable in ``work_dir`` (see the module docstring).

    Thread safety: TS. Reads files only; never raises for a broken or missing file (see
    ``Discovery.problems``).

    Raises:
        BrummerError: INVALID_ARGUMENT for an unknown ``package_manager``; NOT_FOUND when
            ``work_dir`` is not a folder.
    """
    root = Path(work_dir).resolve()
    if not root.is_dir():
        raise BrummerError(
            "process",
            ErrorCode.NOT_FOUND,
            f"project folder {str(root)!r} does not exist",
            hint="pass the folder of your project (where package.json lives)",
        )
    problems: list[str] = []
    package_json = _read_json(root / "package.json", problems)
    if package_json is not None and not isinstance(package_json, dict):
        problems.append(f"{root / 'package.json'}: top level is not an object; ignored")
        package_json = None
    pm = detect_package_manager(root, package_manager, package_json=package_json or {})
    found: list[Script] = _package_scripts(package_json, pm, root, "package.json", None, problems)
    for folder in workspace_dirs(root, _workspace_patterns(root, package_json, problems)):
        data = _read_json(folder / "package.json", problems)
        if not isinstance(data, dict):
            continue
        name = data.get("name")
        package = name if isinstance(name, str) and name else folder.name
        found += _package_scripts(data, pm, folder, "workspace", package, problems)
    for name, command in procfile_entries(root / "Procfile").items():
        found.append(Script(f"procfile:{name}", command, str(root), "procfile", None, command))
    for target in makefile_targets(root / "Makefile"):
        command = f"make {shlex.quote(target)}"
        found.append(Script(f"make:{target}", command, str(root), "makefile", None, command))
    found += _vscode_tasks(root, problems)
    found += _ecosystem_scripts(root)
    scripts: dict[str, Script] = {}
    for script in found:
        scripts.setdefault(script.name, script)  # earlier sources win a clash
    return Discovery(scripts, pm, tuple(problems))

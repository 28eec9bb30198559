"""Script discovery: package.json, package managers, workspaces, other ecosystems, JSONC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brummer.errors import BrummerError, ErrorCode
from brummer.process.scripts import (
    detect_package_manager,
    discover,
    loads_jsonc,
    makefile_targets,
    procfile_entries,
    workspace_dirs,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


# -- package.json and package managers ---------------------------------------------------


def test_npm_fixture_scripts_are_run_with_npm() -> None:
    found = discover(FIXTURES / "npm-project")
    assert found.package_manager == "npm"
    assert found.problems == ()
    hello = found.scripts["hello"]
    assert hello.command == "npm run hello"
    assert hello.source == "package.json"
    assert hello.description == "node scripts/hello.js"
    assert hello.cwd == str(FIXTURES / "npm-project")
    assert {"fail", "stack", "urls", "dev", "tree", "stubborn", "build:css"} <= set(found.scripts)


@pytest.mark.parametrize(
    ("files", "package_json", "expected"),
    [
        ((), {}, "npm"),
        (("yarn.lock",), {}, "yarn"),
        (("pnpm-lock.yaml",), {}, "pnpm"),
        (("bun.lockb",), {}, "bun"),
        (("bun.lock",), {}, "bun"),
        (("package-lock.json",), {}, "npm"),
        (("bun.lockb", "yarn.lock"), {}, "bun"),
        (("pnpm-lock.yaml", "yarn.lock"), {}, "pnpm"),
        (("yarn.lock",), {"engines": {"node": ">=18", "pnpm": ">=8"}}, "pnpm"),
        (("yarn.lock",), {"packageManager": "bun@1.1.0"}, "bun"),
        ((), {"packageManager": "pnpm@9.1.0", "engines": {"yarn": "1"}}, "pnpm"),
        ((), {"packageManager": "unknown@1"}, "npm"),
    ],
)
def test_package_manager_precedence(
    tmp_path: Path, files: tuple[str, ...], package_json: dict[str, object], expected: str
) -> None:
    write_json(tmp_path / "package.json", package_json)
    for name in files:
        (tmp_path / name).write_text("")
    assert detect_package_manager(tmp_path) == expected


def test_explicit_package_manager_wins_and_is_used_for_run(tmp_path: Path) -> None:
    write_json(tmp_path / "package.json", {"scripts": {"dev": "vite"}})
    (tmp_path / "yarn.lock").write_text("")
    assert detect_package_manager(tmp_path, "pnpm") == "pnpm"
    assert discover(tmp_path, "pnpm").scripts["dev"].command == "pnpm run dev"
    assert discover(tmp_path).scripts["dev"].command == "yarn run dev"


def test_unknown_package_manager_override_is_invalid_argument(tmp_path: Path) -> None:
    with pytest.raises(BrummerError) as info:
        detect_package_manager(tmp_path, "pip")
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert "npm" in info.value.hint


def test_script_names_with_shell_characters_are_quoted(tmp_path: Path) -> None:
    write_json(tmp_path / "package.json", {"scripts": {"a b;rm": "echo hi", "build:css": "x"}})
    scripts = discover(tmp_path).scripts
    assert scripts["a b;rm"].command == "npm run 'a b;rm'"
    assert scripts["build:css"].command == "npm run build:css"


# -- broken and missing files --------------------------------------------------------------


def test_package_json_that_is_not_json_gives_a_problem_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"scripts": {"dev": "vite",}')
    (tmp_path / "go.mod").write_text("module x\n")
    found = discover(tmp_path)
    assert "dev" not in found.scripts
    assert "go:run" in found.scripts  # the rest of the project is still discovered
    assert len(found.problems) == 1
    assert "package.json" in found.problems[0]
    assert "not valid JSON" in found.problems[0]


@pytest.mark.parametrize(
    "content", ["[1, 2]", '{"scripts": ["dev"]}', '{"scripts": {"dev": 3}}', "", "\xff"]
)
def test_odd_package_json_shapes_never_raise(tmp_path: Path, content: str) -> None:
    (tmp_path / "package.json").write_text(content, encoding="latin-1")
    found = discover(tmp_path)
    assert found.scripts == {}


def test_folder_without_package_json_is_fine(tmp_path: Path) -> None:
    found = discover(tmp_path)
    assert found.scripts == {}
    assert found.problems == ()
    assert found.package_manager == "npm"


def test_missing_folder_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(BrummerError) as info:
        discover(tmp_path / "nope")
    assert info.value.code is ErrorCode.NOT_FOUND


# -- workspaces ------------------------------------------------------------------------------


def test_yarn_workspace_fixture_lists_every_package_script() -> None:
    root = FIXTURES / "yarn-workspace"
    found = discover(root)
    assert found.package_manager == "yarn"
    web = found.scripts["@demo/web:dev"]
    assert web.source == "workspace"
    assert web.package == "@demo/web"
    assert web.cwd == str(root / "packages" / "web")
    assert web.command == "yarn run dev"
    assert found.scripts["@demo/web:build"].cwd == str(root / "packages" / "web")
    assert found.scripts["api:start"].cwd == str(root / "packages" / "api")
    assert found.scripts["lint"].source == "package.json"


def test_pnpm_workspace_fixture_reads_the_yaml_list() -> None:
    root = FIXTURES / "pnpm-workspace"
    found = discover(root)
    assert found.package_manager == "pnpm"
    assert found.scripts["site:dev"].cwd == str(root / "apps" / "site")
    assert found.scripts["site:test"].command == "pnpm run test"
    assert found.scripts["@demo/lib:build"].cwd == str(root / "packages" / "lib")


def test_workspaces_object_form_and_negation(tmp_path: Path) -> None:
    write_json(tmp_path / "package.json", {"workspaces": {"packages": ["pkgs/*", "!pkgs/skip"]}})
    write_json(tmp_path / "pkgs" / "one" / "package.json", {"name": "one", "scripts": {"t": "x"}})
    write_json(tmp_path / "pkgs" / "skip" / "package.json", {"name": "skip", "scripts": {"t": "x"}})
    (tmp_path / "pkgs" / "no-manifest").mkdir()
    scripts = discover(tmp_path).scripts
    assert "one:t" in scripts
    assert "skip:t" not in scripts


def test_unnamed_workspace_package_uses_its_folder_name(tmp_path: Path) -> None:
    write_json(tmp_path / "package.json", {"workspaces": ["apps/*"]})
    write_json(tmp_path / "apps" / "shop" / "package.json", {"scripts": {"dev": "x"}})
    assert "shop:dev" in discover(tmp_path).scripts


def test_lerna_nx_and_rush_workspaces(tmp_path: Path) -> None:
    write_json(tmp_path / "lerna.json", {"packages": ["modules/*"]})
    write_json(tmp_path / "modules" / "m" / "package.json", {"name": "m", "scripts": {"a": "x"}})
    (tmp_path / "nx.json").write_text("{}")
    write_json(tmp_path / "libs" / "l" / "package.json", {"name": "l", "scripts": {"b": "x"}})
    (tmp_path / "rush.json").write_text(
        '{ /* rush */ "projects": [{"packageName": "r", "projectFolder": "tools/r"},] }'
    )
    write_json(tmp_path / "tools" / "r" / "package.json", {"name": "r", "scripts": {"c": "x"}})
    scripts = discover(tmp_path).scripts
    assert {"m:a", "l:b", "r:c"} <= set(scripts)


def test_workspace_globs_never_leave_the_project_or_enter_node_modules(tmp_path: Path) -> None:
    write_json(tmp_path / "node_modules" / "dep" / "package.json", {"name": "dep"})
    write_json(tmp_path / "a" / "package.json", {"name": "a"})
    dirs = workspace_dirs(tmp_path, ["**", "../*", "/etc", "node_modules/*"])
    assert dirs == [(tmp_path / "a").resolve()]


def test_root_script_wins_a_name_clash_with_a_workspace_script(tmp_path: Path) -> None:
    write_json(tmp_path / "package.json", {"workspaces": ["p/*"], "scripts": {"web:dev": "root"}})
    write_json(tmp_path / "p" / "web" / "package.json", {"name": "web", "scripts": {"dev": "w"}})
    assert discover(tmp_path).scripts["web:dev"].source == "package.json"


# -- other ecosystems, Makefile, Procfile, VS Code -----------------------------------------


def test_polyglot_fixture_offers_make_procfile_go_and_vscode() -> None:
    root = FIXTURES / "polyglot"
    scripts = discover(root).scripts
    assert scripts["make:build"].command == "make build"
    assert scripts["make:build"].source == "makefile"
    assert scripts["procfile:web"].command == "python -m http.server 8000"
    assert scripts["procfile:web"].source == "procfile"
    assert scripts["go:run"].command == "go run ."
    assert scripts["go:test"].source == "detected"
    assert scripts["vscode:Build all"].command == "make build"
    assert scripts["vscode:Echo args"].command == "echo 'two words' http://example.com/a//b"
    assert "vscode:Not a shell task" not in scripts


def test_makefile_targets_skip_variables_specials_and_pattern_rules() -> None:
    assert makefile_targets(FIXTURES / "polyglot" / "Makefile") == ["build", "test", "clean"]


def test_procfile_entries_skip_comments() -> None:
    assert procfile_entries(FIXTURES / "polyglot" / "Procfile") == {
        "web": "python -m http.server 8000",
        "worker": "python worker.py --queue default",
    }


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("Cargo.toml", "cargo:run"),
        ("build.gradle.kts", "gradle:build"),
        ("pom.xml", "mvn:test"),
        ("app.csproj", "dotnet:watch-run"),
        ("pyproject.toml", "python:pytest"),
        ("requirements.txt", "pip:install"),
        ("Gemfile", "rails:server"),
        ("composer.json", "composer:install"),
        ("pubspec.yaml", "flutter:run"),
    ],
)
def test_ecosystem_markers(tmp_path: Path, marker: str, expected: str) -> None:
    (tmp_path / marker).write_text("")
    script = discover(tmp_path).scripts[expected]
    assert script.source == "detected"
    assert script.cwd == str(tmp_path)


def test_broken_tasks_json_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / ".vscode").mkdir()
    (tmp_path / ".vscode" / "tasks.json").write_text("{ tasks: nope }")
    found = discover(tmp_path)
    assert found.scripts == {}
    assert "tasks.json" in found.problems[0]


# -- JSONC ---------------------------------------------------------------------------------


def test_jsonc_comments_and_trailing_commas() -> None:
    text = """{
      // line comment with "quotes" and a , comma
      "a": "http://not-a-comment", /* block
      comment */ "b": [1, 2, ],
      "c": "escaped \\" // still a string",
    }"""
    assert loads_jsonc(text) == {
        "a": "http://not-a-comment",
        "b": [1, 2],
        "c": 'escaped " // still a string',
    }


def test_jsonc_still_rejects_broken_json() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads_jsonc('{"a": }')

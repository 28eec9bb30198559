"""Configuration: file chain, per-key override, problems with file and line, env, flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from brummer.config import (
    Config,
    ErrorRule,
    RestartSettings,
    config_files,
    format_settings,
    load_config,
)
from brummer.errors import BrummerError, ErrorCode


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    """home/, and a project two levels below root/: root/outer/project."""
    home = tmp_path / "home"
    outer = tmp_path / "root" / "outer"
    project = outer / "project"
    home.mkdir()
    project.mkdir(parents=True)
    return home, outer, project


def write(directory: Path, text: str) -> Path:
    path = directory / ".brum.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_when_no_file_and_no_env(tree: tuple[Path, Path, Path]) -> None:
    home, _, project = tree
    config = load_config(project, home=home, env={})
    assert config == Config()
    assert config.source_of("mcp_port") == "default"
    assert config.problems == ()


def test_nearer_file_overrides_per_key_and_home_is_farthest(
    tree: tuple[Path, Path, Path],
) -> None:
    home, outer, project = tree
    write(home, 'mcp_port = 1111\nproxy_mode = "full"\ntelemetry = false\n')
    outer_file = write(outer, "mcp_port = 2222\nno_proxy = true\n")
    project_file = write(project, "# near\n\nmcp_port = 3333\n")
    config = load_config(project, home=home, env={})
    assert config.mcp_port == 3333
    assert config.no_proxy is True
    assert config.proxy_mode == "full"
    assert config.telemetry is False
    assert config.source_of("mcp_port") == f"{project_file}:3"
    assert config.source_of("no_proxy") == f"{outer_file}:2"
    assert config_files(project, home=home) == [
        home / ".brum.toml",
        outer / ".brum.toml",
        project / ".brum.toml",
    ]


def test_unknown_key_and_wrong_type_are_reported_with_file_and_line(
    tree: tuple[Path, Path, Path],
) -> None:
    home, outer, project = tree
    write(outer, "proxy_port = 20000\n")
    path = write(project, 'mcp_port = 7000\nbogus = 1\nproxy_port = "high"\nproxy_mode = "half"\n')
    config = load_config(project, home=home, env={})
    assert config.mcp_port == 7000
    assert config.proxy_port == 20000  # the bad value is not applied; the farther one stays
    assert config.proxy_mode == "reverse"
    found = {(p.key, p.line) for p in config.problems}
    assert found == {("bogus", 2), ("proxy_port", 3), ("proxy_mode", 4)}
    assert all(p.source == str(path) for p in config.problems)
    assert f"{path}:3: proxy_port: expected an integer" in str(config.problems[1])


def test_file_that_is_not_toml_is_a_problem_not_a_crash(tree: tuple[Path, Path, Path]) -> None:
    home, outer, project = tree
    write(outer, "mcp_port = 4444\n")
    bad = write(project, "mcp_port = 1\nthis is [not toml\n")
    config = load_config(project, home=home, env={})
    assert config.mcp_port == 4444
    (problem,) = config.problems
    assert problem.source == str(bad)
    assert problem.line == 2
    assert "not valid TOML" in problem.message


def test_env_overrides_files_and_bad_env_is_reported(tree: tuple[Path, Path, Path]) -> None:
    home, _, project = tree
    write(project, "mcp_port = 3333\nno_mcp = false\n")
    env = {"BRUMMER_MCP_PORT": "9999", "BRUMMER_NO_MCP": "yes", "BRUMMER_PROXY_PORT": "x"}
    config = load_config(project, home=home, env=env)
    assert config.mcp_port == 9999
    assert config.no_mcp is True
    assert config.source_of("mcp_port") == "env BRUMMER_MCP_PORT"
    (problem,) = config.problems
    assert problem.source == "environment BRUMMER_PROXY_PORT"
    assert config.proxy_port == 19888


def test_restart_policies_error_rules_and_alias(tree: tuple[Path, Path, Path]) -> None:
    home, outer, project = tree
    write(outer, '[restart]\ntest = "on-failure"\n')
    write(
        project,
        'preferred_package_manager = "pnpm"\n'
        '[restart.dev]\nmode = "always"\nmax_restarts = 3\n'
        '[restart.bad]\nmode = "sometimes"\n'
        '[[error_rules]]\npattern = "BOOM \\\\d+"\nkind = "Boom"\ntriggers = ["Boom"]\n'
        '[[error_rules]]\npattern = "(unclosed"\n'
        '[[error_rules]]\npattern = "Disk Full"\n'
        "[[error_rules]]\npattern = 'ERR_[A-Z_]+'\nkind = 'NodeError'\n"
        '[[error_rules]]\npattern = "a|b"\n',
    )
    config = load_config(project, home=home, env={})
    assert config.package_manager == "pnpm"
    assert config.restart_for("dev") == RestartSettings(mode="always", max_restarts=3)
    assert config.restart_for("test") == RestartSettings(mode="on-failure")
    assert config.restart_for("other") is None
    assert config.error_rules == (
        ErrorRule(pattern=r"BOOM \d+", kind="Boom", triggers=("boom",)),
        ErrorRule(pattern="Disk Full", triggers=("disk full",)),
        ErrorRule(pattern="ERR_[A-Z_]+", kind="NodeError", triggers=("err_",)),
    )
    keys = {p.key: p.line for p in config.problems}
    assert keys == {"restart.bad": 5, "error_rules[1]": 11, "error_rules[4]": 18}


def test_a_restart_table_without_mode_restarts_on_failure_with_the_class_defaults(
    tree: tuple[Path, Path, Path],
) -> None:
    home, _, project = tree
    write(project, "[restart.dev]\nbackoff_initial = 2\n")
    settings = load_config(project, home=home, env={}).restart_for("dev")
    assert settings == RestartSettings(mode="on-failure", backoff_initial=2.0)
    assert settings is not None
    assert type(settings.backoff_initial) is float


def test_missing_project_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(BrummerError) as info:
        load_config(tmp_path / "nope", home=tmp_path, env={})
    assert info.value.code is ErrorCode.NOT_FOUND
    assert "does not exist" in str(info.value)
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(LookupError, match="not a directory"):
        load_config(file, home=tmp_path, env={})


def test_with_overrides_records_command_line_and_validates() -> None:
    config = Config().with_overrides("command line", mcp_port=1234, proxy_port=None)
    assert config.mcp_port == 1234
    assert config.source_of("mcp_port") == "command line"
    assert config.source_of("proxy_port") == "default"
    with pytest.raises(ValueError, match="proxy_mode"):
        config.with_overrides("command line", proxy_mode="sideways")
    with pytest.raises(BrummerError) as info:
        config.with_overrides("command line", nonsense=1)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT


def test_format_settings_names_every_source(tree: tuple[Path, Path, Path]) -> None:
    home, _, project = tree
    path = write(project, "mcp_port = 3333\nwhat = 1\n[restart.dev]\nmode = 'always'\n")
    config = load_config(project, home=home, env={"BRUMMER_NO_PROXY": "1"})
    text = format_settings(config)
    assert f"mcp_port = 3333  # {path}:1" in text
    assert "no_proxy = true  # env BRUMMER_NO_PROXY" in text
    assert "proxy_port = 19888  # default" in text
    assert "[restart.dev]" in text
    assert f"#   {path}:2: what: unknown key" in text


_values = st.fixed_dictionaries(
    {},
    optional={
        "mcp_port": st.integers(0, 65535),
        "proxy_port": st.integers(0, 65535),
        "no_mcp": st.booleans(),
        "proxy_mode": st.sampled_from(["reverse", "full"]),
        "stop_timeout": st.floats(0, 100, allow_nan=False),
        "log_max_entries": st.integers(1, 10**6),
    },
)


_values_keys = ("mcp_port", "proxy_port", "no_mcp", "proxy_mode", "stop_timeout", "log_max_entries")


def _toml(values: dict[str, object]) -> str:
    lines = []
    for key, value in values.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        else:
            lines.append(f"{key} = {value!r}")
    return "\n".join(lines) + "\n"


@given(far=_values, near=_values, home_values=_values)
def test_merge_matches_nearest_wins_model(
    tmp_path_factory: pytest.TempPathFactory,
    far: dict[str, object],
    near: dict[str, object],
    home_values: dict[str, object],
) -> None:
    base = tmp_path_factory.mktemp("merge")
    home = base / "home"
    project = base / "outer" / "project"
    home.mkdir()
    project.mkdir(parents=True)
    write(home, _toml(home_values))
    write(project.parent, _toml(far))
    write(project, _toml(near))
    config = load_config(project, home=home, env={})
    expected = {**home_values, **far, **near}
    for key, value in expected.items():
        assert getattr(config, key) == value, key
    assert config.problems == ()
    defaults = Config()
    for key in set(_values_keys) - set(expected):
        assert getattr(config, key) == getattr(defaults, key), key


def test_os_environ_is_the_default_env(
    tree: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _, project = tree
    monkeypatch.setitem(os.environ, "BRUMMER_PROXY_MODE", "full")
    assert load_config(project, home=home).proxy_mode == "full"


def test_unreadable_project_directory_is_a_permission_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, for whom every directory is readable: make access() say no.
    monkeypatch.setattr("brummer.config.os.access", lambda _path, _mode: False)
    with pytest.raises(BrummerError) as info:
        load_config(tmp_path, home=tmp_path, env={})
    assert info.value.code is ErrorCode.PERMISSION
    assert "not readable" in str(info.value)

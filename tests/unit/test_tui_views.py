"""The interface rendered headlessly: widget.render((cols, rows)).text, keys fed by keypress."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, strategies as st

from brummer.tui.app import BrummerTUI
from brummer.tui.views.logs import LogsView
from tests.unit.test_tui_fakes import FakeApp, FakeGroup, FakeProcess, FakeStatus, FakeURL

SIZE = (100, 20)


def screen(tui: BrummerTUI, size: tuple[int, int] = SIZE) -> str:
    return "\n".join(row.decode("utf-8") for row in tui.top.render(size, focus=True).text)


def press(tui: BrummerTUI, *keys: str, size: tuple[int, int] = SIZE) -> None:
    for key in keys:
        tui.keypress(size, key)


def command(tui: BrummerTUI, text: str, prefix: str = ":") -> None:
    press(tui, prefix, *list(text), "enter")


@pytest.fixture
def app() -> FakeApp:
    return FakeApp()


def make(app: FakeApp, *, initial: tuple[str, ...] = ()) -> BrummerTUI:
    return BrummerTUI(app, initial=initial, inline_background=True)


def logs_view(tui: BrummerTUI) -> LogsView:
    view = tui.views["logs"]
    assert isinstance(view, LogsView)
    return view


def test_starts_on_scripts_and_lists_them(app: FakeApp) -> None:
    tui = make(app)
    text = screen(tui)
    assert "1 Scripts" in text
    assert "7 Settings" in text
    for name in ("dev", "test", "build"):
        assert name in text
    assert "python3 server.py" in text


def test_starts_on_logs_when_scripts_were_named(app: FakeApp) -> None:
    tui = make(app, initial=("dev",))
    assert tui.current == "logs"


def test_tab_shift_tab_and_number_keys_switch_views(app: FakeApp) -> None:
    tui = make(app)
    press(tui, "tab")
    assert tui.current == "processes"
    press(tui, "shift tab", "shift tab")
    assert tui.current == "settings"
    press(tui, "4")
    assert tui.current == "errors"
    assert "Errors: 0" in screen(tui)


def test_logs_render_ansi_as_attributes_not_escape_codes(app: FakeApp) -> None:
    app.logs.add("dev-1", "dev", "plain \x1b[31mred text\x1b[0m end")
    tui = make(app, initial=("dev",))
    canvas = tui.top.render(SIZE, focus=True)
    text = "\n".join(row.decode() for row in canvas.text)
    assert "plain red text end" in text
    assert "\x1b" not in text
    attrs_used = {attr for row in canvas.content() for attr, _, _ in row}
    assert any("AttrSpec('dark red'" in repr(a) for a in attrs_used)


def test_follow_pauses_on_scroll_up_and_resumes_at_end(app: FakeApp) -> None:
    for i in range(100):
        app.logs.add("dev-1", "dev", f"line {i:03d}")
    tui = make(app, initial=("dev",))
    view = logs_view(tui)
    assert "line 099" in screen(tui)
    press(tui, "page up")
    assert not view.follow
    app.logs.add("dev-1", "dev", "line 100")
    tui.refresh()
    text = screen(tui)
    assert "line 100" not in text
    assert "paused" in text
    press(tui, "end")
    assert view.follow
    app.logs.add("dev-1", "dev", "line 101")
    tui.refresh()
    text = screen(tui)
    assert "line 101" in text
    assert "following" in text


def test_scrolling_down_to_the_bottom_resumes_follow(app: FakeApp) -> None:
    for i in range(30):
        app.logs.add("dev-1", "dev", f"line {i}")
    tui = make(app, initial=("dev",))
    view = logs_view(tui)
    press(tui, "up")
    assert not view.follow
    press(tui, "down")
    assert view.follow


def test_search_next_and_previous_match(app: FakeApp) -> None:
    for i in range(200):
        app.logs.add("dev-1", "dev", "needle here" if i in (20, 120) else f"hay {i}")
    tui = make(app, initial=("dev",))
    view = logs_view(tui)
    command(tui, "needle", prefix="/")
    assert view.pane.cursor == 120
    assert "»" in screen(tui)
    press(tui, "N")
    assert view.pane.cursor == 20
    press(tui, "N")
    assert view.pane.cursor == 20
    assert "no more matches" in screen(tui)
    press(tui, "n")
    assert view.pane.cursor == 120


def test_show_hide_and_invalid_regex(app: FakeApp) -> None:
    for word in ("alpha", "beta", "gamma", "alphabet"):
        app.logs.add("dev-1", "dev", word)
    tui = make(app, initial=("dev",))
    command(tui, "show ^alpha")
    text = screen(tui)
    assert "alphabet" in text
    assert "gamma" not in text
    command(tui, "show")
    command(tui, "hide a$")
    text = screen(tui)
    assert "alphabet" in text
    assert "beta" not in text
    command(tui, "show (unclosed")
    text = screen(tui)
    assert "does not compile" in text
    assert "alphabet" in text  # the previous filters stay as they were


def test_high_priority_filter_and_clear(app: FakeApp) -> None:
    app.logs.add("dev-1", "dev", "just info")
    app.logs.add("dev-1", "dev", "TypeError: bad", is_error=True)
    tui = make(app, initial=("dev",))
    press(tui, "p")
    text = screen(tui)
    assert "TypeError" in text
    assert "just info" not in text
    press(tui, "p", "x")
    assert app.logs.entries == []
    assert "TypeError" not in screen(tui)


def test_repeated_lines_collapse_with_a_count(app: FakeApp) -> None:
    for _ in range(5):
        app.logs.add("dev-1", "dev", "same again")
    app.logs.add("dev-1", "dev", "different")
    tui = make(app, initial=("dev",))
    text = screen(tui)
    assert text.count("same again") == 1
    assert "(x5)" in text


def test_scrolling_100k_lines_is_cheap(app: FakeApp) -> None:
    app.config = app.config.with_overrides("test", log_max_entries=100_000)
    for i in range(100_000):
        app.logs.add("p-1", "flood", f"line {i}")
    tui = make(app, initial=("flood",))
    view = logs_view(tui)
    start = time.perf_counter()
    text = screen(tui)
    assert "line 99999" in text
    press(tui, "home")
    assert "line 0 " in screen(tui) + " "
    press(tui, *["page down"] * 20)
    assert view.pane.cursor == 300
    assert "line 300" in screen(tui)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0  # generous on a shared machine; the benchmark measures it properly


def test_binary_and_huge_lines_are_cut_and_drawn(app: FakeApp) -> None:
    app.logs.add("dev-1", "dev", "bin \x00\x01\x02\x07 \ufffd tail")
    app.logs.add("dev-1", "dev", "x" * 10_000_000)
    tui = make(app, initial=("dev",))
    text = screen(tui, (200, 60))
    assert "bin ????" in text
    assert "more characters" in text


def test_per_process_logs_from_processes_view_and_esc_back(app: FakeApp) -> None:
    dev, test = FakeProcess("dev"), FakeProcess("test")
    app.processes.procs += [dev, test]
    app.logs.add(dev.id, "dev", "from dev")
    app.logs.add(test.id, "test", "from test")
    tui = make(app)
    press(tui, "2")
    text = screen(tui)
    assert "▶ dev" in text or "▶ test" in text
    assert "1m15s" in text
    focused = tui.views["processes"]
    name = focused.selected.name  # type: ignore[attr-defined]
    press(tui, "enter")
    assert tui.current == "logs"
    text = screen(tui)
    assert f"process {name}" in text
    other = "test" if name == "dev" else "dev"
    assert f"from {other}" not in text
    press(tui, "esc")
    assert f"from {other}" in screen(tui)
    press(tui, "esc")
    assert tui.current == "processes"


def test_stop_restart_and_restart_all(app: FakeApp) -> None:
    app.processes.procs.append(FakeProcess("dev"))
    tui = make(app)
    press(tui, "2", "s")
    assert app.processes.calls[0][0] == "stop"
    assert "stopped dev" in screen(tui)
    assert "■ dev" in screen(tui)
    press(tui, "r")
    assert app.processes.calls[-1][0] == "restart"
    assert "▶ dev" in screen(tui)
    app.processes.procs.append(FakeProcess("watch"))
    press(tui, "ctrl r")
    assert [c for c, _ in app.processes.calls].count("restart") == 3


def test_scripts_filter_and_enter_runs(app: FakeApp) -> None:
    tui = make(app)
    press(tui, "/", "b", "u")
    text = screen(tui)
    assert "build" in text
    assert "python3 test.py" not in text
    press(tui, "enter", "enter")
    assert app.ran == ["build"]
    assert tui.current == "logs"


def test_commands_run_stop_restart_clear_and_errors(app: FakeApp) -> None:
    tui = make(app)
    command(tui, "run dev")
    assert app.ran == ["dev"]
    command(tui, "stop dev")
    assert app.processes.calls[-1][0] == "stop"
    command(tui, "restart dev")  # not running any more: restart starts it
    assert app.ran == ["dev", "dev"]
    command(tui, "stop nothing-like-this")
    assert "no running process named" in screen(tui)
    command(tui, "run explode")
    assert "no script named 'explode'" in screen(tui)
    command(tui, "frobnicate")
    assert "unknown command 'frobnicate'" in screen(tui)
    app.logs.add("dev-1", "dev", "x")
    command(tui, "clear all")
    assert app.logs.entries == []
    assert app.proxy.cleared == 1


def test_command_line_tab_completion_and_escape(app: FakeApp) -> None:
    tui = make(app)
    press(tui, ":", "r", "e", "s", "tab")
    assert tui.command.edit_text == "restart "
    press(tui, "esc")
    assert not tui.command_active
    press(tui, ":", "r", "u", "tab", "b", "tab")
    assert tui.command.edit_text == "run build"


def test_errors_view_shows_stack_and_copies_with_osc52(
    app: FakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = dt.datetime.now(dt.UTC)
    stack = ("TypeError: boom", "    at f (a.js:1:2)", "    at g (b.js:3:4)")
    app.logs.groups.append(
        FakeGroup("g1", "test-1", "test", now, now, "TypeError", "boom", stack, 3)
    )
    written: list[str] = []
    monkeypatch.setattr("brummer.tui.views.lists.shutil.which", lambda _name: None)
    tui = make(app)
    tui.write_terminal = written.append  # type: ignore[method-assign]
    assert "4 Errors •1" in screen(tui)
    press(tui, "4")
    text = screen(tui)
    assert "TypeError" in text
    assert "at g (b.js:3:4)" in text
    assert "x3" in text
    assert "4 Errors •" not in text
    press(tui, "c")
    assert written
    assert written[0].startswith("\x1b]52;c;")
    assert "copied the error (OSC 52)" in screen(tui)


def test_urls_view_lists_proxy_urls(app: FakeApp) -> None:
    now = dt.datetime.now(dt.UTC)
    app.logs.urls.append(
        FakeURL("http://localhost:3000/", "dev-1", "dev", now, "Local:", "http://127.0.0.1:20888/")
    )
    tui = make(app)
    press(tui, "5")
    text = screen(tui)
    assert "http://localhost:3000/ → http://127.0.0.1:20888/" in text


def test_web_view_filters_requests(app: FakeApp) -> None:
    class Req:
        def __init__(self, url: str, ctype: str, status: int = 200) -> None:
            self.url = "http://localhost:3000" + url
            self.method = "GET"
            self.status = status
            self.content_type = ctype
            self.timestamp = dt.datetime.now(dt.UTC)
            self.duration = 0.012
            self.response_size = 10
            self.process_name = "dev"

    app.proxy.requests += [
        Req("/", "text/html"),
        Req("/api/items", "application/json"),
        Req("/logo.png", "image/png", 404),
    ]
    tui = make(app)
    press(tui, "6")
    text = screen(tui)
    assert "/api/items" in text
    assert "/logo.png" in text
    press(tui, "f")
    text = screen(tui)
    assert "filter pages" in text
    assert "/api/items" not in text
    press(tui, "f")
    text = screen(tui)
    assert "/api/items" in text
    assert "/logo.png" not in text
    assert "content type: application/json" in text


def test_settings_view_shows_ports_and_sources(app: FakeApp) -> None:
    app.config = app.config.with_overrides("command line", mcp_port=7788)
    app.mcp = type("M", (), {"url": "http://127.0.0.1:7790/mcp"})()  # fell back to 7790
    tui = make(app)
    press(tui, "7")
    text = screen(tui, (100, 60))
    assert "package manager  npm" in text
    assert "mcp_port         7788       ← command line" in text
    assert "MCP              http://127.0.0.1:7790/mcp" in text
    assert "claude mcp add --transport http brummer http://127.0.0.1:7790/mcp" in text


def test_help_overlay_and_quit_ignores_later_keys(app: FakeApp) -> None:
    tui = make(app)
    press(tui, "2", "?")
    text = screen(tui)
    assert "Processes view" in text
    assert "restart every running process" in text
    press(tui, "x")
    assert not tui.help_shown
    assert tui.current == "processes"
    press(tui, "q")
    assert tui.exit_requested
    press(tui, "1", "tab", ":", "r")
    assert tui.current == "processes"
    assert not tui.command_active


def test_header_counts_running_and_failed(app: FakeApp) -> None:
    app.processes.procs += [FakeProcess("a"), FakeProcess("b"), FakeProcess("c", FakeStatus.FAILED)]
    tui = make(app)
    assert "2 Processes ▶2 ✗1" in screen(tui)


def test_too_small_terminal(app: FakeApp) -> None:
    tui = make(app)
    text = screen(tui, (39, 12))
    assert "too small" in text
    press(tui, "tab", size=(20, 5))
    assert tui.current == "processes"


def test_mouse_wheel_scrolls_logs(app: FakeApp) -> None:
    for i in range(100):
        app.logs.add("dev-1", "dev", f"line {i}")
    tui = make(app, initial=("dev",))
    view = logs_view(tui)
    tui.top.mouse_event(SIZE, "mouse press", 4, 5, 5, True)
    assert not view.follow
    assert view.pane.cursor == 96


@given(
    sizes=st.lists(st.tuples(st.integers(1, 250), st.integers(1, 80)), min_size=1, max_size=30),
    view=st.sampled_from(["1", "2", "3", "4", "5", "6", "7"]),
)
def test_resize_storm_never_crashes(sizes: list[tuple[int, int]], view: str) -> None:
    app = FakeApp()
    for i in range(50):
        app.logs.add("dev-1", "dev", f"line {i} " * (i % 7))
    app.processes.procs.append(FakeProcess("dev"))
    tui = make(app)
    press(tui, view)
    for size in sizes:
        canvas = tui.top.render(size, focus=True)
        assert canvas.rows() == size[1]
        assert canvas.cols() == size[0]


def test_save_writes_the_shown_lines_without_ansi(app: FakeApp, tmp_path: Path) -> None:
    app.work_dir = str(tmp_path)
    app.logs.add("dev-1", "dev", "\x1b[32mgreen\x1b[0m line")
    app.logs.add("dev-1", "dev", "hidden")
    tui = make(app, initial=("dev",))
    command(tui, "hide hidden")
    command(tui, "save out.txt")
    text = (tmp_path / "out.txt").read_text()
    assert text.endswith(" dev | green line\n")
    assert "hidden" not in text
    assert "saved 1 shown log lines" in screen(tui)


def test_click_puts_the_cursor_on_a_line(app: FakeApp) -> None:
    for i in range(100):
        app.logs.add("dev-1", "dev", f"line {i}")
    tui = make(app, initial=("dev",))
    view = logs_view(tui)
    screen(tui)
    # row 0 header, row 1 view info, rows 2.. log lines: the last 16 lines are 84..99
    tui.top.mouse_event(SIZE, "mouse press", 1, 10, 2, True)
    assert not view.follow
    assert view.pane.cursor == 84
    assert "paused" in screen(tui)


def test_workspace_scripts_run_by_their_key(app: FakeApp, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.test_tui_fakes import FakeScript

    workspace = {"web:dev": FakeScript("dev", "vite", source="workspace")}
    monkeypatch.setattr(app.processes, "scripts", lambda: workspace)
    tui = make(app)
    assert "web:dev" in screen(tui)
    assert "workspace" in screen(tui)
    press(tui, "enter")
    assert app.ran == ["web:dev"]


def test_configuration_problems_are_shown_at_start(app: FakeApp) -> None:
    from brummer.config import ConfigProblem

    problem = ConfigProblem("/p/.brum.toml", 3, "bogus", "unknown key")
    app.config = attrs.evolve(app.config, problems=(problem, problem))
    tui = make(app)
    assert "/p/.brum.toml:3: bogus: unknown key (+1 more, see 7 Settings)" in screen(tui)
    press(tui, "7")
    assert "! /p/.brum.toml:3: bogus: unknown key" in screen(tui, (100, 60))


def row_runs(canvas: Any, needle: str) -> list[tuple[Any, str]]:
    """The (attribute, text) runs of the first rendered row containing ``needle``."""
    for row in canvas.content():
        runs = [(attr, text.decode()) for attr, _cs, text in row]
        if needle in "".join(text for _, text in runs):
            return runs
    raise AssertionError(f"no row contains {needle!r}")


def attr_of(canvas: Any, needle: str) -> Any:
    """The attribute the text ``needle`` is drawn with."""
    for attr, text in row_runs(canvas, needle):
        if needle in text:
            return attr
    raise AssertionError(f"{needle!r} is split over several runs")


def test_log_colours_and_priority_filter_follow_the_real_store_levels() -> None:
    """Plain lines are not red (stderr or not); errors are red, warnings yellow; `p` keeps them."""
    from brummer.logs import LogStore

    app = FakeApp()
    store = LogStore()
    app.logs = store  # type: ignore[assignment]
    try:
        store.add("dev-1", "dev", "compiled successfully in 27 ms")
        store.add("dev-1", "dev", "\x1b[33m[watch]\x1b[0m src/App.tsx changed")
        store.add("dev-1", "dev", "> webpack --watch (progress on stderr)", True)
        store.add("dev-1", "dev", "warning: unused variable 'tmp'", True)
        store.add("dev-1", "dev", "TypeError: Cannot read properties of undefined", True)
        tui = make(app, initial=("dev",))
        canvas = tui.top.render(SIZE, focus=True)
        assert attr_of(canvas, "compiled successfully") is None
        assert attr_of(canvas, "src/App.tsx changed") is None
        assert attr_of(canvas, "progress on stderr") is None
        assert attr_of(canvas, "unused variable") == "warning"
        assert attr_of(canvas, "Cannot read properties") == "error"
        press(tui, "p")
        text = screen(tui)
        assert "TypeError" in text
        assert "unused variable" in text
        assert "compiled successfully" not in text
        assert "progress on stderr" not in text
    finally:
        store.close()


def test_the_selected_row_is_highlighted_across_its_whole_width(app: FakeApp) -> None:
    """A list row drawn in several colours (symbol, name, status, URL) still shows the cursor."""
    app.processes.procs += [FakeProcess("watch"), FakeProcess("dev")]
    tui = make(app)
    press(tui, "2")
    canvas = tui.top.render(SIZE, focus=True)
    selected = tui.views["processes"].selected
    assert selected is not None
    runs = row_runs(canvas, f"{selected.name} ")
    assert {attr for attr, _ in runs} == {"focus"}
    other = "dev" if selected.name == "watch" else "watch"
    assert "focus" not in {attr for attr, _ in row_runs(canvas, f"{other} ")}


def test_restart_replaces_the_row_and_keeps_order_and_selection(app: FakeApp) -> None:
    """A restarted process is one row (its latest run), in place, still selected."""
    dev, watch = FakeProcess("dev"), FakeProcess("watch")
    watch.start_time = dev.start_time + dt.timedelta(seconds=1)
    app.processes.procs += [dev, watch]
    tui = make(app)
    press(tui, "2", "down")
    assert tui.views["processes"].selected is watch
    press(tui, "r", "r")
    assert [c for c, _ in app.processes.calls] == ["restart", "restart"]
    text = screen(tui)
    rows = text.splitlines()
    assert "Processes: 2" in rows[1]
    assert [row.split()[1] for row in rows[2:4]] == ["dev", "watch"]
    assert "watch" not in "".join(rows[4:-2])
    assert "stopped" not in text
    selected = tui.views["processes"].selected
    assert selected.name == "watch"
    assert selected is not watch
    assert selected.is_running()


def test_scripts_show_what_they_run_not_the_npm_launcher(
    app: FakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from brummer.process import Script

    script = Script(
        name="a:dev",
        command="npm run dev",
        cwd="/ws/packages/a",
        source="workspace",
        package="a",
        description='node -e "serve()"',
    )
    monkeypatch.setattr(app.processes, "scripts", lambda: {"a:dev": script})
    text = screen(make(app))
    assert 'node -e "serve()"' in text


def test_web_details_give_the_duration_in_milliseconds(app: FakeApp) -> None:
    @attrs.frozen
    class Request:
        method: str = "GET"
        url: str = "http://localhost:3000/api/items"
        status: int = 200
        duration: float = 0.001829392000217922
        process_name: str = "dev"
        timestamp: dt.datetime = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

    app.proxy.requests.append(Request())
    tui = make(app)
    press(tui, "6")
    text = screen(tui, (100, 30))
    assert "duration: 1.8 ms" in text
    assert "0.0018" not in text


def test_an_empty_project_opens_on_scripts_saying_what_to_do(
    app: FakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.processes, "scripts", lambda: {})
    problem = "/p/package.json: not valid JSON (line 2); fix the file to see its scripts"
    monkeypatch.setattr(app.processes, "script_problems", lambda: [problem], raising=False)
    tui = make(app)
    assert tui.current == "scripts"
    text = screen(tui, (100, 20))
    assert "no scripts found" in text
    assert ":run <command>" in text
    assert "package.json: not valid JSON (line 2)" in text.split("\n", 3)[3]


def test_search_highlights_every_match_inside_the_line(app: FakeApp) -> None:
    """Not only a marker in the margin: the matching text itself stands out (pm2#4013)."""
    app.logs.add("dev-1", "dev", "\x1b[33m[watch]\x1b[0m compiled main.ts, compiled api.ts")
    app.logs.add("dev-1", "dev", "nothing to see")
    tui = make(app, initial=("dev",))
    command(tui, "compiled", prefix="/")
    runs = row_runs(tui.top.render(SIZE, focus=True), "compiled main.ts")
    assert [text for attr, text in runs if attr == "match"] == ["»", "compiled", "compiled"]
    assert "".join(text for _, text in runs).startswith("»")
    assert "[watch]" in "".join(text for attr, text in runs if attr != "match")


def test_each_process_name_has_its_own_colour_in_the_logs(app: FakeApp) -> None:
    app.logs.add("dev-1", "dev", "from dev")
    app.logs.add("watch-1", "watch", "from watch")
    tui = make(app, initial=("dev",))
    canvas = tui.top.render(SIZE, focus=True)
    dev, watch = attr_of(canvas, "dev "), attr_of(canvas, "watch ")
    assert dev != watch
    assert {dev, watch} <= {"name", "name 1", "name 2", "name 3", "name 4", "name 5"}


def test_wrapped_log_lines_continue_under_the_text_column(app: FakeApp) -> None:
    from brummer.tui.views.logpane import TEXT_COLUMN

    long = " ".join(f"word{i:03d}" for i in range(40))
    app.logs.add("dev-1", "dev", long)
    tui = make(app, initial=("dev",))
    rows = screen(tui, (80, 20)).splitlines()
    first = next(i for i, row in enumerate(rows) if "word000" in row)
    assert rows[first].index("word000") == TEXT_COLUMN
    continuation = rows[first + 1]
    assert continuation[:TEXT_COLUMN].strip() == ""
    assert continuation[TEXT_COLUMN] != " "
    # every character of the line is still shown, in order
    shown = rows[first][TEXT_COLUMN:] + "".join(
        r[TEXT_COLUMN:] for r in rows[first + 1 : first + 6]
    )
    assert long in shown


def test_a_narrow_terminal_still_names_the_current_view(app: FakeApp) -> None:
    app.processes.procs += [FakeProcess("a"), FakeProcess("b", FakeStatus.FAILED)]
    tui = make(app)
    press(tui, "3")
    header = screen(tui, (45, 12)).splitlines()[0]
    assert "3 Logs" in header
    assert "▶1" in header
    assert "✗1" in header
    assert " 7 " in header  # every view number is still there
    assert "7 Settings" in screen(tui, (120, 12)).splitlines()[0]


def test_header_counts_a_restarted_failure_once(app: FakeApp) -> None:
    first = FakeProcess("test", FakeStatus.FAILED)
    again = FakeProcess("test", FakeStatus.FAILED)
    again.start_time = first.start_time + dt.timedelta(seconds=5)
    app.processes.procs += [first, again, FakeProcess("dev")]
    assert "2 Processes ▶1 ✗1 " in screen(make(app))


def test_running_an_unknown_script_name_says_it_runs_a_shell_command(app: FakeApp) -> None:
    tui = make(app)
    command(tui, "run tset")
    assert app.ran == ["tset"]
    assert "no script named 'tset': started it as a shell command" in screen(tui)
    command(tui, "run test")
    assert "started test" in screen(tui)


def test_a_process_logs_include_its_runs_before_a_restart(app: FakeApp) -> None:
    """The crash that caused a restart stays visible in that process's logs (overmind#111)."""
    first = FakeProcess("dev", FakeStatus.FAILED)
    app.processes.procs.append(first)
    app.logs.add(first.id, "dev", "Error: crashed on purpose")
    app.logs.add("other-1", "other", "not dev")
    second = FakeProcess("dev")
    second.start_time = first.start_time + dt.timedelta(seconds=5)
    app.processes.procs.append(second)
    app.logs.add(second.id, "dev", "listening again")
    tui = make(app)
    press(tui, "2")
    assert tui.views["processes"].selected is second
    press(tui, "enter")
    text = screen(tui)
    assert tui.current == "logs"
    assert "process dev" in text
    assert text.index("crashed on purpose") < text.index("listening again")
    assert "not dev" not in text
    press(tui, "x")
    assert [e.content for e in app.logs.entries] == ["not dev"]


def test_opening_a_url_without_a_graphical_browser_copies_it_instead(
    app: FakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No DISPLAY: a console browser would take over brummer's terminal, so none is started."""
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url) or False)
    monkeypatch.setattr("brummer.tui.views.lists.shutil.which", lambda _name: None)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(name, raising=False)
    now = dt.datetime.now(dt.UTC)
    app.logs.urls.append(
        FakeURL("http://localhost:3000/", "dev-1", "dev", now, "Local:", "http://127.0.0.1:20888/")
    )
    tui = make(app)
    written: list[str] = []
    monkeypatch.setattr(tui, "write_terminal", written.append)
    press(tui, "5", "enter")
    assert opened == []
    assert "open http://127.0.0.1:20888/ yourself; copied it (OSC 52" in screen(tui)
    assert written
    # with a display, the browser is asked; its failure is reported, not "opened"
    monkeypatch.setenv("DISPLAY", ":0")
    press(tui, "enter")
    assert opened == ["http://127.0.0.1:20888/"]
    text = screen(tui)
    assert "no browser could open http://127.0.0.1:20888/" in text
    assert "opened" not in text


def test_slash_filters_the_processes_list_as_you_type(app: FakeApp) -> None:
    app.processes.procs += [FakeProcess("dev"), FakeProcess("watch")]
    tui = make(app)
    press(tui, "2", "/", "w", "a")
    rows = screen(tui).splitlines()
    assert "filter 'wa'" in rows[1]
    assert "watch" in rows[2]
    assert "dev" not in "\n".join(rows[2:-2])
    press(tui, "esc")
    assert "dev" in screen(tui)


def test_esc_and_a_key_typed_quickly_do_both(app: FakeApp) -> None:
    """A terminal delivers Esc then 4 within its escape time as "meta 4"."""
    tui = make(app)
    press(tui, "2", "/", "w")
    assert tui.command_active
    press(tui, "meta 4")
    assert not tui.command_active
    assert tui.current == "errors"
    press(tui, "meta q")
    assert tui.exit_requested

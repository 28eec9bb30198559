"""Detection: levels, tags, error groups, builds, tests and URLs (brummer.logs.detect)."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from brummer.errors import BrummerError, ErrorCode
from brummer.logs import (
    Detector,
    LogLevel,
    LogStore,
    SearchQuery,
    detect_urls,
    load_rules,
    strip_ansi,
)


class FakeBus:
    """Records what the store publishes (stands in for brummer.events.EventBus)."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def publish_async(self, event: Any) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[Any]:
        return [e for e in self.events if str(e.type) == kind]


def feed(lines: list[str], *, exit_after: bool = True) -> tuple[LogStore, FakeBus]:
    bus = FakeBus()
    store = LogStore(event_bus=bus)
    store.add_lines("p1", "web", lines)
    if exit_after:
        store.mark_process_exited("p1")
    return store, bus


# ---------------------------------------------------------------- levels and tags


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("GET /api/users 200 in 12ms", LogLevel.INFO),
        ("Error: something broke", LogLevel.ERROR),
        ("npm ERR! code ELIFECYCLE", LogLevel.ERROR),
        ("Build failed with 2 errors", LogLevel.ERROR),
        ("(node:1) DeprecationWarning: Buffer() is deprecated", LogLevel.WARNING),
        ("warn - You have enabled experimental feature", LogLevel.WARNING),
        ("FATAL: database is down", LogLevel.CRITICAL),
        ("panic: runtime error", LogLevel.CRITICAL),
        ("[DEBUG] cache miss for key", LogLevel.DEBUG),
        ("Found 0 errors. Watching for file changes.", LogLevel.INFO),
        ("✓ 12 tests passed, 0 failed", LogLevel.INFO),
        ("1 failed, 0 errors", LogLevel.ERROR),
        ("no warnings", LogLevel.INFO),
        ("\x1b[31merror\x1b[0m: colourful", LogLevel.ERROR),
        ("terror and mirrors", LogLevel.INFO),
        ("GET http://x net::ERR_CONNECTION_REFUSED", LogLevel.ERROR),
        ("errorHandler middleware loaded", LogLevel.INFO),
    ],
)
def test_level_comes_from_content(line: str, level: LogLevel) -> None:
    assert Detector().classify(line).level == level


def test_stderr_is_recorded_but_does_not_decide_the_level() -> None:
    store = LogStore()
    entry = store.add("p", "web", "Compiling module 3 of 10", is_error=True)
    assert entry.is_error is True
    assert entry.level == LogLevel.INFO
    plain = store.add("p", "web", "Compiling module 3 of 10")
    assert entry.priority == plain.priority + 5


def test_tags_and_priority_follow_the_content() -> None:
    detector = Detector()
    build = detector.classify("webpack compiled successfully in 200 ms")
    assert "build" in build.tags
    assert build.priority > detector.classify("hello").priority
    tests = detector.classify("Tests: 1 failed, 2 passed, 3 total")
    assert "test" in tests.tags
    assert tests.level == LogLevel.ERROR
    lint = detector.classify("  3:7  error  'x' is not defined  no-undef")
    assert "lint" in lint.tags


# ---------------------------------------------------------------- error groups


def only_group(store: LogStore) -> Any:
    groups = store.get_error_groups()
    assert len(groups) == 1, groups
    return groups[0]


def test_javascript_error_with_stack_is_one_group() -> None:
    store, bus = feed(
        [
            "TypeError: Cannot read properties of undefined (reading 'x')",
            "    at render (/app/src/App.js:10:5)",
            "    at main (/app/index.js:3:1)",
            "server still running",
        ]
    )
    group = only_group(store)
    assert group.kind == "TypeError"
    assert group.message.startswith("Cannot read properties")
    assert len(group.lines) == 3
    assert group.lines[1].strip().startswith("at render")
    events = bus.of("error.detected")
    assert len(events) == 1
    assert events[0].data["kind"] == "TypeError"
    assert events[0].process_id == "p1"
    stack_entries = store.get_all()[1:3]
    assert all(e.level == LogLevel.ERROR and "stack" in e.tags for e in stack_entries)
    assert store.get_all()[3].level == LogLevel.INFO


def test_python_traceback_ends_with_the_exception_line() -> None:
    store, _ = feed(
        [
            "Traceback (most recent call last):",
            '  File "app.py", line 3, in <module>',
            "    main()",
            "KeyError: 'user'",
            "next",
        ]
    )
    group = only_group(store)
    assert group.kind == "KeyError"
    assert group.message == "KeyError: 'user'"
    assert len(group.lines) == 4
    assert group.language == "python"


def test_go_panic_spans_a_blank_line() -> None:
    store, _ = feed(
        [
            "panic: assignment to entry in nil map",
            "",
            "goroutine 1 [running]:",
            "main.main()",
            "\t/src/main.go:7 +0x2c",
            "exit status 2",
        ]
    )
    group = only_group(store)
    assert group.kind == "GoPanic"
    assert group.lines[-1] == "exit status 2"
    assert len(group.lines) == 5


def test_rust_java_typescript_npm_and_network_errors() -> None:
    cases = {
        "E0308": ["error[E0308]: mismatched types", " --> src/main.rs:2:18", "  |"],
        "java.lang.IllegalStateException": [
            'Exception in thread "main" java.lang.IllegalStateException: boom',
            "\tat com.x.Main.main(Main.java:5)",
            "Caused by: java.lang.NullPointerException",
            "\t... 1 more",
        ],
        "TS2322": ["src/a.ts(3,5): error TS2322: Type 'string' is not assignable."],
        "TS2304": ["src/b.ts:4:1 - error TS2304: Cannot find name 'foo'."],
        "NpmError": ["npm ERR! code ELIFECYCLE", "npm ERR! errno 1"],
        "ECONNREFUSED": ["Error: connect ECONNREFUSED 127.0.0.1:5432"],
        "EADDRINUSE": ["Error: listen EADDRINUSE: address already in use :::3000"],
        "ENOTFOUND": ["Error: getaddrinfo ENOTFOUND db.local"],
        "ESLintError": ["  1:10  error  'x' is defined but never used  no-unused-vars"],
        "ViteError": ["[vite] Internal server error: Failed to resolve import"],
        "NextError": [" \u2a2f Error: Hydration failed because the UI does not match"],
        "UnhandledRejection": ["(node:9) UnhandledPromiseRejectionWarning: Error: oops"],
        "ReferenceError": ["ReferenceError: foo is not defined", "    at x.js:1:1"],
        "SyntaxError": ["SyntaxError: Unexpected token '}'"],
    }
    for kind, lines in cases.items():
        store, bus = feed([*lines, "done"])
        group = only_group(store)
        assert group.kind == kind, (kind, group)
        assert len(group.lines) == len(lines), (kind, group.lines)
        assert len(bus.of("error.detected")) == 1


def test_same_error_repeated_is_one_group_with_a_count() -> None:
    bus = FakeBus()
    store = LogStore(event_bus=bus)
    for n in range(3):
        store.add_lines(
            "p1", "web", [f"TypeError: x{n} is not a function", "    at a.js:1:1", "ok"]
        )
    group = only_group(store)
    assert group.count == 3
    assert group.lines[0] == "TypeError: x2 is not a function"  # latest occurrence
    assert [e.data["count"] for e in bus.of("error.detected")] == [1, 2, 3]
    store.add_lines("p2", "api", ["TypeError: x9 is not a function", "ok"])
    assert len(store.get_error_groups()) == 2  # deduplicated per process


def test_open_group_is_visible_and_closed_when_idle_or_on_exit() -> None:
    bus = FakeBus()
    store = LogStore(event_bus=bus)
    store.add_lines("p1", "web", ["TypeError: boom", "    at a.js:1:1"])
    groups = store.get_error_groups()
    assert [g.id for g in groups] == ["p1-open"]
    assert bus.of("error.detected") == []
    store.mark_process_exited("p1")
    assert [g.id for g in store.get_error_groups()] == ["p1-err-1"]
    assert len(bus.of("error.detected")) == 1


def test_idle_group_closes_on_next_read() -> None:
    detector = Detector({"settings": {"group_idle_seconds": 0.01}})
    bus = FakeBus()
    store = LogStore(event_bus=bus, detector=detector)
    store.add_lines("p1", "web", ["TypeError: boom"])
    deadline = time.monotonic() + 0.02
    while time.monotonic() < deadline:
        pass  # let the group go idle (a busy wait on a clock, not synchronisation)
    assert store.get_error_groups()[0].id == "p1-err-1"
    assert len(bus.of("error.detected")) == 1


def test_group_is_capped_at_max_lines() -> None:
    store, _ = feed(["TypeError: deep", *[f"    at f{i} (a.js:{i}:1)" for i in range(200)]])
    groups = store.get_error_groups()
    assert len(groups[0].lines) == 50


# ---------------------------------------------------------------- builds and tests


@pytest.mark.parametrize(
    ("line", "kind", "counts"),
    [
        ("Tests:       1 failed, 3 passed, 4 total", "test.failed", (3, 1, 4)),
        ("Tests:       5 passed, 5 total", "test.passed", (5, 0, 5)),
        (" Tests  1 failed | 3 passed (4)", "test.failed", (3, 1, 4)),
        ("==== 2 failed, 10 passed in 0.52s ====", "test.failed", (10, 2, 12)),
        ("========== 7 passed in 1.02s ==========", "test.passed", (7, 0, 7)),
        ("test result: ok. 5 passed; 0 failed; 0 ignored", "test.passed", (5, 0, 5)),
        ("test result: FAILED. 4 passed; 1 failed; 0 ignored", "test.failed", (4, 1, 5)),
        ("PASS", "test.passed", (0, 0, 0)),
        ("FAIL\tgithub.com/x/z\t0.3s", "test.failed", (0, 0, 0)),
        ("  12 passing (40ms)", "test.passed", (12, 0, 12)),
        ("  2 failing", "test.failed", (0, 2, 2)),
    ],
)
def test_test_summaries(line: str, kind: str, counts: tuple[int, int, int]) -> None:
    _, bus = feed([line])
    events = bus.of("test.passed") + bus.of("test.failed")
    assert len(events) == 1, bus.events
    assert str(events[0].type) == kind
    data = events[0].data
    assert (data["passed"], data["failed"], data["total"]) == counts


@pytest.mark.parametrize(
    ("line", "status"),
    [
        ("webpack 5.88.0 compiled successfully in 1234 ms", "success"),
        ("Compiled with 2 warnings.", "warning"),
        ("Failed to compile.", "failure"),
        ("  VITE v5.0.0  ready in 312 ms", "success"),
        ("✓ built in 1.23s", "success"),
        ("Found 0 errors. Watching for file changes.", "success"),
        ("Found 2 errors. Watching for file changes.", "failure"),
        ("BUILD SUCCESSFUL in 3s", "success"),
        ("[INFO] BUILD FAILURE", "failure"),
        ("error: could not compile `app` due to previous error", "failure"),
    ],
)
def test_build_events(line: str, status: str) -> None:
    _, bus = feed([line])
    events = bus.of("build.event")
    assert len(events) == 1, bus.events
    assert events[0].data["status"] == status


def test_plain_lines_publish_nothing() -> None:
    _, bus = feed(["hello", "GET / 200", "", "compiling..."])
    assert bus.events == []


# ---------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("Local:   http://localhost:5173/", ["http://localhost:5173/"]),
        ("listening on http://0.0.0.0:8000.", ["http://localhost:8000"]),
        ("ws at ws://127.0.0.1:9229/abc, ok", ["ws://127.0.0.1:9229/abc"]),
        ("secure wss://example.com/socket!", ["wss://example.com/socket"]),
        ("v6 http://[::1]:3000/path", ["http://[::1]:3000/path"]),
        ("any http://[::]:3000", ["http://localhost:3000"]),
        ("see (https://example.com/docs?a=1).", ["https://example.com/docs?a=1"]),
        (
            "wiki https://en.wikipedia.org/wiki/Foo_(bar) x",
            ["https://en.wikipedia.org/wiki/Foo_(bar)"],
        ),
        ("\x1b[36mhttp://127.0.0.1:\x1b[1m8000\x1b[22m/\x1b[39m", ["http://127.0.0.1:8000/"]),
        ("two http://a.test and http://a.test", ["http://a.test"]),
        ("mailto:x@y.z ftp://no.example", []),
        ("http://", []),
        ("no url here", []),
    ],
)
def test_detect_urls(text: str, urls: list[str]) -> None:
    assert detect_urls(text) == urls


def test_urls_deduplicated_per_process_and_origin_and_marked_gone_on_exit() -> None:
    bus = FakeBus()
    store = LogStore(event_bus=bus)
    store.add("p1", "web", "ready on http://localhost:3000/")
    store.add_lines(
        "p1",
        "web",
        [f"GET http://localhost:3000/api/users/{i} 200" for i in range(50)]  # request log
        + ["ready on http://localhost:3000/ again"],
    )
    store.add("p2", "api", "api on http://localhost:3000")
    store.add("p1", "web", "docs at https://example.com/guide")
    urls = store.get_urls()
    assert [(u.process_id, u.url) for u in urls] == [
        ("p1", "http://localhost:3000/"),
        ("p2", "http://localhost:3000"),
        ("p1", "https://example.com/guide"),
    ]
    assert urls[0].context == "ready on http://localhost:3000/"
    assert len(bus.of("url.detected")) == 3
    assert "url" in store.get_all()[0].tags
    store.mark_process_exited("p1")
    assert [u.active for u in store.get_urls()] == [False, True, False]
    store.add("p1", "web", "restarted on http://localhost:3000/")
    assert store.get_urls()[0].active is True
    assert store.get_urls()[0].context == "restarted on http://localhost:3000/"
    assert len(bus.of("url.detected")) == 4


def test_set_proxy_url_attaches_to_every_matching_entry() -> None:
    store = LogStore()
    store.add("p1", "web", "http://localhost:3000")
    store.add("p2", "web2", "http://localhost:3000")
    assert store.set_proxy_url("http://localhost:3000", "http://localhost:20888") == 2
    assert {u.proxy_url for u in store.get_urls()} == {"http://localhost:20888"}
    assert store.set_proxy_url("http://nowhere", "x") == 0
    store.mark_process_exited("p1")
    store.add("p1", "web", "again http://localhost:3000")  # back after a restart
    assert store.get_urls()[0].proxy_url == "http://localhost:20888"


def test_url_list_is_capped() -> None:
    store = LogStore(max_urls=3)
    store.add_lines("p", "web", [f"http://localhost:{3000 + i}" for i in range(5)])
    assert [u.url for u in store.get_urls()] == [f"http://localhost:{3002 + i}" for i in range(3)]


# ---------------------------------------------------------------- ANSI, huge lines


def test_strip_ansi() -> None:
    assert strip_ansi("\x1b[1;31mred\x1b[0m \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\") == "red link"
    assert strip_ansi("plain") == "plain"


def test_ansi_is_kept_in_content_and_ignored_by_detection() -> None:
    store = LogStore()
    entry = store.add("p", "web", "\x1b[31mTypeError\x1b[39m: bad")
    assert entry.content == "\x1b[31mTypeError\x1b[39m: bad"
    assert entry.level == LogLevel.ERROR
    store.mark_process_exited("p")
    assert store.get_error_groups()[0].kind == "TypeError"


def test_ten_megabyte_line_is_stored_and_detection_stays_fast() -> None:
    store = LogStore()
    huge = "x" * (10 * 1024 * 1024 - 20) + " error at the end"
    start = time.perf_counter()
    entry = store.add("p", "web", huge)
    elapsed = time.perf_counter() - start
    assert entry.content == huge
    assert entry.level == LogLevel.INFO  # past max_detect_chars, so not seen by detection
    assert elapsed < 2.0
    assert store.get_all() == [entry]


@given(st.text(max_size=300))
def test_detection_never_raises_on_arbitrary_text(text: str) -> None:
    store = LogStore()
    lines = text.split("\n")
    entries = store.add_lines("p", "x", lines)
    assert [e.content for e in entries] == lines
    store.mark_process_exited("p")
    store.get_error_groups()


# ---------------------------------------------------------------- user rules


def test_user_rules_extend_the_builtin_ones(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        """
[[error]]
name = "mongo"
triggers = ["mongo"]
pattern = '^MongoServerError: (?P<message>.*)$'
kind = "MongoError"
style = "single"

[[level]]
name = "boom"
triggers = ["kaboom"]
pattern = 'kaboom'
level = "CRITICAL"
""",
        encoding="utf-8",
    )
    detector = Detector(extra_rules=rules)
    assert detector.classify("kaboom!").level == LogLevel.CRITICAL
    store = LogStore(detector=detector)
    store.add_lines("p", "db", ["MongoServerError: E11000 duplicate key", "x"])
    assert store.get_error_groups()[0].kind == "MongoError"
    names = [
        r.name
        for r in load_rules(
            {"level": [{"name": "debug", "triggers": ["zz"], "pattern": "zz", "level": "ERROR"}]}
        )
    ]
    assert names.count("debug") == 1  # same name replaces the built-in rule


def test_extra_rules_through_the_store_constructor() -> None:
    store = LogStore(
        extra_rules={
            "level": [{"name": "x", "triggers": ["flux"], "pattern": "flux", "level": "WARNING"}]
        }
    )
    assert store.add("p", "w", "flux capacitor").level == LogLevel.WARNING


@pytest.mark.parametrize(
    "bad",
    [
        {"level": [{"name": "x", "triggers": ["a"], "pattern": "(", "level": "ERROR"}]},
        {"level": [{"name": "x", "triggers": [], "pattern": "a", "level": "ERROR"}]},
        {"level": [{"name": "x", "triggers": ["a"], "pattern": "a", "level": "LOUD"}]},
        {"level": [{"name": "x", "triggers": ["a"], "pattern": "a"}]},
        {"error": [{"name": "x", "triggers": ["a"], "pattern": "a", "style": "weird"}]},
        {"settings": {"max_detect_chars": -1}},
        {"settings": {"nope": 1}},
        {"tag": "not a list"},
    ],
)
def test_bad_user_rules_are_invalid_argument(bad: dict[str, Any]) -> None:
    with pytest.raises(BrummerError) as info:
        Detector(bad)
    assert info.value.code == ErrorCode.INVALID_ARGUMENT
    assert info.value.hint


def test_rules_file_errors(tmp_path: Path) -> None:
    with pytest.raises(BrummerError) as info:
        Detector(tmp_path / "missing.toml")
    assert info.value.code == ErrorCode.NOT_FOUND
    broken = tmp_path / "broken.toml"
    broken.write_text("[[level]\nname=", encoding="utf-8")
    with pytest.raises(BrummerError) as info:
        Detector(broken)
    assert info.value.code == ErrorCode.INVALID_ARGUMENT


def test_binary_flood_is_stored_and_classified_without_error() -> None:
    rng = random.Random(7)
    garbage = bytes(rng.randrange(256) for _ in range(200_000)).decode("utf-8", "replace")
    lines = garbage.split("\n")
    store = LogStore(max_entries=100_000)
    entries = store.add_lines("bin", "flood", lines)
    assert [e.content for e in entries] == lines
    with_nul = [e for e in entries if "\x00" in strip_ansi(e.content)]
    assert with_nul
    assert store.search(SearchQuery(text="\x00")) == with_nul


def test_user_continuation_rule_with_global_flags_still_works() -> None:
    detector = Detector({"continuation": [{"name": "verbose", "pattern": "(?x) ^ ~~ .*"}]})
    store = LogStore(detector=detector)
    store.add_lines("p", "n", ["TypeError: x", "~~ detail", "after"])
    store.mark_process_exited("p")
    assert store.get_error_groups()[0].lines == ("TypeError: x", "~~ detail")
    plain = LogStore()
    plain.add_lines("p", "n", ["TypeError: x", "~~ detail", "after"])
    plain.mark_process_exited("p")
    assert plain.get_error_groups()[0].lines == ("TypeError: x",)

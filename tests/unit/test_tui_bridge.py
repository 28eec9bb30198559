"""The bridge: the only thread→urwid path, one wake-up byte at most, coalesced dirty tags."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

import pytest
import urwid

from brummer.tui.bridge import UIBridge


class PipeLoop:
    """A real urwid SelectEventLoop with MainLoop's watch_pipe semantics (no screen needed)."""

    def __init__(self) -> None:
        self.loop = urwid.SelectEventLoop()
        self.pipes: dict[int, tuple[object, int]] = {}
        self.loop_thread: threading.Thread | None = None

    def watch_pipe(self, callback: Callable[[bytes], bool | None]) -> int:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)

        def ready() -> None:
            try:
                data = os.read(read_fd, 4096)
            except BlockingIOError:
                return
            if callback(data) is False or not data:
                self.remove_watch_pipe(write_fd)

        self.pipes[write_fd] = (self.loop.watch_file(read_fd, ready), read_fd)
        return write_fd

    def remove_watch_pipe(self, write_fd: int) -> bool:
        entry = self.pipes.pop(write_fd, None)
        if entry is None:
            return False
        self.loop.remove_watch_file(entry[0])
        os.close(entry[1])
        return True

    def run(self) -> None:
        self.loop_thread = threading.current_thread()
        self.loop.run()


@pytest.fixture
def pipe_loop() -> Iterator[PipeLoop]:
    loop = PipeLoop()
    yield loop
    for fd in list(loop.pipes):
        loop.remove_watch_pipe(fd)


def test_posts_from_many_threads_all_run_in_the_loop_thread_in_order_per_thread(
    pipe_loop: PipeLoop,
) -> None:
    bridge = UIBridge(pipe_loop.watch_pipe, remove_watch_pipe=pipe_loop.remove_watch_pipe)
    seen: list[tuple[int, int, threading.Thread]] = []
    threads_n, per_thread = 8, 500
    barrier = threading.Barrier(threads_n)
    finished = threading.Event()

    def worker(index: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            bridge.post(lambda i=i: seen.append((index, i, threading.current_thread())))

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]

    def check_done() -> None:
        if len(seen) == threads_n * per_thread:
            finished.set()
            raise urwid.ExitMainLoop
        pipe_loop.loop.alarm(0.01, check_done)

    pipe_loop.loop.alarm(0.01, check_done)
    pipe_loop.loop.alarm(5.0, lambda: (_ for _ in ()).throw(urwid.ExitMainLoop()))
    for w in workers:
        w.start()
    pipe_loop.run()
    for w in workers:
        w.join()
    bridge.close()
    assert finished.is_set()
    assert {t for *_, t in seen} == {pipe_loop.loop_thread}
    for index in range(threads_n):
        order = [i for n, i, _ in seen if n == index]
        assert order == list(range(per_thread))
    # one wake byte at a time: far fewer bytes than posts
    assert bridge.wakeups <= threads_n * per_thread


def test_at_most_one_wake_byte_is_pending(pipe_loop: PipeLoop) -> None:
    bridge = UIBridge(pipe_loop.watch_pipe, remove_watch_pipe=pipe_loop.remove_watch_pipe)
    for _ in range(1000):
        bridge.post(lambda: None)
        bridge.mark_dirty("logs")
    assert bridge.wakeups == 1
    read_fd = pipe_loop.pipes[next(iter(pipe_loop.pipes))][1]
    assert os.read(read_fd, 4096) == b"!"
    bridge.close()


def test_dirty_tags_coalesce_and_on_dirty_runs_in_loop(pipe_loop: PipeLoop) -> None:
    calls: list[set[str]] = []
    bridge: UIBridge

    def on_dirty() -> None:
        calls.append(bridge.take_dirty())
        raise urwid.ExitMainLoop

    bridge = UIBridge(pipe_loop.watch_pipe, on_dirty, pipe_loop.remove_watch_pipe)
    threads = [
        threading.Thread(target=lambda t=tag: [bridge.mark_dirty(t) for _ in range(200)])
        for tag in ("logs", "errors", "processes")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pipe_loop.run()
    bridge.close()
    assert calls == [{"logs", "errors", "processes"}]
    assert bridge.wakeups == 1


def test_closed_bridge_refuses_posts_and_failing_callables_do_not_stop_the_drain(
    pipe_loop: PipeLoop, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []
    bridge = UIBridge(pipe_loop.watch_pipe, remove_watch_pipe=pipe_loop.remove_watch_pipe)

    def boom() -> None:
        raise RuntimeError("boom")

    def stop() -> None:
        ran.append("after")
        raise urwid.ExitMainLoop

    assert bridge.post(boom)
    assert bridge.post(stop)
    with caplog.at_level("ERROR", logger="brummer.tui"):
        pipe_loop.run()
    assert ran == ["after"]
    assert "boom" in caplog.text
    bridge.close()
    bridge.close()
    assert not bridge.post(lambda: None)
    bridge.mark_dirty("logs")
    assert not bridge.dirty
    assert pipe_loop.pipes == {}

"""One child process and the thread that reads it.

A :class:`Child` spawns one command in its own session (``start_new_session=True``) with
stdout and stderr on pipes, and runs one monitor thread that

- reads both pipes in large chunks (``os.read`` of up to :data:`READ_SIZE` bytes),
- splits each chunk into lines in bulk with a :class:`LineSplitter` per stream,
- hands every batch of lines to ``on_lines(lines, is_error)``,
- reaps the child when its pidfd says it exited, and calls ``on_exit(returncode)`` once,
  after the output the child wrote before it exited has been delivered.

It is not a process manager: it knows nothing of ids, statuses or restarts (see
``brummer.process.manager``) and never signals anything (see ``brummer.process.kill``).
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import logging
import os
import selectors
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from brummer.contracts import BLOCKING, Cleanup, STGuard, ThreadSafety, contract
from brummer.errors import BrummerError, ErrorCode

__all__ = [
    "LINGER_AFTER_EXIT",
    "LINGER_MAX",
    "MAX_LINE_CHARS",
    "READ_SIZE",
    "Child",
    "LineSplitter",
]

_log = logging.getLogger("brummer.process")

MAX_LINE_CHARS = 64 * 1024
"""A line longer than this many characters is delivered in pieces of this size."""

READ_SIZE = 256 * 1024
"""Bytes asked for per ``os.read``; a Linux pipe holds 64 KiB by default."""

LINGER_AFTER_EXIT = 0.2
"""After the child exited, seconds without output before its exit is reported anyway.

Everything the child wrote before it exited is read first (the pipes are drained). Only
then, if grandchildren that inherited the pipes keep them open, the exit is reported after
this much silence (or after :data:`LINGER_MAX` in all); their output is still read.
"""

LINGER_MAX = 5.0
"""Longest the exit report waits for pipes held open by grandchildren that keep writing."""

PIPE_SIZE = 256 * 1024
"""Capacity asked for the stdout pipe (Linux ``F_SETPIPE_SZ``; stderr keeps the default 64 KiB):
the child writes ahead while the reader stores a batch. Kept moderate because Linux charges
pipe capacity to the user (``/proc/sys/fs/pipe-user-pages-soft``); 0 keeps the default."""

_POLL_WITHOUT_PIDFD = 0.05  # seconds between exit checks where os.pidfd_open is missing
_ABANDON_POLL = 0.1  # seconds between checks of the abandon flag once the child has exited
_ABANDON_DRAIN_READS = 64  # reads of what is still buffered in the pipes when abandoning them


@contract(ThreadSafety.ST)
class LineSplitter:
    """Turns a byte stream into text lines, incrementally.

    Thread safety: ST. One splitter per stream, fed by one thread: the first thread to feed
    it owns it, and any other thread gets ``BrummerError(CONCURRENCY)``.

    Lines end at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (progress bars redraw with it); the
    terminator is not part of the line. Bytes that are not UTF-8 become U+FFFD; a multibyte
    character split across two reads is decoded whole. A line longer than ``max_line``
    characters is cut into pieces of ``max_line`` characters, so one endless line never
    holds more than ``max_line`` characters in memory. :meth:`flush` returns the partial
    last line at end of stream.
    """

    __slots__ = ("_carry", "_decoder", "_guard", "_max")

    def __init__(self, max_line: int = MAX_LINE_CHARS) -> None:
        if max_line < 1:
            raise BrummerError(
                "process",
                ErrorCode.INVALID_ARGUMENT,
                f"max_line must be at least 1, not {max_line}",
                hint="pass a positive number of characters",
            )
        self._guard = STGuard("LineSplitter")  # one check per chunk, not per line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._carry = ""
        self._max = max_line

    @contract(ThreadSafety.ST)
    def feed(self, data: bytes) -> list[str]:
        """Add ``data`` and return the lines it completed (possibly none).

        Thread safety: ST.
        """
        self._guard.check()
        text = self._carry + self._decoder.decode(data)
        if not text:
            return []
        held = ""
        if "\r" in text:
            if text[-1] == "\r":  # may be the first half of \r\n: decide on the next feed
                text, held = text[:-1], "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        last = lines.pop()
        if len(text) > self._max:
            lines = self._cut(lines)
            if len(last) > self._max:
                pieces = self._cut([last])
                last = pieces.pop()
                lines.extend(pieces)
        self._carry = last + held
        return lines

    @contract(ThreadSafety.ST)
    def flush(self) -> list[str]:
        """End of stream: return the partial last line (if any) and reset.

        Thread safety: ST.
        """
        self._guard.check()
        text = self._carry + self._decoder.decode(b"", final=True)
        self._carry = ""
        self._decoder.reset()
        if not text:
            return []
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        return self._cut(lines)

    def _cut(self, lines: list[str]) -> list[str]:
        size = self._max
        if not lines or max(map(len, lines)) <= size:
            return lines
        out: list[str] = []
        for line in lines:
            if len(line) <= size:
                out.append(line)
            else:
                out.extend(line[i : i + size] for i in range(0, len(line), size))
        return out


LinesHandler = Callable[[list[str], bool], None]
ExitHandler = Callable[[int], None]


@contract(ThreadSafety.TS, cleanup=Cleanup.MANUAL)
class Child:
    """One spawned command, its pipes and its monitor thread.

    Thread safety: TS. ``start`` is called once by the creator; the read-only properties
    and ``abandon``/``join`` may be called from any thread. The handlers run on the
    monitor thread; they must not block for long (they hold back the child's output).

    The child runs in a new session (its pid is its process group id), with stdin on
    ``/dev/null`` and stdout/stderr on pipes.
    """

    def __init__(
        self,
        argv: str | Sequence[str],
        *,
        shell: bool,
        cwd: str,
        env: Mapping[str, str],
        on_lines: LinesHandler,
        on_exit: ExitHandler,
        name: str = "child",
    ) -> None:
        self._argv = argv
        self._shell = shell
        self._cwd = cwd
        self._env = dict(env)
        self._on_lines = on_lines
        self._on_exit = on_exit
        self._name = name
        self._popen: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._exited = threading.Event()  # set once the child is reaped
        self._finished = threading.Event()  # set once every pipe is closed
        self._abandon = threading.Event()  # set to stop reading pipes held by escaped processes
        self._returncode: int | None = None
        self._create_time = 0.0

    @contract(ThreadSafety.ST)
    def start(self) -> None:
        """Spawn the child. Its output waits in the pipes until :meth:`watch`.

        Thread safety: ST. Call once, from the creating thread, then call :meth:`watch`.

        Raises:
            OSError: the command could not be executed (missing file, permission, cwd).
        """
        self._create_time = time.time()
        self._popen = subprocess.Popen(
            self._argv,
            shell=self._shell,
            cwd=self._cwd,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            bufsize=0,
        )
        if self._popen.stdout is not None and PIPE_SIZE:
            with contextlib.suppress(OSError, AttributeError):  # not Linux, or over the limit
                fcntl.fcntl(self._popen.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)

    @contract(ThreadSafety.ST)
    def watch(self) -> None:
        """Start the monitor thread that reads the pipes and reaps the child.

        Thread safety: ST. Call once, after :meth:`start` succeeded.
        """
        popen = self._popen
        if popen is None or self._thread is not None:
            raise RuntimeError("Child.watch() needs one successful start() first")
        pidfd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            pidfd = os.pidfd_open(popen.pid)
        self._thread = threading.Thread(
            target=self._monitor,
            args=(popen, pidfd),
            name=f"brummer-child-{self._name}-{popen.pid}",
            daemon=True,
        )
        self._thread.start()

    @property
    @contract(ThreadSafety.TS)
    def pid(self) -> int | None:
        """The child's pid (also its process group id), or None before ``start``.

        Thread safety: TS.
        """
        return None if self._popen is None else self._popen.pid

    @property
    @contract(ThreadSafety.TS)
    def returncode(self) -> int | None:
        """Exit status once reaped: the exit code, or minus the signal number.

        Thread safety: TS.
        """
        return self._returncode

    @property
    @contract(ThreadSafety.TS)
    def reaped(self) -> bool:
        """True once the child exited and was reaped (its pid may be reused afterwards).

        Thread safety: TS.
        """
        return self._exited.is_set()

    @property
    @contract(ThreadSafety.TS)
    def started_at(self) -> float:
        """Wall-clock time (``time.time()``) just after the spawn.

        Thread safety: TS.
        """
        return self._create_time

    @property
    @contract(ThreadSafety.TS)
    def reading(self) -> bool:
        """True while some pipe of the child is still open (being read).

        Thread safety: TS.
        """
        return self._thread is not None and not self._finished.is_set()

    @contract(ThreadSafety.TS, timeout=BLOCKING)
    def join(self, timeout: float | None = None) -> bool:
        """Wait for the monitor thread to finish; return whether it did.

        Thread safety: TS.
        """
        if self._thread is None:
            return True
        if self._thread is threading.current_thread():
            return False
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @contract(ThreadSafety.TS)
    def on_monitor_thread(self) -> bool:
        """True when called from this child's own monitor thread (from a handler).

        Thread safety: TS.
        """
        return self._thread is threading.current_thread()

    @contract(ThreadSafety.TS)
    def abandon(self) -> None:
        """Stop reading pipes that outlive the child (held open by escaped processes).

        Thread safety: TS. Only takes effect after the child exited; idempotent.
        """
        self._abandon.set()

    # -- monitor thread -------------------------------------------------------------------

    def _monitor(self, popen: subprocess.Popen[bytes], pidfd: int | None) -> None:
        sel = selectors.DefaultSelector()
        streams: dict[int, tuple[LineSplitter, bool]] = {}
        assert popen.stdout is not None
        assert popen.stderr is not None
        for pipe, is_error in ((popen.stdout, False), (popen.stderr, True)):
            fd = pipe.fileno()
            streams[fd] = (LineSplitter(), is_error)
            sel.register(fd, selectors.EVENT_READ)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ)
        reported = False
        exit_seen_at = last_data_at = 0.0
        try:
            while streams or not self._exited.is_set():
                if self._exited.is_set():
                    if not reported:
                        timeout = max(
                            0.0, self._report_due(exit_seen_at, last_data_at) - time.monotonic()
                        )
                    else:
                        if self._abandon.is_set():
                            self._drain_ready(streams, sel)
                            break
                        timeout = _ABANDON_POLL
                elif pidfd is None:
                    timeout = _POLL_WITHOUT_PIDFD
                else:
                    timeout = None
                ready = sel.select(timeout)
                exit_ready = False
                for key, _ in ready:
                    fd = key.fd
                    if fd == pidfd:
                        exit_ready = True
                        continue
                    if self._read(fd, streams, sel):
                        last_data_at = time.monotonic()
                if (exit_ready or pidfd is None) and not self._exited.is_set():
                    code = popen.wait() if exit_ready else popen.poll()
                    if code is not None:
                        self._returncode = code
                        self._exited.set()
                        exit_seen_at = time.monotonic()
                        if pidfd is not None:
                            sel.unregister(pidfd)
                            os.close(pidfd)
                            pidfd = None
                if self._exited.is_set() and not reported:
                    if not streams:
                        break  # the usual end: reported below, after the pipes are closed
                    now = time.monotonic()
                    drained = now >= self._report_due(
                        exit_seen_at, last_data_at
                    ) and not sel.select(0)
                    if drained or now >= exit_seen_at + LINGER_MAX:
                        reported = True  # escaped processes hold the pipes: report, read on
                        self._report_exit()
        except Exception:
            _log.exception("monitor thread of %s failed", self._name)
        finally:
            if not self._exited.is_set():
                self._returncode = popen.wait()
                self._exited.set()
            for fd, (splitter, is_error) in list(streams.items()):
                sel.unregister(fd)  # abandoned: what is buffered still goes out
                self._deliver(splitter.flush(), is_error)
            sel.close()
            if pidfd is not None:
                os.close(pidfd)
            assert popen.stdout is not None
            assert popen.stderr is not None
            popen.stdout.close()
            popen.stderr.close()
            self._finished.set()
            if not reported:
                self._report_exit()

    def _drain_ready(
        self, streams: dict[int, tuple[LineSplitter, bool]], sel: selectors.BaseSelector
    ) -> None:
        """Before abandoning the pipes, read what is already in them (bounded: a writer
        that never stops must not keep the monitor thread alive)."""
        for _ in range(_ABANDON_DRAIN_READS):
            ready = [key.fd for key, _ in sel.select(0) if key.fd in streams]
            if not ready:
                return
            for fd in ready:
                self._read(fd, streams, sel)

    @staticmethod
    def _report_due(exit_seen_at: float, last_data_at: float) -> float:
        quiet = max(exit_seen_at, last_data_at) + LINGER_AFTER_EXIT
        return min(quiet, exit_seen_at + LINGER_MAX)

    def _read(
        self, fd: int, streams: dict[int, tuple[LineSplitter, bool]], sel: selectors.BaseSelector
    ) -> bool:
        """Read once from ``fd`` and deliver the lines; return whether data came."""
        splitter, is_error = streams[fd]
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if data:
            lines = splitter.feed(data)
        else:  # end of file: the last partial line goes out now
            sel.unregister(fd)
            del streams[fd]
            lines = splitter.flush()
        self._deliver(lines, is_error)
        return bool(data)

    def _deliver(self, lines: list[str], is_error: bool) -> None:
        if lines:
            try:
                self._on_lines(lines, is_error)
            except Exception:
                _log.exception("line handler of %s failed; reading goes on", self._name)

    def _report_exit(self) -> None:
        code = self._returncode
        try:
            self._on_exit(-1 if code is None else code)
        except Exception:
            _log.exception("exit handler of %s failed", self._name)

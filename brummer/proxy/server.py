"""ProxyServer: werkzeug servers in front of the development servers, recording every request.

Reverse mode (the default) gives each upstream origin its own listening port on 127.0.0.1;
full mode makes the control port an HTTP forward proxy (absolute-URI requests forwarded,
``CONNECT`` tunnelled without interception) with a PAC file at ``/proxy.pac``. Every
request is recorded as a frozen :class:`HTTPRequest` in a bounded ring and published as a
``PROXY_REQUEST`` event; HTML pages get the browser monitor script, whose reports land in
:class:`~brummer.proxy.telemetry.TelemetryStore` and, for errors, in the log store.

Each port is a ``werkzeug.serving.make_server(..., threaded=True)`` server on a socket we
bound ourselves (``fd=``), so a busy port is a ``BrummerError(RESOURCE_LIMIT)``, never
werkzeug's ``sys.exit(1)``. Paths under ``/__brummer__/`` are the proxy's own and never
reach an upstream.

Not for: production traffic, TLS interception or hosts other than this machine.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol
from urllib.parse import urlsplit

import attrs
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, make_server

from brummer.contracts import BLOCKING, Cleanup, ThreadSafety, TSLock, check_timeout, contract
from brummer.errors import BrummerError, ErrorCode
from brummer.events import Event, EventType
from brummer.proxy._handler import KeepAliveHandler
from brummer.proxy._routes import _host_text, _Routes
from brummer.proxy.forward import (
    UpstreamPool,
)
from brummer.proxy.telemetry import (
    TelemetryStore,
)

__all__ = ["HTTPRequest", "ProxyMetrics", "ProxyServer", "URLMapping"]

COMPONENT = "proxy"
CONTROL_PREFIX = "/__brummer__/"
REVERSE_PORT_OFFSET = 1000  # reverse ports start at control port + 1000, as in Brummer
PORT_ATTEMPTS = 200  # busy ports skipped before giving up on a reverse port
POLL_INTERVAL = 0.05  # serve_forever poll; bounds how long stop() waits per port
JOIN_TIMEOUT = 10.0  # seconds stop() waits for the connection threads of one port
MAX_INJECT_BODY = 8 << 20  # HTML bodies larger than this are relayed without the monitor
UPSTREAM_TIMEOUT = 120.0  # default wait for a response head (long-poll friendly)
_log = logging.getLogger("brummer.proxy")


class _EventBus(Protocol):
    def publish_async(self, event: Event) -> None: ...

    def subscribe(self, event_type: Any, handler: Callable[[Event], None]) -> Any: ...

    def unsubscribe(self, sub_id: Any) -> None: ...


class _LogStore(Protocol):
    def add(
        self, process_id: str, process_name: str, content: str, is_error: bool = False
    ) -> Any: ...


@contract(ThreadSafety.TS)
@attrs.frozen
class HTTPRequest:
    """One request that went through the proxy.

    Thread safety: TS (frozen value object).

    Attributes:
        status: the HTTP status sent to the client; 0 when none could be sent.
        duration: seconds from the start of the request to the last byte of the response.
        request_size / response_size: body bytes in each direction (tunnels: bytes each way).
        error: why the exchange failed ("" when it did not).
    """

    id: str
    method: str
    url: str
    status: int
    duration: float
    request_size: int
    response_size: int
    content_type: str
    process_name: str
    timestamp: datetime
    error: str = ""
    is_xhr: bool = False
    process_id: str | None = None

    @property
    @contract(ThreadSafety.TS)
    def is_error(self) -> bool:
        """True for a 4xx/5xx status, no status at all, or a failed exchange.

        Thread safety: TS.
        """
        return self.status >= 400 or self.status == 0 or bool(self.error)


@contract(ThreadSafety.TS)
@attrs.frozen
class URLMapping:
    """An upstream origin and the proxy URL that fronts it.

    Thread safety: TS (frozen value object).
    """

    target_url: str
    proxy_url: str
    process_name: str
    port: int
    created: datetime
    process_id: str | None = None


@contract(ThreadSafety.TS)
@attrs.frozen
class ProxyMetrics:
    """Counters since start (or the last clear_requests).

    Thread safety: TS (frozen value object).
    """

    total_requests: int
    successful_requests: int
    failed_requests: int
    bytes_transferred: int
    avg_response_time: float
    active_connections: int


class _Site:
    """One listening port: the control port, or the reverse proxy of one upstream origin."""

    def __init__(
        self,
        owner: ProxyServer,
        sock: socket.socket,
        *,
        origin: tuple[str, str, int] | None = None,
        mapping: URLMapping | None = None,
    ) -> None:
        self.owner = owner
        self.sock: socket.socket | None = sock
        self.port: int = sock.getsockname()[1]
        self.origin = origin  # (scheme, host, port) of the upstream; None for the control port
        self.mapping = mapping
        self.server: BaseWSGIServer | None = None
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()  # guards connections and stopping
        self.connections: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()  # connection threads, joined by stop()
        self.stopping = False

    def opened(self, conn: socket.socket) -> None:
        with self.lock:
            stopping = self.stopping
            if not stopping:
                self.connections.add(conn)
        if stopping:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def closed(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections.discard(conn)

    def serve(self) -> None:
        """Start serving in a thread (the socket is already listening)."""
        sock = self.sock
        if sock is None or self.server is not None:
            return
        handler = type(
            "SiteHandler",
            (KeepAliveHandler,),
            {
                "on_open": staticmethod(self.opened),
                "on_close": staticmethod(self.closed),
                "thread_name": f"brummer-proxy-{self.port}-conn",
            },
        )
        app = self.owner._app_for(self)
        self.server = make_server(
            "127.0.0.1", self.port, app, threaded=True, request_handler=handler, fd=sock.fileno()
        )
        # werkzeug's server_close() does not join its (daemon) connection threads: start
        # them ourselves so that stop() can join every one.
        self.server.process_request = self._spawn  # type: ignore[method-assign]
        # werkzeug duplicated the descriptor; ours is no longer needed.
        sock.close()
        self.sock = None
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name=f"brummer-proxy-{self.port}",
            daemon=True,
        )
        self.thread.start()

    def _spawn(self, request: Any, client_address: Any) -> None:
        server = self.server
        assert isinstance(server, ThreadedWSGIServer)
        thread = threading.Thread(
            target=server.process_request_thread,
            args=(request, client_address),
            name=f"brummer-proxy-{self.port}-conn",
            daemon=True,
        )
        with self.lock:
            self.threads = {t for t in self.threads if t.is_alive()}
            self.threads.add(thread)
        thread.start()

    def shutdown_begin(self) -> None:
        """Stop accepting and cut every client connection (threads then finish)."""
        with self.lock:
            self.stopping = True
            conns = list(self.connections)
        if self.server is not None:
            self.server.shutdown()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def shutdown_end(self) -> None:
        """Close the listener and join every thread of this port."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.server is not None:
            self.server.server_close()
        if self.thread is not None:
            self.thread.join()
        with self.lock:
            threads = [t for t in self.threads if t is not threading.current_thread()]
        deadline = time.monotonic() + JOIN_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                _log.warning("proxy: connection thread %s did not end in time", thread.name)

    def active(self) -> int:
        with self.lock:
            return len(self.connections)


def _bind(host: str, port: int) -> socket.socket:
    return socket.create_server((host, port), backlog=128)


def _now() -> datetime:
    return datetime.now(UTC)


@contract(ThreadSafety.TS, cleanup=Cleanup.MANUAL)
class ProxyServer(_Routes):
    """A recording HTTP proxy in front of the development servers (werkzeug).

    Thread safety: TS. Every method may be called from any thread; reads return snapshots.

    Args:
        port: the control port (reverse mode) or the proxy port (full mode); 0 picks a free one.
        host: the address to listen on; brummer only serves this machine.
        mode: "reverse" (one port per upstream origin) or "full" (a forward proxy).
        telemetry: inject the browser monitor into HTML pages.
        event_bus: receives PROXY_REQUEST and TELEMETRY events; its URL_DETECTED events
            register URLs automatically while the proxy runs.
        log_store: receives browser errors as error lines of their process.
        max_requests: how many requests the history keeps (the oldest go first).
        reverse_port_base: the first port tried for reverse mappings (default port + 1000,
            or any free port when ``port`` is 0); busy ports are skipped.
        upstream_timeout: seconds to wait for an upstream's response head (then 504).
    """

    def __init__(
        self,
        *,
        port: int = 19888,
        host: str = "127.0.0.1",
        mode: str = "reverse",
        telemetry: bool = True,
        event_bus: _EventBus | None = None,
        log_store: _LogStore | None = None,
        max_requests: int = 1000,
        reverse_port_base: int | None = None,
        upstream_timeout: float = UPSTREAM_TIMEOUT,
    ) -> None:
        for name, value in (("port", port), ("reverse_port_base", reverse_port_base)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
                raise self._bad(f"{name} must be an int in 0..65535, not {value!r}", "e.g. 19888")
        if mode not in {"reverse", "full"}:
            raise self._bad(f"mode must be 'reverse' or 'full', not {mode!r}", "pick one of both")
        if isinstance(max_requests, bool) or not isinstance(max_requests, int) or max_requests < 1:
            raise self._bad(f"max_requests must be an int ≥ 1, not {max_requests!r}", "e.g. 1000")
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise self._bad(
                f"host must be a loopback address, not {host!r}",
                "brummer's proxy serves this machine only: use 127.0.0.1",
            )
        timeout = check_timeout(COMPONENT, upstream_timeout, name="upstream_timeout")
        self._requested_port = port
        self._host = "127.0.0.1" if host == "localhost" else host
        self._mode = mode
        self._telemetry_on = bool(telemetry)
        self._bus = event_bus
        self._log_store = log_store
        self._reverse_base = reverse_port_base
        self._upstream_timeout = timeout if timeout is not None else UPSTREAM_TIMEOUT
        self._telemetry = TelemetryStore()
        self._monitor_js = resources.files("brummer.proxy").joinpath("monitor.js").read_bytes()
        self._ids = itertools.count(1)

        # _state_lock serialises start/stop/register (slow: binds sockets, joins threads).
        self._state_lock = TSLock("proxy.state")
        # _lock guards the fields below; held only for short updates, never across I/O.
        self._lock = TSLock("proxy.data")
        self._running = False
        self._port = 0
        self._control: _Site | None = None
        self._sites: dict[tuple[str, str, int], _Site] = {}  # reverse sites by upstream origin
        self._process_by_origin: dict[tuple[str, int], tuple[str, str | None]] = {}
        self._next_port = 0
        self._pool = UpstreamPool()
        self._subscription: Any = None
        self._requests: deque[HTTPRequest] = deque(maxlen=max_requests)
        self._total = self._failed = self._bytes = 0
        self._time_total = 0.0

    @staticmethod
    def _bad(message: str, hint: str) -> BrummerError:
        return BrummerError(COMPONENT, ErrorCode.INVALID_ARGUMENT, message, hint=hint)

    # --- lifecycle -----------------------------------------------------------------------

    @contract(
        ThreadSafety.TS, timeout=10.0, guarantees="ready to accept connections when it returns"
    )
    def start(self) -> None:
        """Bind the control port and start serving (and any URL registered before). Idempotent.

        Thread safety: TS.

        Raises:
            BrummerError: RESOURCE_LIMIT when the port is in use (the message names it).
        """
        with self._state_lock:
            if self._running:
                return
            port = self._requested_port
            sock = self._bind_or_fail(
                port,
                f"stop what listens on port {port}, or choose another port (0 picks a free one)",
            )
            control = _Site(self, sock)
            pending = list(self._sites.values())
            with self._lock:
                if self._pool_closed():
                    self._pool = UpstreamPool()
                self._control = control
                self._port = control.port
                self._running = True
                if self._next_port == 0:
                    base = self._reverse_base
                    if base is None:
                        base = (
                            0 if self._requested_port == 0 else control.port + REVERSE_PORT_OFFSET
                        )
                    self._next_port = base
            control.serve()
            for site in pending:
                site.serve()
            if self._bus is not None:
                try:
                    self._subscription = self._bus.subscribe(
                        EventType.URL_DETECTED, self._on_url_detected
                    )
                except Exception:
                    _log.exception("proxy: could not subscribe to URL_DETECTED events")

    def _pool_closed(self) -> bool:
        try:
            self._pool._check_open()
        except BrummerError:
            return True
        return False

    @contract(
        ThreadSafety.TS,
        timeout=30.0,
        guarantees="every listener, tunnel and upstream connection closed; every thread joined",
    )
    def stop(self) -> None:
        """Stop serving: close every port, connection and tunnel, and join every thread.

        Thread safety: TS. Idempotent. Reverse mappings end with it; requests and
        telemetry stay readable.
        """
        # Unsubscribe first and outside _state_lock: a URL_DETECTED handler running right now
        # may be waiting for that lock, and unsubscribe may wait for the handler.
        with self._lock:
            subscription, self._subscription = self._subscription, None
        if subscription is not None and self._bus is not None:
            with contextlib.suppress(Exception):
                self._bus.unsubscribe(subscription)
        with self._state_lock:
            with self._lock:
                was_running = self._running
                self._running = False
                sites = [s for s in (self._control, *self._sites.values()) if s is not None]
                self._control = None
                self._sites = {}
                self._process_by_origin.clear()
                self._next_port = 0
            for site in sites:
                site.shutdown_begin()
            self._pool.close()
            for site in sites:
                site.shutdown_end()
            if was_running:
                _log.debug("proxy stopped")

    @property
    @contract(ThreadSafety.TS)
    def is_running(self) -> bool:
        """Whether the proxy is serving.

        Thread safety: TS.
        """
        with self._lock:
            return self._running

    @property
    @contract(ThreadSafety.TS)
    def port(self) -> int:
        """The control (reverse) or proxy (full) port while running; the requested one before.

        Thread safety: TS.
        """
        with self._lock:
            return self._port or self._requested_port

    @property
    @contract(ThreadSafety.TS)
    def mode(self) -> str:
        """ "reverse" or "full".

        Thread safety: TS.
        """
        return self._mode

    @property
    @contract(ThreadSafety.TS)
    def telemetry(self) -> TelemetryStore:
        """The browser telemetry sessions.

        Thread safety: TS (the store is thread-safe).
        """
        return self._telemetry

    @contract(ThreadSafety.TS, guarantees="the change applies to the next response")
    def enable_telemetry(self, enabled: bool) -> None:
        """Turn monitor injection (and telemetry intake) on or off at once.

        Thread safety: TS.
        """
        with self._lock:
            self._telemetry_on = bool(enabled)

    @property
    @contract(ThreadSafety.TS)
    def telemetry_enabled(self) -> bool:
        """Whether HTML pages get the monitor script.

        Thread safety: TS. A single attribute read (atomic); on the hot path of every request.
        """
        return self._telemetry_on

    # --- mappings ------------------------------------------------------------------------

    @contract(
        ThreadSafety.TS, timeout=BLOCKING, guarantees="the mapping serves new requests at once"
    )
    def register_url(self, url: str, process_name: str, *, process_id: str | None = None) -> str:
        """Front ``url`` with the proxy and attribute its requests to ``process_name``.

        Thread safety: TS.

        Reverse mode: each distinct origin (scheme, host, port) gets its own port on
        127.0.0.1 (from the base port up, busy ports skipped); the returned proxy URL keeps
        the path and query of ``url``. Registering an origin again returns its existing
        mapping. Before :meth:`start`, the port is bound at once and served from start on.
        Full mode: the URL is returned unchanged (the browser reaches it through the proxy).

        Raises:
            BrummerError: INVALID_ARGUMENT for a URL that is not http(s) with a host, or an
                empty process name; RESOURCE_LIMIT when no port is free.
        """
        scheme, host, port, rest = self._parse_url(url)
        if not isinstance(process_name, str) or not process_name.strip():
            raise self._bad(
                f"process_name must be a non-empty string, not {process_name!r}",
                "pass the name of the process that serves the URL",
            )
        if process_id is not None and not isinstance(process_id, str):
            raise self._bad(f"process_id must be a string, not {process_id!r}", "or leave it out")
        return self._register(url, scheme, host, port, rest, process_name, process_id)

    def _register(
        self,
        url: str,
        scheme: str,
        host: str,
        port: int,
        rest: str,
        process_name: str,
        process_id: str | None,
        *,
        only_running: bool = False,
    ) -> str:
        with self._state_lock:
            if only_running and not self.is_running:
                return ""
            with self._lock:
                self._process_by_origin.setdefault((host, port), (process_name, process_id))
            if self._mode == "full":
                return url
            origin = (scheme, host, port)
            with self._lock:
                site = self._sites.get(origin)
                running = self._running
            if site is None:
                if scheme == "https":
                    raise BrummerError(
                        COMPONENT,
                        ErrorCode.INVALID_ARGUMENT,
                        f"cannot front {url!r}: reverse mode forwards plain http only",
                        hint="serve the dev server over http, or use full mode (CONNECT tunnels)",
                    )
                if self._own_port(host, port):
                    raise self._bad(
                        f"{url!r} is one of the proxy's own ports", "register the dev server's URL"
                    )
                sock = self._bind_reverse()
                proxy_port = sock.getsockname()[1]
                mapping = URLMapping(
                    target_url=f"{scheme}://{_host_text(host)}:{port}",
                    proxy_url=f"http://127.0.0.1:{proxy_port}",
                    process_name=process_name,
                    port=proxy_port,
                    created=_now(),
                    process_id=process_id,
                )
                site = _Site(self, sock, origin=origin, mapping=mapping)
                with self._lock:
                    self._sites[origin] = site
                if running:
                    site.serve()
            assert site.mapping is not None
            proxy_url = site.mapping.proxy_url + rest
        self._tell_log_store(url, proxy_url)
        return proxy_url

    def _tell_log_store(self, url: str, proxy_url: str) -> None:
        setter = getattr(self._log_store, "set_proxy_url", None)
        if setter is None:
            return
        try:
            setter(url, proxy_url)
        except Exception as exc:
            _log.debug("proxy: log store did not take the proxy URL for %s: %s", url, exc)

    def _own_port(self, host: str, port: int) -> bool:
        if host not in {"127.0.0.1", "localhost", "::1", "0.0.0.0"}:
            return False
        with self._lock:
            ports = {s.port for s in self._sites.values()}
            if self._control is not None:
                ports.add(self._control.port)
        return port in ports

    def _parse_url(self, url: object) -> tuple[str, str, int, str]:
        if not isinstance(url, str):
            raise self._bad(f"url must be a string, not {url!r}", "pass e.g. http://localhost:3000")
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise self._bad(
                f"not a valid URL: {url!r} ({exc})", "pass e.g. http://localhost:3000"
            ) from exc
        scheme = parts.scheme.lower()
        if scheme not in {"http", "https"} or not parts.hostname:
            raise self._bad(
                f"not an http(s) URL with a host: {url!r}",
                "the proxy fronts web servers: pass e.g. http://localhost:3000",
            )
        host = parts.hostname.lower()
        rest = parts.path or ""
        if parts.query:
            rest += "?" + parts.query
        if rest == "/":
            rest = "/"
        return scheme, host, port or (443 if scheme == "https" else 80), rest

    def _bind_reverse(self) -> socket.socket:
        with self._lock:
            start = self._next_port
        if start == 0:
            base = self._reverse_base
            if base is None:
                base = (
                    0 if self._requested_port == 0 else self._requested_port + REVERSE_PORT_OFFSET
                )
            start = base
        if start == 0:
            return self._bind_or_fail(0, "free the port or choose another")
        last_error: OSError | None = None
        for candidate in range(start, min(start + PORT_ATTEMPTS, 65536)):
            try:
                sock = _bind(self._host, candidate)
            except OSError as exc:
                last_error = exc
                continue
            with self._lock:
                self._next_port = candidate + 1
            return sock
        raise BrummerError(
            COMPONENT,
            ErrorCode.RESOURCE_LIMIT,
            f"no free port in {start}..{start + PORT_ATTEMPTS - 1} for a reverse proxy",
            hint="free some ports or pass another reverse_port_base",
            context={"port": start},
            cause=last_error,
        )

    def _bind_or_fail(self, port: int, hint: str) -> socket.socket:
        try:
            return _bind(self._host, port)
        except OSError as exc:
            raise BrummerError(
                COMPONENT,
                ErrorCode.RESOURCE_LIMIT,
                f"port {port} on {self._host} is in use ({exc.strerror or exc})",
                hint=hint,
                context={"port": port, "host": self._host},
                cause=exc,
            ) from exc

    @contract(ThreadSafety.TS)
    def get_url_mappings(self) -> list[URLMapping]:
        """Every reverse mapping, newest first.

        Thread safety: TS. A consistent snapshot.
        """
        with self._lock:
            mappings = [s.mapping for s in self._sites.values() if s.mapping is not None]
        return sorted(mappings, key=lambda m: m.created, reverse=True)

    def _on_url_detected(self, event: Event) -> None:
        data = event.data
        url = data.get("url")
        name = data.get("process_name") or event.process_id
        if not isinstance(url, str) or not isinstance(name, str) or not self.is_running:
            return
        try:
            scheme, host, port, rest = self._parse_url(url)
            self._register(url, scheme, host, port, rest, name, event.process_id, only_running=True)
        except BrummerError as exc:
            _log.debug("proxy: not fronting detected URL %r: %s", url, exc)

    # --- capture -------------------------------------------------------------------------

    @contract(ThreadSafety.TS, timeout=1.0, guarantees="a consistent snapshot, oldest first")
    def get_requests(self) -> list[HTTPRequest]:
        """Every recorded request still in the history, oldest first.

        Thread safety: TS.
        """
        with self._lock:
            return list(self._requests)

    @contract(ThreadSafety.TS, timeout=1.0)
    def get_requests_for_process(self, name: str) -> list[HTTPRequest]:
        """The recorded requests of one process, oldest first.

        Thread safety: TS.
        """
        with self._lock:
            return [r for r in self._requests if r.process_name == name]

    @contract(ThreadSafety.TS, timeout=2.0, guarantees="all requests removed atomically")
    def clear_requests(self) -> None:
        """Forget every recorded request and reset the counters.

        Thread safety: TS.
        """
        with self._lock:
            self._requests.clear()
            self._total = self._failed = self._bytes = 0
            self._time_total = 0.0

    @contract(ThreadSafety.TS)
    def metrics(self) -> ProxyMetrics:
        """Counters since start or the last :meth:`clear_requests`.

        Thread safety: TS. A consistent snapshot.
        """
        with self._lock:
            sites = [s for s in (self._control, *self._sites.values()) if s is not None]
            total, failed, sent, spent = self._total, self._failed, self._bytes, self._time_total
        return ProxyMetrics(
            total_requests=total,
            successful_requests=total - failed,
            failed_requests=failed,
            bytes_transferred=sent,
            avg_response_time=spent / total if total else 0.0,
            active_connections=sum(s.active() for s in sites),
        )

    def _record(
        self,
        *,
        method: str,
        url: str,
        status: int,
        started: float,
        stamp: datetime,
        request_size: int,
        response_size: int,
        content_type: str,
        process: tuple[str, str | None],
        error: str = "",
        is_xhr: bool = False,
    ) -> HTTPRequest:
        duration = time.perf_counter() - started
        request = HTTPRequest(
            id=f"req-{next(self._ids)}",
            method=method,
            url=url,
            status=status,
            duration=duration,
            request_size=request_size,
            response_size=response_size,
            content_type=content_type,
            process_name=process[0],
            timestamp=stamp,
            error=error,
            is_xhr=is_xhr,
            process_id=process[1],
        )
        with self._lock:
            self._requests.append(request)
            self._total += 1
            self._failed += request.is_error
            self._bytes += request_size + response_size
            self._time_total += duration
        bus = self._bus
        if bus is not None:
            try:
                bus.publish_async(
                    Event(
                        EventType.PROXY_REQUEST,
                        attrs.asdict(request) | {"timestamp": stamp.isoformat()},
                        process_id=process[1],
                    )
                )
            except Exception:
                _log.exception("proxy: could not publish a proxy.request event")
        return request

    def _process_for(self, host: str, port: int) -> tuple[str, str | None]:
        with self._lock:
            found = self._process_by_origin.get((host, port))
            if found is None:
                found = next(
                    (v for (h, _), v in self._process_by_origin.items() if h == host), None
                )
        return found or ("unknown", None)

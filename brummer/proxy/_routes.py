"""The WSGI side of the proxy: routing, forwarding, injection and tunnels (private).

:class:`_Routes` is mixed into :class:`~brummer.proxy.server.ProxyServer`; its methods run
in the werkzeug connection threads and use only the server's thread-safe internals.
"""

from __future__ import annotations

import html as _html
import itertools
import json
import logging
import re
import socket
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from brummer.errors import BrummerError, ErrorCode
from brummer.events import Event, EventType
from brummer.proxy.forward import (
    UpstreamFailure,
    UpstreamResponse,
    error_page,
    exchange,
    request_headers,
    response_headers,
    tunnel,
)
from brummer.proxy.telemetry import (
    MAX_TELEMETRY_BODY,
    MONITOR_PATH,
    TELEMETRY_PATH,
    TelemetryEvent,
    browser_log_lines,
    decode_body,
    inject_monitor,
    parse_telemetry,
    relax_csp,
)

if TYPE_CHECKING:
    from brummer.proxy.forward import UpstreamPool
    from brummer.proxy.server import HTTPRequest, ProxyMetrics, URLMapping, _Site
    from brummer.proxy.telemetry import TelemetryStore

CONTROL_PREFIX = "/__brummer__/"
MAX_INJECT_BODY = 8 << 20  # HTML bodies larger than this are relayed without the monitor
_log = logging.getLogger("brummer.proxy")


def _now() -> datetime:
    return datetime.now(UTC)


def _is_xhr(environ: Mapping[str, Any]) -> bool:
    if environ.get("HTTP_X_REQUESTED_WITH", "").lower() == "xmlhttprequest":
        return True
    mode = environ.get("HTTP_SEC_FETCH_MODE", "").lower()
    dest = environ.get("HTTP_SEC_FETCH_DEST", "").lower()
    return mode in {"cors", "same-origin", "no-cors"} or dest == "empty"


def _wants_page(environ: Mapping[str, Any]) -> bool:
    if environ["REQUEST_METHOD"] != "GET" or _is_xhr(environ):
        return False
    dest = environ.get("HTTP_SEC_FETCH_DEST", "").lower()
    if dest and dest not in {"document", "iframe", "frame"}:
        return False
    accept = environ.get("HTTP_ACCEPT", "").lower()
    return not accept or "text/html" in accept or "*/*" in accept


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _same_origin(environ: Mapping[str, Any]) -> bool:
    """Whether a post comes from the proxied page itself (or from no browser at all).

    Browsers send ``Origin`` with every POST; the monitor posts to its own page's origin,
    so a foreign ``Origin`` is another site writing into the developer's error list. On
    the proxy's own ports the host must be loopback too (a DNS-rebound name is not).
    """
    uri: str = environ.get("REQUEST_URI", "")
    forwarded = uri.lower().startswith("http://")  # full mode: an absolute-URI request
    host = urlsplit(uri).netloc if forwarded else environ.get("HTTP_HOST", "")
    if host and not forwarded and (urlsplit(f"//{host}").hostname or "") not in _LOOPBACK:
        return False
    origin = environ.get("HTTP_ORIGIN")
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme == "http" and bool(host) and parts.netloc.lower() == host.lower()


def _read_upto(stream: Any, limit: int) -> bytes:
    """Read a body of unknown length (chunked), stopping once it is over ``limit``."""
    parts: list[bytes] = []
    size = 0
    while size <= limit and (data := stream.read(65536)):
        parts.append(data)
        size += len(data)
    return b"".join(parts)


def _status_line(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


def _simple(
    start_response: Callable[..., Any],
    code: int,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    extra: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    start_response(
        _status_line(code),
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *extra,
        ],
    )
    return [body]


class _Relay:
    """The WSGI response iterable that streams an upstream body and records the request."""

    def __init__(
        self,
        response: UpstreamResponse,
        finish: Callable[[int, str], None],
        pieces: Iterable[bytes] | None = None,
    ) -> None:
        self._response = response
        self._finish = finish
        self._pieces = response if pieces is None else pieces
        self._sent = 0
        self._error = ""
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        if self._response.content_length is None:
            yield b""  # send the head at once: an SSE stream may stay quiet for a long time
        try:
            for piece in self._pieces:
                self._sent += len(piece)
                yield piece
        except UpstreamFailure as exc:
            self._error = str(exc)
            raise
        self._complete = True

    def close(self) -> None:
        self._response.close()
        error = self._error or ("" if self._complete else "client disconnected before the end")
        self._finish(self._sent, error)


class _Routes:
    """WSGI handling for ProxyServer (a mixin; see the module docstring)."""

    if TYPE_CHECKING:  # provided by ProxyServer
        _bus: Any
        _log_store: Any
        _mode: str
        _monitor_js: bytes
        _pool: UpstreamPool
        _telemetry: TelemetryStore
        _upstream_timeout: float

        def _process_for(self, host: str, port: int) -> tuple[str, str | None]: ...

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
        ) -> HTTPRequest: ...

        def get_url_mappings(self) -> list[URLMapping]: ...

        def metrics(self) -> ProxyMetrics: ...

        @property
        def port(self) -> int: ...

        @property
        def telemetry_enabled(self) -> bool: ...

    def _app_for(
        self, site: _Site
    ) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            return self._dispatch(site, environ, start_response)

        return app

    def _dispatch(
        self, site: _Site, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        uri: str = environ.get("REQUEST_URI", "")
        method: str = environ["REQUEST_METHOD"]
        if site.origin is not None:
            _, host, port = site.origin
            process = self._site_process(site)
            if path.startswith(CONTROL_PREFIX):
                return self._control_endpoint(environ, start_response, process)
            return self._forward(environ, start_response, host, port, uri or "/", process)
        if self._mode == "full":
            if method == "CONNECT":
                return self._connect(environ, start_response)
            if uri.lower().startswith("http://"):
                parts = urlsplit(uri)
                host = (parts.hostname or "").lower()
                try:
                    port = parts.port or 80
                except ValueError:
                    return _simple(start_response, 400, b"bad port in the request URL\n")
                process = self._process_for(host, port)
                if parts.path.startswith(CONTROL_PREFIX):
                    return self._control_endpoint(environ, start_response, process)
                target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                return self._forward(environ, start_response, host, port, target, process)
            if uri.lower().startswith("https://"):
                return _simple(
                    start_response,
                    400,
                    b"https URLs go through CONNECT; configure this proxy as the HTTPS proxy\n",
                )
        if path in {"/proxy.pac", "/pac"}:
            return self._pac(start_response)
        if path.startswith(CONTROL_PREFIX):
            return self._control_endpoint(environ, start_response, ("unknown", None))
        if path == "/":
            return self._banner(start_response)
        return _simple(
            start_response,
            404,
            error_page(
                404,
                "Not Found",
                "This is brummer's control port; each dev server has its own proxy port.",
                "Open the proxy URLs listed at / instead.",
            ),
            "text/html; charset=utf-8",
        )

    def _site_process(self, site: _Site) -> tuple[str, str | None]:
        mapping = site.mapping
        if mapping is None:
            return ("unknown", None)
        return (mapping.process_name, mapping.process_id)

    def _pac(self, start_response: Callable[..., Any]) -> list[bytes]:
        port = self.port
        pac = (
            "function FindProxyForURL(url, host) {\n"
            '  if (url.substring(0, 5) === "http:" || url.substring(0, 6) === "https:") {\n'
            f'    return "PROXY 127.0.0.1:{port}; DIRECT";\n'
            "  }\n"
            '  return "DIRECT";\n'
            "}\n"
        ).encode()
        return _simple(start_response, 200, pac, "application/x-ns-proxy-autoconfig")

    def _banner(self, start_response: Callable[..., Any]) -> list[bytes]:

        rows = "".join(
            f"<li><a href='{_html.escape(m.proxy_url)}/'>{_html.escape(m.proxy_url)}</a> → "
            f"{_html.escape(m.target_url)} ({_html.escape(m.process_name)})</li>"
            for m in self.get_url_mappings()
        )
        body = (
            "<!doctype html><html><head><meta charset='utf-8'><title>brummer proxy</title>"
            f"</head><body><h1>brummer proxy ({self._mode} mode)</h1>"
            f"<ul>{rows or '<li>no URLs registered yet</li>'}</ul>"
            "<p><a href='/proxy.pac'>proxy.pac</a></p></body></html>"
        ).encode()
        return _simple(start_response, 200, body, "text/html; charset=utf-8")

    def _control_endpoint(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        process: tuple[str, str | None],
    ) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        if path == MONITOR_PATH:
            if method not in {"GET", "HEAD"}:
                return _simple(start_response, 405, b"GET only\n", extra=[("Allow", "GET")])
            return _simple(
                start_response, 200, self._monitor_js, "application/javascript; charset=utf-8"
            )
        if path == TELEMETRY_PATH:
            if method != "POST":
                return _simple(start_response, 405, b"POST only\n", extra=[("Allow", "POST")])
            return self._telemetry_post(environ, start_response, process)
        if path == "/__brummer__/status":
            doc = {
                "mode": self._mode,
                "port": self.port,
                "telemetry": self.telemetry_enabled,
                "mappings": [
                    {"target": m.target_url, "proxy": m.proxy_url, "process": m.process_name}
                    for m in self.get_url_mappings()
                ],
                "metrics": attrs.asdict(self.metrics()),
            }
            return _simple(start_response, 200, json.dumps(doc).encode(), "application/json")
        return _simple(start_response, 404, b"unknown brummer endpoint\n")

    def _telemetry_post(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        process: tuple[str, str | None],
    ) -> list[bytes]:
        if not self.telemetry_enabled:
            return _simple(start_response, 403, b"telemetry is turned off\n")
        if not _same_origin(environ):
            return _simple(start_response, 403, b"telemetry is accepted from the page only\n")
        text = environ.get("CONTENT_LENGTH") or ""
        declared = int(text) if text.isdigit() else None
        if declared is not None and declared > MAX_TELEMETRY_BODY:
            return _simple(start_response, 413, b"telemetry post too large\n")
        stream = environ["wsgi.input"]
        try:
            body = stream.read() if declared is not None else _read_upto(stream, MAX_TELEMETRY_BODY)
        except (OSError, ValueError):
            return _simple(start_response, 400, b"could not read the body\n")
        try:
            batch = parse_telemetry(body)
        except BrummerError as exc:
            code = 413 if exc.code is ErrorCode.RESOURCE_LIMIT else 400
            return _simple(start_response, code, f"{exc.message}\n".encode())
        name, pid = process
        self._telemetry.record(
            name,
            batch.session_id,
            batch.url,
            batch.events,
            user_agent=environ.get("HTTP_USER_AGENT", "")[:300],
        )
        self._deliver_browser_events(name, pid, batch.session_id, batch.url, batch.events)
        start_response("204 No Content", [("Cache-Control", "no-store")])
        return []

    def _deliver_browser_events(
        self,
        name: str,
        pid: str | None,
        session_id: str,
        url: str,
        events: Iterable[TelemetryEvent],
    ) -> None:
        store = self._log_store
        errors: list[str] = []
        types: list[str] = []
        for event in events:
            types.append(event.type)
            lines = browser_log_lines(event)
            if event.is_error and lines:
                errors.append(lines[0][0])
            if store is None or not lines:
                continue
            try:
                add_lines = getattr(store, "add_lines", None)
                if add_lines is not None:  # message and stack stored together, in order
                    add_lines(pid or name, name, [c for c, _ in lines], lines[0][1])
                else:
                    for content, is_error in lines:
                        store.add(pid or name, name, content, is_error)
            except Exception:
                _log.exception("proxy: the log store refused a browser line")
        bus = self._bus
        if bus is None or not types:
            return
        try:
            bus.publish_async(
                Event(
                    EventType.TELEMETRY,
                    {
                        "process_name": name,
                        "session_id": session_id,
                        "url": url,
                        "event_types": types,
                        "errors": errors,
                    },
                    process_id=pid,
                )
            )
        except Exception:
            _log.exception("proxy: could not publish a telemetry event")

    def _forward(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        host: str,
        port: int,
        target: str,
        process: tuple[str, str | None],
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        stamp = _now()
        method: str = environ["REQUEST_METHOD"]
        url = f"http://{_host_text(host)}:{port}{target}"
        if "websocket" in environ.get("HTTP_UPGRADE", "").lower():
            return self._websocket(environ, start_response, host, port, target, process)
        is_xhr = _is_xhr(environ)
        inject = self.telemetry_enabled and _wants_page(environ)
        headers = request_headers(environ, f"{_host_text(host)}:{port}", strip_encodings=inject)
        chunked = bool(environ.get("wsgi.input_terminated"))
        length_text = environ.get("CONTENT_LENGTH") or "0"
        length = int(length_text) if length_text.isdigit() else 0
        sent_up = [length]

        def count_up(n: int) -> None:
            sent_up[0] = n

        def fail(code: int, title: str, message: str, hint: str, error: str) -> list[bytes]:
            self._record(
                method=method,
                url=url,
                status=code,
                started=started,
                stamp=stamp,
                request_size=0,
                response_size=0,
                content_type="text/html",
                process=process,
                error=error,
                is_xhr=is_xhr,
            )
            page = error_page(code, title, message, hint)
            return _simple(start_response, code, page, "text/html; charset=utf-8")

        try:
            response = exchange(
                self._pool,
                (host, port),
                method,
                target,
                headers,
                environ["wsgi.input"],
                content_length=None if chunked else length,
                chunked_body=chunked,
                timeout=self._upstream_timeout,
                on_request_bytes=count_up,
            )
        except UpstreamFailure as exc:
            name = process[0]
            if exc.kind == "timeout":
                return fail(
                    504,
                    "Gateway Timeout",
                    f"{name} ({url}) did not answer within {self._upstream_timeout:g} s.",
                    "Is the dev server stuck? Check its log in brummer.",
                    str(exc),
                )
            if exc.kind == "connect":
                return fail(
                    502,
                    "Bad Gateway",
                    f"{name} is not running: nothing answers at {_host_text(host)}:{port} ({exc}).",
                    f"Start {name} in brummer (or check the port it prints) and reload.",
                    str(exc),
                )
            return fail(
                502,
                "Bad Gateway",
                f"{name} broke the connection at {_host_text(host)}:{port} ({exc}).",
                f"Check {name}'s log in brummer for a crash, then reload.",
                str(exc),
            )
        except ConnectionError as exc:
            return fail(400, "Bad Request", f"the request body was cut short: {exc}", "", str(exc))
        except BrummerError as exc:
            return fail(503, "Service Unavailable", exc.message, exc.hint, str(exc))

        out_headers = response_headers(response.headers)
        content_type = response.header("Content-Type")
        status = response.status

        def finish(sent: int, error: str) -> None:
            self._record(
                method=method,
                url=url,
                status=status,
                started=started,
                stamp=stamp,
                request_size=sent_up[0],
                response_size=sent,
                content_type=content_type,
                process=process,
                error=error,
                is_xhr=is_xhr,
            )

        if (
            inject
            and status == 200
            and content_type.lower().startswith("text/html")
            and self.telemetry_enabled
        ):
            return self._inject(response, out_headers, start_response, process[0], finish)
        start_response(f"{status} {response.reason}".rstrip(), out_headers)
        return _Relay(response, finish)

    def _inject(
        self,
        response: UpstreamResponse,
        headers: list[tuple[str, str]],
        start_response: Callable[..., Any],
        process_name: str,
        finish: Callable[[int, str], None],
    ) -> Iterable[bytes]:
        if response.content_length is None:
            return self._inject_stream(response, headers, start_response, process_name, finish)
        encoding = response.header("Content-Encoding")
        status_line = f"{response.status} {response.reason}".rstrip()
        body = bytearray()
        pieces = iter(response)
        try:
            for piece in pieces:
                body += piece
                if len(body) > MAX_INJECT_BODY:
                    start_response(status_line, headers)
                    return _Relay(response, finish, itertools.chain([bytes(body)], pieces))
        except UpstreamFailure as exc:
            return _broken_page(response, start_response, process_name, finish, exc)
        decoded = decode_body(bytes(body), encoding)
        page: bytes | None = None
        new_csp, nonce = _relaxed_csp(headers)
        if decoded is not None:
            page = inject_monitor(decoded, process_name, nonce)
        if page is None:
            start_response(status_line, headers)
            return _Relay(response, finish, [bytes(body)])
        kept = _page_headers(headers, new_csp)
        kept.append(("Content-Length", str(len(page))))
        start_response(status_line, kept)
        return _Relay(response, finish, [page])

    def _inject_stream(
        self,
        response: UpstreamResponse,
        headers: list[tuple[str, str]],
        start_response: Callable[..., Any],
        process_name: str,
        finish: Callable[[int, str], None],
    ) -> Iterable[bytes]:
        """A page of unknown length (chunked or close-delimited): inject into its beginning
        and stream the rest as it arrives (server-side rendering streams its HTML)."""
        status_line = f"{response.status} {response.reason}".rstrip()
        inflater = _Inflater.for_encoding(response.header("Content-Encoding"))
        raw: list[bytes] = []
        page = bytearray()
        pieces = iter(response)
        try:
            if inflater is not None:
                for piece in pieces:
                    raw.append(piece)
                    page += inflater.feed(piece)
                    if _beginning_seen(page):
                        break
        except zlib.error:
            inflater = None  # not what it claims to be: relay it as it is
        except UpstreamFailure as exc:
            return _broken_page(response, start_response, process_name, finish, exc)
        new_csp, nonce = _relaxed_csp(headers)
        injected = None if inflater is None else inject_monitor(bytes(page), process_name, nonce)
        if inflater is None or injected is None:
            start_response(status_line, headers)
            return _Relay(response, finish, itertools.chain(raw, pieces))
        start_response(status_line, _page_headers(headers, new_csp))
        return _Relay(response, finish, _inflated(injected, pieces, inflater))

    def _websocket(
        self,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        host: str,
        port: int,
        target: str,
        process: tuple[str, str | None],
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        stamp = _now()
        url = f"ws://{_host_text(host)}:{port}{target}"
        headers = request_headers(environ, f"{_host_text(host)}:{port}")
        headers += [("Connection", "Upgrade"), ("Upgrade", environ.get("HTTP_UPGRADE", ""))]
        try:
            response = exchange(
                self._pool,
                (host, port),
                "GET",
                target,
                headers,
                environ["wsgi.input"],
                content_length=0,
                chunked_body=False,
                timeout=self._upstream_timeout,
            )
        except (UpstreamFailure, BrummerError) as exc:
            self._record(
                method="GET",
                url=url,
                status=502,
                started=started,
                stamp=stamp,
                request_size=0,
                response_size=0,
                content_type="",
                process=process,
                error=str(exc),
            )
            page = error_page(502, "Bad Gateway", f"{process[0]} is not running ({exc}).")
            return _simple(start_response, 502, page, "text/html; charset=utf-8")
        if response.status != 101:
            status = response.status

            def finish(sent: int, error: str) -> None:
                self._record(
                    method="GET",
                    url=url,
                    status=status,
                    started=started,
                    stamp=stamp,
                    request_size=0,
                    response_size=sent,
                    content_type=response.header("Content-Type"),
                    process=process,
                    error=error,
                )

            start_response(
                f"{status} {response.reason}".rstrip(), response_headers(response.headers)
            )
            return _Relay(response, finish)
        conn = response.connection()
        client, pending = environ["brummer.take_over"]()

        def relay() -> tuple[int, int]:
            # The upstream's own 101 head goes to the client byte for byte.
            client.sendall(response.raw_head)
            leftover = _buffered(conn.rfile, conn.sock)
            up, down = tunnel(client, conn.sock, client_pending=pending, upstream_pending=leftover)
            return up, down + len(response.raw_head)

        return self._tunnel(
            conn,
            relay,
            method="GET",
            url=url,
            status=101,
            started=started,
            stamp=stamp,
            content_type="websocket",
            process=process,
        )

    def _connect(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        stamp = _now()
        authority = environ.get("REQUEST_URI", "")
        host, _, port_text = authority.rpartition(":")
        host = host.strip("[]").lower()
        if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return _simple(start_response, 400, b"CONNECT needs host:port\n")
        port = int(port_text)
        process = self._process_for(host, port)
        try:
            upstream = socket.create_connection((host, port), timeout=5.0)
        except OSError as exc:
            self._record(
                method="CONNECT",
                url=authority,
                status=502,
                started=started,
                stamp=stamp,
                request_size=0,
                response_size=0,
                content_type="",
                process=process,
                error=str(exc),
            )
            return _simple(start_response, 502, f"cannot reach {authority}: {exc}\n".encode())
        try:
            conn = self._pool.track(upstream)
        except BrummerError as exc:
            return _simple(start_response, 503, f"{exc.message}\n".encode())

        def relay() -> tuple[int, int]:
            client, pending = environ["brummer.take_over"]()
            client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            return tunnel(client, upstream, client_pending=pending)

        return self._tunnel(
            conn,
            relay,
            method="CONNECT",
            url=authority,
            status=200,
            started=started,
            stamp=stamp,
            content_type="",
            process=process,
        )

    def _tunnel(
        self,
        conn: Any,
        relay: Callable[[], tuple[int, int]],
        *,
        method: str,
        url: str,
        status: int,
        started: float,
        stamp: datetime,
        content_type: str,
        process: tuple[str, str | None],
    ) -> list[bytes]:
        """Run ``relay`` (it copies bytes both ways and returns the counts up and down), then
        give ``conn`` back to the pool, never for reuse, and record the exchange."""
        up = down = 0
        error = ""
        try:
            up, down = relay()
        except OSError as exc:
            error = f"tunnel broke: {exc}"
        except BrummerError as exc:
            error = str(exc)
        finally:
            self._pool.give_back(conn, reusable=False)
            self._record(
                method=method,
                url=url,
                status=status,
                started=started,
                stamp=stamp,
                request_size=up,
                response_size=down,
                content_type=content_type,
                process=process,
                error=error,
            )
        return []


def _broken_page(
    response: UpstreamResponse,
    start_response: Callable[..., Any],
    process_name: str,
    finish: Callable[[int, str], None],
    exc: UpstreamFailure,
) -> list[bytes]:
    response.close()
    finish(0, str(exc))  # recorded with the upstream's status and the error
    broken = error_page(
        502,
        "Bad Gateway",
        f"{process_name} broke the connection while sending the page ({exc}).",
        f"Check {process_name}'s log in brummer, then reload.",
    )
    return _simple(start_response, 502, broken, "text/html; charset=utf-8")


def _relaxed_csp(headers: list[tuple[str, str]]) -> tuple[list[str], str]:
    """The page's CSP headers loosened for the monitor, and the nonce it needs ("" if none)."""
    nonce = ""
    policies: list[str] = []
    for name, value in headers:
        if name.lower() == "content-security-policy":
            relaxed, got = relax_csp(value)
            policies.append(relaxed)
            nonce = nonce or got
    return policies, nonce


def _page_headers(headers: list[tuple[str, str]], policies: list[str]) -> list[tuple[str, str]]:
    """Headers of a rewritten page: no length, no encoding (it is decoded), loosened CSP."""
    kept = [
        (k, v)
        for k, v in headers
        if k.lower() not in {"content-length", "content-encoding", "content-security-policy"}
    ]
    kept.extend(("Content-Security-Policy", p) for p in policies)
    return kept


_PAGE_BEGINNING = re.compile(rb"<head(?:\s[^>]*)?>|<body[\s>]", re.IGNORECASE)
_BEGINNING_LIMIT = 65536  # inject_monitor looks this far; a streamed page waits no longer


def _beginning_seen(page: bytearray) -> bool:
    return len(page) >= _BEGINNING_LIMIT or _PAGE_BEGINNING.search(page) is not None


class _Inflater:
    """Incremental gzip/deflate decoding (identity passes through) of a streamed page."""

    def __init__(self, wbits: int | None, *, identity: bool = False) -> None:
        self._identity = identity
        self._wbits = wbits  # None: deflate, zlib-wrapped or raw, decided by the first bytes
        self._inflater: Any = None

    @staticmethod
    def for_encoding(encoding: str) -> _Inflater | None:
        encoding = encoding.strip().lower()
        if encoding in {"", "identity"}:
            return _Inflater(None, identity=True)
        if encoding in {"gzip", "x-gzip"}:
            return _Inflater(16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            return _Inflater(None)
        return None

    def feed(self, data: bytes) -> bytes:
        if self._identity:
            return data
        if self._inflater is None:
            wbits = self._wbits
            if wbits is None:  # a zlib header is 0x?8 with (CMF * 256 + FLG) % 31 == 0
                wrapped = (
                    len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] * 256 + data[1]) % 31 == 0
                )
                wbits = zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
            self._inflater = zlib.decompressobj(wbits)
        out: bytes = self._inflater.decompress(data)
        return out

    def flush(self) -> bytes:
        if self._inflater is None:
            return b""
        out: bytes = self._inflater.flush()
        return out


def _inflated(first: bytes, rest: Iterator[bytes], inflater: _Inflater) -> Iterator[bytes]:
    yield first
    try:
        for piece in rest:
            data = inflater.feed(piece)
            if data:
                yield data
        tail = inflater.flush()
    except zlib.error as exc:
        raise UpstreamFailure("reset", f"the page's encoding broke mid-stream: {exc}") from exc
    if tail:
        yield tail


def _buffered(rfile: Any, sock: socket.socket) -> bytes:
    """Bytes the upstream sent after its 101 head that sit in our read buffer already."""
    sock.setblocking(False)
    try:
        data = rfile.read1(65536)
    except (BlockingIOError, OSError):
        data = b""
    finally:
        sock.setblocking(True)
    return data or b""


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host

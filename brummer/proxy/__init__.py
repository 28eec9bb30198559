"""The recording HTTP proxy (werkzeug) with browser telemetry.

``ProxyServer`` fronts each development server with a port of its own (reverse mode) or
acts as a forward proxy (full mode), records every request, and injects a small monitor
script into HTML pages so browser errors reach the same error list as terminal errors.
"""

from brummer.proxy.server import (
    HTTPRequest as HTTPRequest,
    ProxyMetrics as ProxyMetrics,
    ProxyServer as ProxyServer,
    URLMapping as URLMapping,
)
from brummer.proxy.telemetry import (
    TelemetryBatch as TelemetryBatch,
    TelemetryEvent as TelemetryEvent,
    TelemetrySession as TelemetrySession,
    TelemetryStore as TelemetryStore,
)

__all__ = [
    "HTTPRequest",
    "ProxyMetrics",
    "ProxyServer",
    "TelemetryBatch",
    "TelemetryEvent",
    "TelemetrySession",
    "TelemetryStore",
    "URLMapping",
]

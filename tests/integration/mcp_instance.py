"""A brummer MCP instance in its own process, for the hub tests.

Run as ``python -m tests.integration.mcp_instance <project dir>`` (with BRUMMER_STATE_DIR
set): it serves a real log store over MCP, announces itself in the instance directory,
prints ``ready <port>`` and serves until its stdin closes.
"""

from __future__ import annotations

import sys

from brummer.events import EventBus
from brummer.logs import LogStore
from brummer.mcp import MCPServer


def main() -> None:
    project = sys.argv[1]
    bus = EventBus()
    logs = LogStore(event_bus=bus)
    logs.add("p1", "web", f"hello from {project}")
    server = MCPServer(port=0, logs=logs, events=bus, announce=True, project_dir=project)
    server.start()
    try:
        sys.stdout.write(f"ready {server.port}\n")
        sys.stdout.flush()
        sys.stdin.read()
    finally:
        server.stop()
        logs.close()
        bus.stop()


if __name__ == "__main__":
    main()

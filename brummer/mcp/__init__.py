"""MCP: the Model Context Protocol server of one brummer, its client, and the hub.

- :class:`MCPServer` (``server.py``): Streamable HTTP at ``http://127.0.0.1:7777/mcp`` and
  stdio, over the components' tools, resources and prompts (``tools.py``).
- :class:`MCPClient` (``client.py``): a thread-safe Streamable HTTP client.
- :class:`MCPConnectionManager`, :class:`ConnectionState`, :class:`ConnectionInfo` and the
  stdio hub (``hub.py``), finding instances through ``discovery.py``.
- ``jsonrpc.py``: JSON-RPC 2.0 messages and error codes.
"""

from brummer.mcp.client import MCPClient as MCPClient
from brummer.mcp.discovery import InstanceInfo as InstanceInfo
from brummer.mcp.hub import (
    ConnectionInfo as ConnectionInfo,
    ConnectionState as ConnectionState,
    HubCatalog as HubCatalog,
    MCPConnectionManager as MCPConnectionManager,
    run_hub_stdio as run_hub_stdio,
)
from brummer.mcp.jsonrpc import RPCError as RPCError
from brummer.mcp.server import (
    LATEST_PROTOCOL_VERSION as LATEST_PROTOCOL_VERSION,
    SUPPORTED_PROTOCOL_VERSIONS as SUPPORTED_PROTOCOL_VERSIONS,
    MCPServer as MCPServer,
)
from brummer.mcp.tools import (
    BrummerCatalog as BrummerCatalog,
    Catalog as Catalog,
    ToolResult as ToolResult,
    ToolSpec as ToolSpec,
)

__all__ = [
    "LATEST_PROTOCOL_VERSION",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "BrummerCatalog",
    "Catalog",
    "ConnectionInfo",
    "ConnectionState",
    "HubCatalog",
    "InstanceInfo",
    "MCPClient",
    "MCPConnectionManager",
    "MCPServer",
    "RPCError",
    "ToolResult",
    "ToolSpec",
    "run_hub_stdio",
]

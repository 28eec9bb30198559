"""The Settings view: package manager, ports, MCP endpoint and client snippets, config sources.

Thread safety: ST. Loop thread only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import urwid

from brummer.contracts import ThreadSafety, contract
from brummer.tui.views.base import Host, View

__all__ = ["SettingsView"]


@contract(ThreadSafety.ST)
class SettingsView(View):
    """What this brummer runs with and how to connect MCP clients to it.

    Thread safety: ST.
    """

    name = "settings"
    title = "Settings"
    tags = frozenset({"settings"})
    keys = (("↑ ↓ PgUp PgDn", "scroll"),)

    def __init__(self, host: Host) -> None:
        self.walker: urwid.SimpleListWalker[Any] = urwid.SimpleListWalker([])
        super().__init__(host, urwid.ListBox(self.walker))

    @contract(ThreadSafety.ST)
    def refresh(self) -> None:
        """Refresh: overrides the base view (see there).

        Thread safety: ST.
        """
        self.walker[:] = [urwid.Text(line) for line in self.lines()]

    @contract(ThreadSafety.ST)
    def lines(self) -> list[Any]:
        """The text of the view, one markup item per line.

        Thread safety: ST.
        """
        from brummer.cli import mcp_config_snippets

        app = self.host.app
        config = getattr(app, "config", None)
        processes = getattr(app, "processes", None)
        lines: list[Any] = [("title", " Project"), f"   directory        {app.work_dir}"]
        if processes is not None:
            lines.append(f"   package manager  {processes.package_manager}")
        lines += ["", ("title", " Servers")]
        mcp = getattr(app, "mcp", None)
        proxy = getattr(app, "proxy", None)
        lines.append(f"   MCP              {getattr(mcp, 'url', None) or 'off'}")
        if proxy is not None:
            mode = getattr(config, "proxy_mode", "reverse")
            lines.append(f"   proxy            127.0.0.1:{proxy.port} ({mode} mode)")
        else:
            lines.append("   proxy            off")
        if config is not None:
            lines += ["", ("title", " Configuration (value  ← where it came from)")]
            for key in (
                "package_manager",
                "mcp_port",
                "proxy_port",
                "proxy_mode",
                "telemetry",
                "command_run",
                "log_max_entries",
                "stop_timeout",
            ):
                value = getattr(config, key)
                shown = "auto" if value is None else str(value)
                lines.append(f"   {key:<16} {shown:<10} ← {config.source_of(key)}")
            for script, policy in sorted(config.restart.items()):
                lines.append(f"   restart {script:<8} {policy.mode} (max {policy.max_restarts})")
            for problem in config.problems:
                lines.append(("error", f"   ! {problem}"))
        if mcp is not None and config is not None:
            lines += ["", ("title", " Connect an MCP client")]
            port = urlsplit(str(getattr(mcp, "url", ""))).port or config.mcp_port
            lines += [f"   {line}" for line in mcp_config_snippets(port).splitlines()]
        return lines

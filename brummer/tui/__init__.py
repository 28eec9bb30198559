"""The urwid interface of ``python -m brummer`` (the only package that imports urwid).

Thread safety: ST. Widgets belong to the urwid loop thread; other threads reach it only
through :class:`brummer.tui.bridge.UIBridge`.
"""

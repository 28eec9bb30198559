"""The views of the interface: one module per tab.

Thread safety: ST. Views are urwid widgets; only the loop thread touches them.
"""

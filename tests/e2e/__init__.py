"""End-to-end: the real interface in a real terminal (tmux)."""

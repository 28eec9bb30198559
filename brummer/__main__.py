"""``python -m brummer``: the command line (see :mod:`brummer.cli`)."""

from brummer.cli import main

raise SystemExit(main())

"""``python -m convkit``: the command line."""

from .cli import main

raise SystemExit(main())

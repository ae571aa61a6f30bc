"""The check every adapter makes first: is its framework installed? If not, say which extra to install.

Only a framework that is absent is reported so (its top-level package has no import spec): a
framework that is installed but fails to import (a user's own ``agents.py`` shadowing the
OpenAI Agents SDK, a broken install) raises its own error, which then names the real cause.
"""

from __future__ import annotations

import importlib.util

__all__ = ["require"]


def require(adapter: str, framework: str, extra: str, *packages: str) -> None:
    """Raise ``ImportError`` naming ``extra`` when a top-level package of ``packages`` is not installed."""
    missing = [p for p in packages if importlib.util.find_spec(p) is None]
    if missing:
        raise ImportError(
            f"convkit.integrations.{adapter} needs {framework}, and {', '.join(missing)} is not installed: "
            f"in a checkout of convkit, pip install -e '.[{extra}]' (once convkit-grok is on the package "
            f"index: pip install 'convkit-grok[{extra}]')",
            name=missing[0],
        )

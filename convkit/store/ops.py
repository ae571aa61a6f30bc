"""Deprecated: the result types moved to ``convkit`` (``convkit.UsageTotals`` and friends).

Earlier versions defined ``Conversation``, ``UsageTotals``, ``Calibration`` and
``StoredSummary`` here; import them from ``convkit``. The store's operations
now live in private modules named for their jobs (``convkit.store._appends``
and others). This module goes away in a later version.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__: list[str] = []  # nothing new is to be imported from here
_MOVED = ("Calibration", "Conversation", "StoredSummary", "UsageTotals")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"convkit.store.ops.{name} moved: import it from convkit (convkit.{name})",
            DeprecationWarning,
            stacklevel=2,
        )
        from .. import _results

        return getattr(_results, name)
    raise AttributeError(f"module 'convkit.store.ops' has no attribute {name!r}")

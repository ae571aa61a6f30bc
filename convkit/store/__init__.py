"""The conversation store: ``Store`` and its asyncio twin ``AsyncStore``.

See :mod:`convkit.store._schema` for the tables, :mod:`convkit.store._base` for
the flows both twins run, :mod:`convkit.store._ops_core` for the operations
they are made of (one module per job: ``_conversations``, ``_appends``,
``_totals``, ``_windows``, ``_forks``, ``_turns``), and
:mod:`convkit.store._migrate` for schema upgrades.
"""

from __future__ import annotations

from .._results import Conversation
from ._aio import AsyncStore
from ._sync import Store

__all__ = ["AsyncStore", "Conversation", "Store"]

"""The conversation store: ``Store`` and its asyncio twin ``AsyncStore``.

See :mod:`convkit.store.schema` for the tables, :mod:`convkit.store.ops` for
the operations both twins run, and :mod:`convkit.store.migrate` for schema
upgrades.
"""

from __future__ import annotations

from .aio import AsyncStore
from .ops import Conversation
from .sync import Store

__all__ = ["AsyncStore", "Conversation", "Store"]

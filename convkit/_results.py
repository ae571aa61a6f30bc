"""What the store hands back: a conversation's header, usage totals, calibrations, summaries.

Frozen attrs values, public (exported from :mod:`convkit`), built by the store's
operations from their rows and returned unchanged by both twins,
:class:`~convkit.Store` and :class:`~convkit.AsyncStore` (and read by the
sessions). Invariants: they hold plain Python values only (no row, no
connection), so they outlive the transaction that read them and compare by
value; timestamps are timezone-aware (UTC); seqs are the store's 1-based
message numbers. This module imports neither SQLAlchemy nor the network.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

__all__ = ["Calibration", "Conversation", "StoredSummary", "UsageTotals"]


@attrs.frozen
class Conversation:
    """A stored conversation's header (its messages are read separately)."""

    id: str
    namespace: str
    title: str | None
    metadata: dict[str, Any] = attrs.field(hash=False)
    message_count: int
    created_at: dt.datetime
    updated_at: dt.datetime
    forked_from: str | None = None
    forked_at_seq: int | None = None
    #: the application's own id of the conversation (a session or thread id), unique in its namespace
    key: str | None = None


@attrs.frozen
class UsageTotals:
    """Usage and cost summed over a conversation's recorded turns."""

    turns: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    image_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    #: US dollars the prompt cache saved: each turn's prompt uncached minus as billed (known models)
    cache_savings_usd: float = 0.0

    @property
    def cached_share(self) -> float:
        """The share of prompt tokens xAI served from its prompt cache (0 without prompts)."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@attrs.frozen
class Calibration:
    """How xAI's prompt counts compared with a counter's, for one model."""

    model: str
    counter_id: str
    ratio_max: float
    ratio_last: float
    samples: int


@attrs.frozen
class StoredSummary:
    """A summary row: the text and the exact seq range it covers."""

    first_seq: int
    last_seq: int
    text: str
    model: str
    counter_id: str
    tokens: int

"""``XAITokenCounter``: counts with xAI's own tokenizer (``POST /v1/tokenize-text``).

Exact for the API (margin 0) but one request per new text, so every text is
cached (in memory here, and in the database by the store, under this
counter's identity). Use it to calibrate cheaper counters, or where exact
counts matter more than latency.
"""

from __future__ import annotations

from .._counting import RULES_VERSION, BaseCounter
from .._models import ModelSpec, get_model
from ._client import XAIClient

__all__ = ["XAITokenCounter"]


class XAITokenCounter(BaseCounter):
    """Counts texts by asking the API to tokenize them for ``model``."""

    def __init__(self, client: XAIClient, model: str | ModelSpec = "grok-2-1212") -> None:
        super().__init__()
        self._client = client
        self._model = get_model(model).name

    def __repr__(self) -> str:
        return f"XAITokenCounter(model={self._model!r})"

    @property
    def identity(self) -> str:
        return f"xai-tokenize:{self._model}:r{RULES_VERSION}"

    def _encode(self, texts: list[str]) -> list[int]:
        return [len(self._client.tokenize(t, self._model)) if t else 0 for t in texts]

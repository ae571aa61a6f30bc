"""The stand-in's prompt cache: what xAI would serve from cache, per ``x-grok-conv-id``.

xAI caches prompts automatically and routes requests carrying the same
``x-grok-conv-id`` header to the server holding that conversation's cache; a
hit needs an exact prefix match. The stand-in models that: for each conv id it
keeps the recent prompts (model, tool definitions, messages as sent), and a
new request with that id reports as ``cached_tokens`` the longest prefix of
whole messages it shares with one of them, in tokens by the stand-in's own
counter, rounded down to whole blocks (``block`` tokens, default 128). A
request without the header caches nothing, and nothing is shared between ids.

Invariants: ``cached_tokens`` never exceeds the prompt's tokens; a changed
model or tool list shares nothing; thread-safe (requests arrive on server
threads); memory is bounded by ``keep`` prompts per id and ``ids`` ids.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DEFAULT_CACHE_BLOCK", "PromptCache"]

#: Tokens per cache block: a shared prefix counts in whole blocks.
DEFAULT_CACHE_BLOCK = 128


class PromptCache:
    """Recent prompts per conv id, and the cached tokens of a new one (see module docstring)."""

    def __init__(self, block: int = DEFAULT_CACHE_BLOCK, *, keep: int = 8, ids: int = 4096) -> None:
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise ValueError(f"cache_block is a positive number of tokens, got {block!r}")
        self.block = block
        self._keep = keep
        self._ids = ids
        self._lock = threading.Lock()
        self._prompts: OrderedDict[str, deque[tuple[Any, list[Any]]]] = OrderedDict()

    def serve(
        self,
        conv_id: str | None,
        key: Any,
        messages: Sequence[Mapping[str, Any]],
        prefix_tokens: Sequence[int],
        prompt_tokens: int,
    ) -> int:
        """Cached tokens of this prompt, and remember it.

        ``key``: what must be equal for any prefix to be shared (model and tools);
        ``prefix_tokens[k]``: the prompt's tokens up to the end of message ``k``.
        """
        if conv_id is None:
            return 0
        sent = list(messages)
        shared = 0
        with self._lock:
            earlier = self._prompts.get(conv_id)
            for old_key, old in earlier or ():
                if old_key != key:
                    continue
                k = 0
                limit = min(len(old), len(sent))
                while k < limit and old[k] == sent[k]:
                    k += 1
                shared = max(shared, k)
            if earlier is None:
                earlier = self._prompts[conv_id] = deque(maxlen=self._keep)
                while len(self._prompts) > self._ids:
                    self._prompts.popitem(last=False)
            self._prompts.move_to_end(conv_id)
            earlier.append((key, sent))
        tokens = prefix_tokens[shared - 1] if shared else 0
        return min(tokens // self.block * self.block, prompt_tokens)

    def clear(self) -> None:
        with self._lock:
            self._prompts.clear()

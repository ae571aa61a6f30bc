"""LlamaIndex memory whose ``get()`` is convkit's window for a Grok model (:class:`ConvkitMemory`).

Private to :mod:`convkit.integrations.llama_index`, which re-exports the class.
A ``BaseChatStoreMemory`` (what ``ChatMemoryBuffer`` is, and what
``FunctionAgent`` / ``ReActAgent`` take as ``memory=``) over a
:class:`._llama_index_store.ConvkitChatStore`: the whole conversation is
stored, and ``get()`` returns the window ``store.window`` chooses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.memory.types import DEFAULT_CHAT_STORE_KEY, BaseChatStoreMemory

from .._counting import ImagePolicy, TokenCounter
from .._engine.settings import default_reserve
from .._errors import ValidationError
from .._models import ModelSpec, get_model
from ._llama_index_store import ConvkitChatStore

if TYPE_CHECKING:
    from ..store import AsyncStore, Store


class ConvkitMemory(BaseChatStoreMemory):
    """A LlamaIndex memory stored in a convkit conversation; ``get()`` fits a Grok model.

    ``chat_store``: a :class:`ConvkitChatStore` (or a convkit ``Store`` /
    ``AsyncStore``, wrapped in one); ``chat_store_key``: the application key
    naming the conversation (created on the first write). ``model``: the
    Grok model (name or :class:`~convkit.ModelSpec`) whose context window
    ``get()`` fits, keeping ``reserve`` tokens free for the reply and
    whatever the agent adds (its system prompt, tools); ``counter``,
    ``tools`` and ``images`` as for :meth:`convkit.Store.window`.

    The memory is not serializable: a workflow ``Context`` holding one can be
    saved with ``ctx.to_dict()`` but not restored (a
    :class:`~convkit.ValidationError` says so); pass
    ``memory=ConvkitMemory(store, key, ...)`` to each run instead -- the key
    brings the history back.

    ``get()`` / ``aget()`` return the leading system and pinned messages, the
    newest messages that fit, and tool calls with their results together
    (``initial_token_count``, as in ``ChatMemoryBuffer``, is added to the
    reserve); a :class:`~convkit.ContextWindowError` says so when the must-keep
    messages cannot fit. As in ``ChatMemoryBuffer``, a cut never leaves an
    assistant or tool message opening the history after those: the replies it
    would leave first go too, but the newest turn stays even when it is a reply
    (see :mod:`convkit.integrations.llama_index`). ``get_all``, ``put``, ``put_messages`` (one
    transaction), ``set`` (one transaction, all or nothing), ``reset`` and
    their async twins act on the whole conversation.
    """

    _model: str | ModelSpec = PrivateAttr(default="grok-4")
    _counter: TokenCounter | None = PrivateAttr(default=None)
    _reserve: int | None = PrivateAttr(default=None)
    _tools: Sequence[Mapping[str, Any]] | None = PrivateAttr(default=None)
    _images: ImagePolicy = PrivateAttr(default="error")

    def __init__(
        self,
        chat_store: ConvkitChatStore | Store | AsyncStore,
        chat_store_key: str = DEFAULT_CHAT_STORE_KEY,
        *,
        model: str | ModelSpec | None = None,
        reserve: int | None = None,
        counter: TokenCounter | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        images: ImagePolicy = "error",
    ) -> None:
        if isinstance(chat_store, Mapping):  # a workflow Context restored from its dict form
            raise ValidationError(
                "a ConvkitMemory cannot be rebuilt from its serialized form (it needs the convkit store, "
                "which is not serialized); pass memory=ConvkitMemory(store, key, model=...) to the run "
                "instead: the key's conversation holds the whole history"
            )
        if model is None:
            raise ValidationError("ConvkitMemory needs model=: the Grok model whose window get() fits")
        if not isinstance(chat_store, ConvkitChatStore):
            chat_store = ConvkitChatStore(chat_store)  # ValidationError for anything but a convkit store
        if not isinstance(chat_store_key, str) or not chat_store_key:
            raise ValidationError(f"chat_store_key is a non-empty string, got {chat_store_key!r}")
        get_model(model)  # an unknown model name fails here, not on the first get()
        if reserve is not None and (isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0):
            raise ValidationError(f"reserve is a non-negative number of tokens, got {reserve!r}")
        super().__init__(chat_store=chat_store, chat_store_key=chat_store_key)
        self._model = model
        self._counter = counter
        self._reserve = reserve
        self._tools = tools
        self._images = images

    @classmethod
    def class_name(cls) -> str:
        return "ConvkitMemory"

    @classmethod
    def from_defaults(  # type: ignore[override]
        cls,
        chat_history: list[ChatMessage] | None = None,
        llm: Any = None,
        *,
        chat_store: ConvkitChatStore | Store | AsyncStore,
        chat_store_key: str = DEFAULT_CHAT_STORE_KEY,
        model: str | ModelSpec,
        **kwargs: Any,
    ) -> ConvkitMemory:
        """A memory as ``ChatMemoryBuffer.from_defaults`` makes one; ``chat_history`` replaces the
        key's messages (a sync :class:`~convkit.Store` is needed for that). ``llm`` is accepted and
        unused: the window is the Grok ``model``'s."""
        del llm
        memory = cls(chat_store, chat_store_key, model=model, **kwargs)
        if chat_history is not None:
            memory.set(chat_history)
        return memory

    @property
    def store(self) -> ConvkitChatStore:
        """The chat store (typed)."""
        assert isinstance(self.chat_store, ConvkitChatStore)
        return self.chat_store

    @property
    def model(self) -> str | ModelSpec:
        return self._model

    @property
    def reserve(self) -> int | None:
        return self._reserve

    def _window_args(self, initial_token_count: object) -> dict[str, Any]:
        if isinstance(initial_token_count, bool) or not isinstance(initial_token_count, int):
            raise ValidationError(f"initial_token_count is a number of tokens, got {initial_token_count!r}")
        if initial_token_count < 0:
            raise ValidationError(f"initial_token_count is a non-negative number, got {initial_token_count}")
        reserve = self._reserve
        if initial_token_count:
            base = default_reserve(get_model(self._model)) if reserve is None else reserve
            reserve = base + initial_token_count
        return {
            "model": self._model,
            "counter": self._counter,
            "reserve": reserve,
            "tools": self._tools,
            "images": self._images,
        }

    def _sync(self, what: str) -> ConvkitChatStore:
        """The chat store for a synchronous method (on an AsyncStore: refused, naming the async twins)."""
        from ..store import Store

        if not isinstance(self.store.store, Store):
            raise ValidationError(
                f"ConvkitMemory.{what} is synchronous but this memory is backed by an AsyncStore; use its "
                "async twin (aget, aget_all, aput, aput_messages, aset, areset) or back it with a Store"
            )
        return self.store

    def get(self, input: str | None = None, initial_token_count: int = 0, **kwargs: Any) -> list[ChatMessage]:
        """The window: the messages to send ``model`` now (``input`` is unused, as in ChatMemoryBuffer)."""
        del input, kwargs
        return self._sync("get").window(self.chat_store_key, **self._window_args(initial_token_count))

    def get_all(self) -> list[ChatMessage]:
        """Every message of the conversation."""
        return self._sync("get_all").get_messages(self.chat_store_key)

    def put(self, message: ChatMessage) -> None:
        """Append one message."""
        self._sync("put").add_message(self.chat_store_key, message)

    def set(self, messages: list[ChatMessage]) -> None:
        """Replace the conversation's messages (one transaction, all or nothing)."""
        self._sync("set").set_messages(self.chat_store_key, messages)

    def reset(self) -> None:
        """Empty the conversation (its key stays)."""
        self._sync("reset").delete_messages(self.chat_store_key)

    async def aget(
        self, input: str | None = None, initial_token_count: int = 0, **kwargs: Any
    ) -> list[ChatMessage]:
        del input, kwargs
        return await self.store.awindow(self.chat_store_key, **self._window_args(initial_token_count))

    def put_messages(self, messages: list[ChatMessage]) -> None:
        """Append messages in one transaction (all or none)."""
        self._sync("put_messages").add_messages(self.chat_store_key, messages)

    async def aput_messages(self, messages: list[ChatMessage]) -> None:
        await self.store.aadd_messages(self.chat_store_key, messages)

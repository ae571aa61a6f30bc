"""OpenAI Agents SDK adapter: :class:`ConvkitSession`, a ``Session`` kept in a convkit store.

Needs the ``agents`` extra (``pip install 'convkit-grok[agents]'``,
``openai-agents>=0.2``).

Each Responses-API item the SDK adds becomes one convkit message, so
``limit`` counts items and ``pop_item`` removes exactly the newest one:

* a message item (``{"role", "content"}``, with or without ``"type":
  "message"``; input or output text, refusals, images) -> a message of that
  role (``developer`` -> system);
* ``function_call`` (and the other ``*_call`` items with a ``call_id``) -> an
  assistant message with one tool call (``arguments`` verbatim);
* ``function_call_output`` (and the other ``*_call_output`` items) -> a tool
  message answering that ``call_id``;
* anything else (reasoning, hosted tool calls, item references...) -> an
  assistant message whose text is the item's JSON, so it is counted.

The item itself is kept in the message's ``metadata["convkit.agents.item"]``
(image data excepted: it lives once in the image parts), so ``get_items``
returns exactly what was added. An item convkit cannot hold faithfully (an
empty message, an image that is not a JPEG or PNG) is stored as its JSON
text with the same role; a ``function_call`` whose ``arguments`` are not
JSON (``""`` included) stays a tool call, counted as the JSON string of its
arguments, so its output stays paired with it. A call output whose call is
neither in the session nor earlier in the same ``add_items`` is refused with
:class:`~convkit.InvalidConversationError` and nothing is stored, as the
LangChain history refuses an orphaned tool message: xAI and OpenAI refuse a
request holding one.
Messages written to the conversation by other means come back as the items
their OpenAI form describes.

With ``window_model``, ``get_items`` returns only the items of the window
:meth:`convkit.Store.window` chooses for that model (leading system and
pinned messages, tool calls with their outputs, the newest items that fit);
``limit`` then applies to that window. The session is backed by an
:class:`~convkit.AsyncStore`; a :class:`~convkit.Store` works too (its calls
run in a worker thread).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from .._counting import TokenCounter
from .._errors import InvalidConversationError, InvalidMessageError, ValidationError
from .._fitting import FitResult
from .._messages import ImagePart, Message, Part, TextPart, ToolCall
from .._models import ModelSpec

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from agents.memory.session_settings import SessionSettings

    from ..store import AsyncStore, Store
else:  # the SDK is imported so that a missing extra fails here, with its name
    try:
        import agents  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
        raise ImportError(
            "convkit.integrations.agents needs the OpenAI Agents SDK: pip install 'convkit-grok[agents]' "
            "(in a checkout of convkit: pip install -e '.[agents]')"
        ) from exc

__all__ = ["ITEM_KEY", "ConvkitSession", "item_to_message", "message_to_items"]

#: Key of a message's ``metadata`` holding the Responses item it was made from.
ITEM_KEY = "convkit.agents.item"
#: Key of a message's ``metadata`` listing image URLs taken out of the stored item: [path, part].
_IMAGES_KEY = "convkit.agents.images"

_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
_TEXT_PARTS = {"input_text": "text", "output_text": "text", "refusal": "refusal", "summary_text": "text"}
_DETAILS = (None, "auto", "low", "high")


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _parts(content: object, path: list[Any], refs: list[list[Any]]) -> list[Part]:
    """convkit parts of a Responses content (str or list); records data-URL images in ``refs``."""
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    if not isinstance(content, list):
        return [TextPart(_dumps(content))]
    parts: list[Part] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        field = _TEXT_PARTS.get(str(kind))
        if field is not None and isinstance(part, Mapping) and isinstance(part.get(field), str):
            parts.append(TextPart(part[field]))
        elif kind == "input_image" and isinstance(part, Mapping) and isinstance(part.get("image_url"), str):
            url = part["image_url"]
            detail = part.get("detail") if part.get("detail") in _DETAILS else None
            image = ImagePart.from_url(url, detail=detail)
            if image.data is not None and image.openai_url() == url:
                refs.append([[*path, j, "image_url"], len(parts)])
            parts.append(image)
        else:
            parts.append(TextPart(_dumps(part)))
    return parts


def _is_json(text: str) -> bool:
    try:
        ToolCall("c", "f", text)
    except InvalidMessageError:
        return False
    return True


def _faithful(item: Mapping[str, Any], refs: list[list[Any]]) -> Message:
    kind = item.get("type")
    role = item.get("role")
    if isinstance(role, str) and kind in (None, "message"):
        if role not in _ROLES:
            raise InvalidMessageError(f"unknown role {role!r}")
        return Message(_ROLES[role], _parts(item.get("content"), ["content"], refs))  # type: ignore[arg-type]
    call_id = item.get("call_id")
    if isinstance(kind, str) and isinstance(call_id, str) and call_id:
        if kind.endswith("_call"):
            arguments = item.get("arguments")
            if kind != "function_call" or not isinstance(arguments, str):
                rest = {k: v for k, v in item.items() if k not in ("type", "call_id", "id", "status")}
                arguments = _dumps(rest)
            elif not _is_json(arguments):
                # "" (a call without parameters) or cut-off JSON: still a tool call, so that its
                # output stays linked to it (kept or dropped together); counted as its JSON string
                arguments = json.dumps(arguments)  # ASCII: a lone surrogate is escaped too
            name = item.get("name") if isinstance(item.get("name"), str) and item.get("name") else kind
            return Message.assistant(tool_calls=[ToolCall(call_id, cast(str, name), arguments)])
        if kind.endswith("_call_output"):
            return Message.tool(_parts(item.get("output"), ["output"], refs), tool_call_id=call_id)
    return Message.assistant(_dumps(item))


def item_to_message(item: Mapping[str, Any]) -> Message:
    """The convkit message for one Responses item (the item is kept in its metadata)."""
    if not isinstance(item, Mapping):
        raise InvalidMessageError(f"a Responses item is a dict, got {type(item).__name__}")
    stored = copy.deepcopy(dict(item))
    refs: list[list[Any]] = []
    try:
        msg = _faithful(item, refs)
    except InvalidMessageError:  # keep the item; count it as its JSON text, with the same role and link
        refs = []
        text = _dumps(item)
        kind, call_id = item.get("type"), item.get("call_id")
        if isinstance(kind, str) and kind.endswith("_call_output") and isinstance(call_id, str) and call_id:
            msg = Message.tool(text, tool_call_id=call_id)
        else:
            role = _ROLES.get(str(item.get("role")), "assistant")
            msg = Message(role, text)  # type: ignore[arg-type]
    for path, _ in refs:
        holder: Any = stored
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = None
    metadata: dict[str, Any] = {ITEM_KEY: stored}
    if refs:
        metadata[_IMAGES_KEY] = refs
    return Message(
        msg.role, msg.content, msg.tool_calls, tool_call_id=msg.tool_call_id, name=msg.name, metadata=metadata
    )


def message_to_items(m: Message) -> list[dict[str, Any]]:
    """The Responses items of a stored message: the item it was made from, else its OpenAI form."""
    item = m.metadata.get(ITEM_KEY)
    if isinstance(item, Mapping):
        out = copy.deepcopy(dict(item))
        for path, index in m.metadata.get(_IMAGES_KEY, ()):
            holder: Any = out
            for key in path[:-1]:
                holder = holder[key]
            part = m.content[index]
            holder[path[-1]] = part.openai_url() if isinstance(part, ImagePart) else None
        return [out]
    items: list[dict[str, Any]] = []
    if m.role == "tool":
        return [{"type": "function_call_output", "call_id": m.tool_call_id, "output": m.text}]
    if m.content:
        role = m.role
        text_type = "output_text" if role == "assistant" else "input_text"
        content: list[dict[str, Any]] = [
            {"type": text_type, "text": p.text}
            if isinstance(p, TextPart)
            else {"type": "input_image", "image_url": p.openai_url(), "detail": p.detail or "auto"}
            for p in m.content
        ]
        if all(isinstance(p, TextPart) for p in m.content):
            items.append({"role": role, "content": m.text})
        else:
            items.append({"role": role, "content": content})
    for c in m.tool_calls:
        items.append({"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments})
    return items


def _items(messages: Sequence[Message]) -> list[dict[str, Any]]:
    return [item for m in messages for item in message_to_items(m)]


class ConvkitSession:
    """An Agents SDK ``Session`` stored in a convkit conversation (see the module docstring).

    ``store``: an :class:`~convkit.AsyncStore` (or a :class:`~convkit.Store`,
    run in a worker thread); ``conversation_id``: an existing conversation
    (see :meth:`create`); ``session_id`` defaults to it. ``window_model``,
    ``counter`` and ``reserve``: when a model is given, ``get_items``
    returns the window ``store.window(model=window_model, counter=counter,
    reserve=reserve)`` keeps. ``session_settings``: the SDK's ``SessionSettings``
    or its dict form (``{"limit": 20}``), converted as the SDK's own sessions
    do; an unknown key or a bad value raises :class:`~convkit.ValidationError`.
    """

    def __init__(
        self,
        store: AsyncStore | Store,
        conversation_id: str,
        *,
        session_id: str | None = None,
        window_model: str | ModelSpec | None = None,
        counter: TokenCounter | None = None,
        reserve: int | None = None,
        session_settings: SessionSettings | Mapping[str, Any] | None = None,
    ) -> None:
        from ..store import AsyncStore, Store

        if not isinstance(store, AsyncStore | Store):
            raise ValidationError(f"store must be a convkit AsyncStore or Store, got {type(store).__name__}")
        if not isinstance(conversation_id, str) or not conversation_id:
            raise ValidationError(f"conversation_id must be a non-empty string, got {conversation_id!r}")
        self.store = store
        self.conversation_id = conversation_id
        self.session_id: str = conversation_id if session_id is None else session_id
        self.session_settings: SessionSettings | None = _session_settings(session_settings)
        self.window_model = window_model
        self.counter = counter
        self.reserve = reserve

    @classmethod
    async def create(
        cls, store: AsyncStore | Store, *, title: str | None = None, **kwargs: Any
    ) -> ConvkitSession:
        """A session on a new conversation of ``store`` (keyword arguments as for the constructor)."""
        conv = await _run(store, "create_conversation", title=title)
        return cls(store, conv.id, **kwargs)

    def __repr__(self) -> str:
        return f"ConvkitSession({self.store!r}, {self.conversation_id!r}, window_model={self.window_model!r})"

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The session's items, oldest first; the newest ``limit`` when given (of the window, if set)."""
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        cid = self.conversation_id
        if self.window_model is not None:
            items = await self._window_items()
        elif limit is None:
            items = _items(await _run(self.store, "messages", cid))
        else:
            if limit <= 0:
                return []
            total = (await _run(self.store, "get_conversation", cid)).message_count
            items = _items(await _run(self.store, "messages", cid, start=max(1, total - limit + 1)))
        if limit is not None:
            items = items[-limit:] if limit > 0 else []
        return cast("list[TResponseInputItem]", items)

    async def _window_items(self) -> list[dict[str, Any]]:
        cid = self.conversation_id
        if (await _run(self.store, "get_conversation", cid)).message_count == 0:
            return []
        try:
            result: FitResult = await _run(
                self.store, "window", cid, model=self.window_model, counter=self.counter, reserve=self.reserve
            )
        except InvalidConversationError:  # system messages only: nothing to trim around
            return _items(await _run(self.store, "messages", cid))
        return _items(result.messages)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append the items in one transaction (all or none).

        Raises :class:`~convkit.InvalidConversationError` (nothing stored) for a call output
        (``function_call_output`` and the other ``*_call_output`` items) whose call is neither in
        the session nor earlier in ``items``: xAI and OpenAI refuse such a request.
        """
        messages = [item_to_message(cast(Mapping[str, Any], item)) for item in items]
        if not messages:
            return
        # a call output whose call is neither in the session nor earlier in ``items`` is refused
        # by the store (InvalidConversationError, nothing stored), as the LangChain history does
        await _run(self.store, "extend", self.conversation_id, messages)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item (None when the session is empty)."""
        m: Message | None = await _run(self.store, "pop", self.conversation_id)
        if m is None:
            return None
        return cast("TResponseInputItem", message_to_items(m)[-1])

    async def clear_session(self) -> None:
        """Remove every item (the conversation stays, empty)."""
        await _run(self.store, "truncate", self.conversation_id, 0)


def _session_settings(value: object) -> SessionSettings | None:
    """The SDK's ``SessionSettings`` for ``value`` (None, an instance, or its dict form)."""
    if value is None:
        return None
    from agents.memory.session_settings import SessionSettings

    if isinstance(value, SessionSettings):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"session_settings must be an agents SessionSettings or a dict, got {type(value).__name__}"
        )
    known = {f.name for f in dataclasses.fields(SessionSettings) if f.init}
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise ValidationError(
            f"unknown session_settings: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    try:
        return SessionSettings(**value)
    except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise ValidationError(f"invalid session_settings {dict(value)!r}: {exc}") from exc


async def _run(store: AsyncStore | Store, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call a store method: awaited on an AsyncStore, in a worker thread on a Store."""
    from ..store import Store

    fn = getattr(store, method)
    if isinstance(store, Store):
        return await asyncio.to_thread(fn, *args, **kwargs)
    return await fn(*args, **kwargs)

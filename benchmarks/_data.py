"""Deterministic, realistic conversations for the benchmarks.

``make_conversation(n, seed=...)`` returns exactly ``n`` :class:`convkit.Message`
objects; the same ``(n, seed, options)`` always gives the same conversation.
``iter_conversation`` yields them one at a time (for a 1M-message store
benchmark that should not hold dict copies in memory).

Shape of a conversation:

* one leading system prompt (a few hundred tokens of instructions);
* user/assistant turns: users mostly ask short things (5-40 words), sometimes
  paste a long document or a stack trace; assistants answer with 20-300
  words, and about a fifth of the answers carry a fenced code block;
* tool-call groups: an assistant message with 1-3 tool calls (JSON
  arguments), then one tool message per call (JSON results of varied size),
  then usually the assistant's answer;
* a few images (``image_every``): small real PNGs made once with Pillow and
  reused as the same :class:`convkit.ImagePart` objects;
* optionally ``pinned`` user messages (convkit never trims them), and rare
  mid-conversation system messages (ordinary, droppable);
* the last message is a user message, and no tool group is left unanswered.

Text is drawn word by word from a fixed vocabulary, so messages are almost
always distinct (a counter's cache does not get free hits), yet generation is
cheap: 100k messages take about a second or two; 1M about ten times that.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from functools import lru_cache
from operator import itemgetter
from typing import Any

from convkit import ImagePart, Message, ToolCall

__all__ = ["conversation_stats", "iter_conversation", "make_conversation", "png_images", "without_images"]

_WORD_TEXT = (
    "the of and to in is that for it as with was on be by this are or at from but not have an "
    "they which one you were all we her she there would their will when who him been has more if no "
    "out so said what up its about into than them can only other new some could time these two may "
    "then do first any my now such like our over man me even most made after also did many before "
    "must through back years where much your way well down should because each just those people how "
    "too little state good very make world still own see men work long get here between both life "
    "being under never day same another know while last might us great old year off come since "
    "against go came right used take three database query index table row column migration schema "
    "transaction commit rollback session token prompt model context window budget message history "
    "summary tool function argument result error retry timeout request response latency cache "
    "counter tokenizer batch stream chunk server client deploy config option value default "
    "python rust async await thread process memory buffer file path string integer list dict "
    "customer order invoice payment shipping address account password login email report chart "
    "weather forecast temperature city flight hotel booking ticket meeting calendar schedule "
    "approximately however therefore meanwhile specifically unfortunately recommended alternatively "
    "performance benchmark throughput regression dependency interface implementation documentation "
    "garden river mountain coffee morning evening kitchen sunset laptop keyboard monitor network "
    "backup restore permission"
)
_WORDS = _WORD_TEXT.split()
assert len(_WORDS) == len(set(_WORDS)) == 256, len(_WORDS)  # one random byte picks one word
_CAPS = [w.capitalize() for w in _WORDS]

_PUNCT = (".", ".", ".", ",", ",", "?", "!", ":", ";")

_CODE = (
    "def {f}({a}, {b}=None):\n    if {b} is None:\n        {b} = []\n    for item in {a}:\n"
    "        {b}.append(item * 2)\n    return {b}\n",
    "SELECT {a}.id, {a}.name, count(*) AS n\nFROM {a}\nJOIN {b} ON {b}.{a}_id = {a}.id\n"
    "WHERE {a}.created_at > now() - interval '7 days'\nGROUP BY 1, 2\nORDER BY n DESC\nLIMIT 20;\n",
    "async function {f}({a}) {{\n  const res = await fetch(`/api/${{{a}}}`);\n"
    "  if (!res.ok) throw new Error(res.statusText);\n  return (await res.json()).{b};\n}}\n",
    "class {F}:\n    def __init__(self, {a}: int) -> None:\n        self.{a} = {a}\n\n"
    "    def {f}(self, {b}: str) -> str:\n        return f'{{self.{a}}}:{{{b}}}'\n",
    "fn {f}({a}: &[u8]) -> Result<Vec<u8>, Error> {{\n    let mut {b} = Vec::with_capacity({a}.len());\n"
    "    for byte in {a} {{\n        {b}.push(byte ^ 0x5a);\n    }}\n    Ok({b})\n}}\n",
    'Traceback (most recent call last):\n  File "app/{f}.py", line 42, in {f}\n    return {a}[{b}]\n'
    "KeyError: '{b}'\n",
)

_TOOLS = (
    ("get_weather", ("city", "unit")),
    ("search_web", ("query", "max_results")),
    ("run_sql", ("query",)),
    ("read_file", ("path", "start_line", "end_line")),
    ("create_ticket", ("title", "priority", "assignee")),
    ("lookup_order", ("order_id",)),
    ("send_email", ("to", "subject", "body")),
)

_SYSTEM = (
    "You are a careful, friendly assistant for a software company. Answer concisely, cite the "
    "documentation when you can, and ask a clarifying question when a request is ambiguous. "
    "When you call a tool, explain briefly why. Never reveal secrets, passwords or API keys. "
    "Format code in fenced blocks with a language tag. Prefer metric units. "
) * 4


@lru_cache(maxsize=1)
def png_images() -> tuple[ImagePart, ...]:
    """Three small real PNGs (made with Pillow once), as reusable ImageParts.

    64x64 (1 tile: 512 tokens), 500x300 (2 tiles: 768 tokens) and 900x900
    (9 tiles, capped at 6: 1792 tokens).
    """
    from PIL import Image

    out = []
    for w, h, color in ((64, 64, (200, 30, 30)), (500, 300, (30, 160, 60)), (900, 900, (20, 40, 200))):
        img = Image.new("RGB", (w, h), color)
        # a gradient stripe so the bytes are a plausible picture, not a flat fill
        for x in range(0, w, 4):
            img.putpixel((x, h // 2), (x % 256, 255 - x % 256, 128))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append(ImagePart.from_bytes(buf.getvalue()))
    return tuple(out)


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.calls = 0

    def words(self, k: int) -> str:
        """About ``k`` random words in sentences of 6-18 words (fast: one random byte a word)."""
        k = max(2, k)
        idx = self.rng.randbytes(k + 1)
        out = list(itemgetter(*idx[:k])(_WORDS))
        caps, punct = _CAPS, _PUNCT
        i = 0
        while i < k:
            b = idx[i]
            out[i] = caps[b]
            i += 6 + b % 13  # sentence length, derived from the sentence's first byte
            end = min(i, k) - 1
            out[end] += punct[idx[end + 1] % len(punct)]
        return " ".join(out)

    def code(self) -> str:
        rng = self.rng
        tpl = rng.choice(_CODE)
        a, b, f = rng.sample(_WORDS[100:], 3)
        lang = ("python", "sql", "javascript", "python", "rust", "text")[_CODE.index(tpl)]
        body = tpl.format(a=a, b=b, f=f, F=f.capitalize())
        return f"```{lang}\n{body}```"

    def user_text(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.70:
            return self.words(rng.randint(5, 40))
        if r < 0.90:
            return self.words(rng.randint(40, 150))
        if r < 0.96:
            return self.words(12) + "\n\n" + self.code()
        return self.words(15) + "\n\n" + self.words(rng.randint(400, 1500))  # pasted document

    def assistant_text(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            return self.words(rng.randint(10, 60))
        if r < 0.75:
            return self.words(rng.randint(60, 250))
        if r < 0.95:
            return self.words(rng.randint(20, 80)) + "\n\n" + self.code() + "\n\n" + self.words(30)
        return self.words(rng.randint(300, 700))

    def tool_group(self) -> list[Message]:
        rng = self.rng
        calls = []
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            name, params = rng.choice(_TOOLS)
            args = {
                p: (rng.randint(1, 10_000) if p.endswith(("_id", "results", "line")) else self.words(3))
                for p in params
            }
            self.calls += 1
            calls.append(
                ToolCall(
                    id=f"call_{self.calls:08d}", name=name, arguments=json.dumps(args, separators=(",", ":"))
                )
            )
        pre = self.words(rng.randint(5, 20)) if rng.random() < 0.5 else None
        msgs = [Message.assistant(pre, tool_calls=calls)]
        for c in calls:
            k = rng.choice((1, 2, 5, 5, 15, 50))
            rows = [{"id": rng.randint(1, 99_999), "text": self.words(rng.randint(3, 12))} for _ in range(k)]
            payload = json.dumps({"ok": True, "tool": c.name, "rows": rows})
            msgs.append(Message.tool(payload, tool_call_id=c.id))
        return msgs


def iter_conversation(
    n: int,
    *,
    seed: int = 0,
    images: bool = True,
    image_every: int = 400,
    pinned: int = 2,
    tool_rate: float = 0.15,
    late_system_every: int = 5000,
) -> Iterator[Message]:
    """Yield exactly ``n`` messages (see module docstring); ``n >= 2``.

    ``images``: include images (one user message in ``image_every`` on average);
    turn off for text-only models. ``pinned``: how many user messages are
    marked pinned (spread over the conversation). ``tool_rate``: share of
    assistant turns that call tools. ``late_system_every``: on average one
    ordinary mid-conversation system message per that many messages.
    """
    if n < 2:
        raise ValueError("a benchmark conversation has at least 2 messages")
    g = _Gen(seed)
    rng = g.rng
    # pinned: the first user turn at or after each of ``pinned`` random positions
    pins = sorted(random.Random(seed + 1).sample(range(1, n - 1), min(pinned, n - 2))) if pinned else []
    yield Message.system(_SYSTEM)
    emitted = 1
    while emitted < n - 1:  # the final user message comes after the loop
        if late_system_every and rng.random() < 1.0 / late_system_every:
            yield Message.system("Note from the operator: " + g.words(rng.randint(8, 30)))
            emitted += 1
            continue
        text = g.user_text()
        # about half the messages are user turns, hence 2 / image_every
        # (the draws happen with images off too, so both variants share all text)
        with_image = rng.random() < 2.0 / image_every
        img = png_images()[rng.randrange(3)] if with_image else None
        content: list[object] = [text, img] if images and img is not None else [text]
        pin = bool(pins) and emitted >= pins[0]
        if pin:
            pins.pop(0)
        yield Message("user", content, pinned=pin)
        emitted += 1
        left = n - 1 - emitted
        if left <= 0:
            break
        if left >= 5 and rng.random() < tool_rate:
            group = g.tool_group()
            if len(group) < left:  # leave room for the answer after the results
                yield from group
                emitted += len(group)
        yield Message.assistant(g.assistant_text())
        emitted += 1
    yield Message.user(g.user_text())


def user_turns(turns: int, *, seed: int) -> list[Message]:
    """The first ``turns`` user messages of a generated conversation (a few hold images):
    what a benchmark sends through ``Session.send``, one a turn."""
    out: list[Message] = []
    for m in iter_conversation(turns * 6, seed=seed):
        if m.role == "user":
            out.append(m)
            if len(out) == turns:
                return out
    raise RuntimeError("the generated conversation has too few user messages")


def make_conversation(n: int, **kw: Any) -> list[Message]:
    """``list(iter_conversation(n, **kw))``."""
    out = list(iter_conversation(n, **kw))
    assert len(out) == n, (len(out), n)
    return out


def without_images(msgs: list[Message]) -> list[Message]:
    """The same conversation for a text-only model: image parts removed, every other
    message the very same object (so a counter's cache hits by identity)."""
    return [
        Message(m.role, [p for p in m.content if not isinstance(p, ImagePart)], pinned=m.pinned)
        if any(isinstance(p, ImagePart) for p in m.content)
        else m
        for m in msgs
    ]


def conversation_stats(msgs: list[Message]) -> dict[str, int]:
    """Counts of roles, tool calls, images and pinned messages (for the JSON results)."""
    stats = {"messages": len(msgs), "system": 0, "user": 0, "assistant": 0, "tool": 0}
    calls = imgs = pinned = 0
    for m in msgs:
        stats[m.role] += 1
        calls += len(m.tool_calls)
        imgs += sum(1 for p in m.content if isinstance(p, ImagePart))
        pinned += m.pinned
    stats.update(tool_calls=calls, images=imgs, pinned=pinned)
    return stats

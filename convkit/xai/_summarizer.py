"""Summarizers that ask a Grok model: ``XAISummarizer`` and ``AsyncXAISummarizer``.

The prompt asks for a summary that keeps facts, decisions, names, numbers,
dates, commitments, the user's preferences and open questions, merged into
the previous summary. The summarizer's own input must fit its model's
window: a long range is cut into chunks that fit, each chunk is summarized,
and the partial summaries are summarized again until one remains
(hierarchical summarization). Each instance counts its calls and tokens.

The whole procedure is written once, as the sans-I/O flow
:meth:`_Planner._flow`: it yields a :class:`Call` (the messages to send) per
model call and receives that call's ``Completion``. The twins only drive it,
``XAISummarizer`` with ``client.chat`` and ``AsyncXAISummarizer`` with
``await client.chat``, so they cannot drift apart.

Invariants: every call's whole request (instructions, previous summary,
transcript) fits the summarizer model's window less the reply's
``max_tokens``, by the counter's own count and margin; each round of partial
summaries has fewer lines than the one before, or :class:`SummarizerError` is
raised (as it is for an empty reply or a window too small to summarize in);
a failed call raises and nothing partial is returned.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from typing import Any, Generic, TypeAlias, TypeVar

import attrs

from .._counting import EstimateCounter, TokenCounter
from .._errors import SummarizerError
from .._messages import Message
from .._models import ModelSpec, get_model
from ._client import AsyncXAIClient, XAIClient
from ._protocol import Completion
from ._steps import Steps

__all__ = ["AsyncXAISummarizer", "XAISummarizer", "render_transcript"]

C = TypeVar("C", XAIClient, AsyncXAIClient)

#: The fewest transcript tokens a call must be able to take.
MIN_INPUT = 256

SYSTEM_PROMPT = (
    "You maintain the running summary of a conversation between a user and an assistant. "
    "Merge the previous summary (if any) and the new messages into one updated summary. Keep every "
    "fact, decision, name, number, date, identifier, commitment, user preference and open question; "
    "drop pleasantries and repetition. Write plain sentences or short bullet points in the language "
    "of the conversation, at most {words} words. Reply with the summary only."
)


def render_transcript(messages: Sequence[Message]) -> list[str]:
    """One line per message: role, text, tool calls and results, image markers."""
    lines = []
    for m in messages:
        parts = [m.text] if m.text else []
        if m.images:
            parts.insert(0, f"[{len(m.images)} image(s)]")
        for c in m.tool_calls:
            parts.append(f"[calls {c.name}({c.arguments})]")
        who = f"tool result for {m.tool_call_id}" if m.role == "tool" else m.role
        lines.append(f"{who}: {' '.join(parts)}")
    return lines


@attrs.frozen
class Call:
    """Ask the summarizer model for a reply to ``messages`` (deterministically, at most ``max_tokens``)."""

    messages: list[Message]
    model: ModelSpec
    max_tokens: int

    @property
    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``chat`` besides the messages."""
        return {"model": self.model, "max_tokens": self.max_tokens, "temperature": 0}


#: A summarization flow: yields :class:`Call` actions, receives each one's ``Completion``.
Summarizing: TypeAlias = Generator[Call, Completion, str]


class _Planner:
    """What the twins share, without I/O: how much transcript fits one call, and the flow of calls."""

    def __init__(self, model: str | ModelSpec, counter: TokenCounter | None, reply_tokens: int) -> None:
        self.spec = get_model(model)
        self.counter = counter or EstimateCounter()
        self.reply_tokens = reply_tokens
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0

    def input_budget(self, max_tokens: int, previous: str | None = None) -> int:
        """Tokens of transcript lines one call can take next to the instructions and ``previous``.

        The whole request must fit the model's window less the reply's ``max_tokens``, with the
        counter's safety margin: the instructions and the previous summary are counted, not guessed.
        """
        limit = math.floor((self.spec.context_window - max_tokens) / (1 + self.counter.margin))
        frame = self.counter.count_messages(self.request(previous, [], max_tokens), model=self.spec)
        return limit - frame - 64  # slack: lines are counted one by one, then joined

    def chunks(self, lines: list[str], budget: int, first: int | None = None) -> list[list[str]]:
        """Consecutive lines in chunks of at most ``budget`` tokens (``first`` for the first chunk).

        Each line is counted as it is sent, after the newline that joins it to the one before: a
        count of the line alone is no bound (the character-class estimate prices a word after a
        newline higher than after the tokenizer's leading space), and the newline is in the count.
        """
        counts = self.counter.count_texts(["\n" + line for line in lines])
        out: list[list[str]] = [[]]
        used = 0
        cap = budget if first is None else first
        for raw, count in zip(lines, counts, strict=True):
            line, n = raw, count
            if out[-1] and used + n > cap:
                out.append([])
                used = 0
                cap = budget
            if n > cap:  # one enormous message: cut its text
                line, n = self.cut(raw, cap)
            out[-1].append(line)
            used += n
        return out

    def cut(self, text: str, cap: int) -> tuple[str, int]:
        """The longest prefix of ``text`` the counter puts at or under ``cap`` tokens, and its count.

        Counts are not proportional to length (a digit costs more than a letter of a word), so
        the cut is searched, never guessed from the average.
        """
        lo, hi = 1, len(text)  # text[:lo] is the longest prefix known to fit (one character at least)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.counter.count_texts(["\n" + text[:mid]])[0] <= cap:
                lo = mid
            else:
                hi = mid - 1
        return text[:lo], self.counter.count_texts(["\n" + text[:lo]])[0]

    def plan(self, lines: list[str], previous: str | None, max_tokens: int) -> tuple[list[str], str | None]:
        """The lines and the previous summary to send, checking the window can take a call at all.

        A previous summary too long to leave room for new lines in the first call becomes a line
        of its own, summarized like the messages.
        """
        budget = self.input_budget(max_tokens)
        if budget < MIN_INPUT:
            raise SummarizerError(
                f"{self.spec.name}'s window is too small to summarize into {max_tokens} tokens"
            )
        if previous and self.input_budget(max_tokens, previous) < MIN_INPUT:
            return [f"(previous summary) {previous}", *lines], None
        return lines, previous

    def request(self, previous: str | None, lines: list[str], max_tokens: int) -> list[Message]:
        words = max(20, int(max_tokens * 0.6))
        body = ""
        if previous:
            body += f"Previous summary:\n{previous}\n\n"
        body += "New messages:\n" + "\n".join(lines)
        return [Message.system(SYSTEM_PROMPT.format(words=words)), Message.user(body)]

    def _flow(self, messages: Sequence[Message], previous: str | None, max_tokens: int) -> Summarizing:
        """Hierarchical summarization of ``messages`` into ``previous``, one :class:`Call` a model call.

        The transcript is cut into chunks that fit one call; while there is more than one, each is
        summarized and the partial summaries become the lines to summarize next.
        """
        lines, carry = self.plan(render_transcript(messages), previous, max_tokens)
        budget = self.input_budget(max_tokens)
        while True:
            first = self.input_budget(max_tokens, carry) if carry else budget
            parts = self.chunks(lines, budget, first)
            if len(parts) == 1:
                return (yield from self._ask(carry, parts[0], max_tokens))
            if len(parts) >= len(lines):
                raise SummarizerError(
                    "the partial summaries do not get shorter than the parts; use a summarizer model with a "
                    "larger window or ask for shorter summaries (summary_tokens=)"
                )
            partials = []
            for i, part in enumerate(parts):
                partials.append((yield from self._ask(carry if i == 0 else None, part, max_tokens)))
            lines, carry = partials, None

    def _ask(self, previous: str | None, lines: list[str], max_tokens: int) -> Summarizing:
        """One model call: the summary of ``lines`` merged into ``previous``."""
        completion = yield Call(self.request(previous, lines, max_tokens), self.spec, max_tokens)
        return self.take(completion)

    def take(self, completion: Completion) -> str:
        self.calls += 1
        self.prompt_tokens += completion.usage.prompt_tokens
        self.completion_tokens += completion.usage.completion_tokens
        self.cost_usd += completion.cost_usd
        text = completion.text.strip()
        if not text:
            raise SummarizerError("the summarizer model returned an empty summary")
        return text


class _ClientSummarizer(_Planner, Generic[C]):
    """The twins' constructor: a summarizer over ``client`` (an :class:`XAIClient` or its async twin)."""

    def __init__(
        self,
        client: C,
        *,
        model: str | ModelSpec = "grok-2-1212",
        counter: TokenCounter | None = None,
        reply_tokens: int = 1024,
    ) -> None:
        super().__init__(model, counter, reply_tokens)
        self.client: C = client


class XAISummarizer(_ClientSummarizer[XAIClient]):
    """Summarizes with a Grok model through an :class:`XAIClient` (default grok-2-1212)."""

    def summarize(self, messages: Sequence[Message], *, previous: str | None, max_tokens: int) -> str:
        """One summary of ``messages`` merged into ``previous``, in at most ``max_tokens`` tokens."""
        steps = Steps(self._flow(messages, previous, max_tokens))
        for call in steps:
            steps.answer(self.client.chat(call.messages, **call.options))
        return steps.result


class AsyncXAISummarizer(_ClientSummarizer[AsyncXAIClient]):
    """The asyncio twin of :class:`XAISummarizer`."""

    async def summarize(self, messages: Sequence[Message], *, previous: str | None, max_tokens: int) -> str:
        """One summary of ``messages`` merged into ``previous``, in at most ``max_tokens`` tokens."""
        steps = Steps(self._flow(messages, previous, max_tokens))
        for call in steps:
            steps.answer(await self.client.chat(call.messages, **call.options))
        return steps.result

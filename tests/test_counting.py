"""Counting: the per-message rules, the image tile formula, caching and batching, identities, margins."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import convkit
from convkit import (
    EstimateCounter,
    HFTokenCounter,
    History,
    ImagePart,
    Message,
    TokenCounter,
    TokenizerError,
    ToolCall,
    ValidationError,
    fit,
    image_tokens,
)
from convkit._counting import RULES_VERSION, TOOL_CALL_OVERHEAD, TOOL_DEF_OVERHEAD, BaseCounter
from convkit.testing.strategies import conversations, messages, texts

from .conftest import CUSTOM_MODEL, build_tiny_tokenizer


class RecordingTokenizer:
    """Wraps a tokenizers.Tokenizer and records every batch it is asked to encode."""

    def __init__(self, inner: Any, *, fail: bool = False) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []
        self.fail = fail

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> Any:
        self.batches.append(list(texts))
        if self.fail:
            raise RuntimeError("boom")
        return self.inner.encode_batch(texts, add_special_tokens=add_special_tokens)

    def to_str(self) -> str:
        return str(self.inner.to_str())

    @property
    def encoded(self) -> list[str]:
        return [t for batch in self.batches for t in batch]


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), 7).save(buf, format="PNG")
    return buf.getvalue()


def content_by_the_rules(counter: TokenCounter, m: Message) -> int:
    """Content tokens of one message, spelled out from the counting rules."""
    n = 0
    for part in m.content:
        n += part.tokens if isinstance(part, ImagePart) else counter.count_texts([part.text])[0]
    for c in m.tool_calls:
        n += sum(counter.count_texts([c.id, c.name, c.arguments])) + TOOL_CALL_OVERHEAD
    if m.tool_call_id is not None:
        n += counter.count_texts([m.tool_call_id])[0]
    if m.name is not None:
        n += counter.count_texts([m.name])[0] + 1
    return n


# -- the rules ---------------------------------------------------------------------------------


@given(m=messages(), kind=st.sampled_from(["tiny", "estimate", "bound"]))
def test_content_tokens_follow_the_rules(m: Message, kind: str, tiny_counter: HFTokenCounter) -> None:
    counter = {"tiny": tiny_counter, "estimate": EstimateCounter(), "bound": EstimateCounter.upper_bound()}[
        kind
    ]
    assert counter.content_tokens([m]) == [content_by_the_rules(counter, m)]


@given(conv=conversations(max_size=12), model=st.sampled_from(["grok-2-vision-1212", "convkit-test-small"]))
def test_count_messages_is_content_plus_overheads(
    conv: list[Message], model: str, tiny_counter: HFTokenCounter, custom_model: convkit.ModelSpec
) -> None:
    spec = convkit.get_model(model)
    content = sum(content_by_the_rules(tiny_counter, m) for m in conv)
    expected = content + spec.message_overhead * len(conv) + spec.request_overhead
    assert tiny_counter.count_messages(conv, model=model) == expected
    # dicts count the same as Messages
    assert tiny_counter.count_messages([m.to_dict() for m in conv], model=model) == expected
    # one message at a time adds up to the same, less the per-request overhead
    assert sum(tiny_counter.message_tokens(m, model=model) for m in conv) == expected - spec.request_overhead


def test_count_of_a_small_conversation_by_hand(tiny_counter: HFTokenCounter) -> None:
    count = tiny_counter.count_text
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    conv = [
        Message.system("You are terse."),
        Message.user("Weather in Paris?", name="alice"),
        Message.assistant(tool_calls=[call]),
        Message.tool("sunny, 21C", tool_call_id="call_1"),
    ]
    expected = (
        count("You are terse.")
        + count("Weather in Paris?")
        + count("alice")
        + 1
        + count("call_1")
        + count("get_weather")
        + count('{"city": "Paris"}')
        + TOOL_CALL_OVERHEAD
        + count("sunny, 21C")
        + count("call_1")
        + 4 * 5  # per-message template overhead of grok-2-1212
        + 2  # reply primer
    )
    assert tiny_counter.count_messages(conv, model="grok-2") == expected


def test_tool_definitions_count(tiny_counter: HFTokenCounter) -> None:
    tools = [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "b": 1, "a": "ü"}}},
        {"type": "function", "function": {"name": "g"}},
    ]
    compact = [json.dumps(t, separators=(",", ":"), ensure_ascii=False, sort_keys=True) for t in tools]
    expected = sum(tiny_counter.count_texts(compact)) + TOOL_DEF_OVERHEAD * 2
    assert tiny_counter.tools_tokens(tools) == expected
    assert tiny_counter.tools_tokens(None) == tiny_counter.tools_tokens([]) == 0
    conv = [Message.user("hi")]
    plain = tiny_counter.count_messages(conv, model="grok-2")
    assert tiny_counter.count_messages(conv, model="grok-2", tools=tools) == plain + expected
    result = fit(conv, model="grok-2", counter=tiny_counter, tools=tools)
    assert (result.prompt_tokens, result.tools_tokens) == (plain + expected, expected)
    with pytest.raises(ValidationError, match="JSON-serializable"):
        tiny_counter.tools_tokens([{"f": object()}])


# -- images: the tile formula ------------------------------------------------------------------


@given(st.integers(1, 20_000), st.integers(1, 20_000))
def test_image_tile_formula(width: int, height: int) -> None:
    tiles = math.ceil(width / 448) * math.ceil(height / 448)
    expected = (min(tiles, 6) + 1) * 256
    assert image_tokens(width, height) == expected
    assert 512 <= expected <= 1792
    assert image_tokens(width + 1, height) >= expected  # larger never costs less
    assert ImagePart.from_url("https://x/i.png", width=width, height=height).tokens == expected


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        (1, 1, 512),
        (448, 448, 512),
        (449, 448, 768),
        (896, 896, 1280),
        (1344, 896, 1792),  # 6 tiles: the most that count
        (1792, 1792, 1792),  # 16 tiles, capped
        (448 * 7, 1, 1792),
        (None, None, 1792),  # unknown size: the maximum
    ],
)
def test_image_tile_examples(width: int | None, height: int | None, tokens: int) -> None:
    assert image_tokens(width, height) == tokens


@pytest.mark.parametrize(("width", "height", "tokens"), [(1, 1, 512), (449, 448, 768), (1344, 900, 1792)])
def test_image_bytes_are_counted_by_their_real_size(
    width: int, height: int, tokens: int, tiny_counter: HFTokenCounter
) -> None:
    part = ImagePart.from_bytes(png(width, height))
    assert (part.width, part.height, part.tokens) == (width, height, tokens)
    with_image = Message.user(["look", part])
    without = Message.user(["look"])
    model = "grok-2-vision-1212"
    diff = tiny_counter.count_messages([with_image], model=model) - tiny_counter.count_messages(
        [without], model=model
    )
    assert diff == tokens


def test_url_images_count_the_maximum_unless_sized(tiny_counter: HFTokenCounter) -> None:
    model = "grok-2-vision-1212"
    base = tiny_counter.count_messages([Message.user(["see"])], model=model)
    unsized = Message.user(["see", ImagePart.from_url("https://example.com/cat.jpg")])
    sized = Message.user(["see", ImagePart.from_url("https://example.com/cat.jpg", width=448, height=448)])
    assert tiny_counter.count_messages([unsized], model=model) == base + 1792
    assert tiny_counter.count_messages([sized], model=model) == base + 512


# -- caching and batching ----------------------------------------------------------------------


def test_texts_are_encoded_once_and_in_one_batch(tiny_tokenizer: Any) -> None:
    tok = RecordingTokenizer(tiny_tokenizer)
    counter = HFTokenCounter(tok)
    call = ToolCall("c1", "lookup", '{"q": 1}')
    conv = [Message.user(f"question {i % 7}") for i in range(40)]
    conv += [Message.assistant(tool_calls=[call]), Message.tool("answer", tool_call_id="c1")]
    first = counter.count_messages(conv, model="grok-2")
    assert len(tok.batches) == 1, "new texts go through the tokenizer in one batch"
    assert sorted(tok.encoded) == sorted(set(tok.encoded)), "each distinct text is encoded once"
    assert set(tok.encoded) == {*(f"question {i}" for i in range(7)), "c1", "lookup", '{"q": 1}', "answer"}

    # counting again, for another model, or through content_tokens touches nothing
    assert counter.count_messages(conv, model="grok-2") == first
    counter.count_messages(conv, model="grok-2-vision-1212")
    counter.content_tokens(conv)
    assert len(tok.batches) == 1

    # new messages: only their new texts, one batch; known texts come from the cache
    more = [Message.user("question 3"), Message.user("brand new"), Message.assistant("also new")]
    counter.count_messages(conv + more, model="grok-2")
    assert tok.batches[1:] == [["brand new", "also new"]]


def test_history_counts_new_messages_in_one_batch_and_fit_reuses_them(tiny_tokenizer: Any) -> None:
    tok = RecordingTokenizer(tiny_tokenizer)
    counter = HFTokenCounter(tok)
    history = History(counter=counter)
    history.extend([Message.user(f"m{i}") for i in range(100)])
    assert len(tok.batches) == 1
    history.append(Message.user("one more"))
    assert tok.batches[-1] == ["one more"]
    batches = len(tok.batches)
    counter.clear_cache()  # only the History knows the counts now
    result = fit(history, model="grok-2-vision-1212", reserve=8192 - 60)
    assert len(tok.batches) == batches, "fit over a History re-tokenized known messages"
    assert result.kept[-1] == 100


def test_tokenizer_failures_are_typed(tiny_tokenizer: Any) -> None:
    counter = HFTokenCounter(RecordingTokenizer(tiny_tokenizer, fail=True))
    with pytest.raises(TokenizerError, match="failed to encode: boom"):
        counter.count_messages([Message.user("x")], model="grok-2")


# -- identity ---------------------------------------------------------------------------------


def test_identity_tells_tokenizers_apart(tiny_tokenizer: Any, tmp_path: Path) -> None:
    same = HFTokenCounter(build_tiny_tokenizer())
    other = HFTokenCounter(build_tiny_tokenizer(vocab_size=300))
    mine = HFTokenCounter(tiny_tokenizer)
    assert mine.identity == same.identity  # same serialized tokenizer: same identity
    assert mine.identity != other.identity
    assert mine.identity.startswith("hf:")
    assert mine.identity.endswith(f":r{RULES_VERSION}")
    path = tmp_path / "tokenizer.json"
    tiny_tokenizer.save(str(path))
    loaded = HFTokenCounter.from_file(path)
    assert loaded.identity == mine.identity
    assert loaded.count_texts(["héllo wörld", "東京"]) == mine.count_texts(["héllo wörld", "東京"])
    ids = {EstimateCounter().identity, EstimateCounter(3.0).identity, EstimateCounter.upper_bound().identity}
    assert len(ids) == 3
    assert EstimateCounter().identity == EstimateCounter().identity
    assert mine.identity not in ids


@pytest.mark.shared
def test_grok_identity_is_stable(grok_counter: HFTokenCounter) -> None:
    assert grok_counter.identity == HFTokenCounter(grok_counter.tokenizer).identity
    assert grok_counter.identity.startswith("hf:")


def test_loading_errors_are_typed(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(TokenizerError, match=r"cannot load tokenizer from .*nope\.json"):
        HFTokenCounter.from_file(missing)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(TokenizerError):
        HFTokenCounter.from_file(garbage)
    with pytest.raises(TokenizerError, match=r"needs a tokenizers\.Tokenizer"):
        HFTokenCounter(object())


def test_counters_satisfy_the_protocol(tiny_counter: HFTokenCounter) -> None:
    for counter in (tiny_counter, EstimateCounter(), EstimateCounter.upper_bound()):
        assert isinstance(counter, TokenCounter)


# -- exactness and margins --------------------------------------------------------------------


@given(batch=st.lists(texts(min_size=0, max_size=200, non_blank=False), max_size=8))
def test_hf_counts_are_the_tokenizers_own(batch: list[str], tiny_counter: HFTokenCounter) -> None:
    tok = tiny_counter.tokenizer
    assert tiny_counter.count_texts(batch) == [
        len(tok.encode(t, add_special_tokens=False).ids) for t in batch
    ]


@given(text=texts(min_size=0, max_size=300, non_blank=False))
def test_upper_bound_never_undercounts_byte_level_bpe(text: str, tiny_counter: HFTokenCounter) -> None:
    assert EstimateCounter.upper_bound().count_texts([text]) >= tiny_counter.count_texts([text])


@pytest.mark.shared
@given(text=texts(min_size=0, max_size=300, non_blank=False))
def test_upper_bound_never_undercounts_grok1(text: str, grok_counter: HFTokenCounter) -> None:
    assert EstimateCounter.upper_bound().count_texts([text]) >= grok_counter.count_texts([text])


@pytest.mark.shared
def test_default_estimate_overcounts_english_prose_against_grok1(grok_counter: HFTokenCounter) -> None:
    prose = (
        "Our nightly export job to the analytics bucket has been failing since Monday. The logs show "
        "a permission error when the job writes the Parquet files, although nothing changed on our side. "
        "Could you check whether the service account still has write access, and tell me what to fix?"
    )
    estimate = EstimateCounter()
    assert estimate.count_texts([prose])[0] >= grok_counter.count_texts([prose])[0]


def test_estimator_margin_comes_off_the_budget() -> None:
    assert EstimateCounter().margin == 0.0  # the default estimate's safety is in its counts
    estimate = EstimateCounter(2.5)  # the flat estimate keeps its margin
    assert estimate.margin == 0.1
    assert EstimateCounter.upper_bound().margin == 0.0
    result = fit([Message.user("hi")], model="grok-2-vision-1212", counter=estimate, reserve=1000)
    assert result.margin == 0.1
    assert result.budget == math.floor((8192 - 1000) / 1.1)
    override = fit([Message.user("hi")], model="grok-2-vision-1212", counter=estimate, margin=0.0)
    assert override.budget == 8192 - convkit.DEFAULT_RESERVE  # the default reserve
    exact = fit([Message.user("hi")], model=CUSTOM_MODEL, counter=EstimateCounter(margin=0), reserve=0)
    assert exact.budget == CUSTOM_MODEL.context_window


@pytest.mark.parametrize("margin", [-0.1, 10, float("nan"), True, "0.1"])
def test_margins_are_validated(margin: Any, tiny_tokenizer: Any) -> None:
    with pytest.raises(ValidationError, match="margin"):
        EstimateCounter(margin=margin)
    with pytest.raises(ValidationError, match="margin"):
        HFTokenCounter(tiny_tokenizer, margin=margin)
    with pytest.raises(ValidationError, match="margin"):
        fit([Message.user("hi")], model="grok-2", margin=margin)


@pytest.mark.parametrize("bpt", [0, -1, 17, "3"])
def test_bytes_per_token_is_validated(bpt: Any) -> None:
    with pytest.raises(ValidationError, match="bytes_per_token"):
        EstimateCounter(bpt)


def test_estimate_is_bytes_over_rate() -> None:
    assert EstimateCounter(2.5).count_texts(["", "a", "abc", "日本"]) == [0, 1, 2, 3]  # ceil(bytes / 2.5)
    assert EstimateCounter.upper_bound().count_texts(["", "a", "日本"]) == [0, 2, 7]  # bytes + 1


@pytest.mark.parametrize("model", ["grok-2-vision-1212", "grok-2-1212"])
def test_image_policy_is_validated_for_every_model(model: str, tiny_counter: HFTokenCounter) -> None:
    conv = [Message.user("hi")]
    with pytest.raises(ValidationError, match="images= must be 'error' or 'drop', got 'keep'"):
        fit(conv, model=model, images="keep")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="images= must be"):
        fit(History(conv), model=model, images="keep")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="images= must be"):
        tiny_counter.count_messages(conv, model=model, images="skip")  # type: ignore[arg-type]


class _BadCounter(BaseCounter):
    """A counter whose tokenizer answers ``answer`` for every text (issue 14: never validated)."""

    def __init__(self, answer: object) -> None:
        super().__init__()
        self.answer = answer

    @property
    def identity(self) -> str:
        return "bad-counter-id"

    def _encode(self, texts: list[str]) -> list[int]:
        return [self.answer] * len(texts)  # type: ignore[list-item]


@pytest.mark.parametrize("answer", [-3, 2.5, "7", None, True])
def test_counter_outputs_are_validated_naming_the_counter(answer: object) -> None:
    counter = _BadCounter(answer)
    for count in (
        lambda: counter.count_texts(["hello"]),
        lambda: counter.count_messages([Message.user("hello")], model="grok-2"),
        lambda: convkit.fit([Message.user("hello")], model="grok-2", counter=counter),
    ):
        with pytest.raises(TokenizerError, match=r"_BadCounter \(bad-counter-id\).*non-negative integer"):
            count()


def test_counter_returning_the_wrong_number_of_counts_is_refused() -> None:
    class Short(_BadCounter):
        def _encode(self, texts: list[str]) -> list[int]:
            return [1]

    with pytest.raises(TokenizerError, match="returned 1 counts for 2 texts"):
        Short(1).count_texts(["a", "b"])

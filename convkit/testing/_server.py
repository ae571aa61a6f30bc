"""A local xAI stand-in: a real HTTP server on 127.0.0.1 that answers like api.x.ai.

For convkit's tests and for yours: point any xAI client (convkit's, the
OpenAI SDK, plain httpx) at :attr:`XAIStandIn.base_url`, script what it
should answer, and read back what it received::

    from convkit.testing import Fault, Reply, XAIStandIn

    with XAIStandIn(api_key="test-key") as xai:
        xai.queue(Fault.status(429), Reply(text="Hello!"))
        client = convkit.XAIClient(api_key=xai.api_key, base_url=xai.base_url)
        ...
        assert xai.chat_requests[-1]["model"] == "grok-2-1212"

It serves ``POST /v1/chat/completions`` (JSON or, with ``"stream": true``,
server-sent events ending in ``data: [DONE]``), ``POST /v1/tokenize-text``
and ``GET /v1/language-models[/{id}]``.

What it checks, in this order, for every request: the bearer key (a wrong
or missing key is xAI's HTTP 400 "Incorrect API key provided: te***ey. ...");
the route; then the first queued :class:`Fault` for that endpoint, which
answers in place of the normal response; then the body: JSON with ``model``
and ``messages`` (else 422 ``text/plain`` like xAI's serde errors, or 400
``text/plain`` for unparseable JSON), a registered model or alias (else 404
"The model ... does not exist ..."), and the context window. The prompt is
counted *from the request* with the stand-in's own counter under convkit's
counting rules (``counter.count_messages(messages, model=..., tools=...)``);
when it exceeds ``context_window - (max_completion_tokens or max_tokens or
0)`` the answer is 400 "This model's maximum prompt length is N but the
request contains M tokens." with N that limit and M the prompt tokens.
Otherwise the first queued :class:`Reply` answers, or a deterministic default
("You said: <last user text>"); ``usage`` reports the stand-in's count.

The default counter, ``EstimateCounter(bytes_per_token=4.0, margin=0)``,
deliberately differs from the counters clients use (convkit's default
estimate prices text by character class and counts more than this on most
text), so a client's calibration from ``usage.prompt_tokens`` has something
to learn; pass ``counter=`` (for example ``EstimateCounter(1.0, margin=0)``,
which counts *more* than the clients) to provoke context-window errors for
prompts a client believes fit.

Invariants: it only ever binds 127.0.0.1 on an ephemeral port; it never
sleeps (a slow response waits on a :class:`threading.Event`); :meth:`stop`
releases held responses and closes every connection, then joins its
threads; it never logs, and never stores the API key: recorded headers show
``Authorization: Bearer ***`` and any occurrence of the key elsewhere in a
request is replaced by ``***`` (flagged by :attr:`RecordedRequest.key_seen`).
"""

from __future__ import annotations

import hmac
import itertools
import threading
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from .._counting import EstimateCounter, HFTokenCounter, TokenCounter
from .._models import ModelRegistry, default_registry
from . import _wire
from ._cache import DEFAULT_CACHE_BLOCK, PromptCache
from ._http import Response, Server, error_response
from ._items import Endpoint, Fault, RecordedRequest, Reply
from ._wire import WRONG_KEY_ERROR, ErrorStyle, mask_key

__all__ = ["Endpoint", "Fault", "RecordedRequest", "Reply", "XAIStandIn"]

_JOIN_TIMEOUT = 10.0


class XAIStandIn:
    """A local xAI API server for tests (see the module docstring for its behaviour).

    ``api_key``: the key clients must send. ``counter``: counts prompts and
    completions (default ``EstimateCounter(4.0, margin=0)``, or an
    ``HFTokenCounter`` over ``tokenizer`` when one is given). ``tokenizer``:
    a ``tokenizers.Tokenizer`` for real ids from ``/v1/tokenize-text``
    (without one the ids are deterministic fakes whose count agrees with the
    counter). ``registry``: the models served (default: convkit's default
    registry, read live, so models you register are accepted).
    ``language_models``: the list ``GET /v1/language-models`` returns
    (default: built from the registry; also settable later).
    ``error_style``: ``"phrase"`` (xAI's long gRPC codes) or ``"slug"``
    (``invalid-argument``...). ``team_id``: named in 404 model errors. ``cache_block``: the
    prompt cache's block in tokens: a request with ``x-grok-conv-id`` reports as
    ``cached_tokens`` the whole blocks of its longest prefix of messages shared with an earlier
    request of that id (see :mod:`convkit.testing._cache`; without the header nothing is cached).
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        counter: TokenCounter | None = None,
        tokenizer: Any = None,
        registry: ModelRegistry | None = None,
        language_models: Sequence[Mapping[str, Any]] | None = None,
        error_style: ErrorStyle = "phrase",
        team_id: str = "00000000-0000-4000-8000-000000000000",
        cache_block: int = DEFAULT_CACHE_BLOCK,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("the stand-in needs a non-empty api_key")
        if error_style not in ("phrase", "slug"):
            raise ValueError(f"error_style must be 'phrase' or 'slug', got {error_style!r}")
        self._api_key = api_key
        if counter is None:
            counter = (
                HFTokenCounter(tokenizer, name="xai-standin")
                if tokenizer is not None
                else EstimateCounter(4.0, margin=0.0)
            )
        self.counter: TokenCounter = counter
        self.tokenizer = tokenizer
        self.registry = registry if registry is not None else default_registry
        self._language_models = None if language_models is None else [dict(m) for m in language_models]
        self.error_style: ErrorStyle = error_style
        self.team_id = team_id
        #: what a request with ``x-grok-conv-id`` finds cached (see :mod:`convkit.testing._cache`)
        self.prompt_cache = PromptCache(cache_block)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: list[Reply | Fault] = []
        self._requests: list[RecordedRequest] = []
        self._errors: list[BaseException] = []
        self._held: list[threading.Event] = []
        self._ids = itertools.count(1)
        self._stopping = False
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = f"base_url={self.base_url!r}" if self._server is not None else "stopped"
        return f"XAIStandIn({state}, api_key={mask_key(self._api_key)!r})"

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> XAIStandIn:
        """Bind 127.0.0.1 on an ephemeral port and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("the stand-in is already running")
        with self._lock:
            self._stopping = False
        server = Server(("127.0.0.1", 0))
        server.standin = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="xai-standin", kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held responses, close every connection, stop serving and join the threads."""
        server, thread = self._server, self._thread
        if server is None:
            return
        with self._lock:
            self._stopping = True
            held = list(self._held)
        for event in held:
            event.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        server.join_handlers(_JOIN_TIMEOUT)
        if thread is not None:
            thread.join(_JOIN_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> XAIStandIn:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what tests read and script -----------------------------------------------------
    @property
    def api_key(self) -> str:
        """The key clients must send (never shown by repr)."""
        return self._api_key

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the stand-in is not running; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: what a client takes as its base URL."""
        return f"{self.url}/v1"

    def queue(self, *items: Reply | Fault) -> None:
        """Append replies and faults; each answers the next request of its endpoint, in order."""
        for item in items:
            if not isinstance(item, Reply | Fault):
                raise TypeError(f"queue() takes Reply and Fault values, got {type(item).__name__}")
        with self._lock:
            self._queue.extend(items)

    @property
    def pending(self) -> list[Reply | Fault]:
        """Queued items no request has used yet."""
        with self._lock:
            return list(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first (API key redacted)."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> bool:
        """Block until ``count`` requests have arrived (in total); False on timeout.

        Lets a test act while a request is in flight (for example stop the
        stand-in while a slow response is held) without sleeping or polling.
        """
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self._requests) >= count, timeout)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat completion requests received."""
        return [r.json for r in self.requests if r.endpoint == "chat" and isinstance(r.json, dict)]

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions inside the stand-in (each answered 500); empty when all is well."""
        with self._lock:
            return list(self._errors)

    @property
    def language_models(self) -> list[dict[str, Any]]:
        """What ``GET /v1/language-models`` returns (built from the registry unless set)."""
        with self._lock:
            custom = self._language_models
        if custom is not None:
            return [dict(m) for m in custom]
        return [_wire.language_model(s) for s in self.registry.specs()]

    @language_models.setter
    def language_models(self, models: Sequence[Mapping[str, Any]] | None) -> None:
        with self._lock:
            self._language_models = None if models is None else [dict(m) for m in models]

    def reset(self) -> None:
        """Forget queued items, recorded requests and errors."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._errors.clear()

    # -- internals used by the handler ---------------------------------------------------
    def _take(self, endpoint: str, kind: type[Reply] | type[Fault]) -> Any:
        """Pop the first queued item for ``endpoint`` if it is of ``kind``."""
        with self._lock:
            for i, item in enumerate(self._queue):
                if item.endpoint in (endpoint, "any"):
                    if isinstance(item, kind):
                        return self._queue.pop(i)
                    return None
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._arrived.notify_all()

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)

    def _next_id(self) -> str:
        with self._lock:
            return str(uuid.UUID(int=next(self._ids)))

    def _key_ok(self, header: str | None) -> bool:
        scheme, _, key = (header or "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            key.strip().encode(), self._api_key.encode()
        )

    def _error(self, status: int, error: str | None = None, code: str | None = None) -> Response:
        return error_response(status, error, code=code, style=self.error_style)

    def _wrong_key(self, header: str | None) -> Response:
        _scheme, _, key = (header or "").strip().partition(" ")
        return self._error(400, WRONG_KEY_ERROR.format(masked=mask_key(key.strip())))

    def _hold(self, release: threading.Event) -> bool:
        """Wait for ``release``; False when the stand-in is stopping."""
        with self._lock:
            if self._stopping:
                return False
            self._held.append(release)
        try:
            release.wait()
        finally:
            with self._lock:
                self._held.remove(release)
        with self._lock:
            return not self._stopping

"""LangGraph adapter: a pre-model hook fitting a Grok window, and a thread's messages kept in a convkit store.

Needs the ``langgraph`` extra (``pip install -e '.[langgraph]'``,
``langgraph>=1.1.5``, ``langchain-core>=1.2.5``). Built on the LangChain adapter:
messages are converted by :func:`~convkit.integrations.langchain.to_langchain`
/ :func:`~convkit.integrations.langchain.from_langchain` and fitted by
:func:`~convkit.integrations.langchain.fit_messages`, so the rules are the
same.

* :class:`WindowHook` -- ``create_react_agent(model, tools,
  pre_model_hook=WindowHook("grok-4", reserve=2048))``: before each model
  call the agent sends the convkit window of the state's ``messages`` (system
  prompt and pinned messages kept, a tool call with its results kept or
  dropped together, then the newest that fit) as ``llm_input_messages``, so
  the state itself is not rewritten. (LangGraph 1.x marks
  ``create_react_agent`` as moved to ``langchain.agents.create_agent``; the
  hook is a plain function of the state, and :meth:`WindowHook.fit` is a
  plain function of a message list, for that or any custom graph.)
* :class:`ConvkitMessages` -- a thread's ``messages`` channel kept in the
  convkit conversation that the thread id
  (``config["configurable"]["thread_id"]``) names, through
  ``store.conversation_for(thread_id)``: ``load(config)`` /
  ``save(config, messages)`` (``aload`` / ``asave``), or the graph nodes
  ``load_node`` (right after ``START``) and ``save_node`` (last), so a run
  resumes the stored conversation.

Why not a LangGraph checkpointer (``BaseCheckpointSaver``)? A checkpointer
stores every channel of the state at every super-step, with pending writes,
interrupts and a history of checkpoints to time-travel through: a different
data model from a conversation's message log, and most of it would be blobs
convkit can neither count nor window. :class:`ConvkitMessages` keeps the one
channel convkit understands, as ordinary convkit messages (queryable,
windowed by ``store.window``, exported as JSONL, usable by the other
adapters), and leaves the rest to LangGraph. It keeps, per thread, the
``messages`` in order, each message whole (LangChain ids, tool calls with
their exact argument text, images once per image). It does **not** keep
other state channels, checkpoints of intermediate steps (a run resumes from
its messages, not from the middle of a step), interrupts and pending writes:
use a LangGraph checkpointer for those (human-in-the-loop, time travel).

The two together: the checkpointer's state is the truth for the graph, and
the conversation follows it. ``load_node`` (which must follow ``START``)
leaves the state as it is when the checkpointer restored the thread for the
run (LangGraph numbers a resumed run's steps on from its checkpoint), so an
edit by id (``update_state``), a ``RemoveMessage`` (summarise-then-remove)
and a run from an earlier checkpoint (a fork) stay as the checkpointer has
them; in a subgraph, it leaves the state as it is when the parent gave it
the thread (a message whose id is stored). Otherwise -- no checkpointer, or
one with nothing of this thread (a first run; an in-memory saver after a
restart) -- the state is the run's input, and ``load_node`` puts the stored
thread before it (an input message whose id is stored is the stored one).
``save_node`` then makes the conversation match the state: what extends the
stored thread is appended; a state that came from it (it holds a stored id)
but no longer begins with it (edited, removed, forked) replaces it with
``store.replace_messages``, in one transaction, so the redacted, removed or
abandoned messages are gone from convkit too and a restart resumes what the
graph last had; a state sharing no message with it (everything stored was
removed, a fork from before the first save, a graph without ``load_node``)
is appended, so no save loses what is stored (``store.replace_messages`` or
``store.truncate`` drop it). ``save`` / ``asave`` called directly only
append. Each save reads the thread's stored messages, then writes in one
transaction (all or none), so a run that fails before the save node stores
nothing of that run; two runs of one thread at the same time may both
append what neither had stored, as with LangGraph's own rule of one run per
thread at a time.

Typed errors: no thread id in the config, a store that is not a convkit
store, a sync method on an :class:`~convkit.AsyncStore`, a state without
``messages``, bad hook settings: :class:`~convkit.ValidationError`; a tool
result without its call: :class:`~convkit.InvalidConversationError`; a
must-keep part that cannot fit: :class:`~convkit.ContextWindowError`.

The code lives in private modules, one job each: ``_langgraph_window`` (the
hook) and ``_langgraph_threads`` (the thread's messages).
"""

from __future__ import annotations

from ._extras import require

require("langgraph", "LangGraph", "langgraph", "langchain_core", "langgraph")

from ._langgraph_threads import ConvkitMessages, thread_id  # noqa: E402
from ._langgraph_window import LLM_INPUT_KEY, WindowHook  # noqa: E402

__all__ = ["LLM_INPUT_KEY", "ConvkitMessages", "WindowHook", "thread_id"]

"""The window engine: every rule that decides a window, written once and pure.

* :mod:`.units`: what a trim unit is (a message alone, or a tool call with
  its results and everything between) and which units are pinned; the
  tool-link rule (a tool result answers an earlier call).
* :mod:`.cut`: where the oldest droppable units are cut so the rest fits,
  and the one :class:`~convkit._errors.ContextWindowError` for a must-keep
  part that cannot fit.
* :mod:`.spans`: the kept messages as merged index ranges.
* :mod:`.listcache`: a plain list's index, kept by the identity of its
  messages, so a growing list is validated and counted once.

``fit`` over a list or a :class:`~convkit.History`, ``Store.window``, the
summarize strategy, the integrations and :func:`convkit.testing.assert_fits`
all use these; none of them restates a rule. Nothing here does I/O.
"""

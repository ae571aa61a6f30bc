"""Testing helpers for users' CI.

* :mod:`convkit.testing._server` -- :class:`XAIStandIn`, a local xAI API
  server on 127.0.0.1 with scripted :class:`Reply` and :class:`Fault`
  answers, that records every :class:`RecordedRequest` (re-exported here;
  standard library only, no hypothesis);
* :mod:`convkit.testing.strategies` -- hypothesis strategies for convkit's
  values (texts, images, messages, valid conversations, token budgets). It
  is the only part of convkit that imports hypothesis; install it with the
  ``test`` extra;
* :mod:`convkit.testing.openapi` -- validates bodies against xAI's official
  OpenAPI document (needs ``jsonschema``, in the ``test`` extra);
* :mod:`convkit.testing._invariants` -- :func:`assert_fits` and
  :func:`assert_cannot_fit`, checkers of the fit invariants 1-8 for your own
  property tests (re-exported here; no pytest or hypothesis needed).
"""

from __future__ import annotations

from ._invariants import assert_cannot_fit, assert_fits
from ._server import Fault, RecordedRequest, Reply, XAIStandIn

__all__ = ["Fault", "RecordedRequest", "Reply", "XAIStandIn", "assert_cannot_fit", "assert_fits"]

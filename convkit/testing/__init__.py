"""Testing helpers for users' CI.

:mod:`convkit.testing.strategies` holds hypothesis strategies for convkit's
values (texts, images, messages, valid conversations, token budgets). This
package is the only part of convkit that imports hypothesis; install it with
the ``test`` extra.
"""

"""Stepping a sans-I/O flow: the one loop the store's and the session's drivers share.

A flow is a generator that yields steps (a statement to run, a request to
send, an event to hand out), receives each step's result, and returns its
value; it does no I/O itself. A sync driver and an async driver step it the
same way but for ``await``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

__all__ = ["Stepper", "runs"]

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")


class Stepper(Generic[S, T]):
    """A generator as a driver steps it: ``step`` is what it yielded last, ``None`` once it returned.

    ``send(result)`` resumes it with a step's result. Used as a context manager around one step
    (``with run: run.result = <perform run.step>``), it sends ``result`` on success and throws an
    ``Exception`` the block raised into the generator, which may handle it and go on (an error it
    does not handle comes out of the ``with``; a ``BaseException`` is never thrown in). Once it
    returned, ``value`` is its return value.
    """

    __slots__ = ("_gen", "result", "step", "value")

    def __init__(self, gen: Generator[S, Any, T]) -> None:
        self._gen = gen
        self.step: S | None = None
        self.result: Any = None
        self.value: T
        self._resume(gen.send, None)

    def _resume(self, how: Callable[[Any], S], arg: Any) -> None:
        try:
            self.step = how(arg)
        except StopIteration as stop:
            self.step = None
            self.value = stop.value

    def send(self, result: Any) -> None:
        self._resume(self._gen.send, result)

    def __enter__(self) -> Stepper[S, T]:
        self.result = None
        return self

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> bool:
        if error is None:
            self.send(self.result)
            return False
        if not isinstance(error, Exception):
            return False
        self._resume(self._gen.throw, error)
        return True


def runs(
    flow: Callable[Concatenate[Any, P], Generator[Any, Any, Any]],
) -> Callable[[Callable[..., R]], Callable[Concatenate[Any, P], R]]:
    """Make a twin's method the public face of ``flow``: the flow's signature and docstring.

    The method's body runs the flow (``return self._call(self._<name>(*args, **kwargs))``, with
    ``await`` in the async twin); its return annotation stays its own.
    """
    signature = inspect.signature(flow)

    def bind(method: Callable[..., R]) -> Callable[Concatenate[Any, P], R]:
        returns = inspect.signature(method).return_annotation
        method.__signature__ = signature.replace(return_annotation=returns)  # type: ignore[attr-defined]
        method.__doc__ = flow.__doc__
        return method

    return bind

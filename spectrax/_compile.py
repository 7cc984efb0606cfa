"""Eager calls of a model run as one compiled program.

Called outside ``jax.jit`` (in a notebook, a script, an eager ``jax.vmap``), a model's forward
pass would dispatch its primitives one by one, each compiled on its own the first time: an
``SSMSequenceModel`` of two S5 blocks under ``jax.vmap`` took 8.4 s on a 2-core CPU for its first
call, about 1 s as one program; an FNO-1d 2.0 s against 0.3 s. :func:`compiled_call` wraps a
module method in :func:`equinox.filter_jit` (arrays traced, everything else static), as Diffrax's
``diffeqsolve`` is: under an outer ``jax.jit`` it is inlined, so a jitted training step compiles
the same program as before; ``jax.disable_jit()`` turns it off for debugging.

The module's array fields, and its sub-layers', are checked against their annotations when it is
traced (:func:`~spectrax._checks.check_parameters`: a parameter swapped in at another shape). Checks
that need concrete values (an all-False mask, a non-positive step) are made by the
``precheck`` given, on the raw arguments before tracing; the method's own checks of shapes and
dtypes run at trace time, with the same messages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import equinox as eqx
import jax
import numpy as np

from spectrax._checks import check_parameters

F = TypeVar("F", bound=Callable[..., Any])


def compiled_call(method: F | None = None, *, precheck: Callable[..., None] | None = None) -> F:
    """``method(self, *args, **kwargs)`` run through :func:`equinox.filter_jit`; ``precheck``
    (same arguments) runs first, eagerly."""
    if method is None:
        return functools.partial(compiled_call, precheck=precheck)  # type: ignore[return-value]

    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        # at trace time: a parameter at another shape or dtype is a new trace, and an eager
        # call of a known one (a new model object after each update, an NNX bridge's rebuilt
        # module) pays nothing for it
        check_parameters(self)
        return method(self, *args, **kwargs)

    jitted = eqx.filter_jit(checked)

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if precheck is not None:
            precheck(self, *args, **kwargs)
        # NumPy integer scalars are sizes (an out_shape built with NumPy arithmetic):
        # filter_jit would trace them as arrays, and a traced size fails every shape check
        args, kwargs = jax.tree.map(_static_int, (args, kwargs))
        return jitted(self, *args, **kwargs)

    return call  # type: ignore[return-value]


def _static_int(x: Any) -> Any:
    return int(x) if isinstance(x, np.integer) else x

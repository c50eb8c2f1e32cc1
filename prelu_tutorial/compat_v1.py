"""The Stack Overflow answers' PReLU approaches, in TF1 style, to be judged.

Each function rebuilds one answer's approach (in our own code) with
``tf.compat.v1.get_variable`` and ``variable_scope``. They only work while
building a ``tf.Graph`` (graph mode), so run them through :func:`run_in_graph`,
which builds a fresh graph and ``tf.compat.v1.Session`` for each call. Every
docstring states the defect that the book demonstrates; the tests check that
each defect really happens.

Do not use these in new code: :class:`prelu_tutorial.PReLU` is the TF2 fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from prelu_tutorial import ops
from prelu_tutorial._number_checks import check_int

__all__ = [
    "ANSWERS",
    "answer1_parametric_relu",
    "answer2_prelu",
    "answer3_prelu",
    "answer6_prelu",
    "run_in_graph",
]

v1 = tf.compat.v1


def _abs_form_with_float32_alpha(x: tf.Tensor, name: str, initial_alpha: float) -> tf.Tensor:
    """Answers 1 and 6: a float32 variable ``name`` and ``relu(x) + alpha * (x - |x|) / 2``.

    Written out rather than through :func:`prelu_tutorial.ops.prelu_abs`, which
    casts alpha to ``x``'s dtype and so would hide the answers' float32 defect.
    """
    alpha = v1.get_variable(
        name, x.shape[-1], initializer=v1.constant_initializer(initial_alpha), dtype=tf.float32
    )
    return tf.nn.relu(x) + alpha * (x - tf.abs(x)) * 0.5


def answer1_parametric_relu(x: tf.Tensor) -> tf.Tensor:
    """Answer 1: ``relu(x) + alpha * (x - |x|) / 2`` with a variable named ``alpha``.

    Defects:
        * The variable name is fixed, so a second call in the same scope raises
          ``ValueError: Variable alpha already exists, disallowed``.
        * alpha is hard-coded float32, so a float16 (or float64) input raises
          ``TypeError`` when alpha multiplies it.
        * ``x = +inf`` gives NaN (``inf - |inf|`` is ``inf - inf``).
        * alpha starts at 0, so the layer starts as a plain ReLU (the paper uses 0.25).

    Args:
        x: Graph tensor whose last axis is the channel axis.

    Returns:
        The activation, a graph tensor.
    """
    return _abs_form_with_float32_alpha(x, "alpha", initial_alpha=0.0)


def answer2_prelu(x: tf.Tensor, scope: str | None = None) -> tf.Tensor:
    """Answer 2: ``max(0, x) + alpha * min(0, x)`` inside its own variable scope.

    ``variable_scope(default_name="prelu")`` makes a new scope per call
    (``prelu``, ``prelu_1``, ...), so several layers do not clash, and alpha
    takes ``x``'s dtype.

    Defects:
        * The Python constant ``0.0`` in ``tf.maximum(0.0, x)`` becomes a float32
          tensor in graph mode, so a float16 input raises ``TypeError``
          although alpha has the right dtype.
        * alpha starts at 0.1 (the paper uses 0.25); a minor point.

    Args:
        x: Graph tensor whose last axis is the channel axis.
        scope: Variable scope name; ``None`` makes a fresh ``prelu_N`` scope.

    Returns:
        The activation, a graph tensor.
    """
    with v1.variable_scope(scope, default_name="prelu"):
        alpha = v1.get_variable(
            "prelu", shape=x.shape[-1], dtype=x.dtype, initializer=v1.constant_initializer(0.1)
        )
        # The Python 0.0 literals are the answer's defect, so not ops.prelu_minmax.
        return tf.maximum(0.0, x) + alpha * tf.minimum(0.0, x)


def answer3_prelu(x: tf.Tensor, name: str | None = None) -> tf.Tensor:
    """Answer 3: ``max(alpha * x, x)`` with alpha shaped like the whole input.

    Defects:
        * alpha has ``x``'s full shape, batch axis included: one alpha per
          element *and per sample in the batch*. With an unknown batch size
          (``None``) the variable's shape is not fully defined and
          ``get_variable`` raises ``ValueError`` ("The initializer passed is not
          valid..."); with a known one, the model only accepts that batch size.
        * ``max(alpha * x, x)`` is PReLU only for ``alpha <= 1``; once training
          pushes alpha above 1 it computes ``alpha * x`` for ``x > 0`` and ``x``
          for ``x < 0``.
        * The default name ``"alpha"`` clashes on a second call, as in answer 1.

    Args:
        x: Graph tensor with a fully known shape.
        name: Variable name; defaults to ``"alpha"``.

    Returns:
        The activation, a graph tensor.
    """
    alpha = v1.get_variable(
        name or "alpha", shape=x.shape, initializer=v1.constant_initializer(0.0), dtype=x.dtype
    )
    return ops.prelu_maximum(x, alpha)


def answer6_prelu(x: tf.Tensor, name: str) -> tf.Tensor:
    """Answer 6: answer 1 with the variable name chosen by the caller.

    Two calls with different names (``"alpha1"``, ``"alpha2"``) no longer clash,
    but keeping names unique is now the caller's job, and answer 1's other
    defects remain: float32 hard-coded, NaN at ``+inf``.

    Args:
        x: Graph tensor whose last axis is the channel axis.
        name: The variable's name; must be unique in the current scope.

    Returns:
        The activation, a graph tensor.
    """
    return _abs_form_with_float32_alpha(x, name, initial_alpha=0.1)


ANSWERS: dict[str, Callable[..., tf.Tensor]] = {
    "answer1": answer1_parametric_relu,
    "answer2": answer2_prelu,
    "answer3": answer3_prelu,
    "answer6": answer6_prelu,
}
"""The answers by name, in the order they appear on the page."""


def run_in_graph(
    answer: Callable[..., tf.Tensor],
    x,
    *,
    alpha: Any = None,
    calls: int = 1,
    unknown_batch: bool = False,
    **kwargs: Any,
) -> np.ndarray:
    """Runs an answer on a NumPy array in a fresh ``tf.Graph`` and ``Session``.

    Args:
        answer: One of the functions in :data:`ANSWERS`.
        x: Array of floats; its dtype is the placeholder's dtype.
        alpha: If given, every variable the answer made is set to this value
            (broadcast to the variable's shape) before running, e.g. to try
            ``alpha > 1``. Otherwise alpha keeps the answer's initial value.
        calls: How many times to apply the answer, each to the previous
            output, as stacked layers would (``2`` shows the name clash).
        unknown_batch: Give the placeholder an unknown batch size (``None``),
            as a model that accepts any batch size does.
        **kwargs: Passed to ``answer`` on every call (e.g. ``name=``).

    Returns:
        The output of the last call, as a NumPy array.

    Raises:
        ValueError: If ``calls`` is smaller than 1, ``x`` has no axis, or whatever the answer
            raises while building the graph (e.g. a variable-name clash).
        TypeError: If ``calls`` is not an integer (a bool included), or
            whatever the answer raises for a dtype mismatch.
    """
    calls = check_int(calls, "calls", minimum=1, owner="run_in_graph")
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError(
            f"run_in_graph: x must have at least one axis (the last is the channel axis "
            f"that the answers read), got a 0-d array {x!r}; pass e.g. np.atleast_1d(x)."
        )
    graph = tf.Graph()
    with graph.as_default():
        shape = (None,) + x.shape[1:] if unknown_batch else x.shape
        placeholder = v1.placeholder(tf.as_dtype(x.dtype), shape=shape, name="x")
        output = placeholder
        for _ in range(calls):
            output = answer(output, **kwargs)
        assignments = []
        if alpha is not None:
            for variable in v1.global_variables():
                value = np.broadcast_to(
                    np.asarray(alpha, dtype=variable.dtype.base_dtype.as_numpy_dtype),
                    variable.shape.as_list(),
                )
                assignments.append(variable.assign(value))
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            session.run(assignments)
            return session.run(output, feed_dict={placeholder: x})

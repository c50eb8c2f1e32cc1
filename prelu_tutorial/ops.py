"""Every PReLU formulation, once, as a pure function ``f(x, alpha) -> tensor``.

PReLU (He et al., 2015) is ``f(x) = x`` for ``x > 0`` and ``f(x) = alpha * x``
otherwise. The Stack Overflow answers and the libraries write it in several
algebraically equivalent ways; they differ on the edges (``alpha > 1``,
``+-inf``, NaN, the subgradient at ``x = 0``). Each function below states its
own behaviour there, and the tests hold each one to it.

All functions take ``x`` (a floating tensor) and ``alpha`` (anything that
broadcasts to ``x``) and return a tensor of ``x``'s dtype. They are the bare
formulas, kept bare on purpose so the book can show what each one does; the
production PReLU, which validates its arguments and holds one semantics on
every path, is :func:`prelu_tutorial.prelu` (:mod:`prelu_tutorial.xla`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from prelu_tutorial._checks import to_tensor

__all__ = [
    "FORMULATIONS",
    "prelu_abs",
    "prelu_keras",
    "prelu_maximum",
    "prelu_minmax",
    "prelu_numpy",
    "prelu_relu_difference",
    "prelu_where",
]


def _as_pair(x, alpha) -> tuple[tf.Tensor, tf.Tensor]:
    """Converts ``x`` to a tensor and casts ``alpha`` to ``x``'s dtype."""
    x = to_tensor(x)
    alpha = tf.cast(to_tensor(alpha, dtype_hint=x.dtype), x.dtype)
    return x, alpha


def prelu_abs(x, alpha) -> tf.Tensor:
    """PReLU as ``relu(x) + alpha * (x - |x|) / 2`` (answer 1, TFLearn).

    Uses ``min(0, x) = (x - |x|) / 2``. Correct for every finite ``x`` and
    every ``alpha``, but ``x = +inf`` gives NaN: ``inf - |inf|`` is
    ``inf - inf``. Subgradient at ``x = 0``: ``alpha / 2`` in ``x`` (TF takes
    ``relu'(0) = 0`` and ``d|x|/dx = sign(0) = 0``), ``0`` in ``alpha``.

    Args:
        x: Floating tensor.
        alpha: Slope for ``x <= 0``; broadcasts to ``x``.

    Returns:
        A tensor of ``x``'s dtype and shape.
    """
    x, alpha = _as_pair(x, alpha)
    return tf.nn.relu(x) + alpha * (x - tf.abs(x)) * 0.5


def prelu_minmax(x, alpha) -> tf.Tensor:
    """PReLU as ``max(0, x) + alpha * min(0, x)`` (answer 2, the paper, PyTorch).

    Correct for every ``alpha`` and for ``+-inf`` and NaN. Subgradient at
    ``x = 0``: ``0`` in ``x`` (TF's ``maximum``/``minimum`` send the gradient
    of a tie to their first argument, the constant ``0``), ``0`` in ``alpha``.
    The sign of a zero result may differ from ``alpha * x``'s (it depends on the
    kernel TensorFlow picks, e.g. on the tensor's length).

    Args:
        x: Floating tensor.
        alpha: Slope for ``x <= 0``; broadcasts to ``x``.

    Returns:
        A tensor of ``x``'s dtype and shape.
    """
    x, alpha = _as_pair(x, alpha)
    zero = tf.zeros([], dtype=x.dtype)
    return tf.maximum(zero, x) + alpha * tf.minimum(zero, x)


def prelu_maximum(x, alpha) -> tf.Tensor:
    """PReLU as ``max(alpha * x, x)`` (answer 3).

    Valid only for ``alpha <= 1``, which covers the usual ``0 <= alpha <= 1``
    (for ``alpha < 0`` it is right too: on ``x <= 0``, ``alpha * x >= 0 >= x``).
    For ``alpha > 1`` it is wrong on both sides: it returns ``alpha * x`` for
    ``x > 0`` (the maximum picks the steeper line) and ``x`` for ``x < 0``. It
    is always convex, while PReLU with ``alpha > 1`` is concave.
    Subgradient at ``x = 0``: ``alpha`` in ``x`` (a tie goes to ``alpha * x``),
    ``0`` in ``alpha``.

    Args:
        x: Floating tensor.
        alpha: Slope for ``x <= 0``, in ``[0, 1]``; broadcasts to ``x``.

    Returns:
        A tensor of ``x``'s dtype and shape.
    """
    x, alpha = _as_pair(x, alpha)
    return tf.maximum(alpha * x, x)


def prelu_where(x, alpha) -> tf.Tensor:
    """PReLU as ``where(x > 0, x, alpha * x)``.

    The definition, written as a select. Correct for every ``alpha``, ``+-inf``,
    NaN and ``-0.0`` (``alpha * -0.0`` keeps IEEE's sign). Subgradient at
    ``x = 0``: ``alpha`` in ``x`` (the ``x <= 0`` branch), ``0`` in ``alpha``.

    Args:
        x: Floating tensor.
        alpha: Slope for ``x <= 0``; broadcasts to ``x``.

    Returns:
        A tensor of ``x``'s dtype and shape (``alpha`` may not make it larger).
    """
    x, alpha = _as_pair(x, alpha)
    return tf.where(x > 0, x, alpha * x)


def prelu_keras(x, alpha) -> tf.Tensor:
    """PReLU as ``relu(x) + (-alpha) * relu(-x)``, what ``keras.layers.PReLU`` evaluates.

    Correct for every ``alpha``, ``+-inf`` and NaN. This sum, with the slope
    negated first, is the pattern the TFLite converter fuses into one ``PRELU``
    op (chapter 8); ``prelu_relu_difference`` writes the same values as a
    subtraction, which does not fuse. Subgradient at ``x = 0``: ``0`` in ``x``
    (TF takes ``relu'(0) = 0`` for both terms), ``0`` in ``alpha``.

    Args:
        x: Floating tensor.
        alpha: Slope for ``x <= 0``; broadcasts to ``x``.

    Returns:
        A tensor of ``x``'s dtype and shape.
    """
    x, alpha = _as_pair(x, alpha)
    return tf.nn.relu(x) + (-alpha) * tf.nn.relu(-x)


def prelu_relu_difference(x, alpha) -> tf.Tensor:
    """PReLU as ``relu(x) - alpha * relu(-x)``: Keras' formula with a subtraction.

    The same values as ``prelu_keras`` (and correct for every ``alpha``,
    ``+-inf`` and NaN), but the TFLite converter does not recognise the
    subtraction and emits five ops where the sum gives one ``PRELU``
    (chapter 8). Subgradient at ``x = 0``: ``0`` in ``x``, ``0`` in ``alpha``.

    Args:
        x: Floating tensor.
        alpha: Slope for ``x <= 0``; broadcasts to ``x``.

    Returns:
        A tensor of ``x``'s dtype and shape.
    """
    x, alpha = _as_pair(x, alpha)
    return tf.nn.relu(x) - alpha * tf.nn.relu(-x)


FORMULATIONS: dict[str, Callable[..., tf.Tensor]] = {
    "abs": prelu_abs,
    "minmax": prelu_minmax,
    "maximum": prelu_maximum,
    "where": prelu_where,
    "keras": prelu_keras,
    "relu_difference": prelu_relu_difference,
}
"""Each Stack Overflow / library formulation by short name."""


def prelu_numpy(x, alpha) -> np.ndarray:
    """The NumPy reference: ``x`` where ``x > 0``, else ``alpha * x``.

    Computed in float64 and cast back to ``x``'s dtype, so it is exact to the
    last bit of the result dtype. IEEE arithmetic applies on the negative side:
    ``alpha * -inf`` is ``-inf`` for ``alpha > 0``, ``+inf`` for ``alpha < 0``
    and NaN for ``alpha == 0``, and ``alpha * -0.0`` keeps IEEE's sign.

    Args:
        x: Array-like of floats (a bfloat16 array from ``ml_dtypes`` works).
        alpha: Array-like that broadcasts to ``x``.

    Returns:
        A NumPy array of ``x``'s dtype and shape.
    """
    x = np.asarray(x)
    wide = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        out = np.where(wide > 0, wide, np.asarray(alpha, dtype=np.float64) * wide)
    return np.broadcast_to(out, x.shape).astype(x.dtype)

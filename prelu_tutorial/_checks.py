"""The TensorFlow argument checks and dtype rules that several modules share, written once.

Private to the package: each public function still names its own argument in
its own message, through the ``owner`` and ``name`` these helpers take. The
integer and real-number checks, which need no TensorFlow, are in
:mod:`prelu_tutorial._number_checks`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "FLOAT_DTYPES",
    "check_prelu_types",
    "quiet_logger",
    "to_tensor",
    "wide_dtype",
]

FLOAT_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)
"""The dtypes PReLU computes in: every floating dtype TensorFlow's CPU kernels take."""


def wide_dtype(*dtypes: tf.DType) -> tf.DType:
    """The dtype a product or a sum of these dtypes is taken in: float64 if one is, else float32.

    16-bit inputs are widened so that a product rounds once and a sum over a
    large feature map does not overflow; float64 is never narrowed.

    Args:
        *dtypes: Floating dtypes.

    Returns:
        ``tf.float64`` if any of ``dtypes`` is, else ``tf.float32``.
    """
    return tf.float64 if tf.float64 in dtypes else tf.float32


def to_tensor(value: Any, dtype_hint: tf.DType | None = None) -> tf.Tensor:
    """``tf.convert_to_tensor``, except that a Python float keeps the sign of its zero.

    TensorFlow's eager runtime caches the tensors it makes from Python
    scalars, keyed by value, and ``-0.0 == 0.0``: once ``-0.0`` has been
    converted, a later ``0.0`` of the same dtype comes back as ``-0.0`` (and
    the other way round), so ``prelu(x, 0.0)`` could compute with
    ``alpha = -0.0``. A Python float goes through NumPy instead, into the
    dtype TensorFlow would have chosen for it.

    Args:
        value: Anything ``tf.convert_to_tensor`` accepts.
        dtype_hint: The dtype to prefer when ``value`` has none of its own.

    Returns:
        The tensor.
    """
    if isinstance(value, float):
        dtype = tf.convert_to_tensor(value, dtype_hint=dtype_hint).dtype
        return tf.convert_to_tensor(np.asarray(value, dtype.as_numpy_dtype))
    return tf.convert_to_tensor(value, dtype_hint=dtype_hint)


@contextlib.contextmanager
def quiet_logger(name: str | None = None, level: int = logging.ERROR) -> Iterator[None]:
    """Raises a logger's level for the block and restores it after.

    Args:
        name: The logger's name; ``None`` is TensorFlow's logger.
        level: The lowest level that still gets through.

    Yields:
        Nothing.
    """
    logger = tf.get_logger() if name is None else logging.getLogger(name)
    previous = logger.level
    logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(previous)


def _is_ml_float(dtype: np.dtype) -> bool:
    """Whether a NumPy dtype is one of ml_dtypes' floats (bfloat16), which NumPy calls kind V."""
    try:
        return tf.as_dtype(dtype).is_floating
    except TypeError:
        return False


def _holds_a_bool(values: list | tuple) -> bool:
    """Whether a (nested) list or tuple holds a Python or NumPy bool anywhere."""
    for value in values:
        if isinstance(value, (bool, np.bool_)):
            return True
        if isinstance(value, (list, tuple)) and _holds_a_bool(value):
            return True
        if isinstance(value, np.ndarray) and value.dtype == np.bool_:
            return True
    return False


def check_prelu_types(x: Any, alpha: Any, caller: str = "prelu") -> None:
    """The type checks of a PReLU's arguments, shared by every implementation.

    Args:
        x: The input, before conversion.
        alpha: The slope, before conversion.
        caller: The function named in the messages.

    Raises:
        TypeError: If either is ragged or sparse or holds a bool anywhere (a
            nested list included: NumPy would make it 1.0 silently), or
            ``alpha`` is ``None`` or not real (complex, string).
    """
    for name, value in (("x", x), ("alpha", alpha)):
        if isinstance(value, (list, tuple)) and _holds_a_bool(value):
            raise TypeError(
                f"{caller}: {name} must hold real numbers, got a bool in {name}={value!r}."
            )
        if isinstance(value, (tf.RaggedTensor, tf.SparseTensor)):
            raise TypeError(
                f"{caller}: {name} must be a dense tensor, got a {type(value).__name__}. "
                "Apply prelu to its values, e.g. tf.ragged.map_flat_values(pt.prelu, x, alpha) "
                "with a scalar alpha."
            )
    if alpha is None:
        raise TypeError(f"{caller}: alpha must be a real number or tensor, got None.")
    if tf.is_tensor(alpha) or isinstance(alpha, tf.Variable):
        alpha_dtype = tf.as_dtype(alpha.dtype)
        if not (alpha_dtype.is_floating or alpha_dtype.is_integer):
            raise TypeError(
                f"{caller}: alpha must be a real number or tensor, got dtype {alpha_dtype.name}."
            )
        return
    # NumPy bools (np.bool_ and bool arrays), complex numbers and strings would
    # convert silently (to 1.0 and 0.0, the real part) or fail deep in TensorFlow.
    numpy_dtype = np.asarray(alpha).dtype
    if numpy_dtype.kind not in "iuf" and not _is_ml_float(numpy_dtype):
        raise TypeError(
            f"{caller}: alpha must be a real number or tensor, got {alpha!r} "
            f"of dtype {numpy_dtype.name}."
        )

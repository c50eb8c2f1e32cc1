"""Loading the PReLU op, its gradients, and the function that calls it.

The first call of :func:`load_library` (or of :func:`prelu`) builds the C++
library if the cache does not hold it yet (see :mod:`.build`), loads it with
``tf.load_op_library`` and registers the gradients of both ops, so that
first- and second-order derivatives work. Importing this module builds
nothing.
"""

from __future__ import annotations

import contextlib
import re
import threading
from types import ModuleType

import tensorflow as tf

from prelu_tutorial._checks import FLOAT_DTYPES, check_prelu_types, to_tensor, wide_dtype
from prelu_tutorial.custom_op import build as _build

__all__ = ["load_library", "prelu"]

_lock = threading.Lock()
_library: ModuleType | None = None
_FLOAT_DTYPE_SET = frozenset(FLOAT_DTYPES)


def _sum_to_alpha(values: tf.Tensor, x: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """Sums ``values`` (x's shape) over the axes that ``alpha`` is broadcast along."""
    _, axes = tf.raw_ops.BroadcastGradientArgs(s0=tf.shape(x), s1=tf.shape(alpha))
    return tf.reshape(tf.reduce_sum(values, axes), tf.shape(alpha))


def _prelu_gradient(op: tf.Operation, upstream: tf.Tensor) -> list[tf.Tensor]:
    """Gradient of PreluTutorial>Prelu: dx and dalpha in one PreluGrad pass."""
    x, alpha = op.inputs
    return list(_library.prelu_tutorial_prelu_grad(upstream, x, alpha))


def _prelu_grad_gradient(
    op: tf.Operation, grad_dx: tf.Tensor, grad_dalpha: tf.Tensor
) -> list[tf.Tensor]:
    """Gradient of PreluGrad (dx, dalpha) with respect to (dy, x, alpha).

    ``dx = dy if x > 0 else alpha * dy`` is linear in ``dy`` and
    ``alpha`` and flat in ``x``; ``dalpha = sum(dy * min(x, 0))`` is
    linear in ``dy`` and has slope ``dy`` in ``x`` where ``x <= 0``. Products
    are taken in the wide dtype and rounded once, as the kernels do.
    """
    dy, x, alpha = op.inputs
    wide = wide_dtype(x.dtype, alpha.dtype)
    positive = x > 0
    zeros = tf.zeros_like(x)
    # dalpha's gradient has alpha's shape; broadcasting spreads it over x.
    spread = tf.cast(grad_dalpha, wide)
    grad_dy = _library.prelu_tutorial_prelu_grad(grad_dx, x, alpha)[0]
    grad_dy += tf.where(positive, zeros, tf.cast(spread * tf.cast(x, wide), x.dtype))
    grad_x = tf.where(positive, zeros, tf.cast(spread * tf.cast(dy, wide), x.dtype))
    products = tf.cast(grad_dx, wide) * tf.cast(dy, wide)
    terms = tf.where(positive, tf.zeros_like(products), products)
    grad_alpha = tf.cast(_sum_to_alpha(terms, x, alpha), alpha.dtype)
    return [grad_dy, grad_x, grad_alpha]


def load_library() -> ModuleType:
    """Builds the op if needed, loads it, and registers its gradients (once per process).

    Safe to call from several threads at once.

    Returns:
        The module ``tf.load_op_library`` returns, with the Python wrappers
        ``prelu_tutorial_prelu(x, alpha)`` and
        ``prelu_tutorial_prelu_grad(dy, x, alpha)`` that TensorFlow generates
        for the ops ``PreluTutorial>Prelu`` and ``PreluTutorial>PreluGrad``.

    Raises:
        CompilerNotFoundError: If the library must be built and no C++
            compiler is installed.
        RuntimeError: If the build fails, or the library does not load even
            when built anew (see :func:`.build.load`).
    """
    global _library
    with _lock:
        if _library is None:
            library = _build.load()
            for op_type, function in (
                ("PreluTutorial>Prelu", _prelu_gradient),
                ("PreluTutorial>PreluGrad", _prelu_grad_gradient),
            ):
                # A second import of this module (importlib.reload) finds the
                # gradient already registered in this process.
                with contextlib.suppress(KeyError):
                    tf.RegisterGradient(op_type)(function)
            _library = library
    return _library


def prelu(x, alpha) -> tf.Tensor:
    """Parametric ReLU computed by the C++ op: ``x`` where ``x > 0``, else ``alpha * x``.

    The same values as :func:`prelu_tutorial.prelu`, bit for bit: the
    product ``alpha * x`` is taken in float32 (float64 if ``x`` or ``alpha``
    is) and rounded once to ``x``'s dtype, NaN stays NaN, ``-0.0`` becomes
    ``alpha * -0.0``. The same gradients (``alpha`` in ``x`` and ``0`` in
    ``alpha`` at ``x = 0``); the gradient of ``alpha`` is summed in float32
    (float64 if either input is), returned in alpha's dtype, and has the
    same bits on any number of threads. It runs on the CPU only, and cannot
    be compiled by XLA (``jit_compile=True``; a model of
    ``pt.PReLU(implementation="custom_op")`` layers trains without XLA
    instead) or converted to TFLite; ``pt.export.to_tflite`` exports such a
    layer through :func:`prelu_tutorial.prelu` instead (the same values).
    The first call builds and loads the library (tens of seconds: a
    compile of about 20 CPU-seconds with g++ 12).

    Args:
        x: Floating tensor (float16, bfloat16, float32 or float64).
        alpha: Number, array or tensor whose shape broadcasts to ``x``'s, on
            any axes (every layout of :class:`prelu_tutorial.PReLU`, shared
            axes next to each other or not). A floating tensor, variable or
            array keeps its dtype (a float32 variable under
            ``mixed_float16``); a Python number takes ``x``'s dtype, an
            integer is cast to it.

    Returns:
        A tensor with ``x``'s dtype and shape.

    Raises:
        TypeError: If ``x`` is not a floating tensor of those dtypes, either is
            ragged or sparse or holds a bool, or ``alpha`` is ``None`` or not
            real (complex, string).
        ValueError: If alpha's shape does not fit (when the shapes are static;
            otherwise ``tf.errors.InvalidArgumentError`` at run time, naming
            both shapes).
    """
    if (
        isinstance(x, tf.Tensor)
        and isinstance(alpha, (tf.Tensor, tf.Variable))
        and x.dtype in _FLOAT_DTYPE_SET
        and alpha.dtype in _FLOAT_DTYPE_SET
    ):
        # The common call, a layer's (a dense floating tensor and a floating
        # variable), passes every check below: skip them, since in eager code
        # their Python costs about as much as the kernel on a small tensor.
        return _call(_library or load_library(), x, alpha)
    check_prelu_types(x, alpha, "custom_op.prelu")
    x = to_tensor(x)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"custom_op.prelu: x must be float16, bfloat16, float32 or float64, got dtype "
            f"{x.dtype.name}."
        )
    library = _library or load_library()
    if not tf.is_tensor(alpha) and not isinstance(alpha, tf.Variable):
        alpha = to_tensor(alpha, dtype_hint=x.dtype)
    # A floating alpha keeps its dtype (a float32 variable behind a float16
    # x under mixed precision): the kernels take the product in the wider
    # dtype and return dalpha in alpha's. Others are cast, as by pt.prelu.
    alpha = tf.convert_to_tensor(alpha)
    if alpha.dtype not in FLOAT_DTYPES:
        alpha = tf.cast(alpha, x.dtype)
    return _call(library, x, alpha)


def _call(library: ModuleType, x: tf.Tensor, alpha: tf.Tensor | tf.Variable) -> tf.Tensor:
    """The op on checked arguments; an eager shape error becomes the kernel's ``ValueError``."""
    try:
        return library.prelu_tutorial_prelu(x, alpha)
    except tf.errors.InvalidArgumentError as error:
        if not tf.executing_eagerly():
            raise
        # The kernel's own sentence, without the eager runtime's node names.
        match = re.search(r"PReLU: .*?(?= \[Op:|$)", error.message)
        raise ValueError(match[0] if match else error.message) from None

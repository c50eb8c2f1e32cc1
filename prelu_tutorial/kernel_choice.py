"""Which kernels ``pt.PReLU()`` runs where: the rule of ``implementation="auto"``.

Both implementations compute one semantics (:func:`prelu_tutorial.prelu`'s
docstring): the same output and ``dx``, and ``dalpha`` up to the order of
its sum. They differ in where they can run and what they cost, so the
default layer picks per call, by the table in the docstring of
:class:`prelu_tutorial.PReLU` (argument ``implementation``), which
:func:`choose` implements: the C++ op eagerly and in training steps on a
CPU; the XLA kernels on a GPU, in traces for XLA and in every other graph,
since those are the ones that get saved and converted.

``custom_op`` needs a C++ compiler the first time (the build takes about 20
CPU-seconds and is cached per machine, see :mod:`prelu_tutorial.custom_op`);
where it cannot be built the layer warns once and runs ``xla``.
``python -m prelu_tutorial.benchmark --model`` measures both on a small CNN.
"""

from __future__ import annotations

import functools
import threading
import warnings

import tensorflow as tf

# TensorFlow has no public way to ask whether a trace is for XLA; its own ops
# (e.g. tf.image) ask this function.
from tensorflow.python.ops import control_flow_util

__all__ = ["choose", "custom_op_ready", "gpu_visible", "in_xla_trace"]

_lock = threading.Lock()
_custom_op_state: dict[str, bool] = {}


def in_xla_trace() -> bool:
    """Whether the current trace is compiled by XLA (``jit_compile=True``).

    Returns:
        ``True`` inside a ``tf.function(jit_compile=True)`` (Keras compiles
        its step so when ``jit_compile=True``), at any depth; ``False``
        eagerly and in a plain ``tf.function``.
    """
    if tf.executing_eagerly():
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


@functools.cache
def gpu_visible() -> bool:
    """Whether TensorFlow sees a GPU (read once: devices cannot change later).

    Returns:
        ``True`` if ``tf.config.list_logical_devices("GPU")`` is not empty.
    """
    return bool(tf.config.list_logical_devices("GPU"))


def custom_op_ready() -> bool:
    """Whether the C++ op is loaded, building it on the first call if needed.

    A failed build (no compiler, a compiler error) is reported once as a
    ``RuntimeWarning`` that names the remedy, and not tried again in this
    process.

    Returns:
        ``True`` if :func:`prelu_tutorial.custom_op.load_library` succeeded.
    """
    with _lock:
        if "ready" not in _custom_op_state:
            # Imported here, not at the top: `import prelu_tutorial` must not
            # load the C++ op's module (its users alone pay for it).
            from prelu_tutorial import custom_op

            try:
                custom_op.load_library()
            except RuntimeError as error:  # CompilerNotFoundError is one
                warnings.warn(
                    "pt.PReLU(implementation='auto') runs its XLA kernels: the C++ op could "
                    f"not be built ({error}). Install a C++ compiler (g++) for the faster "
                    "kernels, or pass implementation='xla' to silence this.",
                    RuntimeWarning,
                    stacklevel=4,
                )
                _custom_op_state["ready"] = False
            else:
                _custom_op_state["ready"] = True
        return _custom_op_state["ready"]


def choose(training: bool | None) -> str:
    """The implementation ``"auto"`` runs for a call in the current context.

    Args:
        training: The ``training`` argument the layer's call got (Keras
            passes ``True`` in a training step).

    Returns:
        ``"xla"`` or ``"custom_op"``, by the table of this module.
    """
    if gpu_visible() or in_xla_trace():
        return "xla"
    if not tf.executing_eagerly() and training is not True:
        return "xla"
    return "custom_op" if custom_op_ready() else "xla"

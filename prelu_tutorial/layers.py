"""The PReLU Keras layer, on :func:`prelu_tutorial.prelu` or the C++ op of :mod:`.custom_op`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import keras
import numpy as np

from prelu_tutorial import kernel_choice, xla
from prelu_tutorial._number_checks import is_integer

__all__ = ["IMPLEMENTATIONS", "PReLU", "from_keras", "to_keras"]

IMPLEMENTATIONS = ("auto", "xla", "custom_op")
"""The values of ``PReLU(implementation=...)``; ``"auto"`` picks one of the others per call."""


def _normalized_axes(shared_axes: Any) -> tuple[int, ...] | None:
    """``shared_axes`` as a tuple of Python ints (NumPy integers accepted), or ``None``."""
    if shared_axes is None:
        return None
    if isinstance(shared_axes, np.ndarray) and shared_axes.ndim == 0:
        # A 0-d array is one value, not a sequence (iterating it raises).
        shared_axes = shared_axes[()]
    if is_integer(shared_axes):
        return (int(shared_axes),)
    if isinstance(shared_axes, (str, bytes)) or not isinstance(shared_axes, Iterable):
        raise ValueError(
            "PReLU: shared_axes must be None, an integer or a sequence of integers, "
            f"got shared_axes={shared_axes!r}."
        )
    axes = list(shared_axes)
    for axis in axes:
        if not is_integer(axis):
            raise ValueError(
                f"PReLU: shared_axes must hold integers, got {axis!r} "
                f"in shared_axes={shared_axes!r}."
            )
    return tuple(int(axis) for axis in axes)


@keras.saving.register_keras_serializable(package="prelu_tutorial")
class PReLU(keras.layers.Layer):
    """Parametric Rectified Linear Unit (He et al., 2015).

    ``f(x) = x`` for ``x > 0`` and ``f(x) = alpha * x`` otherwise, where
    ``alpha`` is a learned weight of the same rank as one sample (rank of the
    input minus one), with size 1 on every shared axis.

    By default alpha is *channel-wise*, as in the paper: one alpha per channel,
    shared over the batch and every spatial axis, initialised at 0.25. So it
    works on inputs with unknown spatial sizes, e.g. ``Input((None, None, 3))``.
    ``keras.layers.PReLU`` instead defaults to one alpha per element,
    initialised at 0; give the same arguments explicitly and this layer is a
    drop-in for it, with the same weight shape. Unlike Keras, a negative
    shared axis counts from the end, and under mixed precision alpha (kept in
    float32) gets its gradient summed in float32: Keras casts alpha to float16
    first, so a large feature map overflows its alpha gradient to ``-inf``.

    Args:
        alpha_initializer: Initializer for alpha (an instance or an identifier
            such as ``"zeros"``). Defaults to ``Constant(0.25)``.
        alpha_regularizer: Regularizer for alpha (an instance or an identifier
            such as ``"L1"``). The paper uses none: weight decay pulls alpha
            to 0, towards a plain ReLU.
        alpha_constraint: Constraint for alpha (an instance or an identifier
            such as ``"non_neg"`` or ``"MaxNorm"``).
        shared_axes: Axes along which alpha is shared, counting the batch as
            axis 0; an int, a sequence of ints (NumPy integers too), or
            ``None``. Negative axes count from the end (``-1`` is the last
            axis). ``None`` shares every axis but the channel axis; ``()``
            shares none (one alpha per element, Keras' default).
        data_format: ``"channels_last"`` (default) or ``"channels_first"``:
            where the channel axis is when ``shared_axes`` is ``None``.
        implementation: Which kernels compute the layer; every choice gives
            the same values (output and ``dx`` bit for bit, ``dalpha`` up to
            the order of its sum). ``"xla"``: :func:`prelu_tutorial.prelu`
            everywhere, XLA kernels compiled per input shape. ``"custom_op"``:
            the C++ op of :mod:`prelu_tutorial.custom_op` everywhere (CPU
            only, built on first use); the layer then sets ``supports_jit =
            False``, so a model compiled with ``jit_compile=True`` trains
            without XLA, and a SavedModel holds the op and loads only where
            its library is loaded. ``"auto"`` (default) picks per call:

            ==============================================  =============
            context of the call                             kernels
            ==============================================  =============
            eager on a CPU (``model(x)``, a GradientTape)   ``custom_op``
            a training step on a CPU (``fit``,              ``custom_op``
            ``train_on_batch``, a ``tf.function`` calling
            the layer with ``training=True``)
            any other graph (``predict``, ``evaluate``,     ``xla``
            ``model.export``, a ``tf.function`` without
            ``training=True``), so that what is saved or
            converted holds only TensorFlow's own ops
            traced for XLA (``jit_compile=True``, Keras'    ``xla``
            default on a GPU): XLA cannot compile the op
            a GPU is visible: the op has CPU kernels only   ``xla``
            the C++ op cannot be built (no compiler):       ``xla``
            a warning says so once
            ==============================================  =============

            On a 2-core CPU the C++ op was the fastest in every part of
            ``python -m prelu_tutorial.benchmark --model``; the GPU rows
            are chosen because the op cannot run there, not measured.
            The exporters of :mod:`prelu_tutorial.export` trace every layer
            through :func:`prelu_tutorial.prelu`, whatever it names.
        **kwargs: Base layer arguments (``name``, ``dtype``, ...).

    Raises:
        ValueError: If ``data_format`` or ``implementation`` is unknown, ``shared_axes`` is not
            ``None``, an integer or a sequence of integers (here); if a shared
            axis is the batch axis or out of range for the input, or an axis
            that keeps its own alphas has an unknown size (at build time); or
            if a later input has another rank or another size on an axis that
            keeps its own alphas (when called).
    """

    def __init__(
        self,
        alpha_initializer: Any = None,
        alpha_regularizer: Any = None,
        alpha_constraint: Any = None,
        shared_axes: int | Iterable[int] | None = None,
        data_format: str = "channels_last",
        implementation: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True
        if alpha_initializer is None:
            alpha_initializer = keras.initializers.Constant(0.25)
        self.alpha_initializer = keras.initializers.get(alpha_initializer)
        self.alpha_regularizer = keras.regularizers.get(alpha_regularizer)
        self.alpha_constraint = keras.constraints.get(alpha_constraint)
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                "PReLU: data_format must be 'channels_last' or 'channels_first', "
                f"got {data_format!r}."
            )
        self.data_format = data_format
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"PReLU: implementation must be one of {list(IMPLEMENTATIONS)}, "
                f"got {implementation!r}."
            )
        self.implementation = implementation
        # XLA has no kernel for the C++ op: Keras then trains a model of such
        # layers without XLA when asked for jit_compile=True (with a warning)
        # instead of failing inside the compiler.
        self.supports_jit = implementation != "custom_op"
        self.shared_axes = _normalized_axes(shared_axes)

    def _alpha_shape(self, input_shape: tuple) -> tuple[int, ...]:
        """The shape of alpha for an input shape (batch axis included)."""
        rank = len(input_shape)
        if rank < 1:
            raise ValueError("PReLU: the input needs at least a batch axis, got a scalar.")
        if self.shared_axes is None:
            channel_axis = 1 if self.data_format == "channels_first" else rank - 1
            shared = {axis for axis in range(1, rank) if axis != channel_axis}
        else:
            shared = set()
            for axis in self.shared_axes:
                positive = axis + rank if axis < 0 else axis
                if not 0 < positive < rank:
                    reason = "is the batch axis" if positive == 0 else "is out of range"
                    raise ValueError(
                        f"PReLU: shared axis {axis} {reason} for an input of rank {rank} "
                        f"(shape {tuple(input_shape)}); use axes 1..{rank - 1} "
                        f"or -{rank - 1}..-1."
                    )
                shared.add(positive)
        shape = []
        for axis in range(1, rank):
            if axis in shared:
                shape.append(1)
            elif input_shape[axis] is None:
                raise ValueError(
                    f"PReLU: axis {axis} of the input (shape {tuple(input_shape)}) has an "
                    "unknown size but keeps its own alphas; add it to shared_axes."
                )
            else:
                shape.append(int(input_shape[axis]))
        return tuple(shape)

    def build(self, input_shape: tuple) -> None:
        input_shape = tuple(input_shape)
        alpha_shape = self._alpha_shape(input_shape)
        # Not autocast: under mixed precision the kernels get the float32
        # variable itself and returns its gradient summed and kept in float32
        # (Keras' autocast would cast it to float16 first, and the gradient
        # would come back through that cast, already summed in float16).
        self.alpha = self.add_weight(
            shape=alpha_shape,
            name="alpha",
            initializer=self.alpha_initializer,
            regularizer=self.alpha_regularizer,
            constraint=self.alpha_constraint,
            autocast=False,
        )
        # An input of another rank, or another size on an axis with its own
        # alphas, would broadcast against alpha instead of failing.
        kept = {
            axis: size
            for axis, size in enumerate(input_shape[1:], start=1)
            if alpha_shape[axis - 1] != 1
        }
        self.input_spec = keras.InputSpec(ndim=len(input_shape), axes=kept)

    def call(self, inputs, training=None):
        implementation = self.implementation
        if implementation == "auto":
            implementation = kernel_choice.choose(training)
        if implementation == "custom_op":
            # Imported here, not at the top, so that `import prelu_tutorial` does not load the
            # C++ op's module; the op is built on its first call, a cost only its users pay.
            from prelu_tutorial import custom_op

            return custom_op.prelu(inputs, self.alpha)
        return xla.prelu(inputs, self.alpha)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "alpha_initializer": keras.initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": keras.regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": keras.constraints.serialize(self.alpha_constraint),
                "shared_axes": None if self.shared_axes is None else list(self.shared_axes),
                "data_format": self.data_format,
                "implementation": self.implementation,
            }
        )
        return config


# Converting whole models to and from keras.layers.PReLU ------------------------------------------


def _positive_shared_axes(layer: PReLU) -> list[int]:
    """The shared axes of a built :class:`PReLU`, positive, as ``keras.layers.PReLU`` reads them."""
    rank = len(layer.alpha.shape) + 1
    if layer.shared_axes is None:
        channel_axis = 1 if layer.data_format == "channels_first" else rank - 1
        return [axis for axis in range(1, rank) if axis != channel_axis]
    return sorted({axis + rank if axis < 0 else axis for axis in layer.shared_axes})


def _functional_clone(model: keras.Model, swap: Callable[[Any], Any], caller: str) -> keras.Model:
    """``model`` rebuilt layer by layer with ``swap`` applied, carrying every weight over."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{caller}: model must be a keras.Model, got {type(model).__name__}.")
    if not model.built:
        raise ValueError(f"{caller}: build the model first (call it, or give it a keras.Input).")
    try:
        clone = keras.models.clone_model(model, clone_function=swap)
    except ValueError as error:
        if "Sequential" not in str(error) and "Functional" not in str(error):
            raise
        raise ValueError(
            f"{caller}: only Sequential and functional models can be rebuilt layer by layer; "
            f"{type(model).__name__} is a subclassed model. Rebuild it with the layer you want."
        ) from None
    clone.set_weights(model.get_weights())
    return clone


def to_keras(model: keras.Model) -> keras.Model:
    """The same model with every :class:`PReLU` replaced by ``keras.layers.PReLU``.

    Each Keras layer carries the same alphas (same shape and values), the
    same initializer, regularizer and constraint, and the shared axes made
    explicit and positive (Keras counts a negative axis differently). The
    result loads wherever Keras does, without ``prelu_tutorial``.

    Args:
        model: A built Sequential or functional Keras model.

    Returns:
        A new model; ``model`` is left as it is.

    Raises:
        TypeError: If ``model`` is not a Keras model.
        ValueError: If it is subclassed or not built.
    """

    def swap(layer: Any) -> Any:
        if not isinstance(layer, PReLU):
            return layer.__class__.from_config(layer.get_config())
        return keras.layers.PReLU(
            alpha_initializer=layer.alpha_initializer,
            alpha_regularizer=layer.alpha_regularizer,
            alpha_constraint=layer.alpha_constraint,
            shared_axes=_positive_shared_axes(layer) or None,
            name=layer.name,
            dtype=layer.dtype_policy,
        )

    return _functional_clone(model, swap, "to_keras")


def from_keras(model: keras.Model, implementation: str = "auto") -> keras.Model:
    """The same model with every ``keras.layers.PReLU`` replaced by :class:`PReLU`.

    Each layer keeps its alphas, initializer, regularizer, constraint and
    shared axes (Keras' ``None``, one alpha per element, becomes ``()``).

    Args:
        model: A built Sequential or functional Keras model.
        implementation: The new layers' ``implementation``.

    Returns:
        A new model; ``model`` is left as it is.

    Raises:
        TypeError: If ``model`` is not a Keras model.
        ValueError: If it is subclassed or not built, or a Keras layer has a
            negative shared axis (Keras reads it as an index into alpha's
            shape, which is not the input's axis it names).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"from_keras: implementation must be one of {list(IMPLEMENTATIONS)}, "
            f"got {implementation!r}."
        )

    def swap(layer: Any) -> Any:
        if type(layer) is not keras.layers.PReLU:
            return layer.__class__.from_config(layer.get_config())
        axes = list(layer.shared_axes or ())
        if any(axis < 1 for axis in axes):
            raise ValueError(
                f"from_keras: layer {layer.name!r} has shared_axes={layer.shared_axes}; "
                "give keras.layers.PReLU positive axes (1 is the first after the batch)."
            )
        return PReLU(
            alpha_initializer=layer.alpha_initializer,
            alpha_regularizer=layer.alpha_regularizer,
            alpha_constraint=layer.alpha_constraint,
            shared_axes=axes,
            implementation=implementation,
            name=layer.name,
            dtype=layer.dtype_policy,
        )

    return _functional_clone(model, swap, "from_keras")

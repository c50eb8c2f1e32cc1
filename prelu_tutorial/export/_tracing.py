"""Tracing a Keras model with its PReLU layers computing what an exporter asks for.

Both exporters trace the model once into a TensorFlow graph, and both need
each PReLU layer to appear in that graph in a form their converter can map:
TFLite fuses :func:`prelu_tutorial.prelu` into its ``PRELU`` op (but has no
kernel for the C++ op of ``implementation="custom_op"``); the ONNX export
needs one node per layer call that it can find and replace by ``PRelu``.
:func:`calls_replaced` is the one way to get either: for the duration of a
``with`` block, each given layer's ``call`` is shadowed by an instance
attribute that computes the exporter's replacement, in a name scope that
numbers the call, in the thread that exports. Nothing global changes:
other layers, other models and other threads calling the same layers are
unaffected, and the layers compute as before once the block ends.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import keras
import tensorflow as tf

from prelu_tutorial import layers

__all__ = ["CALL_SCOPE", "PRELU_LAYERS", "calls_replaced", "model_function", "prelu_layers"]

PRELU_LAYERS = (layers.PReLU, keras.layers.PReLU)
"""The layer classes the exporters treat as a PReLU."""

CALL_SCOPE = "prelu_tutorial_call_"
"""The name scope each replaced layer call is traced in, followed by its index."""

Replacement = Callable[[keras.layers.Layer, tf.Tensor, int], tf.Tensor]


def prelu_layers(
    model: keras.Model, caller: str, classes: tuple[type, ...] = PRELU_LAYERS
) -> list[keras.layers.Layer]:
    """Every PReLU layer in the model, nested models and wrapped layers included.

    Args:
        model: A Keras model.
        caller: The exporter's name, for the error message.
        classes: The layer classes to collect.

    Returns:
        The layers, each once, in Keras' order.

    Raises:
        ValueError: If one of them is not built (it has no alpha yet).
    """
    # Keras has no public walk over nested layers; _flatten_layers is what Model.layers uses.
    found = [
        layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, classes)
    ]
    for layer in found:
        if not layer.built:
            raise ValueError(
                f"{caller}: PReLU layer {layer.name!r} is not built (it has no alpha yet); "
                "call the model on its input first."
            )
    return found


@contextlib.contextmanager
def calls_replaced(
    targets: list[keras.layers.Layer], replacement: Replacement
) -> Iterator[list[str]]:
    """Inside this block each layer's call computes ``replacement(layer, inputs, index)``.

    ``index`` counts the calls from 0 in the order they are traced (a layer
    called twice, or wrapped in ``TimeDistributed``, is called more than
    once); call ``index`` runs in the name scope ``CALL_SCOPE + str(index)``,
    so every node it makes carries that number in its name.

    Args:
        targets: The layers to replace (from :func:`prelu_layers`).
        replacement: What a call computes instead; it gets the layer, the
            call's input tensor and the call's index.

    Yields:
        The list that receives the name of the layer behind each call, in
        call order.
    """
    calls: list[str] = []
    exporting_thread = threading.get_ident()

    def replaced_call(layer: keras.layers.Layer) -> Callable[..., tf.Tensor]:
        def call(inputs: tf.Tensor, *args: Any, **kwargs: Any) -> tf.Tensor:
            if threading.get_ident() != exporting_thread:
                # Another thread running the model meanwhile gets the layer's own call.
                return type(layer).call(layer, inputs, *args, **kwargs)
            index = len(calls)
            calls.append(layer.name)
            with tf.name_scope(f"{CALL_SCOPE}{index}"):
                return replacement(layer, inputs, index)

        return call

    try:
        for layer in targets:
            # An instance attribute shadows the class's call for this layer only.
            vars(layer)["call"] = replaced_call(layer)
        yield calls
    finally:
        for layer in targets:
            vars(layer).pop("call", None)


def model_function(model: keras.Model) -> tf.types.experimental.PolymorphicFunction:
    """The model's inference pass as a ``tf.function`` (``training=False``), not yet traced."""
    return tf.function(lambda x: model(x, training=False))

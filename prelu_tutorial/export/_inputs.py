"""The one input an exported model takes: read from the model, checked against ``x``.

Both formats need the same two checks: before converting, which input the
model takes (:func:`input_spec`); before running, whether ``x`` fits the
input the converted model declares (:func:`check_fits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

__all__ = ["check_fits", "input_spec"]


def input_spec(model: Any, caller: str, example: str) -> tf.TensorSpec:
    """The one input a convertible model takes, as a ``tf.TensorSpec``.

    Args:
        model: A Keras model or a ``tf.function`` with an input signature.
        caller: The exporter's name, for the error messages.
        example: The shape the message's example signature shows.

    Returns:
        The input's spec (its shape may hold ``None`` sizes, or have an
        unknown rank for a ``tf.function`` that declares one).

    Raises:
        ValueError: If the model does not take exactly one defined input.
    """
    if isinstance(model, keras.Model):
        try:
            inputs = model.inputs
        except (AttributeError, ValueError):  # Keras 3.0 raises ValueError
            inputs = None
        if not inputs:
            raise ValueError(
                f"{caller}: the model has no defined input; build it on keras.Input(...) "
                "(a functional model or a Sequential that starts with keras.Input)."
            )
        if len(inputs) != 1:
            raise ValueError(
                f"{caller}: the model must take exactly one input, it takes {len(inputs)}."
            )
        return tf.TensorSpec(inputs[0].shape, inputs[0].dtype)
    signature = getattr(model, "input_signature", None)
    if signature is None or len(signature) != 1:
        raise ValueError(
            f"{caller}: a tf.function needs an input_signature with exactly one "
            f"tf.TensorSpec, e.g. @tf.function(input_signature=[tf.TensorSpec([{example}])])."
        )
    return signature[0]


def check_fits(x_shape: tuple[int, ...], expected: Sequence[int | None], caller: str) -> None:
    """Raises if an input of shape ``x_shape`` does not fit the model's declared input.

    Args:
        x_shape: The shape of the array the caller was given.
        expected: The model's input shape, ``None`` for a size it leaves open.
        caller: The runner's name, for the error message.

    Raises:
        ValueError: If the ranks differ or a fixed size differs; the message
            shows both shapes.
    """
    expected = tuple(expected)
    if len(expected) != len(x_shape) or any(
        size is not None and size != actual for size, actual in zip(expected, x_shape, strict=True)
    ):
        raise ValueError(
            f"{caller}: x of shape {tuple(x_shape)} does not fit the model's input of shape "
            f"{expected}."
        )

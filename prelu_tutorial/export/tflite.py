"""Converting PReLU models to TensorFlow Lite and running them with LiteRT.

:func:`to_tflite` turns a Keras model (or a ``tf.function`` with a fixed input
signature) into a TFLite flatbuffer, optionally quantized; :func:`tflite_ops`
lists the ops the flatbuffer holds, which is how the book checks that a PReLU
became the single builtin ``PRELU`` op that NNAPI and the GPU delegate
accelerate; :func:`run_tflite` runs the flatbuffer with LiteRT
(``ai_edge_litert``), the interpreter that replaces ``tf.lite.Interpreter``.

Converting needs only TensorFlow; listing ops and running use LiteRT
(``ai-edge-litert``, one of the package's dependencies).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert import interpreter as litert
from ai_edge_litert import schema_py_generated as schema

from prelu_tutorial import layers, xla
from prelu_tutorial._checks import quiet_logger
from prelu_tutorial.export._inputs import check_fits, input_spec
from prelu_tutorial.export._tracing import calls_replaced, model_function, prelu_layers

__all__ = ["QUANTIZATIONS", "run_tflite", "tflite_ops", "to_tflite"]

QUANTIZATIONS = (None, "int8", "float16")
"""The values :func:`to_tflite` accepts for ``quantize``."""


def _representative_dataset(
    representative_data: Any, spec: tf.TensorSpec
) -> Iterator[list[np.ndarray]]:
    """Yields the calibration samples one at a time, each as a batch of one."""
    samples = np.asarray(representative_data, dtype=spec.dtype.as_numpy_dtype)
    for sample in samples:
        yield [sample[np.newaxis]]


def _check_representative_data(representative_data: Any, spec: tf.TensorSpec) -> None:
    """Raises if the calibration samples cannot feed the model's input.

    Runs before the converter sees them: a NaN makes it skip quantization
    silently (an all-NaN set gave a float32 model) and an infinity crashes
    the whole process (a segfault inside the converter).
    """
    samples = np.asarray(representative_data)
    if samples.dtype.kind not in "iuf":
        raise ValueError(
            "to_tflite: representative_data must be real numbers, got an array of "
            f"dtype {samples.dtype}."
        )
    sample_shape = tuple(spec.shape[1:])
    if (
        samples.ndim != len(sample_shape) + 1
        or len(samples) == 0
        or any(
            size is not None and size != actual
            for size, actual in zip(sample_shape, samples.shape[1:], strict=True)
        )
    ):
        raise ValueError(
            "to_tflite: representative_data must hold one or more samples of shape "
            f"{sample_shape} stacked on a first axis, got an array of shape {samples.shape}."
        )
    finite = np.isfinite(samples)
    if not finite.all():
        first = tuple(int(index) for index in np.argwhere(~finite)[0])
        raise ValueError(
            f"to_tflite: representative_data holds {int(np.isnan(samples).sum())} NaN and "
            f"{int(np.isinf(samples).sum())} infinite values (the first at index {first}); "
            "int8 calibration needs finite samples. Drop or clean those samples."
        )


def to_tflite(model: Any, quantize: str | None = None, representative_data: Any = None) -> bytes:
    """Converts a model to a TensorFlow Lite flatbuffer.

    The converter freezes the model's variables (PReLU's alpha included) into
    constants and then fuses op patterns it knows; only
    ``relu(x) + (-alpha) * relu(-x)`` with alpha of rank ``rank(x) - 1`` (the
    pattern ``keras.layers.PReLU`` writes) becomes the builtin ``PRELU`` op.
    Every :class:`prelu_tutorial.PReLU` layer of a Keras model is traced
    through :func:`prelu_tutorial.prelu`, which writes that pattern, whatever
    its ``implementation``: TFLite has no kernel for the C++ op of
    ``implementation="custom_op"``, and the values are the same.

    Args:
        model: A ``keras.Model`` with exactly one input (the batch axis may be
            ``None``), or a ``tf.function`` with an ``input_signature`` of one
            ``tf.TensorSpec``; variables it captures are frozen.
        quantize: ``None`` keeps float32. ``"float16"`` stores the weights in
            float16 (computation stays float32 on CPU). ``"int8"`` is full
            integer post-training quantization: weights and activations in
            int8, calibrated on ``representative_data``; the model still takes
            and returns float32 (a ``QUANTIZE`` op at the input and a
            ``DEQUANTIZE`` op at the output), and conversion fails if an op has
            no int8 kernel.
        representative_data: Calibration samples for ``quantize="int8"``, an
            array-like of shape ``[n, *input_shape[1:]]`` (a few hundred
            samples like the real inputs). Only used with ``"int8"``.

    Returns:
        The flatbuffer, as ``bytes`` (write it to a ``.tflite`` file as is).

    Raises:
        TypeError: If ``model`` is neither a Keras model nor a ``tf.function``.
        ValueError: If ``quantize`` is not one of ``None``, ``"int8"``,
            ``"float16"``; if ``representative_data`` is missing for ``"int8"``,
            given for another mode, does not match the input's shape, or holds
            NaN or infinite values (checked before conversion: an infinity
            crashes the converter); if the model does not take exactly one
            input; if the converter fails (the message is its first error
            line; its diagnostics on stderr are kept out of the output); or
            if ``"int8"`` gave a model without int8 tensors.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            f"to_tflite: quantize must be None, 'int8' or 'float16', got {quantize!r}."
        )
    if not isinstance(model, (keras.Model, tf.types.experimental.PolymorphicFunction)):
        raise TypeError(
            "to_tflite: model must be a keras.Model or a tf.function with an input_signature, "
            f"got {type(model).__name__}."
        )
    if quantize == "int8" and representative_data is None:
        raise ValueError(
            "to_tflite: quantize='int8' needs representative_data, a few hundred input "
            "samples to calibrate the int8 ranges."
        )
    if quantize != "int8" and representative_data is not None:
        raise ValueError(
            "to_tflite: representative_data is only used with quantize='int8', "
            f"got quantize={quantize!r}."
        )
    spec = input_spec(model, "to_tflite", "1, 8, 8, 3")
    if quantize == "int8":
        _check_representative_data(representative_data, spec)

    if isinstance(model, keras.Model):
        # Every pt.PReLU layer is traced through pt.prelu, which the converter
        # fuses: the default implementation computes it anyway, and TFLite has
        # no kernel for the C++ op of implementation="custom_op" (same values).
        # Tracing the model ourselves (instead of from_keras_model) also avoids
        # the SavedModel round trip, which prints a temporary path on stdout.
        targets = prelu_layers(model, "to_tflite", (layers.PReLU,))
        with calls_replaced(targets, _as_prelu):
            concrete = model_function(model).get_concrete_function(spec)
    else:
        concrete = model.get_concrete_function()
    # The converter freezes the variables it can reach from this object; a
    # Keras 3 model itself does not expose them that way (they would stay
    # resource variables, uninitialised in the interpreter).
    holder = tf.Module()
    holder.captured = list(concrete.variables)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: _representative_dataset(
            representative_data, spec
        )
    # The converter saves a temporary SavedModel and logs its path at INFO
    # level, which a notebook would show among the cell's outputs.
    try:
        with quiet_logger(level=logging.WARNING), _stderr_captured():
            blob = converter.convert()
    except Exception as error:  # the converter's errors are several classes
        raise ValueError(f"to_tflite: the converter failed: {_first_error_line(error)}") from None
    if quantize == "int8" and not _has_int8_tensors(blob):
        raise ValueError(
            "to_tflite: the converter returned a model without int8 tensors for "
            "quantize='int8'; check that representative_data looks like the real inputs."
        )
    return blob


def _as_prelu(layer: layers.PReLU, inputs: tf.Tensor, index: int) -> tf.Tensor:
    """A pt.PReLU layer's call as :func:`prelu_tutorial.prelu`, the form TFLite fuses."""
    return xla.prelu(inputs, layer.alpha)


@contextlib.contextmanager
def _stderr_captured() -> Iterator[None]:
    """Sends file descriptor 2 to a temporary file for the block.

    The converter's C++ code writes its diagnostics there (for one failed
    conversion, hundreds of KB of MLIR), which a notebook would show.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _first_error_line(error: Exception) -> str:
    """The first line of a converter error that says what went wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "error:" in line:
            return line[line.index("error:") + len("error:") :].strip()[:300]
    return (lines[0] if lines else type(error).__name__)[:300]


def _has_int8_tensors(blob: bytes) -> bool:
    """Whether the flatbuffer's main graph holds at least one int8 tensor."""
    graph = schema.Model.GetRootAs(blob, 0).Subgraphs(0)
    return any(
        graph.Tensors(index).Type() == schema.TensorType.INT8
        for index in range(graph.TensorsLength())
    )


def _check_blob(blob: Any, caller: str) -> None:
    if not isinstance(blob, (bytes, bytearray)):
        raise TypeError(
            f"{caller}: blob must be the bytes that to_tflite returns, got {type(blob).__name__}."
        )


def tflite_ops(blob: bytes) -> list[str]:
    """Lists the ops of a TFLite model's main graph, in execution order.

    Builtin ops have their schema names (``"PRELU"``, ``"MUL"``,
    ``"SELECT_V2"``, ...); a custom op has its custom code.

    Args:
        blob: A TFLite flatbuffer, as returned by :func:`to_tflite`.

    Returns:
        One name per op, e.g. ``["PRELU"]`` for a model that is one PReLU.

    Raises:
        TypeError: If ``blob`` is not ``bytes``.
        ValueError: If ``blob`` is not a TFLite model, or is truncated or corrupt.
    """
    _check_blob(blob, "tflite_ops")
    if not schema.Model.ModelBufferHasIdentifier(blob, 0):
        raise ValueError("tflite_ops: blob is not a TFLite flatbuffer (no 'TFL3' identifier).")
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if name.isupper()}
    try:
        model = schema.Model.GetRootAs(blob, 0)
        graph = model.Subgraphs(0)
        op_names = []
        for index in range(graph.OperatorsLength()):
            opcode = model.OperatorCodes(graph.Operators(index).OpcodeIndex())
            # Codes above 127 live in BuiltinCode; the old int8 field keeps 127 for them.
            code = max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode())
            if code == schema.BuiltinOperator.CUSTOM:
                op_names.append(opcode.CustomCode().decode())
            else:
                op_names.append(names[code])
    except (struct.error, AttributeError, IndexError, KeyError, UnicodeDecodeError) as error:
        # A truncated or corrupt buffer sends the flatbuffer reader out of bounds.
        raise ValueError(
            f"tflite_ops: blob is a truncated or corrupt TFLite model ({len(blob)} bytes): "
            f"{type(error).__name__}: {error}"
        ) from None
    return op_names


def run_tflite(blob: bytes, x: Any) -> np.ndarray:
    """Runs a one-input, one-output TFLite model with LiteRT's interpreter.

    Resizes the input to ``x``'s shape first, so a model converted with a
    ``None`` batch axis takes any batch size (and one converted with an
    unknown rank takes any shape its ops accept). If the model's input or output
    is integer (a model quantized with integer I/O), ``x`` is quantized and
    the result dequantized with the model's own scale and zero point.

    Args:
        blob: A TFLite flatbuffer, as returned by :func:`to_tflite`.
        x: The input, an array-like whose shape matches the model's input
            (any size on an axis the model left as ``None``).

    Returns:
        The output as a float32 NumPy array.

    Raises:
        TypeError: If ``blob`` is not ``bytes``.
        ValueError: If ``blob`` is not a TFLite model (or is truncated or
            corrupt), the model does not have exactly one input and one
            output, or ``x``'s shape does not fit the model's input.
    """
    _check_blob(blob, "run_tflite")
    if not schema.Model.ModelBufferHasIdentifier(blob, 0):
        raise ValueError("run_tflite: blob is not a TFLite flatbuffer (no 'TFL3' identifier).")
    try:
        interpreter = litert.Interpreter(model_content=bytes(blob))
    except (ValueError, RuntimeError) as error:
        raise ValueError(
            f"run_tflite: blob is a truncated or corrupt TFLite model: {error}"
        ) from None
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"run_tflite: the model must have one input and one output, it has "
            f"{len(inputs)} and {len(outputs)}."
        )
    (input_detail,) = inputs
    x = np.asarray(x, dtype=np.float32)
    expected = tuple(int(size) for size in input_detail["shape_signature"])
    # A model converted with an unknown rank (tf.TensorSpec(None)) stores an
    # empty shape, as a scalar input does: resizing tells them apart.
    unknown_rank = not expected and x.ndim > 0
    if not unknown_rank:
        check_fits(x.shape, [None if size == -1 else size for size in expected], "run_tflite")
    try:
        interpreter.resize_tensor_input(input_detail["index"], list(x.shape))
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ValueError(
            f"run_tflite: the model cannot take x of shape {x.shape}: {error}"
        ) from None
    input_dtype = input_detail["dtype"]
    if np.issubdtype(input_dtype, np.integer):
        scale, zero_point = input_detail["quantization"]
        info = np.iinfo(input_dtype)
        x = np.clip(np.round(x / scale) + zero_point, info.min, info.max)
    interpreter.set_tensor(input_detail["index"], x.astype(input_dtype))
    interpreter.invoke()
    (output_detail,) = interpreter.get_output_details()
    y = interpreter.get_tensor(output_detail["index"])
    if np.issubdtype(y.dtype, np.integer):
        scale, zero_point = output_detail["quantization"]
        y = (y.astype(np.float32) - zero_point) * scale
    return y.astype(np.float32)

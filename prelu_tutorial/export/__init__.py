"""Exporting PReLU models: TensorFlow Lite (run with LiteRT) and ONNX (run with ONNX Runtime).

``pt.export.to_tflite``, ``tflite_ops`` and ``run_tflite`` live in
:mod:`.tflite`; ``to_onnx``, ``onnx_ops`` and ``run_onnx`` in :mod:`.onnx`.
Both trace a Keras model the same way (:mod:`._tracing`: each PReLU layer
call computes what the format can map, for the duration of the export) and
check inputs the same way (:mod:`._inputs`). tf2onnx, onnx and onnxruntime
(the optional extra ``onnx``) are imported only when a function that needs
them is called.
"""

from prelu_tutorial.export.onnx import DEFAULT_OPSET, onnx_ops, run_onnx, to_onnx
from prelu_tutorial.export.tflite import QUANTIZATIONS, run_tflite, tflite_ops, to_tflite

__all__ = [
    "DEFAULT_OPSET",
    "QUANTIZATIONS",
    "onnx_ops",
    "run_onnx",
    "run_tflite",
    "tflite_ops",
    "to_onnx",
    "to_tflite",
]

"""Converting PReLU models to ONNX and running them with ONNX Runtime.

The engine behind :func:`prelu_tutorial.export.to_onnx`, ``onnx_ops`` and
``run_onnx`` (import them from there). tf2onnx has no rule that turns a
TensorFlow PReLU into ONNX's own ``PRelu`` op: ``keras.layers.PReLU`` arrives
as five nodes (Relu, Neg, Relu, Mul, Add), and ``pt.PReLU``'s XLA-compiled
kernel as a ``PartitionedCall`` that no ONNX runtime can run. So the export
traces every PReLU layer through Keras' formula
``relu(x) + (-alpha) * relu(-x)`` and gives tf2onnx one more rewrite rule,
which turns that formula into one ``PRelu`` node before tf2onnx maps the
remaining TensorFlow ops to ONNX; then it checks that every layer call became
exactly one ``PRelu``.

tf2onnx, onnx and onnxruntime are optional (``pip install
"prelu-tutorial[onnx]"``) and imported only when these functions are called.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf

from prelu_tutorial import layers, ops

if TYPE_CHECKING:
    import onnx

__all__ = ["DEFAULT_OPSET", "onnx_ops", "run_onnx", "to_onnx"]

DEFAULT_OPSET = 17
"""The ONNX opset :func:`to_onnx` targets unless told otherwise.

Opset 17 (ONNX 1.12, 2022) is read by every current ONNX Runtime, TensorRT
and OpenVINO release; ``PRelu`` has had unidirectional broadcasting of its
slope since opset 9, the lowest opset :func:`to_onnx` accepts.
"""

_MIN_OPSET = 9
_SCOPE = "prelu_tutorial_onnx_"
"""The name scope each PReLU layer call is traced in, followed by its index."""

_PRELU_LAYERS = (layers.PReLU, keras.layers.PReLU)


def _onnx_modules():
    """Imports tf2onnx, onnx and onnxruntime, or says how to install them."""
    try:
        import onnx
        import onnxruntime
        import tf2onnx
    except ImportError as error:
        raise ImportError(
            "prelu_tutorial.export's ONNX functions need tf2onnx, onnx and onnxruntime: "
            'pip install "prelu-tutorial[onnx]" (or pip install tf2onnx onnx onnxruntime)'
        ) from error
    return tf2onnx, onnx, onnxruntime


def _max_opset(tf2onnx) -> int:
    """The highest opset this tf2onnx writes (it maps each one to an IR version)."""
    return max(tf2onnx.constants.OPSET_TO_IR_VERSION)


def _check_opset(opset: Any, tf2onnx) -> int:
    highest = _max_opset(tf2onnx)
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)):
        raise TypeError(f"to_onnx: opset must be an int, got {opset!r}.")
    if not _MIN_OPSET <= opset <= highest:
        raise ValueError(
            f"to_onnx: opset must be between {_MIN_OPSET} (the first with PRelu's "
            f"unidirectional broadcasting) and {highest} (the highest tf2onnx "
            f"{tf2onnx.__version__} writes), got {opset}."
        )
    return int(opset)


def _prelu_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every PReLU layer in the model, nested models and layers included."""
    # Keras has no public walk over nested layers; _flatten_layers is what Model.layers uses.
    found = [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, _PRELU_LAYERS)
    ]
    for layer in found:
        if not layer.built:
            raise ValueError(
                f"to_onnx: PReLU layer {layer.name!r} is not built (it has no alpha yet); "
                "call the model on its input first."
            )
        alpha = keras.ops.convert_to_numpy(layer.alpha)
        if not np.all(np.isfinite(alpha)):
            raise ValueError(
                f"to_onnx: PReLU layer {layer.name!r} has a non-finite alpha "
                f"({int(np.sum(~np.isfinite(alpha)))} of {alpha.size} values are inf or NaN). "
                "to_onnx exports finite slopes only; the training probably diverged."
            )
    return found


@contextlib.contextmanager
def _traced_as_formula(prelu_layers: list[keras.layers.Layer]) -> Iterator[list[str]]:
    """Makes each PReLU layer compute Keras' formula while a model is traced.

    Yields the list that receives the name of the layer behind each call, in
    call order (a layer called twice appears twice); the call with index
    ``i`` is traced in the name scope ``prelu_tutorial_onnx_<i>``.
    """
    calls: list[str] = []

    def formula_call(layer):
        # A NumPy array: it becomes a constant inside the traced graph (a tensor
        # made here would be captured, and tf2onnx would make it a model input).
        alpha = keras.ops.convert_to_numpy(layer.alpha)

        def call(inputs, *args, **kwargs):
            with tf.name_scope(f"{_SCOPE}{len(calls)}"):
                calls.append(layer.name)
                return ops.prelu_keras(inputs, alpha)

        return call

    try:
        for layer in prelu_layers:
            # An instance attribute shadows the class's call for this layer only.
            vars(layer)["call"] = formula_call(layer)
        yield calls
    finally:
        for layer in prelu_layers:
            vars(layer).pop("call", None)


@contextlib.contextmanager
def _quiet_tf2onnx() -> Iterator[None]:
    """Keeps tf2onnx's progress log out of the output; to_onnx reports errors itself."""
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _broadcasts_unidirectionally(slope_shape: tuple, x_shape: Any) -> bool:
    """Whether a slope of this shape broadcasts to x without making the result larger.

    ``x_shape`` is tf2onnx's shape of x (``-1`` for an unknown size), or ``None``.
    """
    if x_shape is None or len(slope_shape) > len(x_shape):
        return False
    pairs = zip(reversed(slope_shape), reversed(x_shape), strict=False)
    return all(size == 1 or size == x_size for size, x_size in pairs)


def _rewrite_prelu(graph, nodes: list) -> list:
    """A tf2onnx rewriter: ``relu(x) + c * relu(-x)`` becomes ``PRelu(x, -c)``.

    tf2onnx runs its rewriters on the TensorFlow ops, before it maps them to
    ONNX and before its transpose optimizer, which then moves a channels-last
    model's transposes through ``PRelu`` like any other elementwise op. A match
    is rewritten only if ``c`` is a constant with finite values that
    broadcasts unidirectionally to ``x``: then both are equal for every ``x``,
    ``+-inf`` and NaN included (only the sign of a zero result may differ).
    The slope keeps alpha's shape without its leading axes of size 1
    (``[1, 1, C]`` becomes ``[C]``). The PRelu node takes the Add's name.
    """
    from tf2onnx.graph_matcher import GraphMatcher, OpTypePattern

    pattern = OpTypePattern(
        "AddV2|Add",
        name="add",
        inputs=[
            OpTypePattern("Relu", name="relu", inputs=["*"]),
            OpTypePattern(
                "Mul",
                name="mul",
                inputs=[
                    OpTypePattern("Const", name="negated_alpha"),
                    OpTypePattern(
                        "Relu", name="neg_relu", inputs=[OpTypePattern("Neg", name="neg")]
                    ),
                ],
            ),
        ],
    )
    for match in list(GraphMatcher(pattern, allow_reorder=True).match_ops(nodes)):
        add, relu, neg = match.get_op("add"), match.get_op("relu"), match.get_op("neg")
        x = relu.input[0]
        negated_alpha = match.get_op("negated_alpha").get_tensor_value(as_list=False)
        if (
            neg.input[0] != x
            or not np.all(np.isfinite(negated_alpha))
            or not _broadcasts_unidirectionally(negated_alpha.shape, graph.get_shape(x))
        ):
            continue
        slope = -negated_alpha
        while slope.ndim > 1 and slope.shape[0] == 1:
            slope = slope[0]
        name, output = add.name, add.output[0]
        shape, dtype = graph.get_shape(output), graph.get_dtype(output)
        graph.remove_node(name)
        # The nodes that fed the Add go with tf2onnx's next clean-up if nothing else reads them.
        slope_node = graph.make_const(f"{name}/slope", slope)
        prelu = graph.make_node(
            "PRelu",
            [x, slope_node.output[0]],
            outputs=[output],
            name=name,
            shapes=[shape],
            dtypes=[dtype],
        )
        nodes.append(prelu)
    return nodes


def _tidy_prelu_nodes(model) -> None:
    """Names each PRelu node for its layer and gives its slope the minimal shape.

    The node ``model/p_re_lu/prelu_tutorial_onnx_0/add`` becomes
    ``model/p_re_lu/PRelu``, with its slope ``model/p_re_lu/PRelu/slope``.
    tf2onnx's transpose optimizer may have given a slope back leading axes of
    size 1 (``[1, C, 1, 1]``); they are dropped where the slope is read by
    this node alone.
    """
    from onnx import numpy_helper

    graph = model.graph
    readers = Counter(name for node in graph.node for name in node.input)
    initializers = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type != "PRelu":
            continue
        node.name = re.sub(rf"{_SCOPE}\d+/[^/]*$", "PRelu", node.name)
        slope_name = node.input[1]
        if slope_name not in initializers or readers[slope_name] != 1:
            continue
        slope = numpy_helper.to_array(initializers[slope_name])
        while slope.ndim > 1 and slope.shape[0] == 1:
            slope = slope[0]
        initializers[slope_name].CopyFrom(numpy_helper.from_array(slope, f"{node.name}/slope"))
        node.input[1] = f"{node.name}/slope"


def _name_batch_dimension(model, output_too: bool) -> None:
    """Calls the input's unknown first dimension "batch", everywhere it appears.

    tf2onnx names each unknown size ``unk__<n>``, the output's apart from the
    input's; readers of the file (and tools such as Netron) show the name, so
    it says what the axis is. ``output_too`` also renames the output's first
    dimension (a Keras model's output starts with the batch axis).
    """
    graph = model.graph
    symbols = set()
    for info, wanted in ((graph.input[0], True), (graph.output[0], output_too)):
        dims = info.type.tensor_type.shape.dim
        if wanted and dims and not dims[0].HasField("dim_value") and dims[0].dim_param:
            symbols.add(dims[0].dim_param)
    for info in [*graph.input, *graph.output, *graph.value_info]:
        for dim in info.type.tensor_type.shape.dim:
            if dim.dim_param in symbols:
                dim.dim_param = "batch"


def _unsupported_nodes(model) -> list[str]:
    """Nodes whose op the ONNX standard does not define (tf2onnx keeps them as it found them)."""
    import onnx

    return [
        f"{node.name!r} ({node.op_type})"
        for node in model.graph.node
        if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type)
    ]


def to_onnx(model: Any, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Converts a model to ONNX with one ``PRelu`` node per PReLU layer call.

    For a Keras model, every :class:`prelu_tutorial.PReLU` and
    ``keras.layers.PReLU`` layer (nested ones too) is traced through Keras'
    formula ``relu(x) + (-alpha) * relu(-x)`` whatever the layer computes in
    TensorFlow, converted by tf2onnx, and the five nodes tf2onnx writes for it
    are replaced by ONNX's ``PRelu(x, slope)``, with the slope shaped for
    ``PRelu``'s unidirectional broadcasting (alpha without its leading axes of
    size 1: ``[C]`` channels-last, ``[C, 1, 1]`` channels-first). The
    variables are frozen into the file; an unknown batch size (``None``)
    stays unknown, as the symbolic dimension ``"batch"``. The same five-node
    pattern with a constant, finite slope is fused in a ``tf.function`` too
    (for example one that calls ``pt.ops.prelu_keras``).

    Args:
        model: A ``keras.Model`` with exactly one input, or a ``tf.function``
            with an ``input_signature`` of one ``tf.TensorSpec``.
        opset: The ONNX opset to write, from 9 (the first in which ``PRelu``
            broadcasts its slope unidirectionally) to the highest the
            installed tf2onnx writes (18 for tf2onnx 1.17). Defaults to
            :data:`DEFAULT_OPSET` (17).

    Returns:
        The ONNX model, an ``onnx.ModelProto`` (``onnx.save(m, "m.onnx")``
        writes it; ``m.SerializeToString()`` gives its bytes).

    Raises:
        ImportError: If tf2onnx, onnx or onnxruntime is not installed.
        TypeError: If ``model`` is neither a Keras model nor a ``tf.function``,
            or ``opset`` is not an int.
        ValueError: If ``opset`` is out of range; if the model does not take
            exactly one input; if a PReLU layer is not built or has a
            non-finite alpha (named in the message); or if a node has no ONNX
            op (the message names the nodes, which carry their layer's name).
        RuntimeError: If a PReLU layer call did not become one ``PRelu`` node
            (a tf2onnx version that writes the formula differently).
    """
    # Imported here: export imports this module at its end.
    from prelu_tutorial.export import _input_spec

    tf2onnx, onnx, _ = _onnx_modules()
    opset = _check_opset(opset, tf2onnx)
    if isinstance(model, keras.Model):
        spec = _input_spec(model, "to_onnx", "None, 8")
        prelu_layers = _prelu_layers(model)
        # tf2onnx traces the function while the layers compute the formula.
        with _traced_as_formula(prelu_layers) as calls, _quiet_tf2onnx():
            onnx_model, _ = tf2onnx.convert.from_function(
                tf.function(lambda x: model(x, training=False)),
                input_signature=[spec],
                opset=opset,
                custom_rewriter=[_rewrite_prelu],
            )
    elif isinstance(model, tf.types.experimental.PolymorphicFunction):
        spec = _input_spec(model, "to_onnx", "None, 8")
        calls = []
        with _quiet_tf2onnx():
            onnx_model, _ = tf2onnx.convert.from_function(
                model, input_signature=[spec], opset=opset, custom_rewriter=[_rewrite_prelu]
            )
    else:
        raise TypeError(
            "to_onnx: model must be a keras.Model or a tf.function with an input_signature, "
            f"got {type(model).__name__}."
        )
    unsupported = _unsupported_nodes(onnx_model)
    if unsupported:
        hint = ""
        if any("PartitionedCall" in node for node in unsupported):
            hint = (
                " A PartitionedCall is a compiled TensorFlow function, such as pt.prelu's "
                "XLA kernel called outside a PReLU layer: use pt.PReLU layers (to_onnx "
                "exports each as PRelu) or compute PReLU with pt.ops.prelu_keras."
            )
        raise ValueError(
            f"to_onnx: ONNX has no op for these nodes (each named by its layer's path): "
            f"{', '.join(unsupported)}.{hint}"
        )
    prelu_names = [node.name for node in onnx_model.graph.node if node.op_type == "PRelu"]
    missing = [
        f"{name!r} (call {index})"
        for index, name in enumerate(calls)
        if sum(f"{_SCOPE}{index}/" in prelu for prelu in prelu_names) != 1
    ]
    if missing:
        raise RuntimeError(
            f"to_onnx: PReLU layer call(s) {', '.join(missing)} did not become one PRelu "
            f"node; tf2onnx {tf2onnx.__version__} wrote their formula in an unexpected form."
        )
    _tidy_prelu_nodes(onnx_model)
    _name_batch_dimension(onnx_model, output_too=isinstance(model, keras.Model))
    onnx_model.producer_name = "prelu_tutorial.export.to_onnx (tf2onnx)"
    onnx.checker.check_model(onnx_model)
    return onnx_model


def _as_model_proto(model: Any, caller: str):
    """An ``onnx.ModelProto`` from a model or its serialized bytes."""
    _, onnx, _ = _onnx_modules()
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray)):
        try:
            parsed = onnx.load_model_from_string(bytes(model))
        except Exception as error:  # protobuf's DecodeError, and others for garbage
            raise ValueError(f"{caller}: model is not a serialized ONNX model ({error}).") from None
        if not parsed.graph.node and not parsed.graph.output:
            raise ValueError(f"{caller}: model is not a serialized ONNX model (no graph).")
        return parsed
    raise TypeError(
        f"{caller}: model must be an onnx.ModelProto (what to_onnx returns) or its bytes, "
        f"got {type(model).__name__}."
    )


def onnx_ops(model: Any) -> list[str]:
    """Lists the op types of an ONNX model's main graph, in the graph's order.

    Args:
        model: An ``onnx.ModelProto`` (as :func:`to_onnx` returns) or its
            serialized bytes (the content of a ``.onnx`` file).

    Returns:
        One op type per node, e.g. ``["PRelu"]`` for a model that is one PReLU.

    Raises:
        TypeError: If ``model`` is neither a ``ModelProto`` nor ``bytes``.
        ValueError: If the bytes are not an ONNX model.
    """
    return [node.op_type for node in _as_model_proto(model, "onnx_ops").graph.node]


def run_onnx(model: Any, x: Any) -> np.ndarray:
    """Runs a one-input, one-output ONNX model with ONNX Runtime on the CPU.

    Args:
        model: An ``onnx.ModelProto`` (as :func:`to_onnx` returns) or its
            serialized bytes.
        x: The input, an array-like whose shape fits the model's input (any
            size on a symbolic axis, such as an unknown batch size); it is
            cast to the input's dtype.

    Returns:
        The output, a NumPy array.

    Raises:
        TypeError: If ``model`` is neither a ``ModelProto`` nor ``bytes``.
        ValueError: If the bytes are not an ONNX model, the model does not have
            exactly one input and one output, or ``x``'s shape does not fit.
    """
    proto = _as_model_proto(model, "run_onnx")
    _, onnx, onnxruntime = _onnx_modules()
    initializers = {init.name for init in proto.graph.initializer}
    inputs = [info for info in proto.graph.input if info.name not in initializers]
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        raise ValueError(
            f"run_onnx: the model must have one input and one output, it has "
            f"{len(inputs)} and {len(proto.graph.output)}."
        )
    (input_info,) = inputs
    tensor_type = input_info.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
    x = np.asarray(x, dtype=dtype)
    expected = tuple(
        dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim
    )
    if len(expected) != x.ndim or any(
        size not in (None, actual) for size, actual in zip(expected, x.shape, strict=True)
    ):
        raise ValueError(
            f"run_onnx: x of shape {x.shape} does not fit the model's input of shape {expected}."
        )
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings among a notebook's outputs
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    (y,) = session.run(None, {input_info.name: x})
    return y

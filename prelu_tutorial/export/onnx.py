"""Converting PReLU models to ONNX and running them with ONNX Runtime.

tf2onnx has no rule that turns a TensorFlow PReLU into ONNX's own ``PRelu``
op: ``keras.layers.PReLU`` arrives as five nodes (Relu, Neg, Relu, Mul, Add),
which TensorFlow's graph optimizer may regroup with a neighbour, and
``pt.PReLU``'s XLA-compiled kernel as a ``PartitionedCall`` that no ONNX
runtime can run. So :func:`to_onnx` traces each PReLU layer call as one
placeholder node (with :func:`prelu_tutorial.export._tracing.calls_replaced`,
the mechanism the TFLite export uses too) and gives tf2onnx one more rewrite
rule, which replaces each placeholder by one ``PRelu`` node with the layer's
alpha before tf2onnx maps the remaining TensorFlow ops to ONNX.
:func:`onnx_ops` lists a model's ops; :func:`run_onnx` runs it with ONNX
Runtime.

tf2onnx, onnx and onnxruntime are optional (``pip install
"prelu-tutorial[onnx]"``) and imported only when these functions are called.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf

from prelu_tutorial._checks import quiet_logger
from prelu_tutorial._number_checks import is_integer
from prelu_tutorial.export._inputs import check_fits, input_spec
from prelu_tutorial.export._tracing import (
    CALL_SCOPE,
    calls_replaced,
    model_function,
    prelu_layers,
)

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
_MARKER = "LeakyRelu"
"""The TensorFlow op each PReLU layer call is traced as, until the rewrite replaces it.

An elementwise op with one tensor input, which TensorFlow's graph optimizer
(run by tf2onnx before converting) neither folds into a neighbour nor
reorders around: an ``Add`` after a layer written as a formula of five ops
could be regrouped with it (a shift of ``+ 1.0`` was), and the formula no
longer found. Its ``alpha`` attribute is ignored; the slope comes from the
layer.
"""
_CALL_INDEX = re.compile(rf"{CALL_SCOPE}(\d+)/")


def _onnx_modules():
    """Imports tf2onnx, onnx and onnxruntime, or says how to install them."""
    # The optional extra "onnx": imported on use, so the package works without it.
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
    bounds = (
        f"between {_MIN_OPSET} (the first with PRelu's unidirectional broadcasting) and "
        f"{highest} (the highest tf2onnx {tf2onnx.__version__} writes)"
    )
    if not is_integer(opset):
        raise TypeError(
            f"to_onnx: opset must be an integer {bounds}, got {opset!r} of type "
            f"{type(opset).__name__}."
        )
    if not _MIN_OPSET <= opset <= highest:
        raise ValueError(f"to_onnx: opset must be {bounds}, got {opset}.")
    return int(opset)


def _check_alphas(targets: list[keras.layers.Layer]) -> None:
    """Raises if a PReLU layer's alpha holds inf or NaN (PRelu would not give the same values)."""
    for layer in targets:
        alpha = keras.ops.convert_to_numpy(layer.alpha)
        if not np.all(np.isfinite(alpha)):
            raise ValueError(
                f"to_onnx: PReLU layer {layer.name!r} has a non-finite alpha "
                f"({int(np.sum(~np.isfinite(alpha)))} of {alpha.size} values are inf or NaN). "
                "to_onnx exports finite slopes only; the training probably diverged."
            )


def _check_not_bfloat16(model: Any, spec: tf.TensorSpec) -> None:
    """Raises if the model takes or computes bfloat16, which tf2onnx does not convert.

    tf2onnx 1.17 fails on such a graph, or writes a model that ONNX Runtime
    refuses to load (a ``mixed_bfloat16`` Dense became a MatMul of a bfloat16
    input and float16 weights).
    """
    if spec.dtype == tf.bfloat16:
        raise TypeError(
            "to_onnx: the model's input is bfloat16; tf2onnx does not convert bfloat16 "
            "graphs correctly. Export a float32 or float16 version of the model."
        )
    if not isinstance(model, keras.Model):
        return
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, (keras.Model, keras.layers.InputLayer)):
            continue  # they compute nothing themselves; name the layer that does
        policy = getattr(layer, "dtype_policy", None)
        if getattr(policy, "compute_dtype", None) == "bfloat16":
            raise TypeError(
                f"to_onnx: layer {layer.name!r} computes in bfloat16 (dtype policy "
                f"{policy.name!r}); tf2onnx does not convert bfloat16 graphs correctly. Export a "
                "float32 copy: build the same model under keras.mixed_precision."
                "set_global_policy('float32') and copy the weights with set_weights."
            )


def _check_known_rank(spec: tf.TensorSpec) -> None:
    """Raises for an input of unknown rank: ONNX would declare it a scalar."""
    if spec.shape.rank is None:
        raise ValueError(
            "to_onnx: the input_signature's tf.TensorSpec has an unknown rank "
            f"({spec}); an ONNX model declares its input's rank (tf2onnx would make it a "
            "scalar). Give the rank, with None for each size that may vary, e.g. "
            "tf.TensorSpec([None, 8])."
        )


def _minimal_slope(alpha: np.ndarray) -> np.ndarray:
    """Alpha without its leading axes of size 1 (``[1, 1, C]`` becomes ``[C]``)."""
    while alpha.ndim > 1 and alpha.shape[0] == 1:
        alpha = alpha[0]
    return alpha


def _traced_as_marker(targets: list[keras.layers.Layer], slopes: dict[int, np.ndarray]):
    """The replacement that traces a PReLU layer call as one placeholder node.

    Records the call's slope (alpha in the input's dtype, as a NumPy array,
    read now: a traced graph cannot read a variable's value) under the
    call's index, for :func:`_prelu_rewriter` to put in the ``PRelu`` node
    that replaces the placeholder.
    """
    alphas = {id(layer): keras.ops.convert_to_numpy(layer.alpha) for layer in targets}

    def replacement(layer: keras.layers.Layer, inputs: tf.Tensor, index: int) -> tf.Tensor:
        alpha = alphas[id(layer)].astype(inputs.dtype.as_numpy_dtype)
        slopes[index] = _minimal_slope(alpha)
        return tf.raw_ops.LeakyRelu(features=inputs, alpha=0.0)

    return replacement


def _reason(error: Exception) -> str:
    """The line of a tf2onnx (or tracing) error that says what went wrong, at most 300 chars."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if re.match(r"[A-Za-z_.]*(Error|Exception): ", line):
            return line[:300]
    return (lines[0] if lines else type(error).__name__)[:300]


def _broadcasts_unidirectionally(slope_shape: tuple, x_shape: Any) -> bool:
    """Whether a slope of this shape broadcasts to x without making the result larger.

    ``x_shape`` is tf2onnx's shape of x (``-1`` for an unknown size), or ``None``.
    """
    if x_shape is None or len(slope_shape) > len(x_shape):
        return False
    pairs = zip(reversed(slope_shape), reversed(x_shape), strict=False)
    return all(size == 1 or size == x_size for size, x_size in pairs)


def _replace_with_prelu(graph, node, x: str, slope: np.ndarray, nodes: list) -> None:
    """Replaces ``node`` (in tf2onnx's graph) by ``PRelu(x, slope)``, with its name and output."""
    name, output = node.name, node.output[0]
    shape, dtype = graph.get_shape(output), graph.get_dtype(output)
    graph.remove_node(name)
    # The nodes that fed it go with tf2onnx's next clean-up if nothing else reads them.
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


def _prelu_rewriter(slopes: dict[int, np.ndarray]):
    """A tf2onnx rewriter that writes ``PRelu`` for each layer call and each fused formula.

    tf2onnx runs its rewriters on the TensorFlow ops, before it maps them to
    ONNX and before its transpose optimizer, which then moves a channels-last
    model's transposes through ``PRelu`` like any other elementwise op. Two
    forms become one ``PRelu``:

    * A marker node in a layer call's name scope (what
      :func:`_traced_as_marker` traced) gets the slope recorded for that
      call. Keras checked when the layer was built that its alpha broadcasts
      unidirectionally to the input (alpha has one axis fewer than the input,
      with size 1 or the input's size on each).
    * ``relu(x) + c * relu(-x)`` (Keras' formula, in a ``tf.function``)
      becomes ``PRelu(x, -c)`` if ``c`` is a constant with finite values that
      broadcasts unidirectionally to ``x``: then both are equal for every
      ``x``, ``+-inf`` and NaN included (only the sign of a zero result may
      differ).

    Args:
        slopes: The slope of each layer call, by the call's index.

    Returns:
        The rewriter, a function ``(graph, nodes) -> nodes``.
    """

    def rewrite(graph, nodes: list) -> list:
        # tf2onnx is the optional extra "onnx": imported on use, like in _onnx_modules.
        from tf2onnx.graph_matcher import GraphMatcher, OpTypePattern

        for node in list(nodes):
            call = _CALL_INDEX.findall(node.name)
            if node.type == _MARKER and call and int(call[-1]) in slopes:
                _replace_with_prelu(graph, node, node.input[0], slopes[int(call[-1])], nodes)

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
            _replace_with_prelu(graph, add, x, _minimal_slope(-negated_alpha), nodes)
        return nodes

    return rewrite


def _tidy_prelu_nodes(model) -> None:
    """Names each layer call's PRelu node for its layer and gives its slope the minimal shape.

    The node ``model/p_re_lu/prelu_tutorial_call_0/LeakyRelu`` becomes
    ``model/p_re_lu/PRelu``, with its slope ``model/p_re_lu/PRelu/slope``; a
    layer called more than once (shared, or in ``TimeDistributed``) gets
    ``PRelu``, ``PRelu_1``, ``PRelu_2``, ... (ONNX Runtime refuses a model
    whose node names repeat). tf2onnx's transpose optimizer may have given a
    slope back leading axes of size 1 (``[1, C, 1, 1]``); they are dropped
    where the slope is read by this node alone.
    """
    from onnx import numpy_helper  # the optional extra "onnx": imported on use

    graph = model.graph
    taken = {node.name for node in graph.node}
    for node in graph.node:
        if node.op_type != "PRelu":
            continue
        base = re.sub(rf"{CALL_SCOPE}\d+/[^/]*$", "PRelu", node.name)
        if base != node.name:
            taken.discard(node.name)
            name, count = base, 0
            while name in taken:
                count += 1
                name = f"{base}_{count}"
            node.name = name
            taken.add(name)
    # tf2onnx merges equal constants: the slopes of a layer's calls may be one initializer.
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    for init in graph.initializer:
        nodes = readers.get(init.name, [])
        if not nodes or any(
            node.op_type != "PRelu" or node.input[1] != init.name for node in nodes
        ):
            continue
        slope = numpy_helper.to_array(init)
        if len(nodes) == 1:
            slope = _minimal_slope(slope)
        name = f"{nodes[0].name}/slope"
        init.CopyFrom(numpy_helper.from_array(slope, name))
        for node in nodes:
            node.input[1] = name


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
    import onnx  # the optional extra "onnx": imported on use

    return [
        f"{node.name!r} ({node.op_type})"
        for node in model.graph.node
        if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type)
    ]


def to_onnx(model: Any, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Converts a model to ONNX with one ``PRelu`` node per PReLU layer call.

    For a Keras model, every :class:`prelu_tutorial.PReLU` and
    ``keras.layers.PReLU`` layer (nested or wrapped ones too, such as in
    ``TimeDistributed``) is traced as one placeholder node per call, whatever
    the layer computes in TensorFlow; tf2onnx converts the rest, and each
    placeholder becomes ONNX's ``PRelu(x, slope)``, with the slope shaped for
    ``PRelu``'s unidirectional broadcasting (alpha without its leading axes of
    size 1: ``[C]`` channels-last, ``[C, 1, 1]`` channels-first). This holds
    for every layout the layers take: channel-wise, shared, per element,
    negative shared axes, channels first, unknown sizes, any rank. The node
    is named for its layer (``.../p_re_lu/PRelu``, then ``PRelu_1``, ... for
    a layer called again). The variables are frozen into the file; an
    unknown batch size (``None``) stays unknown, as the symbolic dimension
    ``"batch"``. In a ``tf.function``, Keras' formula
    ``relu(x) + (-alpha) * relu(-x)`` with a constant, finite slope that fits
    ``x`` becomes one ``PRelu`` too (for example ``pt.ops.prelu_keras``).

    Args:
        model: A ``keras.Model`` with exactly one input, or a ``tf.function``
            with an ``input_signature`` of one ``tf.TensorSpec`` of known rank.
        opset: The ONNX opset to write, from 9 (the first in which ``PRelu``
            broadcasts its slope unidirectionally) to the highest the
            installed tf2onnx writes (18 for tf2onnx 1.17). Defaults to
            :data:`DEFAULT_OPSET` (17).

    Returns:
        The ONNX model, an ``onnx.ModelProto`` (``onnx.save(m, "m.onnx")``
        writes it; ``m.SerializeToString()`` gives its bytes).

    Raises:
        ImportError: If tf2onnx, onnx or onnxruntime is not installed.
        TypeError: If ``model`` is neither a Keras model nor a ``tf.function``;
            if ``opset`` is not an int; if the model takes bfloat16 or a layer
            computes in it (a ``mixed_bfloat16`` policy; the message names
            the layer), which tf2onnx does not convert.
        ValueError: If ``opset`` is out of range; if the model does not take
            exactly one input, or its input_signature has an unknown rank; if
            a PReLU layer is not built or has a non-finite alpha (named in the
            message); if tracing or tf2onnx fails (the message holds the line
            of its error that says why); or
            if a node has no ONNX op (the message names the nodes, which carry
            their layer's name).
        RuntimeError: If a PReLU layer call's placeholder survived the
            conversion (a tf2onnx that changed it before the rewrite).
    """
    tf2onnx, onnx, _ = _onnx_modules()
    opset = _check_opset(opset, tf2onnx)
    if not isinstance(model, (keras.Model, tf.types.experimental.PolymorphicFunction)):
        raise TypeError(
            "to_onnx: model must be a keras.Model or a tf.function with an input_signature, "
            f"got {type(model).__name__}."
        )
    spec = input_spec(model, "to_onnx", "None, 8")
    _check_known_rank(spec)
    _check_not_bfloat16(model, spec)
    slopes: dict[int, np.ndarray] = {}
    if isinstance(model, keras.Model):
        targets = prelu_layers(model, "to_onnx")
        _check_alphas(targets)
        function = model_function(model)
        tracing = calls_replaced(targets, _traced_as_marker(targets, slopes))
    else:
        function, tracing = model, contextlib.nullcontext()
    # tf2onnx traces the function while the layers compute the placeholder; its
    # progress log stays out of the output (to_onnx reports errors itself).
    with tracing, quiet_logger("tf2onnx", logging.CRITICAL):
        try:
            onnx_model, _ = tf2onnx.convert.from_function(
                function,
                input_signature=[spec],
                opset=opset,
                custom_rewriter=[_prelu_rewriter(slopes)],
            )
        except Exception as error:  # tf2onnx raises several classes, some its own
            raise ValueError(
                f"to_onnx: tracing or converting the model failed: {_reason(error)}"
            ) from None
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
    left = [
        repr(node.name)
        for node in onnx_model.graph.node
        if node.op_type == _MARKER and _CALL_INDEX.search(node.name)
    ]
    if left:
        raise RuntimeError(
            f"to_onnx: the placeholder of PReLU layer call(s) {', '.join(left)} did not "
            f"become PRelu; tf2onnx {tf2onnx.__version__} changed it before the rewrite."
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
    # An input without a shape field has an unknown rank: any x may fit.
    if tensor_type.HasField("shape"):
        expected = [
            dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim
        ]
        check_fits(x.shape, expected, "run_onnx")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings among a notebook's outputs
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    (y,) = session.run(None, {input_info.name: x})
    return y

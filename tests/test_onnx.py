"""Tests for the ONNX export: pt.export.to_onnx, onnx_ops and run_onnx."""

import functools
import logging
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import prelu_tutorial as pt
from prelu_tutorial.export import DEFAULT_OPSET, onnx_ops, run_onnx, to_onnx

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

# Slopes training can leave: zero, negative, above one, and the usual ones.
SLOPES = np.array([0.0, -0.4, 1.7, 0.25, -2.0, 1.0, 0.05], dtype=np.float32)
EDGES = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0], dtype=np.float32)

# name: (input shape without the batch axis, PReLU arguments, slopes)
LAYER_CONFIGS = {
    "channel_wise": ((4, 4, 3), {}, SLOPES),
    "shared": ((4, 4, 3), {"shared_axes": [1, 2, 3]}, [-0.4]),
    "per_element": ((4, 4, 3), {"shared_axes": ()}, SLOPES),
    "channels_first": ((3, 4, 4), {"data_format": "channels_first"}, SLOPES),
    "dense": ((6,), {}, SLOPES),
    "rank_5": ((2, 3, 4, 3), {}, SLOPES),
}


def _inputs(shape, seed=0):
    """Uniform values in [-3, 3] with +-inf, NaN and both zeros at both ends (>= 5 values)."""
    x = np.random.default_rng(seed).uniform(-3.0, 3.0, size=shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[: len(EDGES)] = EDGES
    flat[-len(EDGES) :] = EDGES[::-1]
    return x


def _prelu_model(input_shape, layer_class=pt.PReLU, slopes=SLOPES, **layer_kwargs):
    """A model that is one PReLU layer, its alphas cycling through ``slopes``."""
    inputs = keras.Input(input_shape)
    layer = layer_class(**layer_kwargs)
    model = keras.Model(inputs, layer(inputs))
    shape = layer.alpha.shape
    layer.alpha.assign(np.resize(slopes, int(np.prod(shape))).reshape(shape))
    return model, layer


@pytest.fixture(scope="module", params=sorted(LAYER_CONFIGS))
def exported_layer(request):
    """(model, layer, its ONNX model) for each layer configuration, converted once."""
    input_shape, kwargs, slopes = LAYER_CONFIGS[request.param]
    model, layer = _prelu_model(input_shape, slopes=slopes, **kwargs)
    return model, layer, to_onnx(model)


def test_prelu_layer_becomes_one_prelu_node(exported_layer):
    _, _, onnx_model = exported_layer
    assert onnx_ops(onnx_model) == ["PRelu"]


def test_onnx_runtime_equals_tensorflow_and_numpy_on_edge_inputs(exported_layer):
    model, layer, onnx_model = exported_layer
    x = _inputs((5, *model.inputs[0].shape[1:]))
    got = run_onnx(onnx_model, x)
    # assert_array_equal counts NaN as equal to NaN, and -0.0 as equal to 0.0.
    np.testing.assert_array_equal(got, model(x).numpy())
    np.testing.assert_array_equal(got, pt.ops.prelu_numpy(x, layer.alpha.numpy()))


def test_slope_is_alpha_shaped_for_unidirectional_broadcasting(exported_layer):
    model, layer, onnx_model = exported_layer
    (prelu,) = onnx_model.graph.node
    (slope,) = [init for init in onnx_model.graph.initializer if init.name == prelu.input[1]]
    slope = onnx.numpy_helper.to_array(slope)
    sample_shape = model.inputs[0].shape[1:]
    assert slope.ndim <= len(sample_shape)
    # Unidirectional: the slope broadcasts to one sample without changing its shape.
    assert np.broadcast_shapes(slope.shape, sample_shape) == sample_shape
    np.testing.assert_array_equal(np.broadcast_to(slope, layer.alpha.shape), layer.alpha.numpy())


def _stacked(input_shape, before=(), after=(), **layer_kwargs):
    """Input -> ``before`` layers -> one pt.PReLU -> ``after`` layers; one PReLU call."""
    inputs = keras.Input(input_shape)
    hidden = inputs
    for layer in before:
        hidden = layer(hidden)
    prelu = pt.PReLU(**layer_kwargs)
    hidden = prelu(hidden)
    for layer in after:
        hidden = layer(hidden)
    shape = prelu.alpha.shape
    prelu.alpha.assign(np.resize(SLOPES, int(np.prod(shape))).reshape(shape))
    return keras.Model(inputs, hidden), 1


def _time_distributed():
    inputs = keras.Input((4, 3))
    wrapped = keras.layers.TimeDistributed(pt.PReLU())
    model = keras.Model(inputs, wrapped(inputs))
    wrapped.layer.alpha.assign([0.0, -0.4, 1.7])
    return model, 4  # one call per time step


def _keras_layer_after_dense():
    inputs = keras.Input((6,))
    layer = keras.layers.PReLU()
    model = keras.Model(inputs, layer(keras.layers.Dense(5)(inputs)))
    layer.alpha.assign(SLOPES[:5])
    return model, 1


# name: () -> (model, number of PReLU layer calls); every layout pt.PReLU takes.
LAYOUT_MODELS = {
    "channel_wise_rank_4": lambda: _stacked((4, 4, 3)),
    "per_element_rank_4": lambda: _stacked((4, 4, 3), shared_axes=()),
    "negative_shared_axes": lambda: _stacked((4, 4, 3), shared_axes=[-3, -2]),
    "negative_last_axis_shared": lambda: _stacked((4, 4, 3), shared_axes=-1),
    "all_axes_shared": lambda: _stacked((4, 4, 3), shared_axes=[1, 2, 3]),
    "channels_first_rank_4": lambda: _stacked((3, 4, 4), data_format="channels_first"),
    "rank_2_after_dense": lambda: _stacked((6,), [keras.layers.Dense(5)]),
    "rank_2_per_element_after_dense": lambda: _stacked(
        (6,), [keras.layers.Dense(5)], shared_axes=()
    ),
    "rank_3_after_dense": lambda: _stacked((5, 4), [keras.layers.Dense(3)]),
    "rank_3_per_element_after_dense": lambda: _stacked(
        (5, 4), [keras.layers.Dense(3)], shared_axes=()
    ),
    "channels_first_after_dense": lambda: _stacked(
        (3, 4), [keras.layers.Dense(5)], data_format="channels_first"
    ),
    "rank_3_after_conv": lambda: _stacked((8, 2), [keras.layers.Conv1D(3, 3)]),
    "rank_4_after_conv": lambda: _stacked((6, 6, 2), [keras.layers.Conv2D(3, 3)]),
    "per_element_after_conv": lambda: _stacked(
        (6, 6, 2), [keras.layers.Conv2D(3, 3)], shared_axes=()
    ),
    "channels_first_after_conv": lambda: _stacked(
        (6, 6, 2),
        [keras.layers.Conv2D(3, 3), keras.layers.Permute((3, 1, 2))],
        data_format="channels_first",
    ),
    "unknown_sizes_after_conv": lambda: _stacked((None, None, 2), [keras.layers.Conv2D(3, 1)]),
    "unknown_length_rank_3": lambda: _stacked((None, 3)),
    "rank_5_after_conv": lambda: _stacked((4, 4, 4, 2), [keras.layers.Conv3D(3, 2)]),
    "rank_5_per_element": lambda: _stacked((2, 3, 4, 3), shared_axes=()),
    "rank_5_channels_first": lambda: _stacked((3, 2, 3, 4), data_format="channels_first"),
    "shift_after_dense": lambda: _stacked((6,), [keras.layers.Dense(5)], [lambda t: t + 1.0]),
    "time_distributed": _time_distributed,
    "keras_layer_after_dense": _keras_layer_after_dense,
}


@pytest.fixture(scope="module", params=sorted(LAYOUT_MODELS))
def exported_layout(request):
    """(model, number of PReLU calls, its ONNX model) for each layout, converted once."""
    keras.utils.set_random_seed(5)
    model, calls = LAYOUT_MODELS[request.param]()
    return model, calls, to_onnx(model)


def test_every_layout_gives_one_prelu_node_per_layer_call(exported_layout):
    _, calls, onnx_model = exported_layout
    ops = onnx_ops(onnx_model)
    assert ops.count("PRelu") == calls
    # Nothing of the formula or of the traced placeholder is left.
    assert not {"Relu", "Neg", "LeakyRelu", "Max", "Min", "Where"} & set(ops)


def test_every_layout_gives_unique_node_and_initializer_names(exported_layout):
    _, _, onnx_model = exported_layout
    names = [node.name for node in onnx_model.graph.node]
    assert len(set(names)) == len(names)
    initializers = [init.name for init in onnx_model.graph.initializer]
    assert len(set(initializers)) == len(initializers)


def test_every_layout_loads_in_onnx_runtime_and_equals_tensorflow_on_edges(exported_layout):
    model, _, onnx_model = exported_layout
    sample_shape = [5 if size is None else size for size in model.inputs[0].shape[1:]]
    x = _inputs((3, *sample_shape), seed=len(sample_shape))
    expected = model(x).numpy()
    got = run_onnx(onnx_model, x)
    assert np.isnan(expected).any() or np.isinf(expected).any()  # the edges reached the output
    # NaN where TensorFlow gives NaN, the same infinities, the finite values to rounding.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_shift_after_a_prelu_layer_stays_an_add_after_one_prelu_node():
    model, _ = LAYOUT_MODELS["shift_after_dense"]()
    assert onnx_ops(to_onnx(model))[-2:] == ["PRelu", "Add"]


def test_time_distributed_prelu_nodes_are_numbered_for_their_layer():
    model, _ = _time_distributed()
    names = [node.name for node in to_onnx(model).graph.node if node.op_type == "PRelu"]
    prefix = names[0].removesuffix("PRelu")
    assert "time_distributed" in prefix
    assert names == [f"{prefix}PRelu", f"{prefix}PRelu_1", f"{prefix}PRelu_2", f"{prefix}PRelu_3"]


def test_mixed_bfloat16_policy_is_a_type_error_naming_the_layer():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((4,))
        model = keras.Model(inputs, pt.PReLU()(keras.layers.Dense(3, name="bf16_dense")(inputs)))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(TypeError, match=r"'bf16_dense' computes in bfloat16.*'mixed_bfloat16'"):
        to_onnx(model)


def test_bfloat16_input_signature_is_a_type_error():
    function = tf.function(
        lambda x: pt.ops.prelu_keras(x, 0.25),
        input_signature=[tf.TensorSpec([None, 3], tf.bfloat16)],
    )
    with pytest.raises(TypeError, match="input is bfloat16"):
        to_onnx(function)


def test_unknown_rank_signature_is_a_value_error_instead_of_a_scalar_input():
    function = tf.function(
        lambda x: pt.ops.prelu_keras(x, 0.25), input_signature=[tf.TensorSpec(None)]
    )
    with pytest.raises(ValueError, match=r"input_signature's tf.TensorSpec has an unknown rank"):
        to_onnx(function)


def test_run_onnx_takes_any_shape_for_an_input_of_unknown_rank():
    # A model from another tool may leave the input's rank open (no shape field).
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    for shape in ((5,), (2, 3)):
        x = _inputs(shape)
        np.testing.assert_array_equal(run_onnx(model, x), np.maximum(x, 0))


def test_a_failed_trace_or_conversion_is_a_one_line_value_error():
    function = tf.function(
        lambda x: tf.reshape(x, [7]), input_signature=[tf.TensorSpec([2, 3], tf.float32)]
    )
    with pytest.raises(ValueError) as error:
        to_onnx(function)
    message = str(error.value)
    assert message.startswith("to_onnx: tracing or converting the model failed: ")
    assert "\n" not in message and "reshape" in message.lower()


def test_channels_last_slope_is_one_value_per_channel():
    model, _ = _prelu_model((4, 4, 3))
    onnx_model = to_onnx(model)
    (slope,) = onnx_model.graph.initializer
    assert tuple(slope.dims) == (3,)


def test_unknown_batch_size_stays_symbolic_and_runs_any_batch():
    model, layer = _prelu_model((6,))
    onnx_model = to_onnx(model)
    batch = onnx_model.graph.input[0].type.tensor_type.shape.dim[0]
    assert not batch.HasField("dim_value") and batch.dim_param == "batch"
    output_batch = onnx_model.graph.output[0].type.tensor_type.shape.dim[0]
    assert output_batch.dim_param == "batch"
    for size in (1, 7):
        x = _inputs((size, 6), seed=size)
        np.testing.assert_array_equal(
            run_onnx(onnx_model, x), pt.ops.prelu_numpy(x, layer.alpha.numpy())
        )


def test_default_opset_is_written_and_another_can_be_chosen():
    model, layer = _prelu_model((6,))
    default = to_onnx(model)
    versions = [op.version for op in default.opset_import if op.domain in ("", "ai.onnx")]
    assert versions == [DEFAULT_OPSET]
    older = to_onnx(model, opset=13)
    assert [op.version for op in older.opset_import if op.domain in ("", "ai.onnx")] == [13]
    assert onnx_ops(older) == ["PRelu"]
    x = _inputs((3, 6))
    np.testing.assert_array_equal(run_onnx(older, x), pt.ops.prelu_numpy(x, layer.alpha.numpy()))


def test_keras_prelu_layer_becomes_one_prelu_node_too():
    model, layer = _prelu_model((4, 4, 3), keras.layers.PReLU, shared_axes=[1, 2])
    onnx_model = to_onnx(model)
    assert onnx_ops(onnx_model) == ["PRelu"]
    x = _inputs((2, 4, 4, 3))
    np.testing.assert_array_equal(
        run_onnx(onnx_model, x), pt.ops.prelu_numpy(x, layer.alpha.numpy())
    )


def test_each_prelu_layer_call_becomes_its_own_prelu_node():
    inner_inputs = keras.Input((4,))
    inner = keras.Model(inner_inputs, pt.PReLU(name="inner_prelu")(inner_inputs), name="inner")
    shared = pt.PReLU(name="shared_prelu")
    inputs = keras.Input((4,))
    hidden = shared(keras.layers.Dense(4, name="dense_1")(inputs))
    hidden = inner(keras.layers.Dense(4, name="dense_2")(hidden))
    outputs = shared(keras.layers.Dense(4, name="dense_3")(hidden))
    model = keras.Model(inputs, outputs)
    onnx_model = to_onnx(model)
    prelu_nodes = [node.name for node in onnx_model.graph.node if node.op_type == "PRelu"]
    assert len(prelu_nodes) == 3
    assert sum("shared_prelu" in name for name in prelu_nodes) == 2
    assert sum("inner_prelu" in name for name in prelu_nodes) == 1
    x = _inputs((5, 4))
    np.testing.assert_allclose(run_onnx(onnx_model, x), model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_conv_model_matches_tensorflow_with_one_prelu_per_layer():
    inputs = keras.Input((8, 8, 2))
    hidden = pt.PReLU()(keras.layers.Conv2D(4, 3)(inputs))
    hidden = pt.PReLU(shared_axes=())(keras.layers.Conv2D(3, 3)(hidden))
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    onnx_model = to_onnx(model)
    assert onnx_ops(onnx_model).count("PRelu") == 2
    assert not {"Relu", "Neg"} & set(onnx_ops(onnx_model))
    x = np.random.default_rng(1).uniform(-3.0, 3.0, size=(3, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(onnx_model, x), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_half_precision_layer_exports_and_matches():
    inputs = keras.Input((3,), dtype="float16")
    layer = pt.PReLU(dtype="mixed_float16")
    model = keras.Model(inputs, layer(inputs))
    layer.alpha.assign([0.0, -0.4, 1.7])
    onnx_model = to_onnx(model)
    assert onnx_ops(onnx_model) == ["PRelu"]
    x = _inputs((4, 3)).astype(np.float16)
    got = run_onnx(onnx_model, x)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, pt.ops.prelu_numpy(x, np.float16(layer.alpha.numpy())))


def test_export_leaves_the_layers_computing_as_before():
    model, layer = _prelu_model((4,))
    to_onnx(model)
    assert "call" not in vars(layer)
    x = _inputs((2, 4))
    np.testing.assert_array_equal(model(x).numpy(), pt.ops.prelu_numpy(x, layer.alpha.numpy()))


def test_function_written_with_keras_formula_becomes_one_prelu_node():
    alpha = np.array([0.0, -0.4, 1.7], np.float32)
    function = tf.function(
        lambda x: pt.ops.prelu_keras(x, alpha), input_signature=[tf.TensorSpec([None, 3])]
    )
    onnx_model = to_onnx(function)
    assert onnx_ops(onnx_model) == ["PRelu"]
    x = _inputs((4, 3))
    np.testing.assert_array_equal(run_onnx(onnx_model, x), pt.ops.prelu_numpy(x, alpha))


def test_formula_with_non_finite_constant_is_not_rewritten_and_keeps_its_values():
    # relu(x) + (-inf) * relu(-x) is NaN for x > 0 (inf * 0); PRelu would give x.
    alpha = np.array([np.inf, 0.5], np.float32)
    function = tf.function(
        lambda x: pt.ops.prelu_keras(x, alpha), input_signature=[tf.TensorSpec([None, 2])]
    )
    onnx_model = to_onnx(function)
    assert "PRelu" not in onnx_ops(onnx_model)
    x = _inputs((3, 2))
    np.testing.assert_array_equal(run_onnx(onnx_model, x), function(x).numpy())


def test_formula_whose_constant_widens_the_input_is_not_rewritten():
    # x of shape [n, 1] times c of shape [5] gives [n, 5]: no PRelu can do that.
    function = tf.function(
        lambda x: pt.ops.prelu_keras(x, np.linspace(-1, 1, 5).astype(np.float32)),
        input_signature=[tf.TensorSpec([None, 1])],
    )
    onnx_model = to_onnx(function)
    assert "PRelu" not in onnx_ops(onnx_model)
    x = _inputs((6, 1))
    got = run_onnx(onnx_model, x)
    assert got.shape == (6, 5)
    np.testing.assert_array_equal(got, function(x).numpy())


def test_non_finite_alpha_is_refused_naming_the_layer():
    model, layer = _prelu_model((3,), name="diverged")
    layer.alpha.assign([0.25, np.nan, np.inf])
    with pytest.raises(ValueError, match=r"'diverged'.*2 of 3 values are inf or NaN"):
        to_onnx(model)


def test_prelu_kernel_outside_a_layer_is_refused_naming_the_layer():
    class Activation(keras.layers.Layer):
        def call(self, x):
            return pt.prelu(x, 0.25)

    inputs = keras.Input((3,))
    model = keras.Model(inputs, Activation(name="my_activation")(inputs))
    with pytest.raises(ValueError, match=r"my_activation.*PartitionedCall.*pt.PReLU layers"):
        to_onnx(model)


def test_function_calling_prelu_kernel_is_refused_with_the_remedy():
    function = tf.function(lambda x: pt.prelu(x, 0.25), input_signature=[tf.TensorSpec([None, 3])])
    with pytest.raises(ValueError, match="PartitionedCall.*prelu_keras"):
        to_onnx(function)


@pytest.mark.parametrize("opset", [8, 19])
def test_opset_out_of_range_is_a_value_error(opset):
    model, _ = _prelu_model((3,))
    with pytest.raises(ValueError, match=rf"opset must be between 9 .* got {opset}"):
        to_onnx(model, opset=opset)


@pytest.mark.parametrize("opset", ["17", True, 17.0])
def test_opset_that_is_not_an_int_is_a_type_error(opset):
    model, _ = _prelu_model((3,))
    with pytest.raises(TypeError, match=r"opset must be an integer between 9 .* of type"):
        to_onnx(model, opset=opset)


def test_to_onnx_keeps_tf2onnx_progress_log_out_of_the_output():
    logger = logging.getLogger("tf2onnx")
    records = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append
    level = logger.level
    logger.setLevel(logging.INFO)  # a user who asked for tf2onnx's log
    logger.addHandler(handler)
    try:
        to_onnx(_prelu_model((3,))[0], opset=np.int64(13))
        assert logger.level == logging.INFO  # restored after the export
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [record.getMessage() for record in records] == []


def test_model_that_is_neither_keras_nor_tf_function_is_a_type_error():
    with pytest.raises(TypeError, match="got function"):
        to_onnx(lambda x: x)


def test_model_with_two_inputs_is_a_value_error():
    first, second = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([first, second], pt.PReLU()(first + second))
    with pytest.raises(ValueError, match="exactly one input, it takes 2"):
        to_onnx(model)


def test_function_without_input_signature_is_a_value_error():
    with pytest.raises(ValueError, match="input_signature"):
        to_onnx(tf.function(lambda x: x))


def test_onnx_ops_and_run_onnx_accept_serialized_bytes():
    model, layer = _prelu_model((3,))
    blob = to_onnx(model).SerializeToString()
    assert onnx_ops(blob) == ["PRelu"]
    x = _inputs((2, 3))
    np.testing.assert_array_equal(run_onnx(blob, x), pt.ops.prelu_numpy(x, layer.alpha.numpy()))


def test_onnx_ops_of_bytes_that_are_not_onnx_is_a_value_error():
    with pytest.raises(ValueError, match="not a serialized ONNX model"):
        onnx_ops(b"\x00not an onnx model")


def test_onnx_ops_of_a_string_is_a_type_error():
    with pytest.raises(TypeError, match="got str"):
        onnx_ops("model.onnx")


def test_run_onnx_with_a_wrong_input_shape_is_a_value_error():
    model, _ = _prelu_model((3,))
    with pytest.raises(ValueError, match=r"x of shape \(2, 4\) does not fit .*\(None, 3\)"):
        run_onnx(to_onnx(model), np.zeros((2, 4)))


def test_importing_the_package_does_not_import_the_onnx_packages():
    code = (
        "import sys, prelu_tutorial; "
        "print(sorted({'tf2onnx', 'onnx', 'onnxruntime'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert result.stdout.strip() == "[]"


def test_unknown_spatial_sizes_keep_one_prelu_node_and_run_any_size():
    inputs = keras.Input((None, None, 2))
    layer = pt.PReLU()
    model = keras.Model(inputs, layer(keras.layers.Conv2D(2, 1)(inputs)))
    layer.alpha.assign([[[-0.4, 1.7]]])
    onnx_model = to_onnx(model)
    assert onnx_ops(onnx_model).count("PRelu") == 1
    for shape in ((1, 3, 5, 2), (2, 6, 4, 2)):
        x = np.random.default_rng(sum(shape)).uniform(-3, 3, shape).astype(np.float32)
        np.testing.assert_allclose(run_onnx(onnx_model, x), model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_missing_onnx_packages_give_an_import_error_with_the_install_line(monkeypatch):
    model, _ = _prelu_model((3,))
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # what an absent package looks like
    with pytest.raises(ImportError, match=r'pip install "prelu-tutorial\[onnx\]"'):
        to_onnx(model)


@functools.cache
def _exported_dense_layer():
    """A channel-wise layer on rank-2 inputs with slopes 0, -0.4 and 1.7, and its ONNX file."""
    model, layer = _prelu_model((3,), slopes=[0.0, -0.4, 1.7])
    return layer.alpha.numpy(), to_onnx(model).SerializeToString()


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 16), st.just(3)),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    )
)
def test_onnx_runtime_gives_the_definition_for_every_float32_input(x):
    alpha, blob = _exported_dense_layer()
    # 1.7 * x overflows to -inf near float32's largest values, as it should.
    with np.errstate(over="ignore"):
        expected = pt.ops.prelu_numpy(x, alpha)
    np.testing.assert_array_equal(run_onnx(blob, x), expected)

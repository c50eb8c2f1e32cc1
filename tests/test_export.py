"""Tests for prelu_tutorial.export: TFLite conversion, op listing and LiteRT runs."""

import logging
import subprocess
import sys
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from cases import small_model

import prelu_tutorial as pt
from prelu_tutorial.export import run_tflite, tflite_ops, to_tflite
from prelu_tutorial.export._tracing import calls_replaced, prelu_layers

CHANNEL_ALPHAS = np.array([0.05, 0.2, 0.6], dtype=np.float32)


def _inputs(shape, seed=0):
    return np.random.default_rng(seed).uniform(-3.0, 3.0, size=shape).astype(np.float32)


def _prelu_model(input_shape, **layer_kwargs):
    """A model that is one pt.PReLU layer, with distinct alphas (as after training)."""
    inputs = keras.Input(input_shape)
    layer = pt.PReLU(**layer_kwargs)
    model = keras.Model(inputs, layer(inputs))
    alpha_shape = layer.alpha.shape
    layer.alpha.assign(np.linspace(0.05, 0.6, int(np.prod(alpha_shape))).reshape(alpha_shape))
    return model, layer


def _function_of(fn, shape):
    return tf.function(fn, input_signature=[tf.TensorSpec(shape, tf.float32)])


def test_to_tflite_returns_a_tflite_flatbuffer():
    model, _ = _prelu_model((4, 4, 3))
    blob = to_tflite(model)
    assert isinstance(blob, bytes)
    assert blob[4:8] == b"TFL3"


def test_tflite_ops_lists_ops_in_execution_order():
    blob = to_tflite(_function_of(lambda x: tf.abs(tf.sin(x)), [2, 3]))
    assert tflite_ops(blob) == ["SIN", "ABS"]


def test_keras_prelu_layer_converts_to_one_prelu_op():
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.PReLU(shared_axes=[1, 2])(inputs))
    assert tflite_ops(to_tflite(model)) == ["PRELU"]


def test_channelwise_prelu_layer_converts_to_one_prelu_op():
    model, _ = _prelu_model((4, 4, 3))
    assert tflite_ops(to_tflite(model)) == ["PRELU"]


def test_channel_shared_prelu_layer_converts_to_one_prelu_op():
    model, layer = _prelu_model((4, 4, 3), shared_axes=[1, 2, 3])
    assert layer.alpha.shape == (1, 1, 1)
    assert tflite_ops(to_tflite(model)) == ["PRELU"]


def test_trained_alphas_of_any_sign_still_convert_to_one_prelu_op_that_matches_numpy():
    model, layer = _prelu_model((4, 4, 3))
    alphas = np.array([[[-0.4, 0.0, 1.7]]], np.float32)  # training can leave alpha <= 0 or > 1
    layer.alpha.assign(alphas)
    blob = to_tflite(model)
    assert tflite_ops(blob) == ["PRELU"]
    x = _inputs((2, 4, 4, 3))
    np.testing.assert_allclose(run_tflite(blob, x), pt.ops.prelu_numpy(x, alphas), atol=1e-6)


def test_prelu_layer_on_dense_input_converts_to_one_prelu_op():
    model, _ = _prelu_model((5,))
    assert tflite_ops(to_tflite(model)) == ["PRELU"]


def test_each_prelu_layer_becomes_its_own_prelu_op():
    inputs = keras.Input((6,))
    hidden = pt.PReLU()(keras.layers.Dense(4)(inputs))
    outputs = pt.PReLU()(keras.layers.Dense(2)(hidden))
    ops = tflite_ops(to_tflite(keras.Model(inputs, outputs)))
    assert ops.count("PRELU") == 2


def test_where_formulation_with_channel_alphas_stays_three_ops():
    blob = to_tflite(_function_of(lambda x: pt.ops.prelu_where(x, CHANNEL_ALPHAS), [1, 4, 4, 3]))
    assert tflite_ops(blob) == ["GREATER", "MUL", "SELECT"]


def test_tf_function_captured_alpha_is_frozen_into_the_model():
    alpha = tf.Variable(CHANNEL_ALPHAS)
    blob = to_tflite(_function_of(lambda x: pt.ops.prelu_minmax(x, alpha), [1, 4, 4, 3]))
    x = _inputs((1, 4, 4, 3))
    np.testing.assert_allclose(run_tflite(blob, x), pt.ops.prelu_numpy(x, CHANNEL_ALPHAS))


def test_run_tflite_matches_numpy_reference():
    model, layer = _prelu_model((4, 4, 3))
    x = _inputs((2, 4, 4, 3))
    expected = pt.ops.prelu_numpy(x, layer.alpha.numpy())
    np.testing.assert_allclose(run_tflite(to_tflite(model), x), expected, atol=1e-6)


def test_run_tflite_takes_any_batch_size_when_batch_axis_is_none():
    model, layer = _prelu_model((3,))
    blob = to_tflite(model)
    for batch in (1, 7):
        x = _inputs((batch, 3), seed=batch)
        assert run_tflite(blob, x).shape == (batch, 3)


def test_int8_quantization_keeps_one_prelu_op_between_quantize_and_dequantize():
    model, _ = _prelu_model((4, 4, 3))
    blob = to_tflite(model, quantize="int8", representative_data=_inputs((50, 4, 4, 3)))
    assert tflite_ops(blob) == ["QUANTIZE", "PRELU", "DEQUANTIZE"]


def test_int8_model_error_is_within_a_few_quantization_steps():
    model, layer = _prelu_model((4, 4, 3))
    blob = to_tflite(model, quantize="int8", representative_data=_inputs((50, 4, 4, 3)))
    x = _inputs((8, 4, 4, 3), seed=1)
    error = np.abs(run_tflite(blob, x) - pt.ops.prelu_numpy(x, layer.alpha.numpy())).max()
    # The inputs span [-3, 3], so one int8 step is about 6 / 255 = 0.024.
    assert error < 0.05


def test_float16_model_stores_weights_in_half_precision():
    model, layer = _prelu_model((4, 4, 3))
    blob = to_tflite(model, quantize="float16")
    assert tflite_ops(blob) == ["DEQUANTIZE", "PRELU"]
    x = _inputs((2, 4, 4, 3))
    expected = pt.ops.prelu_numpy(x, layer.alpha.numpy())
    np.testing.assert_allclose(run_tflite(blob, x), expected, atol=3 * 2.0**-11)


def test_run_tflite_quantizes_integer_inputs_and_dequantizes_outputs():
    model, layer = _prelu_model((4,))
    spec = tf.TensorSpec([1, 4], tf.float32)
    concrete = tf.function(lambda x: model(x)).get_concrete_function(spec)
    holder = tf.Module()
    holder.captured = list(concrete.variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    calibration = _inputs((50, 1, 4))
    converter.representative_dataset = lambda: ([sample] for sample in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    x = _inputs((1, 4), seed=2)
    error = np.abs(run_tflite(converter.convert(), x) - pt.ops.prelu_numpy(x, layer.alpha.numpy()))
    assert error.max() < 0.05


def test_custom_op_layers_convert_to_one_prelu_op_each_with_the_same_outputs(custom_op_library):
    # to_tflite alone must swap the op for the fused pattern: TFLite has no kernel for it.
    model = small_model("custom_op")
    blob = pt.export.to_tflite(model)
    assert pt.export.tflite_ops(blob).count("PRELU") == 2
    x = np.random.default_rng(10).standard_normal((2, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(pt.export.run_tflite(blob, x), model(x).numpy(), rtol=1e-5)


def test_to_tflite_rejects_unknown_quantization():
    model, _ = _prelu_model((3,))
    with pytest.raises(ValueError, match="quantize must be None, 'int8' or 'float16', got 'int4'"):
        to_tflite(model, quantize="int4")


def test_to_tflite_requires_representative_data_for_int8():
    model, _ = _prelu_model((3,))
    with pytest.raises(ValueError, match="needs representative_data"):
        to_tflite(model, quantize="int8")


def test_to_tflite_rejects_representative_data_without_int8():
    model, _ = _prelu_model((3,))
    with pytest.raises(ValueError, match="only used with quantize='int8'"):
        to_tflite(model, quantize="float16", representative_data=_inputs((4, 3)))


def test_to_tflite_rejects_representative_data_of_the_wrong_shape():
    model, _ = _prelu_model((3,))
    with pytest.raises(ValueError, match=r"samples of shape \(3,\).*shape \(4, 5\)"):
        to_tflite(model, quantize="int8", representative_data=_inputs((4, 5)))


def test_to_tflite_rejects_a_plain_python_function():
    with pytest.raises(TypeError, match="got function"):
        to_tflite(lambda x: x)


def test_to_tflite_rejects_a_tf_function_without_input_signature():
    with pytest.raises(ValueError, match="needs an input_signature"):
        to_tflite(tf.function(lambda x: x))


def test_to_tflite_rejects_a_model_without_a_defined_input():
    with pytest.raises(ValueError, match="no defined input; build it on keras.Input"):
        to_tflite(keras.Sequential([keras.layers.Dense(2)]))


def test_to_tflite_rejects_a_model_with_two_inputs():
    first, second = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([first, second], keras.layers.Add()([first, second]))
    with pytest.raises(ValueError, match="exactly one input, it takes 2"):
        to_tflite(model)


def test_tflite_ops_rejects_a_string():
    with pytest.raises(TypeError, match="blob must be the bytes"):
        tflite_ops("model.tflite")


def test_tflite_ops_rejects_bytes_that_are_not_a_tflite_model():
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        tflite_ops(b"\x00" * 64)


def test_run_tflite_rejects_input_of_the_wrong_shape():
    model, _ = _prelu_model((3,))
    with pytest.raises(ValueError, match=r"x of shape \(2, 4\) does not fit .* \(None, 3\)"):
        run_tflite(to_tflite(model), _inputs((2, 4)))


def test_to_tflite_keeps_the_converters_temporary_path_out_of_the_log():
    logger = tf.get_logger()
    records = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = records.append
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        to_tflite(_prelu_model((3,))[0])
        assert logger.level == logging.INFO  # restored after the conversion
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert not [record for record in records if "Assets written" in record.getMessage()]


# Bad input, odd ranks and broken blobs ------------------------------------------

INF_CALIBRATION = """
import numpy as np
import keras
import prelu_tutorial as pt

inputs = keras.Input((4,))
model = keras.Model(inputs, pt.PReLU()(inputs))
data = np.random.default_rng(0).uniform(-1, 1, size=(20, 4)).astype(np.float32)
data[3, 2] = np.inf
try:
    pt.export.to_tflite(model, quantize="int8", representative_data=data)
except ValueError as error:
    print("ValueError:", error)
"""


def test_an_infinite_calibration_value_is_a_value_error_not_a_crash():
    # Unchecked, the converter segfaults on it: run in a child process, so a
    # regression kills the child and fails this test instead of the test run.
    run = subprocess.run(
        [sys.executable, "-c", INF_CALIBRATION], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ValueError: to_tflite: representative_data holds 0 NaN and 1 infinite" in run.stdout
    assert "index (3, 2)" in run.stdout


def test_all_nan_calibration_is_a_value_error_instead_of_a_float32_model():
    model, _ = _prelu_model((4,))
    with pytest.raises(ValueError, match="80 NaN and 0 infinite"):
        to_tflite(model, quantize="int8", representative_data=np.full((20, 4), np.nan))


def test_non_numeric_calibration_data_is_a_value_error():
    model, _ = _prelu_model((2,))
    with pytest.raises(ValueError, match="must be real numbers"):
        to_tflite(model, quantize="int8", representative_data=[["a", "b"]])


@pytest.mark.parametrize(
    ("shared_axes", "expected_ops"),
    [
        (None, ["RESHAPE", "PRELU", "RESHAPE"]),
        ([1, 2, 3, 4], ["RESHAPE", "PRELU", "RESHAPE"]),
        ((), ["RESHAPE", "PRELU", "RESHAPE"]),
        ([2, 4], None),  # alternating shared axes: the select form instead
    ],
    ids=str,
)
def test_rank_five_prelu_converts_and_litert_matches_numpy(shared_axes, expected_ops):
    model, layer = _prelu_model((3, 4, 5, 2), shared_axes=shared_axes)
    alphas = np.random.default_rng(3).uniform(-1, 2, size=layer.alpha.shape).astype(np.float32)
    layer.alpha.assign(alphas)
    blob = to_tflite(model)
    if expected_ops is not None:
        assert tflite_ops(blob) == expected_ops
    else:
        assert "PRELU" not in tflite_ops(blob) and "SELECT_V2" in tflite_ops(blob)
    x = _inputs((2, 3, 4, 5, 2))
    np.testing.assert_allclose(run_tflite(blob, x), pt.ops.prelu_numpy(x, alphas), atol=1e-6)


def test_a_failed_conversion_is_a_one_line_value_error(capfd):
    svd = _function_of(lambda x: tf.linalg.svd(x)[0], [3, 3])
    with pytest.raises(ValueError) as error:
        to_tflite(svd)
    message = str(error.value)
    assert message.startswith("to_tflite: the converter failed: ") and "\n" not in message
    assert "tf.Svd" in message
    assert len(capfd.readouterr().err) < 2000


def test_run_tflite_runs_a_model_converted_with_an_unknown_rank():
    blob = to_tflite(_function_of(lambda x: pt.prelu(x, CHANNEL_ALPHAS), None))
    x = _inputs((2, 5, 3))
    np.testing.assert_allclose(run_tflite(blob, x), pt.ops.prelu_numpy(x, CHANNEL_ALPHAS))


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_blob_is_a_value_error_in_tflite_ops_and_run_tflite(keep):
    model, _ = _prelu_model((3,))
    blob = to_tflite(model)
    truncated = blob[: int(len(blob) * keep)]
    with pytest.raises(ValueError, match="truncated or corrupt"):
        tflite_ops(truncated)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        run_tflite(truncated, _inputs((1, 3)))


def test_corrupt_blob_is_a_value_error_in_tflite_ops():
    model, _ = _prelu_model((3,))
    corrupt = bytearray(to_tflite(model))
    corrupt[16:64] = b"\xff" * 48
    with pytest.raises(ValueError, match="truncated or corrupt"):
        tflite_ops(bytes(corrupt))


# The tracing both exporters share -----------------------------------------------


def _replacement_that_doubles(layer, inputs, index):
    return 2.0 * inputs


def test_calls_replaced_numbers_each_call_and_restores_the_layer():
    inputs = keras.Input((4, 3))
    wrapped = keras.layers.TimeDistributed(pt.PReLU(name="stepwise"))
    model = keras.Model(inputs, wrapped(inputs))
    layer = wrapped.layer
    x = _inputs((2, 4, 3))
    with calls_replaced(prelu_layers(model, "test"), _replacement_that_doubles) as calls:
        np.testing.assert_array_equal(model(x).numpy(), 2.0 * x)
    assert calls == ["stepwise"] * 4  # one call per time step
    assert "call" not in vars(layer)
    np.testing.assert_allclose(model(x).numpy(), pt.ops.prelu_numpy(x, layer.alpha.numpy()))


def test_calls_replaced_restores_the_layer_when_the_export_fails():
    model, layer = _prelu_model((3,))
    with pytest.raises(RuntimeError, match="converter broke"):
        with calls_replaced([layer], _replacement_that_doubles):
            raise RuntimeError("converter broke")
    assert "call" not in vars(layer)


def test_calls_replaced_leaves_other_threads_calling_the_layer_as_before():
    model, layer = _prelu_model((3,))
    x = _inputs((2, 3))
    results = {}
    with calls_replaced([layer], _replacement_that_doubles):
        thread = threading.Thread(target=lambda: results.update(other=model(x).numpy()))
        thread.start()
        thread.join()
        results["exporting"] = model(x).numpy()
    np.testing.assert_array_equal(results["exporting"], 2.0 * x)
    np.testing.assert_allclose(results["other"], pt.ops.prelu_numpy(x, layer.alpha.numpy()))


def test_prelu_layers_finds_nested_and_wrapped_layers_and_refuses_an_unbuilt_one():
    inner_inputs = keras.Input((3,))
    inner = keras.Model(inner_inputs, pt.PReLU(name="inner")(inner_inputs))
    inputs = keras.Input((3,))
    hidden = keras.layers.PReLU(name="keras_prelu")(inner(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    assert sorted(layer.name for layer in prelu_layers(model, "test")) == ["inner", "keras_prelu"]
    unbuilt = keras.Sequential([pt.PReLU(name="later")])
    with pytest.raises(ValueError, match="test: PReLU layer 'later' is not built"):
        prelu_layers(unbuilt, "test")

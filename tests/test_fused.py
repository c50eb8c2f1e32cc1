"""pt.prelu's fused kernel: values, gradients, modes, dtypes, Keras, TFLite, distribution."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert import interpreter as litert
from cases import DTYPES, RTOL, SPECIALS
from tf_versions import requires_tf

import prelu_tutorial as pt
from prelu_tutorial import ops, xla

# Gradients in alpha are sums: the fused kernel adds in another order (and
# 16-bit inputs in float32), so allow a few roundings of the sum.
GRAD_RTOL = {"float16": 1e-2, "bfloat16": 5e-2, "float32": 1e-5, "float64": 1e-12}


@pytest.fixture(autouse=True)
def fused_from_the_first_call(monkeypatch):
    """Eager calls take the fused kernel at once; the compile policy has its own tests."""
    monkeypatch.setattr(xla, "_compiles_in_eager", lambda x, alpha: True)


def in_mode(function, mode):
    """``function`` run eagerly, inside ``tf.function`` or compiled whole by XLA."""
    if mode == "eager":
        return function
    return tf.function(function, jit_compile=mode == "xla")


def as_float64(tensor):
    return np.asarray(tensor).astype(np.float64)


def gradients(function, x, alpha, upstream):
    """d/dx and d/dalpha of ``sum(function(x, alpha) * upstream)``."""
    with tf.GradientTape() as tape:
        tape.watch([x, alpha])
        y = function(x, alpha)
    return tape.gradient(y, [x, alpha], output_gradients=upstream)


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
@pytest.mark.parametrize("dtype_name", sorted(DTYPES))
@pytest.mark.parametrize("alpha", [0.25, 2.0, -0.5, 0.0, np.inf, np.nan])
def test_fused_prelu_equals_numpy_on_inf_nan_and_signed_zero(alpha, dtype_name, mode):
    x = SPECIALS.astype(DTYPES[dtype_name])
    actual = as_float64(in_mode(pt.prelu, mode)(tf.constant(x), tf.constant(alpha, tf.float32)))
    expected = ops.prelu_numpy(x, alpha).astype(np.float64)
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype_name], atol=0, equal_nan=True)


@requires_tf(
    (2, 21),
    "before it the fused sum max(0, x) + (-alpha) * max(-x, 0) gives +0.0 for x = -0.0, an "
    "equal value with the other sign than alpha * x (2.16.2, 2.17.1 and 2.20.0 tested)",
)
@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
@pytest.mark.parametrize("dtype_name", sorted(DTYPES))
@pytest.mark.parametrize("alpha", [0.25, 2.0])
def test_fused_prelu_gives_zeros_the_sign_of_the_reference_for_positive_alpha(
    alpha, dtype_name, mode
):
    # Documented: for alpha <= 0 a zero may carry either sign.
    x = SPECIALS.astype(DTYPES[dtype_name])
    actual = as_float64(in_mode(pt.prelu, mode)(tf.constant(x), tf.constant(alpha, tf.float32)))
    expected = ops.prelu_numpy(x, alpha).astype(np.float64)
    zeros = expected == 0
    np.testing.assert_array_equal(np.signbit(actual[zeros]), np.signbit(expected[zeros]))


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
@pytest.mark.parametrize("dtype_name", sorted(DTYPES))
def test_fused_prelu_equals_numpy_with_mixed_channel_alphas(dtype_name, mode):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4)).astype(DTYPES[dtype_name])
    alpha = np.array([0.1, -0.7, 1.5, 0.0])
    actual = in_mode(pt.prelu, mode)(tf.constant(x), alpha)
    expected = ops.prelu_numpy(x, alpha)
    np.testing.assert_allclose(
        as_float64(actual), expected.astype(np.float64), rtol=RTOL[dtype_name]
    )


# Shapes of x and alpha: channel-wise with a leading size that needs padding
# to the fold (3*5 = 15 rows) and one that does not (8*4 = 32), alpha shared on
# the trailing axis, on a middle axis, one scalar, and one alpha per element.
BROADCASTS = [
    ((3, 5, 4), (4,)),
    ((8, 4, 6), (1, 1, 6)),
    ((3, 4), (3, 1)),
    ((2, 3, 4, 5), (3, 1, 1)),
    ((6, 7), ()),
    ((2, 3), (2, 3)),
]


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
@pytest.mark.parametrize(("x_shape", "alpha_shape"), BROADCASTS, ids=str)
def test_fused_gradients_equal_the_where_formulation_away_from_zero(x_shape, alpha_shape, mode):
    rng = np.random.default_rng(1)
    x = rng.normal(size=x_shape)
    x = tf.constant(np.where(np.abs(x) < 0.05, 0.5, x))
    alpha = tf.constant(rng.uniform(-1.0, 2.0, size=alpha_shape))
    upstream = tf.constant(rng.normal(size=x_shape))
    fused_dx, fused_dalpha = in_mode(lambda *a: gradients(pt.prelu, *a), mode)(x, alpha, upstream)
    where_dx, where_dalpha = gradients(ops.prelu_where, x, alpha, upstream)
    np.testing.assert_allclose(fused_dx.numpy(), where_dx.numpy(), rtol=1e-15)
    np.testing.assert_allclose(fused_dalpha.numpy(), where_dalpha.numpy(), rtol=1e-12)
    assert fused_dalpha.shape == alpha.shape


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
@pytest.mark.parametrize("dtype_name", sorted(DTYPES))
def test_fused_gradients_match_the_float64_reference_in_every_dtype(dtype_name, mode):
    rng = np.random.default_rng(2)
    x64 = rng.normal(size=(16, 3, 4))
    x64 = np.where(np.abs(x64) < 0.05, -0.5, x64)
    upstream64 = rng.normal(size=x64.shape)
    x = x64.astype(DTYPES[dtype_name])
    upstream = upstream64.astype(DTYPES[dtype_name])
    dtype = tf.as_dtype(dtype_name)
    alpha = tf.constant([0.2, 0.5, 1.3, -0.4], dtype)
    dx, dalpha = in_mode(lambda *a: gradients(pt.prelu, *a), mode)(
        tf.constant(x), alpha, tf.constant(upstream)
    )
    # The reference, from the same rounded inputs, in float64.
    x_r, upstream_r = as_float64(x), as_float64(upstream)
    alpha_r = as_float64(alpha.numpy())
    expected_dx = np.where(x_r > 0, upstream_r, alpha_r * upstream_r)
    expected_dalpha = (upstream_r * np.minimum(x_r, 0)).sum(axis=(0, 1))
    np.testing.assert_allclose(as_float64(dx), expected_dx, rtol=RTOL[dtype_name])
    np.testing.assert_allclose(as_float64(dalpha), expected_dalpha, rtol=GRAD_RTOL[dtype_name])
    assert dx.dtype == dtype and dalpha.dtype == dtype


@pytest.mark.parametrize("mode", ["function", "xla"])
@pytest.mark.parametrize("zero", [0.0, -0.0])
def test_subgradient_at_zero_is_alpha_in_x_and_zero_in_alpha_when_compiled(zero, mode):
    x = tf.constant([zero, zero])
    alpha = tf.constant([0.25, -0.5])
    dx, dalpha = in_mode(lambda *a: gradients(pt.prelu, *a), mode)(x, alpha, tf.ones([2]))
    np.testing.assert_array_equal(dx.numpy(), [0.25, -0.5])
    np.testing.assert_array_equal(dalpha.numpy(), [0.0, 0.0])


def test_alpha_gradient_of_a_float16_input_is_summed_in_float32():
    # Terms of +-30000 that cancel: float16 partial sums would overflow to
    # -inf and +inf (float16 max 65504), and their sum would be NaN.
    x = tf.fill([4096, 1], tf.constant(-1.0, tf.float16))
    upstream = tf.constant(np.repeat([30000.0, -30000.0], 2048)[:, None], tf.float16)
    _, dalpha = gradients(pt.prelu, x, tf.constant([0.25], tf.float16), upstream)
    assert dalpha.numpy()[0] == 0.0


def test_same_shapes_do_not_retrace_and_new_batch_sizes_retrace_at_most_once():
    # Channel count 13 is used nowhere else, so earlier tests do not interfere.
    alpha = tf.Variable(tf.fill([1, 13], 0.25))
    forward_traces = xla._fused_forward.experimental_get_tracing_count()
    backward_traces = xla._fused_backward.experimental_get_tracing_count()
    for batch in [2, 3, 4, 5, 6, 3, 2]:
        x = tf.ones([batch, 3, 13])
        with tf.GradientTape() as tape:
            y = pt.prelu(x, alpha)
        tape.gradient(y, alpha)
    assert xla._fused_forward.experimental_get_tracing_count() - forward_traces <= 2
    assert xla._fused_backward.experimental_get_tracing_count() - backward_traces <= 2


def test_unknown_rank_inside_tf_function_falls_back_to_the_same_values_and_gradients():
    compiled = tf.function(
        lambda x, alpha: gradients(pt.prelu, x, alpha, tf.ones_like(x)) + [pt.prelu(x, alpha)],
        input_signature=[tf.TensorSpec(None, tf.float32), tf.TensorSpec([3], tf.float32)],
    )
    x = np.array([[-2.0, 0.0, 3.0]], np.float32)
    dx, dalpha, y = compiled(x, np.array([0.5, 0.25, 2.0], np.float32))
    np.testing.assert_array_equal(y.numpy(), [[-1.0, 0.0, 3.0]])
    np.testing.assert_array_equal(dx.numpy(), [[0.5, 0.25, 1.0]])
    np.testing.assert_array_equal(dalpha.numpy(), [-2.0, 0.0, 0.0])


def one_sgd_step_alpha(jit_compile):
    """Alpha after one SGD step of Keras fit on a PReLU-only model with MSE to 0."""
    x = np.array([[-2.0, 1.0, -0.5], [3.0, -1.0, -4.0]], np.float32)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, pt.PReLU()(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=jit_compile)
    model.fit(x, np.zeros_like(x), batch_size=2, epochs=1, verbose=0)
    assert model.jit_compile is jit_compile  # Keras turns XLA off under op determinism
    return x, model.layers[-1].alpha.numpy()


@pytest.mark.parametrize("jit_compile", [False, True])
def test_keras_fit_updates_alpha_by_the_hand_computed_gradient(jit_compile, op_determinism_off):
    x, alpha = one_sgd_step_alpha(jit_compile)
    y = ops.prelu_numpy(x, 0.25).astype(np.float64)
    # loss = mean(y**2), so dloss/dy = 2 y / size and dloss/dalpha = sum(dloss/dy * min(0, x)).
    dalpha = (2 * y / y.size * np.minimum(x, 0)).sum(axis=0)
    np.testing.assert_allclose(alpha, 0.25 - 0.1 * dalpha, rtol=1e-6)


def test_mixed_float16_model_matches_the_float32_reference(float32_policy):
    keras.mixed_precision.set_global_policy("mixed_float16")
    x = np.random.default_rng(3).normal(size=(4, 6, 6, 3)).astype(np.float16)
    layer = pt.PReLU()
    with tf.GradientTape() as tape:
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, tf.float32))
    grad = tape.gradient(loss, layer.alpha.value)
    assert y.dtype == tf.float16 and grad.dtype == tf.float32
    np.testing.assert_allclose(as_float64(y), ops.prelu_numpy(x, 0.25), rtol=RTOL["float16"])
    expected = np.minimum(x.astype(np.float64), 0).sum(axis=(0, 1, 2)).reshape(1, 1, 3)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-3)


@requires_tf(
    (2, 17),
    "TF 2.16's from_keras_model saves a Keras 3 model with tf.saved_model.save and its "
    "converter aborts the process freezing that model's variables ('missing attribute "
    "value', tensorflow/tensorflow#63987); pt.export.to_tflite converts there",
)
def test_tflite_conversion_gives_one_prelu_op_per_layer():
    images = keras.Input((6, 6, 4))
    features = keras.Input((5,))
    layers = [pt.PReLU(), pt.PReLU(shared_axes=[1, 2, 3]), pt.PReLU()]
    model = keras.Model([images, features], [layers[1](layers[0](images)), layers[2](features)])
    assert [tuple(layer.alpha.shape) for layer in layers] == [(1, 1, 4), (1, 1, 1), (5,)]
    blob = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    interpreter = litert.Interpreter(model_content=blob)
    assert [op["op_name"] for op in interpreter._get_ops_details()] == ["PRELU"] * 3


MIRRORED = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import prelu_tutorial as pt

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    x = np.random.default_rng(4).normal(size=(8, 5, 3)).astype(np.float32)
    with strategy.scope():
        alpha = tf.Variable([0.1, 0.5, 2.0])

    @tf.function
    def step(x):
        def replica(x):
            with tf.GradientTape() as tape:
                y = pt.prelu(x, alpha)
                loss = tf.reduce_sum(y)
            return y, tape.gradient(loss, alpha)

        y, grad = strategy.run(replica, args=(x,))
        return (
            strategy.gather(y, axis=0),
            strategy.reduce(tf.distribute.ReduceOp.SUM, grad, axis=None),
        )

    batches = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(x).batch(8)
    )
    y, grad = step(next(iter(batches)))
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "y": y.numpy().tolist(),
        "grad": grad.numpy().tolist(),
        "x": x.tolist(),
    }))
    """
)


def test_mirrored_strategy_on_two_cpus_gives_the_values_and_summed_gradient():
    # Logical devices must be set before TensorFlow starts: a fresh process.
    run = subprocess.run(
        [sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    x = np.array(result["x"], np.float32)
    alpha = np.array([0.1, 0.5, 2.0], np.float32)
    assert result["replicas"] == 2
    np.testing.assert_allclose(result["y"], ops.prelu_numpy(x, alpha), rtol=1e-6)
    np.testing.assert_allclose(result["grad"], np.minimum(x, 0).sum(axis=(0, 1)), rtol=1e-5)

"""prelu_tutorial.ops: every formulation against the NumPy reference, on every edge."""

import keras
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from cases import ATOL, DTYPES, RTOL, SPECIALS
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import prelu_tutorial as pt
from prelu_tutorial import ops

CORRECT_FOR_EVERY_ALPHA = ["minmax", "where", "keras", "relu_difference"]


def assert_matches_reference(actual, x, alpha, dtype_name):
    """Values equal the reference (NaN where it is NaN), within one rounding."""
    expected = ops.prelu_numpy(x, alpha).astype(np.float64)
    actual = np.asarray(actual).astype(np.float64)
    np.testing.assert_allclose(
        actual, expected, rtol=RTOL[dtype_name], atol=ATOL[dtype_name], equal_nan=True
    )


finite_arrays = st.sampled_from(sorted(DTYPES)).flatmap(
    lambda name: st.tuples(
        st.just(name),
        hnp.arrays(
            DTYPES[name] if name != "bfloat16" else np.float32,
            hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
            elements=st.floats(-1000, 1000, width=16),
        ).map(lambda a, n=name: a.astype(DTYPES[n])),
        st.floats(-2, 3, width=16),
    )
)


@pytest.mark.parametrize("name", CORRECT_FOR_EVERY_ALPHA + ["prelu"])
@settings(max_examples=40, deadline=None)
@given(case=finite_arrays)
def test_formulation_matches_numpy_for_alpha_in_minus_2_to_3(name, case):
    dtype_name, x, alpha = case
    function = pt.prelu if name == "prelu" else ops.FORMULATIONS[name]
    assert_matches_reference(function(tf.constant(x), alpha), x, alpha, dtype_name)


@pytest.mark.parametrize("name", ["abs", "maximum"])
@settings(max_examples=40, deadline=None)
@given(case=finite_arrays)
def test_restricted_formulation_matches_numpy_where_documented(name, case):
    dtype_name, x, alpha = case
    if name == "maximum":
        alpha = min(alpha, 1.0)  # documented valid range: alpha <= 1
    if name == "abs":
        x = np.clip(x, -100, 100).astype(x.dtype)  # x - |x| must not overflow
    assert_matches_reference(ops.FORMULATIONS[name](tf.constant(x), alpha), x, alpha, dtype_name)


@pytest.mark.parametrize("dtype_name", sorted(DTYPES))
@pytest.mark.parametrize("alpha", [0.25, 2.0, -0.5, 0.0])
@pytest.mark.parametrize("name", CORRECT_FOR_EVERY_ALPHA + ["prelu"])
def test_formulation_handles_inf_nan_and_signed_zero(name, alpha, dtype_name):
    x = SPECIALS.astype(DTYPES[dtype_name])
    function = pt.prelu if name == "prelu" else ops.FORMULATIONS[name]
    assert_matches_reference(function(tf.constant(x), alpha), x, alpha, dtype_name)


@pytest.mark.parametrize("dtype_name", sorted(DTYPES))
@pytest.mark.parametrize("alpha", [0.25, 2.0, -0.5, 0.0])
def test_eager_prelu_keeps_the_sign_of_zero_like_the_reference(alpha, dtype_name):
    # The first eager call (plain ops) and the later ones (compiled) alike.
    x = np.array([-0.0, 0.0], dtype=DTYPES[dtype_name])
    expected = np.signbit(ops.prelu_numpy(x, alpha).astype(np.float64))
    for _ in range(3):
        actual = pt.prelu(tf.constant(x), alpha).numpy().astype(np.float64)
        np.testing.assert_array_equal(np.signbit(actual), expected)


def test_prelu_zero_may_take_the_other_sign_for_negative_alpha_as_documented():
    # The fused kernel's max(0, x) + (-alpha) * max(-x, 0) at x = +0.0 is
    # 0.0 + 0.5 * 0.0 = +0.0, not -0.5 * 0.0 = -0.0 (inside tf.function it is fused).
    x = tf.constant(np.array([0.0], np.float32))
    result = tf.function(pt.prelu)(x, -0.5).numpy()[0]
    assert result == 0.0 and not np.signbit(result)
    assert np.signbit(ops.prelu_numpy(np.array([0.0], np.float32), -0.5)[0])


@pytest.mark.parametrize("dtype_name", sorted(DTYPES))
def test_abs_form_returns_nan_at_positive_infinity(dtype_name):
    x = tf.constant(np.array([np.inf], dtype=DTYPES[dtype_name]))
    assert np.isnan(ops.prelu_abs(x, 0.25).numpy().astype(np.float64)).all()


def test_abs_form_overflows_for_x_below_minus_half_the_largest_float():
    x = np.array([-40000.0], dtype=np.float16)  # x - |x| = -80000 > float16 max 65504
    assert ops.prelu_abs(tf.constant(x), 0.25).numpy()[0] == -np.inf
    assert ops.prelu_numpy(x, 0.25)[0] == np.float16(-10000.0)


@pytest.mark.parametrize("alpha", [1.5, 2.0, 3.0])
def test_maximum_form_is_wrong_on_both_sides_for_alpha_above_one(alpha):
    x = np.array([-2.0, -0.5, 0.5, 2.0], dtype=np.float32)
    actual = ops.prelu_maximum(tf.constant(x), alpha).numpy()
    np.testing.assert_allclose(actual, np.where(x > 0, alpha * x, x))
    assert not np.isclose(actual, ops.prelu_numpy(x, alpha)).any()


def test_formulations_registry_has_the_five_answers_and_the_subtraction_form():
    assert set(ops.FORMULATIONS) == {
        "abs",
        "minmax",
        "maximum",
        "where",
        "keras",
        "relu_difference",
    }


def _graph_op_types(function, x) -> list[str]:
    graph = tf.function(function).get_concrete_function(x).graph
    return sorted(op.type for op in graph.get_operations())


def test_keras_form_traces_to_the_ops_keras_layer_prelu_runs():
    x = tf.TensorSpec([2, 3], tf.float32)
    layer = keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25))
    layer.build((2, 3))
    alpha = tf.constant(np.full((3,), 0.25, np.float32))
    kinds = {"AddV2", "Mul", "Neg", "Relu", "Sub"}
    keras_ops = [t for t in _graph_op_types(layer, x) if t in kinds]
    ours = [t for t in _graph_op_types(lambda x: ops.prelu_keras(x, alpha), x) if t in kinds]
    assert ours == keras_ops
    assert "Sub" not in ours
    difference = _graph_op_types(lambda x: ops.prelu_relu_difference(x, alpha), x)
    assert "Sub" in difference


@pytest.mark.parametrize("dtype_name", sorted(DTYPES))
@pytest.mark.parametrize(
    "alpha",
    [
        0.25,
        np.float64(0.25),
        tf.constant(0.25, tf.float32),
        tf.Variable([0.1, 0.2, 0.3], dtype=tf.float64),
    ],
    ids=["python-float", "numpy-float64", "tf-float32", "tf-variable-float64"],
)
def test_prelu_output_dtype_follows_x_whatever_alpha_dtype(alpha, dtype_name):
    x = tf.constant(np.ones((2, 3), dtype=DTYPES[dtype_name]))
    assert pt.prelu(x, alpha).dtype == tf.as_dtype(dtype_name)


@pytest.mark.parametrize("alpha_shape", [(), (4,), (1, 4), (3, 1), (3, 4), (1, 1)], ids=str)
def test_prelu_accepts_any_alpha_shape_that_broadcasts_to_x(alpha_shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4)).astype(np.float32)
    alpha = rng.uniform(-1, 2, size=alpha_shape).astype(np.float32)
    assert_matches_reference(pt.prelu(x, alpha), x, alpha, "float32")


def test_prelu_accepts_numpy_arrays_and_lists_as_x():
    np.testing.assert_array_equal(pt.prelu([-2.0, 3.0], 0.5).numpy(), [-1.0, 3.0])


@pytest.mark.parametrize("dtype", [tf.int32, tf.int64, tf.uint8, tf.bool, tf.complex64])
def test_prelu_rejects_non_float_x_naming_the_dtype(dtype):
    x = tf.zeros([2], dtype=dtype)
    with pytest.raises(TypeError, match=dtype.name):
        pt.prelu(x, 0.25)


def test_prelu_rejects_complex_alpha_naming_the_dtype():
    with pytest.raises(TypeError, match="complex64"):
        pt.prelu(tf.zeros([2]), tf.constant([1 + 1j, 0j], tf.complex64))


@pytest.mark.parametrize(
    "alpha",
    [True, tf.constant([True, False]), np.bool_(True), np.array([True, False])],
    ids=["python", "tensor", "numpy-scalar", "numpy-array"],
)
def test_prelu_rejects_a_bool_alpha(alpha):
    with pytest.raises(TypeError, match="bool"):
        pt.prelu(tf.zeros([2]), alpha)


def test_prelu_rejects_alpha_none_with_a_type_error():
    with pytest.raises(TypeError, match="got None"):
        pt.prelu(tf.zeros([2]), None)


@pytest.mark.parametrize("alpha", ["0.25", [1 + 1j], object()], ids=["str", "complex", "object"])
def test_prelu_rejects_non_real_array_likes_as_alpha_with_a_type_error(alpha):
    with pytest.raises(TypeError, match="alpha must be a real number"):
        pt.prelu(tf.zeros([2]), alpha)


@pytest.mark.parametrize(
    "x",
    [tf.ragged.constant([[-1.0], [2.0, -3.0]]), tf.sparse.from_dense([[-1.0, 0.0]])],
    ids=["ragged", "sparse"],
)
def test_prelu_rejects_ragged_and_sparse_x_naming_the_type(x):
    with pytest.raises(TypeError, match=type(x).__name__):
        pt.prelu(x, 0.5)


def test_prelu_gradient_of_gradient_in_alpha_counts_the_non_positive_inputs():
    x = tf.constant([[-2.0, 3.0, -1.0, 0.0]])
    alpha = tf.Variable([0.25, 0.5, 0.75, 1.0])
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = pt.prelu(x, alpha)
        dx = inner.gradient(y, x)
    # d/dalpha of dx = where(x > 0, 1, alpha) is 1 where x <= 0.
    np.testing.assert_array_equal(outer.gradient(dx, alpha).numpy(), (x.numpy() <= 0)[0])


@pytest.mark.parametrize(
    ("x_shape", "alpha_shape"),
    [((2, 4), (3,)), ((2, 4), (2, 2)), ((4,), (2, 4)), ((1, 4), (5, 1, 4))],
)
def test_prelu_rejects_alpha_that_does_not_broadcast_naming_both_shapes(x_shape, alpha_shape):
    with pytest.raises(ValueError) as error:
        pt.prelu(tf.zeros(x_shape), tf.zeros(alpha_shape))
    message = str(error.value)
    assert str(tf.TensorShape(alpha_shape)) in message and str(tf.TensorShape(x_shape)) in message


def test_prelu_works_inside_tf_function_with_unknown_batch():
    compiled = tf.function(
        pt.prelu,
        input_signature=[tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([3], tf.float32)],
    )
    x = np.array([[-1.0, 0.0, 2.0], [4.0, -8.0, 0.5]], np.float32)
    alpha = np.array([0.1, 0.2, 3.0], np.float32)
    assert_matches_reference(compiled(x, alpha), x, alpha, "float32")


# Gradients --------------------------------------------------------------------

X_AWAY_FROM_ZERO = np.array([[-2.0, -0.7, 0.3, 1.9], [0.6, -1.1, 2.5, -0.2]])


@pytest.mark.parametrize("name", sorted(ops.FORMULATIONS) + ["prelu"])
def test_gradient_in_x_matches_finite_differences_away_from_zero(name):
    function = pt.prelu if name == "prelu" else ops.FORMULATIONS[name]
    alpha = tf.constant([0.1, 0.25, 0.5, 0.9], tf.float64)
    theoretical, numerical = tf.test.compute_gradient(
        lambda x: function(x, alpha), [tf.constant(X_AWAY_FROM_ZERO)]
    )
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)


@pytest.mark.parametrize("name", sorted(ops.FORMULATIONS) + ["prelu"])
def test_gradient_in_alpha_is_min_zero_x_summed_over_shared_axes(name):
    function = pt.prelu if name == "prelu" else ops.FORMULATIONS[name]
    x = tf.constant(X_AWAY_FROM_ZERO)
    alpha = tf.Variable([0.1, 0.25, 0.5, 0.9], dtype=tf.float64)
    with tf.GradientTape() as tape:
        y = function(x, alpha)
    grad = tape.gradient(y, alpha).numpy()
    np.testing.assert_allclose(grad, np.minimum(0.0, X_AWAY_FROM_ZERO).sum(axis=0))


@pytest.mark.parametrize("name", sorted(ops.FORMULATIONS) + ["prelu"])
def test_gradient_in_alpha_matches_finite_differences(name):
    function = pt.prelu if name == "prelu" else ops.FORMULATIONS[name]
    x = tf.constant(X_AWAY_FROM_ZERO)
    theoretical, numerical = tf.test.compute_gradient(
        lambda alpha: function(x, alpha), [tf.constant([0.1, 0.25, 0.5, 0.9], tf.float64)]
    )
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)


# The subgradient at exactly x = 0, as each docstring states it (alpha = 0.25).
SUBGRADIENT_AT_ZERO = {
    "abs": 0.125,
    "minmax": 0.0,
    "maximum": 0.25,
    "where": 0.25,
    "keras": 0.0,
    "relu_difference": 0.0,
    "prelu": 0.25,
}


@pytest.mark.parametrize("zero", [0.0, -0.0])
@pytest.mark.parametrize("name", sorted(SUBGRADIENT_AT_ZERO))
def test_subgradient_at_zero_is_the_documented_one(name, zero):
    function = pt.prelu if name == "prelu" else ops.FORMULATIONS[name]
    x = tf.constant([zero])
    alpha = tf.Variable(0.25)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = function(x, alpha)
    dx, dalpha = tape.gradient(y, [x, alpha])
    assert dx.numpy()[0] == SUBGRADIENT_AT_ZERO[name]
    assert dalpha.numpy() == 0.0


def test_prelu_gradient_flows_to_a_float32_alpha_from_a_float16_input():
    x = tf.constant([-2.0, 1.0], tf.float16)
    alpha = tf.Variable(0.25, dtype=tf.float32)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(pt.prelu(x, alpha))
    grad = tape.gradient(y, alpha)
    assert grad.dtype == tf.float32 and grad.numpy() == -2.0


def test_prelu_numpy_keeps_bfloat16_dtype():
    x = np.array([-2.0, 1.0], dtype=ml_dtypes.bfloat16)
    result = ops.prelu_numpy(x, 0.5)
    assert result.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(result.astype(np.float32), [-1.0, 1.0])

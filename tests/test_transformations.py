"""pt.prelu under transformations, shapes and dtypes: values and gradients always right.

Every case is checked against independent references: the values against
``prelu_numpy``, the gradients against autodiff of the bare ``prelu_where``
formula in float64 on the same rounded inputs.
"""

from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from cases import ATOL, DTYPES, RTOL
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import prelu_tutorial as pt
from prelu_tutorial import ops, xla

# The alpha gradient is a sum: allow this many roundings of the sum of |terms|.
SUM_RTOL = {"float16": 1e-3, "bfloat16": 8e-3, "float32": 1e-5, "float64": 1e-12}


@st.composite
def prelu_cases(draw):
    """x, alpha (any shape that broadcasts to one sample of x) and an upstream gradient."""
    dtype_name = draw(st.sampled_from(sorted(DTYPES)))
    # Few distinct shapes, so XLA's compiled kernels are reused across examples;
    # ranks 4 to 10 have their own tests below.
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.sampled_from([1, 3]), min_size=rank, max_size=rank)))
    alpha_rank = draw(st.integers(0, rank - 1))
    alpha_shape = tuple(size if draw(st.booleans()) else 1 for size in shape[rank - alpha_rank :])
    # Mixed precision: a float32 alpha behind a 16-bit x.
    alpha_dtype_name = draw(st.sampled_from(sorted({dtype_name, "float32"})))
    values = st.sampled_from([-3.0, -1.5, -0.25, -0.0, 0.0, 0.5, 2.0]) | st.floats(-4, 4, width=16)
    x = draw(hnp.arrays(np.float64, shape, elements=values))
    # Multiples of 1/8 are exact in every dtype, so only the product rounds.
    alpha = draw(
        hnp.arrays(np.float64, alpha_shape, elements=st.sampled_from(np.arange(-8, 17) / 8))
    )
    upstream = draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2, width=16)))
    x_dtype = DTYPES[dtype_name]
    return (
        dtype_name,
        x.astype(x_dtype),
        alpha.astype(DTYPES[alpha_dtype_name]),
        upstream.astype(x_dtype),
    )


def tape_gradients(function):
    """``(x, alpha, upstream) -> (y, dx, dalpha)`` for ``y = function(x, alpha)``."""

    def run(x, alpha, upstream):
        with tf.GradientTape() as tape:
            tape.watch([x, alpha])
            y = function(x, alpha)
        dx, dalpha = tape.gradient(y, [x, alpha], output_gradients=upstream)
        # vectorized_map's gather hands x its gradient as IndexedSlices.
        return y, tf.convert_to_tensor(dx), tf.convert_to_tensor(dalpha)

    return run


def jacobian_gradients(x, alpha, upstream):
    """The gradients as upstream contracted with the full jacobians (pfor over the backward)."""
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, alpha])
        y = pt.prelu(x, alpha)
    rank = len(x.shape)
    jacobian_x, jacobian_alpha = tape.jacobian(y, x), tape.jacobian(y, alpha)
    dx = tf.tensordot(upstream, jacobian_x, rank)
    dalpha = tf.tensordot(tf.cast(upstream, alpha.dtype), jacobian_alpha, rank)
    return y, tf.reshape(dx, tf.shape(x)), tf.reshape(dalpha, tf.shape(alpha))


def in_signature(x, alpha, upstream, unknown_rank=False):
    """A tf.function whose signature leaves every size of x (or its rank) unknown."""
    x_spec = tf.TensorSpec(None if unknown_rank else [None] * len(x.shape), x.dtype)
    return tf.function(
        tape_gradients(pt.prelu),
        input_signature=[x_spec, tf.TensorSpec(alpha.shape, alpha.dtype), x_spec],
    )


TRANSFORMATIONS = {
    "eager-fused": lambda x, a, u: tape_gradients(pt.prelu)(x, a, u),
    "eager-unfused": lambda x, a, u: tape_gradients(pt.prelu)(x, a, u),
    "tf.function": lambda x, a, u: tf.function(tape_gradients(pt.prelu))(x, a, u),
    "xla": lambda x, a, u: tf.function(tape_gradients(pt.prelu), jit_compile=True)(x, a, u),
    "unknown-sizes": lambda x, a, u: in_signature(x, a, u)(x, a, u),
    "unknown-rank": lambda x, a, u: in_signature(x, a, u, unknown_rank=True)(x, a, u),
    "vectorized_map": tape_gradients(
        lambda x, a: tf.vectorized_map(lambda row: pt.prelu(row, a), x)
    ),
    "map_fn": tape_gradients(lambda x, a: tf.map_fn(lambda row: pt.prelu(row, a), x)),
    "jacobian": jacobian_gradients,
}


def as64(value):
    """A float64 NumPy copy of a tensor or array (bfloat16 included)."""
    return np.asarray(value.numpy() if tf.is_tensor(value) else value).astype(np.float64)


def where_reference(x, alpha, upstream):
    """Values and gradients of the bare select formula, in float64."""
    x64, alpha64, upstream64 = (
        tf.constant(np.asarray(v).astype(np.float64)) for v in (x, alpha, upstream)
    )
    return tape_gradients(ops.prelu_where)(x64, alpha64, upstream64)


@pytest.mark.parametrize("transformation", sorted(TRANSFORMATIONS))
@settings(max_examples=8, deadline=None)
@given(case=prelu_cases())
def test_values_and_gradients_match_the_references_under_every_transformation(transformation, case):
    dtype_name, x, alpha, upstream = case
    # The eager compile policy picks the kernel; pin it so each path is tested.
    fused = transformation != "eager-unfused"
    with mock.patch.object(xla, "_compiles_in_eager", lambda x, alpha: fused):
        y, dx, dalpha = TRANSFORMATIONS[transformation](
            tf.constant(x), tf.constant(alpha), tf.constant(upstream)
        )
    assert y.shape == x.shape and dx.shape == x.shape and dalpha.shape == alpha.shape
    assert y.dtype == x.dtype and dx.dtype == x.dtype and dalpha.dtype == alpha.dtype
    _, expected_dx, expected_dalpha = where_reference(x, alpha, upstream)
    np.testing.assert_allclose(
        as64(y),
        ops.prelu_numpy(x, alpha).astype(np.float64),
        rtol=RTOL[dtype_name],
        atol=ATOL[dtype_name],
    )
    np.testing.assert_allclose(
        as64(dx), expected_dx.numpy(), rtol=RTOL[dtype_name], atol=ATOL[dtype_name]
    )
    terms = np.abs(as64(upstream) * np.minimum(as64(x), 0)).sum()
    alpha_name = alpha.dtype.name
    # A sum of |terms| roundings, plus the last rounding into alpha's dtype
    # (one subnormal step where the result is tiny).
    tolerance = SUM_RTOL[alpha_name] * terms + ATOL[alpha_name]
    np.testing.assert_allclose(as64(dalpha), expected_dalpha.numpy(), rtol=0, atol=tolerance)


# The cases from the issue, one plain test each ----------------------------------


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_vectorized_map_gradients_are_not_zero(fused):
    x = tf.constant([[-2.0, 1.0, 0.0], [3.0, -1.0, -4.0]])
    alpha = tf.constant([0.1, 0.5, 2.0])
    with mock.patch.object(xla, "_compiles_in_eager", lambda x, alpha: fused):
        with tf.GradientTape() as tape:
            tape.watch([x, alpha])
            y = tf.vectorized_map(lambda row: pt.prelu(row, alpha), x)
        dx, dalpha = tape.gradient(y, [x, alpha])
    np.testing.assert_allclose(dx.numpy(), [[0.1, 1.0, 2.0], [1.0, 0.5, 2.0]])
    np.testing.assert_allclose(dalpha.numpy(), [-2.0, -1.0, -4.0])


def test_unknown_sizes_never_broadcast_x_to_alphas_shape():
    compiled = tf.function(
        pt.prelu, input_signature=[tf.TensorSpec([None, None]), tf.TensorSpec([5])]
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="does not broadcast"):
        compiled(tf.ones([2, 1]), tf.ones([5]))
    np.testing.assert_array_equal(
        compiled(-tf.ones([2, 5]), tf.fill([5], 0.5)), -0.5 * np.ones((2, 5))
    )


def test_unknown_sizes_under_xla_fail_instead_of_broadcasting():
    compiled = tf.function(
        pt.prelu,
        input_signature=[tf.TensorSpec([None, None]), tf.TensorSpec([5])],
        jit_compile=True,
    )
    with pytest.raises(tf.errors.InvalidArgumentError):
        compiled(tf.ones([2, 1]), tf.ones([5]))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_float16_alpha_gradient_of_100000_inputs_is_exact_in_a_float32_variable(fused):
    x = tf.fill([100_000, 1], tf.constant(-1.0, tf.float16))
    alpha = tf.Variable([0.25], dtype=tf.float32)
    with mock.patch.object(xla, "_compiles_in_eager", lambda x, alpha: fused):
        with tf.GradientTape() as tape:
            y = pt.prelu(x, alpha)
        grad = tape.gradient(y, alpha)
    assert grad.dtype == tf.float32
    assert grad.numpy()[0] == -100_000.0


def test_mixed_float16_layer_on_a_large_feature_map_gets_a_finite_alpha_gradient(float32_policy):
    keras.mixed_precision.set_global_policy("mixed_float16")
    layer = pt.PReLU()
    x = -np.ones((64, 56, 56, 1), np.float16)  # 200,704 elements on one channel
    with tf.GradientTape() as tape:
        y = layer(x)
    grad = tape.gradient(y, layer.alpha.value)
    assert y.dtype == tf.float16 and grad.dtype == tf.float32
    assert grad.numpy().ravel()[0] == -200_704.0


def test_unknown_rank_above_eight_gives_the_reference_values():
    compiled = tf.function(pt.prelu, input_signature=[tf.TensorSpec(None), tf.TensorSpec([2])])
    x = np.random.default_rng(0).normal(size=(1, 2, 1, 1, 2, 1, 1, 1, 1, 2)).astype(np.float32)
    alpha = np.array([0.5, -1.5], np.float32)
    np.testing.assert_array_equal(compiled(x, alpha).numpy(), ops.prelu_numpy(x, alpha))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("shape", [(2, 3, 2, 2, 3), (2, 1, 2, 3, 2, 2)], ids=str)
def test_rank_five_and_six_match_numpy_and_the_where_gradients(shape, fused):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=shape))
    alpha = tf.constant(rng.uniform(-1, 2, size=(shape[1], 1, 1, shape[-1])))
    upstream = tf.constant(rng.normal(size=shape))
    with mock.patch.object(xla, "_compiles_in_eager", lambda x, alpha: fused):
        y, dx, dalpha = tape_gradients(pt.prelu)(x, alpha, upstream)
    _, expected_dx, expected_dalpha = where_reference(x, alpha, upstream)
    np.testing.assert_array_equal(y.numpy(), ops.prelu_numpy(x.numpy(), alpha.numpy()))
    np.testing.assert_allclose(dx.numpy(), expected_dx.numpy(), rtol=1e-15)
    np.testing.assert_allclose(dalpha.numpy(), expected_dalpha.numpy(), rtol=1e-12)


# The compile policy for variable shapes ------------------------------------------


@pytest.fixture
def fresh_policy(monkeypatch):
    monkeypatch.setattr(xla, "_sightings", type(xla._sightings)())
    monkeypatch.setattr(xla, "_compiled_shapes", set())


def test_eager_calls_compile_a_shape_the_second_time_it_is_seen(fresh_policy):
    alpha = tf.constant([0.25, 0.5])
    traces = xla._fused_forward.experimental_get_tracing_count()
    pt.prelu(tf.ones([3, 17, 2]), alpha)
    assert xla._fused_forward.experimental_get_tracing_count() == traces
    pt.prelu(tf.ones([3, 17, 2]), alpha)
    assert len(xla._compiled_shapes) == 1


def test_eager_calls_compile_at_most_the_bounded_number_of_shapes(fresh_policy, monkeypatch):
    monkeypatch.setattr(xla, "_MAX_COMPILED_SHAPES", 2)
    alpha = tf.constant([0.25])
    for batch in [1, 2, 3, 4, 1, 2, 3, 4]:
        x = -tf.ones([batch, 1])
        np.testing.assert_array_equal(pt.prelu(x, alpha).numpy(), np.full((batch, 1), -0.25))
    assert len(xla._compiled_shapes) == 2


def test_remembered_sightings_stay_bounded(fresh_policy, monkeypatch):
    monkeypatch.setattr(xla, "_MAX_TRACKED_SHAPES", 5)
    alpha = tf.constant([0.25])
    for batch in range(1, 20):
        pt.prelu(tf.ones([batch, 1]), alpha)
    assert len(xla._sightings) == 5 and not xla._compiled_shapes

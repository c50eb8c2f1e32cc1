"""prelu_tutorial.custom_op: the C++ op against NumPy, its gradients, threads, errors.

The layer on the op is tested in test_layers.py, its TFLite export in test_export.py.
"""

import itertools
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import tensorflow as tf
from cases import DTYPES
from hypothesis import given, settings
from hypothesis import strategies as st
from processes import stop

import prelu_tutorial as pt
from prelu_tutorial import custom_op
from prelu_tutorial.ops import prelu_numpy

# (x shape, alpha shape): every layout pt.PReLU produces, and others.
LAYOUTS = {
    "channels_last": ((2, 2, 3, 4), (1, 1, 4)),
    "channels_first": ((2, 4, 2, 3), (4, 1, 1)),
    "shared": ((2, 2, 3, 4), (1, 1, 1)),
    "scalar": ((3, 4, 2), ()),
    "per_element": ((2, 2, 3, 4), (2, 3, 4)),
    "middle_axes": ((2, 3, 2, 4), (3, 2, 1)),
    "rank_1": ((7,), (7,)),
    "apart_inner_kept": ((2, 3, 2, 4), (3, 1, 4)),
    "apart_inner_shared": ((2, 3, 4, 2, 5), (3, 1, 2, 1)),
}
# Large enough for many tiles, several threads, and runs cut into chunks.
LARGE_LAYOUTS = {
    "channels_last": ((64, 32, 32, 8), (1, 1, 8)),
    "channels_first": ((2, 3, 150, 150), (3, 1, 1)),
    "shared": ((16, 64, 64, 8), ()),
    "per_element": ((4, 100, 100, 8), (100, 100, 8)),
    "apart_inner_kept": ((8, 64, 32, 16), (64, 1, 16)),
    "apart_inner_shared": ((4, 32, 40, 8, 50), (32, 1, 8, 1)),
}


def layouts_of_rank(x_shape):
    """Every alpha for ``x_shape``: each subset of axes kept, from each rank up to x's."""
    rank = len(x_shape)
    for alpha_rank in range(rank + 1):
        axes = x_shape[rank - alpha_rank :]
        for kept in itertools.product([False, True], repeat=alpha_rank):
            yield tuple(size if keep else 1 for size, keep in zip(axes, kept, strict=True))


@pytest.fixture(autouse=True)
def library(custom_op_library):
    """Every test here needs the op: built once for the session (tests/conftest.py)."""
    return custom_op_library


def same_bits(actual, expected) -> bool:
    """Equal values, NaN where NaN, and the same sign of zero."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return bool(
        np.array_equal(actual, expected, equal_nan=True)
        and np.array_equal(np.signbit(actual), np.signbit(expected))
    )


def reference_gradients(x, alpha, upstream):
    """dx and dalpha from NumPy in float64: dy where x > 0 else alpha * dy; sum dy * min(x, 0)."""
    x, alpha, upstream = (np.asarray(v, dtype=np.float64) for v in (x, alpha, upstream))
    dx = np.where(x > 0, upstream, alpha * upstream)
    terms = upstream * np.minimum(x, 0)
    shared = tuple(range(x.ndim - alpha.ndim)) + tuple(
        x.ndim - alpha.ndim + k for k, size in enumerate(alpha.shape) if size == 1
    )
    dalpha = terms.sum(axis=shared, keepdims=True).reshape(alpha.shape)
    return dx, dalpha


magnitudes = st.floats(min_value=2.0**-4, max_value=2.0**8, width=16)
specials = st.sampled_from([np.inf, -np.inf, np.nan, -0.0, 0.0])
slopes = st.one_of(st.just(0.0), st.floats(min_value=2.0**-4, max_value=4.0, width=16))


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(sorted(DTYPES)),
    layout=st.sampled_from(sorted(LAYOUTS)),
    data=st.data(),
)
def test_op_equals_prelu_numpy_bit_for_bit_in_every_dtype_and_layout(dtype, layout, data):
    x_shape, alpha_shape = LAYOUTS[layout]
    size = int(np.prod(x_shape))
    signed = st.tuples(magnitudes, st.booleans()).map(lambda p: -p[0] if p[1] else p[0])
    values = data.draw(st.lists(st.one_of(signed, specials), min_size=size, max_size=size))
    slope_values = data.draw(
        st.lists(
            st.tuples(slopes, st.booleans()).map(lambda p: -p[0] if p[1] else p[0]),
            min_size=int(np.prod(alpha_shape)),
            max_size=int(np.prod(alpha_shape)),
        )
    )
    x = np.array(values).reshape(x_shape).astype(DTYPES[dtype])
    alpha = np.array(slope_values).reshape(alpha_shape).astype(DTYPES[dtype])
    result = custom_op.prelu(tf.constant(x), tf.constant(alpha))
    assert result.dtype == tf.as_dtype(dtype)
    assert same_bits(result.numpy(), prelu_numpy(x, alpha))


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_gradients_equal_the_numpy_reference(dtype, layout):
    x_shape, alpha_shape = LAYOUTS[layout]
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal(x_shape), dtype)
    alpha = tf.constant(rng.uniform(-1, 2, alpha_shape), dtype)
    upstream = tf.constant(rng.standard_normal(x_shape), dtype)
    with tf.GradientTape() as tape:
        tape.watch([x, alpha])
        y = custom_op.prelu(x, alpha)
    dx, dalpha = tape.gradient(y, [x, alpha], output_gradients=upstream)
    dx_ref, dalpha_ref = reference_gradients(x.numpy(), alpha.numpy(), upstream.numpy())
    assert dx.dtype == dalpha.dtype == tf.as_dtype(dtype)
    # dx is one product in x's dtype, rounded once like the reference.
    assert same_bits(dx.numpy(), dx_ref.astype(DTYPES[dtype]))
    # dalpha: summed in float32 (16-bit, float32) or float64, then rounded.
    tolerance = {"float16": 2e-3, "bfloat16": 1e-2, "float32": 1e-5, "float64": 1e-12}[dtype]
    np.testing.assert_allclose(
        dalpha.numpy().astype(np.float64), dalpha_ref, rtol=tolerance, atol=tolerance
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", sorted(LARGE_LAYOUTS))
def test_gradients_of_large_tensors_equal_the_numpy_reference(dtype, layout):
    x_shape, alpha_shape = LARGE_LAYOUTS[layout]
    rng = np.random.default_rng(11)
    x = tf.constant(rng.standard_normal(x_shape), dtype)
    alpha = tf.constant(rng.uniform(-1, 2, alpha_shape), dtype)
    upstream = tf.constant(rng.standard_normal(x_shape), dtype)
    assert same_bits(custom_op.prelu(x, alpha).numpy(), prelu_numpy(x.numpy(), alpha.numpy()))
    dx, dalpha = custom_op.op.load_library().prelu_tutorial_prelu_grad(upstream, x, alpha)
    dx_ref, dalpha_ref = reference_gradients(x.numpy(), alpha.numpy(), upstream.numpy())
    assert same_bits(dx.numpy(), dx_ref.astype(DTYPES[dtype]))
    tolerance = 1e-4 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(dalpha.numpy(), dalpha_ref, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("x_shape", [(2, 3, 4, 5), (3, 1, 4, 2, 3), (4, 1, 5)])
def test_every_alpha_layout_matches_numpy_forward_and_both_gradients(x_shape):
    # All 2**rank kept/shared patterns at every alpha rank: axes with their
    # own alphas next to each other or apart, x's axes of size 1 among them.
    rng = np.random.default_rng(12)
    x = tf.constant(rng.standard_normal(x_shape), tf.float32)
    upstream = tf.constant(rng.standard_normal(x_shape), tf.float32)
    checked = 0
    for alpha_shape in layouts_of_rank(x_shape):
        alpha = tf.constant(rng.uniform(-1, 2, alpha_shape), tf.float32)
        with tf.GradientTape() as tape:
            tape.watch([x, alpha])
            y = custom_op.prelu(x, alpha)
        dx, dalpha = tape.gradient(y, [x, alpha], output_gradients=upstream)
        dx_ref, dalpha_ref = reference_gradients(x.numpy(), alpha.numpy(), upstream.numpy())
        assert same_bits(y.numpy(), prelu_numpy(x.numpy(), alpha.numpy())), alpha_shape
        assert same_bits(dx.numpy(), dx_ref.astype(np.float32)), alpha_shape
        np.testing.assert_allclose(dalpha.numpy(), dalpha_ref, rtol=1e-5, atol=1e-5)
        checked += 1
    assert checked == sum(2**k for k in range(len(x_shape) + 1))


def test_shape_function_accepts_what_unknown_sizes_leave_possible():
    # Axis 2 of x has an unknown size: it may be 3 at run time. Before, the
    # shape function refused this at trace time as "not contiguous".
    traced = tf.function(
        custom_op.prelu,
        input_signature=[tf.TensorSpec([2, 4, None, 3]), tf.TensorSpec([4, 1, 3])],
    )
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    alpha = rng.uniform(0, 1, (4, 1, 3)).astype(np.float32)
    y = traced(x, alpha)
    assert y.shape == (2, 4, 5, 3)
    assert same_bits(y.numpy(), prelu_numpy(x, alpha))


@pytest.mark.parametrize("layout", ["channels_last", "channels_first", "scalar"])
def test_compute_gradient_agrees_with_finite_differences(layout):
    x_shape, alpha_shape = LAYOUTS[layout]
    rng = np.random.default_rng(2)
    # Away from the kink at 0, where finite differences straddle two slopes.
    magnitude = rng.uniform(0.1, 1.0, x_shape)
    x = tf.constant(np.where(rng.random(x_shape) < 0.5, -magnitude, magnitude))
    alpha = tf.constant(rng.uniform(-0.5, 1.5, alpha_shape))
    theoretical, numerical = tf.test.compute_gradient(custom_op.prelu, [x, alpha])
    for analytic, estimate in zip(theoretical, numerical, strict=True):
        np.testing.assert_allclose(analytic, estimate, atol=1e-7)


def test_second_order_gradients_equal_the_analytic_ones():
    rng = np.random.default_rng(3)
    x = tf.constant(rng.standard_normal((4, 3, 5)))
    alpha = tf.constant(rng.uniform(-1, 2, (1, 5)))
    upstream = tf.constant(rng.standard_normal((4, 3, 5)))
    u = rng.standard_normal((4, 3, 5))  # weights on dx
    v = rng.standard_normal((1, 5))  # weights on dalpha
    with tf.GradientTape(persistent=True) as outer:
        outer.watch([x, alpha, upstream])
        with tf.GradientTape() as inner:
            inner.watch([x, alpha])
            y = custom_op.prelu(x, alpha)
        dx, dalpha = inner.gradient(y, [x, alpha], output_gradients=upstream)
        objective = tf.reduce_sum(u * dx) + tf.reduce_sum(v * dalpha)
    grad_x, grad_alpha, grad_upstream = outer.gradient(objective, [x, alpha, upstream])
    xs, alphas, dys = x.numpy(), alpha.numpy(), upstream.numpy()
    not_positive = xs <= 0
    # objective = sum(u * where(x > 0, dy, alpha dy)) + sum(v * sum(dy * min(x, 0))).
    np.testing.assert_allclose(grad_x, np.where(not_positive, v * dys, 0), rtol=1e-12)
    np.testing.assert_allclose(
        grad_alpha, np.sum(np.where(not_positive, u * dys, 0), axis=(0, 1))[None], rtol=1e-12
    )
    np.testing.assert_allclose(
        grad_upstream,
        np.where(not_positive, alphas * u, u) + v * np.minimum(xs, 0),
        rtol=1e-12,
    )


def test_tf_function_with_unknown_sizes_and_vectorized_map_equal_numpy():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    alpha = rng.uniform(0, 1, (1, 1, 6)).astype(np.float32)
    signature = [tf.TensorSpec([None, None, None, 6]), tf.TensorSpec([1, 1, 6])]
    traced = tf.function(custom_op.prelu, input_signature=signature)
    assert same_bits(traced(x, alpha).numpy(), prelu_numpy(x, alpha))
    mapped = tf.vectorized_map(lambda sample: custom_op.prelu(sample, alpha), x)
    assert same_bits(mapped.numpy(), prelu_numpy(x, alpha))


def test_jacobian_is_the_diagonal_of_the_slopes():
    x = tf.constant([-2.0, -0.5, 0.0, 0.5, 2.0])
    alpha = tf.constant(0.3)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = custom_op.prelu(x, alpha)
    jacobian = tape.jacobian(y, x)
    expected = np.diag(np.where(x.numpy() > 0, 1.0, np.float32(0.3)))
    np.testing.assert_array_equal(jacobian.numpy(), expected.astype(np.float32))


DETERMINISM_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
    from prelu_tutorial import custom_op
    rng = np.random.default_rng(5)
    for x_shape, alpha_shape in [((16, 28, 28, 32), (1, 1, 32)),
                                 ((16, 32, 28, 28), (32, 1, 1)),
                                 ((16, 28, 28, 32), ()),
                                 ((4, 28, 28, 32), (28, 28, 32))]:
        for dtype in (tf.float16, tf.float32):
            x = tf.constant(rng.standard_normal(x_shape), dtype)
            alpha = tf.constant(rng.uniform(0, 1, alpha_shape), dtype)
            upstream = tf.constant(rng.standard_normal(x_shape), dtype)
            with tf.GradientTape() as tape:
                tape.watch(alpha)
                y = custom_op.prelu(x, alpha)
            dalpha = tape.gradient(y, alpha, output_gradients=upstream)
            print(dalpha.numpy().tobytes().hex())
    """
)


def test_dalpha_has_the_same_bits_on_one_thread_and_on_many():
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", DETERMINISM_SCRIPT, str(threads)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for threads in (1, 6)
    ]
    try:
        results = [process.communicate(timeout=300) for process in processes]
    finally:
        stop(processes)
    for process, (_, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    outputs = [stdout.split() for stdout, _ in results]
    assert len(outputs[0]) == 8
    assert outputs[0] == outputs[1]


def test_concurrent_calls_from_python_threads_each_get_their_own_result():
    rng = np.random.default_rng(6)
    inputs = [rng.standard_normal((8, 16, 16, 32)).astype(np.float32) for _ in range(8)]
    alpha = rng.uniform(0, 1, (1, 1, 32)).astype(np.float32)
    results = [None] * len(inputs)

    def work(index):
        x = tf.constant(inputs[index])
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = custom_op.prelu(x, alpha)
        results[index] = (y.numpy(), tape.gradient(y, x).numpy())

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    for x, (y, dx) in zip(inputs, results, strict=True):
        assert same_bits(y, prelu_numpy(x, alpha))
        assert same_bits(dx, np.where(x > 0, 1, alpha).astype(np.float32))


@pytest.mark.parametrize(
    ("x_shape", "alpha_shape", "reason"),
    [
        ((2, 3, 4), (5,), "1 or the size"),
        ((2, 3, 4), (3, 1, 1, 1), "more axes"),
        ((2, 3, 4, 5), (3, 2, 5), "1 or the size"),
    ],
)
def test_alpha_that_does_not_fit_raises_value_error_naming_both_shapes(
    x_shape, alpha_shape, reason
):
    x, alpha = tf.ones(x_shape), tf.ones(alpha_shape)
    for call in (custom_op.prelu, tf.function(custom_op.prelu)):
        with pytest.raises(ValueError, match=reason) as error:
            call(x, alpha)
        message = str(error.value)
        assert str(list(x_shape)).replace(" ", "") in message.replace(" ", "")
        assert str(list(alpha_shape)).replace(" ", "") in message.replace(" ", "")


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_the_fast_path_and_the_checked_path_give_the_same_bits_and_errors(dtype):
    # A tensor x with a floating variable alpha skips the argument checks; an array x with a
    # list alpha goes through them. Both must compute the same thing and refuse the same shapes.
    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 4, 5)).astype(DTYPES[dtype])
    x[0, 0, :3] = [np.inf, -np.inf, -0.0]
    alpha = [0.25, -0.5, 1.5, 0.0, -0.0]
    fast_alpha = tf.Variable(np.asarray(alpha, DTYPES[dtype]))
    fast = custom_op.prelu(tf.constant(x), fast_alpha)
    checked = custom_op.prelu(x, alpha)
    assert fast.dtype == checked.dtype
    assert same_bits(fast.numpy(), checked.numpy())
    for bad_x, bad_alpha in ((tf.constant(x), tf.Variable(tf.ones(4, fast_alpha.dtype))),
                             (x, [1.0] * 4)):
        with pytest.raises(ValueError, match="1 or the size"):
            custom_op.prelu(bad_x, bad_alpha)


def test_alpha_that_does_not_fit_an_unknown_shape_fails_at_run_time():
    traced = tf.function(
        custom_op.prelu, input_signature=[tf.TensorSpec([None, None]), tf.TensorSpec([None])]
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="does not fit x of shape"):
        traced(tf.ones((2, 3)), tf.ones((4,)))


def test_integer_x_raises_type_error_naming_the_dtype():
    with pytest.raises(TypeError, match="int32"):
        custom_op.prelu(tf.constant([1, 2]), 0.5)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_float32_alpha_behind_16_bit_x_gets_its_gradient_summed_in_float32(dtype):
    # 100,000 inputs of -1 on one channel: the true dalpha, -100,000, is past
    # float16's largest finite value (65504); a float32 sum is exact.
    x = tf.cast(-tf.ones((100_000, 1)), dtype)
    alpha = tf.Variable([0.25], dtype=tf.float32)
    with tf.GradientTape() as tape:
        y = custom_op.prelu(x, alpha)
    dalpha = tape.gradient(y, alpha)
    assert y.dtype == dtype
    assert dalpha.dtype == tf.float32
    assert dalpha.numpy().tolist() == [-100_000.0]


@pytest.mark.parametrize("alpha_dtype", sorted(DTYPES))
@pytest.mark.parametrize("x_dtype", sorted(DTYPES))
def test_alpha_of_any_dtype_gives_pt_prelus_values_and_gradients_bit_for_bit(x_dtype, alpha_dtype):
    # pt.prelu's semantics: alpha * x taken in float32 (float64 if either
    # is), rounded once to x's dtype; dalpha in alpha's dtype. A float32
    # alpha rounded to float16 first (the op before Talpha) differs by 1 ulp.
    # Infinities, NaN and signed zeros on two rows.
    rng = np.random.default_rng(3)
    x_values = rng.uniform(-4, 4, (5, 3, 4))
    x_values[0, :2] = [[np.inf, -np.inf, np.nan, -0.0], [0.0, -np.inf, -0.0, np.nan]]
    x_values = x_values.astype(DTYPES[x_dtype])
    alpha_values = np.array([0.1, -0.3, 1.7, 0.2501], DTYPES[alpha_dtype])
    upstream = rng.uniform(-2, 2, x_values.shape).astype(DTYPES[x_dtype])
    wide = np.float64 if "float64" in (x_dtype, alpha_dtype) else np.float32
    with np.errstate(invalid="ignore"):
        expected_y = np.where(
            x_values > 0, x_values, (alpha_values.astype(wide) * x_values.astype(wide))
        ).astype(DTYPES[x_dtype])
        expected_dx = np.where(
            x_values > 0, upstream, (alpha_values.astype(wide) * upstream.astype(wide))
        ).astype(DTYPES[x_dtype])
        _, expected_dalpha = reference_gradients(x_values, alpha_values, upstream)
    results = {}
    for name, function in (("custom_op", custom_op.prelu), ("pt.prelu", pt.prelu)):
        x, alpha = tf.constant(x_values), tf.Variable(alpha_values)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = function(x, alpha)
        dx, dalpha = tape.gradient(y, [x, alpha], output_gradients=tf.constant(upstream))
        results[name] = (y.numpy(), dx.numpy(), dalpha)
    y, dx, dalpha = results["custom_op"]
    assert same_bits(y, expected_y)
    assert same_bits(dx, expected_dx)
    assert same_bits(y, results["pt.prelu"][0])
    assert same_bits(dx, results["pt.prelu"][1])
    assert dalpha.dtype == tf.as_dtype(alpha_dtype)
    tolerance = {"float16": 2e-3, "bfloat16": 1e-2, "float32": 1e-5, "float64": 1e-12}
    np.testing.assert_allclose(
        dalpha.numpy().astype(np.float64),
        expected_dalpha,
        rtol=tolerance[alpha_dtype],
        atol=tolerance[alpha_dtype],
    )

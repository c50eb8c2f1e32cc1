"""pt.prelu gives one answer whichever path runs it.

The paths: an eager call with a shape seen for the first time (plain
TensorFlow ops), a later eager call (the compiled kernels), a
``tf.function``, a ``tf.function`` with ``jit_compile=True``, one whose
signature leaves the sizes unknown (the uncompiled graph path) and one that
leaves the rank unknown; and the C++ op of ``custom_op``, eager and in a
``tf.function``. The output and ``dx`` must have the same
bits on every path, except the sign of a zero output in a graph with a known
rank (the sum that TFLite fuses); ``dalpha`` may differ only by the order of
summation, and is never NaN where the definition's is finite.
The expected values come from NumPy in float64, not from TensorFlow.
"""

import functools

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from prelu_tutorial import ops, xla

DTYPES = {
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float32": np.float32,
    "float64": np.float64,
}
EDGES = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-40, -1e-40, 3.0, -3.0, -0.5, 60000.0]
BITS = {2: np.uint16, 4: np.uint32, 8: np.uint64}


@pytest.fixture
def fresh_policy(monkeypatch):
    """No shape seen or compiled yet: the next eager call takes the uncompiled path."""
    monkeypatch.setattr(xla, "_sightings", type(xla._sightings)())
    monkeypatch.setattr(xla, "_compiled_shapes", set())


def gradients(x, alpha, upstream, prelu=xla.prelu):
    with tf.GradientTape() as tape:
        tape.watch([x, alpha])
        y = prelu(x, alpha)
    dx, dalpha = tape.gradient(y, [x, alpha], output_gradients=upstream)
    return y, dx, dalpha


def run(function, *args):
    return tuple(value.numpy() for value in function(*args))


def graph_paths(x, alpha, upstream):
    """Each graph path to pt.prelu, as a fresh tf.function."""
    unknown_rank = [
        tf.TensorSpec(None, x.dtype),
        tf.TensorSpec(alpha.shape, alpha.dtype),
        tf.TensorSpec(None, upstream.dtype),
    ]
    unknown_sizes = [
        tf.TensorSpec([None] * x.shape.rank, x.dtype),
        tf.TensorSpec(alpha.shape, alpha.dtype),
        tf.TensorSpec([None] * x.shape.rank, upstream.dtype),
    ]
    return {
        "function": tf.function(gradients),
        "xla": tf.function(gradients, jit_compile=True),
        "unknown_sizes": tf.function(gradients, input_signature=unknown_sizes),
        "unknown_rank": tf.function(gradients, input_signature=unknown_rank),
    }


def bits(array):
    """The bit patterns, with every NaN made one NaN (its sign and payload carry no meaning)."""
    array = np.array(array)
    array[np.isnan(array.astype(np.float64))] = np.nan
    return array.view(BITS[array.dtype.itemsize])


def flushed(values, tiny):
    """``values`` with subnormals made zeros of the same sign, as TensorFlow's CPU kernels do."""
    return np.where(np.abs(values) < tiny, np.copysign(0.0, values), values)


def reference(x, alpha, upstream):
    """y, dx and dalpha of the definition in float64, rounded to the dtypes once.

    Products are taken in float32 (float64 if an input is) with subnormal
    inputs and results flushed to zero, as on a CPU with TensorFlow's
    floating-point mode; the float64 product of 16-bit inputs is exact.
    """
    tiny = np.finfo(np.float64 if np.float64 in (x.dtype, alpha.dtype) else np.float32).tiny
    with np.errstate(invalid="ignore", over="ignore"):
        wx = flushed(x.astype(np.float64), tiny)
        wa = np.broadcast_to(flushed(alpha.astype(np.float64), tiny), wx.shape)
        wg = flushed(upstream.astype(np.float64), tiny)
        y = np.where(wx > 0, wx, flushed(wa * wx, tiny))
        dx = np.where(wx > 0, wg, flushed(wa * wg, tiny))
        terms = np.minimum(wx, 0) * wg
    lead = wx.ndim - alpha.ndim
    axes = tuple(range(lead)) + tuple(
        lead + i for i, size in enumerate(alpha.shape) if size == 1 and wx.shape[lead + i] != 1
    )
    with np.errstate(invalid="ignore"):  # -inf + inf terms sum to NaN, as in TensorFlow
        dalpha = terms.sum(axis=axes) if axes else terms
    return y.astype(x.dtype), dx.astype(x.dtype), dalpha.reshape(alpha.shape)


@st.composite
def cases(draw):
    dtype_name = draw(st.sampled_from(sorted(DTYPES)))
    alpha_dtype_name = draw(st.sampled_from(sorted({dtype_name, "float32"})))
    shape = draw(st.sampled_from([(5,), (2, 3), (2, 3, 4), (1, 2, 1, 3), (2, 1, 2, 1, 3)]))
    alpha_shape = draw(st.sampled_from([(), shape[-1:], (1,) * (len(shape) - 1) + shape[-1:]]))
    values = st.sampled_from(EDGES) | st.floats(-100, 100, width=32)
    x = draw(hnp.arrays(np.float64, shape, elements=values))
    alpha = draw(
        hnp.arrays(np.float64, alpha_shape, elements=st.sampled_from([-1.5, -0.25, 0.0, 0.25, 3.0]))
    )
    upstream = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([-2.0, 0.5, 1.0])))
    with np.errstate(over="ignore"):
        return (
            x.astype(DTYPES[dtype_name]),
            alpha.astype(DTYPES[alpha_dtype_name]),
            upstream.astype(DTYPES[dtype_name]),
        )


def assert_one_answer(results, case):
    """Every result has the first eager call's bits for y and dx, and the reference's values."""
    x_np, alpha_np, upstream_np = case
    first = results["first"]
    y_ref, dx_ref, dalpha_ref = reference(x_np, alpha_np, upstream_np)
    for name, (y, dx, dalpha) in results.items():
        if name in GRAPHS_WITH_THE_FUSED_SUM:
            # A graph computes the sum TFLite fuses: a zero may take the other sign.
            y = np.where(y == 0, first[0], y)
        np.testing.assert_array_equal(bits(y), bits(first[0]), err_msg=f"y on {name}")
        np.testing.assert_array_equal(bits(dx), bits(first[1]), err_msg=f"dx on {name}")
        # Equal values to the reference (in a graph a zero may take the other sign).
        np.testing.assert_array_equal(y.astype(np.float64), y_ref.astype(np.float64))
        np.testing.assert_array_equal(dx.astype(np.float64), dx_ref.astype(np.float64))
        assert dalpha.dtype == alpha_np.dtype
        finite = np.isfinite(dalpha_ref)
        assert not np.isnan(dalpha.astype(np.float64)[finite]).any(), name
        np.testing.assert_allclose(
            dalpha.astype(np.float64)[finite],
            dalpha_ref.astype(alpha_np.dtype).astype(np.float64)[finite],
            rtol=1e-2 if alpha_np.dtype.itemsize == 2 else 1e-5,
            atol=1e-6,
            err_msg=f"dalpha on {name}",
        )


GRAPHS_WITH_THE_FUSED_SUM = ("function", "xla", "unknown_sizes")


@settings(max_examples=40, deadline=None)
@given(cases())
def test_every_path_gives_the_same_bits_as_the_first_eager_call(case):
    xla._sightings.clear()
    xla._compiled_shapes.clear()
    x, alpha, upstream = (tf.constant(v) for v in case)
    results = {"first": run(gradients, x, alpha, upstream)}
    results["later"] = [run(gradients, x, alpha, upstream) for _ in range(2)][-1]
    for name, path in graph_paths(x, alpha, upstream).items():
        results[name] = run(path, x, alpha, upstream)
    assert_one_answer(results, case)


@settings(max_examples=40, deadline=None)
@given(cases())
def test_the_cpp_op_gives_the_bits_of_pt_prelus_first_call(custom_op_library, case):
    # The op computes the definition in a graph too: its zeros keep their sign everywhere.
    from prelu_tutorial import custom_op  # built by the fixture, not by the package import

    op_gradients = functools.partial(gradients, prelu=custom_op.prelu)
    xla._sightings.clear()
    xla._compiled_shapes.clear()
    x, alpha, upstream = (tf.constant(v) for v in case)
    results = {
        "first": run(gradients, x, alpha, upstream),
        "custom_op": run(op_gradients, x, alpha, upstream),
        "custom_op_function": run(tf.function(op_gradients), x, alpha, upstream),
    }
    assert_one_answer(results, case)


def test_plus_inf_adds_zero_to_dalpha_on_the_first_call_too(fresh_policy):
    x = tf.constant([[np.inf, -1.0, np.inf], [2.0, -3.0, -0.5]] * 2, tf.float32)
    alpha = tf.constant([0.25, 0.5, 0.75])
    upstream = tf.fill(x.shape, 2.0)
    answers = [run(gradients, x, alpha, upstream)[2] for _ in range(3)]
    # min(0, x) * 2 summed per channel over 4 rows: +inf and 2.0 add nothing.
    expected = np.array([0.0, 2 * 2 * (-1.0 - 3.0), 2 * 2 * -0.5], np.float32)
    for answer in answers:
        np.testing.assert_array_equal(answer, expected)


# --- Python zeros: TensorFlow's scalar cache must not decide their sign -------------------------

ZERO_DTYPES = [tf.float16, tf.bfloat16, tf.float32, tf.float64]


def _entry_points(request):
    points = {"pt.prelu": xla.prelu, **{f"ops.{n}": f for n, f in ops.FORMULATIONS.items()}}
    try:
        request.getfixturevalue("custom_op_library")
    except pytest.skip.Exception:
        return points
    from prelu_tutorial import custom_op

    points["custom_op.prelu"] = custom_op.prelu
    return points


def _bits(tensor):
    return tensor.numpy().view(np.uint16 if tensor.dtype.size == 2 else f"u{tensor.dtype.size}")


@pytest.mark.parametrize("dtype", ZERO_DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("first", [-0.0, 0.0])
def test_a_python_zero_keeps_its_sign_whatever_was_converted_before(request, dtype, first):
    # TensorFlow caches the tensors of Python scalars by value, and -0.0 == 0.0: after
    # converting one zero, the other came back with the first one's sign.
    x = tf.constant([-1.0, -0.0, 0.0, 2.0], dtype)
    for name, prelu in _entry_points(request).items():
        second = -first
        tf.convert_to_tensor(first, dtype)  # what an earlier call may have left in the cache
        expected = prelu(x, tf.constant(np.asarray(second, dtype.as_numpy_dtype)))
        got = prelu(x, second)
        np.testing.assert_array_equal(_bits(got), _bits(expected), err_msg=f"{name} alpha")
        tf.convert_to_tensor(first, dtype)
        expected = prelu(tf.constant(np.asarray(second, dtype.as_numpy_dtype)), 0.25)
        if dtype == tf.float32:  # a Python x is float32
            np.testing.assert_array_equal(
                _bits(prelu(second, 0.25)), _bits(expected), err_msg=f"{name} x"
            )

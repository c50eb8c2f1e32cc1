"""When pt.prelu compiles inside a graph: per static trace, never per run-time image size."""

import numpy as np
import pytest
import tensorflow as tf

from prelu_tutorial import xla


def _must_compile_calls(function, *specs):
    """The function calls in a trace that XLA compiles (one compile per run-time shape each)."""
    graph = function.get_concrete_function(*specs).graph
    calls = []
    for operation in graph.get_operations():
        if operation.type in ("PartitionedCall", "StatefulPartitionedCall"):
            try:
                if operation.get_attr("_XlaMustCompile"):
                    calls.append(operation.name)
            except ValueError:
                pass
    return calls


def _step(x, alpha):
    with tf.GradientTape() as tape:
        tape.watch([x, alpha])
        y = xla.prelu(x, alpha)
    return y, *tape.gradient(y, [x, alpha])


ALPHA = tf.TensorSpec([3], tf.float32)


@pytest.mark.parametrize(
    ("shape", "compiles"),
    [([None, None, None, 3], False), ([2, None, 5, 3], False), ([None, 5, 5, 3], True),
     ([2, 5, 5, 3], True)],
)
def test_unknown_image_sizes_run_uncompiled_and_other_traces_compile(shape, compiles):
    # A new tf.function per shape: one traced for unknown sizes would serve the others too.
    calls = _must_compile_calls(tf.function(_step), tf.TensorSpec(shape), ALPHA)
    assert bool(calls) == compiles, calls


@pytest.mark.parametrize("alpha", [[0.25, -0.5, 2.0], [np.inf, -np.inf, np.nan]])
def test_the_uncompiled_graph_path_gives_the_compiled_paths_values(alpha):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    x[0, 0, 0] = [np.inf, -np.inf, np.nan]
    x[0, 0, 1] = [0.0, -0.0, 1e-40]
    upstream_free = tf.constant(x)
    alpha = tf.constant(alpha, tf.float32)
    relaxed = tf.function(_step, input_signature=[tf.TensorSpec([None, None, None, 3]), ALPHA])
    static = tf.function(_step, input_signature=[tf.TensorSpec(x.shape), ALPHA])
    y, dx, dalpha = relaxed(upstream_free, alpha)
    y_static, dx_static, dalpha_static = static(upstream_free, alpha)
    # Values equal (a zero may carry the other sign in a graph, as documented); dalpha up to
    # the order of summation.
    np.testing.assert_array_equal(y.numpy(), y_static.numpy())
    np.testing.assert_array_equal(y.numpy(), xla.prelu(upstream_free, alpha).numpy())
    np.testing.assert_array_equal(dx.numpy(), dx_static.numpy())
    np.testing.assert_allclose(dalpha.numpy(), dalpha_static.numpy(), rtol=1e-6)


def test_above_rank_8_unknown_sizes_still_compute():
    # TensorFlow's broadcasting kernels stop at rank 8; XLA's do not, so these compile.
    rng = np.random.default_rng(4)
    x = tf.constant(rng.standard_normal((2, 1, 2, 1, 2, 1, 2, 1, 2, 3)).astype(np.float32))
    for alpha in (tf.constant([0.1, -0.2, 0.3]), tf.fill([1, 2, 1, 2, 1, 2, 1, 2, 3], 0.5)):
        step = tf.function(_step, input_signature=[tf.TensorSpec([None] * 9 + [3]),
                                                   tf.TensorSpec(alpha.shape)])
        y, dx, dalpha = step(x, alpha)
        eager_y, eager_dx, eager_dalpha = _step(x, alpha)
        np.testing.assert_array_equal(y.numpy(), eager_y.numpy())
        np.testing.assert_array_equal(dx.numpy(), eager_dx.numpy())
        np.testing.assert_allclose(dalpha.numpy(), eager_dalpha.numpy(), rtol=1e-6)

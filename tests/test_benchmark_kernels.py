"""prelu_tutorial.benchmark.kernels: the kernels a graph runs, counted against counts by hand."""

import pytest
import tensorflow as tf
from tf_versions import requires_tf

import prelu_tutorial as pt
from prelu_tutorial import benchmark, ops

# Kernel counts, against the counts by hand: ReLU reads x and writes y (2
# passes); its gradient reads x and the upstream gradient and writes dx (3).

SHAPE = (2, 3, 3, 4)


def step(function):
    alpha = tf.Variable(tf.fill((1, 1, 4), 0.25))

    def forward_and_gradients(x, upstream):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = function(x, alpha)
        return y, tape.gradient(y, [x, alpha], output_gradients=upstream)

    return forward_and_gradients


def test_kernels_of_relu_are_relu_and_relu_grad():
    x = tf.ones(SHAPE)
    found = benchmark.kernels(step(lambda x, a: tf.nn.relu(x)), x, x)
    assert found == [benchmark.Kernel("Relu", 2), benchmark.Kernel("ReluGrad", 3)]


def test_kernels_count_each_op_of_the_where_form_without_xla():
    x = tf.ones(SHAPE)
    found = benchmark.kernels(lambda x: ops.prelu_where(x, 0.25), x)
    # Greater reads x, writes a mask; Mul reads x, writes alpha*x; Select reads 3, writes 1.
    assert [(k.name, k.passes) for k in found] == [("Greater", 2), ("Mul", 2), ("SelectV2", 4)]


@pytest.mark.parametrize("name", sorted(ops.FORMULATIONS))
def test_xla_fuses_each_forward_into_one_kernel_of_two_passes(name):
    x = tf.ones(SHAPE)
    found = benchmark.kernels(lambda x: ops.FORMULATIONS[name](x, 0.25), x, jit_compile=True)
    assert [k.passes for k in found] == [2]


def test_fused_prelu_training_step_makes_seven_passes_in_three_kernels():
    # 2*4*4 = 32 rows, a multiple of the fold (8): no rows are left over.
    x = tf.ones((2, 4, 4, 4))
    found = benchmark.kernels(step(pt.prelu), x, x, jit_compile=True)
    # Forward 2, dx 3, and the alpha gradient's chunk sums read x and the upstream gradient: 2.
    assert sorted(k.passes for k in found) == [2, 2, 3]


@requires_tf(
    (2, 20),
    "XLA before it (2.16.2, 2.17.1 and 2.19.1 tested) sums the rows left over by the fold in a "
    "fourth kernel, which reads only those rows but which kernels() counts as two passes",
)
def test_rows_left_over_by_the_fold_are_summed_in_the_same_kernel():
    x = tf.ones(SHAPE)  # 2*3*3 = 18 rows: 16 fold into 8 chunks, 2 are left over
    found = benchmark.kernels(step(pt.prelu), x, x, jit_compile=True)
    assert sorted(k.passes for k in found) == [2, 2, 3]

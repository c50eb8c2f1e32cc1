"""Bad arguments are a TypeError or ValueError that names them, on every implementation.

One family per test: bools hidden in lists, non-real or missing alphas,
ragged and sparse inputs, 0-d arrays given where a sequence or an axis is
expected.
"""

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

import prelu_tutorial as pt
from prelu_tutorial import compat_v1, custom_op

BAD_ALPHAS = {
    "bool in a list": [0.5, True],
    "nested bool": [[0.5], [np.True_]],
    "numpy bool": np.bool_(True),
    "complex": 0.5 + 1j,
    "complex tensor": tf.constant([0.5 + 1j]),
    "string": "0.25",
    "None": None,
}


def implementations():
    """pt.prelu always; the C++ op where a compiler builds it."""
    found = {"pt.prelu": pt.prelu}
    try:
        custom_op.load_library()
        found["custom_op.prelu"] = custom_op.prelu
    except custom_op.CompilerNotFoundError:  # the other tests of the op skip then too
        pass
    return found


@pytest.mark.parametrize("name", sorted(BAD_ALPHAS))
@pytest.mark.parametrize("implementation", sorted(implementations()))
def test_an_alpha_that_is_not_real_is_a_type_error_naming_alpha(implementation, name):
    with pytest.raises(TypeError, match=r"alpha"):
        implementations()[implementation](tf.constant([1.0, -2.0]), BAD_ALPHAS[name])


@pytest.mark.parametrize("implementation", sorted(implementations()))
def test_a_bool_hidden_in_x_is_a_type_error_naming_x(implementation):
    with pytest.raises(TypeError, match=r"x must hold real numbers"):
        implementations()[implementation]([[1.0, False]], 0.5)


@pytest.mark.parametrize("implementation", sorted(implementations()))
def test_ragged_and_sparse_inputs_are_type_errors(implementation):
    ragged = tf.ragged.constant([[1.0], [2.0, -3.0]])
    sparse = tf.sparse.from_dense(tf.constant([[0.0, -1.0]]))
    for value in (ragged, sparse):
        with pytest.raises(TypeError, match="x must be a dense tensor"):
            implementations()[implementation](value, 0.5)


@pytest.mark.parametrize("implementation", sorted(implementations()))
def test_a_bfloat16_numpy_alpha_is_real(implementation):
    alpha = np.array([0.25, 0.5], ml_dtypes.bfloat16)
    x = tf.constant([-2.0, -4.0], tf.bfloat16)
    result = implementations()[implementation](x, alpha)
    np.testing.assert_array_equal(result.numpy().astype(np.float32), [-0.5, -2.0])


def test_a_real_list_alpha_still_works():
    np.testing.assert_array_equal(
        pt.prelu(tf.constant([-2.0, -2.0]), [0.5, 2]).numpy(), [-1.0, -4.0]
    )


@pytest.mark.parametrize("value", [np.array(1.0), np.array(True), np.array("1")])
def test_a_0d_array_of_no_integer_is_a_value_error_naming_shared_axes(value):
    with pytest.raises(ValueError, match="shared_axes"):
        pt.PReLU(shared_axes=value)


def test_a_0d_integer_array_is_one_shared_axis():
    assert pt.PReLU(shared_axes=np.array(2)).shared_axes == (2,)


def test_run_in_graph_on_a_0d_x_is_a_value_error_naming_x():
    answer = next(iter(compat_v1.ANSWERS.values()))
    with pytest.raises(ValueError, match="x must have at least one axis"):
        compat_v1.run_in_graph(answer, np.float32(-2.0))

"""prelu_tutorial.compat_v1: each Stack Overflow answer's documented defect really happens."""

import numpy as np
import pytest

from prelu_tutorial import compat_v1, ops

X = np.array([[-2.0, -0.5, 0.0, 1.5, 3.0], [4.0, -1.0, 2.0, -3.0, 0.5]], np.float32)
FINITE_ALPHA = 0.25


@pytest.mark.parametrize(
    ("answer", "kwargs"),
    [
        (compat_v1.answer1_parametric_relu, {}),
        (compat_v1.answer2_prelu, {}),
        (compat_v1.answer3_prelu, {}),
        (compat_v1.answer6_prelu, {"name": "alpha1"}),
    ],
    ids=["answer1", "answer2", "answer3", "answer6"],
)
def test_each_answer_is_prelu_on_finite_input_with_a_small_alpha(answer, kwargs):
    result = compat_v1.run_in_graph(answer, X, alpha=FINITE_ALPHA, **kwargs)
    np.testing.assert_allclose(result, ops.prelu_numpy(X, FINITE_ALPHA), rtol=1e-6)


def test_answers_keep_their_initial_alpha_when_none_is_given():
    negative = np.array([[-1.0, -1.0, -1.0, -1.0, -1.0]], np.float32)
    assert (compat_v1.run_in_graph(compat_v1.answer1_parametric_relu, negative) == 0).all()
    np.testing.assert_allclose(compat_v1.run_in_graph(compat_v1.answer2_prelu, negative), -0.1)


def test_answer1_second_layer_clashes_on_the_variable_name():
    with pytest.raises(ValueError, match="Variable alpha already exists"):
        compat_v1.run_in_graph(compat_v1.answer1_parametric_relu, X, calls=2)


def test_answer1_hard_coded_float32_rejects_float16_input():
    with pytest.raises(TypeError, match="float16"):
        compat_v1.run_in_graph(compat_v1.answer1_parametric_relu, X.astype(np.float16))


def test_answer1_turns_positive_infinity_into_nan():
    x = np.array([[np.inf, -np.inf, 1.0, -1.0, 0.0]], np.float32)
    result = compat_v1.run_in_graph(compat_v1.answer1_parametric_relu, x, alpha=FINITE_ALPHA)
    assert np.isnan(result[0, 0])
    np.testing.assert_array_equal(result[0, 1:], ops.prelu_numpy(x, FINITE_ALPHA)[0, 1:])


def test_answer2_scopes_make_two_layers_work():
    result = compat_v1.run_in_graph(compat_v1.answer2_prelu, X, calls=2, alpha=0.5)
    np.testing.assert_allclose(result, ops.prelu_numpy(ops.prelu_numpy(X, 0.5), 0.5))


def test_answer2_python_zero_becomes_float32_and_rejects_float16_in_graph_mode():
    with pytest.raises(TypeError, match="float16"):
        compat_v1.run_in_graph(compat_v1.answer2_prelu, X.astype(np.float16))


def test_answer2_is_right_for_alpha_above_one_and_at_infinity():
    x = np.array([[np.inf, -np.inf, 2.0, -2.0, 0.0]], np.float32)
    result = compat_v1.run_in_graph(compat_v1.answer2_prelu, x, alpha=2.0)
    np.testing.assert_array_equal(result, ops.prelu_numpy(x, 2.0))


def test_answer3_alpha_has_the_batch_axis_so_an_unknown_batch_fails():
    with pytest.raises(ValueError, match="initializer"):
        compat_v1.run_in_graph(compat_v1.answer3_prelu, X, unknown_batch=True)


def test_answer3_is_wrong_for_alpha_above_one():
    result = compat_v1.run_in_graph(compat_v1.answer3_prelu, X, alpha=2.0)
    np.testing.assert_allclose(result, np.where(X > 0, 2.0 * X, X))
    wrong = result != ops.prelu_numpy(X, 2.0)
    np.testing.assert_array_equal(wrong, X != 0)


def test_answer6_distinct_names_avoid_the_clash_but_a_repeated_name_does_not():
    graph_result = compat_v1.run_in_graph(compat_v1.answer6_prelu, X, calls=1, name="alpha1")
    assert graph_result.shape == X.shape
    with pytest.raises(ValueError, match="Variable alpha1 already exists"):
        compat_v1.run_in_graph(compat_v1.answer6_prelu, X, calls=2, name="alpha1")


def test_answer6_two_layers_with_their_own_names_stack():
    def two_layers(x):
        return compat_v1.answer6_prelu(compat_v1.answer6_prelu(x, "alpha1"), "alpha2")

    result = compat_v1.run_in_graph(two_layers, X, alpha=0.5)
    np.testing.assert_allclose(result, ops.prelu_numpy(ops.prelu_numpy(X, 0.5), 0.5))


def test_answer6_keeps_answer1s_float32_and_infinity_defects():
    with pytest.raises(TypeError, match="float16"):
        compat_v1.run_in_graph(compat_v1.answer6_prelu, X.astype(np.float16), name="a")
    x = np.array([[np.inf, 1.0, -1.0, 0.0, 2.0]], np.float32)
    assert np.isnan(compat_v1.run_in_graph(compat_v1.answer6_prelu, x, name="a")[0, 0])


def test_run_in_graph_rejects_fewer_than_one_call():
    with pytest.raises(ValueError, match="run_in_graph: calls must be an integer >= 1, got 0"):
        compat_v1.run_in_graph(compat_v1.answer1_parametric_relu, X, calls=0)


def test_answers_registry_lists_the_four_tf1_answers_in_page_order():
    assert list(compat_v1.ANSWERS) == ["answer1", "answer2", "answer3", "answer6"]


@pytest.mark.parametrize("calls", [True, 1.5, "2", None], ids=repr)
def test_run_in_graph_rejects_a_non_integer_calls_naming_it(calls):
    with pytest.raises(TypeError, match=f"calls must be an integer >= 1, got {calls!r} of type"):
        compat_v1.run_in_graph(compat_v1.answer1_parametric_relu, X, calls=calls)

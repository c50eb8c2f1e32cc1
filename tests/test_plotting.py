"""prelu_tutorial.plotting: the plotted curves against hand-computed values."""

import matplotlib

matplotlib.use("Agg")  # No display in tests; must come before pyplot is imported.

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import prelu_tutorial as pt  # noqa: E402

ALPHA = 0.25


@pytest.fixture(autouse=True)
def close_figures():
    """Frees every figure a test made."""
    yield
    plt.close("all")


def plotted(figure, axes_index, line_index=0):
    """The (x, y) data of one plotted line, as float64 arrays."""
    line = figure.axes[axes_index].lines[line_index]
    return np.asarray(line.get_xdata(), np.float64), np.asarray(line.get_ydata(), np.float64)


def plot_prelu(**kwargs):
    """Plots PReLU with ALPHA alone on fresh axes."""
    return pt.plotting.plot_activations({"prelu": lambda x: pt.prelu(x, ALPHA)}, **kwargs)


def test_value_curve_of_prelu_equals_numpy_reference():
    figure = plot_prelu()
    x, y = plotted(figure, 0)
    np.testing.assert_allclose(y, pt.ops.prelu_numpy(x.astype(np.float32), ALPHA), rtol=1e-6)


def test_gradient_curve_of_prelu_is_one_for_positive_x():
    x, grad = plotted(plot_prelu(), 1)
    np.testing.assert_array_equal(grad[x > 0], 1.0)


def test_gradient_curve_of_prelu_is_alpha_for_negative_x():
    x, grad = plotted(plot_prelu(), 1)
    np.testing.assert_array_equal(grad[x < 0], ALPHA)


def test_grid_spans_x_range_with_num_points():
    x, _ = plotted(plot_prelu(x_range=(-2.0, 5.0), num_points=71), 0)
    assert x.shape == (71,)
    assert (x[0], x[-1]) == (-2.0, 5.0)


def test_one_line_per_function_in_order_on_both_axes():
    figure = pt.plotting.plot_activations(
        {"relu": tf.nn.relu, "double": lambda x: 2.0 * x}, x_range=(-1.0, 1.0)
    )
    for axes_index in (0, 1):
        labels = [line.get_label() for line in figure.axes[axes_index].lines[:2]]
        assert labels == ["relu", "double"]
    _, grad_double = plotted(figure, 1, line_index=1)
    np.testing.assert_array_equal(grad_double, 2.0)


def test_constant_function_gets_zero_gradient_curve():
    figure = pt.plotting.plot_activations({"zero": lambda x: tf.constant(0.0) * tf.ones(x.shape)})
    _, grad = plotted(figure, 1)
    np.testing.assert_array_equal(grad, 0.0)


def test_axes_are_labelled_and_titled():
    figure = plot_prelu()
    for ax, ylabel in zip(figure.axes, ["f(x)", "f'(x)"], strict=True):
        assert ax.get_xlabel() == "x"
        assert ax.get_ylabel() == ylabel
        assert ax.get_title()


def test_legend_on_value_axes_names_every_function():
    figure = pt.plotting.plot_activations({"relu": tf.nn.relu, "double": lambda x: 2.0 * x})
    legend_labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend_labels == ["relu", "double"]


def test_given_axes_are_used_and_their_figure_returned():
    figure, (ax_value, ax_grad) = plt.subplots(1, 2)
    returned = pt.plotting.plot_activations(
        {"prelu": lambda x: pt.prelu(x, ALPHA)}, ax_value=ax_value, ax_grad=ax_grad
    )
    assert returned is figure
    assert len(ax_value.lines) > 0 and len(ax_grad.lines) > 0


@pytest.mark.parametrize(
    "x_range",
    [(1.0, -1.0), (0.0, 0.0), (-np.inf, 1.0), (0.0, np.nan), (0.0, 1.0, 2.0)],
)
def test_bad_x_range_raises_value_error(x_range):
    with pytest.raises(ValueError, match="x_range"):
        plot_prelu(x_range=x_range)


def test_num_points_below_two_raises_value_error():
    with pytest.raises(ValueError, match="num_points must be an integer >= 2, got 1"):
        plot_prelu(num_points=1)


@pytest.mark.parametrize("num_points", [True, 50.0, "50"], ids=repr)
def test_num_points_that_is_not_an_integer_raises_type_error(num_points):
    with pytest.raises(TypeError, match="plot_activations: num_points must be an integer"):
        plot_prelu(num_points=num_points)


def test_empty_functions_raises_value_error():
    with pytest.raises(ValueError, match="functions"):
        pt.plotting.plot_activations({})


def test_non_callable_function_raises_type_error():
    with pytest.raises(TypeError, match="'relu'"):
        pt.plotting.plot_activations({"relu": 0.25})


def test_only_one_axes_given_raises_value_error():
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="ax_grad"):
        pt.plotting.plot_activations({"relu": tf.nn.relu}, ax_value=ax)

"""Plots for the book: activation functions beside their derivatives."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from prelu_tutorial._number_checks import check_int

__all__ = ["plot_activations"]

# Type sizes (points) for a figure that plot_activations makes itself.
OWN_FIGURE_FONT_SIZES = {"ticks": 12, "labels": 12, "titles": 13, "legend": 11}


def plot_activations(
    functions: Mapping[str, Callable[[tf.Tensor], tf.Tensor]],
    x_range: tuple[float, float] = (-3.0, 3.0),
    ax_value: Axes | None = None,
    ax_grad: Axes | None = None,
    num_points: int = 601,
) -> Figure:
    """Plots each activation function (left) and its derivative (right).

    Both axes get labels and a title; the legend goes on the left axes and
    each function keeps its colour on the right. A figure made here is 10
    inches wide with 12 pt tick labels, so that they stay legible (about
    11 px) when the page shows it at a 700 px wide text column.

    The derivative is what TensorFlow computes, measured with
    ``tf.GradientTape`` on a float32 grid, so kinks show the subgradient
    TensorFlow picks there. Each function must act element-wise.

    Args:
        functions: Legend label -> function of one float32 tensor, e.g.
            ``{"PReLU, alpha = 0.25": lambda x: pt.prelu(x, 0.25)}``.
        x_range: ``(low, high)``, finite, with ``low < high``.
        ax_value: Axes for the functions; give both axes or neither. With
            neither, a new figure with two axes side by side is made.
        ax_grad: Axes for the derivatives.
        num_points: Number of grid points, at least 2.

    Returns:
        The figure that holds the axes. The curves are drawn before the
        zero guide lines, so on fresh axes line ``i`` belongs to the ``i``-th
        function: ``figure.axes[1].lines[i].get_ydata()`` is its derivative.

    Raises:
        ValueError: If ``functions`` is empty, ``x_range`` is not two finite
            numbers in increasing order, ``num_points < 2``, or only one of
            ``ax_value``/``ax_grad`` is given.
        TypeError: If a value of ``functions`` is not callable, or
            ``num_points`` is not an integer (a bool included).
    """
    if not functions:
        raise ValueError("plot_activations: functions is empty; give at least one.")
    for label, function in functions.items():
        if not callable(function):
            raise TypeError(
                f"plot_activations: functions[{label!r}] must be callable, "
                f"got {type(function).__name__}."
            )
    if len(x_range) != 2 or not all(math.isfinite(bound) for bound in x_range):
        raise ValueError(f"plot_activations: x_range must be two finite numbers, got {x_range!r}.")
    low, high = x_range
    if not low < high:
        raise ValueError(f"plot_activations: x_range must have low < high, got {x_range!r}.")
    num_points = check_int(num_points, "num_points", minimum=2, owner="plot_activations")
    if (ax_value is None) != (ax_grad is None):
        raise ValueError("plot_activations: give both ax_value and ax_grad, or neither.")

    own_figure = ax_value is None
    if own_figure:
        # Constrained layout keeps a figure.suptitle() clear of the axes titles.
        figure, (ax_value, ax_grad) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    else:
        figure = ax_value.figure

    x = tf.constant(np.linspace(low, high, num_points), dtype=tf.float32)
    for label, function in functions.items():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = function(x)
        # A function that ignores x (a constant) has no gradient: its slope is 0.
        grad = tape.gradient(y, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        ax_value.plot(x.numpy(), np.asarray(y), label=label)
        ax_grad.plot(x.numpy(), np.asarray(grad), label=label)

    for ax, ylabel, title in (
        (ax_value, "f(x)", "Activation functions"),
        (ax_grad, "f'(x)", "Derivatives (tf.GradientTape)"),
    ):
        ax.set_xlabel("x")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.axvline(0.0, color="grey", linewidth=0.5)
        ax.grid(True, alpha=0.3)
        if own_figure:
            ax.tick_params(labelsize=OWN_FIGURE_FONT_SIZES["ticks"])
            ax.xaxis.label.set_fontsize(OWN_FIGURE_FONT_SIZES["labels"])
            ax.yaxis.label.set_fontsize(OWN_FIGURE_FONT_SIZES["labels"])
            ax.title.set_fontsize(OWN_FIGURE_FONT_SIZES["titles"])
    # Both axes use the same colours; one legend keeps the derivative steps visible.
    ax_value.legend(fontsize=OWN_FIGURE_FONT_SIZES["legend"] if own_figure else None)
    return figure

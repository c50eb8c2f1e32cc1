"""The paper's weight initialization for PReLU networks (He et al., 2015, section 2.2).

A layer ``y = W x`` followed by a PReLU with slope ``a`` keeps the variance of
its signal from layer to layer when every weight has variance

    Var[w] = 2 / ((1 + a**2) * n)

where ``n`` is the layer's fan-in (forward condition) or fan-out (backward
condition, for the gradients). ``a = 0`` is the ReLU case, ``2 / n``; ``a = 1``
is a linear layer, ``1 / n``. For a Keras kernel ``n`` is what
``keras.initializers.VarianceScaling`` computes: for a ``Dense`` kernel of
shape ``(in, out)`` the fan-in is ``in`` and the fan-out ``out``; for a
``Conv2D`` kernel of shape ``(kh, kw, in_channels, out_channels)`` they are
``kh * kw * in_channels`` and ``kh * kw * out_channels``.

Both initializers here are ``VarianceScaling`` with ``scale = 2 / (1 + a**2)``:

- :class:`PReLUHeNormal` draws from an *untruncated* normal, as the paper
  (and PyTorch's ``torch.nn.init.kaiming_normal_(w, a=alpha)``) does.
- :class:`PReLUHeUniform` draws from ``U(-limit, limit)`` with
  ``limit = sqrt(6 / ((1 + a**2) * n))``, the same variance, as PyTorch's
  ``kaiming_uniform_(w, a=alpha)``.
"""

from __future__ import annotations

from typing import Any

import keras

from prelu_tutorial._number_checks import check_real

__all__ = ["PReLUHeNormal", "PReLUHeUniform"]

_MODES = ("fan_in", "fan_out")


def _checked_alpha(alpha: Any, owner: str) -> float:
    """Returns ``alpha`` as a Python float, or raises for a value the formula cannot use."""
    alpha = check_real(alpha, "alpha", owner=owner)
    if not 2.0 / (1.0 + alpha * alpha) > 0.0:
        raise ValueError(
            f"{owner}: alpha={alpha!r} is so large that the variance 2 / (1 + alpha**2) "
            "underflows to 0."
        )
    return alpha


def _checked_mode(mode: Any, owner: str) -> str:
    """Returns ``mode`` if it is ``"fan_in"`` or ``"fan_out"``, or raises."""
    if not isinstance(mode, str):
        raise TypeError(
            f"{owner}: mode must be the string 'fan_in' or 'fan_out', got {mode!r} "
            f"of type {type(mode).__name__}."
        )
    if mode not in _MODES:
        raise ValueError(
            f"{owner}: mode must be 'fan_in' (forward condition) or 'fan_out' "
            f"(backward condition), got {mode!r}."
        )
    return mode


class _PReLUVarianceScaling(keras.initializers.VarianceScaling):
    """``VarianceScaling`` with ``scale = 2 / (1 + alpha**2)``; subclasses fix the distribution."""

    _distribution = ""

    def __init__(self, alpha: float = 0.25, mode: str = "fan_in", seed: Any = None) -> None:
        owner = type(self).__name__
        alpha = _checked_alpha(alpha, owner)
        mode = _checked_mode(mode, owner)
        super().__init__(
            scale=2.0 / (1.0 + alpha * alpha),
            mode=mode,
            distribution=self._distribution,
            seed=seed,
        )
        self.alpha = alpha

    def get_config(self) -> dict[str, Any]:
        # Only the arguments of __init__: scale and distribution follow from them.
        return {
            "alpha": self.alpha,
            "mode": self.mode,
            "seed": keras.saving.serialize_keras_object(self._init_seed),
        }


@keras.saving.register_keras_serializable(package="prelu_tutorial")
class PReLUHeNormal(_PReLUVarianceScaling):
    """He et al.'s (2015) normal initializer for a layer followed by PReLU(alpha).

    Draws from an untruncated normal distribution with mean 0 and

        stddev = sqrt(2 / ((1 + alpha**2) * n))

    with ``n`` the fan-in (``mode="fan_in"``, the paper's forward condition,
    which keeps the activations' variance) or the fan-out (``mode="fan_out"``,
    the backward condition, which keeps the gradients' variance). It is
    ``keras.initializers.VarianceScaling(scale=2 / (1 + alpha**2), mode=mode,
    distribution="untruncated_normal")``.

    How it relates to the others:

    - ``keras.initializers.HeNormal()`` is ``VarianceScaling(scale=2.0,
      mode="fan_in", distribution="truncated_normal")``: it draws from a
      normal cut at two standard deviations, widened (stddev divided by
      0.8796) so that the variance after the cut is still ``2 / fan_in``. So
      ``PReLUHeNormal(alpha=0)`` has exactly HeNormal's variance, but its
      samples are not bounded: HeNormal never exceeds about ``2.27`` times
      its standard deviation, and it has no slope argument (it assumes a
      ReLU, ``alpha = 0``).
    - PyTorch's ``torch.nn.init.kaiming_normal_(w, a=alpha, mode=mode)``
      (``nonlinearity="leaky_relu"``, its default) uses the gain
      ``sqrt(2 / (1 + a**2))`` and ``stddev = gain / sqrt(n)``, untruncated:
      the same distribution, with the same ``fan_in`` default. (PyTorch
      computes the fans from its own ``(out, in, kh, kw)`` layout; the
      numbers are the same for the same layer.)

    Args:
        alpha: The PReLU slope the layer's output goes through, a finite real
            number. For a learned slope pass its initial value (the paper's
            0.25, the default); ``0`` gives the ReLU case.
        mode: ``"fan_in"`` (default) or ``"fan_out"``.
        seed: A Python integer or a ``keras.random.SeedGenerator``, as for
            every Keras random initializer.

    Raises:
        TypeError: If ``alpha`` is not a real number (a bool, a string,
            ``None``...) or ``mode`` is not a string.
        ValueError: If ``alpha`` is NaN or infinite (or so large that the
            variance underflows to 0), or ``mode`` is neither ``"fan_in"``
            nor ``"fan_out"``.
    """

    _distribution = "untruncated_normal"


@keras.saving.register_keras_serializable(package="prelu_tutorial")
class PReLUHeUniform(_PReLUVarianceScaling):
    """He et al.'s (2015) variance for PReLU(alpha), from a uniform distribution.

    Draws from ``U(-limit, limit)`` with

        limit = sqrt(6 / ((1 + alpha**2) * n))

    so the variance ``limit**2 / 3`` is the paper's ``2 / ((1 + alpha**2) * n)``,
    with ``n`` the fan-in or fan-out as for :class:`PReLUHeNormal`. It is
    ``keras.initializers.VarianceScaling(scale=2 / (1 + alpha**2), mode=mode,
    distribution="uniform")``. With ``alpha = 0`` and ``mode="fan_in"`` it is
    the same distribution as ``keras.initializers.HeUniform()``; it is
    PyTorch's ``torch.nn.init.kaiming_uniform_(w, a=alpha, mode=mode)``.

    Args:
        alpha: The PReLU slope, a finite real number; default 0.25.
        mode: ``"fan_in"`` (default) or ``"fan_out"``.
        seed: A Python integer or a ``keras.random.SeedGenerator``.

    Raises:
        TypeError: If ``alpha`` is not a real number or ``mode`` is not a
            string.
        ValueError: If ``alpha`` is NaN or infinite (or so large that the
            variance underflows to 0), or ``mode`` is neither ``"fan_in"``
            nor ``"fan_out"``.
    """

    _distribution = "uniform"

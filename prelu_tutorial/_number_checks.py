"""The integer and real-number argument checks, in plain Python and NumPy.

Apart from :mod:`prelu_tutorial._checks` because they import no TensorFlow:
the multi-worker launcher (:mod:`prelu_tutorial.distribute.launcher`) uses
them and must not load TensorFlow. Every module imports them from here: the
rule "an integer >= n, not a bool" is written once, in :func:`is_integer`
and :func:`check_int`.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["check_int", "check_real", "is_integer"]


def _prefix(owner: str) -> str:
    return f"{owner}: " if owner else ""


def is_integer(value: Any) -> bool:
    """Whether ``value`` is a Python or NumPy integer and not a bool.

    ``bool`` is a subclass of ``int`` in Python, so ``isinstance(True, int)``
    holds; an argument that counts or indexes must still refuse ``True``.

    Args:
        value: Anything.

    Returns:
        ``True`` for ``3`` and ``np.int64(3)``; ``False`` for ``True``,
        ``np.bool_(True)``, ``3.0`` and ``"3"``.
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value: Any, name: str, *, minimum: int = 0, owner: str = "") -> int:
    """``value`` as a Python int if it is an integer ``>= minimum`` and not a bool.

    Args:
        value: The argument to check (a NumPy integer is accepted).
        name: The argument's name, for the message.
        minimum: The smallest value allowed.
        owner: The function or class that takes the argument, for the message.

    Returns:
        ``int(value)``.

    Raises:
        TypeError: If ``value`` is a bool or not an integer.
        ValueError: If ``value < minimum``.
    """
    if not is_integer(value):
        raise TypeError(
            f"{_prefix(owner)}{name} must be an integer >= {minimum}, "
            f"got {value!r} of type {type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(f"{_prefix(owner)}{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_real(
    value: Any,
    name: str,
    *,
    owner: str = "",
    minimum: float | None = None,
    inclusive: bool = True,
) -> float:
    """``value`` as a finite Python float, if it is a real number and not a bool.

    Args:
        value: The argument to check.
        name: The argument's name, for the message.
        owner: The function or class that takes the argument, for the message.
        minimum: If given, the smallest value allowed.
        inclusive: Whether ``minimum`` itself is allowed.

    Returns:
        ``float(value)``.

    Raises:
        TypeError: If ``value`` is a bool or not a real number.
        ValueError: If ``value`` is NaN or infinite, or below ``minimum``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{_prefix(owner)}{name} must be a real number, "
            f"got {value!r} of type {type(value).__name__}."
        )
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(f"{_prefix(owner)}{name} must be finite, got {value!r}.")
    if minimum is not None and (number < minimum or (not inclusive and number == minimum)):
        bound = ">=" if inclusive else ">"
        raise ValueError(f"{_prefix(owner)}{name} must be {bound} {minimum}, got {value!r}.")
    return number

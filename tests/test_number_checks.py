"""The integer and real-number checks of prelu_tutorial._number_checks."""

import numpy as np
import pytest

from prelu_tutorial import _number_checks


@pytest.mark.parametrize("value", [0, -3, np.int64(7), np.uint8(2)])
def test_is_integer_accepts_python_and_numpy_integers(value):
    assert _number_checks.is_integer(value)


@pytest.mark.parametrize("value", [True, np.bool_(False), 1.0, np.float32(1), "1", None])
def test_is_integer_refuses_bools_floats_and_strings(value):
    assert not _number_checks.is_integer(value)


@pytest.mark.parametrize("value", [0, 3, np.int64(7)])
def test_check_int_returns_a_python_int(value):
    result = _number_checks.check_int(value, "count")
    assert result == int(value) and type(result) is int


@pytest.mark.parametrize("value", [True, np.bool_(False), 1.0, "1", None])
def test_check_int_refuses_a_non_integer_naming_the_argument(value):
    with pytest.raises(TypeError, match=r"^f: count must be an integer >= 1"):
        _number_checks.check_int(value, "count", minimum=1, owner="f")


def test_check_int_refuses_a_value_below_the_minimum():
    with pytest.raises(ValueError, match=r"count must be an integer >= 1, got 0"):
        _number_checks.check_int(0, "count", minimum=1)


@pytest.mark.parametrize("value", [True, "0.5", None, 1j])
def test_check_real_refuses_a_non_real(value):
    with pytest.raises(TypeError, match="timeout must be a real number"):
        _number_checks.check_real(value, "timeout")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_check_real_refuses_a_non_finite_value(value):
    with pytest.raises(ValueError, match="timeout must be finite"):
        _number_checks.check_real(value, "timeout")


def test_check_real_applies_an_exclusive_minimum():
    assert _number_checks.check_real(0.5, "timeout", minimum=0, inclusive=False) == 0.5
    with pytest.raises(ValueError, match="timeout must be > 0"):
        _number_checks.check_real(0, "timeout", minimum=0, inclusive=False)

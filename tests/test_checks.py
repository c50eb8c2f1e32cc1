"""The shared argument checks and dtype rule of prelu_tutorial._checks."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from prelu_tutorial import _checks


@pytest.mark.parametrize("value", [0, 3, np.int64(7)])
def test_check_int_returns_a_python_int(value):
    result = _checks.check_int(value, "count")
    assert result == int(value) and type(result) is int


@pytest.mark.parametrize("value", [True, np.bool_(False), 1.0, "1", None])
def test_check_int_refuses_a_non_integer_naming_the_argument(value):
    with pytest.raises(TypeError, match=r"^f: count must be an integer >= 1"):
        _checks.check_int(value, "count", minimum=1, owner="f")


def test_check_int_refuses_a_value_below_the_minimum():
    with pytest.raises(ValueError, match=r"count must be an integer >= 1, got 0"):
        _checks.check_int(0, "count", minimum=1)


@pytest.mark.parametrize("value", [True, "0.5", None, 1j])
def test_check_real_refuses_a_non_real(value):
    with pytest.raises(TypeError, match="timeout must be a real number"):
        _checks.check_real(value, "timeout")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_check_real_refuses_a_non_finite_value(value):
    with pytest.raises(ValueError, match="timeout must be finite"):
        _checks.check_real(value, "timeout")


def test_check_real_applies_an_exclusive_minimum():
    assert _checks.check_real(0.5, "timeout", minimum=0, inclusive=False) == 0.5
    with pytest.raises(ValueError, match="timeout must be > 0"):
        _checks.check_real(0, "timeout", minimum=0, inclusive=False)


@pytest.mark.parametrize(
    "dtypes, expected",
    [
        ((tf.float16, tf.float16), tf.float32),
        ((tf.bfloat16, tf.float32), tf.float32),
        ((tf.float16, tf.float64), tf.float64),
        ((tf.float64,), tf.float64),
    ],
)
def test_wide_dtype_widens_16_bit_and_keeps_float64(dtypes, expected):
    assert _checks.wide_dtype(*dtypes) == expected


def test_quiet_logger_raises_the_level_inside_and_restores_it():
    logger = logging.getLogger("prelu_tutorial_test_quiet")
    logger.setLevel(logging.INFO)
    with _checks.quiet_logger("prelu_tutorial_test_quiet"):
        assert logger.level == logging.ERROR
    assert logger.level == logging.INFO

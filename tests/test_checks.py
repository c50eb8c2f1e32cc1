"""The shared dtype rule and logger silencing of prelu_tutorial._checks."""

import logging

import pytest
import tensorflow as tf

from prelu_tutorial import _checks


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

"""Fixtures shared by the unit tests."""

import keras
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as framework_config

from prelu_tutorial import custom_op


@pytest.fixture
def float32_policy():
    """Restores Keras' global dtype policy to float32 after a test that changes it."""
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def custom_op_library():
    """The C++ op, built (or found in the cache) and loaded once; skips where no compiler is."""
    try:
        return custom_op.load_library()
    except custom_op.CompilerNotFoundError as error:
        pytest.skip(f"the C++ op needs a compiler: {error}")


@pytest.fixture
def op_determinism_off():
    """Op determinism makes Keras turn XLA off for every model: off for one test."""
    was_on = framework_config.is_op_determinism_enabled()
    framework_config.disable_op_determinism()
    yield
    if was_on:
        tf.config.experimental.enable_op_determinism()

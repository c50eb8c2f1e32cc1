"""Fixtures shared by the unit tests."""

import keras
import pytest


@pytest.fixture
def float32_policy():
    """Restores Keras' global dtype policy to float32 after a test that changes it."""
    yield
    keras.mixed_precision.set_global_policy("float32")

"""Fixtures shared by the unit tests."""

import keras
import pytest

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

"""Markers for tests that hold only on some TensorFlow versions.

``make test-compat`` runs the unit tests on the oldest TensorFlow that
pyproject.toml claims. A test whose claim is a TensorFlow implementation
detail (a fusion, a converter path) names the first version it holds for and
why it does not hold before; it is skipped there, with that reason.
"""

import pytest
import tensorflow as tf

TF_VERSION = tuple(int(part) for part in tf.__version__.split(".")[:2])


def requires_tf(version: tuple[int, int], reason: str) -> pytest.MarkDecorator:
    """Skips the test on TensorFlow older than ``version`` (major, minor), saying why."""
    return pytest.mark.skipif(
        TF_VERSION < version,
        reason=f"needs TensorFlow >= {version[0]}.{version[1]} "
        f"(this is {tf.__version__}): {reason}",
    )

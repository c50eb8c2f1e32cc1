"""Pytest configuration shared by the unit tests and nbval's notebook checks."""

import os

# TensorFlow's C++ log lines only add noise to test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collectstart(collector):
    """Makes nbval ignore stderr: TensorFlow writes volatile log lines there."""
    if getattr(collector, "skip_compare", None) is not None:
        collector.skip_compare = (*collector.skip_compare, "stderr")

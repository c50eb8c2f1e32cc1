"""The package's public face: what `import prelu_tutorial as pt` gives."""

import importlib.metadata
import inspect
import subprocess
import sys

import prelu_tutorial as pt


def test_version_matches_the_installed_metadata_from_pyproject():
    assert pt.__version__ == importlib.metadata.version("prelu-tutorial")


def test_public_names_are_the_function_the_layer_and_the_submodules():
    assert pt.prelu is pt.ops.prelu
    assert pt.PReLU is pt.layers.PReLU
    for name in pt.__all__:
        value = getattr(pt, name)
        assert callable(value) or inspect.ismodule(value), name


def test_unknown_attribute_is_an_attribute_error():
    assert not hasattr(pt, "no_such_module")


def test_benchmark_cli_runs_as_a_module_without_a_runpy_warning():
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "prelu_tutorial.benchmark", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout

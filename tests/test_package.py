"""The package's public face: what `import prelu_tutorial as pt` gives."""

import ast
import importlib.metadata
import inspect
import subprocess
import sys
from pathlib import Path

import prelu_tutorial as pt


def test_version_matches_the_installed_metadata_from_pyproject():
    assert pt.__version__ == importlib.metadata.version("prelu-tutorial")


def test_public_names_are_the_function_the_layer_and_the_submodules():
    assert pt.prelu is pt.xla.prelu
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


def _modules_imported_by(path: Path, package: str) -> set[str]:
    """The modules of ``package`` that a source file imports, at any level of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c` imports a.b, and a.b.c too if c is a module.
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names if name == package or name.startswith(package + "."))
    return found


def test_the_export_modules_import_each_other_in_one_direction():
    package = "prelu_tutorial.export"
    folder = Path(pt.export.__file__).parent
    modules = {
        package if path.stem == "__init__" else f"{package}.{path.stem}": path
        for path in folder.glob("*.py")
    }
    assert {f"{package}.tflite", f"{package}.onnx", f"{package}._tracing"} <= set(modules)
    imports = {
        name: _modules_imported_by(path, package) & set(modules) for name, path in modules.items()
    }
    # Depth-first search for a module reached again while it is still being visited.
    state: dict[str, str] = {}

    def cycle_from(name: str, trail: list[str]) -> list[str] | None:
        state[name] = "visiting"
        for imported in sorted(imports[name]):
            if state.get(imported) == "visiting":
                return [*trail, name, imported]
            if imported not in state and (found := cycle_from(imported, [*trail, name])):
                return found
        state[name] = "done"
        return None

    for name in sorted(modules):
        if name not in state:
            assert cycle_from(name, []) is None
    assert f"{package}.onnx" not in imports[f"{package}.tflite"]
    assert f"{package}.tflite" not in imports[f"{package}.onnx"]


def test_importing_the_package_does_not_import_the_custom_op_until_it_is_used():
    code = (
        "import sys, prelu_tutorial as pt\n"
        "print('prelu_tutorial.custom_op' in sys.modules)\n"
        "pt.export.to_tflite, pt.export.to_onnx\n"
        "print('prelu_tutorial.custom_op' in sys.modules)\n"
        "print(pt.custom_op.prelu.__module__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "False", "prelu_tutorial.custom_op.op"]

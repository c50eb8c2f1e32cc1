"""The ranges pyproject.toml declares: each has a floor make test-compat installs, and Colab's
image (tools/colab-image.txt) and the book's pins (requirements.txt) both lie inside them."""

import importlib.util
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("floors", ROOT / "tools" / "floors.py")
floors = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(floors)


def pins(path: Path) -> dict[str, str]:
    """name -> version of a requirements file's exact pins."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            found[name.strip().lower()] = version.strip()
    return found


DECLARED = {Requirement(text).name.lower(): Requirement(text) for text in floors.declared()}


def test_every_declared_dependency_has_a_floor_and_it_is_admitted():
    found = floors.floors(floors.declared())
    assert set(found) == set(DECLARED)
    for name, floor in found.items():
        assert DECLARED[name].specifier.contains(floor), (name, floor)


@pytest.mark.parametrize("source", ["tools/colab-image.txt", "requirements.txt"])
def test_pinned_versions_lie_inside_the_declared_ranges(source):
    pinned = pins(ROOT / source)
    checked = [name for name in DECLARED if name in pinned]
    assert "tensorflow" in checked and "keras" in checked and "numpy" in checked
    for name in checked:
        assert DECLARED[name].specifier.contains(pinned[name]), (source, name, pinned[name])


def test_a_requirement_without_a_floor_is_refused():
    with pytest.raises(ValueError, match="no '>=' floor"):
        floors.floors(["numpy<3"])
    assert floors.floors(["keras>=3.5.0,<4", "tf2onnx[x]>=1.17"]) == {
        "keras": "3.5.0", "tf2onnx": "1.17"}

"""The floors ``pyproject.toml`` declares, as exact pins: what ``make test-compat`` installs.

Each dependency (the ``onnx`` extra included) is declared as ``name>=floor``;
this prints ``name==floor`` for each one, so that the compat venv holds the
oldest version of every package the library admits, and a floor that is
declared is a floor that is tested. ``--set name==version`` replaces one pin
(``make test-compat COMPAT_TF=2.19.0`` sets TensorFlow's).

Usage:
    python tools/floors.py [--set tensorflow==2.19.0]   # one pin per line, to stdout
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# "name>=1.2.3" or "name>=1.2,<2" (an optional extra, no marker).
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*>=\s*([0-9][0-9.]*)")


def declared(root: Path = ROOT) -> list[str]:
    """The dependencies and the ``onnx`` extra's, as written in ``pyproject.toml``."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["onnx"]]


def floors(requirements: list[str]) -> dict[str, str]:
    """Each requirement's name and floor.

    Args:
        requirements: PEP 508 strings, each with a ``>=`` lower bound.

    Returns:
        The floor of each package, by name, in the given order.

    Raises:
        ValueError: If a requirement declares no ``>=`` floor (nothing to test).
    """
    found = {}
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        if match is None:
            raise ValueError(f"requirement {requirement!r} declares no '>=' floor")
        found[match.group(1)] = match.group(2)
    return found


def main(argv: list[str] | None = None) -> int:
    """Prints one ``name==floor`` line per dependency; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="NAME==VERSION",
                        help="replace one package's pin")
    args = parser.parse_args(argv)
    pins = {name: f"{name}=={floor}" for name, floor in floors(declared()).items()}
    for override in args.set:
        name, separator, version = override.partition("==")
        if not separator or not version or name not in pins:
            parser.error(f"--set: {override!r} is not NAME==VERSION for a declared dependency")
        pins[name] = override
    print("\n".join(pins.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

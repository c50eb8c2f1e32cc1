"""The Setup cell that installs ``prelu_tutorial`` where a chapter opens without it.

Every chapter's first code cell is the same, written from :data:`TEMPLATE`: on
Colab (or any kernel without the library) it pip-installs the library from
the branch that ``_config.yml`` publishes, the branch the notebook itself
came from, so the two cannot drift apart. ``PRELU_TUTORIAL_SOURCE`` overrides
the source with any pip location (``make test-colab`` points it at this
checkout). Locally, with the library installed, the cell does nothing and
prints nothing.

Usage:
    python tools/colab.py apply   # rewrite every chapter's Setup cell from the template
    python tools/colab.py check   # exit 1 if a chapter's Setup cell differs from it
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE_VARIABLE = "PRELU_TUTORIAL_SOURCE"
MARKER = "# On Colab, install this book's library"


def default_source(root: Path = ROOT) -> str:
    """``git+<repository>@<branch>`` from ``_config.yml``: where the notebooks are published."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    repository = config["repository"]
    return f"git+{repository['url']}@{repository['branch']}"


def setup_source(root: Path = ROOT) -> str:
    """The Setup cell's code, from the one template."""
    return TEMPLATE.format(marker=MARKER, variable=SOURCE_VARIABLE, source=default_source(root))


TEMPLATE = '''{marker} from the branch this
# notebook came from (pip keeps Colab's TensorFlow); {variable}
# overrides it with any pip location, e.g. a local clone.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("prelu_tutorial") is None:
    SOURCE = os.environ.get(
        "{variable}",
        "{source}",
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet",
         f"prelu-tutorial @ {{SOURCE}}"],
        check=True,
    )'''


def chapters(root: Path = ROOT) -> list[Path]:
    """The chapters, in file order."""
    return sorted((root / "book").glob("*.ipynb"))


def setup_cell_index(notebook: nbformat.NotebookNode) -> int:
    """The index of the chapter's Setup cell (the first code cell that installs the library).

    Raises:
        ValueError: If the chapter has no such cell.
    """
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and cell.source.startswith(MARKER):
            return index
    raise ValueError("no Setup cell that starts with the install marker")


def apply(paths: list[Path]) -> int:
    """Rewrites each Setup cell from the template; returns how many changed."""
    changed = 0
    source = setup_source()
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        cell = notebook.cells[setup_cell_index(notebook)]
        if cell.source != source:
            cell.source = source
            nbformat.write(notebook, path)
            changed += 1
    return changed


def stale(paths: list[Path]) -> list[str]:
    """The chapters whose Setup cell is missing or differs from the template."""
    source = setup_source()
    found = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        try:
            if notebook.cells[setup_cell_index(notebook)].source != source:
                found.append(f"{path.name}: the Setup cell differs from tools/colab.py")
        except ValueError as error:
            found.append(f"{path.name}: {error}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["apply", "check"])
    args = parser.parse_args(argv)
    if args.command == "apply":
        print(f"{apply(chapters())} Setup cells rewritten")
        return 0
    problems = stale(chapters())
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

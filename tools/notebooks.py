"""Execute and normalize the book's notebooks so they diff cleanly.

Usage:
    python tools/notebooks.py execute [NOTEBOOK ...]   # fresh kernel, top to bottom, then normalize
    python tools/notebooks.py normalize [NOTEBOOK ...] # strip volatile metadata and stderr only

With no notebook given, every ``book/*.ipynb`` is processed. Execution runs in
the notebook's own folder (so relative paths work as in Jupyter) with the
Python that runs this script as the kernel.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
KEPT_CELL_METADATA = ("tags",)
# A traceback frame line ("File /path/to/module.py:12, in f"), maybe behind colour codes.
FILE_FRAME = re.compile(r"^(?:\x1b\[[0-9;]*m)*File ")
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# nbval's and nbclient's tag for a cell that shows an error on purpose.
RAISES_TAGS = {"raises-exception", "nbval-raises-exception"}


def raises_on_purpose(cell: nbformat.NotebookNode) -> bool:
    """Tells whether a code cell is tagged to show an error."""
    return bool(RAISES_TAGS & set(cell.metadata.get("tags", [])))


def merge_streams(outputs: list) -> list:
    """Joins adjacent stream outputs of the same name into one.

    A cell that prints in several calls stores several stream outputs, and
    the book would show each in its own box; one printed result is one box.
    """
    merged = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and output.output_type == "stream"
            and previous.output_type == "stream"
            and previous.name == output.name
        ):
            previous.text = previous.text + output.text
        else:
            merged.append(output)
    return merged


def normalize(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drops what changes from run to run but says nothing about the chapter.

    Removes stderr streams (TensorFlow's log lines: timestamps and local
    paths; nbval skips them too), joins adjacent stdout streams into one
    output (one box on the page), the file frames of stored tracebacks (they
    name paths of this machine; nbval does not compare tracebacks), execution
    timings, widget state and the interpreter's exact version, and gives every
    cell a stable id.
    """
    notebook.metadata = nbformat.from_dict(
        {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    )
    for index, cell in enumerate(notebook.cells):
        cell.metadata = nbformat.from_dict(
            {key: cell.metadata[key] for key in KEPT_CELL_METADATA if key in cell.metadata}
        )
        cell.id = f"cell-{index:03d}"
        if cell.cell_type == "code":
            cell.outputs = merge_streams(
                [
                    output
                    for output in cell.outputs
                    if not (output.output_type == "stream" and output.name == "stderr")
                ]
            )
            for output in cell.outputs:
                if output.output_type == "error":
                    output.traceback = [
                        line for line in output.traceback if not FILE_FRAME.match(line)
                    ]
                if "metadata" in output and output.output_type != "stream":
                    output.metadata = nbformat.from_dict(
                        {k: v for k, v in output.metadata.items() if k != "execution"}
                    )
    return notebook


def write(notebook: nbformat.NotebookNode, path: Path) -> None:
    """Writes with nbformat's stable layout (indent 1, sorted keys, final newline)."""
    nbformat.validate(notebook)
    nbformat.write(notebook, str(path))


def execute(path: Path, timeout: int) -> None:
    """Runs a notebook top to bottom in a fresh kernel and stores its outputs."""
    notebook = nbformat.read(str(path), as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    # Errors are kept so that cells tagged raises-exception store theirs; any
    # other error stops the run below.
    NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        allow_errors=True,
    ).execute()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if errors and not raises_on_purpose(cell):
            raise SystemExit(f"{path}: a cell raised {errors[0].ename}: {errors[0].evalue}")
    write(normalize(notebook), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["execute", "normalize"])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "book").glob("*.ipynb"))
    for path in paths:
        if args.command == "execute":
            execute(path, args.timeout)
        else:
            write(normalize(nbformat.read(str(path), as_version=4)), path)
        print(f"{args.command}d {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

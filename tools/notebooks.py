"""Execute, normalize and check the book's notebooks.

Usage:
    python tools/notebooks.py execute [NOTEBOOK ...]   # fresh kernel, top to bottom, then normalize
    python tools/notebooks.py normalize [NOTEBOOK ...] # strip volatile metadata and stderr only
    python tools/notebooks.py check [NOTEBOOK ...]     # list every rule a chapter breaks (exit 1)

With no notebook given, every ``book/*.ipynb`` is processed. Execution runs in
the notebook's own folder (so relative paths work as in Jupyter) with the
Python that runs this script as the kernel.

``check`` holds a committed chapter to what the book promises, one function
per rule, each returning a list of problems (``tests/test_notebook_hygiene.py``
runs them on every chapter and proves each one on a spoiled notebook):

- it ran top to bottom in one fresh kernel (execution counts 1..n) and stores
  no error except in a cell tagged ``raises-exception``;
- its outputs name no path of the machine it ran on, its file carries no
  volatile metadata and is exactly what ``normalize`` writes;
- what the reader sees fits: code and printed lines of at most 80 characters,
  one output box per printed result, nbval markers as tags and not comments,
  exercise solutions collapsed (``hide-cell``);
- its Setup cell is ``tools/colab.py``'s and its launch links open its own file;
- its title starts with its number, as the file name does (``# 7. ...``);
- every measured figure in its prose comes from its outputs (see
  :func:`figure_problems`), and every ``{glue}`` name it shows is glued.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import re
import sys
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there.
    import tomli as tomllib

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


# --- check: the rules a committed chapter obeys ------------------------------------------------

# Home folders, scratch folders, our work tree, installed packages: none belongs in a book.
MACHINE_PATH = re.compile(
    r"(?<![\w.])/(?:root|home|tmp|work|Users|var/folders)/"
    r"|\b[A-Za-z]:\\"
    r"|site-packages|dist-packages"
)
KEPT_NOTEBOOK_METADATA = {"kernelspec", "language_info"}
# The book's text column shows 80 characters of monospace text; a longer line is cut off.
MAX_LINE = 80
# A heading line of a Markdown cell: its level and its title.
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$", re.MULTILINE)


def _load_colab_tool():
    """Imports tools/colab.py, the one template of the Setup cell, beside this file."""
    spec = importlib.util.spec_from_file_location(
        "colab_tool", Path(__file__).with_name("colab.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code_cells(notebook) -> list[tuple[int, nbformat.NotebookNode]]:
    return [(index, cell) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]


def _lines(text) -> list[str]:
    return ("".join(text) if isinstance(text, list) else text).splitlines()


def _output_texts(output) -> list[str]:
    """The text an output shows: a stream, an error, or any text/* (HTML tables included)."""
    if output.output_type == "stream":
        return [output.text]
    if output.output_type == "error":
        return [output.ename, output.evalue, *output.traceback]
    return [
        value if isinstance(value, str) else "".join(value)
        for kind, value in output.get("data", {}).items()
        if kind.startswith("text/")
    ]


def execution_problems(notebook) -> list[str]:
    """Finds code cells that did not run, or ran out of order or in another session."""
    problems = []
    expected = 1
    for index, cell in _code_cells(notebook):
        count = cell.get("execution_count")
        if count is None:
            problems.append(f"cell {index} is not executed (or is empty)")
            continue
        if count != expected:
            problems.append(f"cell {index} has execution count {count}, expected {expected}")
        expected = count + 1
    return problems


def error_problems(notebook) -> list[str]:
    """Finds stored errors in cells that are not marked as raising on purpose."""
    return [
        f"cell {index} stores {output.ename}: {output.evalue} without the raises-exception tag"
        for index, cell in _code_cells(notebook)
        for output in cell.outputs
        if output.output_type == "error" and not raises_on_purpose(cell)
    ]


def line_length_problems(notebook) -> list[str]:
    """Finds code lines and printed (stream) lines wider than the text column."""
    problems = []
    for index, cell in _code_cells(notebook):
        texts = [("code", cell.source)] + [
            (f"{output.name} output", output.text)
            for output in cell.outputs
            if output.output_type == "stream"
        ]
        for kind, text in texts:
            for number, line in enumerate(_lines(text), start=1):
                if len(line) > MAX_LINE:
                    problems.append(
                        f"cell {index} {kind} line {number} has {len(line)} characters"
                        f" (at most {MAX_LINE}): {line[:40]!r}..."
                    )
    return problems


def stream_box_problems(notebook) -> list[str]:
    """Finds cells whose printed result is split over adjacent stream outputs (several boxes)."""
    problems = []
    for index, cell in _code_cells(notebook):
        for previous, output in itertools.pairwise(cell.outputs):
            if (
                previous.output_type == output.output_type == "stream"
                and previous.name == output.name
            ):
                problems.append(
                    f"cell {index} has adjacent {output.name} stream outputs (two output boxes)"
                )
    return problems


def nbval_comment_problems(notebook) -> list[str]:
    """Finds nbval markers written as comments in the code, where the reader sees them."""
    return [
        f"cell {index} has an nbval comment in its code ({line.strip()!r}); use a cell tag"
        for index, cell in _code_cells(notebook)
        for line in _lines(cell.source)
        if "NBVAL_" in line.upper()
    ]


def exercise_problems(notebook) -> list[str]:
    """Finds code cells under an "Exercises" heading that do not collapse code and output."""
    problems = []
    exercise_level = None  # the level of the Exercises heading we are under, if any
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown":
            for hashes, title in HEADING.findall(cell.source):
                if title.lower().startswith("exercise"):
                    exercise_level = len(hashes)
                elif exercise_level is not None and len(hashes) <= exercise_level:
                    exercise_level = None
        elif cell.cell_type == "code" and exercise_level is not None:
            if "hide-cell" not in cell.metadata.get("tags", []):
                problems.append(f"cell {index} is an exercise solution without the hide-cell tag")
    return problems


def machine_path_problems(notebook) -> list[str]:
    """Finds outputs that print a path of the machine the notebook ran on."""
    problems = []
    for index, cell in _code_cells(notebook):
        for output in cell.outputs:
            for text in _output_texts(output):
                match = MACHINE_PATH.search(text)
                if match:
                    context = text[max(0, match.start() - 30) : match.end() + 30]
                    problems.append(f"cell {index} prints a machine path: ...{context!r}...")
    return problems


def metadata_problems(notebook) -> list[str]:
    """Finds metadata that changes from run to run: timings, widget state, versions, stderr."""
    problems = []
    for key in sorted(set(notebook.metadata) - KEPT_NOTEBOOK_METADATA):
        problems.append(f"notebook metadata has volatile key {key!r}")
    for key in sorted(set(notebook.metadata.get("language_info", {})) - {"name"}):
        problems.append(f"notebook metadata has volatile key 'language_info.{key}'")
    for index, cell in enumerate(notebook.cells):
        for key in sorted(set(cell.metadata) - set(KEPT_CELL_METADATA)):
            problems.append(f"cell {index} metadata has volatile key {key!r}")
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stderr":
                problems.append(f"cell {index} stores stderr (log lines with times and paths)")
            if "execution" in output.get("metadata", {}):
                problems.append(f"cell {index} output metadata has volatile key 'execution'")
    return problems


def layout_problems(path: Path) -> list[str]:
    """Reports a file that `make format-notebooks` would rewrite."""
    text = path.read_text(encoding="utf-8")
    normalized = nbformat.writes(normalize(nbformat.reads(text, as_version=4)))
    if not normalized.endswith("\n"):
        normalized += "\n"
    if text != normalized:
        return [f"{path.name} is not normalized: run `make format-notebooks`"]
    return []


def setup_problems(notebook, root: Path = ROOT) -> list[str]:
    """Checks that the first code cell is tools/colab.py's Setup cell and no other cell installs."""
    cells = _code_cells(notebook)
    if not cells:
        return ["the notebook has no Setup cell"]
    problems = []
    if cells[0][1].source != _load_colab_tool().setup_source(root):
        problems.append("the Setup cell is not tools/colab.py's (python tools/colab.py apply)")
    for index, cell in cells[1:]:
        if "git+" in cell.source:
            problems.append(f"cell {index} installs from git; only the Setup cell installs")
    return problems


def repository_and_branch(root: Path = ROOT) -> tuple[str, str]:
    """The GitHub repository (pyproject.toml) and the branch the book publishes (_config.yml)."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    return pyproject["project"]["urls"]["Repository"], config["repository"]["branch"]


def launch_link_problems(notebook, path: Path, root: Path = ROOT) -> list[str]:
    """Checks that the chapter's Colab and GitHub links open this very file."""
    repository, branch = repository_and_branch(root)
    relative = path.relative_to(path.parents[1]).as_posix()
    owner_and_name = repository.removeprefix("https://github.com/")
    wanted = [
        f"https://colab.research.google.com/github/{owner_and_name}/blob/{branch}/{relative}",
        f"{repository}/blob/{branch}/{relative}",
    ]
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    return [f"no link to {url}" for url in wanted if f"({url})" not in markdown]


# A figure in the prose: a number with a decimal point, or a whole number with a unit that makes
# it a measurement (a ratio "3x", a time, a size, a percentage). "5 seeds" and "12 epochs" are
# counts the code sets, not figures.
FIGURE = re.compile(
    r"(?<![\w.])(?P<number>\d+(?:\.\d+)?)"
    r"(?:\s?(?P<unit>x|×|%|ms|µs|us|ns|s|seconds?|minutes?|min|[KMGT]i?B|bytes?)(?![\w/]))?"
)
# A number that names a version or a place in a text, not a measurement.
NOT_A_FIGURE_BEFORE = re.compile(
    r"(?:TF|TensorFlow|Keras|Python|NumPy|PyTorch|CUDA|LiteRT|ONNX|opset|version|v"
    r"|[Ss]ection|[Ee]q\.|[Ee]quation|[Ff]igure|[Tt]able|[Cc]hapter)\s?$"
)
# Text whose numbers are not prose figures: code, math, link targets and HTML comments.
NOT_PROSE = re.compile(
    r"```.*?```|\$\$.*?\$\$|\$[^$\n]*\$|`[^`]*`|\]\([^)]*\)|<https?://[^>]*>|<!--.*?-->",
    re.DOTALL,
)
# `<!-- not measured: 16 bytes, 64 MB -->` in a Markdown cell lists figures that are definitions
# or arithmetic (a float32 is 4 bytes), not measurements; the reader does not see the comment.
NOT_MEASURED = re.compile(r"<!--\s*not measured:(.*?)-->", re.DOTALL)
# The paper's (or any source's) figures are exempt where their sentence cites the source.
CITATION = re.compile(r"\{cite(?::\w+)?\}`")
# A sentence ends at ., ! or ? before white space and a capital, a bracket, a role or math.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[{$*`])")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\d])")


def _sentences(markdown: str) -> list[str]:
    """Sentences, list items and table rows: the reach of a citation."""
    return [
        sentence
        for paragraph in re.split(r"\n\s*\n", markdown)
        for block in re.split(r"\n(?=\s*(?:[-*+|]|\d+\.)\s)", paragraph)
        for sentence in SENTENCE_END.split(block)
    ]


def _backing_text(notebook) -> str:
    """What the chapter prints (every output's text) and the inputs its code sets."""
    texts = []
    for _, cell in _code_cells(notebook):
        texts.append(cell.source)
        for output in cell.outputs:
            texts.extend(_output_texts(output))
    return "\n".join(texts)


def _is_backed(number: str, unit: str | None, backing: str) -> bool:
    """Tells whether ``backing`` holds the number as written (a whole number with its unit).

    A whole number alone ("2") turns up in any output, so one with a unit must appear with it.
    """
    if "." in number or unit is None:
        return re.search(rf"(?<![\w.]){re.escape(number)}(?![\d])", backing) is not None
    return (
        re.search(rf"(?<![\w.]){re.escape(number)}\s?{re.escape(unit)}(?![\w])", backing)
        is not None
    )


def figure_problems(notebook) -> list[str]:
    """Finds measured figures in the prose that no output of the chapter prints.

    A figure is a number with a decimal point (an accuracy, a spread, a slope)
    or a whole number with a unit (1.3x, 83 ms, 51 MB, 63%). It passes when:

    - it is shown by ``{glue:text}`` / ``{glue}`` (a role, so not a literal
      number in the Markdown at all);
    - the same number, as written, appears in an output of the chapter (a
      printed line or a table) or in its code (an input the code sets, such as
      a learning rate);
    - its sentence cites a source (``{cite:p}`key```): the paper's own
      figures;
    - the cell lists it in ``<!-- not measured: 16 bytes -->``: a definition
      or arithmetic, not a measurement.

    Numbers in code spans, math, link targets and comments are not prose, and
    a number right after a name such as ``TF``, ``Python`` or ``Section`` is a
    version or a place, not a figure. So a measured figure belongs in prose
    (glued), not in ``$...$``, where this rule cannot see it; and a whole
    number without a unit ("25,000-fold") is not recognised either.
    """
    backing = _backing_text(notebook)
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown":
            continue
        exempt = {
            figure.strip()
            for listed in NOT_MEASURED.findall(cell.source)
            for figure in listed.split(",")
        }
        for sentence in _sentences(cell.source):
            if CITATION.search(sentence):
                continue
            prose = NOT_PROSE.sub(" ", sentence)
            for match in FIGURE.finditer(prose):
                number, unit = match.group("number"), match.group("unit")
                if ("." not in number and unit is None) or match.group(0) in exempt:
                    continue
                if NOT_A_FIGURE_BEFORE.search(prose[: match.start()]):
                    continue
                if not _is_backed(number, unit, backing):
                    problems.append(
                        f"cell {index} states {match.group(0)!r}, which no output of the chapter"
                        " prints: glue it, say it in words, cite its source or mark it"
                        " <!-- not measured: ... -->"
                    )
    return problems


GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`:]+)")


def glue_problems(notebook) -> list[str]:
    """Finds ``{glue}`` roles in the prose whose name no code cell of the chapter glued."""
    glued = {
        output.get("metadata", {}).get("scrapbook", {}).get("name")
        for _, cell in _code_cells(notebook)
        for output in cell.outputs
    }
    return [
        f"cell {index} shows glue {name!r}, which no cell of the chapter glued"
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "markdown"
        for name in GLUE_ROLE.findall(cell.source)
        if name.strip() not in glued
    ]


def title_problems(notebook, path: Path) -> list[str]:
    """Reports a chapter whose title does not start with its number (``# 7. ...`` for 07_*).

    The sidebar shows the titles, so "chapter 7" in the text matches the navigation.
    """
    prefix = re.match(r"(\d+)_", path.name)
    if prefix is None:
        return []
    expected = f"# {int(prefix.group(1))}. "
    first = notebook.cells[0] if notebook.cells else None
    if first is None or first.cell_type != "markdown" or not first.source.startswith(expected):
        return [f"the first cell must be the title, starting with {expected!r}"]
    return []


# Each rule reads a notebook and returns its problems; a clean chapter has none.
NOTEBOOK_CHECKS = {
    "ran every cell once in order": execution_problems,
    "stores errors only where it means to": error_problems,
    "outputs show no machine paths": machine_path_problems,
    "has no volatile metadata": metadata_problems,
    "fits the text column": line_length_problems,
    "shows one box per printed result": stream_box_problems,
    "keeps nbval markers in tags": nbval_comment_problems,
    "collapses exercise solutions": exercise_problems,
    "takes its figures from its outputs": figure_problems,
    "glues every figure it shows": glue_problems,
    "has the Setup cell of tools/colab.py": setup_problems,
}


def check(path: Path, root: Path = ROOT) -> list[str]:
    """Every problem of one notebook file, by every rule."""
    notebook = nbformat.read(str(path), as_version=4)
    return [
        *(problem for rule in NOTEBOOK_CHECKS.values() for problem in rule(notebook)),
        *layout_problems(path),
        *launch_link_problems(notebook, path, root),
        *title_problems(notebook, path),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["execute", "normalize", "check"])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "book").glob("*.ipynb"))
    failed = False
    for path in paths:
        if args.command == "check":
            problems = check(path)
            failed = failed or bool(problems)
            for problem in problems:
                print(f"{path}: {problem}")
            continue
        if args.command == "execute":
            execute(path, args.timeout)
        else:
            write(normalize(nbformat.read(str(path), as_version=4)), path)
        print(f"{args.command}d {path}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Every chapter notebook is committed executed, in order, clean and normalized.

A chapter must have run top to bottom in one fresh kernel (execution counts
1..n, no cell left unexecuted), store no error except in a cell written to show
one (tagged ``raises-exception``), hold no path of the machine it ran on in
its outputs, and carry no volatile metadata; its file must be exactly what
``make format-notebooks`` writes, so diffs show only what changed. Its Setup
cell must install the release that pyproject.toml declares, and its launch
links must point at its own file in the repository that _config.yml names.

What the reader sees is checked too: no code line and no printed line wider
than the book's text column (80 characters), one output box per printed result
(no two adjacent stream outputs of one name), nbval's markers as cell tags and
never as comments in the code, and every code cell under "Exercises" collapsed
(tagged ``hide-cell``: code and output behind a toggle).

The checks are plain functions returning a list of problems; the self-tests at
the end spoil a clean notebook in each way and show the checks catch it.
"""

from __future__ import annotations

import importlib.util
import itertools
import re
from pathlib import Path

import nbformat
import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there.
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
REPOSITORY = PYPROJECT["project"]["urls"]["Repository"]
BRANCH = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]["branch"]
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
KEPT_CELL_METADATA = {"tags"}


def _load_notebook_tool():
    """Imports tools/notebooks.py, the one place that defines a normalized notebook."""
    spec = importlib.util.spec_from_file_location("notebooks_tool", ROOT / "tools" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


notebook_tool = _load_notebook_tool()
_colab_spec = importlib.util.spec_from_file_location("colab_tool", ROOT / "tools" / "colab.py")
colab_tool = importlib.util.module_from_spec(_colab_spec)
_colab_spec.loader.exec_module(colab_tool)


def _code_cells(notebook) -> list[tuple[int, nbformat.NotebookNode]]:
    return [(index, cell) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]


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
        if output.output_type == "error" and not notebook_tool.raises_on_purpose(cell)
    ]


def _output_texts(output) -> list[str]:
    if output.output_type == "stream":
        return [output.text]
    if output.output_type == "error":
        return [output.ename, output.evalue, *output.traceback]
    return [
        value if isinstance(value, str) else "".join(value)
        for kind, value in output.get("data", {}).items()
        if kind.startswith("text/")
    ]


def _lines(text) -> list[str]:
    return ("".join(text) if isinstance(text, list) else text).splitlines()


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
        for key in sorted(set(cell.metadata) - KEPT_CELL_METADATA):
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
    notebook = notebook_tool.normalize(nbformat.reads(text, as_version=4))
    normalized = nbformat.writes(notebook)
    if not normalized.endswith("\n"):
        normalized += "\n"
    if text != normalized:
        return [f"{path.name} is not normalized: run `make format-notebooks`"]
    return []


def setup_problems(notebook) -> list[str]:
    """Checks that the first code cell is tools/colab.py's Setup cell and no other cell installs."""
    cells = _code_cells(notebook)
    if not cells:
        return ["the notebook has no Setup cell"]
    problems = []
    if cells[0][1].source != colab_tool.setup_source():
        problems.append("the Setup cell is not tools/colab.py's (python tools/colab.py apply)")
    for index, cell in cells[1:]:
        if "git+" in cell.source:
            problems.append(f"cell {index} installs from git; only the Setup cell installs")
    return problems


def launch_link_problems(notebook, path: Path) -> list[str]:
    """Checks that the chapter's Colab and GitHub links open this very file."""
    relative = path.relative_to(path.parents[1]).as_posix()
    owner_and_name = REPOSITORY.removeprefix("https://github.com/")
    wanted = [
        f"https://colab.research.google.com/github/{owner_and_name}/blob/{BRANCH}/{relative}",
        f"{REPOSITORY}/blob/{BRANCH}/{relative}",
    ]
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    return [f"no link to {url}" for url in wanted if f"({url})" not in markdown]


def notebook_problems(path: Path) -> list[str]:
    """Every hygiene problem of one notebook file."""
    notebook = nbformat.read(str(path), as_version=4)
    return [
        *execution_problems(notebook),
        *error_problems(notebook),
        *machine_path_problems(notebook),
        *metadata_problems(notebook),
        *line_length_problems(notebook),
        *stream_box_problems(notebook),
        *nbval_comment_problems(notebook),
        *exercise_problems(notebook),
        *layout_problems(path),
        *setup_problems(notebook),
        *launch_link_problems(notebook, path),
    ]


def _read(path: Path):
    return nbformat.read(str(path), as_version=4)


# --- The chapters ----------------------------------------------------------------------------

chapters = pytest.mark.parametrize("path", CHAPTERS, ids=[path.stem for path in CHAPTERS])


# Each check reads the notebook and returns its problems; a clean chapter has none.
NOTEBOOK_CHECKS = {
    "ran every cell once in order": execution_problems,
    "stores errors only where it means to": error_problems,
    "outputs show no machine paths": machine_path_problems,
    "has no volatile metadata": metadata_problems,
    "fits the text column": line_length_problems,
    "shows one box per printed result": stream_box_problems,
    "keeps nbval markers in tags": nbval_comment_problems,
    "collapses exercise solutions": exercise_problems,
}


@chapters
@pytest.mark.parametrize("check", NOTEBOOK_CHECKS.values(), ids=NOTEBOOK_CHECKS.keys())
def test_chapter_passes_notebook_check(path, check):
    assert check(_read(path)) == []


@chapters
def test_chapter_file_is_normalized(path):
    assert layout_problems(path) == []


@chapters
def test_chapter_setup_installs_the_declared_release(path):
    assert setup_problems(_read(path)) == []


@chapters
def test_chapter_launch_links_open_its_own_file(path):
    assert launch_link_problems(_read(path), path) == []


# --- The checks catch what they are for ---------------------------------------------------------

SETUP_SOURCE = colab_tool.setup_source()


def _clean_notebook(book: Path) -> Path:
    """Writes a small notebook that passes every check, as tools/notebooks.py would."""
    owner_and_name = REPOSITORY.removeprefix("https://github.com/")
    path = book / "book" / "99_sample.ipynb"
    path.parent.mkdir(parents=True)
    colab = (
        f"https://colab.research.google.com/github/{owner_and_name}/blob/{BRANCH}/"
        "book/99_sample.ipynb"
    )
    source = f"{REPOSITORY}/blob/{BRANCH}/book/99_sample.ipynb"
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# Sample"),
            nbformat.v4.new_markdown_cell(
                f"[Run in Google Colab]({colab}) | [View source]({source})"
            ),
            nbformat.v4.new_code_cell(SETUP_SOURCE, execution_count=1),
            nbformat.v4.new_code_cell(
                "print(0.25 * -2.0)",
                execution_count=2,
                outputs=[nbformat.v4.new_output("stream", name="stdout", text="-0.5\n")],
            ),
            nbformat.v4.new_code_cell(
                "raise ValueError('alpha')",
                execution_count=3,
                metadata={"tags": ["raises-exception"]},
                outputs=[
                    nbformat.v4.new_output(
                        "error", ename="ValueError", evalue="alpha", traceback=["ValueError: alpha"]
                    )
                ],
            ),
            nbformat.v4.new_markdown_cell("## Exercises\n\n1. What is PReLU(-4) for alpha 0.25?"),
            nbformat.v4.new_code_cell(
                "print(0.25 * -4.0)",
                execution_count=4,
                metadata={"tags": ["hide-cell"]},
                outputs=[nbformat.v4.new_output("stream", name="stdout", text="-1.0\n")],
            ),
        ]
    )
    notebook_tool.write(notebook_tool.normalize(notebook), path)
    return path


def _spoil_unexecuted(notebook):
    notebook.cells[3].execution_count = None


def _spoil_order(notebook):
    notebook.cells[2].execution_count, notebook.cells[3].execution_count = 2, 1


def _spoil_second_session(notebook):
    notebook.cells[3].execution_count = 7


def _spoil_error(notebook):
    notebook.cells[3].outputs.append(
        nbformat.v4.new_output(
            "error", ename="NameError", evalue="name 'x' is not defined", traceback=[]
        )
    )


def _spoil_path(notebook):
    notebook.cells[3].outputs[0].text = "saved to /home/alice/prelu/model.keras\n"


def _spoil_traceback_path(notebook):
    notebook.cells[4].outputs[0].traceback = [
        "File /tmp/venv/lib/python3.11/site-packages/keras/src/layer.py:12"
    ]


def _spoil_timings(notebook):
    notebook.cells[3].metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00.000000Z"}


def _spoil_widgets(notebook):
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}


def _spoil_version(notebook):
    notebook.metadata["language_info"]["version"] = "3.11.7"


def _spoil_stderr(notebook):
    notebook.cells[3].outputs.append(
        nbformat.v4.new_output(
            "stream", name="stderr", text="2026-01-01 00:00:00 I tensorflow: ...\n"
        )
    )


def _spoil_release(notebook):
    notebook.cells[2].source = notebook.cells[2].source.replace("@main", "@v0.0.1")


def _spoil_colab_link(notebook):
    notebook.cells[1].source = notebook.cells[1].source.replace("99_sample", "98_other", 1)


def _spoil_long_code_line(notebook):
    notebook.cells[3].source = "x = " + "1 + " * 19 + "1"


def _spoil_long_output_line(notebook):
    notebook.cells[3].outputs[0].text = "0.5 " * 20 + "1\n"


def _spoil_two_boxes(notebook):
    notebook.cells[3].outputs.append(nbformat.v4.new_output("stream", name="stdout", text="1\n"))


def _spoil_nbval_comment(notebook):
    notebook.cells[3].source = "# NBVAL_IGNORE_OUTPUT\n" + notebook.cells[3].source


def _spoil_visible_solution(notebook):
    notebook.cells[6].metadata["tags"] = ["hide-input"]


SPOILERS = {
    "unexecuted cell": (_spoil_unexecuted, "is not executed"),
    "counts out of order": (_spoil_order, "has execution count 1, expected 3"),
    "cell from another session": (_spoil_second_session, "has execution count 7, expected 2"),
    "stored error": (_spoil_error, "stores NameError"),
    "home folder in output": (_spoil_path, "prints a machine path"),
    "library path in traceback": (_spoil_traceback_path, "prints a machine path"),
    "execution timings": (_spoil_timings, "volatile key 'execution'"),
    "widget state": (_spoil_widgets, "volatile key 'widgets'"),
    "interpreter version": (_spoil_version, "volatile key 'language_info.version'"),
    "stderr log lines": (_spoil_stderr, "stores stderr"),
    "another release": (_spoil_release, "is not tools/colab.py's"),
    "colab link to another file": (_spoil_colab_link, "no link to"),
    "code line over 80 characters": (_spoil_long_code_line, "code line 1 has 81 characters"),
    "printed line over 80 characters": (_spoil_long_output_line, "stdout output line 1 has 81"),
    "one result in two boxes": (_spoil_two_boxes, "adjacent stdout stream outputs"),
    "nbval marker as a comment": (_spoil_nbval_comment, "nbval comment in its code"),
    "exercise solution shown": (_spoil_visible_solution, "without the hide-cell tag"),
}


def test_clean_notebook_has_no_problems(tmp_path):
    assert notebook_problems(_clean_notebook(tmp_path)) == []


@pytest.mark.parametrize("spoiler", SPOILERS.values(), ids=SPOILERS.keys())
def test_spoiled_notebook_is_reported(tmp_path, spoiler):
    spoil, message = spoiler
    path = _clean_notebook(tmp_path)
    notebook = _read(path)
    spoil(notebook)
    nbformat.write(notebook, str(path))
    problems = notebook_problems(path)
    assert any(message in problem for problem in problems), problems


def test_lines_of_80_characters_fit_the_text_column(tmp_path):
    notebook = _read(_clean_notebook(tmp_path))
    notebook.cells[3].source = "x = " + "1 + " * 18 + "1234"
    notebook.cells[3].outputs[0].text = "0.5 " * 19 + "1234\n"
    assert line_length_problems(notebook) == []


def test_notebook_saved_by_another_tool_is_reported(tmp_path):
    path = _clean_notebook(tmp_path)
    notebook = _read(path)
    # Jupyter's own save: a different indent and key order than nbformat.write gives.
    path.write_text(nbformat.writes(notebook, indent=2), encoding="utf-8")
    assert any("not normalized" in problem for problem in notebook_problems(path))


def test_format_notebooks_fixes_volatile_metadata(tmp_path):
    path = _clean_notebook(tmp_path)
    notebook = _read(path)
    _spoil_timings(notebook)
    _spoil_widgets(notebook)
    _spoil_stderr(notebook)
    nbformat.write(notebook, str(path))
    notebook_tool.main(["normalize", str(path)])
    assert notebook_problems(path) == []

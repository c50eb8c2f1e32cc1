"""tools/colab.py: every chapter's Setup cell installs the library the notebook came from."""

import importlib.util
import shutil
import subprocess
from pathlib import Path
from unittest import mock

import nbformat
import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def load_tool():
    spec = importlib.util.spec_from_file_location("colab_tool", ROOT / "tools" / "colab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


colab = load_tool()


def test_every_chapter_has_the_one_setup_cell():
    assert colab.chapters(), "no chapters found"
    assert colab.stale(colab.chapters()) == []


def test_the_source_is_the_published_branch_of_the_repository_pyproject_names():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    repository = project["project"]["urls"]["Repository"]
    assert config["repository"]["url"] == repository
    assert colab.default_source() == f"git+{repository}@{config['repository']['branch']}"
    assert f'"{colab.default_source()}"' in colab.setup_source()


def run_setup_cell(environment: dict[str, str], installed: bool) -> list[list[str]]:
    """Runs the Setup cell's code; returns the commands it would have run."""
    commands = []

    def record(command, check):
        assert check is True
        commands.append(command)

    found = object() if installed else None
    with (
        mock.patch.object(importlib.util, "find_spec", return_value=found),
        mock.patch.object(subprocess, "run", record),
        mock.patch.dict("os.environ", environment, clear=False),
    ):
        exec(compile(colab.setup_source(), "setup-cell", "exec"), {})
    return commands


def test_setup_cell_installs_from_the_published_branch_when_the_library_is_missing(monkeypatch):
    monkeypatch.delenv(colab.SOURCE_VARIABLE, raising=False)
    (command,) = run_setup_cell({}, installed=False)
    assert command[-1] == f"prelu-tutorial @ {colab.default_source()}"
    assert command[1:4] == ["-m", "pip", "install"]


def test_setup_cell_honours_the_source_variable():
    (command,) = run_setup_cell({colab.SOURCE_VARIABLE: "file:///tmp/clone"}, installed=False)
    assert command[-1] == "prelu-tutorial @ file:///tmp/clone"


def test_setup_cell_does_nothing_where_the_library_is_installed():
    assert run_setup_cell({}, installed=True) == []


def test_check_reports_a_spoiled_setup_cell_and_apply_repairs_it(tmp_path, monkeypatch):
    chapter = tmp_path / "book" / "01_x.ipynb"
    chapter.parent.mkdir()
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(colab.MARKER + "\nold = 'v0.1.0'")]
    nbformat.write(notebook, chapter)
    assert colab.stale([chapter]) == [f"{chapter.name}: the Setup cell differs from tools/colab.py"]
    assert colab.apply([chapter]) == 1
    assert colab.stale([chapter]) == []
    notebook.cells = [nbformat.v4.new_code_cell("import prelu_tutorial")]
    nbformat.write(notebook, chapter)
    with pytest.raises(ValueError, match="no Setup cell"):
        colab.apply([chapter])

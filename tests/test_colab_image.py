"""tools/colab_image.py: what passes a chapter on the Colab image, and the image stays pristine.

The image here is a small venv that borrows this environment's packages through a .pth file,
so a kernel starts in it in a second; `make test-colab` runs the real chapters on the real image.
"""

import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("colab_image", ROOT / "tools" / "colab_image.py")
colab_image = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(colab_image)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """A venv without pip whose site-packages points at this environment's (ipykernel)."""
    folder = tmp_path_factory.mktemp("image") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)],
                   check=True, timeout=120)
    site = next((folder / "lib").glob("python3.*/site-packages"))
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (folder / "marker.txt").write_text("pristine\n")
    return folder


def chapter(tmp_path: Path, *cells: tuple[str, list[str]]) -> Path:
    """A notebook of the given (source, tags) code cells; stored outputs are empty."""
    notebook = nbformat.v4.new_notebook()
    for source, tags in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        notebook.cells.append(cell)
    path = tmp_path / "chapter.ipynb"
    nbformat.write(notebook, str(path))
    return path


def run(path: Path, image: Path, tmp_path: Path):
    return colab_image.run_chapter(path, image, tmp_path / "lib.whl", 60, tmp_path / "log")


def test_a_chapter_passes_in_an_empty_folder_with_the_source_set(image, tmp_path):
    path = chapter(
        tmp_path,
        ("import os, sys\nprint(os.listdir('.'), sys.prefix.endswith('/venv'))", []),
        ("print(os.environ['PRELU_TUTORIAL_SOURCE'])", []),
    )
    seconds, differences = run(path, image, tmp_path)
    assert seconds > 0
    # The stored outputs are empty, so both printing cells differ, and the messages say what.
    assert [line.split(":")[0] for line in differences] == ["cell 0", "cell 1"]
    assert "[] True" in differences[0]
    assert (tmp_path / "lib.whl").as_uri() in differences[1]


def test_an_untagged_error_fails_the_chapter_and_names_the_cell(image, tmp_path):
    path = chapter(tmp_path, ("x = 1", []), ("1 / 0", []))
    with pytest.raises(SystemExit, match="cell 1 raised ZeroDivisionError"):
        run(path, image, tmp_path)


@pytest.mark.parametrize("tag", ["raises-exception", "nbval-raises-exception"])
def test_a_cell_tagged_to_raise_may_raise(image, tmp_path, tag):
    path = chapter(tmp_path, ("1 / 0", [tag]), ("print('after')", ["nbval-ignore-output"]))
    _, differences = run(path, image, tmp_path)
    assert differences == []  # neither cell is compared


def test_files_a_chapter_replaces_in_its_copy_leave_the_image_alone(image, tmp_path):
    source = (
        "import os, sys\n"
        "marker = os.path.join(sys.prefix, 'marker.txt')\n"
        "with open(marker + '.new', 'w') as f:\n"
        "    f.write('changed')\n"
        "os.replace(marker + '.new', marker)  # as pip replaces a file"
    )
    run(chapter(tmp_path, (source, [])), image, tmp_path)
    assert (image / "marker.txt").read_text() == "pristine\n"


def test_a_file_written_in_place_through_a_hard_link_is_caught(image, tmp_path):
    source = (
        "import os, sys\n"
        "with open(os.path.join(sys.prefix, 'marker.txt'), 'a') as f:\n"
        "    f.write('appended')"
    )
    try:
        with pytest.raises(SystemExit, match="changed the image"):
            run(chapter(tmp_path, (source, [])), image, tmp_path)
    finally:
        (image / "marker.txt").write_text("pristine\n")


def test_sanitized_outputs_compare_equal(tmp_path):
    stored = nbformat.v4.new_notebook()
    stored.cells.append(nbformat.v4.new_code_cell("f()"))
    stored.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="12 ms/step\n")]
    ran = nbformat.reads(nbformat.writes(stored), as_version=4)
    ran.cells[0].outputs[0].text = "345 ms/step\n"
    assert colab_image.differing_cells(stored, ran) == []
    ran.cells[0].outputs[0].text = "345 ms/step, loss 0.1\n"
    assert colab_image.differing_cells(stored, ran) == [
        "cell 0: 'DURATION' -> 'DURATION, loss 0.1'"
    ]

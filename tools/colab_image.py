"""Run every chapter on an image built like Colab's runtime: ``make test-colab``.

The image is a venv (``_build/venv-colab``, made by the Makefile from
``tools/colab-image.txt``: Colab's Python, TensorFlow, Keras, NumPy and the
packages the chapters take from Colab) without ``prelu_tutorial``. For each
chapter this script

1. builds a wheel of the committed ``HEAD`` once (Colab installs what was
   pushed, so a file left out of git fails here as it would there);
2. makes a pristine copy of the image (hard links: a package that a chapter
   installs or upgrades replaces files in the copy and never touches the
   image, and a check after every chapter proves it);
3. executes the chapter top to bottom with nbclient in a kernel of that copy,
   in an empty working folder (Colab's ``/content`` holds no book), with
   ``PRELU_TUTORIAL_SOURCE`` pointing the chapter's own Setup cell at the
   wheel;
4. passes the chapter when no cell raises, apart from cells tagged to raise.

Outputs are not compared with the stored ones (Colab's versions differ), but
the cells whose text differs are listed, so that a chapter can say what a Colab
reader sees instead.

Usage:
    python tools/colab_image.py --image _build/venv-colab [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebooks import ROOT, raises_on_purpose  # noqa: E402

SOURCE_VARIABLE = "PRELU_TUTORIAL_SOURCE"
KERNEL_NAME = "colab-image"
# Cells whose output nbval does not compare are not compared here either.
UNCOMPARED_TAGS = {"nbval-ignore-output", "nbval-skip", "raises-exception"}
SANITIZE_FILE = ROOT / "tests" / "nbval_sanitize.cfg"


def build_wheel(destination: Path) -> tuple[Path, str]:
    """Builds a wheel of the library from the checkout's committed ``HEAD``.

    Args:
        destination: Folder the wheel is written to (emptied first).

    Returns:
        The wheel's path and the commit it was built from.

    Raises:
        SystemExit: If git or the build fails.
    """
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
         "--wheel-dir", str(destination), f"prelu-tutorial @ git+file://{ROOT}@{commit}"],
        capture_output=True, text=True, timeout=600,
    )
    wheels = sorted(destination.glob("prelu_tutorial-*.whl"))
    if build.returncode != 0 or len(wheels) != 1:
        raise SystemExit(f"test-colab: building the wheel of {commit} failed:\n{build.stderr}")
    return wheels[0], commit


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Size, modification time and inode of every file under ``folder``, by relative path."""
    state = {}
    for directory, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            state[os.path.relpath(path, folder)] = (info.st_size, info.st_mtime_ns, info.st_ino)
    return state


def sanitizers() -> list[tuple[re.Pattern, str]]:
    """The regex/replace pairs of nbval's sanitize file, in order."""
    text = SANITIZE_FILE.read_text()
    pairs = re.findall(r"^regex: (.*)\nreplace: (.*)$", text, flags=re.MULTILINE)
    return [(re.compile(pattern), replacement) for pattern, replacement in pairs]


def output_text(cell: nbformat.NotebookNode, rules: list[tuple[re.Pattern, str]]) -> str:
    """A code cell's streams and plain-text results, sanitized as nbval sanitizes them."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream" and output.name == "stdout":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", ""))
    text = "".join(parts)
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


def differing_cells(stored: nbformat.NotebookNode, ran: nbformat.NotebookNode) -> list[str]:
    """The compared code cells whose text output on the image differs from the stored one."""
    rules = sanitizers()
    found = []
    for index, (old, new) in enumerate(zip(stored.cells, ran.cells, strict=True)):
        tags = set(old.metadata.get("tags", []))
        if old.cell_type != "code" or tags & UNCOMPARED_TAGS:
            continue
        before, after = output_text(old, rules), output_text(new, rules)
        if before != after:
            pairs = itertools.zip_longest(before.splitlines(), after.splitlines(), fillvalue="")
            first = next((f"{a!r} -> {b!r}" for a, b in pairs if a != b), "(line ends)")
            found.append(f"cell {index}: {first[:160]}")
    return found


def run_chapter(
    path: Path, image: Path, wheel: Path, timeout: int, log: Path
) -> tuple[float, list[str]]:
    """Executes one chapter in a pristine copy of the image.

    Args:
        path: The chapter's notebook.
        image: The image venv (never modified).
        wheel: The library's wheel, which the Setup cell installs.
        timeout: Seconds one cell may take.
        log: File that receives the kernel's stderr (TensorFlow's log lines, pip's notes).

    Returns:
        The chapter's wall time and the cells whose text output differs from the stored one.

    Raises:
        SystemExit: If a cell raises without a tag that allows it, or the image changed.
    """
    stored = nbformat.read(str(path), as_version=4)
    notebook = nbformat.read(str(path), as_version=4)
    before = snapshot(image)
    with tempfile.TemporaryDirectory(prefix="colab-image-") as scratch:
        scratch = Path(scratch)
        venv = scratch / "venv"
        subprocess.run(["cp", "-al", str(image), str(venv)], check=True, timeout=300)
        content = scratch / "content"
        content.mkdir()
        spec = scratch / "jupyter" / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True)
        env = {
            SOURCE_VARIABLE: wheel.as_uri(),
            "MPLCONFIGDIR": str(scratch / "matplotlib"),
            "PYTHONNOUSERSITE": "1",
        }
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher",
                     "-f", "{connection_file}"],
            "display_name": "Colab image",
            "language": "python",
            "env": env,
        }))
        os.environ["JUPYTER_PATH"] = str(scratch / "jupyter")
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
        start = time.perf_counter()
        with log.open("w") as stderr:
            NotebookClient(
                notebook,
                timeout=timeout,
                kernel_name=KERNEL_NAME,
                resources={"metadata": {"path": str(content)}},
                allow_errors=True,
            ).execute(stderr=stderr)
        seconds = time.perf_counter() - start
    if snapshot(image) != before:
        raise SystemExit(f"test-colab: running {path.name} changed the image {image}")
    for index, cell in enumerate(notebook.cells):
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if cell.cell_type == "code" and errors and not raises_on_purpose(cell):
            error = errors[0]
            raise SystemExit(
                f"test-colab: {path.name} cell {index} raised {error.ename}: {error.evalue}"
                f" (the kernel's stderr: {log})"
            )
    return seconds, differing_cells(stored, notebook)


def image_versions(image: Path) -> str:
    """Python and the main packages of the image, as one line."""
    code = (
        "import importlib.metadata as m, platform; print('Python ' + platform.python_version()"
        ", *(f'{n} {m.version(n)}' for n in ('tensorflow', 'keras', 'numpy', 'protobuf')),"
        " sep=', ')"
    )
    return subprocess.run(
        [str(image / "bin" / "python"), "-c", code],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    """Runs the chapters on the image and prints each one's time; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, required=True, help="the Colab-like venv")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a cell may take")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    image = args.image.resolve()
    if not (image / "bin" / "python").exists():
        parser.error(f"--image: {image} is not a venv")
    chapters = [p.resolve() for p in args.notebooks] or sorted((ROOT / "book").glob("*.ipynb"))
    wheel, commit = build_wheel(ROOT / "_build" / "colab-wheel")
    print(f"test-colab: {image_versions(image)}; the library from {commit[:12]}", flush=True)
    if has_library(image):
        raise SystemExit("test-colab: the image already has prelu_tutorial installed")
    logs = ROOT / "_build" / "colab-logs"
    logs.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for path in chapters:
        log = logs / f"{path.stem}.log"
        seconds, differences = run_chapter(path, image, wheel, args.timeout, log)
        total += seconds
        print(f"  {path.name}: passed in {seconds:.0f} s", flush=True)
        for line in differences:
            print(f"    output differs from the stored one, {line}")
    print(f"test-colab: {len(chapters)} chapters passed in {total:.0f} s")
    return 0


def has_library(image: Path) -> bool:
    """Tells whether ``prelu_tutorial`` is importable in the image (it must not be)."""
    probe = subprocess.run(
        [str(image / "bin" / "python"), "-c",
         "import importlib.util as u, sys; sys.exit(u.find_spec('prelu_tutorial') is None)"],
        cwd=tempfile.gettempdir(), timeout=120,
    )
    return probe.returncode == 0


if __name__ == "__main__":
    sys.exit(main())

"""README.md's facts about the code: its Layout section maps every module of the package."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "prelu_tutorial"
# In the Layout block a name starts before this column; its description, and every line that
# continues a description, start at it.
DESCRIPTION_COLUMN = 24


def layout_lines() -> list[str]:
    """The lines of the code block in README.md's "## Layout" section."""
    section = (ROOT / "README.md").read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```")[1].splitlines()


def listed_paths() -> set[str]:
    """Every path the Layout block names; a name indented under a folder lies in that folder."""
    folders: list[tuple[int, str]] = []  # the enclosing folders: (indentation, path)
    paths = set()
    for line in layout_lines():
        name = line.lstrip()
        indent = len(line) - len(name)
        if not name or indent >= DESCRIPTION_COLUMN:
            continue
        name = name.split()[0].rstrip(",")
        while folders and folders[-1][0] >= indent:
            folders.pop()
        path = f"{folders[-1][1]}/{name.rstrip('/')}" if folders else name.rstrip("/")
        paths.add(path)
        if name.endswith("/"):
            folders.append((indent, path))
    return paths


def package_modules() -> set[str]:
    """The package's source files: its Python modules and the C++ op's source."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / PACKAGE).rglob("*")
        if path.suffix in (".py", ".cc") and "__pycache__" not in path.parts
    }


def test_layout_lists_every_module_of_the_package():
    missing = package_modules() - listed_paths()
    assert not missing, f"README.md's Layout section does not list {sorted(missing)}"


def test_layout_lists_no_module_that_the_package_lacks():
    listed = {path for path in listed_paths() if path.startswith(f"{PACKAGE}/")}
    gone = {path for path in listed if not (ROOT / path).exists()}
    assert not gone, f"README.md's Layout section lists {sorted(gone)}, which do not exist"


def test_layout_names_the_tools_and_tests_folders():
    assert {"tools", "tests", PACKAGE} <= listed_paths()

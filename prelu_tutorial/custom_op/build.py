"""Compiling the PReLU op's C++ source into a shared library, once per machine.

The library is built with the compile and link flags of the installed
TensorFlow (``tf.sysconfig``) into a cache folder, under a name keyed by the
source, the flags and the TensorFlow version: a new TensorFlow or an edited
source builds anew, everything else loads the file already there. Two
processes that build at once do not corrupt it: a file lock lets one build
while the other waits, and the compiler writes a temporary file that
``os.replace`` moves into place in one step.

The cache folder is ``$PRELU_TUTORIAL_CACHE`` if set, else
``~/.cache/prelu_tutorial``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import tensorflow as tf

__all__ = [
    "OPTIMIZATION_FLAGS",
    "SOURCE",
    "CompilerNotFoundError",
    "cache_dir",
    "compile_command",
    "find_compiler",
    "library_path",
    "build",
]

SOURCE = Path(__file__).with_name("prelu_op.cc")
"""The op's C++ source: registration, shape functions and CPU kernels."""

OPTIMIZATION_FLAGS = ("-O3", "-fno-trapping-math")
"""``-O3`` vectorizes loops; ``-fno-trapping-math`` lets it vectorize the selects."""

_COMPILERS = ("g++", "c++", "clang++")
_BUILD_TIMEOUT_SECONDS = 600


class CompilerNotFoundError(RuntimeError):
    """No C++ compiler is installed; the message says how to install one."""


def cache_dir() -> Path:
    """The folder that holds the built libraries (created if missing).

    Returns:
        ``$PRELU_TUTORIAL_CACHE`` if set, else ``~/.cache/prelu_tutorial``.
    """
    folder = os.environ.get("PRELU_TUTORIAL_CACHE") or Path.home() / ".cache" / "prelu_tutorial"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def find_compiler() -> str:
    """The C++ compiler to use: ``$CXX`` if set, else the first of g++, c++, clang++.

    Returns:
        The compiler's path.

    Raises:
        CompilerNotFoundError: If none is installed.
    """
    names = [os.environ["CXX"]] if os.environ.get("CXX") else list(_COMPILERS)
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    raise CompilerNotFoundError(
        f"prelu_tutorial.custom_op needs a C++17 compiler to build the PReLU op, and found "
        f"none (looked for {', '.join(names)}). Install one: on Debian, Ubuntu or Colab "
        "`apt-get install g++`; with conda `conda install -c conda-forge cxx-compiler`; on "
        "macOS `xcode-select --install`. Or set $CXX to a compiler's path."
    )


def _flags() -> tuple[list[str], list[str]]:
    return list(tf.sysconfig.get_compile_flags()), list(tf.sysconfig.get_link_flags())


def compile_command(
    output: str | os.PathLike, compiler: str | None = None, extra: Sequence[str] = ()
) -> list[str]:
    """The command line that compiles :data:`SOURCE` into the library ``output``.

    Args:
        output: Path of the shared library to write.
        compiler: The compiler; defaults to :func:`find_compiler`.
        extra: More flags, e.g. ``["-fopt-info-vec-optimized"]``.

    Returns:
        The command as a list of arguments for ``subprocess.run``.

    Raises:
        CompilerNotFoundError: If ``compiler`` is not given and none is installed.
    """
    compile_flags, link_flags = _flags()
    return [
        compiler or find_compiler(),
        "-shared",
        "-fPIC",
        *OPTIMIZATION_FLAGS,
        *compile_flags,
        *extra,
        str(SOURCE),
        "-o",
        str(output),
        *link_flags,
    ]


def library_path() -> Path:
    """Where the library for this source, these flags and this TensorFlow lives.

    Returns:
        ``cache_dir() / "prelu_op-<key>.so"``; the file may not exist yet.
    """
    compile_flags, link_flags = _flags()
    digest = hashlib.sha256(SOURCE.read_bytes())
    for part in (tf.__version__, *OPTIMIZATION_FLAGS, *compile_flags, *link_flags):
        digest.update(b"\0" + part.encode())
    return cache_dir() / f"prelu_op-{digest.hexdigest()[:16]}.so"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``path`` (released when the process dies too)."""
    import fcntl  # POSIX only, like TensorFlow's custom-op build itself

    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build(force: bool = False) -> Path:
    """Builds the library unless the cache already holds it.

    Args:
        force: Rebuild even if the library exists.

    Returns:
        The library's path.

    Raises:
        CompilerNotFoundError: If no C++ compiler is installed.
        RuntimeError: If the compiler fails (its messages are included).
    """
    target = library_path()
    if target.exists() and not force:
        return target
    compiler = find_compiler()
    with _file_lock(target.with_suffix(".lock")):
        # Another process may have built it while this one waited for the lock.
        if target.exists() and not force:
            return target
        handle, partial = tempfile.mkstemp(dir=target.parent, suffix=".so.partial")
        os.close(handle)
        try:
            result = subprocess.run(
                compile_command(partial, compiler),
                capture_output=True,
                text=True,
                timeout=_BUILD_TIMEOUT_SECONDS,
            )
            if result.returncode != 0:
                raise RuntimeError(
                    f"Building the PReLU op failed ({Path(compiler).name} exited with "
                    f"{result.returncode}):\n{result.stderr[-4000:]}"
                )
            os.replace(partial, target)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
    return target

"""Compiling the PReLU op's C++ source into a shared library, once per machine.

The library is built with the compile and link flags of the installed
TensorFlow (``tf.sysconfig``) into a cache folder, under a name keyed by the
source, the flags and the TensorFlow version: a new TensorFlow or an edited
source builds anew, everything else loads the file already there. Two
processes that build at once do not corrupt it: a file lock lets one build
while the other waits, and the compiler writes a temporary file that
``os.replace`` moves into place in one step, only once it is a non-empty
shared library. A cached file that does not load (cut short, or damaged) is
built anew once by :func:`load`; if that does not load either, the error
names the file and ``PRELU_TUTORIAL_CACHE``. Every failure of the build
(no cache folder, a compiler that fails, writes nothing or overruns its
time) is a ``RuntimeError`` that says what went wrong.

The cache folder is ``$PRELU_TUTORIAL_CACHE`` if set, else
``~/.cache/prelu_tutorial``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

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
    "load",
]

SOURCE = Path(__file__).with_name("prelu_op.cc")
"""The op's C++ source: registration, shape functions and CPU kernels."""

OPTIMIZATION_FLAGS = ("-O3", "-fno-trapping-math")
"""``-O3`` vectorizes loops; ``-fno-trapping-math`` lets it vectorize the selects."""

_COMPILERS = ("g++", "c++", "clang++")
_BUILD_TIMEOUT_SECONDS = 600
# The first bytes of a shared library: ELF (Linux), Mach-O 32/64-bit either
# byte order, and a universal Mach-O (macOS).
_LIBRARY_MAGIC = (
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
)


class CompilerNotFoundError(RuntimeError):
    """No C++ compiler is installed; the message says how to install one."""


def cache_dir() -> Path:
    """The folder that holds the built libraries (created if missing).

    Returns:
        ``$PRELU_TUTORIAL_CACHE`` if set, else ``~/.cache/prelu_tutorial``.

    Raises:
        RuntimeError: If the folder cannot be created (a file in the way, no
            permission); the message names it and ``PRELU_TUTORIAL_CACHE``.
    """
    folder = os.environ.get("PRELU_TUTORIAL_CACHE") or Path.home() / ".cache" / "prelu_tutorial"
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RuntimeError(
            f"The PReLU op's cache folder {folder} cannot be created ({error}). Set "
            "PRELU_TUTORIAL_CACHE to a folder you can write to."
        ) from error
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


def _library_fault(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be a whole shared library, or ``None`` if it may be.

    Checks the first bytes (ELF or Mach-O) and, for ELF, that the file reaches
    the end of its section header table, which the linker writes last: the
    dynamic loader maps a library cut short and the process dies of SIGBUS,
    instead of ``tf.load_op_library`` raising an error.
    """
    with open(path, "rb") as handle:
        head = handle.read(64)
    if not head:
        return "is empty"
    if head[:4] not in _LIBRARY_MAGIC:
        return "is not a shared library"
    if head[:4] == b"\x7fELF":
        if len(head) < 64:
            return "is cut short"
        order = "<" if head[5] == 1 else ">"
        if head[4] == 2:  # ELF64: e_shoff at 0x28, e_shentsize and e_shnum at 0x3A
            (offset,) = struct.unpack_from(order + "Q", head, 0x28)
            size, count = struct.unpack_from(order + "HH", head, 0x3A)
        else:  # ELF32: e_shoff at 0x20, e_shentsize and e_shnum at 0x2E
            (offset,) = struct.unpack_from(order + "I", head, 0x20)
            size, count = struct.unpack_from(order + "HH", head, 0x2E)
        if os.path.getsize(path) < offset + size * count:
            return "is cut short"
    return None


def _check_library(path: str | os.PathLike, compiler: str) -> None:
    """Raises RuntimeError unless the compiler's output may be a whole shared library."""
    fault = _library_fault(path)
    if fault is not None:
        raise RuntimeError(
            f"Building the PReLU op failed: {Path(compiler).name} exited with 0 but its output "
            f"{path} {fault}; nothing was cached. Check the compiler ($CXX)."
        )


def build(force: bool = False) -> Path:
    """Builds the library unless the cache already holds it.

    Args:
        force: Rebuild even if the library exists.

    Returns:
        The library's path.

    Raises:
        CompilerNotFoundError: If no C++ compiler is installed.
        RuntimeError: If the cache folder cannot be created or written, or
            the compiler fails (its messages are included), overruns its
            time, or exits without writing a shared library. Nothing is
            cached then.
    """
    target = library_path()
    if target.exists() and not force:
        return target
    compiler = find_compiler()
    try:
        with _file_lock(target.with_suffix(".lock")):
            # Another process may have built it while this one waited for the lock.
            if target.exists() and not force:
                return target
            handle, partial = tempfile.mkstemp(dir=target.parent, suffix=".so.partial")
            os.close(handle)
            try:
                _compile(partial, compiler)
                os.replace(partial, target)
            finally:
                if os.path.exists(partial):
                    os.remove(partial)
    except OSError as error:
        raise RuntimeError(
            f"Building the PReLU op failed: cannot write to the cache folder {target.parent} "
            f"({error}). Set PRELU_TUTORIAL_CACHE to a folder you can write to."
        ) from error
    return target


def _compile(output: str, compiler: str) -> None:
    """Runs the compiler into ``output`` and checks what it wrote."""
    try:
        result = subprocess.run(
            compile_command(output, compiler),
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(
            f"Building the PReLU op failed: {Path(compiler).name} did not finish within "
            f"{_BUILD_TIMEOUT_SECONDS} s and was stopped; nothing was cached."
        ) from error
    if result.returncode != 0:
        raise RuntimeError(
            f"Building the PReLU op failed ({Path(compiler).name} exited with "
            f"{result.returncode}):\n{result.stderr[-4000:]}"
        )
    _check_library(output, compiler)


def load() -> ModuleType:
    """Builds the library if needed and loads it with ``tf.load_op_library``.

    A cached library that does not load (cut short or damaged) is built
    anew, once; a library just built that does not load is not.

    Returns:
        The module of generated wrappers that ``tf.load_op_library`` returns.

    Raises:
        CompilerNotFoundError: If the library must be built and no C++
            compiler is installed.
        RuntimeError: If the build fails (see :func:`build`), or the library
            does not load as built; the message names the file and
            ``PRELU_TUTORIAL_CACHE``.
    """
    cached = library_path().exists()
    path = build()
    # A cached file cut short would crash the loader: rebuild without loading it.
    if not (cached and _library_fault(path)):
        try:
            return tf.load_op_library(str(path))
        except (tf.errors.OpError, OSError) as error:
            if not cached:
                raise _does_not_load(path, error, "as built") from error
    path = build(force=True)
    try:
        return tf.load_op_library(str(path))
    except (tf.errors.OpError, OSError) as error:
        raise _does_not_load(path, error, "even built anew") from error


def _does_not_load(path: Path, error: Exception, when: str) -> RuntimeError:
    """The error for a library that ``tf.load_op_library`` refuses."""
    return RuntimeError(
        f"The PReLU op's library {path} does not load {when}: {type(error).__name__}: "
        f"{error}. Delete it, or set PRELU_TUTORIAL_CACHE to another folder, and check "
        "that $CXX is a C++ compiler for this machine's TensorFlow."
    )

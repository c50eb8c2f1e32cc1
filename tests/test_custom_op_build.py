"""prelu_tutorial.custom_op.build: compiling the op once into a cache, and its CLI.

A fake compiler stands in for g++ wherever a test counts compilations, so
these tests need no compiler but the last one, which reads the real cache.
"""

import os
import stat
import subprocess
import sys

import pytest
import tensorflow as tf
from processes import stop

from prelu_tutorial import custom_op
from prelu_tutorial.custom_op import build
from prelu_tutorial.custom_op.__main__ import main as custom_op_cli

FAKE_COMPILER = """#!/bin/sh
# Stands in for g++: logs the call, waits, writes the output named by -o.
echo call >> "{log}"
sleep 1
while [ "$#" -gt 0 ]; do
  if [ "$1" = "-o" ]; then echo library > "$2"; fi
  shift
done
"""


@pytest.fixture
def fake_compiler(tmp_path, monkeypatch):
    """An empty cache folder and a fake $CXX; returns the file that counts its calls."""
    log = tmp_path / "calls.log"
    script = tmp_path / "fake-g++"
    script.write_text(FAKE_COMPILER.format(log=log))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CXX", str(script))
    monkeypatch.setenv("PRELU_TUTORIAL_CACHE", str(tmp_path / "cache"))
    return log


def calls(log) -> int:
    return len(log.read_text().split()) if log.exists() else 0


def test_second_build_finds_the_library_in_the_cache_and_does_not_compile(fake_compiler):
    first = build.build()
    modified = first.stat().st_mtime_ns
    second = build.build()
    assert second == first
    assert first.stat().st_mtime_ns == modified
    assert calls(fake_compiler) == 1
    assert list(first.parent.glob("*.partial")) == []


def test_two_processes_building_at_once_compile_once(fake_compiler):
    script = "from prelu_tutorial.custom_op import build; print(build.build())"
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=environment
        )
        for _ in range(2)
    ]
    try:
        outputs = [process.communicate(timeout=300)[0].strip() for process in processes]
    finally:
        stop(processes)
    assert all(process.returncode == 0 for process in processes)
    assert outputs[0] == outputs[1]
    assert calls(fake_compiler) == 1


def test_library_path_changes_with_the_tensorflow_version(fake_compiler, monkeypatch):
    before = build.library_path()
    monkeypatch.setattr(tf, "__version__", tf.__version__ + ".other")
    assert build.library_path() != before


def test_no_compiler_raises_an_error_that_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("PRELU_TUTORIAL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(custom_op.CompilerNotFoundError, match="apt-get install g.."):
        build.build()


def test_cli_build_prints_the_library_path(fake_compiler, capsys):
    assert custom_op_cli(["build"]) == 0
    assert capsys.readouterr().out.strip() == str(build.library_path())
    assert calls(fake_compiler) == 1


def test_session_library_is_loaded_from_the_cache_without_recompiling(
    custom_op_library, monkeypatch
):
    path = build.library_path()
    modified = path.stat().st_mtime_ns

    def no_compiler(*args, **kwargs):
        raise AssertionError("the compiler was called")

    monkeypatch.setattr(build.subprocess, "run", no_compiler)
    assert build.build() == path
    assert path.stat().st_mtime_ns == modified

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
# Stands in for g++: logs the call, waits, writes the output named by -o:
# a 64-byte ELF header that passes build's checks but does not load.
echo call >> "{log}"
sleep 1
while [ "$#" -gt 0 ]; do
  if [ "$1" = "-o" ]; then
    {{ printf '\\177ELF\\002\\001\\001'; head -c 57 /dev/zero; }} > "$2"
  fi
  shift
done
"""
# Compilers that exit 0 and leave a wrong output behind, or hang.
WRITES_NOTHING = 'echo call >> "{log}"\n'
WRITES_TEXT = """echo call >> "{log}"
while [ "$#" -gt 0 ]; do
  if [ "$1" = "-o" ]; then echo "not a library" > "$2"; fi
  shift
done
"""
HANGS = 'echo call >> "{log}"\nexec sleep 60\n'
# Copies a real library to -o, to rebuild without compiling.
COPIES = """#!/bin/sh
echo call >> "{log}"
while [ "$#" -gt 0 ]; do
  if [ "$1" = "-o" ]; then cp "{library}" "$2"; fi
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


def use_compiler(tmp_path, monkeypatch, body: str):
    """Makes $CXX a shell script with ``body``; returns the file that counts its calls."""
    log = tmp_path / "calls.log"
    script = tmp_path / "other-g++"
    script.write_text("#!/bin/sh\n" + body.format(log=log))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CXX", str(script))
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


@pytest.mark.parametrize(
    ("body", "reason"),
    [(WRITES_NOTHING, "is empty"), (WRITES_TEXT, "is not a shared library")],
    ids=["nothing", "text"],
)
def test_compiler_that_exits_0_without_a_library_caches_nothing(
    fake_compiler, tmp_path, monkeypatch, body, reason
):
    use_compiler(tmp_path, monkeypatch, body)
    with pytest.raises(RuntimeError, match=reason):
        build.build()
    assert not build.library_path().exists()
    assert list(build.cache_dir().glob("*.partial")) == []
    monkeypatch.setenv("CXX", str(tmp_path / "fake-g++"))
    assert build.build().read_bytes().startswith(b"\x7fELF")


def test_cache_folder_that_cannot_be_created_is_a_runtime_error_naming_it(
    fake_compiler, tmp_path, monkeypatch
):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder")
    monkeypatch.setenv("PRELU_TUTORIAL_CACHE", str(in_the_way / "cache"))
    for call in (build.cache_dir, build.library_path, build.build, build.load):
        with pytest.raises(RuntimeError, match="PRELU_TUTORIAL_CACHE") as error:
            call()
        assert str(in_the_way / "cache") in str(error.value)
    assert calls(fake_compiler) == 0


@pytest.mark.parametrize("command", ["build", "path"])
def test_cli_reports_a_cache_folder_that_cannot_be_created_and_exits_1(
    fake_compiler, tmp_path, monkeypatch, capsys, command
):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder")
    monkeypatch.setenv("PRELU_TUTORIAL_CACHE", str(in_the_way / "cache"))
    assert custom_op_cli([command]) == 1
    assert "PRELU_TUTORIAL_CACHE" in capsys.readouterr().err


def test_compiler_that_overruns_its_time_is_a_runtime_error(fake_compiler, tmp_path, monkeypatch):
    log = use_compiler(tmp_path, monkeypatch, HANGS)
    monkeypatch.setattr(build, "_BUILD_TIMEOUT_SECONDS", 1)
    with pytest.raises(RuntimeError, match="did not finish within 1 s"):
        build.build()
    assert calls(log) == 1
    assert not build.library_path().exists()
    assert list(build.cache_dir().glob("*.partial")) == []


@pytest.mark.parametrize("cached", [b"", b"\x7fELF cut short"], ids=["empty", "cut_short"])
def test_cached_library_that_does_not_load_is_rebuilt_once_then_named(fake_compiler, cached):
    # The fake compiler's output does not load either: one rebuild, then an
    # error that names the file and the way out. An empty file is what a
    # compiler that wrote nothing used to leave in the cache.
    build.library_path().write_bytes(cached)
    with pytest.raises(RuntimeError, match="PRELU_TUTORIAL_CACHE") as error:
        build.load()
    assert str(build.library_path()) in str(error.value)
    assert calls(fake_compiler) == 1


def test_library_just_built_that_does_not_load_is_not_built_again(fake_compiler):
    with pytest.raises(RuntimeError, match="does not load as built"):
        build.load()
    assert calls(fake_compiler) == 1


LOAD_SCRIPT = """
import tensorflow as tf
from prelu_tutorial.custom_op import op
library = op.load_library()
print(op.prelu(tf.constant([-2.0, 3.0]), 0.5).numpy().tolist())
"""


def test_cached_library_cut_short_is_rebuilt_and_loads(custom_op_library, tmp_path):
    # In another process: this one has the ops registered already. The
    # "compiler" copies the real library, so the rebuild takes no compile.
    real = build.library_path()
    log = tmp_path / "calls.log"
    script = tmp_path / "copy-g++"
    script.write_text(COPIES.format(log=log, library=real))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / real.name).write_bytes(real.read_bytes()[:4096])
    environment = dict(
        os.environ,
        CXX=str(script),
        PRELU_TUTORIAL_CACHE=str(cache),
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == "[-1.0, 3.0]"
    assert calls(log) == 1
    assert (cache / real.name).read_bytes() == real.read_bytes()

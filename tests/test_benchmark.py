"""prelu_tutorial.benchmark: the command line, its files and errors, and the kernel counts."""

import csv
import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from tf_versions import requires_tf

import prelu_tutorial as pt
from prelu_tutorial import benchmark, ops

# Every candidate in every mode, forward and forward+backward; the copy only forward.
CONFIGS_PER_SIZE = len(benchmark.CANDIDATES) * len(benchmark.MODES) * 2 - len(benchmark.MODES)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `--quick` run of the command line on a tiny size, writing all three files."""
    folder = tmp_path_factory.mktemp("benchmark")
    paths = {kind: folder / f"results.{kind}" for kind in ("json", "csv", "png")}
    command = [sys.executable, "-m", "prelu_tutorial.benchmark", "--quick", "--sizes", "2x4x4x8"]
    command += ["--repeats", "1", "--no-progress"]
    for kind, flag in [("json", "--json"), ("csv", "--csv"), ("png", "--plot")]:
        command += [flag, str(paths[kind])]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    return run, paths


def test_quick_cli_exits_zero_and_prints_a_table_with_every_candidate(quick_run):
    run, _ = quick_run
    assert run.returncode == 0, run.stderr[-3000:]
    for candidate in benchmark.CANDIDATES:
        assert f"\n{candidate} " in run.stdout
    assert "forward+backward, float32[2x4x4x8] on CPU:0" in run.stdout


def test_quick_cli_writes_json_with_one_record_per_configuration(quick_run):
    _, paths = quick_run
    document = json.loads(paths["json"].read_text())
    assert document["tensorflow"] == tf.__version__
    records = document["measurements"]
    assert len(records) == CONFIGS_PER_SIZE
    assert all(r["shape"] == [2, 4, 4, 8] and r["dtype"] == "float32" for r in records)
    assert {(r["candidate"], r["mode"]) for r in records if r["passes"] == "forward"} == {
        (c, m) for c in benchmark.CANDIDATES for m in benchmark.MODES
    }
    assert all(r["median_ms"] > 0 and math.isfinite(r["gb_per_s"]) for r in records)


def test_quick_cli_writes_csv_with_the_measurement_fields(quick_run):
    _, paths = quick_run
    with open(paths["csv"], newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == CONFIGS_PER_SIZE
    assert list(rows[0]) == list(benchmark.Measurement.__dataclass_fields__)
    relu_rows = [row for row in rows if row["candidate"] == "relu"]
    assert {float(row["ratio_to_relu"]) for row in relu_rows} == {1.0}
    assert {row["shape"] for row in rows} == {"2x4x4x8"}


def test_quick_cli_writes_a_png_chart(quick_run):
    _, paths = quick_run
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bandwidth_is_the_floors_bytes_over_the_median_time():
    (forward,) = benchmark.run(
        sizes=["4x8"],
        candidates=["relu"],
        modes=["eager"],
        passes=["forward"],
        repeats=1,
        warmup=0,
        progress=False,
    )
    # The floor moves 2 tensors forward: 2 * 32 float32 values = 256 bytes.
    assert forward.gb_per_s == pytest.approx(256 / (forward.median_ms / 1e3) / 1e9)


def test_run_reports_the_quartiles_of_the_repeats(monkeypatch):
    # The first sample sizes the batch of calls; the five repeats then take 4, 1, 3, 2, 5 ms.
    samples = iter([0.001, 0.004, 0.001, 0.003, 0.002, 0.005])
    monkeypatch.setattr(benchmark, "_sample", lambda call, number: next(samples))
    (relu,) = benchmark.run(
        sizes=["4x8"],
        candidates=["relu"],
        modes=["eager"],
        passes=["forward"],
        repeats=5,
        warmup=0,
        progress=False,
    )
    # Sorted: 1 2 3 4 5 ms; the quartiles of five values are the 2nd and the 4th.
    assert (relu.q1_ms, relu.median_ms, relu.q3_ms) == pytest.approx((2.0, 3.0, 4.0))


def test_quick_cli_json_holds_quartiles_around_each_median(quick_run):
    _, paths = quick_run
    records = json.loads(paths["json"].read_text())["measurements"]
    assert all(r["q1_ms"] <= r["median_ms"] <= r["q3_ms"] for r in records)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--device", "tpu"], "'tpu'"),
        (["--dtype", "int8"], "'int8'"),
        (["--sizes", "big"], "'big'"),
        (["--sizes", "0x3"], "'0x3'"),
        (["--candidates", "relu,gelu"], "gelu"),
        (["--modes", "graph"], "graph"),
        (["--repeats", "0"], "repeats"),
    ],
)
def test_cli_rejects_a_bad_option_with_exit_status_2_naming_it(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main([*argv, "--no-progress"])
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a GPU is present")
def test_cli_asking_for_a_gpu_without_one_says_there_is_none(capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--device", "gpu", "--quick", "--no-progress"])
    assert exit_info.value.code == 2
    assert "asked for GPU:0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("size", "shape"),
    [("large", (64, 56, 56, 64)), ("8x3", (8, 3)), ("2X4x4X8", (2, 4, 4, 8)), ((5, 7), (5, 7))],
)
def test_parse_size_reads_names_strings_and_sequences(size, shape):
    assert benchmark.parse_size(size) == shape


@pytest.mark.parametrize("size", ["huge", "8", "8x-3", "axb", (4,), (0, 3)])
def test_parse_size_rejects_anything_else(size):
    with pytest.raises(ValueError, match="size"):
        benchmark.parse_size(size)


def test_plot_rejects_a_shape_that_was_not_measured():
    with pytest.raises(ValueError, match=r"\(1, 2\)"):
        benchmark.plot([], shape=(1, 2))


def test_format_table_has_one_block_per_size_and_pass():
    small = benchmark.Measurement("relu", "eager", "forward", (2, 3), "float32", "CPU:0", 1, 1, 2)
    measurements = [small, dataclasses.replace(small, shape=(4, 3))]
    measurements.append(dataclasses.replace(small, passes="forward+backward"))
    table = benchmark.format_table(measurements)
    header = "(median ms, IQR ms, x relu, GB/s)"
    assert [line for line in table.splitlines() if header in line] == [
        f"forward, float32[2x3] on CPU:0  {header}",
        f"forward, float32[4x3] on CPU:0  {header}",
        f"forward+backward, float32[2x3] on CPU:0  {header}",
    ]


def test_format_table_prints_the_interquartile_range_beside_the_median():
    relu = benchmark.Measurement(
        "relu", "eager", "forward", (2, 3), "float32", "CPU:0", 2.5, 1.0, 2.0, 2.25, 3.125
    )
    (row,) = [line for line in benchmark.format_table([relu]).splitlines() if line[:4] == "relu"]
    assert row.split() == ["relu", "2.500", "2.250-3.125", "1.00x", "2.0"]


# Kernel counts, against the counts by hand: ReLU reads x and writes y (2
# passes); its gradient reads x and the upstream gradient and writes dx (3).

SHAPE = (2, 3, 3, 4)


def step(function):
    alpha = tf.Variable(tf.fill((1, 1, 4), 0.25))

    def forward_and_gradients(x, upstream):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = function(x, alpha)
        return y, tape.gradient(y, [x, alpha], output_gradients=upstream)

    return forward_and_gradients


def test_kernels_of_relu_are_relu_and_relu_grad():
    x = tf.ones(SHAPE)
    found = benchmark.kernels(step(lambda x, a: tf.nn.relu(x)), x, x)
    assert found == [benchmark.Kernel("Relu", 2), benchmark.Kernel("ReluGrad", 3)]


def test_kernels_count_each_op_of_the_where_form_without_xla():
    x = tf.ones(SHAPE)
    found = benchmark.kernels(lambda x: ops.prelu_where(x, 0.25), x)
    # Greater reads x, writes a mask; Mul reads x, writes alpha*x; Select reads 3, writes 1.
    assert [(k.name, k.passes) for k in found] == [("Greater", 2), ("Mul", 2), ("SelectV2", 4)]


@pytest.mark.parametrize("name", sorted(ops.FORMULATIONS))
def test_xla_fuses_each_forward_into_one_kernel_of_two_passes(name):
    x = tf.ones(SHAPE)
    found = benchmark.kernels(lambda x: ops.FORMULATIONS[name](x, 0.25), x, jit_compile=True)
    assert [k.passes for k in found] == [2]


def test_fused_prelu_training_step_makes_seven_passes_in_three_kernels():
    # 2*4*4 = 32 rows, a multiple of the fold (8): no rows are left over.
    x = tf.ones((2, 4, 4, 4))
    found = benchmark.kernels(step(pt.prelu), x, x, jit_compile=True)
    # Forward 2, dx 3, and the alpha gradient's chunk sums read x and the upstream gradient: 2.
    assert sorted(k.passes for k in found) == [2, 2, 3]


@requires_tf(
    (2, 20),
    "XLA before it (2.16.2, 2.17.1 and 2.19.1 tested) sums the rows left over by the fold in a "
    "fourth kernel, which reads only those rows but which kernels() counts as two passes",
)
def test_rows_left_over_by_the_fold_are_summed_in_the_same_kernel():
    x = tf.ones(SHAPE)  # 2*3*3 = 18 rows: 16 fold into 8 chunks, 2 are left over
    found = benchmark.kernels(step(pt.prelu), x, x, jit_compile=True)
    assert sorted(k.passes for k in found) == [2, 2, 3]


# The command line checks its options and outputs before it measures -----------


def fail_if_measured(*args, **kwargs):
    raise AssertionError("the benchmark measured before it checked its options")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--sizes", ""], "--sizes needs at least one"),
        (["--candidates", ","], "--candidates needs at least one"),
        (["--json", "{missing}/out.json"], "does not exist"),
        (["--csv", "{folder}"], "needs a file name"),
        (["--plot", "{folder}/chart.xyz"], "cannot write '.xyz'"),
        (["--json", "{folder}/a", "--csv", "{folder}/a"], "different files"),
    ],
    ids=["empty-sizes", "empty-candidates", "missing-folder", "folder", "extension", "same-file"],
)
def test_cli_rejects_a_bad_option_or_output_before_measuring(
    argv, named, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(benchmark, "run", fail_if_measured)
    monkeypatch.setattr(benchmark, "variable_shapes", fail_if_measured)
    argv = [arg.format(folder=tmp_path, missing=tmp_path / "missing") for arg in argv]
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main([*argv, "--no-progress"])
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_cli_rejects_an_unwritable_output_before_measuring(tmp_path, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    monkeypatch.setattr(benchmark, "run", fail_if_measured)
    try:
        with pytest.raises(SystemExit) as exit_info:
            benchmark.main(["--json", str(locked / "out.json"), "--no-progress"])
    finally:
        locked.chmod(0o700)
    assert exit_info.value.code == 2
    assert "cannot be written" in capsys.readouterr().err


def test_cli_writes_every_output_it_can_when_one_fails(tmp_path, monkeypatch, capsys):
    measurement = benchmark.Measurement(
        "relu", "eager", "forward", (2, 3), "float32", "CPU:0", 1, 1, 2
    )
    monkeypatch.setattr(benchmark, "run", lambda **kwargs: [measurement])

    def broken_json(measurements, path):
        raise OSError("disk full")

    monkeypatch.setattr(benchmark, "write_json", broken_json)
    paths = {kind: tmp_path / f"out.{kind}" for kind in ("json", "csv", "png")}
    status = benchmark.main(
        ["--json", str(paths["json"]), "--csv", str(paths["csv"]), "--plot", str(paths["png"])]
    )
    assert status == 1
    assert "disk full" in capsys.readouterr().err
    assert paths["csv"].read_text().count("\n") == 2
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_run_measures_each_configuration_once_however_often_it_is_named():
    measurements = benchmark.run(
        sizes=["2x3", "2x3", (2, 3)],
        candidates=["relu", "relu", "where"],
        modes=["eager", "eager"],
        passes=["forward"],
        repeats=1,
        warmup=0,
        progress=False,
    )
    assert [(m.candidate, m.shape) for m in measurements] == [("relu", (2, 3)), ("where", (2, 3))]


def test_variable_shapes_times_both_candidates_on_sizes_prelu_has_not_compiled():
    result = benchmark.variable_shapes(batch_sizes=3, feature_shape=(2, 3), repeats=2)
    assert len(result.prelu_seconds) == len(result.where_seconds) == len(result.ratios) == 2
    assert all(seconds > 0 for seconds in result.prelu_seconds + result.where_seconds)
    assert result.ratios[0] == pytest.approx(result.prelu_seconds[0] / result.where_seconds[0])
    assert result.compiled_shapes <= ops._MAX_COMPILED_SHAPES
    assert "3 distinct batch sizes of [N, 2x3]" in benchmark.format_variable_shapes(result)


@pytest.mark.parametrize("kwargs", [{"batch_sizes": 0}, {"repeats": True}, {"feature_shape": (0,)}])
def test_variable_shapes_rejects_bad_counts(kwargs):
    with pytest.raises(ValueError):
        benchmark.variable_shapes(**kwargs)

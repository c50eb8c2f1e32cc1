"""prelu_tutorial.benchmark at op level, and the command line: files, usage errors, reports."""

import csv
import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from prelu_tutorial import benchmark
from prelu_tutorial.benchmark import cli, op_level, report, request, shape_loop, user_level

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
    assert {(r["candidate"], r["mode"]) for r in records if r["direction"] == "forward"} == {
        (c, m) for c in benchmark.CANDIDATES for m in benchmark.MODES
    }
    assert all(r["median_ms"] > 0 and math.isfinite(r["gb_per_s"]) for r in records)


def test_quick_cli_writes_csv_with_the_measurement_fields(quick_run):
    _, paths = quick_run
    with open(paths["csv"], newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == CONFIGS_PER_SIZE
    assert list(rows[0]) == list(benchmark.Measurement.__dataclass_fields__)
    assert {row["shape"] for row in rows} == {"2x4x4x8"}


def test_quick_cli_writes_a_png_chart(quick_run):
    _, paths = quick_run
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bandwidth_is_the_floors_bytes_over_the_median_time():
    forward = benchmark.run(
        sizes=["4x8"],
        candidates=["relu", "where"],
        modes=["eager"],
        directions=["forward"],
        repeats=1,
        warmup=0,
        progress=False,
    )[1]
    # The floor moves 2 tensors forward: 2 * 32 float32 values = 256 bytes.
    assert forward.gb_per_s == pytest.approx(256 / (forward.median_ms / 1e3) / 1e9)


def test_measurements_hold_each_candidates_statistics_and_median_over_relus(monkeypatch):
    # Five rounds each: ReLU takes 1..5 ms, `where` 2..10 ms, with a slow pair of rounds.
    times = {
        "relu": [0.004, 0.001, 0.003, 0.002, 0.005],
        "where": [0.002, 0.0021, 0.0022, 0.009, 0.0091],
    }
    monkeypatch.setattr(
        op_level.timing,
        "interleave",
        lambda calls, numbers, rounds, after_each: {key: times[key[0]] for key in calls},
    )
    relu, where = benchmark.run(
        sizes=["4x8"],
        candidates=["where"],
        modes=["eager"],
        directions=["forward"],
        repeats=5,
        warmup=0,
        progress=False,
    )
    assert (relu.min_ms, relu.q1_ms, relu.median_ms, relu.q3_ms) == pytest.approx((1, 2, 3, 4))
    assert (where.min_ms, where.median_ms) == pytest.approx((2.0, 2.2))
    assert where.ratio_to_relu == pytest.approx(2.2 / 3.0)
    assert where.bimodal and not relu.bimodal


def test_run_measures_each_configuration_once_however_often_it_is_named():
    measurements = benchmark.run(
        sizes=["2x3", "2x3", (2, 3)],
        candidates=["relu", "relu", "where"],
        modes=["eager", "eager"],
        directions=["forward"],
        repeats=1,
        warmup=0,
        progress=False,
    )
    assert [(m.candidate, m.shape) for m in measurements] == [("relu", (2, 3)), ("where", (2, 3))]


def test_custom_op_is_timed_in_eager_and_function_modes_but_not_xla(custom_op_library):
    measurements = benchmark.run(
        sizes=["2x4x4x8"],
        candidates=["custom_op"],
        modes=benchmark.MODES,
        directions=benchmark.DIRECTIONS,
        repeats=1,
        warmup=1,
        progress=False,
    )
    timed = {(m.candidate, m.mode, m.direction) for m in measurements if m.candidate != "relu"}
    assert timed == {
        ("custom_op", mode, direction)
        for mode in ("eager", "function")
        for direction in benchmark.DIRECTIONS
    }
    assert all(m.median_ms > 0 for m in measurements)


@pytest.mark.parametrize(
    ("size", "shape"),
    [
        ("large", (64, 56, 56, 64)),
        ("8x3", (8, 3)),
        ("2X4x4X8", (2, 4, 4, 8)),
        ((5, 7), (5, 7)),
        ("1x1x1x1x1x1x1x2", (1,) * 7 + (2,)),
    ],
)
def test_parse_size_reads_names_strings_and_sequences(size, shape):
    assert benchmark.parse_size(size) == shape


@pytest.mark.parametrize(
    "size",
    ["huge", "8", "8x-3", "axb", (4,), (0, 3), (2, 3.0), (2, True), "1x1x1x1x1x1x1x1x1x2"],
)
def test_parse_size_rejects_anything_else(size):
    with pytest.raises(ValueError, match="size"):
        benchmark.parse_size(size)


def test_plan_refuses_a_size_whose_tensors_exceed_the_machines_memory():
    with pytest.raises(ValueError, match="more than this machine's") as refused:
        op_level.plan(sizes=["100000x100000x1000"])
    assert refused.value.argument == "sizes"


@pytest.mark.parametrize(
    ("request_", "argument"),
    [
        ({"dtype": "int8"}, "dtype"),
        ({"sizes": ["1x1x1x1x1x1x1x1x1x2"]}, "sizes"),
        ({"modes": ["graph"]}, "modes"),
        ({"candidates": ["copy"], "directions": ["forward+backward"]}, "candidates"),
        ({"warmup": -1}, "warmup"),
    ],
)
def test_plan_names_the_argument_a_refused_request_must_change(request_, argument):
    with pytest.raises(request.RequestError) as refused:
        op_level.plan(**request_)
    assert refused.value.argument == argument


def test_about_leaves_other_errors_and_request_errors_as_they_are():
    with pytest.raises(TypeError), request.about("sizes"):
        raise TypeError("not a request error")
    with pytest.raises(request.RequestError) as refused, request.about("sizes"):
        raise request.RequestError("modes", "modes must be among ...")
    assert refused.value.argument == "modes"


def test_plot_rejects_a_shape_that_was_not_measured():
    with pytest.raises(ValueError, match=r"\(1, 2\)"):
        benchmark.plot([], shape=(1, 2))


def timed(candidate, mode, ratio, median_ms, q1_ms, q3_ms):
    """A forward float32[8x8] measurement on the CPU with the given figures."""
    return benchmark.Measurement(
        candidate, mode, "forward", (8, 8), "float32", "CPU:0", median_ms, ratio, 1.0, q1_ms, q3_ms
    )


@pytest.fixture
def chart():
    """A chart whose bars fill its panel: every candidate 3x ReLU in both modes."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measurements = [
        timed(name, mode, 3.0, 6.0, 5.0, 8.0)
        for name in ("abs", "minmax", "where", "keras", "pt.prelu")
        for mode in ("eager", "function")
    ]
    figure = benchmark.plot(measurements)
    figure.canvas.draw()
    yield figure
    plt.close(figure)


def legend_of(figure):
    """The chart's legend, whether the figure or its (first) axes holds it."""
    return figure.legends[0] if figure.legends else figure.axes[0].get_legend()


def test_plot_draws_each_bars_iqr_as_a_whisker_over_relus_median():
    import matplotlib

    matplotlib.use("Agg")
    figure = benchmark.plot([timed("pt.prelu", "eager", 2.0, 4.0, 3.0, 5.0)])
    (axis,) = figure.axes
    (whiskers,) = [c for c in axis.containers if type(c).__name__ == "ErrorbarContainer"]
    (segment,) = whiskers.lines[2][0].get_segments()
    # ReLU's median is 4.0 / 2.0 = 2 ms: the quartiles 3 and 5 ms are 1.5x and 2.5x.
    assert sorted(segment[:, 1]) == [1.5, 2.5]


def test_plot_takes_quartiles_equal_to_the_median_though_rescaling_rounds_them():
    import matplotlib

    matplotlib.use("Agg")
    # One round: q1 = median = q3, and 0.3 * (6.08 / 0.3) is a little above 6.08 in floats.
    benchmark.plot([timed("pt.prelu", "eager", 6.08, 0.3, 0.3, 0.3)])


def test_plot_legend_covers_no_bar_and_no_whisker(chart):
    from matplotlib.transforms import Bbox

    box = legend_of(chart).get_window_extent()
    (axis,) = chart.axes
    # A bar starts at 0, below a log axis: only the part inside the panel is drawn.
    panel = axis.get_window_extent()
    bars = [Bbox.intersection(patch.get_window_extent(), panel) for patch in axis.patches]
    whiskers = [
        Bbox.intersection(Bbox.null().from_extents(*ends.min(0), *ends.max(0)), panel)
        for container in axis.containers
        if type(container).__name__ == "ErrorbarContainer"
        for segment in container.lines[2][0].get_segments()
        for ends in [axis.transData.transform(segment)]
    ]
    assert len(bars) == 10
    assert not [bar for bar in bars + whiskers if box.overlaps(bar)]


def test_plot_legend_shows_every_bar_colour_and_the_whisker(chart):
    import matplotlib.colors
    import matplotlib.patches

    legend = legend_of(chart)
    (axis,) = chart.axes
    shown = {
        matplotlib.colors.to_hex(handle.get_facecolor())
        for handle in legend.legend_handles
        if isinstance(handle, matplotlib.patches.Rectangle)
    }
    drawn = {matplotlib.colors.to_hex(patch.get_facecolor()) for patch in axis.patches}
    assert drawn <= shown
    labels = [text.get_text() for text in legend.get_texts()]
    assert {"eager", "function", "IQR of the rounds"} <= set(labels)


def test_format_table_has_one_block_per_size_and_direction():
    small = benchmark.Measurement("relu", "eager", "forward", (2, 3), "float32", "CPU:0", 1, 1, 2)
    measurements = [small, dataclasses.replace(small, shape=(4, 3))]
    measurements.append(dataclasses.replace(small, direction="forward+backward"))
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


def test_format_table_marks_bimodal_timings_and_says_what_the_mark_means():
    relu = benchmark.Measurement(
        "relu", "eager", "forward", (2, 3), "float32", "CPU:0", 2.5, 1.0, 2.0, bimodal=True
    )
    lines = benchmark.format_table([relu]).splitlines()
    (row,) = [line for line in lines if line[:4] == "relu"]
    assert "1.00x*" in row
    assert lines[-1].startswith("* bimodal")


# The command line: every usage error exits 2 with one line, before anything runs ----------


def fail_if_measured(*args, **kwargs):
    raise AssertionError("the benchmark measured before it checked its options")


@pytest.fixture
def nothing_runs(monkeypatch):
    """Makes every measurement fail the test: usage errors must come first."""
    monkeypatch.setattr(op_level, "measure", fail_if_measured)
    monkeypatch.setattr(user_level, "measure_model", fail_if_measured)
    monkeypatch.setattr(shape_loop, "variable_shapes", fail_if_measured)


def usage_error(argv, capsys) -> str:
    """The message of a usage error, after checking it exits with status 2 in one line."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--no-progress"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.splitlines()[-1]
    assert message.startswith("python -m prelu_tutorial.benchmark: error: ")
    return message


@pytest.mark.parametrize(
    ("sizes", "named"),
    [
        ("1x1x1x1x1x1x1x1x1x2", "size needs 2 to 8 positive integer dimensions"),
        ("100000x100000x1000", "size 100000x100000x1000 in float32 needs about 3.2e+05 GB"),
        ("small,0x3", "got '0x3'"),
        ("4x-3", "got '4x-3'"),
        ("big", "got 'big'"),
    ],
    ids=["rank-10", "too-large", "zero", "negative", "unknown-name"],
)
def test_cli_refuses_a_bad_size_naming_the_flag_and_the_size(sizes, named, nothing_runs, capsys):
    message = usage_error(["--sizes", sizes], capsys)
    assert message.startswith("python -m prelu_tutorial.benchmark: error: argument --sizes: ")
    assert named in message


def test_cli_refuses_an_empty_size_list(nothing_runs, capsys):
    assert "--sizes needs at least one" in usage_error(["--sizes", ","], capsys)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--candidates", "relu"], "argument --candidates: nothing to measure"),
        (
            ["--candidates", "copy", "--directions", "forward+backward"],
            "argument --candidates: nothing to measure",
        ),
        (["--candidates", "custom_op", "--modes", "xla"], "argument --candidates: nothing to"),
        (["--candidates", ","], "--candidates needs at least one"),
        (["--model", "--candidates", "relu"], "argument --candidates: nothing to measure"),
        (["--model", "--parts", ","], "--parts needs at least one"),
    ],
    ids=["relu-only", "copy-backward", "custom-op-xla", "empty", "model-relu-only", "no-parts"],
)
def test_cli_refuses_a_request_that_leaves_nothing_to_measure(argv, named, nothing_runs, capsys):
    assert named in usage_error(argv, capsys)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--device", "tpu"], "argument --device: device must be one of ['cpu', 'gpu'], got 'tpu'"),
        (["--dtype", "int8"], "argument --dtype: dtype must be one of"),
        (["--candidates", "relu,gelu"], "argument --candidates: candidates must be among"),
        (["--modes", "graph"], "argument --modes: modes must be among"),
        (["--directions", "backward"], "argument --directions: directions must be among"),
        (["--repeats", "0"], "argument --repeats: repeats must be an integer >= 1, got 0"),
        (["--warmup", "-1"], "argument --warmup: warmup must be an integer >= 0, got -1"),
        (["--model", "--candidates", "pt.PReLU[gelu]"], "argument --candidates: candidates must"),
        (["--model", "--parts", "fit,serve"], "argument --parts: parts must be among"),
        (["--model", "--rounds", "0"], "argument --rounds: rounds must be an integer >= 1"),
        (["--model", "--loop-rounds", "0"], "argument --loop-rounds: loop_rounds must be"),
        (["--variable-shapes", "--repeats", "0"], "argument --repeats: repeats must be"),
    ],
)
def test_cli_refuses_a_bad_value_naming_it(argv, named, nothing_runs, capsys):
    assert named in usage_error(argv, capsys)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--model", "--sizes", "small"], "--model does not take --sizes"),
        (["--model", "--csv", "out.csv"], "--model does not take --csv"),
        (["--variable-shapes", "--json", "out.json"], "--variable-shapes does not take --json"),
        (["--parts", "fit"], "--parts needs --model"),
        (["--model", "--variable-shapes"], "not allowed with"),
    ],
)
def test_cli_refuses_a_flag_the_chosen_run_does_not_take(argv, named, nothing_runs, capsys):
    assert named in usage_error(argv, capsys)


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="a GPU is present")
def test_cli_asking_for_a_gpu_without_one_says_there_is_none(nothing_runs, capsys):
    message = usage_error(["--device", "gpu", "--quick"], capsys)
    assert "argument --device: " in message and "asked for GPU:0" in message


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--json", "{missing}/out.json"], "does not exist"),
        (["--csv", "{folder}"], "needs a file name"),
        (["--plot", "{folder}/chart.xyz"], "cannot write '.xyz'"),
        (["--json", "{folder}/a", "--csv", "{folder}/a"], "different files"),
        (["--model", "--json", "{missing}/out.json"], "does not exist"),
    ],
    ids=["missing-folder", "folder", "extension", "same-file", "model-missing-folder"],
)
def test_cli_refuses_an_output_it_cannot_write(argv, named, tmp_path, nothing_runs, capsys):
    argv = [arg.format(folder=tmp_path, missing=tmp_path / "missing") for arg in argv]
    assert named in usage_error(argv, capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_cli_refuses_an_unwritable_output(tmp_path, nothing_runs, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        message = usage_error(["--json", str(locked / "out.json")], capsys)
    finally:
        locked.chmod(0o700)
    assert "cannot be written" in message


def test_cli_writes_every_output_it_can_when_one_fails(tmp_path, monkeypatch, capsys):
    measurement = benchmark.Measurement(
        "relu", "eager", "forward", (2, 3), "float32", "CPU:0", 1, 1, 2
    )
    monkeypatch.setattr(op_level, "measure", lambda request, progress: [measurement])

    def broken_json(measurements, path):
        raise OSError("disk full")

    monkeypatch.setattr(report, "write_json", broken_json)
    paths = {kind: tmp_path / f"out.{kind}" for kind in ("json", "csv", "png")}
    status = cli.main(
        ["--json", str(paths["json"]), "--csv", str(paths["csv"]), "--plot", str(paths["png"])]
    )
    assert status == 1
    assert "disk full" in capsys.readouterr().err
    assert paths["csv"].read_text().count("\n") == 2
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_importing_the_package_does_not_import_the_benchmark():
    code = "import sys, prelu_tutorial; print('prelu_tutorial.benchmark' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "False", run.stderr[-2000:]


# The eager loop over many batch sizes ------------------------------------------------------


def test_variable_shapes_times_both_candidates_on_sizes_prelu_has_not_compiled():
    result = benchmark.variable_shapes(batch_sizes=3, feature_shape=(2, 3), repeats=2)
    assert len(result.prelu_seconds) == len(result.where_seconds) == len(result.ratios) == 2
    assert all(seconds > 0 for seconds in result.prelu_seconds + result.where_seconds)
    assert result.ratios[0] == pytest.approx(result.prelu_seconds[0] / result.where_seconds[0])
    assert "3 distinct batch sizes of [N, 2x3]" in benchmark.format_variable_shapes(result)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"batch_sizes": 0}, ValueError),
        ({"repeats": True}, TypeError),
        ({"feature_shape": (0,)}, ValueError),
    ],
)
def test_variable_shapes_rejects_bad_counts(kwargs, error):
    with pytest.raises(error):
        benchmark.variable_shapes(**kwargs)

"""prelu_tutorial.benchmark --model: the user-level benchmark, its plan, result and tables."""

import json
import math

import keras
import pytest
import tensorflow as tf

from prelu_tutorial import kernel_choice, layers
from prelu_tutorial.benchmark import cli, report, timing, user_level

SMOKE_CANDIDATES = ("relu", "pt.PReLU[xla]")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One `--model` run with one round of each part, two candidates, writing JSON."""
    path = tmp_path_factory.mktemp("model") / "model.json"
    argv = ["--model", "--rounds", "1", "--loop-rounds", "1", "--no-progress"]
    argv += ["--candidates", ",".join(SMOKE_CANDIDATES), "--json", str(path)]
    status = cli.main(argv)
    return status, json.loads(path.read_text())


def test_model_smoke_run_exits_zero_with_a_figure_per_candidate_and_part(smoke):
    status, document = smoke
    assert status == 0
    found = {(f["candidate"], f["part"]) for f in document["figures"]}
    assert found == {(c, p) for c in SMOKE_CANDIDATES for p in user_level.PARTS}
    assert all(f["seconds"]["minimum"] > 0 for f in document["figures"])


def test_model_json_gives_each_ratio_as_the_statistic_over_relus(smoke):
    _, document = smoke
    figures = {(f["candidate"], f["part"]): f for f in document["figures"]}
    for part in user_level.PARTS:
        relu, prelu = figures["relu", part]["seconds"], figures["pt.PReLU[xla]", part]
        assert prelu["median_ratio"] == pytest.approx(prelu["seconds"]["median"] / relu["median"])
        assert prelu["min_ratio"] == pytest.approx(prelu["seconds"]["minimum"] / relu["minimum"])
        assert isinstance(prelu["bimodal"], bool)


def test_model_json_records_the_default_implementation_the_device_and_the_load(smoke):
    _, document = smoke
    assert document["default_implementation"] == user_level.default_implementation()
    assert document["device"] == ("GPU:0" if tf.config.list_logical_devices("GPU") else "CPU:0")
    assert math.isfinite(document["load_average"])


def test_small_cnn_is_three_convolutions_each_with_the_activation_and_a_dense_layer():
    model = user_level.small_cnn("keras.layers.PReLU", user_level.IMAGE_SHAPE)
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Conv2D", "PReLU"] * 3 + ["GlobalAveragePooling2D", "Dense"]
    assert model.output_shape == (None, 10)


def test_candidates_read_the_implementations_when_called(monkeypatch):
    monkeypatch.setattr(layers, "IMPLEMENTATIONS", (*layers.IMPLEMENTATIONS, "fused"))
    assert user_level.candidate_names()[-1] == "pt.PReLU[fused]"


def test_auto_gets_no_row_and_the_default_marks_the_kernels_it_runs():
    names = user_level.candidate_names()
    assert "pt.PReLU[auto]" not in names and "pt.PReLU" not in names
    assert f"pt.PReLU[{user_level.default_implementation()}]" in names


def test_the_default_is_the_cpp_op_on_a_cpu_and_xla_where_the_op_does_not_build(monkeypatch):
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a GPU is visible: auto runs xla everywhere")
    assert user_level.default_implementation() == "custom_op"
    monkeypatch.setattr(kernel_choice, "custom_op_ready", lambda: False)
    assert user_level.default_implementation() == "xla"


def test_each_loop_round_trains_on_sizes_no_other_round_used():
    rounds = [set(user_level._loop_sizes(r, 3)) for r in range(3)]
    assert all(len(sizes) == user_level.LOOP_SIZES for sizes in rounds)
    assert len(set.union(*rounds)) == 3 * user_level.LOOP_SIZES


def test_plan_model_puts_relu_first_and_reads_short_part_names():
    plan = user_level.plan_model(["pt.PReLU[xla]", "relu"], parts=["loop", "fit"])
    assert plan.candidates == ("relu", "pt.PReLU[xla]")
    assert plan.parts == ("fit step", "variable-size loop")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"candidates": ["relu"]}, ValueError),
        ({"candidates": []}, ValueError),
        ({"parts": []}, ValueError),
        ({"rounds": True}, TypeError),
        ({"loop_rounds": 0}, ValueError),
    ],
)
def test_plan_model_refuses_an_empty_or_bad_request(kwargs, error):
    with pytest.raises(error):
        user_level.plan_model(**kwargs)


def test_plan_model_reads_pt_prelu_as_the_default_implementation():
    plan = user_level.plan_model(["pt.PReLU"])
    assert plan.candidates == ("relu", f"pt.PReLU[{user_level.default_implementation()}]")


def test_a_candidate_that_cannot_build_is_skipped_with_its_reason(monkeypatch):
    reasons = {"pt.PReLU[custom_op]": "CompilerNotFoundError: no compiler"}
    prepare = user_level._prepare
    monkeypatch.setattr(
        user_level, "_prepare", lambda name, x, y: reasons.get(name) or prepare(name, x, y)
    )
    plan = user_level.plan_model(["relu", "pt.PReLU[custom_op]"], parts=["eager"], rounds=1)
    result = user_level.measure_model(plan)
    assert result.skipped == reasons
    assert [f.candidate for f in result.figures] == ["relu"]
    assert "skipped pt.PReLU[custom_op]: CompilerNotFoundError" in report.format_model(result)


# The rows and the table the book shows, from a result built by hand -------------------------


def figure(candidate, part, samples, relu):
    seconds = timing.summarize(samples)
    return user_level.ModelFigure(
        candidate,
        part,
        seconds,
        min_ratio=seconds.minimum / relu.minimum,
        median_ratio=seconds.median / relu.median,
        q1_ratio=seconds.q1 / relu.median,
        q3_ratio=seconds.q3 / relu.median,
    )


@pytest.fixture
def by_hand():
    relu = timing.summarize([0.1, 0.1, 0.1, 0.1])
    figures = [figure("relu", "fit step", [0.1] * 4, relu)]
    figures.append(figure("pt.PReLU[xla]", "fit step", [0.11, 0.11, 0.2, 0.2], relu))
    figures.append(figure("keras.layers.PReLU", "fit step", [0.12, 0.13, 0.14, 0.15], relu))
    return user_level.ModelBenchmark(tuple(figures), default_implementation="xla")


def test_comparison_rows_give_each_prelus_ratio_to_relu(by_hand):
    rows = report.comparison_rows(by_hand)
    assert [row["activation"] for row in rows] == ["pt.PReLU[xla]", "keras.layers.PReLU"]
    assert [row["default"] for row in rows] == [True, False]
    # Medians: (0.11 + 0.2) / 2 and (0.13 + 0.14) / 2 over ReLU's 0.1.
    assert [row["fit step"] for row in rows] == pytest.approx([1.55, 1.35])
    assert [row["fit step"] for row in report.comparison_rows(by_hand, "min")] == pytest.approx(
        [1.1, 1.2]
    )


def test_comparison_table_marks_the_default_and_bimodal_timings(by_hand):
    text = repr(report.comparison_table(by_hand)).splitlines()
    (default,) = [line for line in text if line.startswith("pt.PReLU[xla] (default)")]
    assert "bimodal" in default
    (keras_row,) = [line for line in text if line.startswith("keras.layers.PReLU")]
    assert "1.35x" in keras_row and "bimodal" not in keras_row
    (relu,) = [line for line in text if line.startswith("relu")]
    assert "100.0 ms" in relu


def test_comparison_rows_refuse_an_unknown_statistic(by_hand):
    with pytest.raises(ValueError, match="statistic"):
        report.comparison_rows(by_hand, "mean")


def test_figure_looks_up_one_candidate_and_part(by_hand):
    assert by_hand.figure("keras.layers.PReLU", "fit step").median_ratio == pytest.approx(1.35)
    with pytest.raises(KeyError):
        by_hand.figure("keras.layers.PReLU", "eager inference")


def test_the_models_activation_layers_are_what_the_names_say():
    assert isinstance(user_level._activation("relu"), keras.layers.ReLU)
    assert user_level._activation("keras.layers.PReLU").shared_axes == [1, 2]
    assert user_level._activation("pt.PReLU[custom_op]").implementation == "custom_op"

"""Showing results: op-level measurements as a text table, JSON, CSV and a bar chart;
the user-level model benchmark as rows, a :func:`prelu_tutorial.tables.table`, text and JSON."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from matplotlib.container import ErrorbarContainer
from matplotlib.ticker import FuncFormatter

from prelu_tutorial import tables
from prelu_tutorial.benchmark.op_level import Measurement
from prelu_tutorial.benchmark.user_level import (
    BATCH,
    INFERENCE_BATCH,
    LOOP_BATCH,
    PARTS,
    ModelBenchmark,
    ModelFigure,
)

__all__ = [
    "comparison_rows",
    "comparison_table",
    "format_model",
    "format_table",
    "plot",
    "write_csv",
    "write_json",
    "write_model_json",
]

_RATIO_TICKS = (0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 50)


def format_table(measurements: Sequence[Measurement]) -> str:
    """A plain-text table: one block per size and direction, one row per candidate.

    Each mode's column reads ``median-ms  q1-q3  ratio-to-relu  GB/s``: the
    median time, the inter-quartile range of the rounds (both in
    milliseconds), the median's ratio to ReLU's and the bandwidth. A ``*``
    after the ratio marks bimodal timings (:func:`.timing.modes`).

    Args:
        measurements: As returned by :func:`.op_level.run`.

    Returns:
        The table, lines joined by newlines.
    """
    lines = []
    blocks = dict.fromkeys((m.shape, m.dtype, m.device, m.direction) for m in measurements)
    for shape, dtype, device, direction in blocks:
        block = [
            m
            for m in measurements
            if (m.shape, m.dtype, m.device, m.direction) == (shape, dtype, device, direction)
        ]
        modes = list(dict.fromkeys(m.mode for m in block))
        size = "x".join(map(str, shape))
        lines.append(f"{direction}, {dtype}[{size}] on {device}  (median ms, IQR ms, x relu, GB/s)")
        lines.append(f"{'candidate':<20}" + "".join(f"{mode:>42}" for mode in modes))
        for candidate in dict.fromkeys(m.candidate for m in block):
            cells = []
            for mode in modes:
                found = [m for m in block if (m.candidate, m.mode) == (candidate, mode)]
                if found:
                    m = found[0]
                    cells.append(
                        f"{m.median_ms:9.3f} {m.q1_ms:8.3f}-{m.q3_ms:<8.3f}"
                        f"{m.ratio_to_relu:6.2f}x{'*' if m.bimodal else ' '}{m.gb_per_s:6.1f}"
                    )
                else:
                    cells.append(" " * 42)
            lines.append(f"{candidate:<20}" + "".join(cells))
        if any(m.bimodal for m in block):
            lines.append("* bimodal: the rounds fall into two groups; the median may sit in either")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_json(measurements: Sequence[Measurement], path: str) -> None:
    """Writes the measurements as ``{"tensorflow": version, "measurements": [...]}``.

    Args:
        measurements: As returned by :func:`.op_level.run`.
        path: File to write.
    """
    rows = [asdict(m) | {"shape": list(m.shape)} for m in measurements]
    with open(path, "w", encoding="utf-8") as file:
        json.dump({"tensorflow": tf.__version__, "measurements": rows}, file, indent=1)


def write_csv(measurements: Sequence[Measurement], path: str) -> None:
    """Writes one CSV row per measurement, with a header; shapes as ``64x56x56x64``.

    Args:
        measurements: As returned by :func:`.op_level.run`.
        path: File to write.
    """
    fields = list(Measurement.__dataclass_fields__)
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        for m in measurements:
            writer.writerow(asdict(m) | {"shape": "x".join(map(str, m.shape))})


def plot(measurements: Sequence[Measurement], shape: Sequence[int] | None = None):
    """Bar chart of each candidate's time relative to ``tf.nn.relu``, per mode.

    One panel per direction; a dashed line marks ReLU (1.0, the floor). The y
    axis is logarithmic, so 2x slower and 2x faster look alike. Each bar is a
    median and its whisker the inter-quartile range of the rounds (``q1_ms``
    to ``q3_ms`` over ReLU's median), so a reader sees which differences are
    larger than the noise. The legend sits below the panels, outside every
    axes, so that it never covers a bar, and names every colour drawn.

    Args:
        measurements: As returned by :func:`.op_level.run`.
        shape: Which size to draw; defaults to the largest measured.

    Returns:
        The ``matplotlib.figure.Figure``.

    Raises:
        ValueError: If there is no measurement of that size.
    """
    if shape is None and measurements:
        shape = max((m.shape for m in measurements), key=math.prod)
    chosen = [m for m in measurements if shape is not None and m.shape == tuple(shape)]
    if not chosen:
        raise ValueError(f"plot: no measurement of shape {shape}.")
    directions = list(dict.fromkeys(m.direction for m in chosen))
    modes = list(dict.fromkeys(m.mode for m in chosen))
    figure, axes = plt.subplots(
        1,
        len(directions),
        figsize=(6 * len(directions), 4.4),
        squeeze=False,
        layout="constrained",
    )
    width = 0.8 / len(modes)
    for axis, direction in zip(axes[0], directions, strict=True):
        names = list(dict.fromkeys(m.candidate for m in chosen if m.direction == direction))
        for index, mode in enumerate(modes):
            found = {m.candidate: m for m in chosen if (m.direction, m.mode) == (direction, mode)}
            medians = np.array([found[n].ratio_to_relu if n in found else np.nan for n in names])
            low, high = np.array([_quartile_ratios(found.get(name)) for name in names]).T
            positions = [k + (index - (len(modes) - 1) / 2) * width for k in range(len(names))]
            axis.bar(
                positions,
                medians,
                width,
                # Clipped at 0: rescaling can leave a quartile a rounding error past the median.
                yerr=np.clip([medians - low, high - medians], 0, None),
                error_kw={"elinewidth": 1, "capsize": 2},
                color=f"C{index}",
                label=mode,
            )
        axis.axhline(1.0, color="black", linestyle="--", linewidth=1, label="tf.nn.relu (floor)")
        axis.set_yscale("log")
        drawn = [
            value
            for m in chosen
            if m.direction == direction
            for value in (m.ratio_to_relu, *_quartile_ratios(m))
            if math.isfinite(value)
        ]
        axis.minorticks_off()
        axis.set_yticks([t for t in _RATIO_TICKS if min(drawn) / 1.2 <= t <= max(drawn) * 1.2])
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
        axis.set_xticks(range(len(names)), names, rotation=35, ha="right")
        axis.set_ylabel("time / tf.nn.relu time")
        axis.set_title(direction)
    handles, labels = axes[0][0].get_legend_handles_labels()
    # A bar's error bars, which the legend draws as one whisker.
    whisker = next(c for c in axes[0][0].containers if isinstance(c, ErrorbarContainer))
    figure.legend(
        [*handles, whisker],
        [*labels, "IQR of the rounds"],
        loc="outside lower center",
        ncol=len(handles) + 1,
        fontsize="small",
    )
    first = chosen[0]
    size = "x".join(map(str, first.shape))
    figure.suptitle(f"PReLU vs ReLU, {first.dtype}[{size}] on {first.device} (median, IQR)")
    return figure


def _quartile_ratios(measurement: Measurement | None) -> tuple[float, float]:
    """The first and third quartile of a measurement's rounds over ReLU's median.

    ``ratio_to_relu`` is the median over ReLU's median, so scaling it by
    ``q / median`` puts a quartile on the same axis; ``nan`` where there is
    no measurement or it holds no quartiles.
    """
    if measurement is None:
        return math.nan, math.nan
    scale = measurement.ratio_to_relu / measurement.median_ms
    return measurement.q1_ms * scale, measurement.q3_ms * scale


def comparison_rows(result: ModelBenchmark, statistic: str = "median") -> list[dict[str, object]]:
    """One row per candidate but ReLU: each part's ratio to ReLU, for a "which PReLU" table.

    Args:
        result: As returned by :func:`.user_level.run_model`.
        statistic: ``"median"`` or ``"min"``: which ratio each cell holds.

    Returns:
        Dicts with the keys ``"activation"``, ``"default"`` (whether it is
        what ``pt.PReLU()`` runs) and each measured part, whose values are
        floats (``nan`` where a part was not measured).

    Raises:
        ValueError: If ``statistic`` is neither.
    """
    if statistic not in ("median", "min"):
        raise ValueError(f"statistic must be 'median' or 'min', got {statistic!r}.")
    parts = [part for part in PARTS if any(f.part == part for f in result.figures)]
    names = [name for name in dict.fromkeys(f.candidate for f in result.figures) if name != "relu"]
    rows = []
    for name in names:
        row: dict[str, object] = {"activation": name, "default": _is_default(name, result)}
        for part in parts:
            found = [f for f in result.figures if (f.candidate, f.part) == (name, part)]
            row[part] = getattr(found[0], f"{statistic}_ratio") if found else math.nan
        rows.append(row)
    return rows


def _is_default(name: str, result: ModelBenchmark) -> bool:
    """Whether the candidate is what ``pt.PReLU()`` runs."""
    return name == f"pt.PReLU[{result.default_implementation}]"


def _cell(figure: ModelFigure) -> str:
    mark = ", bimodal" if figure.bimodal else ""
    return (
        f"{figure.median_ratio:.2f}x (min {figure.min_ratio:.2f}, "
        f"IQR {figure.q1_ratio:.2f}-{figure.q3_ratio:.2f}{mark})"
    )


def comparison_table(result: ModelBenchmark) -> tables.Table:
    """The result as a :func:`prelu_tutorial.tables.table`: one row per activation, one
    column per part, each cell ``median x ReLU (min, IQR[, bimodal])``; ReLU's row
    gives its own times.

    Args:
        result: As returned by :func:`.user_level.run_model`.

    Returns:
        The table.
    """
    parts = [part for part in PARTS if any(f.part == part for f in result.figures)]
    rows = []
    for name in dict.fromkeys(f.candidate for f in result.figures):
        row = [f"{name} (default)" if _is_default(name, result) else name]
        for part in parts:
            found = [f for f in result.figures if (f.candidate, f.part) == (name, part)]
            if not found:
                row.append("")
            elif name == "relu":
                mark = " (bimodal)" if found[0].bimodal else ""
                row.append(f"{found[0].seconds.median * 1e3:.1f} ms{mark}")
            else:
                row.append(_cell(found[0]))
        rows.append(row)
    return tables.table(
        rows,
        ["activation", *parts],
        caption="time / ReLU's: median (min, IQR); ReLU in ms (median)",
    )


def format_model(result: ModelBenchmark) -> str:
    """The result as text: the table, memory growth over the loop, skipped candidates.

    Args:
        result: As returned by :func:`.user_level.run_model`.

    Returns:
        The text, ending with a newline.
    """
    lines = [
        f"small CNN, 32x32x3, batch {BATCH} (inference {INFERENCE_BATCH}, loop "
        f"{LOOP_BATCH}) on {result.device}; {result.rounds} rounds, loop "
        f"{result.loop_rounds} rounds; load average {result.load_average:.2f}",
        repr(comparison_table(result)),
    ]
    loop = [f for f in result.figures if f.part == "variable-size loop"]
    if loop:
        growth = ", ".join(f"{f.candidate} {f.memory_growth_mb:+.0f}" for f in loop)
        lines.append(f"resident memory growth over one loop, MB (median): {growth}")
    for name, reason in result.skipped.items():
        lines.append(f"skipped {name}: {reason}")
    return "\n".join(lines) + "\n"


def write_model_json(result: ModelBenchmark, path: str) -> None:
    """Writes the model benchmark as JSON: every field, each figure with ``bimodal`` added.

    Args:
        result: As returned by :func:`.user_level.run_model`.
        path: File to write.
    """
    document = asdict(result)
    for record, figure in zip(document["figures"], result.figures, strict=True):
        record["bimodal"] = figure.bimodal
    with open(path, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=1)

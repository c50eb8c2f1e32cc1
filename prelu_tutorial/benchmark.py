"""Timing PReLU against ``tf.nn.relu``, the floor it should reach.

PReLU reads and writes as many tensors as ReLU, forward and backward, so on a
memory-bound size the best it can do is ReLU's time. This module times every
formulation of :data:`prelu_tutorial.ops.FORMULATIONS`, :func:`prelu_tutorial.prelu`,
``keras.layers.PReLU``, ``tf.nn.relu`` and a plain copy of the input (what
the memory bandwidth allows), and on request the C++ op of
:mod:`prelu_tutorial.custom_op`, in three modes (``eager``, ``function`` =
``tf.function``, ``xla`` = ``tf.function(jit_compile=True)``), for the
forward pass alone and for the forward pass plus both gradients.

Each timing is the median of interleaved repeats taken after warm-up, so a
burst of load from elsewhere touches every candidate alike, with the first and
third quartiles of the repeats beside it (the inter-quartile range, the spread
to read a difference against). Results carry the
ratio to ``tf.nn.relu`` in the same mode, pass and size, and the effective
bandwidth: the bytes the ideal kernel moves (forward: read x, write y;
backward: read x and the upstream gradient, write dx) over the median time.

From a shell::

    python -m prelu_tutorial.benchmark --quick
    python -m prelu_tutorial.benchmark --sizes large --repeats 30 --json out.json --plot out.png
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import keras
import numpy as np
import tensorflow as tf

from prelu_tutorial import devices, ops

__all__ = [
    "CANDIDATES",
    "DEVICES",
    "DTYPES",
    "MODES",
    "OPTIONAL_CANDIDATES",
    "PASSES",
    "QUICK_SIZES",
    "SIZES",
    "Kernel",
    "Measurement",
    "VariableShapeResult",
    "format_table",
    "format_variable_shapes",
    "kernels",
    "main",
    "parse_size",
    "plot",
    "run",
    "variable_shapes",
    "write_csv",
    "write_json",
]

SIZES: dict[str, tuple[int, ...]] = {
    "small": (8, 14, 14, 64),
    "medium": (32, 28, 28, 64),
    "large": (64, 56, 56, 64),
}
"""Named NHWC shapes: 0.4 MB (launch-bound), 6.4 MB and 51 MB (memory-bound) in float32."""

QUICK_SIZES = ("small", "medium")
"""The sizes ``--quick`` measures."""

CANDIDATES = ("copy", "relu", *ops.FORMULATIONS, "pt.prelu", "keras.layers.PReLU")
"""What is timed: a copy, ReLU, each formulation by its short name, and the two PReLUs."""

OPTIONAL_CANDIDATES = ("custom_op",)
"""Timed only when asked for (``--candidates``): ``custom_op`` is the C++ op of
:mod:`prelu_tutorial.custom_op`, which needs a C++ compiler and builds on first
use. XLA cannot compile it, so it has no ``xla`` mode."""

MODES = ("eager", "function", "xla")
PASSES = ("forward", "forward+backward")
DTYPES = ("float16", "bfloat16", "float32", "float64")
DEVICES = ("cpu", "gpu")

_ALPHA = 0.25
_MIN_SAMPLE_SECONDS = 0.002  # calls are repeated within a sample until it lasts this long
_TENSORS_MOVED = {"forward": 2, "forward+backward": 5}
_RATIO_TICKS = (0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 50)


@dataclass(frozen=True)
class Measurement:
    """One timed configuration.

    Attributes:
        candidate: One of :data:`CANDIDATES`.
        mode: One of :data:`MODES`.
        passes: One of :data:`PASSES`.
        shape: The input's shape.
        dtype: The input's dtype name.
        device: Where it ran, e.g. ``"CPU:0"``.
        median_ms: Median time of one call, in milliseconds.
        ratio_to_relu: ``median_ms`` over ReLU's in the same mode, pass and size.
        gb_per_s: Bytes the ideal kernel moves over the median time, in GB/s.
        q1_ms: First quartile of the repeats' times, in milliseconds.
        q3_ms: Third quartile; ``q1_ms`` to ``q3_ms`` is the inter-quartile
            range, where the middle half of the repeats fell.
    """

    candidate: str
    mode: str
    passes: str
    shape: tuple[int, ...]
    dtype: str
    device: str
    median_ms: float
    ratio_to_relu: float
    gb_per_s: float
    q1_ms: float = math.nan
    q3_ms: float = math.nan


def parse_size(size: str | Sequence[int]) -> tuple[int, ...]:
    """Turns a size name (``"large"``), ``"64x56x56x64"`` or a sequence into a shape.

    Args:
        size: A key of :data:`SIZES`, dimensions joined by ``x``, or a
            sequence of positive integers (at least two: batch and channels).

    Returns:
        The shape as a tuple of ints.

    Raises:
        ValueError: If ``size`` is none of these.
    """
    if isinstance(size, str):
        if size in SIZES:
            return SIZES[size]
        parts = size.lower().split("x")
        if not all(part.strip().isdigit() for part in parts):
            raise ValueError(
                f"size must be one of {sorted(SIZES)} or dimensions like '64x56x56x64', "
                f"got {size!r}."
            )
        shape = tuple(int(part) for part in parts)
    else:
        shape = tuple(size)
    if len(shape) < 2 or not all(
        isinstance(dim, (int, np.integer)) and dim > 0 for dim in shape
    ):
        raise ValueError(
            f"size needs at least two positive dimensions (batch and channels), got {size!r}."
        )
    return tuple(int(dim) for dim in shape)


def _check_choices(values: Sequence[str], allowed: Sequence[str], name: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(values))
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise ValueError(f"{name} must be among {list(allowed)}, got {list(values)}.")
    return values


def _forward(candidate: str, shape: tuple[int, ...], dtype: tf.DType, mode: str):
    """The candidate's forward function of ``x`` and the variables it trains."""
    channel_wise = (1,) * (len(shape) - 2) + (shape[-1],)
    if candidate == "copy":
        # XLA has no DeepCopy, but it must copy a parameter it returns.
        if mode == "xla":
            return tf.identity, []
        return (lambda x: tf.raw_ops.DeepCopy(x=x)), []
    if candidate == "relu":
        return tf.nn.relu, []
    if candidate == "keras.layers.PReLU":
        layer = keras.layers.PReLU(
            alpha_initializer=keras.initializers.Constant(_ALPHA),
            shared_axes=list(range(1, len(shape) - 1)),
            dtype=dtype.name,
        )
        layer.build((None, *shape[1:]))
        return layer, [layer.alpha]
    alpha = tf.Variable(tf.fill(channel_wise, tf.constant(_ALPHA, dtype)), name="alpha")
    if candidate == "custom_op":
        from prelu_tutorial import custom_op

        return (lambda x: custom_op.prelu(x, alpha)), [alpha]
    function = ops.prelu if candidate == "pt.prelu" else ops.FORMULATIONS[candidate]
    return (lambda x: function(x, alpha)), [alpha]


def _with_gradients(forward: Callable, variables: list) -> Callable:
    """A training step's share: the output (the next layer needs it) and the gradients."""

    def step(x: tf.Tensor, upstream: tf.Tensor):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = forward(x)
        return y, tape.gradient(y, [x, *variables], output_gradients=upstream)

    return step


def _sample(call: Callable[[], object], number: int) -> float:
    """Seconds per call, over ``number`` calls, waiting for the device."""
    start = time.perf_counter()
    for _ in range(number):
        call()
    tf.test.experimental.sync_devices()
    return (time.perf_counter() - start) / number


def _measure_size(
    shape: tuple[int, ...],
    dtype: tf.DType,
    configs: list[tuple[str, str, str]],
    repeats: int,
    warmup: int,
    progbar: keras.utils.Progbar | None,
) -> dict[tuple[str, str, str], tuple[float, float, float]]:
    """Quartiles (q1, median, q3) of the seconds per call of each (candidate, mode, passes)."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal(shape), dtype)
    upstream = tf.constant(rng.standard_normal(shape), dtype)
    calls = {}
    for candidate, mode, passes in configs:
        forward, variables = _forward(candidate, shape, dtype, mode)
        if passes == "forward":
            function, args = forward, (x,)
        else:
            function, args = _with_gradients(forward, variables), (x, upstream)
        if mode != "eager":
            function = tf.function(function, jit_compile=mode == "xla")
        calls[candidate, mode, passes] = lambda f=function, a=args: f(*a)
    numbers = {}
    for key, call in calls.items():
        for _ in range(warmup):
            call()
        numbers[key] = max(1, min(1000, math.ceil(_MIN_SAMPLE_SECONDS / _sample(call, 1))))
        if progbar is not None:
            progbar.add(1)
    samples = {key: [] for key in calls}
    for repeat in range(repeats):
        order = list(calls)
        np.random.default_rng(repeat).shuffle(order)
        for key in order:
            samples[key].append(_sample(calls[key], numbers[key]))
            if progbar is not None:
                progbar.add(1)
    return {
        key: tuple(float(q) for q in np.percentile(times, [25, 50, 75]))
        for key, times in samples.items()
    }


def run(
    sizes: Sequence[str | Sequence[int]] = tuple(SIZES),
    dtype: str = "float32",
    device: str = "cpu",
    candidates: Sequence[str] = CANDIDATES,
    modes: Sequence[str] = MODES,
    passes: Sequence[str] = PASSES,
    repeats: int = 10,
    warmup: int = 2,
    progress: bool = True,
) -> list[Measurement]:
    """Times the candidates and returns one :class:`Measurement` per configuration.

    ``tf.nn.relu`` is always timed (the ratios need it). The copy is timed
    for the forward pass only: it has no gradient. ``custom_op`` is not
    timed in the ``xla`` mode: XLA cannot compile it.

    Args:
        sizes: Names from :data:`SIZES`, ``"NxHxWxC"`` strings or shapes.
        dtype: One of :data:`DTYPES`.
        device: ``"cpu"`` or ``"gpu"`` (the first of its kind).
        candidates: A subset of :data:`CANDIDATES` and :data:`OPTIONAL_CANDIDATES`.
        modes: A subset of :data:`MODES`.
        passes: A subset of :data:`PASSES`.
        repeats: Interleaved samples per configuration; the median and the
            quartiles are kept.
        warmup: Untimed calls per configuration first (tracing, compiling).
        progress: Show a ``keras.utils.Progbar`` on stdout.

    Returns:
        Measurements in the order size, passes, candidate, mode.

    Raises:
        ValueError: For an unknown size, dtype, device, candidate, mode or
            pass, a non-positive ``repeats``, a negative ``warmup``, or
            ``device="gpu"`` when TensorFlow sees no GPU.
    """
    # Each configuration once, however often an argument names it.
    shapes = list(dict.fromkeys(parse_size(size) for size in sizes))
    if not shapes:
        raise ValueError("sizes must name at least one size.")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}.")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}.")
    candidates = _check_choices(candidates, CANDIDATES + OPTIONAL_CANDIDATES, "candidates")
    modes = _check_choices(modes, MODES, "modes")
    passes = _check_choices(passes, PASSES, "passes")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}.")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}.")
    device_name = devices.pick_device(device)
    candidates = ("relu", *[candidate for candidate in candidates if candidate != "relu"])
    configs = [
        (candidate, mode, pass_)
        for pass_ in passes
        for candidate in candidates
        for mode in modes
        if not (candidate == "copy" and pass_ != "forward")
        and not (candidate == "custom_op" and mode == "xla")
    ]
    tf_dtype = tf.as_dtype(dtype)
    progbar = None
    if progress:
        samples = len(shapes) * len(configs) * (repeats + 1)
        progbar = keras.utils.Progbar(samples, unit_name="sample")
    measurements = []
    # Each configuration is its own tf.function, traced once by design; TensorFlow's
    # warning about frequent retracing would only be noise here.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        with tf.device(device_name):
            quartiles_by_shape = [
                _measure_size(shape, tf_dtype, configs, repeats, warmup, progbar)
                for shape in shapes
            ]
    finally:
        logger.setLevel(level)
    for shape, quartiles in zip(shapes, quartiles_by_shape, strict=True):
        tensor_bytes = math.prod(shape) * tf_dtype.size
        for candidate, mode, pass_ in configs:
            first, seconds, third = quartiles[candidate, mode, pass_]
            measurements.append(
                Measurement(
                    candidate=candidate,
                    mode=mode,
                    passes=pass_,
                    shape=shape,
                    dtype=dtype,
                    device=device_name.lstrip("/"),
                    median_ms=seconds * 1e3,
                    ratio_to_relu=seconds / quartiles["relu", mode, pass_][1],
                    gb_per_s=_TENSORS_MOVED[pass_] * tensor_bytes / seconds / 1e9,
                    q1_ms=first * 1e3,
                    q3_ms=third * 1e3,
                )
            )
    return measurements


def format_table(measurements: Sequence[Measurement]) -> str:
    """A plain-text table: one block per size and pass, one row per candidate.

    Each mode's column reads ``median-ms  q1-q3  ratio-to-relu  GB/s``: the
    median time, the inter-quartile range of the repeats (both in
    milliseconds), the median's ratio to ReLU's and the bandwidth.

    Args:
        measurements: As returned by :func:`run`.

    Returns:
        The table, lines joined by newlines.
    """
    lines = []
    blocks = dict.fromkeys((m.shape, m.dtype, m.device, m.passes) for m in measurements)
    for shape, dtype, device, passes in blocks:
        block = [
            m
            for m in measurements
            if (m.shape, m.dtype, m.device, m.passes) == (shape, dtype, device, passes)
        ]
        modes = list(dict.fromkeys(m.mode for m in block))
        size = "x".join(map(str, shape))
        lines.append(f"{passes}, {dtype}[{size}] on {device}  (median ms, IQR ms, x relu, GB/s)")
        lines.append(f"{'candidate':<20}" + "".join(f"{mode:>42}" for mode in modes))
        for candidate in dict.fromkeys(m.candidate for m in block):
            cells = []
            for mode in modes:
                found = [m for m in block if (m.candidate, m.mode) == (candidate, mode)]
                if found:
                    m = found[0]
                    cells.append(
                        f"{m.median_ms:9.3f} {m.q1_ms:8.3f}-{m.q3_ms:<8.3f}"
                        f"{m.ratio_to_relu:6.2f}x {m.gb_per_s:6.1f}"
                    )
                else:
                    cells.append(" " * 42)
            lines.append(f"{candidate:<20}" + "".join(cells))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_json(measurements: Sequence[Measurement], path: str) -> None:
    """Writes the measurements as ``{"tensorflow": version, "measurements": [...]}``.

    Args:
        measurements: As returned by :func:`run`.
        path: File to write.
    """
    rows = [asdict(m) | {"shape": list(m.shape)} for m in measurements]
    with open(path, "w", encoding="utf-8") as file:
        json.dump({"tensorflow": tf.__version__, "measurements": rows}, file, indent=1)


def write_csv(measurements: Sequence[Measurement], path: str) -> None:
    """Writes one CSV row per measurement, with a header; shapes as ``64x56x56x64``.

    Args:
        measurements: As returned by :func:`run`.
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

    One panel per pass; a dashed line marks ReLU (1.0, the floor). The y
    axis is logarithmic, so 2x slower and 2x faster look alike.

    Args:
        measurements: As returned by :func:`run`.
        shape: Which size to draw; defaults to the largest measured.

    Returns:
        The ``matplotlib.figure.Figure``.

    Raises:
        ValueError: If there is no measurement of that size.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    if shape is None and measurements:
        shape = max((m.shape for m in measurements), key=math.prod)
    chosen = [m for m in measurements if shape is not None and m.shape == tuple(shape)]
    if not chosen:
        raise ValueError(f"plot: no measurement of shape {shape}.")
    passes = list(dict.fromkeys(m.passes for m in chosen))
    modes = list(dict.fromkeys(m.mode for m in chosen))
    figure, axes = plt.subplots(1, len(passes), figsize=(6 * len(passes), 4), squeeze=False)
    width = 0.8 / len(modes)
    for axis, pass_ in zip(axes[0], passes, strict=True):
        names = list(dict.fromkeys(m.candidate for m in chosen if m.passes == pass_))
        for index, mode in enumerate(modes):
            ratios = {
                m.candidate: m.ratio_to_relu for m in chosen if (m.passes, m.mode) == (pass_, mode)
            }
            positions = [k + (index - (len(modes) - 1) / 2) * width for k in range(len(names))]
            axis.bar(positions, [ratios.get(name, np.nan) for name in names], width, label=mode)
        axis.axhline(1.0, color="black", linestyle="--", linewidth=1, label="tf.nn.relu (floor)")
        axis.set_yscale("log")
        ratios = [m.ratio_to_relu for m in chosen if m.passes == pass_]
        axis.minorticks_off()
        axis.set_yticks([t for t in _RATIO_TICKS if min(ratios) / 1.2 <= t <= max(ratios) * 1.2])
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
        axis.set_xticks(range(len(names)), names, rotation=35, ha="right")
        axis.set_ylabel("time / tf.nn.relu time")
        axis.set_title(pass_)
        axis.legend(fontsize="small")
    first = chosen[0]
    size = "x".join(map(str, first.shape))
    figure.suptitle(f"PReLU vs ReLU, {first.dtype}[{size}] on {first.device} (median)")
    figure.tight_layout()
    return figure


@dataclass(frozen=True)
class Kernel:
    """One kernel that touches full-size tensors.

    Attributes:
        name: The TensorFlow op type (``"Relu"``), or for XLA the fusion's
            name (``"multiply_select_fusion"``) or the instruction
            (``"reduce-window"``, ...).
        passes: How many full-size tensors it reads or writes: each is one
            pass over memory.
    """

    name: str
    passes: int


# Ops that move no data: they rename, reshape or stand for a value.
_FREE_OPS = {
    "Placeholder",
    "Const",
    "Identity",
    "IdentityN",
    "NoOp",
    "ReadVariableOp",
    "StopGradient",
    "Reshape",
    "Shape",
}
_FREE_HLO = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast"}
_HLO_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%(\S+) = (.+?) ([a-z][a-z0-9-]*)\((.*)$")


def kernels(function: Callable, *args: tf.Tensor, jit_compile: bool = False) -> list[Kernel]:
    """The kernels one call of ``function(*args)`` runs on tensors of ``args[0]``'s shape.

    Without XLA these are the ops of the traced ``tf.function`` graph (a call
    to another ``tf.function`` is one op); with ``jit_compile=True`` they are
    the instructions of XLA's optimized HLO, where a fusion is one kernel.
    Kernels that touch only smaller tensors (alpha, its gradient) and ops
    that move no data (reshapes, identities) are left out.

    Args:
        function: Called with ``*args``.
        *args: Tensors; the first one's shape is the full size.
        jit_compile: Compile with XLA and list its kernels.

    Returns:
        The kernels in execution order (XLA: the order of the HLO text).
    """
    full = tf.TensorShape(args[0].shape)
    found = []
    if not jit_compile:
        graph = tf.function(function).get_concrete_function(*args).graph
        for op in graph.get_operations():
            if op.type in _FREE_OPS:
                continue
            passes = sum(tensor.shape == full for tensor in (*op.inputs, *op.outputs))
            if passes:
                found.append(Kernel(op.type, passes))
        return found
    hlo = tf.function(function, jit_compile=True).experimental_get_compiler_ir(*args)(
        stage="optimized_hlo"
    )
    dims = "[" + ",".join(str(dim) for dim in full) + "]"
    shapes = {}
    for line in hlo[hlo.index("\nENTRY") :].splitlines()[1:]:
        match = _HLO_INSTRUCTION.match(line)
        if match is None:
            continue
        name, shape, opcode, operands = match.groups()
        shapes[name] = shape
        if opcode in _FREE_HLO:
            continue
        operand_names = re.findall(r"%([\w.\-]+)", operands.split("), ")[0])
        passes = shape.count(dims) + sum(dims in shapes.get(o, "") for o in operand_names)
        if passes:
            # A fusion's name says what it fuses (multiply_select_fusion, ...).
            label = re.sub(r"\.\d+$", "", name) if opcode == "fusion" else opcode
            found.append(Kernel(label, passes))
    return found


@dataclass(frozen=True)
class VariableShapeResult:
    """A loop over many distinct batch sizes: :func:`prelu_tutorial.prelu` against ``prelu_where``.

    Attributes:
        feature_shape: The shape of one sample, e.g. ``(8, 8, 16)``.
        batch_sizes: How many distinct batch sizes one loop visits.
        prelu_seconds: One loop's time with ``pt.prelu``, per repeat.
        where_seconds: The same loop with ``prelu_where``, per repeat.
        ratios: ``prelu_seconds / where_seconds``, per repeat.
        compiled_shapes: Shapes ``pt.prelu`` had compiled after the last loop
            (the compiled kernels that eager calls keep; bounded by policy).
        max_rss_mb: The process' peak resident memory after the loops, in MB.
    """

    feature_shape: tuple[int, ...]
    batch_sizes: int
    prelu_seconds: tuple[float, ...]
    where_seconds: tuple[float, ...]
    ratios: tuple[float, ...]
    compiled_shapes: int
    max_rss_mb: float


def variable_shapes(
    batch_sizes: int = 100,
    feature_shape: Sequence[int] = (8, 8, 16),
    repeats: int = 3,
) -> VariableShapeResult:
    """Times eager training steps over ``batch_sizes`` distinct batch sizes.

    Each step computes the output and both gradients. Every repeat visits
    batch sizes not seen before (so ``pt.prelu`` meets each shape once, the
    case its compile policy guards), and the two candidates alternate within
    a repeat, so load from elsewhere touches both alike.

    Args:
        batch_sizes: Distinct batch sizes per loop (at least 1).
        feature_shape: The shape of one sample; alpha is per channel (last axis).
        repeats: Loops per candidate (at least 1).

    Returns:
        The :class:`VariableShapeResult`.

    Raises:
        ValueError: If a count is not a positive integer or ``feature_shape``
            holds a non-positive size.
    """
    import resource

    for name, value in (("batch_sizes", batch_sizes), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    feature_shape = parse_size((1, *feature_shape))[1:]
    alpha = tf.Variable(tf.fill(feature_shape[-1:], _ALPHA))

    def loop(function: Callable, first_batch: int) -> float:
        start = time.perf_counter()
        for batch in range(first_batch, first_batch + batch_sizes):
            x = tf.fill((batch, *feature_shape), -1.0)
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = function(x, alpha)
            tape.gradient(y, [x, alpha])
        tf.test.experimental.sync_devices()
        return time.perf_counter() - start

    # Warm both up on a size outside the loops: the first call of each op is slow.
    loop(ops.prelu_where, 1)
    loop(ops.prelu, 1)
    prelu_seconds, where_seconds = [], []
    for repeat in range(repeats):
        first = 2 + (repeat + 1) * batch_sizes
        pair = [(ops.prelu, prelu_seconds), (ops.prelu_where, where_seconds)]
        for function, times in pair if repeat % 2 == 0 else reversed(pair):
            times.append(loop(function, first))
    return VariableShapeResult(
        feature_shape=feature_shape,
        batch_sizes=batch_sizes,
        prelu_seconds=tuple(prelu_seconds),
        where_seconds=tuple(where_seconds),
        ratios=tuple(p / w for p, w in zip(prelu_seconds, where_seconds, strict=True)),
        compiled_shapes=len(ops._compiled_shapes),
        max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def format_variable_shapes(result: VariableShapeResult) -> str:
    """Two lines: the ratio's median and range, the times, the compiled count.

    Args:
        result: As returned by :func:`variable_shapes`.

    Returns:
        The text, ending with a newline.
    """
    size = "x".join(map(str, result.feature_shape))
    return (
        f"{result.batch_sizes} distinct batch sizes of [N, {size}], eager, forward+backward: "
        f"pt.prelu / prelu_where = {statistics.median(result.ratios):.2f}x "
        f"(range {min(result.ratios):.2f}-{max(result.ratios):.2f}, "
        f"{len(result.ratios)} repeats)\n"
        f"loop time pt.prelu {statistics.median(result.prelu_seconds):.3f} s, prelu_where "
        f"{statistics.median(result.where_seconds):.3f} s; shapes compiled: "
        f"{result.compiled_shapes}; peak memory {result.max_rss_mb:.0f} MB\n"
    )


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prelu_tutorial.benchmark",
        description="Time every PReLU formulation, pt.prelu and keras.layers.PReLU "
        "against tf.nn.relu (the floor) and a copy (the memory bandwidth).",
    )
    parser.add_argument("--device", default="cpu", type=str.lower, help="cpu (default) or gpu")
    parser.add_argument("--dtype", default="float32", help=f"one of {', '.join(DTYPES)}")
    parser.add_argument(
        "--sizes",
        type=_comma_list,
        help=f"comma-separated names ({', '.join(SIZES)}) or shapes like 64x56x56x64 "
        f"(default: all names; with --quick: {', '.join(QUICK_SIZES)})",
    )
    parser.add_argument(
        "--candidates",
        type=_comma_list,
        default=list(CANDIDATES),
        help="comma-separated subset (default: all but the optional "
        f"{', '.join(OPTIONAL_CANDIDATES)}: the C++ op, built on first use)",
    )
    parser.add_argument("--modes", type=_comma_list, default=list(MODES), help="comma-separated")
    parser.add_argument("--passes", type=_comma_list, default=list(PASSES), help="comma-separated")
    parser.add_argument("--repeats", type=int, help="interleaved samples (default 10; quick: 3)")
    parser.add_argument("--warmup", type=int, help="untimed calls first (default 2; quick: 1)")
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--csv", metavar="PATH", help="also write the results as CSV")
    parser.add_argument("--plot", metavar="PATH", help="also draw the chart to a PNG")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--variable-shapes",
        action="store_true",
        help="instead: time an eager loop over 100 distinct batch sizes, pt.prelu against "
        "prelu_where (repeats default 3)",
    )
    return parser


def _check_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exits with status 2 before anything is measured if an output cannot be written."""
    outputs = [(flag, getattr(args, flag[2:])) for flag in ("--json", "--csv", "--plot")]
    outputs = [(flag, path) for flag, path in outputs if path is not None]
    paths = [os.path.abspath(path) for _, path in outputs]
    if len(set(paths)) < len(paths):
        parser.error("--json, --csv and --plot must name different files.")
    for flag, path in outputs:
        folder = os.path.dirname(os.path.abspath(path))
        if not path or os.path.isdir(path):
            parser.error(f"{flag} needs a file name, got the folder {path!r}.")
        if not os.path.isdir(folder):
            parser.error(f"{flag} {path!r}: the folder {folder!r} does not exist.")
        writable = os.access(path, os.W_OK) if os.path.exists(path) else os.access(folder, os.W_OK)
        if not writable:
            parser.error(f"{flag} {path!r} cannot be written (permission denied).")
    if args.plot is not None:
        from matplotlib.figure import Figure

        supported = Figure().canvas.get_supported_filetypes()
        extension = os.path.splitext(args.plot)[1].lstrip(".").lower()
        if extension and extension not in supported:
            parser.error(
                f"--plot {args.plot!r}: matplotlib cannot write '.{extension}' files; "
                f"use one of {', '.join(sorted(supported))}."
            )


def _write_outputs(measurements: Sequence[Measurement], args: argparse.Namespace) -> bool:
    """Writes every requested file it can; says on stderr which failed. True if all did."""
    writers = [
        (args.json, lambda path: write_json(measurements, path)),
        (args.csv, lambda path: write_csv(measurements, path)),
        (args.plot, lambda path: plot(measurements).savefig(path, dpi=120)),
    ]
    ok = True
    for path, write in writers:
        if path is None:
            continue
        try:
            write(path)
        except (OSError, ValueError) as error:
            print(f"benchmark: could not write {path!r}: {error}", file=sys.stderr)
            ok = False
    return ok


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``python -m prelu_tutorial.benchmark --help``.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Every option and output path is checked before anything is measured.

    Returns:
        The exit status: 0 on success, 1 if an output file could not be
        written (the others are still written, the table still printed). A
        bad option exits with status 2 and a message naming it (argparse's
        convention).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    quick = args.quick
    for flag in ("sizes", "candidates", "modes", "passes"):
        if getattr(args, flag) == []:
            parser.error(f"--{flag} needs at least one comma-separated value, got none.")
    _check_outputs(parser, args)
    if args.variable_shapes:
        try:
            result = variable_shapes(repeats=args.repeats if args.repeats is not None else 3)
        except ValueError as error:
            parser.error(str(error))
        print(format_variable_shapes(result), end="")
        return 0
    try:
        measurements = run(
            sizes=args.sizes or (QUICK_SIZES if quick else tuple(SIZES)),
            dtype=args.dtype,
            device=args.device,
            candidates=args.candidates,
            modes=args.modes,
            passes=args.passes,
            repeats=args.repeats if args.repeats is not None else (3 if quick else 10),
            warmup=args.warmup if args.warmup is not None else (1 if quick else 2),
            progress=not args.no_progress,
        )
    except ValueError as error:
        parser.error(str(error))
    print(format_table(measurements))
    return 0 if _write_outputs(measurements, args) else 1


if __name__ == "__main__":
    sys.exit(main())

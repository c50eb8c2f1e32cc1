"""Timing PReLU on one tensor against ``tf.nn.relu``, the floor it should reach.

PReLU reads and writes as many tensors as ReLU, forward and backward, so on a
memory-bound size the best it can do is ReLU's time. :func:`run` times every
formulation of :data:`prelu_tutorial.ops.FORMULATIONS`, :func:`prelu_tutorial.prelu`,
``keras.layers.PReLU``, ``tf.nn.relu`` and a plain copy of the input (what
the memory bandwidth allows), and on request the C++ op of
:mod:`prelu_tutorial.custom_op`, in three modes (``eager``, ``function`` =
``tf.function``, ``xla`` = ``tf.function(jit_compile=True)``), for the
forward pass alone and for the forward pass plus both gradients (the two
:data:`DIRECTIONS`).

Candidates are sampled in interleaved rounds after warm-up
(:mod:`.timing`); each :class:`Measurement` holds the minimum, the median and
the quartiles of the rounds, the median's ratio to ``tf.nn.relu`` in the same
mode, direction and size, and the effective bandwidth: the bytes the ideal
kernel moves (forward: read x, write y; backward: read x and the upstream
gradient, write dx) over the median time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import prelu_tutorial
from prelu_tutorial import custom_op, devices, ops
from prelu_tutorial._checks import FLOAT_DTYPES, quiet_logger
from prelu_tutorial._number_checks import check_int
from prelu_tutorial.benchmark import timing
from prelu_tutorial.benchmark.request import RequestError, about

__all__ = [
    "CANDIDATES",
    "DEVICES",
    "DIRECTIONS",
    "DTYPES",
    "MAX_RANK",
    "MODES",
    "OPTIONAL_CANDIDATES",
    "QUICK_SIZES",
    "SIZES",
    "Measurement",
    "Plan",
    "measure",
    "parse_size",
    "plan",
    "run",
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
"""Timed only when asked for: ``custom_op`` is the C++ op of
:mod:`prelu_tutorial.custom_op`, which needs a C++ compiler and builds on first
use. XLA cannot compile it, so it has no ``xla`` mode."""

MODES = ("eager", "function", "xla")
DIRECTIONS = ("forward", "forward+backward")
"""What one call computes: the output alone, or the output and both gradients."""
DTYPES = tuple(dtype.name for dtype in FLOAT_DTYPES)
"""The dtypes a size is timed in: every dtype PReLU computes in."""
DEVICES = ("cpu", "gpu")

MAX_RANK = 8
"""The highest rank a size may have: TensorFlow's broadcasting kernels (``SelectV2``,
``Mul``) take at most 8 dimensions."""

_TENSORS_HELD = 8
"""Full-size tensors alive at once at most (x, the upstream gradient, y, dx and an
unfused formulation's intermediates): a size whose tensors exceed the
machine's memory is refused before anything runs."""

_ALPHA = 0.25
_MIN_SAMPLE_SECONDS = 0.002  # calls are repeated within a sample until it lasts this long
_TENSORS_MOVED = {"forward": 2, "forward+backward": 5}


@dataclass(frozen=True)
class Measurement:
    """One timed configuration.

    Attributes:
        candidate: One of :data:`CANDIDATES` or :data:`OPTIONAL_CANDIDATES`.
        mode: One of :data:`MODES`.
        direction: One of :data:`DIRECTIONS`.
        shape: The input's shape.
        dtype: The input's dtype name.
        device: Where it ran, e.g. ``"CPU:0"``.
        median_ms: Median time of one call over the rounds, in milliseconds.
        ratio_to_relu: ``median_ms`` over ReLU's in the same mode, direction and size.
        gb_per_s: Bytes the ideal kernel moves over the median time, in GB/s.
        q1_ms: First quartile of the rounds' times, in milliseconds.
        q3_ms: Third quartile; ``q1_ms`` to ``q3_ms`` is the inter-quartile
            range, where the middle half of the rounds fell.
        min_ms: The fastest round, in milliseconds.
        bimodal: Whether the rounds' times fall into two separate groups
            (:func:`.timing.modes`).
    """

    candidate: str
    mode: str
    direction: str
    shape: tuple[int, ...]
    dtype: str
    device: str
    median_ms: float
    ratio_to_relu: float
    gb_per_s: float
    q1_ms: float = math.nan
    q3_ms: float = math.nan
    min_ms: float = math.nan
    bimodal: bool = False


@dataclass(frozen=True)
class Plan:
    """A checked request: what :func:`measure` will time.

    Attributes:
        shapes: The sizes, each once.
        dtype: The dtype's name.
        device: TensorFlow's device name, e.g. ``"/CPU:0"``.
        configs: ``(candidate, mode, direction)`` triples, ReLU's first.
        repeats: Interleaved rounds.
        warmup: Untimed calls per configuration first.
    """

    shapes: tuple[tuple[int, ...], ...]
    dtype: str
    device: str
    configs: tuple[tuple[str, str, str], ...]
    repeats: int
    warmup: int


def parse_size(size: str | Sequence[int]) -> tuple[int, ...]:
    """Turns a size name (``"large"``), ``"64x56x56x64"`` or a sequence into a shape.

    Args:
        size: A key of :data:`SIZES`, dimensions joined by ``x``, or a
            sequence of positive integers: at least two (batch and channels),
            at most :data:`MAX_RANK`.

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
    message = (
        f"size needs 2 to {MAX_RANK} positive integer dimensions (batch and channels "
        f"first and last), got {size!r}."
    )
    if not 2 <= len(shape) <= MAX_RANK:
        raise ValueError(message)
    try:
        return tuple(check_int(dim, "size", minimum=1) for dim in shape)
    except (TypeError, ValueError):
        raise ValueError(message) from None


def _memory_bytes() -> int:
    """The machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_choices(values: Sequence[str], allowed: Sequence[str], name: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(values))
    unknown = [value for value in values if value not in allowed]
    if unknown or not values:
        raise ValueError(f"{name} must be among {list(allowed)}, got {list(values)}.")
    return values


def plan(
    sizes: Sequence[str | Sequence[int]] = tuple(SIZES),
    dtype: str = "float32",
    device: str = "cpu",
    candidates: Sequence[str] = CANDIDATES,
    modes: Sequence[str] = MODES,
    directions: Sequence[str] = DIRECTIONS,
    repeats: int = 10,
    warmup: int = 2,
) -> Plan:
    """Checks a request and lists its configurations, measuring nothing.

    ``tf.nn.relu`` is always added (the ratios need it). The copy has no
    gradient, so it is timed forward only; XLA cannot compile ``custom_op``,
    so it has no ``xla`` mode.

    Args:
        sizes: Names from :data:`SIZES`, ``"NxHxWxC"`` strings or shapes.
        dtype: One of :data:`DTYPES`.
        device: ``"cpu"`` or ``"gpu"`` (the first of its kind).
        candidates: A subset of :data:`CANDIDATES` and :data:`OPTIONAL_CANDIDATES`.
        modes: A subset of :data:`MODES`.
        directions: A subset of :data:`DIRECTIONS`.
        repeats: Interleaved rounds; at least 1.
        warmup: Untimed calls per configuration first (tracing, compiling).

    Returns:
        The :class:`Plan`.

    Raises:
        RequestError: A ``ValueError`` that names the argument to change
            (:mod:`.request`): for an unknown size, dtype, device, candidate,
            mode or direction; a size whose tensors would not fit in the
            machine's memory; ``repeats`` below 1 or ``warmup`` below 0; a
            request that leaves nothing but ReLU to measure (``candidates``);
            or ``device="gpu"`` when TensorFlow sees no GPU.
        TypeError: If ``repeats`` or ``warmup`` is not an integer.
    """
    with about("dtype"):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}.")
    with about("sizes"):
        # Each configuration once, however often an argument names it.
        shapes = tuple(dict.fromkeys(parse_size(size) for size in sizes))
        if not shapes:
            raise ValueError("sizes must name at least one size.")
        for shape in shapes:
            needed = _TENSORS_HELD * math.prod(shape) * tf.as_dtype(dtype).size
            if needed > _memory_bytes():
                raise ValueError(
                    f"size {'x'.join(map(str, shape))} in {dtype} needs about "
                    f"{needed / 1e9:.3g} GB ({_TENSORS_HELD} tensors of its size), more than "
                    f"this machine's {_memory_bytes() / 1e9:.3g} GB."
                )
    with about("device"):
        if device not in DEVICES:
            raise ValueError(f"device must be one of {list(DEVICES)}, got {device!r}.")
    with about("candidates"):
        candidates = _check_choices(candidates, CANDIDATES + OPTIONAL_CANDIDATES, "candidates")
    with about("modes"):
        modes = _check_choices(modes, MODES, "modes")
    with about("directions"):
        directions = _check_choices(directions, DIRECTIONS, "directions")
    with about("repeats"):
        repeats = check_int(repeats, "repeats", minimum=1)
    with about("warmup"):
        warmup = check_int(warmup, "warmup", minimum=0)
    ordered = ("relu", *[candidate for candidate in candidates if candidate != "relu"])
    configs = tuple(
        (candidate, mode, direction)
        for direction in directions
        for candidate in ordered
        for mode in modes
        if not (candidate == "copy" and direction != "forward")
        and not (candidate == "custom_op" and mode == "xla")
    )
    if all(candidate == "relu" for candidate, _, _ in configs):
        raise RequestError(
            "candidates",
            f"nothing to measure besides relu: candidates {list(candidates)} in modes "
            f"{list(modes)}, directions {list(directions)} (the copy runs forward only; "
            "custom_op has no xla mode).",
        )
    with about("device"):
        device_name = devices.pick_device(device)
    return Plan(shapes, dtype, device_name, configs, repeats, warmup)


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
        # Timed only when asked for: the op needs a C++ compiler and builds on its first call.
        return (lambda x: custom_op.prelu(x, alpha)), [alpha]
    function = prelu_tutorial.prelu if candidate == "pt.prelu" else ops.FORMULATIONS[candidate]
    return (lambda x: function(x, alpha)), [alpha]


def _with_gradients(forward: Callable, variables: list) -> Callable:
    """A training step's share: the output (the next layer needs it) and the gradients."""

    def step(x: tf.Tensor, upstream: tf.Tensor):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = forward(x)
        return y, tape.gradient(y, [x, *variables], output_gradients=upstream)

    return step


def _measure_size(
    shape: tuple[int, ...],
    dtype: tf.DType,
    request: Plan,
    progbar: keras.utils.Progbar | None,
) -> dict[tuple[str, str, str], timing.Summary]:
    """The seconds per call of each (candidate, mode, direction), summarized."""
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal(shape), dtype)
    upstream = tf.constant(rng.standard_normal(shape), dtype)
    calls = {}
    for candidate, mode, direction in request.configs:
        forward, variables = _forward(candidate, shape, dtype, mode)
        if direction == "forward":
            function, args = forward, (x,)
        else:
            function, args = _with_gradients(forward, variables), (x, upstream)
        if mode != "eager":
            function = tf.function(function, jit_compile=mode == "xla")
        calls[candidate, mode, direction] = lambda f=function, a=args: f(*a)
    numbers = {}
    for key, call in calls.items():
        for _ in range(request.warmup):
            call()
        numbers[key] = timing.calls_per_sample(call, _MIN_SAMPLE_SECONDS)
        if progbar is not None:
            progbar.add(1)
    tick = None if progbar is None else (lambda: progbar.add(1))
    samples = timing.interleave(calls, numbers, request.repeats, after_each=tick)
    return {key: timing.summarize(times) for key, times in samples.items()}


def measure(request: Plan, progress: bool = True) -> list[Measurement]:
    """Times a checked request.

    Args:
        request: As returned by :func:`plan`.
        progress: Show a ``keras.utils.Progbar`` on stdout.

    Returns:
        One :class:`Measurement` per size and configuration, in the order
        size, direction, candidate, mode.
    """
    tf_dtype = tf.as_dtype(request.dtype)
    progbar = None
    if progress:
        samples = len(request.shapes) * len(request.configs) * (request.repeats + 1)
        progbar = keras.utils.Progbar(samples, unit_name="sample")
    # Each configuration is its own tf.function, traced once by design; TensorFlow's
    # warning about frequent retracing would only be noise here.
    with quiet_logger(), tf.device(request.device):
        summaries_by_shape = [
            _measure_size(shape, tf_dtype, request, progbar) for shape in request.shapes
        ]
    measurements = []
    for shape, summaries in zip(request.shapes, summaries_by_shape, strict=True):
        tensor_bytes = math.prod(shape) * tf_dtype.size
        for candidate, mode, direction in request.configs:
            summary = summaries[candidate, mode, direction]
            measurements.append(
                Measurement(
                    candidate=candidate,
                    mode=mode,
                    direction=direction,
                    shape=shape,
                    dtype=request.dtype,
                    device=request.device.lstrip("/"),
                    median_ms=summary.median * 1e3,
                    ratio_to_relu=summary.median / summaries["relu", mode, direction].median,
                    gb_per_s=_TENSORS_MOVED[direction] * tensor_bytes / summary.median / 1e9,
                    q1_ms=summary.q1 * 1e3,
                    q3_ms=summary.q3 * 1e3,
                    min_ms=summary.minimum * 1e3,
                    bimodal=summary.bimodal,
                )
            )
    return measurements


def run(progress: bool = True, **request: Any) -> list[Measurement]:
    """Times the candidates and returns one :class:`Measurement` per configuration.

    The request is checked in full (:func:`plan`) before anything runs.

    Args:
        progress: Show a ``keras.utils.Progbar`` on stdout.
        **request: The keyword arguments of :func:`plan`: ``sizes``,
            ``dtype``, ``device``, ``candidates``, ``modes``, ``directions``,
            ``repeats`` (interleaved rounds; the minimum, the median and the
            quartiles are kept) and ``warmup``.

    Returns:
        Measurements in the order size, direction, candidate, mode.

    Raises:
        ValueError: As :func:`plan`.
        TypeError: As :func:`plan`, or for an argument :func:`plan` does not take.
    """
    return measure(plan(**request), progress=progress)

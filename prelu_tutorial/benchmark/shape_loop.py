"""An eager loop over many batch sizes: :func:`prelu_tutorial.prelu` against ``prelu_where``.

Every batch size is new to ``pt.prelu``, the case its compile policy guards:
the loop shows what a stream of new shapes costs against the plain ``where``
form, which compiles nothing.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tensorflow as tf

import prelu_tutorial
from prelu_tutorial import ops, xla
from prelu_tutorial._number_checks import check_int
from prelu_tutorial.benchmark.op_level import parse_size

__all__ = ["VariableShapeResult", "format_variable_shapes", "variable_shapes"]

_ALPHA = 0.25


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
        TypeError: If a count is not an integer.
        ValueError: If a count is below 1 or ``feature_shape`` holds a
            non-positive size.
    """
    batch_sizes = check_int(batch_sizes, "batch_sizes", minimum=1, owner="variable_shapes")
    repeats = check_int(repeats, "repeats", minimum=1, owner="variable_shapes")
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
    loop(prelu_tutorial.prelu, 1)
    prelu_seconds, where_seconds = [], []
    for repeat in range(repeats):
        first = 2 + (repeat + 1) * batch_sizes
        pair = [(prelu_tutorial.prelu, prelu_seconds), (ops.prelu_where, where_seconds)]
        for function, times in pair if repeat % 2 == 0 else reversed(pair):
            times.append(loop(function, first))
    return VariableShapeResult(
        feature_shape=feature_shape,
        batch_sizes=batch_sizes,
        prelu_seconds=tuple(prelu_seconds),
        where_seconds=tuple(where_seconds),
        ratios=tuple(p / w for p, w in zip(prelu_seconds, where_seconds, strict=True)),
        compiled_shapes=len(xla._compiled_shapes),
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

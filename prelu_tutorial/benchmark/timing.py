"""Taking timings and summarizing them: interleaved samples, min/median/IQR, bimodality.

Every benchmark in this package samples its candidates in rounds: each round
times every candidate once, so a burst of load from elsewhere touches them
all alike. A candidate's samples are then summarized by :func:`summarize`:
the minimum (the least disturbed run), the median and the quartiles (the
inter-quartile range, IQR, is the spread to read a difference against), and
whether the samples fall into two separate groups (:func:`modes`). A shared
CPU that throttles in bursts gives such timings: one step takes either about
70 ms or about 129 ms, and a median can land on either.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from prelu_tutorial._number_checks import check_int, check_real

__all__ = [
    "GAP_FACTOR",
    "MIN_GAP",
    "Summary",
    "calls_per_sample",
    "interleave",
    "modes",
    "sample",
    "summarize",
]

GAP_FACTOR = 2.0
""":func:`modes` splits the samples where the gap is wider than this many times
the wider group's spread."""

MIN_GAP = 0.10
"""... and wider than this fraction of the lower group's largest sample (10 %),
so that microsecond jitter between identical runs is never called two modes."""


@dataclass(frozen=True)
class Summary:
    """A set of timings in seconds, summarized.

    Attributes:
        samples: The timings, in the order they were taken.
        minimum: The smallest.
        q1: The first quartile (NumPy's linear interpolation).
        median: The median.
        q3: The third quartile; ``q1`` to ``q3`` is the inter-quartile range.
        modes: The median of each group :func:`modes` finds: one value, or
            two (low, high) when the samples are bimodal.
    """

    samples: tuple[float, ...]
    minimum: float
    q1: float
    median: float
    q3: float
    modes: tuple[float, ...]

    @property
    def iqr(self) -> float:
        """``q3 - q1``."""
        return self.q3 - self.q1

    @property
    def bimodal(self) -> bool:
        """Whether the samples fall into two separate groups."""
        return len(self.modes) == 2


def modes(
    samples: Sequence[float],
    gap_factor: float = GAP_FACTOR,
    min_gap: float = MIN_GAP,
    min_group: int = 2,
) -> tuple[float, ...]:
    """The medians of the groups the samples fall into: one, or two if bimodal.

    The test: sort the samples and look at every gap between neighbours
    that leaves at least ``min_group`` samples on each side. The samples are
    bimodal if one such gap is wider than ``gap_factor`` times the spread
    (largest minus smallest) of each side, and wider than ``min_gap`` times
    the lower side's largest sample. With ``gap_factor >= 1`` at most one gap
    qualifies: any other gap lies inside one of its sides. A single slow
    outlier is not a mode: each side needs ``min_group`` samples.

    Args:
        samples: Timings (any unit), at least one.
        gap_factor: How many times each side's spread the gap must exceed
            (at least 1).
        min_gap: How large the gap must be relative to the lower side's top.
        min_group: The fewest samples a group may hold (at least 1).

    Returns:
        ``(median,)``, or ``(low median, high median)`` when bimodal.

    Raises:
        ValueError: If ``samples`` is empty or holds a non-finite value, or a
            parameter is out of range.
    """
    values = np.sort(np.asarray(samples, dtype=np.float64))
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"modes: samples must be finite and not empty, got {list(samples)!r}.")
    check_real(gap_factor, "gap_factor", owner="modes", minimum=1)
    check_real(min_gap, "min_gap", owner="modes", minimum=0)
    check_int(min_group, "min_group", minimum=1, owner="modes")
    for split in range(min_group, values.size - min_group + 1):
        low, high = values[:split], values[split:]
        gap = high[0] - low[-1]
        spread = max(low[-1] - low[0], high[-1] - high[0])
        if gap > gap_factor * spread and gap > min_gap * low[-1]:
            return float(np.median(low)), float(np.median(high))
    return (float(np.median(values)),)


def summarize(samples: Sequence[float]) -> Summary:
    """Minimum, quartiles and modes of ``samples``.

    Args:
        samples: Timings, at least one, all finite.

    Returns:
        The :class:`Summary`.

    Raises:
        ValueError: If ``samples`` is empty or holds a non-finite value.
    """
    found = modes(samples)
    q1, median, q3 = (float(q) for q in np.percentile(samples, [25, 50, 75]))
    return Summary(tuple(float(s) for s in samples), float(min(samples)), q1, median, q3, found)


def sample(call: Callable[[], object], number: int) -> float:
    """Seconds per call over ``number`` calls, waiting for the device to finish.

    Args:
        call: What to time.
        number: How many calls one sample averages.

    Returns:
        The mean seconds per call.
    """
    start = time.perf_counter()
    for _ in range(number):
        call()
    tf.test.experimental.sync_devices()
    return (time.perf_counter() - start) / number


def calls_per_sample(call: Callable[[], object], min_seconds: float, limit: int = 1000) -> int:
    """How many calls make a sample last at least ``min_seconds`` (one call timed to judge).

    Args:
        call: What will be timed.
        min_seconds: The shortest sample wanted: short calls are repeated so
            that the timer's resolution and Python's overhead do not dominate.
        limit: The most calls per sample.

    Returns:
        Between 1 and ``limit``.
    """
    return max(1, min(limit, math.ceil(min_seconds / max(sample(call, 1), 1e-9))))


def interleave(
    calls: Mapping[Hashable, Callable[[], object]],
    numbers: Mapping[Hashable, int],
    rounds: int,
    after_each: Callable[[], object] | None = None,
) -> dict[Hashable, list[float]]:
    """Samples each call once per round, round-robin, starting one later each round.

    Args:
        calls: The candidates, by key.
        numbers: Calls per sample, by key (see :func:`calls_per_sample`).
        rounds: How many samples each candidate gets.
        after_each: Called after every sample (a progress bar's tick).

    Returns:
        The seconds per call of each sample, by key, in round order.
    """
    keys = list(calls)
    samples: dict[Hashable, list[float]] = {key: [] for key in keys}
    for round_ in range(rounds):
        start = round_ % len(keys)
        for key in keys[start:] + keys[:start]:
            samples[key].append(sample(calls[key], numbers[key]))
            if after_each is not None:
                after_each()
    return samples

"""What a user pays for PReLU: a small CNN trained and served with each activation.

The model (:func:`small_cnn`) is three 3x3 convolutions, each followed by the
activation under test, and a dense layer: 32x32x3 images, 10 classes. Each
candidate (:func:`candidate_names`) is timed as a user runs it:

- ``fit step``: one ``train_on_batch`` on a batch of 64, compiled as Keras
  compiles it by default (``jit_compile="auto"``);
- ``eager inference``: ``model(x)`` called eagerly on a batch of 8;
- ``variable-size loop``: a fresh model trained with ``train_on_batch`` on
  batches of 16 over 12 image sizes (8x8 and up), each seen twice: the total
  seconds, compiles included, and the growth of the process' resident memory
  over the loop. Each round's sizes are new to the process.

The candidates are interleaved round-robin (:mod:`.timing`), after untimed
warm-up calls that also build the C++ op of the ``custom_op`` implementation.
Each figure is summarized over the rounds (minimum, median, quartiles,
bimodality) and given as a ratio to ReLU in the same run: each statistic over
ReLU's same statistic, the quartiles over ReLU's median.
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from prelu_tutorial import kernel_choice, layers
from prelu_tutorial._checks import quiet_logger
from prelu_tutorial._number_checks import check_int
from prelu_tutorial.benchmark import timing
from prelu_tutorial.benchmark.request import RequestError, about

__all__ = [
    "BATCH",
    "CLASSES",
    "IMAGE_SHAPE",
    "INFERENCE_BATCH",
    "LOOP_BATCH",
    "LOOP_SIZES",
    "PARTS",
    "ModelBenchmark",
    "ModelFigure",
    "ModelPlan",
    "candidate_names",
    "default_implementation",
    "measure_model",
    "plan_model",
    "run_model",
    "small_cnn",
]

PARTS = ("fit step", "eager inference", "variable-size loop")
"""What is timed, per candidate."""

_PART_KEYS = {"fit": "fit step", "eager": "eager inference", "loop": "variable-size loop"}

BATCH = 64
"""The fit step's batch size."""
INFERENCE_BATCH = 8
"""Eager inference's batch size."""
IMAGE_SHAPE = (32, 32, 3)
"""The fit step's and eager inference's image shape."""
CLASSES = 10
LOOP_SIZES = 12
"""Distinct image sizes per variable-size loop; each is trained on twice."""
LOOP_BATCH = 16
"""The variable-size loop's batch size."""

_LOOP_SMALLEST = 8  # the loop's image sizes start here
_MIN_SAMPLE_SECONDS = 0.05  # short calls are repeated within a sample until it lasts this long


def default_implementation() -> str:
    """The kernels ``pt.PReLU()`` (``implementation="auto"``) runs in every timed part here.

    Each part is eager or a training step, and Keras compiles the step with
    XLA exactly where a GPU is visible, so
    :func:`prelu_tutorial.kernel_choice.choose` gives one answer for all
    three: ``"custom_op"`` on a CPU where the op builds, else ``"xla"``.

    Returns:
        ``"custom_op"`` or ``"xla"``.
    """
    return kernel_choice.choose(training=True)


def candidate_names() -> tuple[str, ...]:
    """The activations timed: ReLU, Keras' PReLU and ``pt.PReLU`` with each of its kernels.

    The kernels are the values of :data:`prelu_tutorial.layers.IMPLEMENTATIONS`
    (read now, not at import) but ``"auto"``, which runs one of them
    (:func:`default_implementation`; the table marks its row). Timing one
    code path twice would be worse than redundant: the second run would
    find the shapes the first one compiled in the process' caches.

    Returns:
        ``("relu", "keras.layers.PReLU", "pt.PReLU[xla]", "pt.PReLU[custom_op]")``.
    """
    kernels = [name for name in layers.IMPLEMENTATIONS if name != "auto"]
    return ("relu", "keras.layers.PReLU") + tuple(f"pt.PReLU[{name}]" for name in kernels)


def _activation(candidate: str) -> keras.layers.Layer:
    """A new activation layer for a candidate name."""
    if candidate == "relu":
        return keras.layers.ReLU()
    if candidate == "keras.layers.PReLU":
        return keras.layers.PReLU(shared_axes=[1, 2])
    return layers.PReLU(implementation=candidate[len("pt.PReLU[") : -1])


def small_cnn(candidate: str, image_shape: Sequence[int | None] = (None, None, 3)) -> keras.Model:
    """The benchmark's model with a candidate's activation, compiled with Keras' defaults.

    Args:
        candidate: One of :func:`candidate_names`.
        image_shape: The input's (height, width, channels); ``None`` sizes
            take any image size (the variable-size loop needs them).

    Returns:
        A compiled ``keras.Model``: conv(16)-act-conv(32)-act-conv(32)-act,
        global average pooling, dense(10); SGD, sparse categorical
        cross-entropy from logits.
    """
    inputs = keras.Input(tuple(image_shape))
    hidden = inputs
    for filters in (16, 32, 32):
        hidden = keras.layers.Conv2D(filters, 3, padding="same")(hidden)
        hidden = _activation(candidate)(hidden)
    hidden = keras.layers.GlobalAveragePooling2D()(hidden)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES)(hidden))
    model.compile(
        optimizer=keras.optimizers.SGD(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


@dataclass(frozen=True)
class ModelPlan:
    """A checked request for :func:`measure_model`.

    Attributes:
        candidates: Names from :func:`candidate_names`, ReLU's first.
        parts: A subset of :data:`PARTS`.
        rounds: Interleaved rounds of the fit step and eager inference.
        loop_rounds: Interleaved rounds of the variable-size loop.
    """

    candidates: tuple[str, ...]
    parts: tuple[str, ...]
    rounds: int
    loop_rounds: int


@dataclass(frozen=True)
class ModelFigure:
    """One candidate's figure for one part, and its ratio to ReLU's.

    Attributes:
        candidate: One of :func:`candidate_names`.
        part: One of :data:`PARTS`.
        seconds: The rounds' seconds (per step, per call, or per loop), summarized.
        min_ratio: ``seconds.minimum`` over ReLU's minimum.
        median_ratio: ``seconds.median`` over ReLU's median.
        q1_ratio: ``seconds.q1`` over ReLU's median.
        q3_ratio: ``seconds.q3`` over ReLU's median.
        memory_growth_mb: For the loop: the median growth of resident memory
            over one loop, in MB (``nan`` where it cannot be read); else ``nan``.
    """

    candidate: str
    part: str
    seconds: timing.Summary
    min_ratio: float
    median_ratio: float
    q1_ratio: float
    q3_ratio: float
    memory_growth_mb: float = math.nan

    @property
    def bimodal(self) -> bool:
        """Whether this candidate's rounds fall into two separate groups."""
        return self.seconds.bimodal


@dataclass(frozen=True)
class ModelBenchmark:
    """The result of :func:`run_model`.

    Attributes:
        figures: One :class:`ModelFigure` per candidate and part.
        skipped: Candidates that could not run, with the reason (e.g. no C++
            compiler for ``custom_op``).
        rounds: Rounds of the fit step and eager inference.
        loop_rounds: Rounds of the variable-size loop.
        default_implementation: What ``pt.PReLU()`` ran (:func:`default_implementation`).
        device: Where Keras placed the models: ``"GPU:0"`` if TensorFlow sees
            a GPU, else ``"CPU:0"``.
        load_average: The machine's 1-minute load average when the run began
            (a loaded machine gives slower, noisier timings).
        tensorflow: TensorFlow's version.
        keras: Keras' version.
    """

    figures: tuple[ModelFigure, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    rounds: int = 0
    loop_rounds: int = 0
    default_implementation: str = ""
    device: str = "CPU:0"
    load_average: float = math.nan
    tensorflow: str = tf.__version__
    keras: str = keras.__version__

    def figure(self, candidate: str, part: str) -> ModelFigure:
        """The figure of one candidate and part.

        Args:
            candidate: One of :func:`candidate_names`.
            part: One of :data:`PARTS`.

        Returns:
            The :class:`ModelFigure`.

        Raises:
            KeyError: If that candidate or part was not measured.
        """
        for found in self.figures:
            if (found.candidate, found.part) == (candidate, part):
                return found
        raise KeyError(f"no figure for candidate {candidate!r} and part {part!r}.")


def plan_model(
    candidates: Sequence[str] | None = None,
    parts: Sequence[str] = PARTS,
    rounds: int = 7,
    loop_rounds: int = 3,
) -> ModelPlan:
    """Checks a request, measuring nothing.

    Args:
        candidates: Names from :func:`candidate_names` (``None``: all);
            ``"pt.PReLU"`` names the row of the kernels ``pt.PReLU()``
            runs. ReLU is always added, the ratios need it.
        parts: A subset of :data:`PARTS`, or their short names ``fit``,
            ``eager``, ``loop``.
        rounds: Rounds of the fit step and eager inference; at least 1.
        loop_rounds: Rounds of the variable-size loop; at least 1.

    Returns:
        The :class:`ModelPlan`.

    Raises:
        RequestError: A ``ValueError`` that names the argument to change
            (:mod:`.request`): for an unknown or empty candidate or part
            list, a count below 1, or a request with no candidate besides
            ReLU (``candidates``).
        TypeError: If a count is not an integer.
    """
    known = candidate_names()
    alias = {"pt.PReLU": f"pt.PReLU[{default_implementation()}]"}
    named = known if candidates is None else [alias.get(name, name) for name in candidates]
    chosen = tuple(dict.fromkeys(named))
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        raise RequestError(
            "candidates", f"candidates must be among {list(known)}, got {list(chosen)}."
        )
    if all(name == "relu" for name in chosen):
        raise RequestError(
            "candidates", f"nothing to measure besides relu: candidates {list(chosen)}."
        )
    parts_named = tuple(dict.fromkeys(_PART_KEYS.get(part, part) for part in parts))
    if not parts_named or any(part not in PARTS for part in parts_named):
        raise RequestError(
            "parts",
            f"parts must be among {list(_PART_KEYS)} or {list(PARTS)}, got {list(parts)}.",
        )
    with about("rounds"):
        rounds = check_int(rounds, "rounds", minimum=1)
    with about("loop_rounds"):
        loop_rounds = check_int(loop_rounds, "loop_rounds", minimum=1)
    ordered = ("relu", *[name for name in chosen if name != "relu"])
    return ModelPlan(ordered, tuple(p for p in PARTS if p in parts_named), rounds, loop_rounds)


def _resident_mb() -> float:
    """The process' resident memory now, in MB; ``nan`` where /proc cannot tell."""
    try:
        with open("/proc/self/statm", encoding="ascii") as file:
            pages = int(file.read().split()[1])
    except (OSError, IndexError, ValueError):
        return math.nan
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _batch(rng: np.random.Generator, size: int, height: int, width: int):
    x = rng.standard_normal((size, height, width, IMAGE_SHAPE[2])).astype("float32")
    return x, rng.integers(0, CLASSES, size)


def _loop_sizes(round_: int, rounds: int) -> list[int]:
    """Round ``round_``'s 12 image sizes: new to every model, spread alike in every round."""
    return [_LOOP_SMALLEST + round_ + rounds * index for index in range(LOOP_SIZES)]


def _variable_size_loop(
    candidate: str, sizes: Sequence[int], rng: np.random.Generator
) -> tuple[float, float]:
    """A fresh model trained on each size twice: (seconds, resident memory growth in MB)."""
    keras.utils.set_random_seed(0)
    model = small_cnn(candidate)
    batches = [_batch(rng, LOOP_BATCH, size, size) for size in sizes for _ in range(2)]
    gc.collect()
    before = _resident_mb()
    start = time.perf_counter()
    for x, y in batches:
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - start
    return seconds, _resident_mb() - before


def _prepare(candidate: str, x: np.ndarray, y: np.ndarray) -> keras.Model | str:
    """The candidate's model after one eager call and one fit step, or why it failed.

    Both calls are untimed: they build the C++ op of ``custom_op`` and
    compile the train step, so that neither lands in a timed round.

    Args:
        candidate: One of :func:`candidate_names`.
        x: A batch of images.
        y: Their labels.

    Returns:
        The model, or the first line of the error (e.g. no C++ compiler, or
        an op XLA cannot compile where Keras' default compiles the step with XLA).
    """
    keras.utils.set_random_seed(0)
    try:
        model = small_cnn(candidate, IMAGE_SHAPE)
        model(x[:INFERENCE_BATCH])
        model.train_on_batch(x, y)
    except (RuntimeError, OSError, tf.errors.OpError) as error:
        return f"{type(error).__name__}: {error}".strip().splitlines()[0]
    return model


def _figures(
    part: str,
    summaries: dict[str, timing.Summary],
    growth: dict[str, float] | None = None,
) -> list[ModelFigure]:
    relu = summaries["relu"]
    return [
        ModelFigure(
            candidate=name,
            part=part,
            seconds=summary,
            min_ratio=summary.minimum / relu.minimum,
            median_ratio=summary.median / relu.median,
            q1_ratio=summary.q1 / relu.median,
            q3_ratio=summary.q3 / relu.median,
            memory_growth_mb=math.nan if growth is None else growth[name],
        )
        for name, summary in summaries.items()
    ]


def measure_model(request: ModelPlan, progress: Callable[[str], object] | None = None):
    """Times a checked request.

    Args:
        request: As returned by :func:`plan_model`.
        progress: Called with a short line before each stage (e.g. ``print``).

    Returns:
        The :class:`ModelBenchmark`.
    """
    say = progress or (lambda line: None)
    load = os.getloadavg()[0]
    skipped = {}
    with quiet_logger():
        say("building and warming up " + ", ".join(request.candidates))
        rng = np.random.default_rng(0)
        x, y = _batch(rng, BATCH, *IMAGE_SHAPE[:2])
        small = x[:INFERENCE_BATCH]
        models = {}
        for name in request.candidates:
            prepared = _prepare(name, x, y)
            if isinstance(prepared, str):
                skipped[name] = prepared
            else:
                models[name] = prepared
        if "relu" in skipped:
            raise RuntimeError(f"the ReLU model failed to run: {skipped['relu']}")
        names = list(models)
        figures = []
        parts = {
            "fit step": {n: (lambda m=m: m.train_on_batch(x, y)) for n, m in models.items()},
            "eager inference": {n: (lambda m=m: m(small)) for n, m in models.items()},
        }
        for part, calls in parts.items():
            if part not in request.parts:
                continue
            say(f"{part}: {request.rounds} rounds")
            numbers = {
                n: timing.calls_per_sample(call, _MIN_SAMPLE_SECONDS, limit=100)
                for n, call in calls.items()
            }
            samples = timing.interleave(calls, numbers, request.rounds)
            figures += _figures(part, {n: timing.summarize(s) for n, s in samples.items()})
        if "variable-size loop" in request.parts:
            seconds = {name: [] for name in names}
            growth = {name: [] for name in names}
            for round_ in range(request.loop_rounds):
                say(f"variable-size loop: round {round_ + 1} of {request.loop_rounds}")
                sizes = _loop_sizes(round_, request.loop_rounds)
                start = round_ % len(names)
                for name in names[start:] + names[:start]:
                    taken, grown = _variable_size_loop(name, sizes, rng)
                    seconds[name].append(taken)
                    growth[name].append(grown)
            figures += _figures(
                "variable-size loop",
                {name: timing.summarize(times) for name, times in seconds.items()},
                {name: float(np.median(values)) for name, values in growth.items()},
            )
    return ModelBenchmark(
        figures=tuple(figures),
        skipped=skipped,
        rounds=request.rounds,
        loop_rounds=request.loop_rounds,
        default_implementation=default_implementation(),
        device="GPU:0" if tf.config.list_logical_devices("GPU") else "CPU:0",
        load_average=load,
    )


def run_model(progress: Callable[[str], object] | None = None, **request: Any) -> ModelBenchmark:
    """Times the small CNN with each activation; the request is checked before anything runs.

    Args:
        progress: Called with a short line before each stage (e.g. ``print``).
        **request: The keyword arguments of :func:`plan_model`:
            ``candidates``, ``parts``, ``rounds`` and ``loop_rounds``.

    Returns:
        The :class:`ModelBenchmark`.

    Raises:
        ValueError: As :func:`plan_model`.
        TypeError: As :func:`plan_model`, or for an argument it does not take.
    """
    return measure_model(plan_model(**request), progress)

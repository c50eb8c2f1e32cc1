"""What the workers train: the model, the order of the batches, one train step, a worker's run.

The network is a Dense-PReLU stack on the 8x8 digits with channel-wise
:class:`prelu_tutorial.PReLU` layers. Every epoch reads the training digits in
a fresh shuffled order and drops its last partial batch, so global batch
``k`` is the same samples however many workers share it: each of ``N``
workers takes every ``N``-th sample of it. A resumed job positions its
pipeline by step, so it sees exactly the batches the uninterrupted job would
have seen.

:func:`train_step` is the one train step, used alike by the workers (under
``tf.distribute.MultiWorkerMirroredStrategy``) and by
:func:`train_single_process`, the reference they must agree with.
:func:`worker_main` is what each worker process runs; it reports to the
launcher through :func:`prelu_tutorial.distribute.launcher.report`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from prelu_tutorial._number_checks import check_int, check_real
from prelu_tutorial.data import digits
from prelu_tutorial.distribute.launcher import report, watch_launcher
from prelu_tutorial.layers import PReLU

__all__ = [
    "DEFAULT_CONFIG",
    "TRAIN_DIGITS",
    "TrainConfig",
    "build_model",
    "total_steps",
    "train_single_process",
    "train_step",
    "worker_main",
]

TRAIN_DIGITS = 1347
"""The training digits :func:`prelu_tutorial.data.digits` gives: 1797 less a 25% test split."""

_PAUSE_SECONDS = 120.0
"""How long a worker holds still for the launcher's SIGKILL before it trains on."""


@dataclass(frozen=True)
class TrainConfig:
    """What every worker trains, and how.

    Args:
        epochs: Passes over the training digits, at least 1.
        global_batch_size: Samples per step over all workers together, between
            1 and :data:`TRAIN_DIGITS`; each worker gets ``global_batch_size //
            workers`` of them, so it must be a multiple of the number of workers.
        hidden_units: Width of each hidden Dense layer; each is followed by a
            channel-wise PReLU (one alpha per unit, initialized to 0.25).
        learning_rate: Adam's learning rate, > 0.
        seed: Seed of the weights and of every epoch's shuffle, between 0 and
            2**32 - 1.
        checkpoint_every: The chief checkpoints after every this many steps.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If an argument is out of range.
    """

    epochs: int = 3
    global_batch_size: int = 64
    hidden_units: tuple[int, ...] = (32, 32)
    learning_rate: float = 0.01
    seed: int = 0
    checkpoint_every: int = 10

    def __post_init__(self):
        for name in ("epochs", "global_batch_size", "checkpoint_every"):
            check_int(getattr(self, name), name, minimum=1, owner="TrainConfig")
        if self.global_batch_size > TRAIN_DIGITS:
            raise ValueError(
                f"TrainConfig: global_batch_size must be at most {TRAIN_DIGITS} (the training "
                f"digits), got {self.global_batch_size}."
            )
        units = tuple(
            check_int(unit, f"hidden_units[{index}]", minimum=1, owner="TrainConfig")
            for index, unit in enumerate(self.hidden_units)
        )
        if not units:
            raise ValueError("TrainConfig: hidden_units must hold at least one layer's width.")
        object.__setattr__(self, "hidden_units", units)
        if check_int(self.seed, "seed", owner="TrainConfig") >= 2**32:
            raise ValueError(
                f"TrainConfig: seed must be between 0 and 2**32 - 1, got {self.seed!r}."
            )
        check_real(
            self.learning_rate, "learning_rate", owner="TrainConfig", minimum=0.0, inclusive=False
        )


DEFAULT_CONFIG = TrainConfig()
"""The configuration the book and the CLI train with by default."""


def total_steps(config: TrainConfig) -> int:
    """How many steps (global batches) a job trains: whole batches per epoch, times epochs."""
    return TRAIN_DIGITS // config.global_batch_size * config.epochs


def build_model(config: TrainConfig) -> keras.Sequential:
    """Flatten, then (Dense, channel-wise PReLU) per hidden width, then Dense logits.

    Every initializer has its own seed, so the weights depend on
    ``config.seed`` only, not on what else the process created before.
    """
    layers: list[Any] = [keras.Input((8, 8, 1)), keras.layers.Flatten(name="flatten")]
    for index, units in enumerate(config.hidden_units):
        layers.append(
            keras.layers.Dense(
                units,
                kernel_initializer=keras.initializers.GlorotUniform(seed=config.seed + index),
                name=f"dense_{index}",
            )
        )
        layers.append(PReLU(name=f"prelu_{index}"))
    layers.append(
        keras.layers.Dense(
            10,
            kernel_initializer=keras.initializers.GlorotUniform(
                seed=config.seed + len(config.hidden_units)
            ),
            name="logits",
        )
    )
    return keras.Sequential(layers, name="prelu_mlp")


def _data(config: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training digits and the order they are read in: one shuffle per epoch.

    Returns ``(images, labels, order)``; ``order`` holds ``total_steps(config)
    * global_batch_size`` sample indices, and global batch ``k`` is
    ``order[k * B:(k + 1) * B]``.
    """
    images, labels, _, _ = digits(seed=config.seed)
    if len(images) != TRAIN_DIGITS:
        raise RuntimeError(
            f"prelu_tutorial.data.digits gave {len(images)} training digits, not "
            f"TRAIN_DIGITS={TRAIN_DIGITS}; the step count would be wrong."
        )
    per_epoch = TRAIN_DIGITS // config.global_batch_size * config.global_batch_size
    rng = np.random.default_rng(config.seed)
    epochs = [rng.permutation(TRAIN_DIGITS)[:per_epoch] for _ in range(config.epochs)]
    return images, labels, np.concatenate(epochs)


def _batches(
    images: np.ndarray,
    labels: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    *,
    shards: int = 1,
    shard: int = 0,
    skip: int = 0,
) -> tf.data.Dataset:
    """Shard ``shard`` of every global batch, from batch ``skip`` on.

    Sample ``j`` of the order goes to shard ``j % shards``, so with
    ``batch_size = B // shards`` a shard's batch ``k`` is its share of global
    batch ``k``; one shard of size ``B`` is the global batches themselves.
    """
    return (
        tf.data.Dataset.from_tensor_slices(order)
        .shard(shards, shard)
        .batch(batch_size, drop_remainder=True)
        .skip(skip)
        .map(lambda index: (tf.gather(images, index), tf.gather(labels, index)))
    )


def _state(config: TrainConfig) -> tuple[keras.Sequential, keras.optimizers.Optimizer]:
    """The model and its Adam optimizer, built so its slots exist before a restore."""
    model = build_model(config)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def train_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    global_batch_size: int,
    strategy: tf.distribute.Strategy | None = None,
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """The one train step: each replica's gradient of its share of the global mean loss.

    Each replica sums its samples' cross-entropy and divides by the global
    batch size, so the all-reduced (summed) gradients are those of the mean
    loss over the whole global batch, however many replicas share it.

    Args:
        model: The model to train, built in ``strategy``'s scope.
        optimizer: Its optimizer, built in the same scope.
        global_batch_size: Samples per step over all replicas.
        strategy: The distribution strategy; ``None`` is the current one (in
            one process, TensorFlow's default: one replica).

    Returns:
        A ``tf.function`` ``(images, labels) -> loss``: the step's mean loss
        over the global batch, after the weights are updated.
    """
    strategy = strategy or tf.distribute.get_strategy()

    def replica_step(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            per_sample = keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True
            )
            loss = tf.nn.compute_average_loss(per_sample, global_batch_size=global_batch_size)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    @tf.function
    def step(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        per_replica = strategy.run(replica_step, args=(images, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return step


def _summary(model, step_losses: np.ndarray, config: TrainConfig) -> dict[str, Any]:
    """Per-epoch mean losses, every PReLU layer's alpha and every weight, as JSON-ready lists.

    float32 values become Python floats exactly, so the JSON round trip is lossless.
    """
    per_epoch = step_losses.astype(np.float64).reshape(config.epochs, -1).mean(axis=1)
    return {
        "losses": per_epoch.tolist(),
        "step_losses": step_losses.astype(np.float64).tolist(),
        "alphas": {
            layer.name: np.asarray(layer.alpha.numpy(), np.float64).ravel().tolist()
            for layer in model.layers
            if isinstance(layer, PReLU)
        },
        "weights": {
            weight.path: np.asarray(weight.numpy(), np.float64).ravel().tolist()
            for weight in model.weights
        },
    }


def train_single_process(config: TrainConfig = DEFAULT_CONFIG) -> dict[str, Any]:
    """Trains the workers' model in this process, on the same global batches: the reference.

    Each step takes the whole global batch on one device and the mean loss
    over it; a multi-worker step splits the same batch over the workers and
    all-reduces their summed gradients, which differs only in the order of
    floating-point sums. For outputs that repeat to the bit, call
    ``tf.config.experimental.enable_op_determinism()`` first (the workers do).

    Args:
        config: What to train; the same object the workers get.

    Returns:
        ``{"replicas": 1, "steps", "losses" (mean per epoch), "step_losses",
        "alphas" ({layer name: values}), "weights" ({path: flat values})}``.
    """
    images, labels, order = _data(config)
    model, optimizer = _state(config)
    step = train_step(model, optimizer, config.global_batch_size)
    batches = _batches(images, labels, order, config.global_batch_size)
    step_losses = np.array([step(x, y).numpy() for x, y in batches], np.float32)
    return {"replicas": 1, "steps": len(step_losses), **_summary(model, step_losses, config)}


def worker_main(spec: dict[str, Any]) -> int:
    """One worker's whole run: join the cluster, restore, train, report. Run by the launcher.

    Args:
        spec: What the job wrote for this worker: ``config`` (a
            :class:`TrainConfig` as a dict), ``index``, ``workers``, ``mode``
            (``"custom_loop"`` or ``"keras_fit"``), ``checkpoint_dir``,
            ``scratch_dir``, ``result_path``, ``pause_after_step`` (or
            ``None``) and ``launcher_pid``.

    Returns:
        The exit status, 0.
    """
    watch_launcher(spec["launcher_pid"])
    config = TrainConfig(**spec["config"])
    index, workers = spec["index"], spec["workers"]
    tf.config.experimental.enable_op_determinism()
    # Several workers share this machine's cores; one thread per op keeps them from fighting.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    report("started")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    report("joined", str(strategy.num_replicas_in_sync))
    images, labels, order = _data(config)
    if spec["mode"] == "keras_fit":
        return _keras_fit(strategy, config, images, labels, order)
    steps = total_steps(config)
    with strategy.scope():
        model, optimizer = _state(config)
    # The step and the loss history are the same on every worker; plain variables suffice.
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    step_losses = tf.Variable(tf.zeros([steps]), trainable=False, name="step_losses")
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, step=step, step_losses=step_losses
    )
    checkpoint_dir = spec["checkpoint_dir"]
    # Every worker takes part in a save; only the chief's files are kept.
    save_dir = checkpoint_dir if index == 0 else os.path.join(spec["scratch_dir"], f"w{index}")
    manager = tf.train.CheckpointManager(checkpoint, save_dir, max_to_keep=2)
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is not None:
        checkpoint.restore(latest).assert_existing_objects_matched()
    start_step = int(step.numpy())

    dataset = strategy.distribute_datasets_from_function(
        lambda context: _batches(
            images,
            labels,
            order,
            config.global_batch_size // workers,
            shards=context.num_input_pipelines,
            shard=context.input_pipeline_id,
            skip=start_step,
        )
    )
    run_step = train_step(model, optimizer, config.global_batch_size, strategy)
    steps_per_epoch = steps // config.epochs
    for images_batch, labels_batch in dataset:
        done = int(step.numpy())
        loss = run_step(images_batch, labels_batch)
        step_losses.scatter_nd_update([[done]], [loss])
        step.assign(done + 1)
        done += 1
        if done % config.checkpoint_every == 0 or done == steps:
            manager.save(checkpoint_number=done)
            if index != 0:
                shutil.rmtree(save_dir, ignore_errors=True)
        report("step", str(done))
        if done % steps_per_epoch == 0:
            epoch = done // steps_per_epoch
            epoch_losses = step_losses.numpy()[done - steps_per_epoch : done]
            mean = float(np.mean(epoch_losses, dtype=np.float64))
            report("epoch", f"epoch {epoch}/{config.epochs}: mean loss {mean:.4f}")
        if done == spec["pause_after_step"]:
            # Hold still so the launcher's SIGKILL lands right after this step; bounded.
            report("paused", str(done))
            time.sleep(_PAUSE_SECONDS)
    result = {
        "task_index": index,
        "replicas": strategy.num_replicas_in_sync,
        "steps": int(step.numpy()),
        "optimizer_iterations": int(optimizer.iterations.numpy()),
        "resumed_from_step": start_step,
        **_summary(model, step_losses.numpy(), config),
    }
    Path(spec["result_path"]).write_text(json.dumps(result))
    report("done")
    return 0


def _keras_fit(strategy, config: TrainConfig, images, labels, order) -> int:
    """Keras's own loop under the strategy: fails in Keras 3 (keras-team/keras issue 20585)."""
    with strategy.scope():
        model = build_model(config)
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    dataset = tf.data.Dataset.from_tensor_slices((images[order], labels[order])).batch(
        config.global_batch_size, drop_remainder=True
    )
    model.fit(dataset, epochs=1, verbose=0)
    report("done")
    return 0

"""Multi-worker PReLU training on loopback: the launcher, the workers' loop and the CLI.

:func:`train` starts ``workers`` Python processes on this machine, each with
its own ``TF_CONFIG`` (a cluster of free ``127.0.0.1`` ports, its own index),
and every process runs the same training script: a custom loop under
``tf.distribute.MultiWorkerMirroredStrategy`` (Keras 3's ``Model.fit`` does not
run under that strategy, keras-team/keras issue 20585; :func:`keras_fit_failure`
shows the error), a Dense-PReLU network on the 8x8 digits with channel-wise
:class:`prelu_tutorial.PReLU` layers, and a ``tf.data`` pipeline sharded per
worker: global batch ``k`` is split over the workers, and each worker's
pipeline is positioned by step, so a resumed job sees exactly the batches the
uninterrupted one would have seen. :func:`train_single_process` trains the same
model on the same global batches in this process, the reference the workers
must agree with.

The launcher is bounded everywhere. A worker that does not join, exits with an
error or stops making progress stops the whole job: every worker's process
group is killed, and :class:`WorkerError` or :class:`WorkerTimeoutError` names the
worker and quotes its last log lines. Worker 0, the chief, writes a checkpoint
(model, optimizer state, step and loss history) every ``checkpoint_every``
steps; the other workers write theirs to temporary directories that they delete
again (TensorFlow's multi-worker convention: every worker takes part in a save).
TensorFlow's gRPC servers listen on every interface (``::``), whatever address
``TF_CONFIG`` names; where it can (root, Linux), the launcher runs the workers
in a network namespace whose one interface is loopback (:func:`can_isolate`).
Workers die with the launcher on any signal: the kernel sends them SIGKILL
when it dies (``PR_SET_PDEATHSIG``), and each also watches its parent.
When a worker dies (``kill_worker=i, at_step=s`` sends it a real SIGKILL right
after step ``s``), the launcher stops the others, starts a fresh job on new
ports, and the job resumes from the chief's last checkpoint.

From a shell::

    python -m prelu_tutorial.distribute --workers 2 --epochs 3 --json result.json
    python -m prelu_tutorial.distribute --workers 2 --kill-worker 1 --at-step 25

Exit codes: 0 done, 2 bad arguments, 3 a worker failed, 4 a worker timed out,
5 the workers finished but disagree.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from prelu_tutorial._checks import check_real

__all__ = [
    "EXIT_DISAGREE",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "EXIT_WORKER_FAILED",
    "DistributeError",
    "TrainConfig",
    "WorkerError",
    "WorkerTimeoutError",
    "WorkersDisagreeError",
    "free_ports",
    "keras_fit_failure",
    "main",
    "run_workers",
    "tf_config",
    "total_steps",
    "train",
    "train_single_process",
]

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_WORKER_FAILED = 3
EXIT_TIMEOUT = 4
EXIT_DISAGREE = 5

# Workers talk to the launcher through lines of their log that start with this.
MARKER = "@@distribute "
LOG_TAIL_LINES = 12
POLL_SECONDS = 0.05


class DistributeError(RuntimeError):
    """A multi-worker job failed; ``exit_code`` is what the CLI returns for it."""

    exit_code = EXIT_WORKER_FAILED


class WorkerError(DistributeError):
    """A worker exited with an error.

    Attributes:
        worker: The worker's index in the cluster.
        returncode: Its exit status (negative: killed by that signal).
        log_tail: Its last log lines.
        exception: The first line of the last Python exception in its log
            (``"ValueError: ..."``), or ``None`` if the log shows none.
    """

    exit_code = EXIT_WORKER_FAILED

    def __init__(
        self, worker: int, returncode: int, log_tail: list[str], exception: str | None = None
    ):
        self.worker = worker
        self.returncode = returncode
        self.log_tail = log_tail
        self.exception = exception
        how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited {returncode}"
        super().__init__(f"worker {worker} {how}; its last log lines:\n" + "\n".join(log_tail))


class WorkerTimeoutError(DistributeError):
    """A worker did not join the cluster, or stopped making progress, in time.

    Attributes:
        worker: The worker's index in the cluster.
        log_tail: Its last log lines.
    """

    exit_code = EXIT_TIMEOUT

    def __init__(self, worker: int, reason: str, log_tail: list[str]):
        self.worker = worker
        self.log_tail = log_tail
        super().__init__(f"worker {worker} {reason}; its last log lines:\n" + "\n".join(log_tail))


class WorkersDisagreeError(DistributeError):
    """The workers finished, but their weights are not identical."""

    exit_code = EXIT_DISAGREE


@dataclass(frozen=True)
class TrainConfig:
    """What every worker trains, and how.

    Args:
        epochs: Passes over the training digits, at least 1.
        global_batch_size: Samples per step over all workers together; each
            worker gets ``global_batch_size // workers`` of them, so it must be
            a multiple of the number of workers.
        hidden_units: Width of each hidden Dense layer; each is followed by a
            channel-wise PReLU (one alpha per unit, initialized to 0.25).
        learning_rate: Adam's learning rate.
        seed: Seed of the weights and of every epoch's shuffle.
        checkpoint_every: The chief checkpoints after every this many steps.
    """

    epochs: int = 3
    global_batch_size: int = 64
    hidden_units: tuple[int, ...] = (32, 32)
    learning_rate: float = 0.01
    seed: int = 0
    checkpoint_every: int = 10

    def __post_init__(self):
        for name in ("epochs", "global_batch_size", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig: {name} must be an integer >= 1, got {value!r}.")
        units = tuple(self.hidden_units)
        if not units or any(isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in units):
            raise ValueError(
                "TrainConfig: hidden_units must be one or more integers >= 1, "
                f"got {self.hidden_units!r}."
            )
        object.__setattr__(self, "hidden_units", units)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"TrainConfig: seed must be an integer, got {self.seed!r}.")
        if not 0 <= self.seed < 2**32:
            raise ValueError(
                f"TrainConfig: seed must be between 0 and 2**32 - 1, got {self.seed!r}."
            )
        if not self.learning_rate > 0:
            raise ValueError(f"TrainConfig: learning_rate must be > 0, got {self.learning_rate!r}.")


# ----------------------------------------------------------------------------- the cluster


def free_ports(count: int) -> list[int]:
    """Asks the kernel for ``count`` distinct free TCP ports on 127.0.0.1.

    The sockets are held open until all ports are chosen (so no port comes
    twice) and then closed, so a worker can bind them; another program could
    in principle take one in between, which makes the job fail to start, not
    train wrongly.

    Args:
        count: How many ports, at least 1.

    Returns:
        The port numbers.

    Raises:
        ValueError: If ``count < 1``.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"free_ports: count must be an integer >= 1, got {count!r}.")
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports: Sequence[int], index: int) -> dict[str, Any]:
    """The ``TF_CONFIG`` of worker ``index`` in a loopback cluster.

    Args:
        ports: One port per worker; worker ``i`` listens on ``127.0.0.1:ports[i]``.
        index: This worker's place in the list; worker 0 is the chief.

    Returns:
        ``{"cluster": {"worker": [...addresses...]}, "task": {"type": "worker",
        "index": index}}``, ready for ``json.dumps``.

    Raises:
        ValueError: If ``ports`` is empty or repeats a port, or ``index`` is
            not a position in it.
    """
    ports = list(ports)
    if not ports or len(set(ports)) != len(ports):
        raise ValueError(f"tf_config: ports must be distinct and not empty, got {ports!r}.")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(ports):
        raise ValueError(f"tf_config: index must be between 0 and {len(ports) - 1}, got {index!r}.")
    return {
        "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
        "task": {"type": "worker", "index": index},
    }


# ----------------------------------------------------------------------------- the launcher


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen
    log_path: Path
    log_offset: int = 0
    partial_line: str = ""
    started: bool = False
    joined: bool = False
    step: int = -1
    last_progress: float = 0.0
    paused_at: int | None = None
    done: bool = False
    lines: list[str] = field(default_factory=list)
    exception: str | None = None
    in_traceback: bool = False

    def read_new_lines(self) -> list[str]:
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            log.seek(self.log_offset)
            text = log.read()
            self.log_offset = log.tell()
        text = self.partial_line + text
        *complete, self.partial_line = text.split("\n")
        self.lines = (self.lines + complete)[-200:]
        for line in complete:
            # A traceback's frames are indented; its first unindented line names the exception.
            if line.startswith("Traceback (most recent call last)"):
                self.in_traceback = True
            elif self.in_traceback and line and not line.startswith((" ", "\t")):
                self.exception, self.in_traceback = line.rstrip(), False
        return complete

    def tail(self) -> list[str]:
        self.read_new_lines()
        lines = self.lines + ([self.partial_line] if self.partial_line else [])
        return [line.rstrip() for line in lines if line.strip()][-LOG_TAIL_LINES:]


def _stop(workers: Sequence[_Worker], grace_seconds: float = 3.0) -> None:
    """Ends every worker's whole process group: SIGTERM, then SIGKILL after the grace time.

    The SIGKILL round always runs, so a child that ignores SIGTERM, or outlives
    its worker, dies with the group too.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for worker in workers:
            try:
                os.killpg(worker.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace_seconds
        for worker in workers:
            try:
                worker.process.wait(timeout=max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass


@dataclass
class _Outcome:
    killed: tuple[int, int] | None  # (worker, step) when the launcher killed one on purpose
    killed_tail: list[str] = field(default_factory=list)


_PR_SET_PDEATHSIG = 1
"""prctl(2)'s option that sends the calling process a signal when its parent dies (Linux)."""


def _die_with(launcher_pid: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the worker die by SIGKILL when the launcher dies.

    Linux delivers the signal on every exit of the launcher, SIGKILL
    included. If the launcher died between the fork and this call, the
    worker exits at once. Elsewhere the worker's own watchdog (see
    :func:`_watch_launcher`) ends it within a second.
    """

    def set_death_signal() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != launcher_pid:
            os._exit(1)

    return set_death_signal


def _watch_launcher(launcher_pid: int, every_seconds: float = 1.0) -> None:
    """Starts a daemon thread that kills this worker once its launcher is gone."""

    def watch() -> None:
        while os.getppid() == launcher_pid:
            time.sleep(every_seconds)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="watch-launcher", daemon=True).start()


_LOOPBACK_UP = """
import fcntl, socket, struct, sys, time
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
request = struct.pack("16sH14s", b"lo", 0, b"")
flags = struct.unpack("16sH14s", fcntl.ioctl(probe, 0x8913, request))[1]  # SIOCGIFFLAGS
fcntl.ioctl(probe, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))  # SIOCSIFFLAGS: up
print("ready", flush=True)
sys.stdin.read()  # holds the namespace until the launcher closes the pipe or dies
"""
"""The namespace holder: brings loopback up in its fresh network namespace, then waits."""


def can_isolate() -> bool:
    """Whether the workers can run in a network namespace of their own (root, Linux, util-linux).

    TensorFlow's gRPC servers listen on every interface (``::``), whatever
    address ``TF_CONFIG`` names; only a namespace whose one interface is
    loopback keeps them unreachable from the network.
    """
    return (
        sys.platform.startswith("linux")
        and os.geteuid() == 0
        and shutil.which("unshare") is not None
        and shutil.which("nsenter") is not None
    )


class _Namespace:
    """A network namespace with only loopback, held by a small process; workers enter it."""

    def __init__(self, ready_timeout: float = 10.0):
        self.holder = subprocess.Popen(
            ["unshare", "--net", sys.executable, "-c", _LOOPBACK_UP],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()),
        )
        ready = threading.Event()
        threading.Thread(
            target=lambda: self.holder.stdout.readline() == b"ready\n" and ready.set(),
            daemon=True,
        ).start()
        if not ready.wait(ready_timeout):
            self.close()
            raise RuntimeError("the network namespace for the workers did not come up")

    def command(self, command: Sequence[str]) -> list[str]:
        """``command`` run inside the namespace (nsenter executes it in place)."""
        return ["nsenter", "--net", "--target", str(self.holder.pid), "--", *command]

    def close(self) -> None:
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait(timeout=30)
        for pipe in (self.holder.stdin, self.holder.stdout):
            pipe.close()


def _check_timeouts(owner: str, **timeouts: float) -> None:
    """Every timeout is a finite number of seconds > 0 (NaN would switch it off)."""
    for name, value in timeouts.items():
        check_real(value, name, owner=owner, minimum=0.0, inclusive=False)


def run_workers(
    commands: Sequence[Sequence[str]],
    envs: Sequence[dict[str, str]],
    log_dir: str | os.PathLike,
    *,
    join_timeout: float = 180.0,
    stall_timeout: float = 120.0,
    timeout: float = 900.0,
    kill_worker: int | None = None,
    at_step: int | None = None,
    progress: Callable[[str], None] | None = None,
    isolate: bool | None = None,
) -> _Outcome:
    """Runs one attempt of a job: starts the workers, watches them, always stops them.

    A worker reports through lines of its log (standard output and error,
    written to ``log_dir/worker-<i>.log``) that start with ``MARKER``:
    ``started`` (TensorFlow is imported, the strategy is next), ``joined``
    (the strategy connected to every worker), ``step <n>`` after each step,
    ``paused <n>`` when it waits for the launcher's SIGKILL, ``epoch <text>``
    (relayed to ``progress`` from worker 0) and ``done``. Every worker runs in
    its own session, so stopping a worker kills its whole process group,
    children included.

    Args:
        commands: One command line per worker.
        envs: One environment per worker.
        log_dir: Where the workers' logs go.
        join_timeout: Seconds from the start until every worker must have joined.
        stall_timeout: Seconds a joined worker may go without reporting progress.
        timeout: Seconds the whole attempt may take.
        kill_worker: A worker to SIGKILL once it reports ``paused <at_step>``.
        at_step: See ``kill_worker``.
        progress: Called with each epoch line of worker 0.
        isolate: Run the workers in a network namespace whose one interface
            is loopback (see :func:`can_isolate`); ``None`` does so where
            possible.

    Returns:
        An outcome: ``killed`` is ``(worker, step)`` if the kill happened (the
        other workers were then stopped), else ``None`` (every worker exited 0
        after reporting ``done``).

    Raises:
        WorkerError: If a worker exits with an error (or without ``done``).
        WorkerTimeoutError: If a worker does not join or stalls, or time runs out.
        TypeError, ValueError: If a timeout is not a finite number of seconds > 0.
    """
    _check_timeouts(
        "run_workers", join_timeout=join_timeout, stall_timeout=stall_timeout, timeout=timeout
    )
    if isolate is None:
        isolate = can_isolate()
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    workers: list[_Worker] = []
    namespace = _Namespace() if isolate else None
    start = time.monotonic()
    try:
        for index, (command, env) in enumerate(zip(commands, envs, strict=True)):
            log_path = log_dir / f"worker-{index}.log"
            with open(log_path, "w", encoding="utf-8") as log:
                process = subprocess.Popen(
                    namespace.command(command) if namespace else list(command),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with(os.getpid()),
                )
            workers.append(_Worker(index, process, log_path, last_progress=start))
        while True:
            now = time.monotonic()
            for worker in workers:
                for line in worker.read_new_lines():
                    if not line.startswith(MARKER):
                        continue
                    kind, _, rest = line[len(MARKER) :].partition(" ")
                    worker.last_progress = now
                    if kind == "started":
                        worker.started = True
                    elif kind == "joined":
                        worker.joined = True
                    elif kind == "step":
                        worker.step = int(rest)
                    elif kind == "paused":
                        worker.paused_at = int(rest)
                    elif kind == "epoch" and worker.index == 0 and progress is not None:
                        progress(rest)
                    elif kind == "done":
                        worker.done = True
            if kill_worker is not None:
                target = workers[kill_worker]
                if target.paused_at is not None and target.paused_at == at_step:
                    os.killpg(target.process.pid, signal.SIGKILL)
                    target.process.wait(timeout=30)
                    return _Outcome(killed=(kill_worker, at_step), killed_tail=target.tail())
            for worker in workers:
                returncode = worker.process.poll()
                if returncode is not None and (returncode != 0 or not worker.done):
                    tail = worker.tail()
                    raise WorkerError(worker.index, returncode, tail, worker.exception)
            if all(worker.process.poll() == 0 and worker.done for worker in workers):
                return _Outcome(killed=None)
            if now - start > join_timeout and not all(w.joined for w in workers):
                # A worker that never started keeps the others waiting: name it first.
                culprit = next((w for w in workers if not w.started), None)
                what = "did not start"
                if culprit is None:
                    culprit = next(w for w in workers if not w.joined)
                    what = "did not join the cluster"
                raise WorkerTimeoutError(
                    culprit.index, f"{what} within {join_timeout:g} s", culprit.tail()
                )
            for worker in workers:
                if (
                    worker.joined
                    and not worker.done
                    and now - worker.last_progress > (stall_timeout)
                ):
                    raise WorkerTimeoutError(
                        worker.index,
                        f"made no progress for {stall_timeout:g} s (last step {worker.step})",
                        worker.tail(),
                    )
            if now - start > timeout:
                slowest = min(workers, key=lambda w: (w.done, w.step))
                raise WorkerTimeoutError(
                    slowest.index, f"did not finish within {timeout:g} s", slowest.tail()
                )
            time.sleep(POLL_SECONDS)
    finally:
        _stop(workers)
        if namespace is not None:
            namespace.close()


# ----------------------------------------------------------------------------- the training


def _build_model(config: TrainConfig) -> keras.Sequential:
    """Flatten, then (Dense, channel-wise PReLU) per hidden width, then Dense logits.

    Every initializer has its own seed, so the weights depend on
    ``config.seed`` only, not on what else the process created before.
    """
    from prelu_tutorial.layers import PReLU

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

    Returns ``(images, labels, order)``; ``order`` holds ``steps * global_batch_size``
    sample indices, and global batch ``k`` is ``order[k * B:(k + 1) * B]``. Each
    epoch drops its last partial batch, so every step sees a full global batch.
    """
    from prelu_tutorial.data import digits

    images, labels, _, _ = digits(seed=config.seed)
    steps_per_epoch = len(images) // config.global_batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"TrainConfig: global_batch_size must be at most {len(images)} (the training "
            f"digits), got {config.global_batch_size}."
        )
    rng = np.random.default_rng(config.seed)
    order = np.concatenate(
        [
            rng.permutation(len(images))[: steps_per_epoch * config.global_batch_size]
            for _ in range(config.epochs)
        ]
    )
    return images, labels, order


def total_steps(config: TrainConfig) -> int:
    """How many steps (global batches) a job trains: whole batches per epoch, times epochs."""
    return len(_data(config)[2]) // config.global_batch_size


def _state(config: TrainConfig) -> tuple[keras.Sequential, keras.optimizers.Optimizer]:
    """The model and its Adam optimizer, built so its slots exist before a restore."""
    model = _build_model(config)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _replica_loss(model, images, labels, global_batch_size: int):
    """This replica's share of the global batch's mean loss: its summed loss over ``B``."""
    logits = model(images, training=True)
    per_sample = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return tf.nn.compute_average_loss(per_sample, global_batch_size=global_batch_size)


def _summary(model, step_losses: np.ndarray, config: TrainConfig) -> dict[str, Any]:
    """Per-epoch mean losses, every PReLU layer's alpha and every weight, as JSON-ready lists.

    float32 values become Python floats exactly, so the JSON round trip is lossless.
    """
    from prelu_tutorial.layers import PReLU

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


def train_single_process(config: TrainConfig = TrainConfig()) -> dict[str, Any]:
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
    batch = config.global_batch_size
    model, optimizer = _state(config)
    dataset = (
        tf.data.Dataset.from_tensor_slices(order)
        .batch(batch, drop_remainder=True)
        .map(lambda index: (tf.gather(images, index), tf.gather(labels, index)))
    )

    @tf.function
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            loss = _replica_loss(model, images, labels, batch)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    step_losses = np.array([train_step(x, y).numpy() for x, y in dataset], np.float32)
    return {"replicas": 1, "steps": len(step_losses), **_summary(model, step_losses, config)}


def _mark(kind: str, text: str = "") -> None:
    print(f"{MARKER}{kind} {text}".rstrip(), flush=True)


def _worker_main(spec: dict[str, Any]) -> int:
    """One worker's whole job: join the cluster, restore, train, report. Run by the launcher."""
    _watch_launcher(spec["launcher_pid"])
    config = TrainConfig(**spec["config"])
    index, workers = spec["index"], spec["workers"]
    tf.config.experimental.enable_op_determinism()
    # Several workers share this machine's cores; one thread per op keeps them from fighting.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    _mark("started")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    _mark("joined", str(strategy.num_replicas_in_sync))
    images, labels, order = _data(config)
    batch = config.global_batch_size
    steps = len(order) // batch
    if spec["mode"] == "keras_fit":
        return _keras_fit_worker(strategy, config, images, labels, order)
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
    _mark("restored", str(start_step))

    per_worker_batch = batch // workers

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        # Sample k * B + j of the global order goes to worker j % N: every worker's batch k
        # is its share of global batch k. skip() positions the pipeline at the restored step.
        return (
            tf.data.Dataset.from_tensor_slices(order)
            .shard(context.num_input_pipelines, context.input_pipeline_id)
            .batch(per_worker_batch, drop_remainder=True)
            .skip(start_step)
            .map(lambda index: (tf.gather(images, index), tf.gather(labels, index)))
        )

    dataset = strategy.distribute_datasets_from_function(dataset_fn)

    @tf.function
    def train_step(images, labels):
        def replica_step(images, labels):
            with tf.GradientTape() as tape:
                loss = _replica_loss(model, images, labels, batch)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        per_replica = strategy.run(replica_step, args=(images, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    steps_per_epoch = steps // config.epochs
    pause_after = spec.get("pause_after_step")
    for images_batch, labels_batch in dataset:
        done = int(step.numpy())
        loss = train_step(images_batch, labels_batch)
        step_losses.scatter_nd_update([[done]], [loss])
        step.assign(done + 1)
        done += 1
        if done % config.checkpoint_every == 0 or done == steps:
            manager.save(checkpoint_number=done)
            if index != 0:
                shutil.rmtree(save_dir, ignore_errors=True)
        _mark("step", str(done))
        if done % steps_per_epoch == 0:
            epoch = done // steps_per_epoch
            epoch_losses = step_losses.numpy()[done - steps_per_epoch : done]
            mean = float(np.mean(epoch_losses, dtype=np.float64))
            _mark("epoch", f"epoch {epoch}/{config.epochs}: mean loss {mean:.4f}")
        if done == pause_after:
            # Hold still so the launcher's SIGKILL lands right after this step; bounded.
            _mark("paused", str(done))
            time.sleep(spec.get("pause_seconds", 120.0))
    result = {
        "task_index": index,
        "replicas": strategy.num_replicas_in_sync,
        "steps": int(step.numpy()),
        "optimizer_iterations": int(optimizer.iterations.numpy()),
        "resumed_from_step": start_step,
        **_summary(model, step_losses.numpy(), config),
    }
    Path(spec["result_path"]).write_text(json.dumps(result))
    _mark("done")
    return 0


def _keras_fit_worker(strategy, config: TrainConfig, images, labels, order) -> int:
    """Keras's own loop under the strategy: fails in Keras 3 (keras-team/keras issue 20585)."""
    with strategy.scope():
        model = _build_model(config)
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    dataset = tf.data.Dataset.from_tensor_slices((images[order], labels[order])).batch(
        config.global_batch_size, drop_remainder=True
    )
    _mark("fit")
    model.fit(dataset, epochs=1, verbose=0)
    _mark("done")
    return 0


# ----------------------------------------------------------------------------- the job


def _check_workers(workers: int, config: TrainConfig) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"train: workers must be an integer >= 1, got {workers!r}.")
    if config.global_batch_size % workers:
        raise ValueError(
            f"train: global_batch_size={config.global_batch_size} must be a multiple of "
            f"workers={workers}, so that every worker gets an equal share of each batch."
        )


def _worker_commands(
    workdir: Path, workers: int, config: TrainConfig, mode: str, pause: tuple[int, int] | None
) -> tuple[list[list[str]], list[dict[str, str]], list[int]]:
    """Command lines and environments for one attempt, on fresh ports."""
    ports = free_ports(workers)
    package_parent = str(Path(__file__).resolve().parents[1])
    commands, envs = [], []
    for index in range(workers):
        spec = {
            "config": asdict(config),
            "index": index,
            "workers": workers,
            "mode": mode,
            "checkpoint_dir": str(workdir / "checkpoints"),
            "scratch_dir": str(workdir / "scratch"),
            "result_path": str(workdir / f"result-{index}.json"),
            "pause_after_step": pause[1] if pause and pause[0] == index else None,
            "launcher_pid": os.getpid(),
        }
        spec_path = workdir / f"spec-{index}.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps(tf_config(ports, index))
        # The workers import this very copy of the package.
        env["PYTHONPATH"] = os.pathsep.join(
            [package_parent, *filter(None, [env.get("PYTHONPATH")])]
        )
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # N workers on one machine would all claim the same GPU: they train on the CPU.
        env["CUDA_VISIBLE_DEVICES"] = ""
        commands.append(
            [sys.executable, "-m", "prelu_tutorial.distribute", "--worker-spec", str(spec_path)]
        )
        envs.append(env)
    return commands, envs, ports


def train(
    workers: int = 2,
    config: TrainConfig = TrainConfig(),
    *,
    kill_worker: int | None = None,
    at_step: int | None = None,
    max_restarts: int = 1,
    join_timeout: float = 180.0,
    stall_timeout: float = 120.0,
    timeout: float = 900.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Trains the PReLU network on ``workers`` processes of this machine; restarts on a death.

    Each attempt runs on fresh loopback ports. If a worker dies (or is killed
    on purpose with ``kill_worker``/``at_step``), the launcher stops the
    others and starts the job again, up to ``max_restarts`` times; the new job
    resumes from the chief's last checkpoint, so the steps after it are done
    again on the same batches, and the steps before it are not repeated.

    Args:
        workers: Number of worker processes; ``config.global_batch_size`` must
            be a multiple of it.
        config: What every worker trains.
        kill_worker: Index of a worker to SIGKILL once, right after step
            ``at_step`` (the worker holds still there so the kill lands at a
            known step). Give both or neither.
        at_step: See ``kill_worker``; between 1 and the number of steps - 1.
        max_restarts: How many times the job may be started again after a death.
        join_timeout: Seconds every worker has to join the cluster, per attempt.
        stall_timeout: Seconds a worker may go without finishing a step.
        timeout: Seconds one attempt may take.
        progress: Called with a line per epoch (from the chief) and per restart.

    Returns:
        The chief's results (``losses``, ``step_losses``, ``alphas``,
        ``weights``, ``replicas``, ``steps``, ``resumed_from_step``), plus
        ``workers``, ``per_worker`` (every worker's results),
        ``identical_across_workers`` (always ``True``: otherwise this raises),
        ``attempts`` (what ended each attempt) and ``wall_seconds``.

    Raises:
        ValueError: If an argument is out of range.
        WorkerError: If a worker died and no restart was left.
        WorkerTimeoutError: If a worker did not join or stalled.
        WorkersDisagreeError: If the workers finished with different weights.
    """
    _check_timeouts(
        "train", join_timeout=join_timeout, stall_timeout=stall_timeout, timeout=timeout
    )
    _check_workers(workers, config)
    steps = total_steps(config)
    if (kill_worker is None) != (at_step is None):
        raise ValueError(
            f"train: give kill_worker and at_step together, got kill_worker={kill_worker!r} "
            f"and at_step={at_step!r}."
        )
    if kill_worker is not None:
        if isinstance(kill_worker, bool) or not 0 <= kill_worker < workers:
            raise ValueError(
                f"train: kill_worker must be between 0 and {workers - 1}, got {kill_worker!r}."
            )
        if isinstance(at_step, bool) or not 1 <= at_step < steps:
            raise ValueError(f"train: at_step must be between 1 and {steps - 1}, got {at_step!r}.")
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise ValueError(f"train: max_restarts must be an integer >= 0, got {max_restarts!r}.")
    say = progress or (lambda line: None)
    start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="prelu-distribute-"))
    pause = None if kill_worker is None else (kill_worker, at_step)
    attempts: list[dict[str, Any]] = []
    try:
        for attempt in range(max_restarts + 1):
            commands, envs, ports = _worker_commands(workdir, workers, config, "custom_loop", pause)
            attempt_start = time.monotonic()
            record = {"ports": ports}
            attempts.append(record)
            try:
                outcome = run_workers(
                    commands,
                    envs,
                    workdir / f"logs-{attempt}",
                    join_timeout=join_timeout,
                    stall_timeout=stall_timeout,
                    timeout=timeout,
                    kill_worker=None if pause is None else pause[0],
                    at_step=None if pause is None else pause[1],
                    progress=say,
                )
            except WorkerError as error:
                record.update(ended=str(error).splitlines()[0])
                record["seconds"] = time.monotonic() - attempt_start
                if attempt == max_restarts:
                    raise
                say(f"{record['ended']}; restarting")
                continue
            record["seconds"] = time.monotonic() - attempt_start
            if outcome.killed is None:
                record["ended"] = "done"
                break
            worker, step = outcome.killed
            record["ended"] = f"worker {worker} killed with SIGKILL after step {step}"
            pause = None
            if attempt == max_restarts:
                raise WorkerError(worker, -signal.SIGKILL, outcome.killed_tail)
            say(f"{record['ended']}; restarting")
        results = [
            json.loads((workdir / f"result-{index}.json").read_text()) for index in range(workers)
        ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    chief = results[0]
    for other in results[1:]:
        if other["weights"] != chief["weights"] or other["step_losses"] != chief["step_losses"]:
            raise WorkersDisagreeError(
                f"worker {other['task_index']} finished with weights or losses that differ "
                "from the chief's."
            )
    return {
        **{key: value for key, value in chief.items() if key != "task_index"},
        "workers": workers,
        "per_worker": results,
        "identical_across_workers": True,
        "attempts": attempts,
        "wall_seconds": time.monotonic() - start,
    }


def keras_fit_failure(
    workers: int = 2, config: TrainConfig = TrainConfig(), *, join_timeout: float = 180.0
) -> WorkerError:
    """Runs Keras's ``Model.fit`` under ``MultiWorkerMirroredStrategy`` and returns its failure.

    With Keras 3 (checked with 3.15 and TensorFlow 2.21), ``fit`` does not
    support this strategy: every worker stops with ``ValueError: Attempt to
    convert a value (PerReplica:{...})`` (keras-team/keras issue 20585,
    tensorflow/tensorflow issue 72388). This is why :func:`train` writes its own loop.

    Args:
        workers: Number of worker processes.
        config: The model and data, as for :func:`train`.
        join_timeout: Seconds every worker has to join the cluster.

    Returns:
        The :class:`WorkerError` of the first worker seen to fail.

    Raises:
        RuntimeError: If ``fit`` succeeded on every worker (a newer Keras may fix it).
        WorkerTimeoutError: If a worker did not join.
    """
    _check_timeouts("keras_fit_failure", join_timeout=join_timeout)
    _check_workers(workers, config)
    workdir = Path(tempfile.mkdtemp(prefix="prelu-distribute-"))
    try:
        commands, envs, _ = _worker_commands(workdir, workers, config, "keras_fit", None)
        run_workers(commands, envs, workdir / "logs", join_timeout=join_timeout)
    except WorkerError as error:
        return error
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    raise RuntimeError(
        "keras_fit_failure: Model.fit ran under MultiWorkerMirroredStrategy on every worker; "
        f"this Keras ({keras.__version__}) supports it."
    )


# ----------------------------------------------------------------------------- the CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prelu_tutorial.distribute",
        description="Train a PReLU network on several worker processes of this machine "
        "(MultiWorkerMirroredStrategy on 127.0.0.1), optionally killing one to show the "
        "restart from a checkpoint.",
        epilog="Exit codes: 0 done, 2 bad arguments, 3 a worker failed, 4 a worker timed out, "
        "5 the workers disagree.",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default 3)")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch (default 64)")
    parser.add_argument(
        "--checkpoint-every", type=int, default=10, help="steps between checkpoints (default 10)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and shuffles")
    parser.add_argument("--json", metavar="PATH", help="write the results here as JSON")
    parser.add_argument("--kill-worker", type=int, metavar="I", help="SIGKILL worker I once ...")
    parser.add_argument("--at-step", type=int, metavar="S", help="... right after step S")
    parser.add_argument(
        "--max-restarts", type=int, default=1, help="restarts after a death (default 1)"
    )
    parser.add_argument(
        "--join-timeout", type=float, default=180.0, help="seconds to join (default 180)"
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds per attempt (default 900)"
    )
    parser.add_argument(
        "--keras-fit", action="store_true", help="show that Keras's fit fails instead of training"
    )
    parser.add_argument("--worker-spec", help=argparse.SUPPRESS)
    return parser


def _check_writable(path: str) -> None:
    """Fails before training if the results could not be written to ``path`` afterwards.

    Raises:
        ValueError: If ``path`` is a folder, or its folder is missing or not writable.
    """
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"--json: {path} is a folder; give a file path.")
    folder = target.parent
    if not folder.is_dir():
        raise ValueError(f"--json: the folder {folder} does not exist.")
    if target.exists() and not os.access(target, os.W_OK):
        raise ValueError(f"--json: {path} is not writable.")
    if not target.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--json: cannot create files in {folder}.")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (see the module docstring)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.worker_spec:
        return _worker_main(json.loads(Path(args.worker_spec).read_text()))
    try:
        if args.json:
            _check_writable(args.json)
        config = TrainConfig(
            epochs=args.epochs,
            global_batch_size=args.batch_size,
            checkpoint_every=args.checkpoint_every,
            seed=args.seed,
        )
        if args.keras_fit:
            failure = keras_fit_failure(args.workers, config, join_timeout=args.join_timeout)
            print(f"Model.fit failed as expected: {failure.exception}")
            return EXIT_OK
        print(f"Training on {args.workers} workers (127.0.0.1), {args.epochs} epochs.", flush=True)
        if can_isolate():
            print("The workers run in a network namespace whose one interface is loopback.")
        else:
            print(
                "warning: TensorFlow's gRPC servers listen on every interface (::) while the "
                "job runs; only root can isolate them in a network namespace. Run on a "
                "trusted network.",
                file=sys.stderr,
                flush=True,
            )
        result = train(
            args.workers,
            config,
            kill_worker=args.kill_worker,
            at_step=args.at_step,
            max_restarts=args.max_restarts,
            join_timeout=args.join_timeout,
            timeout=args.timeout,
            progress=lambda line: print(line, flush=True),
        )
    except (TypeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except DistributeError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(
        f"Done in {result['wall_seconds']:.1f} s: {result['replicas']} replicas, "
        f"resumed from step {result['resumed_from_step']}, alphas identical on every worker."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

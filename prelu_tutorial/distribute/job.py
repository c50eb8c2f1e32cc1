"""A multi-worker job: attempts on fresh ports, restarts after a death, results compared.

:func:`train` writes every worker's spec, starts the attempt through
:func:`prelu_tutorial.distribute.launcher.run_workers`, and when a worker
dies (or is killed on purpose) starts the job again; the new attempt resumes
from the chief's last checkpoint. At the end it checks that every worker holds
the same weights. :func:`keras_fit_failure` runs Keras's own ``fit`` the same
way, to show why the workers run a custom loop.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import keras

from prelu_tutorial._number_checks import check_int
from prelu_tutorial.distribute.launcher import (
    EXIT_DISAGREE,
    DistributeError,
    WorkerError,
    check_kill,
    check_timeouts,
    free_ports,
    run_workers,
    tf_config,
)
from prelu_tutorial.distribute.training import DEFAULT_CONFIG, TrainConfig, total_steps

__all__ = ["WorkersDisagreeError", "check_train_arguments", "keras_fit_failure", "train"]


class WorkersDisagreeError(DistributeError):
    """The workers finished, but their weights are not identical."""

    exit_code = EXIT_DISAGREE


def _check_workers(workers: int, config: TrainConfig, owner: str) -> None:
    check_int(workers, "workers", minimum=1, owner=owner)
    if config.global_batch_size % workers:
        raise ValueError(
            f"{owner}: global_batch_size={config.global_batch_size} must be a multiple of "
            f"workers={workers}, so that every worker gets an equal share of each batch."
        )


def check_train_arguments(
    workers: int,
    config: TrainConfig,
    *,
    kill_worker: int | None,
    at_step: int | None,
    max_restarts: int,
    join_timeout: float,
    stall_timeout: float,
    timeout: float,
) -> None:
    """Checks :func:`train`'s arguments, as it does before it starts a worker.

    :func:`train` holds the defaults and the meaning of each argument; this
    takes every one explicitly, so that a caller who must refuse bad input
    before announcing a job (the CLI) runs the very checks ``train`` runs.

    Args:
        workers, config, kill_worker, at_step, max_restarts, join_timeout,
        stall_timeout, timeout: As for :func:`train`.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If an argument is out of range (see :func:`train`).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train: config must be a TrainConfig, got {type(config).__name__}.")
    check_timeouts("train", join_timeout=join_timeout, stall_timeout=stall_timeout, timeout=timeout)
    _check_workers(workers, config, "train")
    check_kill(kill_worker, at_step, workers, owner="train", steps=total_steps(config))
    check_int(max_restarts, "max_restarts", owner="train")


def _worker_commands(
    workdir: Path, workers: int, config: TrainConfig, mode: str, pause: tuple[int, int] | None
) -> tuple[list[list[str]], list[dict[str, str]], list[int]]:
    """Command lines and environments for one attempt, on fresh ports."""
    ports = free_ports(workers)
    package_parent = str(Path(__file__).resolve().parents[2])
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
    config: TrainConfig = DEFAULT_CONFIG,
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
        ``weights``, ``replicas``, ``steps``, ``optimizer_iterations``,
        ``resumed_from_step``), plus ``workers``, ``per_worker`` (every
        worker's results), ``identical_across_workers`` (always ``True``:
        otherwise this raises), ``attempts`` (the ports and what ended each
        attempt) and ``wall_seconds``.

    Raises:
        TypeError, ValueError: If an argument is wrong; nothing has started then.
        WorkerError: If a worker died and no restart was left.
        WorkerTimeoutError: If a worker did not join or stalled.
        WorkersDisagreeError: If the workers finished with different weights.
    """
    check_train_arguments(
        workers,
        config,
        kill_worker=kill_worker,
        at_step=at_step,
        max_restarts=max_restarts,
        join_timeout=join_timeout,
        stall_timeout=stall_timeout,
        timeout=timeout,
    )
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
    workers: int = 2, config: TrainConfig = DEFAULT_CONFIG, *, join_timeout: float = 180.0
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
    check_timeouts("keras_fit_failure", join_timeout=join_timeout)
    _check_workers(workers, config, "keras_fit_failure")
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

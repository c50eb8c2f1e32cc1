"""prelu_tutorial.distribute.training and .job: real TensorFlow workers, their results, their ports.

The module-scoped fixture trains once on two workers; the tests read that run.
"""

import glob
import json
import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from processes import (
    command_line,
    descends_from,
    interfaces,
    listening,
    network_namespace,
    pids_running,
)
from tensorflow.python.framework import config as framework_config

from prelu_tutorial import distribute
from prelu_tutorial.data import digits
from prelu_tutorial.distribute import launcher, training

CONFIG = distribute.TrainConfig(epochs=3, checkpoint_every=10)
WORKER_COMMAND = b"prelu_tutorial.distribute --worker-spec"
DETERMINISM_AT_START = framework_config.is_op_determinism_enabled()


@pytest.fixture
def op_determinism():
    """Turns on op determinism for one test, and off again after it if it was off."""
    # TensorFlow's public API can only turn it on; the switch back is in its framework config.
    was_on = framework_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    yield
    if not was_on:
        framework_config.disable_op_determinism()


# ----------------------------------------------------------------------------- arguments


def test_train_digits_is_the_size_of_the_training_split():
    assert training.TRAIN_DIGITS == len(digits(seed=0)[0]) == len(digits(seed=7)[0])


@pytest.mark.parametrize(("batch", "epochs"), [(64, 3), (1347, 1), (100, 2), (1, 1)])
def test_total_steps_counts_the_whole_global_batches(batch, epochs):
    images = digits()[0]
    config = distribute.TrainConfig(epochs=epochs, global_batch_size=batch)
    assert distribute.total_steps(config) == (len(images) // batch) * epochs


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"epochs": 0}, ValueError, "TrainConfig: epochs must be an integer >= 1, got 0"),
        ({"global_batch_size": 1348}, ValueError, "global_batch_size must be at most 1347"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0, got -1"),
        ({"seed": 2**32}, ValueError, r"seed must be between 0 and 2\*\*32 - 1"),
        ({"seed": 1.5}, TypeError, "seed must be an integer"),
        ({"learning_rate": float("nan")}, ValueError, "learning_rate must be finite"),
        ({"hidden_units": (32, 0)}, ValueError, r"hidden_units\[1\] must be an integer >= 1"),
        ({"hidden_units": (32, True)}, TypeError, r"hidden_units\[1\] must be an integer"),
        ({"hidden_units": ()}, ValueError, "hidden_units must hold at least one"),
    ],
)
def test_train_config_names_the_bad_argument(arguments, error, message):
    with pytest.raises(error, match=message):
        distribute.TrainConfig(**arguments)


@pytest.mark.parametrize(
    ("workers", "arguments", "message"),
    [
        (3, {}, "global_batch_size=64 must be a multiple of workers=3"),
        (0, {}, "workers must be an integer >= 1, got 0"),
        (2, {"kill_worker": 1, "at_step": 63}, "at_step must be between 1 and 62, got 63"),
        (2, {"kill_worker": 2, "at_step": 5}, "kill_worker must be between 0 and 1"),
        (2, {"kill_worker": 1}, "give kill_worker and at_step together"),
        (2, {"max_restarts": -1}, "max_restarts must be an integer >= 0"),
        (2, {"stall_timeout": float("nan")}, "stall_timeout must be finite"),
    ],
)
def test_train_refuses_bad_arguments_before_any_worker_starts(
    monkeypatch, workers, arguments, message
):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a worker was started")

    monkeypatch.setattr(distribute.job, "run_workers", must_not_run)
    with pytest.raises(ValueError, match=message):
        distribute.train(workers, CONFIG, **arguments)


def workers_that_finish_with(monkeypatch, weights_per_worker):
    """Replaces the launcher: each worker 'finishes' at once, writing the given weights."""

    def finish(commands, envs, log_folder, **kwargs):
        for index, weights in enumerate(weights_per_worker):
            result = {"task_index": index, "weights": weights, "step_losses": [0.5]}
            (log_folder.parent / f"result-{index}.json").write_text(json.dumps(result))
        return launcher.Outcome(killed=None)

    monkeypatch.setattr(distribute.job, "run_workers", finish)


def test_train_raises_when_a_worker_ends_with_other_weights_than_the_chief(monkeypatch):
    workers_that_finish_with(monkeypatch, [[1.0, 2.0], [1.0, 2.0], [1.0, 2.5]])
    with pytest.raises(distribute.WorkersDisagreeError, match="worker 2 finished with weights"):
        distribute.train(3, distribute.TrainConfig(global_batch_size=63))


def test_train_returns_the_chiefs_result_when_every_worker_agrees(monkeypatch):
    workers_that_finish_with(monkeypatch, [[1.0, 2.0], [1.0, 2.0]])
    result = distribute.train(2, CONFIG)
    assert result["weights"] == [1.0, 2.0] and result["identical_across_workers"]
    assert [worker["task_index"] for worker in result["per_worker"]] == [0, 1]


# ----------------------------------------------------------------------------- one process


def test_one_process_trains_every_batch_once(op_determinism):
    config = distribute.TrainConfig(epochs=1, global_batch_size=128, hidden_units=(8,))
    result = distribute.train_single_process(config)
    assert result["steps"] == len(result["step_losses"]) == 1347 // 128
    assert result["losses"] == [pytest.approx(np.mean(result["step_losses"]), rel=1e-12)]
    assert sorted(result["alphas"]) == ["prelu_0"] and len(result["alphas"]["prelu_0"]) == 8


def test_op_determinism_is_restored_after_a_test_that_needs_it():
    # Runs after the test above, in file order: the fixture put the setting back.
    assert framework_config.is_op_determinism_enabled() == DETERMINISM_AT_START


# ----------------------------------------------------------------------------- two workers


def own_workers() -> dict[int, bytes]:
    """The workers this process started, by pid, with their command lines.

    Other test runs on a shared machine start workers of their own; each
    command line names its job's spec file, so it stays this job's after the
    worker has been reparented.
    """
    return {
        pid: command_line(pid)
        for pid in pids_running(WORKER_COMMAND)
        if descends_from(pid, os.getpid())
    }


def none_running(commands: set[bytes]) -> bool:
    """Whether no process runs any of ``commands`` any more (and there were some)."""
    return bool(commands) and not any(pids_running(command) for command in commands)


@pytest.fixture(scope="module")
def two_workers():
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "prelu-distribute-*")))
    seen = []

    def look_at_the_workers(line):
        # Called from the launcher's loop while every worker is alive and listening.
        if not seen:
            seen.extend(
                {
                    "pid": pid,
                    "command": command,
                    "namespace": network_namespace(f"/proc/{pid}"),
                    "interfaces": interfaces(f"/proc/{pid}"),
                    "listening": listening(f"/proc/{pid}"),
                }
                for pid, command in own_workers().items()
            )

    result = distribute.train(2, CONFIG, progress=look_at_the_workers)
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "prelu-distribute-*")))
    result["left_behind"] = after - before
    result["seen"] = seen
    return result


def test_two_workers_each_see_two_replicas_and_end_identical(two_workers):
    assert [w["replicas"] for w in two_workers["per_worker"]] == [2, 2]
    chief, other = two_workers["per_worker"]
    assert chief["alphas"] == other["alphas"] and chief["weights"] == other["weights"]
    assert sorted(chief["alphas"]) == ["prelu_0", "prelu_1"]
    assert [len(alpha) for alpha in chief["alphas"].values()] == list(CONFIG.hidden_units)


def test_two_workers_train_every_step_once_and_learn(two_workers):
    steps = distribute.total_steps(CONFIG)
    assert two_workers["steps"] == two_workers["optimizer_iterations"] == steps
    assert two_workers["losses"][-1] < two_workers["losses"][0] / 2


def test_two_workers_leave_no_process_and_no_directory_behind(two_workers):
    assert none_running({worker["command"] for worker in two_workers["seen"]})
    assert two_workers["left_behind"] == set()


def test_the_workers_grpc_servers_are_unreachable_from_this_namespace(two_workers):
    ports = set(two_workers["attempts"][0]["ports"])
    assert len(two_workers["seen"]) == 2
    for worker in two_workers["seen"]:
        # Each worker listens on its port (TensorFlow binds every interface of its namespace).
        assert ports & {port for _, port in worker["listening"]}
    if not launcher.can_isolate():
        pytest.skip("this system cannot make a network namespace; the CLI warns instead")
    for worker in two_workers["seen"]:
        assert worker["namespace"] != network_namespace()
        assert worker["interfaces"] == {"lo"}
    # Here no socket listens on the workers' ports: nothing outside their namespace reaches them.
    assert not ports & {port for _, port in listening()}


def test_two_workers_match_one_process_on_the_same_global_batches(two_workers, op_determinism):
    reference = distribute.train_single_process(CONFIG)
    assert reference["weights"].keys() == two_workers["weights"].keys()
    for path, values in reference["weights"].items():
        np.testing.assert_allclose(two_workers["weights"][path], values, rtol=0, atol=1e-5)
    np.testing.assert_allclose(two_workers["step_losses"], reference["step_losses"], atol=1e-5)


def test_a_killed_worker_resumes_to_the_bit_identical_result(two_workers):
    lines, commands = [], set()

    def progress(line):
        lines.append(line)
        commands.update(own_workers().values())

    killed = distribute.train(2, CONFIG, kill_worker=1, at_step=25, progress=progress)
    assert [attempt["ended"] for attempt in killed["attempts"]] == [
        "worker 1 killed with SIGKILL after step 25",
        "done",
    ]
    assert "worker 1 killed with SIGKILL after step 25; restarting" in lines
    assert killed["resumed_from_step"] == 20
    assert killed["optimizer_iterations"] == two_workers["optimizer_iterations"]
    assert killed["weights"] == two_workers["weights"]
    assert killed["step_losses"] == two_workers["step_losses"]
    assert none_running(commands)

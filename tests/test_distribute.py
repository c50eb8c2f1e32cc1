"""prelu_tutorial.distribute: the loopback launcher, its bounds, and multi-worker training.

The launcher tests run small fake workers (plain Python, no TensorFlow) that
speak the launcher's log protocol, so joins, deaths, hangs and cleanup are
checked in seconds. The training tests start real TensorFlow workers.
"""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from prelu_tutorial import distribute

MARKER = distribute.MARKER


def fake_worker(body: str) -> list[str]:
    """A worker command that runs ``body`` with ``mark(kind, text)`` and TF_CONFIG at hand."""
    prelude = textwrap.dedent(
        f"""
        import json, os, subprocess, sys, time
        def mark(kind, text=""):
            print({MARKER!r} + kind + " " + str(text), flush=True)
        config = json.loads(os.environ.get("TF_CONFIG", "{{}}"))
        """
    )
    return [sys.executable, "-c", prelude + textwrap.dedent(body)]


def alive(pid: int) -> bool:
    """True if the process exists and is not a zombie; read from /proc (no psutil)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def listening_ports() -> set[int]:
    """Every TCP port something listens on, from /proc/net/tcp and tcp6 (state 0A)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def run(bodies, tmp_path, **kwargs):
    envs = [dict(os.environ, TF_CONFIG=json.dumps(config)) for config in kwargs.pop("configs")]
    return distribute.run_workers(
        [fake_worker(body) for body in bodies], envs, tmp_path / "logs", **kwargs
    )


def loopback_configs(count):
    ports = distribute.free_ports(count)
    return [distribute.tf_config(ports, index) for index in range(count)]


# ----------------------------------------------------------------------------- the cluster


def test_free_ports_are_distinct_and_bindable_on_loopback():
    ports = distribute.free_ports(4)
    assert len(set(ports)) == 4
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_free_ports_rejects_a_count_below_one():
    with pytest.raises(ValueError, match="count must be an integer >= 1, got 0"):
        distribute.free_ports(0)


def test_tf_config_lists_every_worker_on_loopback_and_its_own_index():
    config = distribute.tf_config([1111, 2222, 3333], 2)
    assert config == {
        "cluster": {"worker": ["127.0.0.1:1111", "127.0.0.1:2222", "127.0.0.1:3333"]},
        "task": {"type": "worker", "index": 2},
    }


def test_tf_config_rejects_repeated_ports():
    with pytest.raises(ValueError, match=r"ports must be distinct.*\[5, 5\]"):
        distribute.tf_config([5, 5], 0)


def test_tf_config_rejects_an_index_outside_the_cluster():
    with pytest.raises(ValueError, match="index must be between 0 and 1, got 2"):
        distribute.tf_config([5, 6], 2)


def test_train_config_rejects_zero_epochs():
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        distribute.TrainConfig(epochs=0)


def test_train_rejects_a_global_batch_that_the_workers_cannot_split_evenly():
    with pytest.raises(ValueError, match="global_batch_size=64 must be a multiple of workers=3"):
        distribute.train(3, distribute.TrainConfig())


def test_train_rejects_a_kill_step_outside_the_run():
    steps = distribute.total_steps(distribute.TrainConfig())
    with pytest.raises(ValueError, match=f"at_step must be between 1 and {steps - 1}"):
        distribute.train(2, kill_worker=1, at_step=steps)


# ----------------------------------------------------------------------------- the launcher


def test_each_worker_sees_its_own_tf_config(tmp_path):
    configs = loopback_configs(3)
    body = """
    mark("started"); mark("joined")
    open(os.environ["OUT"], "w").write(json.dumps(config))
    mark("done")
    """
    envs = [
        dict(os.environ, TF_CONFIG=json.dumps(config), OUT=str(tmp_path / f"seen-{index}.json"))
        for index, config in enumerate(configs)
    ]
    outcome = distribute.run_workers(
        [fake_worker(body)] * 3, envs, tmp_path / "logs", join_timeout=20
    )
    assert outcome.killed is None
    for index, config in enumerate(configs):
        assert json.loads((tmp_path / f"seen-{index}.json").read_text()) == config


def test_a_worker_that_dies_stops_every_worker_and_is_named_with_its_error_and_log(tmp_path):
    pids_file = tmp_path / "pids"
    waiting = f"""
    mark("started"); mark("joined")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    open({str(pids_file)!r}, "a").write(f"{{os.getpid()}} {{child.pid}}\\n")
    time.sleep(60)
    """
    dying = """
    mark("started"); mark("joined")
    print("loading the batch for step 3", flush=True)
    time.sleep(0.5)
    raise ValueError("boom at step 3\\n" + "\\n".join(f"detail {i}" for i in range(300)))
    """
    start = time.monotonic()
    with pytest.raises(distribute.WorkerError) as caught:
        run(
            [waiting, dying],
            tmp_path,
            configs=loopback_configs(2),
            join_timeout=20,
            stall_timeout=30,
        )
    assert time.monotonic() - start < 15
    error = caught.value
    assert (error.worker, error.returncode) == (1, 1)
    assert error.exception == "ValueError: boom at step 3"
    assert error.log_tail[-1] == "detail 299"
    assert str(error).startswith("worker 1 exited 1; its last log lines:")
    pids = [int(pid) for pid in pids_file.read_text().split()]
    assert len(pids) == 2 and not any(alive(pid) for pid in pids)


def test_a_worker_that_never_starts_is_named_after_the_join_timeout(tmp_path):
    joining = 'mark("started"); time.sleep(60)'
    stuck = 'print("importing a large library", flush=True); time.sleep(60)'
    start = time.monotonic()
    with pytest.raises(distribute.WorkerTimeoutError) as caught:
        run([joining, stuck], tmp_path, configs=loopback_configs(2), join_timeout=1.5)
    assert 1.5 <= time.monotonic() - start < 10
    assert caught.value.worker == 1
    assert "worker 1 did not start within 1.5 s" in str(caught.value)
    assert caught.value.log_tail == ["importing a large library"]


def test_a_worker_that_stalls_after_joining_is_named_after_the_stall_timeout(tmp_path):
    steady = """
    mark("started"); mark("joined")
    for step in range(1, 200):
        mark("step", step); time.sleep(0.1)
    """
    stalling = 'mark("started"); mark("joined"); mark("step", 1); time.sleep(60)'
    start = time.monotonic()
    with pytest.raises(distribute.WorkerTimeoutError) as caught:
        run(
            [steady, stalling],
            tmp_path,
            configs=loopback_configs(2),
            join_timeout=20,
            stall_timeout=1.5,
        )
    assert time.monotonic() - start < 10
    assert caught.value.worker == 1
    assert "made no progress for 1.5 s (last step 1)" in str(caught.value)


def test_ports_are_free_again_after_a_failed_job(tmp_path):
    configs = loopback_configs(2)
    ports = [int(a.rsplit(":", 1)[1]) for a in configs[0]["cluster"]["worker"]]
    listening = """
    import socket
    address = config["cluster"]["worker"][config["task"]["index"]]
    server = socket.socket(); server.bind(("127.0.0.1", int(address.rsplit(":", 1)[1])))
    server.listen()
    mark("started"); time.sleep(60)
    """
    deadline = time.monotonic() + 10
    with pytest.raises(distribute.WorkerTimeoutError):
        run([listening] * 2, tmp_path, configs=configs, join_timeout=1.5)
    while set(ports) & listening_ports() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not set(ports) & listening_ports()
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_kill_worker_sigkills_the_worker_paused_after_the_step(tmp_path):
    pids_file = tmp_path / "pids"
    body = f"""
    mark("started"); mark("joined")
    open({str(pids_file)!r}, "a").write(f"{{os.getpid()}}\\n")
    for step in range(1, 6):
        mark("step", step)
        if step == 3 and config["task"]["index"] == 1:
            mark("paused", step); time.sleep(60)
        time.sleep(0.05)
    time.sleep(60)
    """
    outcome = run(
        [body, body],
        tmp_path,
        configs=loopback_configs(2),
        join_timeout=20,
        kill_worker=1,
        at_step=3,
    )
    assert outcome.killed == (1, 3)
    pids = [int(pid) for pid in pids_file.read_text().split()]
    assert not any(alive(pid) for pid in pids)


def test_cli_returns_2_for_an_uneven_split():
    assert distribute.main(["--workers", "3", "--batch-size", "64"]) == distribute.EXIT_USAGE


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (distribute.WorkerError(1, -9, ["last line"]), 3),
        (distribute.WorkerTimeoutError(0, "did not join within 1 s", []), 4),
        (distribute.WorkersDisagreeError("worker 1 differs"), 5),
    ],
)
def test_cli_exit_code_says_what_failed(monkeypatch, capsys, error, code):
    def failing_train(*args, **kwargs):
        raise error

    monkeypatch.setattr(distribute, "train", failing_train)
    assert distribute.main(["--workers", "2"]) == code
    assert str(error).splitlines()[0] in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--timeout", "nan"],
        ["--timeout", "-5"],
        ["--join-timeout", "inf"],
        ["--join-timeout", "-1"],
        ["--seed", "-1"],
        ["--json", "/proc/no-such-folder/result.json"],
        ["--json", "."],
    ],
    ids=str,
)
def test_cli_refuses_bad_arguments_before_any_worker_starts(monkeypatch, capsys, argv):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a worker was started")

    monkeypatch.setattr(distribute, "run_workers", must_not_run)
    assert distribute.main(["--workers", "2", *argv]) == distribute.EXIT_USAGE
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 0.0, -1.0])
def test_run_workers_refuses_a_timeout_that_is_not_finite_and_positive(tmp_path, timeout):
    with pytest.raises(ValueError, match="timeout"):
        run(["mark('done')"], tmp_path, configs=loopback_configs(1), timeout=timeout)


@pytest.mark.skipif(not distribute.can_isolate(), reason="needs root, unshare and nsenter")
def test_isolated_workers_see_only_loopback_and_still_reach_each_other(tmp_path):
    body = """
    import socket
    port = int(config["cluster"]["worker"][config["task"]["index"]].rsplit(":", 1)[1])
    server = socket.socket(socket.AF_INET6)
    server.bind(("::", port))  # every interface, as TensorFlow's gRPC server binds
    server.listen()
    mark("started"); mark("joined")
    other = config["cluster"]["worker"][1 - config["task"]["index"]].rsplit(":", 1)[1]
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", int(other)), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise SystemExit("could not reach the other worker")
    server.settimeout(20)
    server.accept()  # the other worker reached this one too
    print("interfaces", sorted(name for _, name in socket.if_nameindex()), flush=True)
    mark("done")
    """
    run([body] * 2, tmp_path, configs=loopback_configs(2), join_timeout=30, isolate=True)
    for index in range(2):
        log = (tmp_path / "logs" / f"worker-{index}.log").read_text()
        assert "interfaces ['lo']" in log, log


SLEEPING_WORKER = (
    "import os, pathlib, sys, time; "
    "pathlib.Path(sys.argv[1], str(os.getpid())).touch(); time.sleep(300)"
)

LAUNCHER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from prelu_tutorial import distribute

    folder, worker = Path(sys.argv[1]), sys.argv[2]
    ports = distribute.free_ports(2)
    envs = [dict(os.environ, TF_CONFIG=json.dumps(distribute.tf_config(ports, i))) for i in (0, 1)]
    command = [sys.executable, "-c", worker, str(folder)]
    distribute.run_workers([command] * 2, envs, folder / "logs", join_timeout=600)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_die_with_their_launcher_on_any_signal(tmp_path, sig):
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(tmp_path), SLEEPING_WORKER])
    workers = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline and launcher.poll() is None:
            workers = [int(path.name) for path in tmp_path.iterdir() if path.name.isdigit()]
            time.sleep(0.2)
        assert len(workers) == 2, "the workers did not start within 120 s"
        launcher.send_signal(sig)
        launcher.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers), "a worker outlived its launcher"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(timeout=30)
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


# ----------------------------------------------------------------------------- training

CONFIG = distribute.TrainConfig(epochs=3, checkpoint_every=10)


def worker_processes() -> list[int]:
    """Pids of every process that runs a worker of this module, read from /proc."""
    pids = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            text = Path(cmdline).read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"prelu_tutorial.distribute --worker-spec" in text:
            pids.append(int(cmdline.split("/")[2]))
    return [pid for pid in pids if alive(pid)]


@pytest.fixture(scope="module")
def two_workers():
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "prelu-distribute-*")))
    result = distribute.train(2, CONFIG)
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "prelu-distribute-*")))
    result["left_behind"] = after - before
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
    assert worker_processes() == []
    assert two_workers["left_behind"] == set()


def test_two_workers_match_one_process_on_the_same_global_batches(two_workers):
    tf.config.experimental.enable_op_determinism()
    reference = distribute.train_single_process(CONFIG)
    assert reference["weights"].keys() == two_workers["weights"].keys()
    for path, values in reference["weights"].items():
        np.testing.assert_allclose(two_workers["weights"][path], values, rtol=0, atol=1e-5)
    np.testing.assert_allclose(two_workers["step_losses"], reference["step_losses"], atol=1e-5)


def test_a_killed_worker_resumes_to_the_bit_identical_result(two_workers):
    killed = distribute.train(2, CONFIG, kill_worker=1, at_step=25)
    assert [attempt["ended"] for attempt in killed["attempts"]] == [
        "worker 1 killed with SIGKILL after step 25",
        "done",
    ]
    assert killed["resumed_from_step"] == 20
    assert killed["optimizer_iterations"] == two_workers["optimizer_iterations"]
    assert killed["weights"] == two_workers["weights"]
    assert killed["step_losses"] == two_workers["step_losses"]
    assert worker_processes() == []

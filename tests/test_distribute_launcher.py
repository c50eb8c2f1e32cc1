"""prelu_tutorial.distribute.launcher: starting, bounding and stopping worker processes.

Every test here runs small fake workers (plain Python, no TensorFlow) that
speak the launcher's report protocol, so joins, deaths, hangs, cleanup and the
network namespace are checked in seconds.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from processes import alive, interfaces, listening, network_namespace

from prelu_tutorial.distribute import launcher

PACKAGE = Path(launcher.__file__).resolve().parents[1]


def fake_worker(body: str) -> list[str]:
    """A worker command that runs ``body`` with ``mark(kind, text)`` and TF_CONFIG at hand."""
    prelude = textwrap.dedent(
        f"""
        import json, os, subprocess, sys, time
        def mark(kind, text=""):
            print({launcher.MARKER!r} + kind + " " + str(text), flush=True)
        config = json.loads(os.environ.get("TF_CONFIG", "{{}}"))
        """
    )
    return [sys.executable, "-c", prelude + textwrap.dedent(body)]


def run(bodies, tmp_path, **kwargs):
    envs = [dict(os.environ, TF_CONFIG=json.dumps(config)) for config in kwargs.pop("configs")]
    return launcher.run_workers(
        [fake_worker(body) for body in bodies], envs, tmp_path / "logs", **kwargs
    )


def loopback_configs(count):
    ports = launcher.free_ports(count)
    return [launcher.tf_config(ports, index) for index in range(count)]


# ----------------------------------------------------------------------------- no TensorFlow

ALONE = textwrap.dedent(
    f"""
    import importlib, sys, types
    # The parent packages' __init__ files import TensorFlow on purpose (the
    # public face); stand-ins let a module of the package be imported alone.
    for name, folder in (("prelu_tutorial", {str(PACKAGE)!r}),
                         ("prelu_tutorial.distribute", {str(PACKAGE / "distribute")!r})):
        package = types.ModuleType(name)
        package.__path__ = [folder]
        sys.modules[name] = package
    """
)
"""Code that makes ``import prelu_tutorial.distribute.launcher`` load that module alone."""

IMPORT_ALONE = (
    ALONE
    + """
importlib.import_module(sys.argv[1])
print(sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras"}))
"""
)


@pytest.mark.parametrize(
    ("module", "loads"),
    [("launcher", "[]"), ("training", "['keras', 'tensorflow']")],
)
def test_the_launcher_alone_imports_no_tensorflow(module, loads):
    # The training module is the control: the same import does load TensorFlow there.
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALONE, f"prelu_tutorial.distribute.{module}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == loads


# ----------------------------------------------------------------------------- the cluster


def test_free_ports_are_distinct_and_bindable_on_loopback():
    ports = launcher.free_ports(4)
    assert len(set(ports)) == 4
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_free_ports_rejects_a_count_below_one():
    with pytest.raises(ValueError, match="free_ports: count must be an integer >= 1, got 0"):
        launcher.free_ports(0)


def test_tf_config_lists_every_worker_on_loopback_and_its_own_index():
    config = launcher.tf_config([1111, 2222, 3333], 2)
    assert config == {
        "cluster": {"worker": ["127.0.0.1:1111", "127.0.0.1:2222", "127.0.0.1:3333"]},
        "task": {"type": "worker", "index": 2},
    }


def test_tf_config_rejects_repeated_ports():
    with pytest.raises(ValueError, match=r"ports must be distinct.*\[5, 5\]"):
        launcher.tf_config([5, 5], 0)


def test_tf_config_rejects_an_index_outside_the_cluster():
    with pytest.raises(ValueError, match="index must be between 0 and 1, got 2"):
        launcher.tf_config([5, 6], 2)
    with pytest.raises(ValueError, match="index must be an integer >= 0, got -1"):
        launcher.tf_config([5, 6], -1)


@pytest.mark.parametrize("index", [True, 1.0, "1"], ids=repr)
def test_tf_config_rejects_an_index_that_is_not_an_integer(index):
    with pytest.raises(TypeError, match="tf_config: index must be an integer"):
        launcher.tf_config([5, 6], index)


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), 0.0, -1.0])
def test_run_workers_refuses_a_timeout_that_is_not_finite_and_positive(tmp_path, timeout):
    with pytest.raises(ValueError, match="run_workers: timeout must be"):
        run(["mark('done')"], tmp_path, configs=loopback_configs(1), timeout=timeout)
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    ("kill_worker", "at_step", "message"),
    [
        (1, None, "give kill_worker and at_step together"),
        (2, 3, "kill_worker must be between 0 and 1, got 2"),
        (True, 3, "kill_worker must be an integer"),
        (0, 0, "at_step must be an integer >= 1, got 0"),
    ],
)
def test_run_workers_refuses_a_kill_it_cannot_carry_out(tmp_path, kill_worker, at_step, message):
    with pytest.raises((TypeError, ValueError), match=message):
        run(
            ["mark('done')"] * 2,
            tmp_path,
            configs=loopback_configs(2),
            kill_worker=kill_worker,
            at_step=at_step,
        )
    assert not (tmp_path / "logs").exists()


def test_run_workers_refuses_commands_without_one_environment_each(tmp_path):
    with pytest.raises(ValueError, match="2 commands and 1 environments"):
        launcher.run_workers([fake_worker("")] * 2, [dict(os.environ)], tmp_path)


# ----------------------------------------------------------------------------- supervising


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
    outcome = launcher.run_workers(
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
    with pytest.raises(launcher.WorkerError) as caught:
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
    with pytest.raises(launcher.WorkerTimeoutError) as caught:
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
    with pytest.raises(launcher.WorkerTimeoutError) as caught:
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


def test_an_attempt_that_outlasts_its_timeout_names_the_slowest_worker(tmp_path):
    fast = 'mark("started"); mark("joined"); mark("step", 5); time.sleep(60)'
    slow = 'mark("started"); mark("joined"); mark("step", 2); time.sleep(60)'
    start = time.monotonic()
    with pytest.raises(launcher.WorkerTimeoutError) as caught:
        run([fast, slow], tmp_path, configs=loopback_configs(2), join_timeout=20, timeout=1.5)
    assert time.monotonic() - start < 10
    assert caught.value.worker == 1
    assert "did not finish within 1.5 s" in str(caught.value)


def test_ports_are_free_again_after_a_failed_job(tmp_path):
    configs = loopback_configs(2)
    ports = {int(a.rsplit(":", 1)[1]) for a in configs[0]["cluster"]["worker"]}
    body = """
    import socket
    address = config["cluster"]["worker"][config["task"]["index"]]
    server = socket.socket(); server.bind(("127.0.0.1", int(address.rsplit(":", 1)[1])))
    server.listen()
    mark("started"); time.sleep(60)
    """
    with pytest.raises(launcher.WorkerTimeoutError):
        run([body] * 2, tmp_path, configs=configs, join_timeout=1.5, isolate=False)
    deadline = time.monotonic() + 10
    while ports & {port for _, port in listening()} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not ports & {port for _, port in listening()}
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


def test_only_the_chiefs_epoch_lines_reach_progress(tmp_path):
    body = """
    mark("started"); mark("joined")
    mark("epoch", f"epoch 1 from worker {config['task']['index']}")
    mark("done")
    """
    lines = []
    run([body] * 2, tmp_path, configs=loopback_configs(2), join_timeout=20, progress=lines.append)
    assert lines == ["epoch 1 from worker 0"]


# ----------------------------------------------------------------------------- loopback only

needs_namespaces = pytest.mark.skipif(
    not launcher.can_isolate(), reason="this system cannot make a network namespace"
)

REACH_EACH_OTHER = """
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
print("namespace", os.readlink("/proc/self/ns/net"), flush=True)
mark("done")
"""


@needs_namespaces
@pytest.mark.parametrize("user_namespace", [False, True], ids=["net", "user+net"])
def test_isolated_workers_see_only_loopback_and_still_reach_each_other(tmp_path, user_namespace):
    namespace = launcher.LoopbackNamespace(user_namespace=user_namespace)
    try:
        envs = [dict(os.environ, TF_CONFIG=json.dumps(c)) for c in loopback_configs(2)]
        prepare = namespace.join_before_exec(os.getpid())
        processes = [
            subprocess.Popen(
                fake_worker(REACH_EACH_OTHER),
                env=env,
                stdout=subprocess.PIPE,
                text=True,
                preexec_fn=prepare,
            )
            for env in envs
        ]
        outputs = [process.communicate(timeout=60)[0] for process in processes]
    finally:
        namespace.close()
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
        assert "interfaces ['lo']" in output
        assert f"namespace {network_namespace()}" not in output


@needs_namespaces
def test_run_workers_isolates_where_it_can(tmp_path):
    run([REACH_EACH_OTHER] * 2, tmp_path, configs=loopback_configs(2), join_timeout=30)
    for index in range(2):
        log = (tmp_path / "logs" / f"worker-{index}.log").read_text()
        assert "interfaces ['lo']" in log, log


def test_without_isolation_the_workers_share_this_namespace(tmp_path):
    run(
        [REACH_EACH_OTHER] * 2,
        tmp_path,
        configs=loopback_configs(2),
        join_timeout=30,
        isolate=False,
    )
    log = (tmp_path / "logs" / "worker-0.log").read_text()
    assert f"namespace {network_namespace()}" in log
    assert f"interfaces {sorted(interfaces())}" in log


def test_a_namespace_that_cannot_be_made_is_an_os_error_that_says_why(monkeypatch):
    monkeypatch.setattr(launcher, "_HOLDER", "import sys; sys.exit('unshare: not allowed here')")
    with pytest.raises(OSError, match="did not come up: unshare: not allowed here"):
        launcher.LoopbackNamespace()


# ----------------------------------------------------------------------------- dying together

SLEEPING_WORKER = (
    "import os, pathlib, sys, time; "
    "pathlib.Path(sys.argv[1], str(os.getpid())).touch(); time.sleep(300)"
)

LAUNCHER = ALONE + textwrap.dedent(
    """
    import functools, json, os
    from pathlib import Path
    from prelu_tutorial.distribute import launcher

    folder, worker, network = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    if network == "user+net":
        launcher.LoopbackNamespace = functools.partial(
            launcher.LoopbackNamespace, user_namespace=True
        )
    ports = launcher.free_ports(2)
    envs = [dict(os.environ, TF_CONFIG=json.dumps(launcher.tf_config(ports, i))) for i in (0, 1)]
    command = [sys.executable, "-c", worker, str(folder)]
    launcher.run_workers(
        [command] * 2, envs, folder / "logs", join_timeout=600, isolate=network != "shared"
    )
    """
)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize(
    "network",
    [
        "shared",
        pytest.param("net", marks=needs_namespaces),
        pytest.param("user+net", marks=needs_namespaces),
    ],
)
def test_workers_die_with_their_launcher_on_any_signal(tmp_path, sig, network):
    # The fake workers do not watch their parent: only the death signal can end them.
    launcher_process = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(tmp_path), SLEEPING_WORKER, network]
    )
    workers = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline and launcher_process.poll() is None:
            workers = [int(path.name) for path in tmp_path.iterdir() if path.name.isdigit()]
            time.sleep(0.2)
        assert len(workers) == 2, "the workers did not start within 120 s"
        launcher_process.send_signal(sig)
        launcher_process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers), "a worker outlived its launcher"
    finally:
        if launcher_process.poll() is None:
            launcher_process.kill()
            launcher_process.wait(timeout=30)
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_watching_its_launcher_ends_when_the_launcher_is_gone(tmp_path):
    # The fallback where PR_SET_PDEATHSIG is missing: a middle process starts a
    # grandchild that watches it (no death signal set), then exits.
    watching = ALONE + textwrap.dedent(
        """
        import os, time
        from prelu_tutorial.distribute import launcher
        launcher.watch_launcher(os.getppid(), every_seconds=0.1)
        print(os.getpid(), flush=True)
        time.sleep(60)
        """
    )
    middle = textwrap.dedent(
        f"""
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", {watching!r}], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
        print(child.stdout.readline().strip(), flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", middle], capture_output=True, text=True, timeout=120
    )
    grandchild = int(result.stdout.split()[-1])
    deadline = time.monotonic() + 10
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert not alive(grandchild)
    finally:
        if alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)

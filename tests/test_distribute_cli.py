"""python -m prelu_tutorial.distribute: arguments checked first, exit codes, what it prints.

Training itself is replaced by stand-ins here; tests/test_distribute_training.py
runs real workers.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prelu_tutorial.distribute import cli, job, launcher

RESULT = {"wall_seconds": 1.0, "replicas": 2, "resumed_from_step": 0, "losses": [0.5]}


@pytest.fixture
def no_workers(monkeypatch):
    """Fails the test if anything would start a worker."""

    def must_not_run(*args, **kwargs):
        raise AssertionError("a worker was started")

    monkeypatch.setattr(job, "run_workers", must_not_run)
    monkeypatch.setattr(job, "train", must_not_run)
    monkeypatch.setattr(job, "keras_fit_failure", must_not_run)


@pytest.fixture
def fake_train(monkeypatch):
    """Stands in for training: records its arguments and returns RESULT."""
    calls = []

    def train(*args, **kwargs):
        calls.append((args, kwargs))
        return RESULT

    monkeypatch.setattr(job, "train", train)
    return calls


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "3"], "global_batch_size=64 must be a multiple of workers=3"),
        (["--workers", "0"], "workers must be an integer >= 1, got 0"),
        (["--timeout", "nan"], "timeout must be finite"),
        (["--timeout", "-5"], "timeout must be > 0.0"),
        (["--join-timeout", "inf"], "join_timeout must be finite"),
        (["--join-timeout", "-1"], "join_timeout must be > 0.0"),
        (["--stall-timeout", "0"], "stall_timeout must be > 0.0"),
        (["--seed", "-1"], "seed must be an integer >= 0, got -1"),
        (["--seed", str(2**32)], "seed must be between 0 and 2**32 - 1"),
        (["--batch-size", "5000"], "global_batch_size must be at most 1347"),
        (["--epochs", "0"], "epochs must be an integer >= 1, got 0"),
        (["--kill-worker", "1"], "give kill_worker and at_step together"),
        (["--kill-worker", "1", "--at-step", "63"], "at_step must be between 1 and 62"),
        (["--kill-worker", "2", "--at-step", "5"], "kill_worker must be between 0 and 1"),
        (["--max-restarts", "-1"], "max_restarts must be an integer >= 0"),
        (["--json", "/proc/no-such-folder/result.json"], "the folder /proc/no-such-folder"),
        (["--json", "."], "is a folder"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_cli_refuses_bad_arguments_before_any_worker_starts(no_workers, capsys, argv, message):
    assert cli.main(["--workers", "2", *argv]) == 2  # the last --workers counts
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and message in err
    assert out == ""  # nothing announced a training that never began


@pytest.mark.parametrize("path", ["/proc/version", "/sys/result.json"])
def test_cli_refuses_a_json_path_it_cannot_write_even_as_root(no_workers, capsys, path):
    assert cli.main(["--json", path]) == 2
    assert f"error: --json: cannot write {path}: " in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only file")
def test_cli_refuses_a_read_only_json_file(no_workers, capsys, tmp_path):
    target = tmp_path / "result.json"
    target.write_text("{}")
    target.chmod(0o444)
    assert cli.main(["--json", str(target)]) == 2
    assert "Permission denied" in capsys.readouterr().err


def test_checking_the_json_path_leaves_no_file_behind(no_workers, tmp_path):
    target = tmp_path / "result.json"
    assert cli.main(["--json", str(target), "--workers", "3"]) == 2
    assert not target.exists()


def test_cli_writes_the_results_to_json_and_passes_every_argument(fake_train, tmp_path):
    target = tmp_path / "result.json"
    argv = ["--workers", "4", "--epochs", "2", "--batch-size", "32", "--seed", "7"]
    argv += ["--kill-worker", "3", "--at-step", "5", "--timeout", "60", "--json", str(target)]
    assert cli.main(argv) == 0
    assert json.loads(target.read_text()) == RESULT
    ((args, kwargs),) = fake_train
    assert args[0] == 4
    assert (args[1].epochs, args[1].global_batch_size, args[1].seed) == (2, 32, 7)
    assert (kwargs["kill_worker"], kwargs["at_step"], kwargs["timeout"]) == (3, 5, 60.0)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (launcher.WorkerError(1, -9, ["last line"]), 3),
        (launcher.WorkerTimeoutError(0, "did not join within 1 s", []), 4),
        (job.WorkersDisagreeError("worker 1 differs"), 5),
    ],
)
def test_cli_exit_code_says_what_failed(monkeypatch, capsys, error, code):
    def failing_train(*args, **kwargs):
        raise error

    monkeypatch.setattr(job, "train", failing_train)
    assert cli.main(["--workers", "2"]) == code
    assert str(error).splitlines()[0] in capsys.readouterr().err


@pytest.mark.parametrize("isolated", [True, False])
def test_cli_says_whether_the_workers_are_reachable_from_the_network(
    monkeypatch, fake_train, capsys, isolated
):
    monkeypatch.setattr(cli, "can_isolate", lambda: isolated)
    assert cli.main([]) == 0
    out, err = capsys.readouterr()
    assert ("network namespace whose one interface is loopback" in out) == isolated
    assert ("warning: TensorFlow's gRPC servers listen on every interface" in err) != isolated


def test_python_dash_m_runs_the_cli_and_exits_2_on_a_bad_argument():
    result = subprocess.run(
        [sys.executable, "-m", "prelu_tutorial.distribute", "--timeout", "nan"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(cli.__file__).resolve().parents[2],
    )
    assert result.returncode == 2
    assert "error: train: timeout must be finite, got nan." in result.stderr
    assert result.stdout == ""

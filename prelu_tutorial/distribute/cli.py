"""``python -m prelu_tutorial.distribute``: train on several workers from a shell.

Every argument, every timeout and the ``--json`` path are checked before a
worker starts; a bad one exits 2 with a message that names it. Exit codes:
0 done, 2 bad arguments, 3 a worker failed, 4 a worker timed out, 5 the
workers finished but disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from prelu_tutorial.distribute import job
from prelu_tutorial.distribute.launcher import EXIT_OK, EXIT_USAGE, DistributeError, can_isolate
from prelu_tutorial.distribute.training import TrainConfig, worker_main

__all__ = ["main"]


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
        "--stall-timeout",
        type=float,
        default=120.0,
        help="seconds a worker may take for one step (default 120)",
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

    The file is opened for appending (and removed again if this created it):
    permission bits alone do not tell, for root or on special file systems.

    Raises:
        ValueError: If ``path`` is a folder, its folder is missing, or it cannot be written.
    """
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"--json: {path} is a folder; give a file path.")
    if not target.parent.is_dir():
        raise ValueError(f"--json: the folder {target.parent} does not exist.")
    existed = target.exists()
    try:
        with open(target, "a", encoding="utf-8"):
            pass
    except OSError as error:
        raise ValueError(f"--json: cannot write {path}: {error.strerror}.") from None
    if not existed:
        target.unlink()


def _say_where_the_workers_listen() -> None:
    if can_isolate():
        print("The workers run in a network namespace whose one interface is loopback.")
    else:
        print(
            "warning: TensorFlow's gRPC servers listen on every interface (::) while the "
            "job runs, and this system cannot give the workers a network namespace of their "
            "own (it needs root or unprivileged user namespaces). Run on a trusted network.",
            file=sys.stderr,
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (see the module docstring)."""
    args = _parser().parse_args(argv)
    if args.worker_spec:
        return worker_main(json.loads(Path(args.worker_spec).read_text()))
    # train's arguments, checked here before anything is announced, then passed as they are.
    arguments = {
        "kill_worker": args.kill_worker,
        "at_step": args.at_step,
        "max_restarts": args.max_restarts,
        "join_timeout": args.join_timeout,
        "stall_timeout": args.stall_timeout,
        "timeout": args.timeout,
    }
    try:
        if args.json:
            _check_writable(args.json)
        config = TrainConfig(
            epochs=args.epochs,
            global_batch_size=args.batch_size,
            checkpoint_every=args.checkpoint_every,
            seed=args.seed,
        )
        job.check_train_arguments(args.workers, config, **arguments)
    except (TypeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    _say_where_the_workers_listen()
    try:
        if args.keras_fit:
            failure = job.keras_fit_failure(args.workers, config, join_timeout=args.join_timeout)
            print(f"Model.fit failed as expected: {failure.exception}")
            return EXIT_OK
        print(f"Training on {args.workers} workers (127.0.0.1), {args.epochs} epochs.", flush=True)
        result = job.train(
            args.workers, config, progress=lambda line: print(line, flush=True), **arguments
        )
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

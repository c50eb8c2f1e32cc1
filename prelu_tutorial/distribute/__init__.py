"""Multi-worker PReLU training on one machine, over loopback.

One idea per module:

- :mod:`.launcher`: starts the worker processes, follows their reports,
  bounds every wait, and stops them on every path, its own death included;
  runs them in a loopback-only network namespace where it can. No TensorFlow.
- :mod:`.training`: the model, the order of the batches, the one train step
  (:func:`train_step`), the single-process reference and a worker's run.
- :mod:`.job`: :func:`train`, attempts with restarts from the chief's
  checkpoint, and :func:`keras_fit_failure`.
- :mod:`.cli`: the command line.

Each worker runs a custom loop under
``tf.distribute.MultiWorkerMirroredStrategy`` (Keras 3's ``Model.fit`` does
not run under that strategy, keras-team/keras issue 20585;
:func:`keras_fit_failure` shows the error).

From a shell::

    python -m prelu_tutorial.distribute --workers 2 --epochs 3 --json result.json
    python -m prelu_tutorial.distribute --workers 2 --kill-worker 1 --at-step 25

Exit codes: 0 done, 2 bad arguments, 3 a worker failed, 4 a worker timed out,
5 the workers finished but disagree.
"""

from prelu_tutorial.distribute.job import WorkersDisagreeError, keras_fit_failure, train
from prelu_tutorial.distribute.launcher import (
    EXIT_DISAGREE,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    EXIT_WORKER_FAILED,
    DistributeError,
    WorkerError,
    WorkerTimeoutError,
    can_isolate,
    free_ports,
    run_workers,
    tf_config,
)
from prelu_tutorial.distribute.training import TrainConfig, total_steps, train_single_process

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
    "can_isolate",
    "free_ports",
    "keras_fit_failure",
    "run_workers",
    "tf_config",
    "total_steps",
    "train",
    "train_single_process",
]

"""prelu_tutorial: the Parametric ReLU in TensorFlow 2 / Keras 3, for the book.

``import prelu_tutorial as pt`` gives :func:`pt.prelu`, :class:`pt.PReLU` and
the submodules ``pt.ops`` (the taught formulas), ``pt.xla`` (the production
``prelu``), ``pt.layers``, ``pt.compat_v1``, ``pt.benchmark``,
``pt.devices``, ``pt.distribute``, ``pt.export``, ``pt.initializers``,
``pt.plotting``, ``pt.tables``, ``pt.data`` and ``pt.custom_op`` (the C++ op, built on
first use).
``pt.benchmark``, ``pt.distribute`` and ``pt.custom_op`` are imported on first
use, not by ``import prelu_tutorial``.
"""

import importlib

from prelu_tutorial import (
    compat_v1,
    data,
    devices,
    export,
    initializers,
    layers,
    ops,
    plotting,
    tables,
    xla,
)
from prelu_tutorial.layers import PReLU
from prelu_tutorial.xla import prelu

__all__ = [
    "PReLU",
    "benchmark",
    "compat_v1",
    "data",
    "devices",
    "distribute",
    "export",
    "initializers",
    "layers",
    "ops",
    "plotting",
    "prelu",
    "tables",
    "xla",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Loaded on first use, so that `python -m prelu_tutorial.benchmark` (or
    # .distribute, .custom_op) does not find the module already imported by
    # the package (runpy warns about that), and the C++ op's module is loaded
    # only by those who use it.
    if name in ("benchmark", "custom_op", "distribute"):
        return importlib.import_module(f"prelu_tutorial.{name}")
    raise AttributeError(f"module 'prelu_tutorial' has no attribute {name!r}")

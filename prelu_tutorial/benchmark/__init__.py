"""Benchmarks of PReLU against ReLU, the floor it should reach.

One idea per module:

- :mod:`.timing`: interleaved sampling; the minimum, the median, the
  inter-quartile range and a bimodality test of a set of timings;
- :mod:`.op_level`: one op on one tensor (each formulation, ``pt.prelu``,
  Keras' layer, the C++ op) against ``tf.nn.relu``, in eager, ``tf.function``
  and XLA modes, forward and forward+backward (:func:`run`);
- :mod:`.user_level`: a small CNN's fit step, eager inference and
  variable-size loop with each activation (:func:`run_model`);
- :mod:`.shape_loop`: an eager loop over many batch sizes (:func:`variable_shapes`);
- :mod:`.graph_kernels`: the kernels a function runs and the passes over
  memory each makes (:func:`kernels`);
- :mod:`.request`: the error a refused request raises, naming the
  argument to change (:class:`RequestError`);
- :mod:`.report`: tables, JSON, CSV and a chart of the results;
- :mod:`.cli`: the command line.

From a shell::

    python -m prelu_tutorial.benchmark --quick
    python -m prelu_tutorial.benchmark --sizes large --repeats 30 --json out.json --plot out.png
    python -m prelu_tutorial.benchmark --model --json model.json
"""

from prelu_tutorial.benchmark.graph_kernels import Kernel, kernels
from prelu_tutorial.benchmark.op_level import (
    CANDIDATES,
    DEVICES,
    DIRECTIONS,
    DTYPES,
    MODES,
    OPTIONAL_CANDIDATES,
    QUICK_SIZES,
    SIZES,
    Measurement,
    parse_size,
    run,
)
from prelu_tutorial.benchmark.report import (
    comparison_rows,
    comparison_table,
    format_model,
    format_table,
    plot,
    write_csv,
    write_json,
    write_model_json,
)
from prelu_tutorial.benchmark.request import RequestError
from prelu_tutorial.benchmark.shape_loop import (
    VariableShapeResult,
    format_variable_shapes,
    variable_shapes,
)
from prelu_tutorial.benchmark.timing import Summary, summarize
from prelu_tutorial.benchmark.user_level import (
    PARTS,
    ModelBenchmark,
    ModelFigure,
    candidate_names,
    run_model,
    small_cnn,
)

__all__ = [
    "CANDIDATES",
    "DEVICES",
    "DIRECTIONS",
    "DTYPES",
    "MODES",
    "OPTIONAL_CANDIDATES",
    "PARTS",
    "QUICK_SIZES",
    "SIZES",
    "Kernel",
    "Measurement",
    "ModelBenchmark",
    "ModelFigure",
    "RequestError",
    "Summary",
    "VariableShapeResult",
    "candidate_names",
    "comparison_rows",
    "comparison_table",
    "format_model",
    "format_table",
    "format_variable_shapes",
    "kernels",
    "parse_size",
    "plot",
    "run",
    "run_model",
    "small_cnn",
    "summarize",
    "variable_shapes",
    "write_csv",
    "write_json",
    "write_model_json",
]

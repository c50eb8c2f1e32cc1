"""The command line: ``python -m prelu_tutorial.benchmark --help``.

Three runs, one at a time:

- the default, op-level: each formulation, ``pt.prelu`` and Keras' layer on one
  tensor against ``tf.nn.relu`` (:mod:`.op_level`);
- ``--model``: the small CNN trained and served with each activation (:mod:`.user_level`);
- ``--variable-shapes``: an eager loop over 100 batch sizes (:mod:`.shape_loop`).

Every option and output path is checked before anything runs: a bad one
exits with status 2 and a one-line message naming it (argparse's convention:
``argument --sizes: ...``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from matplotlib.figure import Figure

from prelu_tutorial._number_checks import check_int
from prelu_tutorial.benchmark import op_level, report, shape_loop, user_level
from prelu_tutorial.benchmark.request import RequestError, about

__all__ = ["main"]

_OP_LEVEL_ONLY = ("sizes", "modes", "directions", "warmup", "csv", "plot", "dtype", "device")


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m prelu_tutorial.benchmark",
        description="Time every PReLU formulation, pt.prelu and keras.layers.PReLU "
        "against tf.nn.relu (the floor) and a copy (the memory bandwidth); with --model, "
        "a small CNN's fit step, eager inference and variable-size loop per activation.",
    )
    run = parser.add_mutually_exclusive_group()
    run.add_argument(
        "--model",
        action="store_true",
        help="instead: the user-level benchmark, a small CNN with each activation "
        f"({', '.join(user_level.candidate_names())}), against ReLU",
    )
    run.add_argument(
        "--variable-shapes",
        action="store_true",
        help="instead: time an eager loop over 100 distinct batch sizes, pt.prelu against "
        "prelu_where (repeats default 3)",
    )
    parser.add_argument("--device", type=str.lower, help="cpu (default) or gpu")
    parser.add_argument("--dtype", help=f"one of {', '.join(op_level.DTYPES)} (default float32)")
    parser.add_argument(
        "--sizes",
        type=_comma_list,
        help=f"comma-separated names ({', '.join(op_level.SIZES)}) or shapes like 64x56x56x64 "
        f"(default: all names; with --quick: {', '.join(op_level.QUICK_SIZES)})",
    )
    parser.add_argument(
        "--candidates",
        type=_comma_list,
        help="comma-separated subset (default: all but the optional "
        f"{', '.join(op_level.OPTIONAL_CANDIDATES)}, the C++ op, built on first use; "
        "with --model: all of its activations)",
    )
    parser.add_argument("--modes", type=_comma_list, help="comma-separated (default: all)")
    parser.add_argument(
        "--directions",
        type=_comma_list,
        help=f"comma-separated among {', '.join(op_level.DIRECTIONS)} (default: both)",
    )
    parser.add_argument(
        "--parts",
        type=_comma_list,
        help="with --model: comma-separated among fit, eager, loop (default: all)",
    )
    parser.add_argument(
        "--repeats",
        "--rounds",
        dest="repeats",
        type=int,
        help="interleaved rounds (default 10, --quick 3; --model 7, --quick 3)",
    )
    parser.add_argument(
        "--loop-rounds",
        type=int,
        help="with --model: rounds of the variable-size loop (default 3, --quick 1)",
    )
    parser.add_argument("--warmup", type=int, help="untimed calls first (default 2; quick: 1)")
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--csv", metavar="PATH", help="also write the results as CSV")
    parser.add_argument("--plot", metavar="PATH", help="also draw the chart to a PNG")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress")
    return parser


def _check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exits with status 2 for an empty list or a flag that the chosen run does not take."""
    for flag in ("sizes", "candidates", "modes", "directions", "parts"):
        if getattr(args, flag) == []:
            parser.error(f"--{flag} needs at least one comma-separated value, got none.")
    if args.model or args.variable_shapes:
        run = "--model" if args.model else "--variable-shapes"
        ignored = [flag for flag in _OP_LEVEL_ONLY if getattr(args, flag) is not None]
        if args.variable_shapes:
            ignored += [f for f in ("candidates", "json") if getattr(args, f) is not None]
        if ignored:
            parser.error(f"{run} does not take --{ignored[0].replace('_', '-')}.")
    if not args.model:
        for flag in ("parts", "loop_rounds"):
            if getattr(args, flag) is not None:
                parser.error(f"--{flag.replace('_', '-')} needs --model.")


def _check_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exits with status 2 before anything is measured if an output cannot be written."""
    outputs = [(flag, getattr(args, flag[2:])) for flag in ("--json", "--csv", "--plot")]
    outputs = [(flag, path) for flag, path in outputs if path is not None]
    paths = [os.path.abspath(path) for _, path in outputs]
    if len(set(paths)) < len(paths):
        parser.error("--json, --csv and --plot must name different files.")
    for flag, path in outputs:
        folder = os.path.dirname(os.path.abspath(path))
        if not path or os.path.isdir(path):
            parser.error(f"{flag} needs a file name, got the folder {path!r}.")
        if not os.path.isdir(folder):
            parser.error(f"{flag} {path!r}: the folder {folder!r} does not exist.")
        writable = os.access(path, os.W_OK) if os.path.exists(path) else os.access(folder, os.W_OK)
        if not writable:
            parser.error(f"{flag} {path!r} cannot be written (permission denied).")
    if args.plot is not None:
        supported = Figure().canvas.get_supported_filetypes()
        extension = os.path.splitext(args.plot)[1].lstrip(".").lower()
        if extension and extension not in supported:
            parser.error(
                f"--plot {args.plot!r}: matplotlib cannot write '.{extension}' files; "
                f"use one of {', '.join(sorted(supported))}."
            )


def _refuse(parser: argparse.ArgumentParser, error: Exception) -> NoReturn:
    """Exits with status 2 and the error's message, naming the flag a RequestError is about."""
    if isinstance(error, RequestError):
        parser.error(f"argument --{error.argument.replace('_', '-')}: {error}")
    parser.error(str(error))


def _write(writers: Sequence[tuple[str | None, Callable[[str], object]]]) -> bool:
    """Writes every requested file it can; says on stderr which failed. True if all did."""
    ok = True
    for path, write in writers:
        if path is None:
            continue
        try:
            write(path)
        except (OSError, ValueError) as error:
            print(f"benchmark: could not write {path!r}: {error}", file=sys.stderr)
            ok = False
    return ok


def _model(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        request = user_level.plan_model(
            candidates=args.candidates,
            parts=args.parts or user_level.PARTS,
            rounds=args.repeats if args.repeats is not None else (3 if args.quick else 7),
            loop_rounds=args.loop_rounds
            if args.loop_rounds is not None
            else (1 if args.quick else 3),
        )
    except (TypeError, ValueError) as error:
        _refuse(parser, error)
    say = None if args.no_progress else (lambda line: print(line, file=sys.stderr, flush=True))
    result = user_level.measure_model(request, progress=say)
    print(report.format_model(result), end="")
    return 0 if _write([(args.json, lambda path: report.write_model_json(result, path))]) else 1


def _variable_shapes(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        with about("repeats"):
            repeats = check_int(3 if args.repeats is None else args.repeats, "repeats", minimum=1)
    except (TypeError, ValueError) as error:
        _refuse(parser, error)
    print(shape_loop.format_variable_shapes(shape_loop.variable_shapes(repeats=repeats)), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``python -m prelu_tutorial.benchmark --help``.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The exit status: 0 on success, 1 if an output file could not be
        written (the others are still written, the table still printed). A
        bad option or an empty request exits with status 2 and a message
        naming it, before anything runs.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    _check_flags(parser, args)
    _check_outputs(parser, args)
    if args.model:
        return _model(parser, args)
    if args.variable_shapes:
        return _variable_shapes(parser, args)
    quick = args.quick
    try:
        request = op_level.plan(
            sizes=args.sizes or (op_level.QUICK_SIZES if quick else tuple(op_level.SIZES)),
            dtype=args.dtype or "float32",
            device=args.device or "cpu",
            candidates=args.candidates or op_level.CANDIDATES,
            modes=args.modes or op_level.MODES,
            directions=args.directions or op_level.DIRECTIONS,
            repeats=args.repeats if args.repeats is not None else (3 if quick else 10),
            warmup=args.warmup if args.warmup is not None else (1 if quick else 2),
        )
    except (TypeError, ValueError) as error:
        _refuse(parser, error)
    measurements = op_level.measure(request, progress=not args.no_progress)
    print(report.format_table(measurements))
    return (
        0
        if _write(
            [
                (args.json, lambda path: report.write_json(measurements, path)),
                (args.csv, lambda path: report.write_csv(measurements, path)),
                (args.plot, lambda path: report.plot(measurements).savefig(path, dpi=120)),
            ]
        )
        else 1
    )

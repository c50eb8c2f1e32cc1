"""``python -m prelu_tutorial.custom_op build``: build the op ahead of its first use."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from prelu_tutorial.custom_op import build


def main(argv: Sequence[str] | None = None) -> int:
    """The command line.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 when the library is built (or already cached), 1 when no compiler is
        found, the cache folder cannot be created or the build fails (the
        reason goes to stderr).
    """
    parser = argparse.ArgumentParser(
        prog="python -m prelu_tutorial.custom_op",
        description="Build the PReLU op's C++ library into the cache folder.",
    )
    parser.add_argument("command", choices=["build", "path"], help="build it, or print its path")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    try:
        if args.command == "path":
            path = build.library_path()
        else:
            path = build.build(force=args.force)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

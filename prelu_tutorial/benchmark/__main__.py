"""``python -m prelu_tutorial.benchmark``: see :mod:`prelu_tutorial.benchmark.cli`."""

import sys

from prelu_tutorial.benchmark.cli import main

sys.exit(main())

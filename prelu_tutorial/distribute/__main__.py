"""``python -m prelu_tutorial.distribute``: see :mod:`prelu_tutorial.distribute.cli`."""

import sys

from prelu_tutorial.distribute.cli import main

sys.exit(main())

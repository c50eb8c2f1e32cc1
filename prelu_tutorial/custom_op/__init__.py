"""PReLU as a TensorFlow op with C++ CPU kernels, built on first use.

``prelu_tutorial.custom_op.prelu(x, alpha)`` computes PReLU with the op;
``pt.PReLU(implementation="custom_op")`` uses it in a layer. The source is
``prelu_op.cc`` next to this file: the registration of the ops
``PreluTutorial>Prelu`` and ``PreluTutorial>PreluGrad``, their shape
functions, the forward kernel and one backward kernel that writes ``dx`` and
sums ``dalpha`` in the same pass. :mod:`.build` compiles it with the
installed TensorFlow's flags into a cache folder and loads it; :mod:`.op`
registers the gradients and defines :func:`prelu`. Build ahead of time with
``python -m prelu_tutorial.custom_op build``.
"""

from prelu_tutorial.custom_op import build, op
from prelu_tutorial.custom_op.build import CompilerNotFoundError
from prelu_tutorial.custom_op.op import load_library, prelu

__all__ = ["CompilerNotFoundError", "build", "load_library", "op", "prelu"]

"""Listing the kernels a function runs on full-size tensors, and the passes over memory each makes.

One pass reads or writes one tensor of the input's size. ReLU's forward pass
makes 2 (read x, write y) and its gradient 3 (read x and the upstream
gradient, write dx); a PReLU that makes more moves more memory than it must.
:func:`kernels` counts them in a traced graph or in XLA's optimized HLO.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

__all__ = ["Kernel", "kernels"]


@dataclass(frozen=True)
class Kernel:
    """One kernel that touches full-size tensors.

    Attributes:
        name: The TensorFlow op type (``"Relu"``), or for XLA the fusion's
            name (``"multiply_select_fusion"``) or the instruction
            (``"reduce-window"``, ...).
        passes: How many full-size tensors it reads or writes: each is one
            pass over memory.
    """

    name: str
    passes: int


# Ops that move no data: they rename, reshape or stand for a value.
_FREE_OPS = {
    "Placeholder",
    "Const",
    "Identity",
    "IdentityN",
    "NoOp",
    "ReadVariableOp",
    "StopGradient",
    "Reshape",
    "Shape",
}
_FREE_HLO = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast"}
_HLO_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%(\S+) = (.+?) ([a-z][a-z0-9-]*)\((.*)$")


def kernels(function: Callable, *args: tf.Tensor, jit_compile: bool = False) -> list[Kernel]:
    """The kernels one call of ``function(*args)`` runs on tensors of ``args[0]``'s shape.

    Without XLA these are the ops of the traced ``tf.function`` graph (a call
    to another ``tf.function`` is one op); with ``jit_compile=True`` they are
    the instructions of XLA's optimized HLO, where a fusion is one kernel.
    Kernels that touch only smaller tensors (alpha, its gradient) and ops
    that move no data (reshapes, identities) are left out.

    Args:
        function: Called with ``*args``.
        *args: Tensors; the first one's shape is the full size.
        jit_compile: Compile with XLA and list its kernels.

    Returns:
        The kernels in execution order (XLA: the order of the HLO text).
    """
    full = tf.TensorShape(args[0].shape)
    found = []
    if not jit_compile:
        graph = tf.function(function).get_concrete_function(*args).graph
        for op in graph.get_operations():
            if op.type in _FREE_OPS:
                continue
            passes = sum(tensor.shape == full for tensor in (*op.inputs, *op.outputs))
            if passes:
                found.append(Kernel(op.type, passes))
        return found
    hlo = tf.function(function, jit_compile=True).experimental_get_compiler_ir(*args)(
        stage="optimized_hlo"
    )
    dims = "[" + ",".join(str(dim) for dim in full) + "]"
    shapes = {}
    for line in hlo[hlo.index("\nENTRY") :].splitlines()[1:]:
        match = _HLO_INSTRUCTION.match(line)
        if match is None:
            continue
        name, shape, opcode, operands = match.groups()
        shapes[name] = shape
        if opcode in _FREE_HLO:
            continue
        operand_names = re.findall(r"%([\w.\-]+)", operands.split("), ")[0])
        passes = shape.count(dims) + sum(dims in shapes.get(o, "") for o in operand_names)
        if passes:
            # A fusion's name says what it fuses (multiply_select_fusion, ...).
            label = re.sub(r"\.\d+$", "", name) if opcode == "fusion" else opcode
            found.append(Kernel(label, passes))
    return found

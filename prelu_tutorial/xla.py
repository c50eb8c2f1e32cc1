"""The production PReLU, :func:`prelu`: one semantics, run as XLA-compiled kernels.

:mod:`prelu_tutorial.ops` holds the formulas the book teaches, bare. This
module holds the one the library runs (``pt.prelu``, and ``pt.PReLU`` with
``implementation="xla"``): it validates its arguments, states its semantics
once (:func:`prelu`'s docstring) and keeps them on every path it takes:

* the fused kernels, compiled with XLA (``jit_compile=True``): the forward
  pass in one read of ``x``, both gradients in two passes;
* the same formulas as plain TensorFlow ops, for an eager shape not yet
  compiled, a graph traced with unknown image sizes, an unknown rank;
* the policy that picks between them (:func:`_compiles_in_eager`), so that
  shapes that vary cost no compile storm.

The C++ op of :mod:`prelu_tutorial.custom_op` computes the same semantics
with its own kernels.
"""

from __future__ import annotations

import collections
import math

import tensorflow as tf

from prelu_tutorial._checks import FLOAT_DTYPES, check_prelu_types, to_tensor, wide_dtype

__all__ = ["prelu"]


def _validate(x, alpha) -> tuple[tf.Tensor, tf.Tensor]:
    """Checks and converts the arguments of :func:`prelu`.

    Returns ``x`` as a floating tensor and ``alpha`` as a tensor that keeps
    its own floating dtype (its gradient is returned in that dtype); an
    integer ``alpha`` is cast to ``x``'s dtype (it gets no gradient).
    """
    check_prelu_types(x, alpha)
    if not tf.is_tensor(x):
        x = to_tensor(x)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"prelu: x must be float16, bfloat16, float32 or float64, got dtype "
            f"{x.dtype.name}. Cast it first, e.g. tf.cast(x, tf.float32)."
        )
    if not tf.is_tensor(alpha) and not isinstance(alpha, tf.Variable):
        alpha = to_tensor(alpha, dtype_hint=x.dtype)
    alpha_shape = tf.TensorShape(alpha.shape)
    try:
        combined = tf.broadcast_static_shape(x.shape, alpha_shape)
    except ValueError:
        combined = None
    if (
        combined is None
        or not combined.is_compatible_with(x.shape)
        or (
            alpha_shape.rank is not None
            and x.shape.rank is not None
            and alpha_shape.rank > x.shape.rank
        )
    ):
        raise ValueError(
            f"prelu: alpha of shape {alpha_shape} does not broadcast to x of shape "
            f"{x.shape}. Give one alpha per channel "
            f"(shape [{x.shape[-1] if x.shape.rank else ''}]) "
            "or a shape with 1 on the shared axes."
        )
    # A tensor, not a variable: the gradient then reaches a variable through
    # the read, as for any op.
    alpha = tf.convert_to_tensor(alpha)
    if not alpha.dtype.is_floating:
        alpha = tf.cast(alpha, x.dtype)
    return x, alpha


def _sizes_are_certain(x: tf.Tensor, alpha: tf.Tensor) -> bool:
    """Whether the static shapes prove that broadcasting keeps ``x``'s shape.

    Broadcasting could widen ``x`` only on an axis whose size is unknown at
    trace time (``None`` in an ``input_signature``) where ``alpha`` is not 1.
    """
    if x.shape.rank is None or alpha.shape.rank is None:
        return False
    aligned = zip(reversed(x.shape.as_list()), reversed(alpha.shape.as_list()), strict=False)
    return all(x_size is not None or alpha_size == 1 for x_size, alpha_size in aligned)


def _with_shape_of(y: tf.Tensor, x: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """``y`` reshaped to ``x``'s run-time shape, or a run-time error if it is larger.

    Broadcasting only grows axes of size 1 and prepends axes, so ``y`` has
    ``x``'s size exactly when ``alpha`` fits ``x``; the reshape then changes
    nothing (or drops leading axes of size 1). The assert gives the message;
    under XLA, which drops asserts, the reshape itself fails to compile.
    """
    check = tf.debugging.assert_equal(
        tf.size(y, out_type=tf.int64),
        tf.size(x, out_type=tf.int64),
        message=(
            f"prelu: alpha of shape {alpha.shape} does not broadcast to the run-time "
            f"shape of x (static shape {x.shape}); the result would be larger than x"
        ),
    )
    with tf.control_dependencies([check]):
        return tf.reshape(y, tf.shape(x))


_MAX_BROADCAST_RANK = 8
"""The largest rank TensorFlow's broadcasting kernels (``SelectV2``, ``Mul``) take."""


def _definition(x: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """``where(x > 0, x, alpha * x)`` with the product in the wide dtype, safe to differentiate.

    The product takes ``x`` with its positive values replaced by zeros, so that
    its own derivative in ``alpha`` is ``0`` (not ``inf * 0 = NaN``) where
    ``x = +inf``, even though the select discards that branch there.
    """
    wide = wide_dtype(x.dtype, alpha.dtype)
    positive = x > 0
    negative_part = tf.where(positive, tf.zeros([], x.dtype), x)
    negative = tf.cast(tf.cast(alpha, wide) * tf.cast(negative_part, wide), x.dtype)
    return tf.where(positive, x, negative)


def _gradients(x: tf.Tensor, alpha: tf.Tensor, upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The terms of both gradients, before the alpha gradient is summed.

    ``dx = upstream`` where ``x > 0``, else ``alpha * upstream`` (the product in
    the wide dtype, rounded once to ``x``'s dtype); the alpha gradient's terms
    are ``min(0, x) * upstream`` in the wide dtype, so ``x = +inf`` adds 0.
    """
    wide = wide_dtype(x.dtype, alpha.dtype)
    scaled = tf.cast(tf.cast(alpha, wide) * tf.cast(upstream, wide), x.dtype)
    dx = tf.where(x > 0, upstream, scaled)
    dalpha_terms = tf.cast(upstream, wide) * tf.minimum(tf.cast(x, wide), 0)
    return dx, dalpha_terms


@tf.custom_gradient
def _tf_ops_prelu(x: tf.Tensor, alpha: tf.Tensor):
    """:func:`_definition` with :func:`_gradients`, as plain TensorFlow ops (no compile)."""

    def gradient(upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        dx, dalpha_terms = _gradients(x, alpha, upstream)
        x_axes, alpha_axes = tf.raw_ops.BroadcastGradientArgs(s0=tf.shape(x), s1=tf.shape(alpha))
        dx = tf.reshape(tf.reduce_sum(dx, x_axes), tf.shape(x))
        dalpha = tf.reshape(tf.reduce_sum(dalpha_terms, alpha_axes), tf.shape(alpha))
        return dx, tf.cast(dalpha, alpha.dtype)

    return _definition(x, alpha), gradient


def _prelu_unfused(x: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """The fused kernels' forward pass and gradient as plain ops, on a view of low rank.

    The path for shapes the fused kernel does not take (unknown rank, alpha
    of unknown size, shapes seen rarely): the same formulas as the compiled
    kernels run eagerly (:func:`_definition`, :func:`_gradients`), so an
    eager result does not depend on which path ran. Transformations that drop a custom
    gradient (vectorized_map, jacobian) differentiate the forward pass,
    whose own derivative is finite wherever the definition's is.
    Above rank 8 (or for an unknown rank), the axes that only ``x`` has are
    folded into one, so TensorFlow's broadcasting kernels (rank 8 at most)
    work for any rank of ``x``.
    """
    view = x
    high_rank = x.shape.rank is None or x.shape.rank > _MAX_BROADCAST_RANK
    if alpha.shape.rank is not None and high_rank:
        shape = tf.shape(x)
        lead = tf.maximum(tf.size(shape) - alpha.shape.rank, 0)
        view = tf.reshape(x, tf.concat([[tf.reduce_prod(shape[:lead])], shape[lead:]], 0))
    y = _tf_ops_prelu(view, alpha)
    if view is x and _sizes_are_certain(x, alpha):
        return y
    return _with_shape_of(y, x, alpha)


# The fused kernel behind prelu ------------------------------------------------

_FOLD = 8
"""How many equal chunks the backward pass adds elementwise before it reduces."""

_TFLITE_MAX_RANK = 4
"""The largest rank the builtin TFLite ``PRELU`` op takes."""


def _runs(shared: tuple[bool, ...]) -> list[list[int]]:
    """The axes grouped into runs of adjacent axes that are all shared or all kept."""
    runs: list[list[int]] = []
    for axis, is_shared in enumerate(shared):
        if runs and shared[runs[-1][0]] == is_shared:
            runs[-1].append(axis)
        else:
            runs.append([axis])
    return runs


def _merged_view(
    x: tf.Tensor, alpha: tf.Tensor, shared: tuple[bool, ...], runs: list[list[int]]
) -> tuple[tf.Tensor, tf.Tensor]:
    """``x`` and ``alpha`` with each run of axes merged into one axis.

    Values and broadcasting stay the same; only the rank drops, so the TFLite
    converter can still emit its ``PRELU`` op (rank <= 4) for Conv3D features.
    """
    static = x.shape.as_list()
    sizes = [[static[axis] for axis in run] for run in runs]
    unknown = [index for index, run_sizes in enumerate(sizes) if None in run_sizes]
    shape = tf.shape(x)
    x_shape = []
    for index, run_sizes in enumerate(sizes):
        if index not in unknown:
            x_shape.append(math.prod(run_sizes))
        elif len(unknown) == 1:
            x_shape.append(-1)  # a static -1 keeps the TFLite graph free of shape ops
        else:
            x_shape.append(tf.reduce_prod(tf.gather(shape, runs[index])))
    # alpha has x's size on every kept axis and 1 on every shared one. Its
    # own static shape is not used: a trace with reduce_retracing may have
    # relaxed it to an unknown rank.
    alpha_shape = [1 if shared[run[0]] else x_shape[index] for index, run in enumerate(runs)]
    if shared[runs[0][0]]:
        alpha_shape = alpha_shape[1:]  # the leading run is the batch: alpha needs no axis
    if any(tf.is_tensor(size) for size in alpha_shape):
        alpha_shape = tf.stack([tf.cast(size, tf.int32) for size in alpha_shape])
    view = tf.reshape(x, x_shape if not unknown or len(unknown) == 1 else tf.stack(x_shape))
    return view, tf.reshape(alpha, alpha_shape)


def _reshape_back(y: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """``y`` in ``x``'s shape, with a static shape where at most one size is unknown."""
    static = x.shape.as_list()
    if static.count(None) <= 1:
        return tf.reshape(y, [-1 if size is None else size for size in static])
    return tf.reshape(y, tf.shape(x))


def _tflite_form(x: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """``max(0, x) + (-alpha) * max(-x, 0)``, the sum TFLite fuses into ``PRELU``.

    Written with ``maximum`` in this argument order, not ``relu``, so that its
    own derivative (used when a transformation such as ``vectorized_map``
    drops the custom gradient) is the documented subgradient at ``x = 0``:
    a tie in ``maximum`` goes to the first argument, so ``d/dx`` is ``alpha``.
    For 16-bit ``x`` the product is taken in float32 (one rounding, and a
    float32 sum in its derivative).
    """
    wide = wide_dtype(x.dtype, alpha.dtype)
    zero = tf.zeros([], x.dtype)
    negative = (-tf.cast(alpha, wide)) * tf.cast(tf.maximum(-x, zero), wide)
    return tf.maximum(zero, x) + tf.cast(negative, x.dtype)


def _fused_forward_body(
    x: tf.Tensor, alpha: tf.Tensor, shared: tuple[bool, ...], pattern: bool
) -> tf.Tensor:
    """The forward pass as one XLA kernel: reads x once, writes y once.

    ``pattern`` (in graphs, which TFLite converts) computes the sum that the
    converter fuses into ``PRELU``; otherwise (eagerly) the definition, with
    the same bits as the uncompiled path.
    """
    if not pattern:
        return _definition(x, alpha)
    if len(shared) <= _TFLITE_MAX_RANK:
        return _fused_forward_values(x, alpha)
    runs = _runs(shared)
    if len(runs) > _TFLITE_MAX_RANK:
        # Shared and kept axes alternate too often to merge: the definition,
        # which the converter runs at any rank (GREATER, MUL, SELECT).
        return _definition(x, alpha)
    view, alpha_view = _merged_view(x, alpha, shared, runs)
    return _reshape_back(_fused_forward_values(view, alpha_view), x)


_fused_forward = tf.function(_fused_forward_body, jit_compile=True, reduce_retracing=True)
"""The eager forward kernel: a new batch size reuses a trace with relaxed sizes."""

_fused_forward_in_graph = tf.function(_fused_forward_body, jit_compile=True)
"""The forward kernel inside a graph, traced for the graph's own static shapes.

Not relaxed: a trace relaxed by earlier calls would put shape ops into the
graph that TFLite converts, so the exported ops would depend on call history.
"""


def _fused_forward_values(x: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """The TFLite pattern for a finite alpha, else the definition.

    The TFLite converter turns exactly the sum of :func:`_tflite_form` into
    one ``PRELU`` op (not the Sub of ``prelu_relu_difference``, and only with
    ``-alpha`` as the factor). It equals the definition for every finite
    alpha; for alpha <= 0 only the sign of a zero result can differ (-0.0 vs
    +0.0, which compare equal). An infinite or NaN alpha would turn x > 0
    into NaN (inf * 0), so the definition is taken then; with a frozen,
    finite alpha the converter folds the condition away and sees the sum.
    """
    pattern_is_exact = tf.reduce_all(tf.math.is_finite(alpha))
    return tf.where(pattern_is_exact, _tflite_form(x, alpha), _definition(x, alpha))


def _sum_over_shared_axes(values: tf.Tensor, shared: tuple[bool, ...]) -> tf.Tensor:
    """Sums ``values`` over every axis that ``shared`` marks, keeping the others.

    XLA on CPU runs one big reduction as a slow loop. So the rows of the
    leading shared axes (the batch axis and, channel-wise, every spatial
    axis) are cut into ``_FOLD`` equal chunks that are added elementwise, one
    fused pass. Only the sum of the chunks, ``_FOLD`` times smaller, and the
    few rows left over (fewer than ``_FOLD``) are then reduced; XLA does that
    fast.
    """
    axes = [axis for axis, is_shared in enumerate(shared) if is_shared]
    lead = 0
    while lead < len(axes) and axes[lead] == lead:
        lead += 1
    if lead == 0:
        return tf.reduce_sum(values, axes)
    shape = tf.shape(values)
    rows = tf.reduce_prod(shape[:lead])
    folded_rows = rows - rows % _FOLD
    matrix = tf.reshape(values, tf.concat([[rows], shape[lead:]], 0))
    chunks = tf.reshape(matrix[:folded_rows], tf.concat([[_FOLD, -1], shape[lead:]], 0))
    partial = tf.concat([tf.add_n(tf.unstack(chunks, num=_FOLD)), matrix[folded_rows:]], 0)
    return tf.reduce_sum(partial, [0] + [axis - lead + 1 for axis in axes[lead:]])


@tf.function(jit_compile=True, reduce_retracing=True)
def _fused_backward(
    x: tf.Tensor, alpha: tf.Tensor, upstream: tf.Tensor, shared: tuple[bool, ...]
) -> tuple[tf.Tensor, tf.Tensor]:
    """Both gradients from x, alpha and the upstream gradient, in two XLA passes.

    ``shared`` marks the axes of ``x`` that ``alpha`` is broadcast along; it
    also pins ``x``'s rank, which ``reduce_retracing`` would otherwise relax.
    The alpha gradient is summed in float32 (float64 if x or alpha is) and
    returned in alpha's own dtype: a float16 sum over a feature map of 200,000
    elements per channel would overflow.
    """
    dx, dalpha_terms = _gradients(x, alpha, upstream)
    dalpha = tf.reshape(_sum_over_shared_axes(dalpha_terms, shared), tf.shape(alpha))
    return dx, tf.cast(dalpha, alpha.dtype)


@tf.custom_gradient
def _fused_prelu(x: tf.Tensor, alpha: tf.Tensor):
    """PReLU with the fused forward pass and gradient; needs alpha's static shape."""
    shared = (True,) * (x.shape.rank - alpha.shape.rank) + tuple(size == 1 for size in alpha.shape)

    def gradient(upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return _fused_backward(x, alpha, upstream, shared)

    if tf.executing_eagerly():
        # Not recorded: a tape would make the compiled forward also return the
        # intermediates of its own autodiff, which this gradient does not need.
        forward = _fused_forward(tf.stop_gradient(x), tf.stop_gradient(alpha), shared, False)
        return forward, gradient
    # In a graph the forward stays differentiable: vectorized_map and jacobian
    # (pfor) rewrite the graph and drop this custom gradient, and then the
    # forward's own derivative, the same values, takes over. (A StopGradient
    # here made those gradients silently zero.) In a graph TensorFlow builds
    # the forward kernel's own gradient only when one is asked of it, which
    # this custom gradient never does.
    return _fused_forward_in_graph(x, alpha, shared, True), gradient


@tf.custom_gradient
def _graph_prelu_uncompiled(x: tf.Tensor, alpha: tf.Tensor):
    """The graph path when a size other than the batch's is unknown: the same formulas, uncompiled.

    A graph traced with unknown image sizes (a ``tf.function`` relaxed by
    ``reduce_retracing``, as Keras' ``train_on_batch`` is after its second
    input shape) runs for every size it is given; the XLA kernels would be
    compiled once per run-time shape, a compile storm when sizes vary. The
    same forward pass (the sum TFLite fuses) and gradients as plain ops cost
    nothing per new shape. Where only the batch size is unknown (Keras'
    ``fit`` traces its step so) the compiled kernels run: a compile per batch
    size, and there are few.
    """
    shared = (True,) * (x.shape.rank - alpha.shape.rank) + tuple(size == 1 for size in alpha.shape)

    def gradient(upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        dx, dalpha_terms = _gradients(x, alpha, upstream)
        axes = [axis for axis, is_shared in enumerate(shared) if is_shared]
        dalpha = tf.reshape(tf.reduce_sum(dalpha_terms, axes), tf.shape(alpha))
        return dx, tf.cast(dalpha, alpha.dtype)

    return _uncompiled_forward(x, alpha, shared), gradient


def _uncompiled_forward(x: tf.Tensor, alpha: tf.Tensor, shared: tuple[bool, ...]) -> tf.Tensor:
    """:func:`_fused_forward_body`'s values in a graph, computing one form, not both.

    Compiled, the select between the TFLite sum and the definition costs
    nothing (XLA fuses both into one pass); as plain ops it would run both. A
    ``tf.cond`` on alpha being finite runs one; with a frozen, finite alpha
    the TFLite converter folds the condition and sees the sum.
    """
    return tf.cond(
        tf.reduce_all(tf.math.is_finite(alpha)),
        lambda: _fused_forward_body(x, alpha, shared, True),
        lambda: _definition(x, alpha),
    )


# When prelu compiles: the policy for variable shapes ---------------------------

_COMPILE_AT_SIGHTING = 2
"""An eager call compiles its shape the second time that shape is seen."""

_MAX_COMPILED_SHAPES = 32
"""At most this many shapes are compiled by eager calls; later new shapes run unfused."""

_MAX_TRACKED_SHAPES = 1024
"""The sightings of at most this many shapes not yet compiled are remembered (oldest dropped)."""

_sightings: collections.OrderedDict[tuple, int] = collections.OrderedDict()
_compiled_shapes: set[tuple] = set()


def _compiles_in_eager(x: tf.Tensor, alpha: tf.Tensor) -> bool:
    """Whether an eager call with these shapes runs the XLA kernels (see :func:`prelu`)."""
    key = (tuple(x.shape), x.dtype, tuple(alpha.shape), alpha.dtype)
    if key in _compiled_shapes:
        return True
    seen = _sightings.pop(key, 0) + 1
    if seen >= _COMPILE_AT_SIGHTING and len(_compiled_shapes) < _MAX_COMPILED_SHAPES:
        _compiled_shapes.add(key)
        return True
    _sightings[key] = seen
    if len(_sightings) > _MAX_TRACKED_SHAPES:
        _sightings.popitem(last=False)
    return False


def prelu(x, alpha) -> tf.Tensor:
    """Parametric ReLU, the formulation this book recommends.

    ``prelu(x) = x`` for ``x > 0`` and ``alpha * x`` otherwise, for any real
    ``alpha`` (also ``alpha > 1`` and ``alpha < 0``), with the product taken
    in float32 (float64 if ``x`` or ``alpha`` is) and rounded once to ``x``'s
    dtype. ``+inf`` stays ``+inf``, ``-inf`` becomes ``alpha * -inf``, NaN
    stays NaN, ``-0.0`` becomes ``alpha * -0.0``; subnormals are flushed to
    zero, as by every TensorFlow CPU kernel. The result has ``x``'s dtype and
    shape for float16, bfloat16, float32 and float64 (a float32 variable
    works with a float16 input under mixed precision).

    One answer on every path. Eagerly, the output and both gradients have
    the same bits whether the shape is new (plain TensorFlow ops) or
    compiled (XLA), whatever was called before. Inside a graph with a
    static rank (a ``tf.function``, XLA, the graph TFLite converts) the
    forward pass is the sum that TFLite fuses into ``PRELU``: the same
    values, except that a zero result may carry the other sign (for
    ``alpha <= 0``, and for ``x = -0.0`` with TensorFlow before 2.21).

    Gradients: ``d/dx`` is ``upstream`` where ``x > 0``, else ``alpha *
    upstream`` (taken wide, rounded once); ``d/dalpha`` is ``min(0, x) *
    upstream`` summed over the shared axes in float32 (float64 if ``x`` or
    ``alpha`` is) and returned in ``alpha``'s own dtype, so a float32
    variable behind a float16 input gets a float32 sum that does not
    overflow, and ``x = +inf`` adds 0 (never ``inf * 0 = NaN``). Subgradient
    at exactly ``x = 0``: ``alpha`` in ``x`` (the left derivative, as in
    PyTorch) and ``0`` in ``alpha``. They hold under ``tf.function``, XLA,
    ``tf.map_fn``, ``tf.vectorized_map`` and ``GradientTape.jacobian``.

    It runs as two XLA-compiled kernels (``jit_compile=True``): the forward
    pass reads ``x`` once and writes the result once, like ``tf.nn.relu``; a
    custom gradient keeps only ``x`` and ``alpha`` for the backward pass,
    which computes both gradients in two passes over ``x`` and the upstream
    gradient. A Keras model of :class:`PReLU` layers with finite alphas (of
    any sign) converts to TFLite with one ``PRELU`` op per layer; a rank-5
    input (after ``Conv3D``) is viewed with its shared axes merged, so it
    converts too (a ``RESHAPE`` on each side).

    Variable shapes. XLA compiles each new shape (about 0.2 s on a CPU), so:

    * Eagerly, a shape is compiled the second time it is seen (above rank
      8, which only XLA broadcasts, the first time); its first
      call, and every call once 32 shapes are compiled, runs the same
      formulas as plain TensorFlow ops (the same bits): a loop over many
      distinct sizes costs about what ``prelu_where`` costs, and the
      compiled kernels stay bounded.
    * Inside a ``tf.function`` whose trace knows every size but the
      batch's (Keras' ``fit`` traces its step so), the kernels are compiled
      when it runs, once per batch size. A trace with an unknown image size
      (a signature with ``None`` there, or Keras' ``train_on_batch`` relaxed
      by varying sizes) runs the same formulas uncompiled: no compile per new
      size. A function retraced per static shape still compiles per trace.
    * If ``x``'s rank or ``alpha``'s shape is not static, it always runs
      unfused: same values and gradients.

    Args:
        x: Floating tensor (or array-like of floats).
        alpha: Python number, scalar, per-channel vector or any tensor whose
            shape broadcasts to ``x``'s shape; a ``tf.Variable`` is fine and
            gets gradients.

    Returns:
        A tensor with ``x``'s dtype and shape.

    Raises:
        TypeError: If ``x`` is not float16/bfloat16/float32/float64, ``alpha``
            is ``None`` or not real (a Python or NumPy bool included), or
            either is ragged or sparse.
        ValueError: If ``alpha``'s static shape does not broadcast to ``x``'s.
        tf.errors.InvalidArgumentError: At run time, inside a ``tf.function``
            whose signature leaves sizes unknown, if ``alpha`` turns out not
            to fit ``x`` (the result would be larger than ``x``).
    """
    x, alpha = _validate(x, alpha)
    if x.shape.rank is None or not alpha.shape.is_fully_defined():
        return _prelu_unfused(x, alpha)
    if tf.executing_eagerly():
        # Above rank 8 only XLA broadcasts: such shapes compile at first sight.
        if x.shape.rank <= _MAX_BROADCAST_RANK and not _compiles_in_eager(x, alpha):
            return _prelu_unfused(x, alpha)
        y = _fused_prelu(x, alpha)
    elif None not in x.shape.as_list()[1:] or x.shape.rank > _MAX_BROADCAST_RANK:
        # Every size but the batch's is static (Keras' fit traces its step so):
        # a compile per batch size, and there are few. Above rank 8 only XLA
        # broadcasts, so such a graph compiles whatever its sizes.
        y = _fused_prelu(x, alpha)
    else:
        y = _graph_prelu_uncompiled(x, alpha)
    if _sizes_are_certain(x, alpha):
        return y
    return _with_shape_of(y, x, alpha)

"""Inputs, tolerances and a small model shared by the tests of prelu, its formulations and layer."""

import keras
import ml_dtypes
import numpy as np

import prelu_tutorial as pt

DTYPES = {
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float32": np.float32,
    "float64": np.float64,
}
# Relative tolerance per dtype: alpha is rounded to x's dtype before the
# product, the float64 reference is not, so one rounding step may differ.
RTOL = {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 2e-7, "float64": 1e-15}
# Absolute tolerance: one step of the dtype's subnormals, where a relative
# tolerance means nothing (1.375 * -6e-8 rounds to one of two float16 steps).
ATOL = {"float16": 2.0**-24, "bfloat16": 2.0**-133, "float32": 2.0**-149, "float64": 2.0**-1074}
SPECIALS = np.array([np.inf, -np.inf, np.nan, -0.0, 0.0, 1.0, -1.0, 3.5, -3.5])


def small_model(implementation: str) -> keras.Sequential:
    """A seeded Conv2D-PReLU-Dense-PReLU-Dense model whose PReLUs use ``implementation``."""
    keras.utils.set_random_seed(7)
    return keras.Sequential(
        [
            keras.Input((6, 6, 3)),
            keras.layers.Conv2D(4, 3),
            pt.PReLU(implementation=implementation),
            keras.layers.Flatten(),
            keras.layers.Dense(5),
            pt.PReLU(shared_axes=[1], implementation=implementation),
            keras.layers.Dense(1),
        ]
    )

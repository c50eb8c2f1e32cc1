"""Small offline data sets for the training chapters: two spirals and 8x8 digits.

Both are built or loaded locally (no download), are deterministic for a given
``seed`` and return float32 inputs with integer labels, ready for
``keras.Model.fit`` with a sparse categorical loss.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from prelu_tutorial._number_checks import check_int, check_real

__all__ = ["digits", "two_spirals"]


def two_spirals(
    n_per_class: int,
    noise: float = 0.0,
    turns: float = 1.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in the plane, a classic non-linear toy problem.

    Class 0 lies on the spiral ``r = t``, ``angle = 2 * pi * turns * t`` for
    ``t`` drawn uniformly from ``[0, 1)``, so it starts at the origin and ends
    on the unit circle. Class 1 is class 0 turned by half a turn: each clean
    class-1 point is the reflection ``-p`` of a clean class-0 point ``p``.
    Gaussian noise of standard deviation ``noise`` is then added to every
    coordinate, independently for every point. The points come shuffled, so a
    tail slice (as in ``validation_split``) holds both classes.

    Args:
        n_per_class: Number of points of each class, at least 1.
        noise: Standard deviation of the Gaussian noise added to each
            coordinate; ``0`` gives points exactly on the spirals.
        turns: How many full turns each spiral makes; more turns make the
            classes harder to separate.
        seed: Seed of the NumPy generator; the same seed gives the same points.

    Returns:
        A tuple ``(points, labels)``: ``points`` is a float32 array of shape
        ``(2 * n_per_class, 2)`` and ``labels`` an int64 array of shape
        ``(2 * n_per_class,)`` holding ``n_per_class`` zeros and as many ones.

    Raises:
        TypeError: If ``n_per_class`` is not an integer, or ``seed`` is not
            an integer.
        ValueError: If ``n_per_class < 1``, ``noise < 0``, ``turns <= 0`` or
            ``seed < 0``.
    """
    n_per_class = check_int(n_per_class, "n_per_class", minimum=1, owner="two_spirals")
    if not noise >= 0:
        raise ValueError(f"two_spirals: noise must be >= 0, got {noise!r}.")
    if not turns > 0:
        raise ValueError(f"two_spirals: turns must be > 0, got {turns!r}.")
    rng = np.random.default_rng(check_int(seed, "seed", owner="two_spirals"))
    t = rng.uniform(0.0, 1.0, size=n_per_class)
    angle = 2.0 * np.pi * turns * t
    spiral = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    points = np.concatenate([spiral, -spiral]) + rng.normal(0.0, noise, size=(2 * n_per_class, 2))
    labels = np.repeat(np.array([0, 1], dtype=np.int64), n_per_class)
    order = rng.permutation(2 * n_per_class)
    return points[order].astype(np.float32), labels[order]


def digits(
    test_fraction: float = 0.25,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 handwritten digits, as images, split into train and test.

    The 1797 images ship inside scikit-learn (``sklearn.datasets.load_digits``),
    so nothing is downloaded. Pixel values (0 to 16) are scaled to ``[0, 1]``
    and each image gets a channel axis, for ``Conv2D``. The split is
    stratified: every digit has the same share in both parts, up to rounding.

    Args:
        test_fraction: Share of the images held out for testing, strictly
            between 0 and 1.
        seed: Seed of the split; the same seed gives the same split.

    Returns:
        A tuple ``(x_train, y_train, x_test, y_test)``: images as float32
        arrays of shape ``(n, 8, 8, 1)`` with values in ``[0, 1]``, labels
        as int64 arrays of shape ``(n,)`` with values 0 to 9.

    Raises:
        TypeError: If ``test_fraction`` is not a real number or ``seed`` not
            an integer.
        ValueError: If ``test_fraction`` is not strictly between 0 and 1, or
            leaves fewer test (or train) images than there are classes, or
            ``seed < 0``.
    """
    test_fraction = check_real(test_fraction, "test_fraction", owner="digits")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"digits: test_fraction must be strictly between 0 and 1, got {test_fraction!r}."
        )
    seed = check_int(seed, "seed", owner="digits")
    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[..., np.newaxis]
    labels = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return x_train, y_train, x_test, y_test

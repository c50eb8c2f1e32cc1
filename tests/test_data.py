"""Tests for prelu_tutorial.data: the two spirals and the 8x8 digits."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from prelu_tutorial import data


def test_two_spirals_returns_float32_points_and_integer_labels_of_the_right_shapes():
    points, labels = data.two_spirals(50)
    assert points.shape == (100, 2)
    assert points.dtype == np.float32
    assert labels.shape == (100,)
    assert np.issubdtype(labels.dtype, np.integer)


def test_two_spirals_has_n_per_class_points_of_each_class():
    _, labels = data.two_spirals(37, noise=0.1)
    assert np.bincount(labels).tolist() == [37, 37]


def test_two_spirals_is_deterministic_per_seed():
    first = data.two_spirals(30, noise=0.2, seed=3)
    second = data.two_spirals(30, noise=0.2, seed=3)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_two_spirals_differs_between_seeds():
    points_a, _ = data.two_spirals(30, seed=0)
    points_b, _ = data.two_spirals(30, seed=1)
    assert not np.array_equal(points_a, points_b)


def test_two_spirals_classes_are_point_reflections_of_each_other_without_noise():
    points, labels = data.two_spirals(40, noise=0.0)
    class_0 = points[labels == 0]
    reflected_class_1 = -points[labels == 1]
    # Compare as sets: sort both by their coordinates.
    np.testing.assert_array_equal(
        class_0[np.lexsort(class_0.T)], reflected_class_1[np.lexsort(reflected_class_1.T)]
    )


def test_two_spirals_points_lie_on_the_spiral_r_equals_t_without_noise():
    turns = 1.5
    points, labels = data.two_spirals(40, noise=0.0, turns=turns)
    class_0 = points[labels == 0].astype(np.float64)
    radius = np.hypot(class_0[:, 0], class_0[:, 1])
    expected = radius[:, None] * np.stack(
        [np.cos(2 * np.pi * turns * radius), np.sin(2 * np.pi * turns * radius)], axis=1
    )
    np.testing.assert_allclose(class_0, expected, atol=1e-5)


def test_two_spirals_noise_moves_points_off_the_clean_spiral():
    clean, _ = data.two_spirals(40, noise=0.0, seed=5)
    noisy, _ = data.two_spirals(40, noise=0.1, seed=5)
    offsets = noisy - clean
    assert 0.05 < offsets.std() < 0.2


def test_two_spirals_puts_both_classes_in_the_last_tenth():
    _, labels = data.two_spirals(100)
    assert set(labels[-20:].tolist()) == {0, 1}


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"n_per_class": 0}, "n_per_class"),
        ({"n_per_class": 10, "noise": -0.1}, "noise"),
        ({"n_per_class": 10, "noise": float("nan")}, "noise"),
        ({"n_per_class": 10, "turns": 0.0}, "turns"),
    ],
)
def test_two_spirals_rejects_bad_arguments_naming_them(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        data.two_spirals(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"n_per_class": 2.5}, "n_per_class"),
        ({"n_per_class": True}, "n_per_class"),
        ({"n_per_class": 10, "seed": "0"}, "seed"),
    ],
)
def test_two_spirals_rejects_arguments_of_the_wrong_type_naming_them(kwargs, argument):
    with pytest.raises(TypeError, match=f"two_spirals: {argument} must be an integer"):
        data.two_spirals(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": -1}, ValueError, "seed"),
        ({"test_fraction": "0.2"}, TypeError, "test_fraction"),
        ({"test_fraction": float("nan")}, ValueError, "test_fraction"),
    ],
)
def test_digits_rejects_bad_arguments_with_our_message(kwargs, error, argument):
    with pytest.raises(error, match=f"digits: {argument}"):
        data.digits(**kwargs)


def test_digits_returns_images_scaled_to_unit_range_with_a_channel_axis():
    x_train, y_train, x_test, y_test = data.digits()
    assert x_train.shape[1:] == (8, 8, 1)
    assert x_test.shape[1:] == (8, 8, 1)
    assert x_train.dtype == np.float32
    assert x_test.dtype == np.float32
    assert 0.0 <= x_train.min() and x_train.max() == 1.0
    assert x_train.shape[0] == y_train.shape[0]
    assert x_test.shape[0] == y_test.shape[0]


def test_digits_holds_all_1797_images_split_by_test_fraction():
    x_train, _, x_test, _ = data.digits(test_fraction=0.25)
    assert x_train.shape[0] + x_test.shape[0] == 1797
    assert x_test.shape[0] == 450  # ceil(0.25 * 1797)


def test_digits_split_is_stratified():
    _, y_train, _, y_test = data.digits(test_fraction=0.25)
    train_share = np.bincount(y_train, minlength=10) / y_train.size
    test_share = np.bincount(y_test, minlength=10) / y_test.size
    np.testing.assert_allclose(train_share, test_share, atol=0.005)


def test_digits_is_deterministic_per_seed():
    first = data.digits(seed=7)
    second = data.digits(seed=7)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_digits_split_differs_between_seeds():
    _, y_train_a, _, _ = data.digits(seed=0)
    _, y_train_b, _, _ = data.digits(seed=1)
    assert not np.array_equal(y_train_a, y_train_b)


def test_digits_returns_every_raw_image_once_with_its_label():
    x_train, y_train, x_test, y_test = data.digits()
    raw = load_digits()
    pixels = np.concatenate([x_train, x_test]).reshape(-1, 64) * 16.0
    returned = np.column_stack([pixels, np.concatenate([y_train, y_test])])
    expected = np.column_stack([raw.data, raw.target]).astype(np.float32)
    # The split reorders the images: compare the rows as sorted multisets.
    np.testing.assert_array_equal(
        returned[np.lexsort(returned.T)], expected[np.lexsort(expected.T)]
    )


@pytest.mark.parametrize("test_fraction", [0.0, 1.0, -0.2, 1.5])
def test_digits_rejects_test_fraction_outside_the_open_unit_interval(test_fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        data.digits(test_fraction=test_fraction)

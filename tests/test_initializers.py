"""prelu_tutorial.initializers: sample statistics against the paper's formula, saving, errors.

Every expected standard deviation is computed here from the paper's condition
``(1 + a**2) / 2 * n * Var[w] = 1`` and the fans counted by hand from the
kernel shape, never read back from the initializer.
"""

import math

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prelu_tutorial as pt
from prelu_tutorial.initializers import PReLUHeNormal, PReLUHeUniform

# (shape, fan_in, fan_out), the fans counted from the layout Keras uses.
DENSE = ((400, 300), 400, 300)
CONV = ((3, 3, 32, 64), 3 * 3 * 32, 3 * 3 * 64)
ALPHAS = [0.0, 0.25, 1.0, -0.5, 3.0]


def paper_std(alpha, n):
    return math.sqrt(2.0 / ((1.0 + alpha**2) * n))


def sample(initializer, shape):
    return np.asarray(initializer(shape, dtype="float32"), dtype=np.float64)


def fan(kernel, mode):
    _, fan_in, fan_out = kernel
    return fan_in if mode == "fan_in" else fan_out


@pytest.mark.parametrize("initializer", [PReLUHeNormal, PReLUHeUniform])
@pytest.mark.parametrize("kernel", [DENSE, CONV], ids=["dense", "conv"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_sample_std_matches_the_papers_formula_and_the_mean_is_zero(
    initializer, kernel, mode, alpha
):
    values = sample(initializer(alpha, mode=mode, seed=1), kernel[0])
    # 18432 samples at least: the relative standard error of the std is < 0.6%.
    assert values.std() == pytest.approx(paper_std(alpha, fan(kernel, mode)), rel=0.03)
    assert abs(values.mean()) < 4 * values.std() / math.sqrt(values.size)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("alpha", [0.0, 0.25, 2.0])
def test_uniform_samples_fill_the_interval_of_the_papers_variance(mode, alpha):
    limit = math.sqrt(3.0) * paper_std(alpha, fan(CONV, mode))
    values = sample(PReLUHeUniform(alpha, mode=mode, seed=3), CONV[0])
    assert np.abs(values).max() <= limit * (1 + 1e-6)
    assert np.abs(values).max() > 0.99 * limit
    # A uniform distribution puts a quarter of its mass in each half of each side.
    assert np.mean(np.abs(values) < limit / 2) == pytest.approx(0.5, abs=0.02)


def test_fan_in_and_fan_out_differ_for_a_conv_kernel_as_its_channels_do():
    shape = (5, 5, 8, 32)  # fan_in = 200, fan_out = 800
    std_in = sample(PReLUHeNormal(0.25, mode="fan_in", seed=4), shape).std()
    std_out = sample(PReLUHeNormal(0.25, mode="fan_out", seed=4), shape).std()
    assert std_in / std_out == pytest.approx(math.sqrt(800 / 200), rel=0.05)


def test_normal_is_untruncated_unlike_keras_he_normal():
    shape = DENSE[0]
    ours = sample(PReLUHeNormal(0.0, seed=5), shape)
    keras_he = sample(keras.initializers.HeNormal(seed=5), shape)
    std = paper_std(0.0, DENSE[1])
    # A normal puts 1.24% of its mass beyond 2.5 stddev; Keras' truncated
    # normal stops at 2 / 0.8796 = 2.27 stddev.
    assert np.mean(np.abs(ours) > 2.5 * std) == pytest.approx(0.0124, abs=0.002)
    assert np.abs(keras_he).max() < 2.28 * std


def test_alpha_zero_has_keras_he_normal_variance():
    shape = DENSE[0]
    ours = sample(PReLUHeNormal(0.0, seed=6), shape)
    keras_he = sample(keras.initializers.HeNormal(seed=7), shape)
    assert ours.var() == pytest.approx(2.0 / DENSE[1], rel=0.02)
    assert keras_he.var() == pytest.approx(2.0 / DENSE[1], rel=0.02)


def test_alpha_zero_uniform_is_keras_he_uniform_bit_for_bit():
    ours = sample(PReLUHeUniform(0.0, seed=8), CONV[0])
    keras_he = sample(keras.initializers.HeUniform(seed=8), CONV[0])
    np.testing.assert_array_equal(ours, keras_he)


def test_matches_torch_kaiming_normal_gain():
    # torch.nn.init.calculate_gain("leaky_relu", a) = sqrt(2 / (1 + a**2)),
    # kaiming_normal_ stddev = gain / sqrt(fan_in).
    alpha, fan_in = 0.25, DENSE[1]
    torch_std = math.sqrt(2.0 / (1 + alpha**2)) / math.sqrt(fan_in)
    values = sample(PReLUHeNormal(alpha, seed=9), DENSE[0])
    assert values.std() == pytest.approx(torch_std, rel=0.02)


def test_default_is_the_papers_initial_slope_and_fan_in():
    init = PReLUHeNormal()
    assert init.alpha == 0.25
    assert init.mode == "fan_in"
    assert init.scale == pytest.approx(2.0 / 1.0625)


def test_same_integer_seed_gives_the_same_values():
    a = sample(PReLUHeNormal(0.25, seed=10), (20, 30))
    b = sample(PReLUHeNormal(0.25, seed=10), (20, 30))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_other_float_dtypes_get_the_same_std(dtype):
    values = PReLUHeNormal(0.5, seed=11)(DENSE[0], dtype=dtype)
    assert keras.backend.standardize_dtype(values.dtype) == dtype
    std = np.asarray(keras.ops.cast(values, "float32"), dtype=np.float64).std()
    assert std == pytest.approx(paper_std(0.5, DENSE[1]), rel=0.03)


@pytest.mark.parametrize("cls", [PReLUHeNormal, PReLUHeUniform])
def test_config_round_trip_keeps_alpha_mode_and_seed(cls):
    init = cls(alpha=0.7, mode="fan_out", seed=12)
    config = init.get_config()
    assert config == {"alpha": 0.7, "mode": "fan_out", "seed": 12}
    clone = cls.from_config(config)
    np.testing.assert_array_equal(sample(clone, (6, 4)), sample(init, (6, 4)))


@pytest.mark.parametrize("cls", [PReLUHeNormal, PReLUHeUniform])
def test_serialize_and_deserialize_by_registered_name(cls):
    serialized = keras.initializers.serialize(cls(alpha=0.1, seed=13))
    assert serialized["registered_name"] == f"prelu_tutorial>{cls.__name__}"
    restored = keras.initializers.deserialize(serialized)
    assert type(restored) is cls
    assert (restored.alpha, restored.mode, restored.scale) == (0.1, "fan_in", 2.0 / 1.01)


def test_a_saved_model_keeps_the_initializer(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, kernel_initializer=PReLUHeUniform(0.5, mode="fan_out")),
            pt.PReLU(),
        ]
    )
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path).layers[0].kernel_initializer
    assert type(restored) is PReLUHeUniform
    assert (restored.alpha, restored.mode) == (0.5, "fan_out")


@settings(max_examples=50, deadline=None)
@given(
    alpha=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    mode=st.sampled_from(["fan_in", "fan_out"]),
)
def test_scale_is_two_over_one_plus_alpha_squared_for_every_finite_alpha(alpha, mode):
    init = PReLUHeNormal(alpha, mode=mode)
    assert init.scale == pytest.approx(2.0 / (1.0 + alpha * alpha), rel=1e-12)
    assert PReLUHeNormal.from_config(init.get_config()).scale == init.scale


def test_numpy_scalar_alpha_is_accepted_as_a_python_float():
    init = PReLUHeNormal(np.float32(0.25))
    assert type(init.alpha) is float
    assert init.alpha == 0.25


@pytest.mark.parametrize("cls", [PReLUHeNormal, PReLUHeUniform])
@pytest.mark.parametrize("alpha", [True, "0.25", None, [0.25], 1j])
def test_non_real_alpha_is_a_type_error_naming_it(cls, alpha):
    with pytest.raises(TypeError, match=rf"{cls.__name__}: alpha must be a real number"):
        cls(alpha)


@pytest.mark.parametrize("cls", [PReLUHeNormal, PReLUHeUniform])
@pytest.mark.parametrize("alpha", [math.nan, math.inf, -math.inf])
def test_non_finite_alpha_is_a_value_error_naming_it(cls, alpha):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: alpha must be finite, got {alpha}"):
        cls(alpha)


def test_alpha_whose_variance_underflows_is_a_value_error():
    with pytest.raises(ValueError, match="underflows to 0"):
        PReLUHeNormal(1e200)


@pytest.mark.parametrize("cls", [PReLUHeNormal, PReLUHeUniform])
@pytest.mark.parametrize("mode", ["fan_avg", "FAN_IN", ""])
def test_unknown_mode_is_a_value_error_naming_it(cls, mode):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: mode must be 'fan_in'.*{mode!r}"):
        cls(0.25, mode=mode)


def test_non_string_mode_is_a_type_error():
    with pytest.raises(TypeError, match="PReLUHeUniform: mode must be the string"):
        PReLUHeUniform(0.25, mode=1)

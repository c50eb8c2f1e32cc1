"""prelu_tutorial.layers.PReLU: shapes, arguments, errors, saving, precision, training."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from cases import small_model

import prelu_tutorial as pt
from prelu_tutorial import ops


def build(layer, shape):
    layer.build(shape)
    return tuple(layer.alpha.shape)


def test_default_alpha_is_channel_wise_with_the_papers_initial_value():
    layer = pt.PReLU()
    assert build(layer, (None, 5, 7, 3)) == (1, 1, 3)
    np.testing.assert_array_equal(layer.alpha.numpy(), np.full((1, 1, 3), 0.25, np.float32))


def test_default_alpha_on_a_dense_input_is_one_per_feature():
    assert build(pt.PReLU(), (None, 6)) == (6,)


@pytest.mark.parametrize(
    ("shared_axes", "expected"),
    [
        ([1, 2], (1, 1, 3)),
        ([-3, -2], (1, 1, 3)),
        (1, (1, 7, 3)),
        (-1, (5, 7, 1)),
        ((2,), (5, 1, 3)),
        ((), (5, 7, 3)),
        ([1, 2, 3], (1, 1, 1)),
    ],
    ids=str,
)
def test_shared_axes_set_alpha_to_one_on_each_shared_axis(shared_axes, expected):
    assert build(pt.PReLU(shared_axes=shared_axes), (None, 5, 7, 3)) == expected


@pytest.mark.parametrize("shared_axes", [[1, 2], [1], [3], [], [1, 2, 3]], ids=str)
def test_alpha_shape_equals_keras_prelu_for_the_same_explicit_arguments(shared_axes):
    shape = (None, 5, 7, 3)
    ours = build(pt.PReLU(shared_axes=shared_axes), shape)
    theirs = build(keras.layers.PReLU(shared_axes=shared_axes), shape)
    assert ours == theirs


def test_outputs_equal_keras_prelu_with_matching_settings():
    x = np.random.default_rng(0).normal(size=(4, 5, 7, 3)).astype(np.float32)
    init = keras.initializers.Constant(0.3)
    ours = pt.PReLU(alpha_initializer=init, shared_axes=[1, 2])(x)
    theirs = keras.layers.PReLU(alpha_initializer=init, shared_axes=[1, 2])(x)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-7)


def test_negative_shared_axis_counts_from_the_end_unlike_keras():
    shape = (None, 5, 7, 3)
    assert build(pt.PReLU(shared_axes=[-1]), shape) == (5, 7, 1)
    # keras.layers.PReLU turns -1 into param index -2: it shares the wrong axis.
    assert build(keras.layers.PReLU(shared_axes=[-1]), shape) == (5, 1, 3)


def test_channels_first_puts_one_alpha_per_channel_on_axis_one():
    assert build(pt.PReLU(data_format="channels_first"), (None, 3, 5, 7)) == (3, 1, 1)


def test_channels_first_output_matches_numpy_per_channel():
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 4)).astype(np.float32)
    layer = pt.PReLU(data_format="channels_first")
    layer.build(x.shape)
    layer.alpha.assign(np.array([0.1, 0.5, 2.0], np.float32).reshape(3, 1, 1))
    expected = ops.prelu_numpy(x, np.array([0.1, 0.5, 2.0]).reshape(1, 3, 1, 1))
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6)


def test_unknown_spatial_sizes_work_with_the_default():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, pt.PReLU()(inputs))
    for size in (4, 9):
        x = -np.ones((2, size, size, 3), np.float32)
        np.testing.assert_allclose(model(x).numpy(), np.full_like(x, -0.25))


def test_unknown_axis_that_keeps_its_own_alphas_is_a_value_error_naming_the_axis():
    with pytest.raises(ValueError, match="axis 1 .* unknown size"):
        pt.PReLU(shared_axes=())(keras.Input((None, 3)))


@pytest.mark.parametrize("shared_axes", [0, [0, 1], -4])
def test_batch_axis_in_shared_axes_is_a_value_error_at_build(shared_axes):
    layer = pt.PReLU(shared_axes=shared_axes)
    with pytest.raises(ValueError, match=r"is the batch axis for an input of rank 4"):
        layer.build((None, 5, 7, 3))


@pytest.mark.parametrize("shared_axes", [4, [1, 7], -5])
def test_out_of_range_shared_axis_is_a_value_error_naming_axis_and_rank(shared_axes):
    bad = shared_axes if isinstance(shared_axes, int) else shared_axes[-1]
    with pytest.raises(ValueError, match=rf"shared axis {bad} is out of range .* rank 4"):
        pt.PReLU(shared_axes=shared_axes).build((None, 5, 7, 3))


@pytest.mark.parametrize("shared_axes", [["1"], [1.0], [True]])
def test_non_integer_shared_axis_is_a_value_error(shared_axes):
    with pytest.raises(ValueError, match="shared_axes must hold integers"):
        pt.PReLU(shared_axes=shared_axes)


def test_unknown_data_format_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="'channels_middle'"):
        pt.PReLU(data_format="channels_middle")


@pytest.mark.parametrize(
    ("argument", "identifier", "expected_class"),
    [
        ("alpha_initializer", "zeros", keras.initializers.Zeros),
        ("alpha_regularizer", "L1", keras.regularizers.L1),
        ("alpha_constraint", "MaxNorm", keras.constraints.MaxNorm),
        ("alpha_constraint", "non_neg", keras.constraints.NonNeg),
    ],
)
def test_accepts_the_same_identifiers_as_keras(argument, identifier, expected_class):
    assert isinstance(getattr(pt.PReLU(**{argument: identifier}), argument), expected_class)


def test_regularizer_adds_its_penalty_to_the_layer_losses():
    layer = pt.PReLU(alpha_regularizer=keras.regularizers.L2(0.5))
    layer(np.ones((1, 4), np.float32))
    np.testing.assert_allclose(float(sum(layer.losses)), 0.5 * 4 * 0.25**2, rtol=1e-6)


def test_non_neg_constraint_keeps_alpha_non_negative_after_an_update():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, pt.PReLU(alpha_constraint="non_neg")(inputs))
    model.compile(optimizer=keras.optimizers.SGD(10.0), loss="mse")
    # Negative inputs with targets above the output push alpha below zero.
    model.fit(-np.ones((8, 2), np.float32), np.full((8, 2), 5.0, np.float32), verbose=0)
    assert (model.layers[-1].alpha.numpy() >= 0).all()


def test_config_round_trip_rebuilds_an_equal_layer():
    layer = pt.PReLU(
        alpha_initializer="zeros",
        alpha_regularizer="L1",
        shared_axes=-1,
        data_format="channels_first",
    )
    clone = pt.PReLU.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.shared_axes == (-1,)


def test_keras_file_round_trip_gives_bit_identical_outputs(tmp_path):
    inputs = keras.Input((None, None, 3))
    hidden = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    outputs = pt.PReLU(shared_axes=[1, 2])(pt.PReLU()(hidden))
    model = keras.Model(inputs, outputs)
    model.layers[2].alpha.assign(np.array([[[0.1, -0.2, 1.5, 0.3]]], np.float32))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(2).normal(size=(2, 6, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert isinstance(loaded.layers[2], pt.PReLU)


@pytest.mark.parametrize(
    ("policy", "compute"), [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")]
)
def test_mixed_precision_computes_in_half_and_keeps_alpha_float32(policy, compute, float32_policy):
    keras.mixed_precision.set_global_policy(policy)
    layer = pt.PReLU()
    y = layer(np.array([[-2.0, 4.0]], np.float32))
    assert y.dtype == tf.as_dtype(compute)
    assert layer.alpha.dtype == "float32"
    np.testing.assert_allclose(np.asarray(y, np.float32), [[-0.5, 4.0]])


def test_compute_output_shape_is_the_input_shape():
    assert pt.PReLU().compute_output_shape((None, 5, 3)) == (None, 5, 3)


def test_mask_passes_through_so_masked_steps_are_ignored_downstream():
    tokens = np.array([[3, 1, 0, 0], [2, 0, 0, 0]])
    inputs = keras.Input((4,), dtype="int32")
    embedded = keras.layers.Embedding(5, 2, mask_zero=True)(inputs)
    pooled = keras.layers.GlobalAveragePooling1D()(pt.PReLU()(embedded))
    model = keras.Model(inputs, pooled)
    activated = ops.prelu_numpy(model.layers[1].embeddings.numpy()[tokens], 0.25)
    expected = [activated[0, :2].mean(axis=0), activated[1, :1].mean(axis=0)]
    np.testing.assert_allclose(model(tokens).numpy(), expected, rtol=1e-6)


def test_a_tiny_model_lowers_its_loss_and_moves_alpha():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(128, 4)).astype(np.float32)
    y = np.where(x > 0, x, 0.8 * x)  # a PReLU with alpha = 0.8 generated the targets
    inputs = keras.Input((4,))
    model = keras.Model(inputs, pt.PReLU()(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < before / 10
    assert np.all(model.layers[-1].alpha.numpy() > 0.5)


@pytest.mark.parametrize("shared_axes", [1.0, "1", b"1"], ids=repr)
def test_a_scalar_shared_axes_that_is_not_an_integer_is_a_value_error_naming_it(shared_axes):
    with pytest.raises(ValueError, match=f"shared_axes={shared_axes!r}"):
        pt.PReLU(shared_axes=shared_axes)


@pytest.mark.parametrize(
    "shared_axes", [np.int64(1), [np.int32(1), np.int64(2)], np.array([1, 2])], ids=repr
)
def test_numpy_integers_in_shared_axes_are_accepted_like_keras(shared_axes):
    layer = pt.PReLU(shared_axes=shared_axes)
    assert build(layer, (None, 5, 7, 3))[-1] == 3
    assert all(type(axis) is int for axis in layer.shared_axes)
    assert pt.PReLU.from_config(layer.get_config()).shared_axes == layer.shared_axes


@pytest.mark.parametrize("shape", [(2, 5), (2, 4, 4, 3, 1), (2, 4, 4, 5)], ids=str)
def test_a_built_layer_rejects_an_input_of_another_rank_or_channel_count(shape):
    layer = pt.PReLU()
    layer(np.ones((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="expected"):
        layer(np.ones(shape, np.float32))


def test_a_built_layer_still_takes_other_sizes_on_shared_axes():
    layer = pt.PReLU()
    layer(np.ones((2, 4, 4, 3), np.float32))
    x = -np.ones((1, 7, 2, 3), np.float32)
    np.testing.assert_array_equal(layer(x).numpy(), ops.prelu_numpy(x, 0.25))


@pytest.mark.parametrize("implementation", pt.layers.IMPLEMENTATIONS)
def test_mixed_float16_alpha_gradient_is_summed_in_float32(implementation, float32_policy, request):
    if implementation == "custom_op":
        request.getfixturevalue("custom_op_library")
    keras.mixed_precision.set_global_policy("mixed_float16")
    layer = pt.PReLU(implementation=implementation)
    x = -np.ones((4, 100, 200, 1), np.float16)  # 80,000 per channel: float16 max is 65504
    with tf.GradientTape() as tape:
        y = layer(x)
    grad = tape.gradient(y, layer.alpha.value)
    assert y.dtype == tf.float16
    assert grad.dtype == tf.float32 and grad.numpy().ravel().tolist() == [-80_000.0]


# The implementation: XLA's compiled kernel or the C++ op --------------------


def test_layer_rejects_an_unknown_implementation():
    with pytest.raises(ValueError, match="implementation must be one of"):
        pt.PReLU(implementation="cuda")


def test_layer_config_holds_the_implementation_and_defaults_to_auto():
    assert pt.PReLU().get_config()["implementation"] == "auto"
    layer = pt.PReLU.from_config(pt.PReLU(implementation="custom_op").get_config())
    assert layer.implementation == "custom_op"


def test_fit_with_the_custom_op_matches_fit_with_xla(custom_op_library):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((32, 6, 6, 3)).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)
    weights = []
    for implementation in ("xla", "custom_op"):
        model = small_model(implementation)
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for from_xla, from_op in zip(*weights, strict=True):
        np.testing.assert_allclose(from_op, from_xla, rtol=1e-4, atol=1e-6)


def test_custom_op_layer_with_shared_axes_apart_matches_the_xla_layer(custom_op_library):
    x = tf.constant(np.random.default_rng(13).standard_normal((2, 3, 4, 5)), tf.float32)
    layers = {
        implementation: pt.PReLU(
            shared_axes=[2],
            alpha_initializer=keras.initializers.RandomUniform(-1.0, 1.0, seed=4),
            implementation=implementation,
        )
        for implementation in ("xla", "custom_op")
    }
    outputs = {}
    for implementation, layer in layers.items():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        outputs[implementation] = (y, *tape.gradient(y, [x, layer.alpha]))
    assert tuple(layers["custom_op"].alpha.shape) == (3, 1, 5)
    (y_op, dx_op, dalpha_op), (y_xla, dx_xla, dalpha_xla) = (
        outputs["custom_op"],
        outputs["xla"],
    )
    np.testing.assert_array_equal(y_op.numpy().view(np.uint32), y_xla.numpy().view(np.uint32))
    np.testing.assert_array_equal(dx_op.numpy().view(np.uint32), dx_xla.numpy().view(np.uint32))
    np.testing.assert_allclose(dalpha_op.numpy(), dalpha_xla.numpy(), rtol=1e-6)


def test_keras_file_round_trip_keeps_the_custom_op_and_outputs(custom_op_library, tmp_path):
    model = small_model("custom_op")
    x = np.random.default_rng(9).standard_normal((2, 6, 6, 3)).astype(np.float32)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.implementation for layer in loaded.layers if isinstance(layer, pt.PReLU)] == [
        "custom_op",
        "custom_op",
    ]
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


@pytest.mark.parametrize("implementation", pt.layers.IMPLEMENTATIONS)
def test_fit_with_jit_compile_trains_and_uses_xla_unless_the_layer_is_the_custom_op(
    implementation, op_determinism_off, request
):
    if implementation != "xla":
        request.getfixturevalue("custom_op_library")
    rng = np.random.default_rng(15)
    x = rng.standard_normal((16, 6, 6, 3)).astype(np.float32)
    y = rng.standard_normal((16, 1)).astype(np.float32)
    model = small_model(implementation)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", jit_compile=True)
        history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    refused = [w for w in caught if "doesn't support `jit_compile=True`" in str(w.message)]
    assert np.isfinite(history.history["loss"][0])
    assert model.jit_compile is (implementation != "custom_op")
    assert len(refused) == (implementation == "custom_op")


def test_mixed_float16_custom_op_gives_the_xla_layers_bits(custom_op_library, float32_policy):
    # alpha stays a float32 variable: both take alpha * x in float32 and round
    # once to float16. The op used to round alpha to float16 first.
    keras.mixed_precision.set_global_policy("mixed_float16")
    rng = np.random.default_rng(16)
    x = tf.constant(rng.uniform(-8, 8, (4, 8, 8, 16)), tf.float16)
    results = {}
    for implementation in pt.layers.IMPLEMENTATIONS:
        layer = pt.PReLU(
            alpha_initializer=keras.initializers.RandomUniform(-1.0, 1.0, seed=5),
            implementation=implementation,
        )
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        dx, dalpha = tape.gradient(y, [x, layer.alpha.value])
        results[implementation] = (y.numpy(), dx.numpy(), dalpha.numpy())
    (y_op, dx_op, dalpha_op), (y_xla, dx_xla, dalpha_xla) = (
        results["custom_op"],
        results["xla"],
    )
    assert y_op.dtype == np.float16 and dalpha_op.dtype == np.float32
    np.testing.assert_array_equal(y_op.view(np.uint16), y_xla.view(np.uint16))
    np.testing.assert_array_equal(dx_op.view(np.uint16), dx_xla.view(np.uint16))
    np.testing.assert_allclose(dalpha_op, dalpha_xla, rtol=1e-5)

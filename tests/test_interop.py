"""pt.layers.to_keras and from_keras: the same model on the other layer, the same numbers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import prelu_tutorial as pt
from prelu_tutorial.layers import from_keras, to_keras

# (input shape without the batch, pt.PReLU arguments): every layout pt.PReLU supports.
LAYOUTS = {
    "dense, channel-wise": ((5,), {}),
    "dense, one alpha": ((5,), {"shared_axes": [1]}),
    "image, channel-wise": ((4, 4, 3), {}),
    "image, per element": ((4, 4, 3), {"shared_axes": ()}),
    "image, shared rows": ((4, 4, 3), {"shared_axes": [1]}),
    "image, negative axes": ((4, 4, 3), {"shared_axes": [-3, -2]}),
    "image, one alpha": ((4, 4, 3), {"shared_axes": [1, 2, 3]}),
    "channels first": ((3, 4, 4), {"data_format": "channels_first"}),
    "unknown spatial sizes": ((None, None, 3), {}),
    "rank 5": ((2, 3, 4, 2), {"shared_axes": [2, 4]}),
}


def model_with(layer, shape):
    inputs = keras.Input(shape)
    hidden = keras.layers.Dense(shape[-1] if shape[-1] else 3)(inputs)
    return keras.Model(inputs, layer(hidden))


def outputs_and_gradients(model, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x)
        weights = tf.reshape(tf.cast(tf.range(tf.size(y)), y.dtype), tf.shape(y)) / 7.0
        loss = tf.reduce_sum(y * weights)
    grads = tape.gradient(loss, [x, *model.trainable_weights])
    return [y.numpy()] + [g.numpy() for g in grads]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_to_keras_and_back_keep_outputs_gradients_and_alphas(name):
    shape, arguments = LAYOUTS[name]
    model = model_with(pt.PReLU(**arguments), shape)
    layer = model.layers[-1]
    layer.alpha.assign(np.random.default_rng(0).uniform(-1, 2, layer.alpha.shape))
    concrete = tuple(4 if size is None else size for size in shape)
    x = np.random.default_rng(1).normal(size=(2, *concrete)).astype(np.float32)
    x.flat[0] = np.inf
    expected = outputs_and_gradients(model, x)

    converted = to_keras(model)
    (keras_layer,) = [lay for lay in converted.layers if isinstance(lay, keras.layers.PReLU)]
    assert type(keras_layer) is keras.layers.PReLU
    assert all(axis > 0 for axis in keras_layer.shared_axes or [])
    np.testing.assert_array_equal(keras_layer.alpha.numpy(), layer.alpha.numpy())
    back = from_keras(converted)
    assert isinstance(back.layers[-1], pt.PReLU)
    for other in (converted, back):
        for actual, wanted in zip(outputs_and_gradients(other, x), expected, strict=True):
            np.testing.assert_allclose(actual, wanted, rtol=1e-6, atol=1e-6)


def test_to_keras_needs_no_prelu_tutorial_to_load(tmp_path):
    model = model_with(pt.PReLU(), (4, 4, 3))
    path = tmp_path / "plain.keras"
    to_keras(model).save(path)
    # Loaded with Keras' own registry only: no custom object is named in the file.
    assert "prelu_tutorial" not in keras.saving.load_model(path).to_json()


def test_conversion_refuses_subclassed_and_unbuilt_models():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.act = pt.PReLU()

        def call(self, x):
            return self.act(x)

    net = Net()
    net(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="subclassed"):
        to_keras(net)
    with pytest.raises(ValueError, match="build the model first"):
        to_keras(keras.Sequential([pt.PReLU()]))
    with pytest.raises(TypeError, match="model must be a keras.Model"):
        from_keras(pt.PReLU())


def test_from_keras_refuses_a_negative_keras_axis():
    model = model_with(keras.layers.PReLU(shared_axes=[-1]), (4, 3))
    with pytest.raises(ValueError, match="positive axes"):
        from_keras(model)

"""pt.PReLU(implementation="auto"): which kernels run in each context, with the same values."""

import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import prelu_tutorial as pt
from prelu_tutorial import custom_op, kernel_choice, xla
from tests.cases import small_model

pytestmark = pytest.mark.skipif(
    bool(tf.config.list_logical_devices("GPU")), reason="a GPU is visible: auto runs xla only"
)


@pytest.fixture
def ran(monkeypatch, custom_op_library):
    """The kernels each PReLU call ran, in order, spied on at both entry points."""
    kernels: list[str] = []
    for module, name in ((xla, "xla"), (custom_op, "custom_op")):
        original = module.prelu

        def spy(x, alpha, original=original, name=name):
            kernels.append(name)
            return original(x, alpha)

        monkeypatch.setattr(module, "prelu", spy)
    return kernels




def _data(seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, 6, 6, 3)).astype(np.float32)
    return x, rng.standard_normal((16, 1)).astype(np.float32)


def test_an_eager_call_runs_the_cpp_op(ran):
    pt.PReLU()(-np.ones((2, 3), np.float32))
    assert ran == ["custom_op"]


def test_keras_training_steps_run_the_cpp_op_and_inference_graphs_xla(ran):
    x, y = _data()
    model = small_model("auto")
    model.compile(optimizer="sgd", loss="mse")
    ran.clear()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.train_on_batch(x[:4], y[:4])
    assert set(ran) == {"custom_op"}
    ran.clear()
    model.predict(x, verbose=0)
    model.evaluate(x, y, verbose=0)
    assert set(ran) == {"xla"}


def test_fit_with_jit_compile_traces_xla_and_keras_keeps_xla_on(ran, op_determinism_off):
    x, y = _data()
    model = small_model("auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # Keras' "doesn't support jit_compile"
        model.compile(optimizer="sgd", loss="mse", jit_compile=True)
        ran.clear()
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert model.jit_compile is True
    assert set(ran) == {"xla"}


def test_a_tf_function_runs_the_cpp_op_only_for_training_true(ran):
    layer = pt.PReLU()
    x = tf.constant(-np.ones((2, 3), np.float32))
    layer(x)
    ran.clear()
    tf.function(lambda t: layer(t, training=True))(x)
    tf.function(lambda t: layer(t))(x)
    tf.function(lambda t: layer(t, training=True), jit_compile=True)(x)
    assert ran == ["custom_op", "xla", "xla"]


def test_a_gpu_or_an_op_that_does_not_build_means_xla(ran, monkeypatch):
    layer = pt.PReLU()
    x = -np.ones((2, 3), np.float32)
    monkeypatch.setattr(kernel_choice, "gpu_visible", lambda: True)
    layer(x)
    monkeypatch.setattr(kernel_choice, "gpu_visible", lambda: False)
    monkeypatch.setattr(kernel_choice, "custom_op_ready", lambda: False)
    layer(x)
    assert ran == ["xla", "xla"]


def test_a_failed_build_warns_once_names_the_remedy_and_is_not_retried(monkeypatch):
    attempts = []

    def fail():
        attempts.append(1)
        raise custom_op.CompilerNotFoundError("no C++ compiler found")

    monkeypatch.setattr(kernel_choice, "_custom_op_state", {})
    monkeypatch.setattr(custom_op, "load_library", fail)
    with pytest.warns(RuntimeWarning, match="implementation='xla'") as caught:
        assert kernel_choice.custom_op_ready() is False
        assert kernel_choice.custom_op_ready() is False
    assert len(attempts) == 1 and len(caught) == 1
    assert "no C++ compiler found" in str(caught[0].message)


def test_auto_gives_the_bits_of_both_kernels_eagerly_and_in_training(custom_op_library):
    # Output and dx have the same bits on every path; dalpha up to the order of its sum.
    rng = np.random.default_rng(5)
    x = tf.constant(rng.standard_normal((4, 5, 5, 8)).astype(np.float32))
    x = tf.tensor_scatter_nd_update(x, [[0, 0, 0, 0], [1, 1, 1, 1]], [np.inf, -0.0])
    results = {}
    for implementation in ("auto", "xla", "custom_op"):
        layer = pt.PReLU(
            alpha_initializer=keras.initializers.RandomUniform(-1, 1, seed=2),
            implementation=implementation,
        )
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y = layer(x)
        results[implementation] = (
            y.numpy(),
            tape.gradient(y, x).numpy(),
            tape.gradient(y, layer.alpha.value).numpy(),
        )
    for other in ("xla", "custom_op"):
        np.testing.assert_array_equal(results["auto"][0], results[other][0])
        np.testing.assert_array_equal(results["auto"][1], results[other][1])
        np.testing.assert_allclose(results["auto"][2], results[other][2], rtol=1e-5)
    assert np.isfinite(results["auto"][2]).all()  # +inf adds min(0, inf) * g = 0


def test_a_model_exported_by_keras_loads_without_the_cpp_library(tmp_path, custom_op_library):
    model = small_model("auto")
    x = _data()[0][:2]
    model(x)
    model.export(str(tmp_path / "saved"))  # no verbose=: Keras 3.5 (the floor) lacks it
    program = (
        "import sys, numpy as np, tensorflow as tf\n"
        f"loaded = tf.saved_model.load({str(tmp_path / 'saved')!r})\n"
        "x = np.load(sys.argv[1])\n"
        "np.save(sys.argv[2], loaded.serve(tf.constant(x)).numpy())\n"
    )
    np.save(tmp_path / "x.npy", x)
    subprocess.run(
        [sys.executable, "-c", program, str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), model(x).numpy(), rtol=1e-6)

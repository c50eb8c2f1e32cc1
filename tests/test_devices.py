"""Tests for prelu_tutorial.devices.

No machine here has a GPU, so the GPU branch of each decision is checked
with a made-up device list. Splitting the CPU only works before TensorFlow's
runtime starts, so that test runs in a fresh Python process.
"""

import subprocess
import sys

import pytest
import tensorflow as tf

from prelu_tutorial import devices


def _fake(*names):
    """Logical devices from short names, e.g. _fake("CPU:0", "GPU:0")."""
    return [tf.config.LogicalDevice(f"/device:{name}", name.split(":")[0]) for name in names]


def test_describe_devices_has_one_line_per_physical_device():
    lines = devices.describe_devices()
    assert len(lines) == len(tf.config.list_physical_devices())
    assert lines[0].startswith("CPU:0")


def test_describe_devices_names_a_gpus_model_and_compute_capability(monkeypatch):
    physical = [
        tf.config.PhysicalDevice("/physical_device:CPU:0", "CPU"),
        tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU"),
    ]
    details = {"device_name": "NVIDIA T4", "compute_capability": (7, 5)}
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda *kind: physical)
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: details)
    assert devices.describe_devices() == [
        "CPU:0  CPU",
        "GPU:0  NVIDIA T4 (compute capability 7.5)",
    ]


def test_pick_device_auto_prefers_a_gpu():
    assert devices.pick_device(devices=_fake("CPU:0", "GPU:0", "GPU:1")) == "/GPU:0"


def test_pick_device_auto_falls_back_to_the_cpu_without_a_gpu():
    assert devices.pick_device(devices=_fake("CPU:0")) == "/CPU:0"


def test_pick_device_returns_the_requested_index():
    assert devices.pick_device("GPU", 1, devices=_fake("CPU:0", "GPU:0", "GPU:1")) == "/GPU:1"


def test_pick_device_accepts_lowercase_kind():
    assert devices.pick_device("cpu", 1, devices=_fake("CPU:0", "CPU:1")) == "/CPU:1"


def test_pick_device_asks_tensorflow_by_default():
    expected = "/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"
    assert devices.pick_device() == expected


def test_pick_device_without_a_gpu_says_how_to_get_one():
    with pytest.raises(ValueError, match=r"GPU:0, but TensorFlow sees CPU:0\. On Colab"):
        devices.pick_device("GPU", devices=_fake("CPU:0"))


def test_pick_device_rejects_an_index_past_the_last_device():
    with pytest.raises(ValueError, match=r"asked for GPU:2, but TensorFlow sees CPU:0, GPU:0"):
        devices.pick_device("GPU", 2, devices=_fake("CPU:0", "GPU:0"))


def test_pick_device_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of .* got 'cuda'"):
        devices.pick_device("cuda")


@pytest.mark.parametrize(
    ("index", "error"), [(-1, ValueError), (1.0, TypeError), (True, TypeError)]
)
def test_pick_device_rejects_an_index_that_is_not_a_natural_number(index, error):
    with pytest.raises(error, match="index must be an integer >= 0"):
        devices.pick_device("CPU", index, devices=_fake("CPU:0", "CPU:1"))


@pytest.mark.parametrize(
    "device", ["/GPU:0", "gpu:1", "/job:localhost/replica:0/task:0/device:GPU:0"]
)
def test_mixed_precision_policy_is_float16_on_a_gpu(device):
    assert devices.mixed_precision_policy(device) == "mixed_float16"


AMX = {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"}


def test_mixed_precision_policy_is_bfloat16_on_a_tpu():
    assert devices.mixed_precision_policy("/TPU:3") == "mixed_bfloat16"


def test_mixed_precision_policy_is_bfloat16_on_a_cpu_with_amx():
    assert devices.mixed_precision_policy("/CPU:0", flags=AMX) == "mixed_bfloat16"


@pytest.mark.parametrize(
    "flags",
    [
        {"avx2", "fma"},
        {"avx512f", "avx512_bf16"},  # bfloat16 dot products but no AMX: slower where measured
        {"avx512f", "amx_bf16"},  # no tiles reported
        set(),
    ],
)
def test_mixed_precision_policy_is_float32_on_a_cpu_without_amx(flags):
    assert devices.mixed_precision_policy("/CPU:0", flags=flags) == "float32"


def test_mixed_precision_policy_reads_flags_in_any_case():
    assert devices.mixed_precision_policy("/CPU:0", flags={"AMX_BF16", "AMX_TILE"}) == (
        "mixed_bfloat16"
    )


def test_mixed_precision_policy_ignores_cpu_flags_for_a_gpu():
    assert devices.mixed_precision_policy("/GPU:0", flags=set()) == "mixed_float16"
    assert devices.mixed_precision_policy("/GPU:0", flags=AMX) == "mixed_float16"


def test_mixed_precision_policy_reads_this_machines_flags_by_default():
    expected = "mixed_bfloat16" if {"amx_bf16", "amx_tile"} <= devices.cpu_flags() else "float32"
    assert devices.mixed_precision_policy("/CPU:0") == expected


def test_mixed_precision_policy_rejects_flags_given_as_one_string():
    with pytest.raises(TypeError, match="flags must be a collection .* got 'amx_bf16 amx_tile'"):
        devices.mixed_precision_policy("/CPU:0", flags="amx_bf16 amx_tile")


def test_cpu_flags_reads_the_first_processors_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu AVX512_BF16 amx_tile\n\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    assert devices.cpu_flags(str(cpuinfo)) == {"fpu", "avx512_bf16", "amx_tile"}


def test_cpu_flags_reads_an_arm_features_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert devices.cpu_flags(str(cpuinfo)) == {"fp", "asimd", "bf16"}


def test_cpu_flags_is_empty_where_there_is_no_cpuinfo(tmp_path):
    assert devices.cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize("device", ["cuda", "", None])
def test_mixed_precision_policy_rejects_what_is_not_a_device(device):
    with pytest.raises(ValueError, match="device must name a CPU, GPU or TPU"):
        devices.mixed_precision_policy(device)


def test_mirrored_devices_uses_every_gpu_when_there_are_two_or_more():
    fake = _fake("CPU:0", "CPU:1", "GPU:0", "GPU:1", "GPU:2")
    assert devices.mirrored_devices(fake) == ["/GPU:0", "/GPU:1", "/GPU:2"]


def test_mirrored_devices_uses_logical_cpus_beside_a_single_gpu():
    assert devices.mirrored_devices(_fake("CPU:0", "CPU:1", "GPU:0")) == ["/CPU:0", "/CPU:1"]


def test_mirrored_devices_needs_two_devices():
    with pytest.raises(ValueError, match=r"1 GPU\(s\) and 1 logical CPU\(s\).*split_cpu\(2\)"):
        devices.mirrored_devices(_fake("CPU:0", "GPU:0"))


def test_split_cpu_makes_logical_cpus_before_the_runtime_starts():
    script = (
        "import tensorflow as tf\n"
        "from prelu_tutorial import devices\n"
        "devices.split_cpu(3)\n"
        "print([d.name for d in tf.config.list_logical_devices('CPU')])\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert run.stdout.strip() == "['/device:CPU:0', '/device:CPU:1', '/device:CPU:2']"


def test_split_cpu_again_with_the_same_count_is_a_no_op_after_the_runtime_starts():
    _ = tf.constant(1.0) + 1.0  # starts the runtime
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = len(tf.config.get_logical_device_configuration(cpu) or []) or 1
    devices.split_cpu(current)
    assert len(tf.config.list_logical_devices("CPU")) == current


def test_split_cpu_after_the_runtime_starts_says_to_restart():
    _ = tf.constant(1.0) + 1.0  # starts the runtime
    with pytest.raises(RuntimeError, match=r"split_cpu\(7\) must run before .* Restart"):
        devices.split_cpu(7)


@pytest.mark.parametrize(("count", "error"), [(0, ValueError), (2.0, TypeError), (True, TypeError)])
def test_split_cpu_rejects_a_count_that_is_not_a_positive_integer(count, error):
    with pytest.raises(error, match="count must be an integer >= 1"):
        devices.split_cpu(count)


@pytest.mark.skipif(
    bool(tf.config.list_physical_devices("GPU")), reason="needs a machine without a GPU"
)
def test_enable_memory_growth_sets_nothing_without_a_gpu():
    assert devices.enable_memory_growth() == []


def test_prelu_placement_reports_the_requested_device():
    placed = devices.prelu_placement("/CPU:1", formulation="where")
    assert {"Greater", "Mul", "SelectV2"} <= {op for op, _ in placed}
    assert all(device.endswith("/device:CPU:1") for _, device in placed)


def test_prelu_placement_rejects_an_unknown_formulation():
    with pytest.raises(ValueError, match="formulation must be 'prelu' or one of .* got 'tanh'"):
        devices.prelu_placement("/CPU:0", formulation="tanh")


def test_prelu_placement_rejects_what_is_not_a_device():
    with pytest.raises(ValueError, match="device must be a device name .* got 'gpu please'"):
        devices.prelu_placement("gpu please")

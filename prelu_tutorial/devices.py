"""Which devices TensorFlow sees, and choosing among them, for the GPU chapter.

Everything here takes the device as data, so the same code runs on a laptop's
CPU, a Colab GPU or a machine with several GPUs. The decisions (which device,
which mixed-precision policy, which devices to mirror over) accept a list of
devices, so they can be checked with a made-up list on a machine that has no
GPU.

Two functions change how TensorFlow sets up its devices, :func:`split_cpu` and
:func:`enable_memory_growth`; TensorFlow only allows that before its runtime
starts, that is before the first op runs. Call them right after the imports.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Sequence

import tensorflow as tf

from prelu_tutorial._number_checks import check_int
from prelu_tutorial.ops import FORMULATIONS

__all__ = [
    "DEVICE_KINDS",
    "cpu_flags",
    "describe_devices",
    "enable_memory_growth",
    "mirrored_devices",
    "mixed_precision_policy",
    "pick_device",
    "prelu_placement",
    "split_cpu",
]

DEVICE_KINDS = ("auto", "CPU", "GPU", "TPU")
"""The values :func:`pick_device` accepts for ``kind`` (case-insensitive)."""

_NO_GPU_HINT = (
    "On Colab choose Runtime > Change runtime type > a GPU; elsewhere check that a "
    "CUDA build of TensorFlow is installed (pip install 'tensorflow[and-cuda]')."
)
_TOO_LATE = (
    "must run before TensorFlow runs its first op (its runtime is already set up). "
    "Restart the kernel (or Python) and call it right after the imports."
)


def describe_devices() -> list[str]:
    """Describes every physical device TensorFlow sees, one line each.

    A GPU line adds the model name and CUDA compute capability that
    TensorFlow reports, e.g. ``"GPU:0  NVIDIA T4 (compute capability 7.5)"``
    (what it reports depends on the driver). Listing physical devices does not
    start TensorFlow's runtime, so this is safe before :func:`split_cpu`.

    Returns:
        One string per physical device, CPUs first, in TensorFlow's order.
    """
    lines = []
    for device in tf.config.list_physical_devices():
        short_name = device.name.removeprefix("/physical_device:")
        if device.device_type != "GPU":
            lines.append(f"{short_name}  {device.device_type}")
            continue
        details = tf.config.experimental.get_device_details(device)
        line = f"{short_name}  {details.get('device_name', 'unknown model')}"
        capability = details.get("compute_capability")
        if capability is not None:
            line += f" (compute capability {capability[0]}.{capability[1]})"
        lines.append(line)
    return lines


def _logical(devices: Sequence[tf.config.LogicalDevice] | None) -> list:
    """The given devices, or TensorFlow's logical devices if ``None``."""
    return list(tf.config.list_logical_devices() if devices is None else devices)


def _short_name(device: tf.config.LogicalDevice) -> str:
    """``"GPU:0"`` for ``/device:GPU:0`` or ``/job:localhost/.../device:GPU:0``."""
    return f"{device.device_type}:{tf.DeviceSpec.from_string(device.name).device_index}"


def _names_of(devices: Sequence[tf.config.LogicalDevice], kind: str) -> list[str]:
    """The ``tf.device`` names (``/CPU:0``, ...) of the devices of one kind, in order."""
    names = []
    for device in devices:
        if device.device_type == kind:
            names.append(f"/{_short_name(device)}")
    return names


def pick_device(
    kind: str = "auto",
    index: int = 0,
    devices: Sequence[tf.config.LogicalDevice] | None = None,
) -> str:
    """Chooses a device to run on and returns its name for ``tf.device``.

    Args:
        kind: ``"auto"`` (a GPU if there is one, else the CPU), ``"CPU"``,
            ``"GPU"`` or ``"TPU"``, in any case.
        index: Which device of that kind, counting from 0.
        devices: The logical devices to choose from; ``None`` asks TensorFlow
            (``tf.config.list_logical_devices()``, which starts its runtime).
            Pass a list of ``tf.config.LogicalDevice`` to decide for another
            machine.

    Returns:
        A device name such as ``"/GPU:0"`` or ``"/CPU:0"``.

    Raises:
        TypeError: If ``index`` is not an integer.
        ValueError: If ``kind`` is unknown, ``index`` is negative, or there
            is no device of that kind with that index (the
            message lists what there is).
    """
    if not isinstance(kind, str) or kind.upper() not in {k.upper() for k in DEVICE_KINDS}:
        raise ValueError(f"pick_device: kind must be one of {DEVICE_KINDS}, got {kind!r}.")
    index = check_int(index, "index", owner="pick_device")
    devices = _logical(devices)
    kind = kind.upper()
    if kind == "AUTO":
        kind = "GPU" if _names_of(devices, "GPU") else "CPU"
    names = _names_of(devices, kind)
    if index >= len(names):
        seen = ", ".join(_short_name(device) for device in devices) or "nothing"
        hint = f" {_NO_GPU_HINT}" if kind == "GPU" and not names else ""
        raise ValueError(
            f"pick_device: asked for {kind}:{index}, but TensorFlow sees {seen}.{hint}"
        )
    return names[index]


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags the CPU reports, as Linux lists them in ``/proc/cpuinfo``.

    Args:
        cpuinfo: The file to read; the default is Linux's.

    Returns:
        The flags of the first processor, lower case (``"avx512_bf16"``,
        ``"amx_bf16"``, ...); an empty set where the file does not exist or
        cannot be read (macOS, Windows), so callers fall back to their
        portable choice.
    """
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as file:
            for line in file:
                name, _, value = line.partition(":")
                if name.strip() in ("flags", "Features"):
                    return frozenset(value.lower().split())
    except OSError:
        pass
    return frozenset()


# Intel's Advanced Matrix Extensions: the bfloat16 tile multiply and the tiles it needs.
_FAST_BFLOAT16_CPU_FLAGS = frozenset({"amx_bf16", "amx_tile"})


def mixed_precision_policy(device: str, flags: Iterable[str] | None = None) -> str:
    """The Keras mixed-precision policy that is expected to pay on a device.

    A heuristic, not a measurement: time one epoch under each policy on your
    own machine before you keep one.

    GPUs (compute capability 7.0 and up) have fast float16 units, so
    ``"mixed_float16"``; its narrow exponent range needs loss scaling, which
    ``Model.compile`` adds for this policy. TPUs compute in bfloat16, which
    has float32's range: ``"mixed_bfloat16"``, no loss scaling. A CPU gets
    ``"mixed_bfloat16"`` only if it reports Intel's AMX bfloat16 tile units
    (both the ``amx_bf16`` and ``amx_tile`` flags), which oneDNN uses for
    bfloat16 matmuls and convolutions. Elsewhere bfloat16 on a CPU mostly
    adds conversions, so ``"float32"``. AVX512_BF16 alone does not count: it
    adds bfloat16 dot products to the vector units but no matrix units
    (chapter 6 times both policies on such a CPU, in alternating runs).
    Either way variables (PReLU's alpha too) stay float32.

    Args:
        device: A device name such as ``"/GPU:0"``, ``"/CPU:0"`` or
            ``"/job:localhost/replica:0/task:0/device:TPU:0"``.
        flags: The CPU's feature flags; ``None`` reads them with
            :func:`cpu_flags`. Pass a set to decide for another machine.
            Used for a CPU only.

    Returns:
        ``"mixed_float16"`` for a GPU, ``"mixed_bfloat16"`` for a TPU or a
        CPU with AMX bfloat16, ``"float32"`` for any other CPU.

    Raises:
        ValueError: If ``device`` does not name a CPU, GPU or TPU.
        TypeError: If ``flags`` is a string rather than a collection of flags.
    """
    if isinstance(flags, str):
        raise TypeError(
            "mixed_precision_policy: flags must be a collection of flag names such as "
            f"{{'amx_bf16', 'amx_tile'}}, not one string, got {flags!r}."
        )
    device_type = None
    if isinstance(device, str):
        try:
            device_type = tf.DeviceSpec.from_string(device).device_type
        except ValueError:
            device_type = None
    if device_type not in ("CPU", "GPU", "TPU"):
        raise ValueError(
            f"mixed_precision_policy: device must name a CPU, GPU or TPU, such as '/GPU:0', "
            f"got {device!r}."
        )
    if device_type == "GPU":
        return "mixed_float16"
    if device_type == "TPU":
        return "mixed_bfloat16"
    flags = cpu_flags() if flags is None else {flag.lower() for flag in flags}
    return "mixed_bfloat16" if _FAST_BFLOAT16_CPU_FLAGS <= set(flags) else "float32"


def mirrored_devices(devices: Sequence[tf.config.LogicalDevice] | None = None) -> list[str]:
    """The devices ``tf.distribute.MirroredStrategy`` should keep a replica on.

    Every GPU when there are two or more; otherwise every logical CPU, which
    is two or more only after :func:`split_cpu` (a demo on one machine: the
    replicas share the same cores, so it shows the mechanics, not a speed-up).

    Args:
        devices: The logical devices to choose from; ``None`` asks TensorFlow.

    Returns:
        Device names such as ``["/GPU:0", "/GPU:1"]`` or ``["/CPU:0", "/CPU:1"]``.

    Raises:
        ValueError: If there are fewer than two GPUs and fewer than two logical
            CPUs.
    """
    devices = _logical(devices)
    gpus = _names_of(devices, "GPU")
    if len(gpus) >= 2:
        return gpus
    cpus = _names_of(devices, "CPU")
    if len(cpus) >= 2:
        return cpus
    raise ValueError(
        f"mirrored_devices: mirroring needs two devices, but TensorFlow sees {len(gpus)} "
        f"GPU(s) and {len(cpus)} logical CPU(s). Call split_cpu(2) right after the imports "
        "to demonstrate on one CPU."
    )


def split_cpu(count: int) -> None:
    """Splits the first physical CPU into ``count`` logical CPU devices.

    They appear as ``/CPU:0`` ... ``/CPU:{count-1}`` and share the same cores
    and memory, which is enough to run ``tf.distribute`` code on a laptop.
    Calling it again with the same ``count`` does nothing, so a notebook cell
    can be re-run.

    Args:
        count: Number of logical CPUs, at least 1.

    Raises:
        TypeError: If ``count`` is not an integer.
        ValueError: If ``count < 1``.
        RuntimeError: If TensorFlow's runtime has already started with a
            different split.
    """
    count = check_int(count, "count", minimum=1, owner="split_cpu")
    cpu = tf.config.list_physical_devices("CPU")[0]
    # No configuration means TensorFlow's default: the CPU is one device.
    current = len(tf.config.get_logical_device_configuration(cpu) or []) or 1
    if current == count:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as error:
        raise RuntimeError(f"split_cpu({count}) {_TOO_LATE}") from error


def enable_memory_growth() -> list[str]:
    """Lets every GPU allocate memory as needed instead of all of it at start.

    By default TensorFlow reserves nearly all of a GPU's memory when its
    runtime starts; with memory growth it starts small and grows, so other
    processes (another notebook, a second framework) can share the GPU.
    Memory that was grown is not given back until the process ends.

    Returns:
        The physical GPUs it set (``[]`` on a machine without a GPU), e.g.
        ``["GPU:0"]``.

    Raises:
        RuntimeError: If TensorFlow's runtime has already started and a GPU
            does not have memory growth on.
    """
    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        if not tf.config.experimental.get_memory_growth(gpu):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError as error:
                raise RuntimeError(f"enable_memory_growth() {_TOO_LATE}") from error
        gpus.append(gpu.name.removeprefix("/physical_device:"))
    return gpus


_PLACEMENT_SCRIPT = """
import sys
import tensorflow as tf
import prelu_tutorial as pt

device, formulation = sys.argv[1], sys.argv[2]
function = pt.prelu if formulation == "prelu" else pt.ops.FORMULATIONS[formulation]
spec = tf.DeviceSpec.from_string(device)
if spec.device_type == "CPU" and (spec.device_index or 0) > 0:
    pt.devices.split_cpu(spec.device_index + 1)
tf.debugging.set_log_device_placement(True)
x = tf.constant([[-2.0, -0.5, 0.0, 0.5, 2.0]])
with tf.device(device):
    tf.function(function)(x, tf.constant([0.25]))
"""

# One line of TensorFlow's placement log: "node name: (OpType): device".
_PLACEMENT_LINE = re.compile(r"^(?P<node>[^:\s]+): \((?P<op>\w+)\): (?P<device>\S+)$")


def prelu_placement(
    device: str, formulation: str = "where", timeout: float = 120.0
) -> list[tuple[str, str]]:
    """Where each op of one PReLU call ran, from TensorFlow's placement log.

    TensorFlow logs placement (``tf.debugging.set_log_device_placement``)
    only if it is switched on before its runtime starts, and it writes the log
    to the process's standard output, under Python's feet. So this runs one
    PReLU, as a ``tf.function`` under ``tf.device(device)``, in a fresh Python
    process and reads that process's log.

    Args:
        device: The device to ask for, e.g. ``"/GPU:0"`` or ``"/CPU:0"``
            (``"/CPU:1"`` works too: the child process splits its CPU). With
            soft placement (TensorFlow's default) a device that does not exist
            falls back to one that does, and the log shows which.
        formulation: A name in :data:`prelu_tutorial.ops.FORMULATIONS` (the
            default ``"where"`` is the definition, written with plain ops), or
            ``"prelu"`` for :func:`prelu_tutorial.prelu`.
        timeout: Seconds to wait for the child process.

    Returns:
        ``(op_type, device)`` for each op TensorFlow placed, in log order,
        leaving out its own bookkeeping ops (``_Arg``, ``_Retval``, ...).

    Raises:
        ValueError: If ``device`` is not a device name or ``formulation`` is
            unknown.
        RuntimeError: If the child process fails; the message holds the end
            of its error output.
    """
    try:
        spec = tf.DeviceSpec.from_string(device) if isinstance(device, str) else None
    except ValueError:
        spec = None
    if spec is None or spec.device_type is None:
        raise ValueError(
            f"prelu_placement: device must be a device name such as '/GPU:0', got {device!r}."
        )
    if formulation != "prelu" and formulation not in FORMULATIONS:
        raise ValueError(
            f"prelu_placement: formulation must be 'prelu' or one of {sorted(FORMULATIONS)}, "
            f"got {formulation!r}."
        )
    run = subprocess.run(
        [sys.executable, "-c", _PLACEMENT_SCRIPT, device, formulation],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(
            f"prelu_placement: running PReLU on {device} failed:\n{run.stderr[-2000:]}"
        )
    placed = []
    for line in run.stdout.splitlines():
        match = _PLACEMENT_LINE.match(line.strip())
        if match and not match["op"].startswith("_"):
            placed.append((match["op"], match["device"]))
    return placed

"""Choice of numeric precision and XLA for the machine at hand, with the reason for each.

Measured on the 2-core CPUs this project develops on, TF 2.21: mixed_bfloat16 trains the U-Net
~6x faster than float32 with AMX tile units (`bench`: 6.38x) and 1.57x with AVX512-BF16 dot
products alone (AMD EPYC Zen 4: 0.81 vs 0.52 steps/s, 128^2 patches, batch 16); mixed_float16 is
~6x slower (no fp16 units); XLA with bfloat16 is ~9x slower than TF's oneDNN kernels. On a
2-core AVX2 CPU (float32) XLA trained 1.10x faster once compiled, less than its compile time
costs short runs, and TF cannot compile cross-worker collectives on CPUs: `auto` keeps XLA off
on CPUs. On NVIDIA GPUs tensor cores make mixed_float16 fastest and XLA fuses the many small
ops.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import keras
import tensorflow as tf

BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@dataclasses.dataclass(frozen=True)
class HardwarePlan:
    """What `fit` will use and why; printed at the start of every run."""

    device: str  # "gpu" or "cpu"
    precision: str  # a Keras dtype policy name
    precision_reason: str
    xla: bool
    xla_reason: str


def cpu_flags() -> frozenset[str]:
    """CPU feature flags from /proc/cpuinfo (empty where it does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def gpu_count() -> int:
    return len(tf.config.list_physical_devices("GPU"))


def choose_precision(requested: str, gpus: int, flags: frozenset[str]) -> tuple[str, str]:
    if requested != "auto":
        return requested, "requested"
    if gpus:
        return "mixed_float16", "GPU: float16 tensor cores, loss scaling on"
    if flags & BF16_CPU_FLAGS:
        found = ", ".join(sorted(flags & BF16_CPU_FLAGS))
        speedup = "~6x" if "amx_bf16" in flags else "~1.6x"
        return "mixed_bfloat16", f"CPU with native bfloat16 ({found}): {speedup} float32's speed"
    return "float32", "CPU without native bfloat16: reduced precision would be slower"


def choose_xla(requested: str, gpus: int) -> tuple[bool, str]:
    if requested == "on":
        return True, "requested"
    if requested == "off":
        return False, "requested"
    if gpus:
        return True, "GPU: XLA fuses elementwise ops into the convolutions"
    return False, "CPU: XLA ~9x slower with bfloat16, only +10% with float32 once compiled"


def check_xla(plan: HardwarePlan, workers: int) -> None:
    """Refuse XLA with several CPU workers before any work: TF 2.21 cannot compile cross-worker
    collectives on CPUs ("Collectives are not yet implemented for CPU devices when compiling
    with XLA"), and the failure comes at the first step, followed by a process abort."""
    if plan.xla and plan.device == "cpu" and workers > 1:
        raise ValueError(
            f"--xla on cannot train on {workers} CPU workers: TensorFlow's XLA "
            "does not compile collectives on CPUs; use --xla off (or auto)"
        )


def plan(precision: str = "auto", xla: str = "auto") -> HardwarePlan:
    """Resolve "auto" settings for this machine."""
    gpus = gpu_count()
    chosen_precision, precision_reason = choose_precision(precision, gpus, cpu_flags())
    chosen_xla, xla_reason = choose_xla(xla, gpus)
    return HardwarePlan(
        "gpu" if gpus else "cpu", chosen_precision, precision_reason, chosen_xla, xla_reason
    )


def inference_precision(requested: str = "auto") -> tuple[str, str]:
    """Precision for denoising: the same rule as training (bf16 was 2.1x float32 for predict
    on this CPU, max 3 grey levels apart); "float32" when exactness matters more than speed."""
    return choose_precision(requested, gpu_count(), cpu_flags())


@contextlib.contextmanager
def precision_policy(name: str | None) -> Iterator[None]:
    """Run a block under a Keras global dtype policy (None: the current one), restoring the
    previous policy however the block ends: layers take the global policy when built, so a
    model built or loaded inside computes in `name` while everything else stays as it was."""
    previous = keras.mixed_precision.global_policy()
    try:
        if name:
            keras.mixed_precision.set_global_policy(name)
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)

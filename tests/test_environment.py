"""The two pinned environments stay one environment apart from TensorFlow's build."""
from __future__ import annotations

import re
from pathlib import Path

ENV = Path(__file__).resolve().parents[1] / "environment"


def _pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ENV / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            package, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", package.lower())] = version
    return pins


def test_gpu_profile_is_the_cpu_pins_with_tensorflows_cuda_build():
    cpu, gpu = _pins("requirements.txt"), _pins("requirements-gpu.txt")
    assert cpu.pop("tensorflow-cpu") == gpu.pop("tensorflow[and-cuda]")  # one TensorFlow version
    cuda = {p for p in gpu if p.startswith("nvidia-") and p.endswith("-cu12")}
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-nccl-cu12"} <= cuda  # pinned, not left to pip
    assert {p: v for p, v in gpu.items() if p not in cuda} == cpu  # every other pin identical

"""The accelerator catalog: a closed, exact, case-sensitive set of node types and what each target needs.

Read by the validator (names, per-node counts) and by the plan, which copies an entry for the targets."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Accelerator:
    name: str
    devices_per_node: int
    device_memory_gb: int
    kubernetes_resource: str | None  # extended resource requested per pod
    kubernetes_node_label: tuple[str, str] | None  # (label key, value) selecting the model
    slurm_gres: str | None  # gres name, e.g. "gpu"
    slurm_gres_type: str | None  # gres type, e.g. "h100" (used only when slurm.gres_type is on)
    ray_resource: str | None  # "GPU" or "NPU"
    visibility_env: str | None  # CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES

    def to_json(self) -> dict:
        out = asdict(self)
        out["kubernetes_node_label"] = list(self.kubernetes_node_label) if self.kubernetes_node_label else None
        return out


def _nvidia(count: int, model: str, memory: int, product: str, gres_type: str) -> Accelerator:
    return Accelerator(f"GPU_{count}x{model}", count, memory, "nvidia.com/gpu",
                       ("nvidia.com/gpu.product", product), "gpu", gres_type, "GPU", "CUDA_VISIBLE_DEVICES")


def _ascend(count: int, model: str, memory: int) -> Accelerator:
    return Accelerator(f"NPU_{count}x{model}", count, memory, f"huawei.com/Ascend{model}",
                       ("accelerator", f"huawei-Ascend{model}"), "npu", model.lower(), "NPU",
                       "ASCEND_RT_VISIBLE_DEVICES")


def _any_gpu(count: int) -> Accelerator:
    """Any NVIDIA model: no node label, untyped gres. What an upstream AReaL config (which names none) derives."""
    return Accelerator(f"GPU_{count}xANY", count, 0, "nvidia.com/gpu", None, "gpu", None, "GPU",
                       "CUDA_VISIBLE_DEVICES")


CPU = Accelerator("CPU", 0, 0, None, None, None, None, None, None)

CATALOG: dict[str, Accelerator] = {a.name: a for a in (
    _nvidia(1, "A10", 24, "NVIDIA-A10", "a10"),
    _nvidia(1, "H100", 80, "NVIDIA-H100-80GB-HBM3", "h100"),
    _nvidia(8, "H100", 80, "NVIDIA-H100-80GB-HBM3", "h100"),
    _nvidia(8, "H800", 80, "NVIDIA-H800", "h800"),
    _nvidia(8, "H200", 141, "NVIDIA-H200", "h200"),
    _nvidia(8, "B200", 180, "NVIDIA-B200", "b200"),
    _nvidia(8, "A100_80GB", 80, "NVIDIA-A100-SXM4-80GB", "a100"),
    _nvidia(8, "A100_40GB", 40, "NVIDIA-A100-SXM4-40GB", "a100"),
    _nvidia(8, "L40S", 48, "NVIDIA-L40S", "l40s"),
    _nvidia(4, "A100_80GB", 80, "NVIDIA-A100-SXM4-80GB", "a100"),
    _ascend(16, "910B", 64),
    *(_any_gpu(n) for n in (1, 2, 4, 8)),
    CPU,
)}


def table() -> str:
    """`areal catalog` as text: each type and what every target requests for it."""
    lines = [f"{'TYPE':<18} {'PER NODE':>8} {'MEMORY':>7}  {'KUBERNETES':<24} {'SLURM GRES':<12} RAY"]
    for a in CATALOG.values():
        gres = f"{a.slurm_gres}:{a.slurm_gres_type}" if a.slurm_gres else "-"
        lines.append(f"{a.name:<18} {a.devices_per_node:>8} {str(a.device_memory_gb) + 'G':>7}  "
                     f"{a.kubernetes_resource or '-':<24} {gres:<12} {a.ray_resource or '-'}")
    return "\n".join(lines) + "\n"

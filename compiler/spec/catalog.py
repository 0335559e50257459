"""The accelerator catalog: a closed, exact, case-sensitive set of node types and what each target needs.

Read by the validator (names, per-node counts) and by the plan, which copies an entry for the targets."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Accelerator:
    name: str
    devices_per_node: int
    device_memory_gb: int | None  # None: any model, so unknown
    kubernetes_resource: str | None  # extended resource requested per pod
    kubernetes_node_labels: tuple[tuple[str, tuple[str, ...]], ...]  # (label, accepted values): all must match
    slurm_gres: str | None  # gres name, e.g. "gpu"
    slurm_gres_type: str | None  # gres type, e.g. "h100" (used only when slurm.gres_type is on)
    ray_resource: str | None  # "GPU" or "NPU"
    visibility_env: str | None  # CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES

    def to_json(self) -> dict:
        out = asdict(self)
        out["kubernetes_node_labels"] = {key: list(values) for key, values in self.kubernetes_node_labels}
        return out


def _nvidia(count: int, model: str, memory: int, products: tuple[str, ...], gres_type: str) -> Accelerator:
    """GPU Feature Discovery labels the model as nvidia.com/gpu.product; one model has several spellings by SKU
    (the list is what the node affinity accepts; `kubernetes.node_affinity` overrides it)."""
    return Accelerator(f"GPU_{count}x{model}", count, memory, "nvidia.com/gpu",
                       (("nvidia.com/gpu.product", products),), "gpu", gres_type, "GPU", "CUDA_VISIBLE_DEVICES")


def _ascend_910b(count: int) -> Accelerator:
    """Huawei's Ascend device plugin: resource huawei.com/Ascend910 for the whole 910 family, the node labels
    `accelerator` and `accelerator-type` tell 910B servers apart (huawei.com/Ascend910B is HAMi's vNPU name):
    module-910b-8 for the 8-NPU Atlas 800T/800I A2 servers, module-910b-16 for 16-NPU ones."""
    return Accelerator(f"NPU_{count}x910B", count, 64, "huawei.com/Ascend910",
                       (("accelerator", ("huawei-Ascend910",)), ("accelerator-type", (f"module-910b-{count}",))),
                       "npu", "910b", "NPU", "ASCEND_RT_VISIBLE_DEVICES")


def _any_gpu(count: int) -> Accelerator:
    """Any NVIDIA model: no node label, untyped gres. What an upstream AReaL config (which names none) derives."""
    return Accelerator(f"GPU_{count}xANY", count, None, "nvidia.com/gpu", (), "gpu", None, "GPU",
                       "CUDA_VISIBLE_DEVICES")


CPU = Accelerator("CPU", 0, 0, None, (), None, None, None, None)

H100 = ("NVIDIA-H100-80GB-HBM3",)
A100_80GB = ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe")

CATALOG: dict[str, Accelerator] = {a.name: a for a in (
    _nvidia(1, "A10", 24, ("NVIDIA-A10",), "a10"),
    _nvidia(1, "H100", 80, H100, "h100"),
    _nvidia(8, "H100", 80, H100, "h100"),
    _nvidia(8, "H800", 80, ("NVIDIA-H800",), "h800"),
    _nvidia(8, "H200", 141, ("NVIDIA-H200", "NVIDIA-H200-SXM", "NVIDIA-H200-SXM5-141GB", "NVIDIA-H200-NVL"), "h200"),
    _nvidia(8, "B200", 180, ("NVIDIA-B200",), "b200"),
    _nvidia(8, "A100_80GB", 80, A100_80GB, "a100"),
    _nvidia(8, "A100_40GB", 40, ("NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB"), "a100"),
    _nvidia(8, "L40S", 48, ("NVIDIA-L40S",), "l40s"),
    _nvidia(4, "A100_80GB", 80, A100_80GB, "a100"),
    _ascend_910b(8),
    _ascend_910b(16),
    *(_any_gpu(n) for n in (1, 2, 4, 8)),
    CPU,
)}


def table() -> str:
    """`areal catalog` as text: each type and what every target requests for it."""
    lines = [f"{'TYPE':<18} {'PER NODE':>8} {'MEMORY':>7}  {'KUBERNETES':<24} {'SLURM GRES':<12} RAY"]
    for a in CATALOG.values():
        gres = ":".join(filter(None, (a.slurm_gres, a.slurm_gres_type))) or "-"  # untyped: any model
        memory = f"{a.device_memory_gb}G" if a.device_memory_gb and a.devices_per_node else "-"
        lines.append(f"{a.name:<18} {a.devices_per_node:>8} {memory:>7}  "
                     f"{a.kubernetes_resource or '-':<24} {gres:<12} {a.ray_resource or '-'}")
    return "\n".join(lines) + "\n"

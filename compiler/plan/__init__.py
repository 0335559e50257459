"""The plan package: the IR (model), its resolver (build, placement) and its pictures (view).

Imported by the pipeline, the targets and `areal plan`; the names below are the package's public face."""
from areal_compiler.plan.model import DRIVER, PLAN_VERSION, Plan

__all__ = ["DRIVER", "PLAN_VERSION", "Plan", "PlanError", "canonical_json", "experiment_sha256", "resolve"]
RESOLVER = ("PlanError", "experiment_sha256", "resolve")


def __getattr__(name: str):
    """The resolver (and the whole experiment format it imports) and canonical_json (and pydantic-core) only when
    asked for: the operator verbs import a target module to find a run's backend, and need only the model."""
    if name in RESOLVER:
        from areal_compiler.plan import build

        return getattr(build, name)
    if name == "canonical_json":
        from areal_compiler.canonical import canonical_json

        return canonical_json
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

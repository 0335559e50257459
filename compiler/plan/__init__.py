"""The plan package: the IR (model), its resolver (build, placement) and its pictures (view).

Imported by the pipeline, the targets and `areal plan`; the names below are the package's public face."""
from areal_compiler.plan.build import PlanError, experiment_sha256, resolve
from areal_compiler.plan.model import DRIVER, PLAN_VERSION, Plan, canonical_json

__all__ = ["DRIVER", "PLAN_VERSION", "Plan", "PlanError", "canonical_json", "experiment_sha256", "resolve"]

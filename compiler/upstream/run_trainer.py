"""Runs an unchanged upstream AReaL training script as the job's driver, its trainers using the planned scheduler.

Usage: `python agent.pyz run-trainer SCRIPT.py [ARGS...]` (or `-m MODULE [ARGS...]`), which the agent runs for a
driver with `upstream: areal`, with AREAL_PLAN_FILE and AREAL_NODE_HOSTS (or AREAL_NODE_HOSTS_FILE) set;
`--config areal-config.yaml` reads the imported config beside plan.json. Upstream's PPO/GRPO, SFT, RW and DPO trainers each pick Local/Ray/Slurm in
their own `_init_scheduler`; as each trainer module is imported, that factory is replaced by one returning
PlannedScheduler. Neither upstream nor the script is edited. Tested with areal 1.0.4."""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import runpy
import sys

from . import CONFIG_NAME

TRAINERS = {"areal.trainer.rl_trainer": "PPOTrainer", "areal.trainer.sft_trainer": "SFTTrainer",
            "areal.trainer.rw_trainer": "RWTrainer", "areal.trainer.dpo_trainer": "DPOTrainer"}


def _planned_scheduler(trainer):
    from .areal_scheduler import PlannedScheduler

    return PlannedScheduler(exp_config=trainer.config)


def _patch(module) -> None:
    getattr(module, TRAINERS[module.__name__])._init_scheduler = _planned_scheduler


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        _patch(module)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds the trainer modules the normal way and patches each right after it has run."""

    def find_spec(self, name, path, target=None):
        if name not in TRAINERS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Make every upstream trainer use the planned scheduler, whether imported already or later."""
    for name in TRAINERS:
        if name in sys.modules:
            _patch(sys.modules[name])
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


def compiled_config(argv: list[str]) -> list[str]:
    """`--config areal-config.yaml` (what the import appends) names the copy beside plan.json, wherever the job
    runs; any other `--config` is the user's own path, left as written."""
    folder = os.path.dirname(os.environ.get("AREAL_PLAN_FILE", ""))
    out = list(argv)
    for i, arg in enumerate(out):
        if folder and arg == "--config" and i + 1 < len(out) and out[i + 1] == CONFIG_NAME:
            out[i + 1] = os.path.join(folder, CONFIG_NAME)
        elif folder and arg == f"--config={CONFIG_NAME}":
            out[i] = f"--config={os.path.join(folder, CONFIG_NAME)}"
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    install()
    argv = compiled_config(argv)
    if argv[0] == "-m":  # as `python -m MODULE` and `python SCRIPT` would, put the folder first on sys.path
        sys.path.insert(0, os.getcwd())
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        sys.argv = list(argv)
        runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The planned-scheduler test's driver: upstream's own TrainController on the compiled plan's running workers.

Run by tests/areal/test_planned_scheduler.py as `python -m areal_compiler.upstream.run_trainer planned_driver.py`
in the AReaL venv (AREAL_PLAN_FILE set); prints one JSON object with what it saw."""
from __future__ import annotations

import asyncio
import json
import os
import types

from areal.api import Job
from areal.api.cli_args import (BaseExperimentConfig, ClusterSpecConfig, NameResolveConfig, SchedulingSpec,
                                TrainEngineConfig)
from areal.api.io_struct import FinetuneSpec
from areal.infra.controller.train_controller import TrainController
from areal.infra.utils.concurrent import run_async_task

from areal_compiler.upstream.areal_scheduler import PlannedScheduler
from mini_engine import MiniEngine


def mismatches(config) -> dict:
    out = {}
    try:
        PlannedScheduler(exp_config=BaseExperimentConfig(experiment_name="planned", trial_name="other",
                                                         cluster=config.cluster))
        out["config"] = "accepted"
    except Exception as exc:
        out["config"] = f"{type(exc).__name__}: {exc}"
    for key, job in {"replicas": Job(role="actor", replicas=3),
                     "role": Job(role="critic", replicas=1),
                     "devices": Job(role="actor", replicas=2, tasks=[SchedulingSpec(gpu=1)]),
                     "strategy": Job(role="proxy", replicas=2)}.items():
        try:
            PlannedScheduler().create_workers(job)
            out[key] = "accepted"
        except Exception as exc:
            out[key] = f"{type(exc).__name__}: {exc}"
    return out


def main() -> None:
    from areal.trainer.sft_trainer import SFTTrainer  # imported after run_trainer installed its hook
    root = os.environ["PLANNED_FILEROOT"]  # the experiment's fileroot and name service, as the workers were told
    config = BaseExperimentConfig(experiment_name="planned", trial_name="t0", cluster=ClusterSpecConfig(
        fileroot=root, name_resolve=NameResolveConfig(nfs_record_root=f"{root}/name_resolve")))
    factory = type(SFTTrainer._init_scheduler(types.SimpleNamespace(config=config))).__name__
    scheduler = PlannedScheduler(exp_config=config)
    controller = TrainController(MiniEngine, TrainEngineConfig(backend="fsdp:d2"), scheduler)
    controller.initialize(role="actor", ft_spec=FinetuneSpec(total_train_epochs=1, dataset_size=2,
                                                             train_batch_size=2))
    workers = scheduler.get_workers("actor")
    async def world_sums():  # every rank at once: all_reduce is a collective
        return await asyncio.gather(*[scheduler.async_call_engine(w.id, "world_sum", f"actor/{rank}", value=rank + 1)
                                      for rank, w in enumerate(workers)])
    sums = run_async_task(world_sums)
    single = scheduler.call_engine(workers[1].id, "is_data_parallel_head", "actor/1")
    forked = scheduler.fork_workers("proxy", "actor")
    proxies = [(w.id, w.ip, w.worker_ports) for w in scheduler.get_workers("proxy")]
    controller.destroy()  # deletes role actor (reverse rank order); the fork is deleted on its own, as upstream
    scheduler.delete_workers("proxy")
    print(json.dumps({"factory": factory, "workers": [(w.id, w.ip, w.worker_ports) for w in workers],
                      "sums": sums, "single": single, "forked": forked, "proxies": proxies,
                      "mismatches": mismatches(config), "after_delete": sorted(scheduler._workers)}))


main()

"""The real-AReaL job test's driver: a small controller on upstream's own classes, run unchanged as a job's driver.

The experiment (tests/areal/test_job.py) sets `driver.upstream: areal`, so the agent runs this as `python agent.pyz
run-trainer job_driver.py --config CONFIG`: upstream's own SFTTrainer scheduler factory then returns the planned
scheduler, and this script never names it. It reads its SFT config with upstream's load_expr_config, creates
(attaches to) the actor workers from the config's `actor` engine, configures them, creates MiniEngine on them,
runs a gloo all_reduce across the actor ranks on the planned master port, forks (attaches to) the colocated proxy
role, reads the workers' own name_resolve registrations, and prints one JSON object."""
from __future__ import annotations

import asyncio
import json
import sys
import types

from areal.api.cli_args import SFTConfig, load_expr_config
from areal.api.io_struct import FinetuneSpec
from areal.infra.controller.train_controller import TrainController
from areal.infra.utils.concurrent import run_async_task
from areal.trainer.sft_trainer import SFTTrainer
from areal.utils import name_resolve, names

from mini_engine import MiniEngine


def main() -> None:
    config, _ = load_expr_config(sys.argv[1:], SFTConfig)
    scheduler = SFTTrainer._init_scheduler(types.SimpleNamespace(config=config))  # upstream's factory
    controller = TrainController(MiniEngine, config.actor, scheduler)
    controller.initialize(role="actor", ft_spec=FinetuneSpec(total_train_epochs=1, dataset_size=2,
                                                             train_batch_size=2))
    workers = scheduler.get_workers("actor")

    async def world_sums():  # every rank at once: all_reduce is a collective
        return await asyncio.gather(*[scheduler.async_call_engine(w.id, "world_sum", f"actor/{rank}", value=rank + 1)
                                      for rank, w in enumerate(workers)])

    sums = run_async_task(world_sums)
    forked = scheduler.fork_workers("proxy", "actor")
    proxies = [(w.id, w.ip, w.worker_ports) for w in scheduler.get_workers("proxy")]
    registered = {f"{role}/{i}": name_resolve.get(names.worker_discovery(config.experiment_name, config.trial_name,
                                                                         role, str(i)))
                  for role in ("actor", "proxy") for i in range(len(workers))}
    controller.destroy()
    scheduler.delete_workers("proxy")
    print(json.dumps({"scheduler": type(scheduler).__name__, "workers": [(w.id, w.ip, w.worker_ports)
                                                                        for w in workers],
                      "sums": sums, "forked": forked, "proxies": proxies, "registered": registered}))


main()

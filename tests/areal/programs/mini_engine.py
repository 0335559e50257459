"""A small upstream TrainEngine for the planned-scheduler test: a gloo process group and a sum over the ranks.

Loaded by upstream's RPC server (`/create_engine`) in the AReaL venv; the methods upstream's TrainController calls
at set-up are real, every other abstract method of TrainEngine raises NotImplementedError."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from areal.api import TrainEngine


class MiniEngine(TrainEngine):
    def __init__(self, config=None, **kwargs):
        self.config = config

    def create_process_group(self, parallel_strategy=None):
        dist.init_process_group("gloo", init_method="env://")  # RANK, WORLD_SIZE, MASTER_* from set_worker_env

    def initialize(self, *args, **kwargs):
        return None

    @property
    def initialized(self) -> bool:
        return False  # keeps upstream's RPC server from broadcasting payloads over model-parallel groups

    def is_data_parallel_head(self) -> bool:
        return True

    def world_sum(self, value: float) -> dict:
        total = torch.tensor([float(value)])
        dist.all_reduce(total)
        return {"sum": total.item(), "rank": dist.get_rank(), "world": dist.get_world_size(),
                "master": f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}", "pid": os.getpid()}

    def destroy(self):
        if dist.is_initialized():
            dist.destroy_process_group()


def _unused(name):
    def method(self, *args, **kwargs):
        raise NotImplementedError(f"MiniEngine.{name}")
    return method


for _name in sorted(MiniEngine.__abstractmethods__):
    setattr(MiniEngine, _name, _unused(_name))
MiniEngine.__abstractmethods__ = frozenset()

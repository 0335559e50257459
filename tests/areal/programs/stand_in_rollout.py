"""A stand-in for upstream's remote inference engine (no SGLang or vLLM runs here), for the rollout-side test.

Loaded by upstream's RPC server (`/create_engine`) in the AReaL venv, on each planned rollout worker, by upstream's
own RolloutController. launch_server names no server (none is started), initialize and set_version record what
the controller sent; every other InferenceEngine method raises NotImplementedError, so the test cannot pass
through one silently."""
from __future__ import annotations

import os

from areal.api import InferenceEngine
from areal.api.io_struct import LocalInfServerInfo


class StandInRollout(InferenceEngine):
    def __init__(self, config=None, **kwargs):
        self.config, self.engine_id, self.version = config, None, 0

    def launch_server(self, server_args=None) -> LocalInfServerInfo:
        return LocalInfServerInfo(host="0.0.0.0", port=0, process=None)

    def initialize(self, engine_id=None, *args, **kwargs):
        self.engine_id = engine_id

    @property
    def initialized(self) -> bool:
        return self.engine_id is not None

    def set_version(self, version: int) -> None:
        self.version = version

    def get_version(self) -> int:
        return self.version

    def whoami(self) -> dict:
        return {"engine_id": self.engine_id, "version": self.version, "pid": os.getpid(),
                "backend": self.config.backend}

    def destroy(self):
        self.engine_id = None


def _unused(name):
    def method(self, *args, **kwargs):
        raise NotImplementedError(f"StandInRollout.{name}")
    return method


for _name in sorted(StandInRollout.__abstractmethods__):
    setattr(StandInRollout, _name, _unused(_name))
StandInRollout.__abstractmethods__ = frozenset()

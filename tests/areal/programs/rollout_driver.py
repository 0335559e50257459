"""The rollout-side test's driver: upstream's RolloutController on the compiled plan's rollout workers, and its
staleness manager beside our agent's staleness gate, with no generation engine (none runs on CPU here).

Run as the job's driver (`driver.upstream: areal`, so PPOTrainer's own scheduler factory gives the planned
scheduler): reads a GRPO config with upstream's load_expr_config, initializes RolloutController with
StandInRollout on the planned `rollout` role, publishes versions through it, and drives the same rollout events
through upstream's StalenessManager (the one the controller's dispatcher consults) and through our gate (the demo's
client, AREAL_GATE_URL), recording both capacities after every event. Prints one JSON object."""
from __future__ import annotations

import json
import sys
import types

from areal.api.cli_args import GRPOConfig, load_expr_config
from areal.infra.controller.rollout_controller import RolloutController
from areal.trainer.rl_trainer import PPOTrainer

from gate import Gate
from stand_in_rollout import StandInRollout

# 3 concurrent at most, 4 per batch, 1 version of staleness: (1 + version + 1) * 4 rollouts may be started by each
# version, so at version 0 the concurrency limit refuses first and then, with 6 accepted, the staleness limit
EVENTS = (["submit"] * 4 + ["accept"] * 3) * 2 + ["submit"] * 3 + ["version", "submit", "accept", "reject",
                                                                   "version", "version"] + ["submit"] * 4


def main() -> None:
    config, _ = load_expr_config(sys.argv[1:], GRPOConfig)
    scheduler = PPOTrainer._init_scheduler(types.SimpleNamespace(config=config))  # upstream's factory
    controller = RolloutController(StandInRollout, config.rollout, scheduler)
    controller.initialize(role="rollout")
    workers = [(w.id, w.ip, w.worker_ports) for w in controller.workers]
    manager, gate, version, steps = controller.staleness_manager, Gate(), 0, []
    for event in EVENTS:
        granted = None
        if event == "version":
            version += 1
            controller.set_version(version)  # every planned worker's engine, through the RPC servers
            gate.set_version(version)
        elif event == "submit":  # the dispatcher's rule: submit only while there is capacity
            granted = [manager.get_capacity() > 0, gate.try_submit()]
            if granted[0]:
                manager.on_rollout_submitted()
        else:
            {"accept": manager.on_rollout_accepted, "reject": manager.on_rollout_rejected}[event]()
            gate.call("POST", f"/gate/{event}", {})
        state = gate.state()
        steps.append({"event": event, "granted": granted, "capacity": [manager.get_capacity(), state["capacity"]],
                      "running": [manager.get_stats().running, state["running"]]})
    engines = [scheduler.call_engine(w.id, "whoami", f"rollout/{rank}") for rank, w in enumerate(controller.workers)]
    controller.destroy()
    print(json.dumps({"scheduler": type(scheduler).__name__, "workers": workers, "engines": engines,
                      "steps": steps}))


main()

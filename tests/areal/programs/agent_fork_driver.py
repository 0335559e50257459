"""The agent-fork test's driver: attach to the planned actor, then fork a role the plan does not declare through
the actor's agent (first with a wrong token, which must be refused). Prints one JSON object."""
from __future__ import annotations

import json
import os

from areal.api import Job

from areal_compiler.upstream.areal_scheduler import PlannedScheduler


def main() -> None:
    scheduler = PlannedScheduler()
    scheduler.create_workers(Job(role="actor", replicas=1))
    actor = scheduler.get_workers("actor")[0]
    token_file = os.environ["AREAL_AGENT_TOKEN_FILE"]
    os.environ["AREAL_AGENT_TOKEN_FILE"] = os.environ["WRONG_TOKEN_FILE"]
    try:
        scheduler.fork_workers("proxy-actor", "actor")
        refused = "accepted"
    except Exception as exc:
        refused = f"{type(exc).__name__}: {exc}"
    os.environ["AREAL_AGENT_TOKEN_FILE"] = token_file
    forked = scheduler.fork_workers("proxy-actor", "actor", command="areal.infra.rpc.rpc_server")
    proxy = scheduler.get_workers("proxy-actor")[0]
    print(json.dumps({"actor": [actor.ip, actor.worker_ports], "refused": refused, "forked": forked,
                      "proxy": [proxy.id, proxy.ip, proxy.worker_ports]}))


main()

"""The Ray job's entrypoint (shipped as launcher.py): one placement group, one node actor per logical node, agents.

Run by Ray as `python3 launcher.py` in the job's working directory (plan.json, placement.json, agent.pyz); the only
module of areal compile that imports `ray`. How the job ends and the stop order come from the agent's outcome
module (the same rule as every target): the driver's code, else the first failure's, else 0."""
import json
import os
import secrets
import signal
import sys
import time

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

POLL = 0.5  # seconds between looks at the agents


def brief(items, shown=8):
    """A list for a log line: whole up to SHOWN items, else its first SHOWN and how many there are in all (a job
    of thousands of nodes would otherwise log megabytes in one line)."""
    items = list(items)
    if len(items) <= shown:
        return str(items)
    return "%s ... (%d in all)" % (str(items[:shown])[:-1], len(items))


def say(text):
    print("[areal launcher] %s" % text, flush=True)


def agent_module(name):
    """A module of the agent (procs, outcome) from agent.pyz in the job's working directory (every Ray worker of
    the job starts there, on every node); imported when used, so that actors pickled from here find it."""
    import importlib

    bundle = os.path.abspath("agent.pyz")
    if bundle not in sys.path:
        sys.path.insert(0, bundle)
    return importlib.import_module("areal_agent." + name)


def agent_argv(name, run_dir):
    role, index = name.split("/")
    log = os.path.join(run_dir, "logs", role, "%s.log" % index)
    return [sys.executable, "-I", os.path.abspath("agent.pyz"), "supervise", "--plan", os.path.abspath("plan.json"),
            "--worker", name, "--run-dir", run_dir, "--log", log]


def agent_env(hosts, token_file):
    """An agent's environment: this process's, the node addresses as the agent's rule placed them (HOSTS:
    AREAL_NODE_HOSTS, or AREAL_NODE_HOSTS_FILE for a long list) and the token file."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("AREAL_NODE_HOSTS", "AREAL_NODE_HOSTS_FILE", "AREAL_AGENT_TOKEN")}
    env.update(hosts, AREAL_AGENT_TOKEN_FILE=token_file)
    return env


def write_token(run_dir):
    """The agents' shared secret, readable by this user only, in the run directory every node shares (as on
    Slurm); never in an artifact, an argv or Ray's object store."""
    path = os.path.join(run_dir, "agent.token")
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "w") as out:
        out.write(secrets.token_hex(32))
    return path


class Agents:
    """The agents this process started, by worker name; stopped by process group."""

    def __init__(self, stop_timeout):
        self.procs, self.stop_timeout = {}, stop_timeout

    def start(self, name, env, run_dir, workdir):
        os.makedirs(run_dir, exist_ok=True)
        self.procs[name] = _spawn_in(workdir, agent_argv(name, run_dir), env)

    def ended(self):
        return {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}

    def stop(self, names):
        procs = [self.procs[n] for n in names if n in self.procs]
        codes = agent_module("procs").stop_groups(procs, self.stop_timeout) if procs else []
        return dict(zip([n for n in names if n in self.procs], codes))


def _spawn_in(workdir, argv, env):
    """Start an agent in `workdir` (relative role commands resolve there, as with Slurm and areal run)."""
    previous, spawn = os.getcwd(), agent_module("procs").spawn
    os.chdir(workdir)
    try:
        return spawn(argv, env, None)
    finally:
        os.chdir(previous)


@ray.remote(max_restarts=0, max_concurrency=1)
class NodeAgents(Agents):
    """One per logical node, holding that node's bundle: starts the node's agents on the devices Ray gave it."""

    def describe(self, resource):
        ids = ray.get_runtime_context().get_accelerator_ids().get(resource, []) if resource else []
        return {"ip": ray.util.get_node_ip_address(), "ids": [str(i) for i in ids]}

    def launch(self, node, ids, hosts, token_file, run_dir, visibility):
        workdir = os.environ.get("AREAL_WORKDIR") or os.getcwd()
        workdir = workdir if os.path.isdir(workdir) else os.getcwd()
        given = dict(zip(node["devices"], ids))  # planned device -> the device id Ray assigned this actor
        for name in node["workers"]:
            role = name.split("/")[0]
            env = agent_env(hosts, token_file)
            planned = node["role_devices"].get(role)
            if planned:
                env["AREAL_ALLOCATED_DEVICES"] = ",".join(given[d] for d in planned)
            elif visibility:
                env[visibility] = ""  # a worker without devices sees none, not the node's
            self.start(name, env, run_dir, workdir)
        return sorted(self.procs)


def actor_options(bundle, index, group, resource):
    """The actor takes its whole bundle, so Ray assigns it (and only it) the node's devices."""
    opts = {"num_cpus": bundle["CPU"], "scheduling_strategy": PlacementGroupSchedulingStrategy(
        placement_group=group, placement_group_bundle_index=index)}
    if "memory" in bundle:
        opts["memory"] = bundle["memory"]
    if resource == "GPU" and bundle.get("GPU"):
        opts["num_gpus"] = bundle["GPU"]
    elif resource and bundle.get(resource):
        opts["resources"] = {resource: bundle[resource]}
    return opts


class Job:
    """The entrypoint's state: the placement group, the node actors, the driver's agent, what has ended."""

    def __init__(self, plan, place):
        self.plan, self.place = plan, place
        self.run_dir = os.path.join(place["run_parent"], submission_id())
        self.local = Agents(place["stop_timeout"])
        self.outcome = agent_module("outcome")
        self.total = sum(len(n["workers"]) for n in place["nodes"]) + bool(place["driver"])
        self.actors, self.group, self.events, self.stopping = [], None, [], None

    def reserve(self):
        spec = self.place["placement_group"]
        self.group = placement_group(name=os.path.basename(self.run_dir), **spec)
        say("waiting for the placement group: %s (%s)" % (brief(spec["bundles"]), spec["strategy"]))
        waited = 0
        while not ray.wait([self.group.ready()], timeout=1)[0]:
            if self.stopping:
                return False
            waited += 1
            if waited % 30 == 0:
                say("still waiting for the placement group after %d s (the cluster is busy)" % waited)
        return True

    def launch(self):
        resource, nodes = self.place["device_resource"], self.place["nodes"]
        bundles = self.place["placement_group"]["bundles"]
        self.actors = [NodeAgents.options(**actor_options(b, i, self.group, resource)).remote(
            self.place["stop_timeout"]) for i, b in enumerate(bundles)]
        facts = ray.get([a.describe.remote(resource) for a in self.actors])
        lists = {"AREAL_NODE_HOSTS": ",".join(f["ip"] for f in facts)}  # in a file when long: lists.py, written once
        hosts = agent_module("lists").place_lists({}, lists, os.path.join(self.run_dir, "lists"))
        token_file = write_token(self.run_dir)
        visibility = (self.plan.get("accelerator") or {}).get("visibility_env")
        say("nodes %s; devices %s" % (brief(f["ip"] for f in facts), brief(f["ids"] for f in facts)))
        ray.get([a.launch.remote(nodes[i], facts[i]["ids"], hosts, token_file, self.run_dir, visibility)
                 for i, a in enumerate(self.actors)])
        if self.place["driver"]:
            env = agent_env(hosts, token_file)
            if visibility:
                env[visibility] = ""
            self.local.start(self.place["driver"], env, self.run_dir,
                             os.environ.get("AREAL_WORKDIR") or os.getcwd())

    def poll(self):
        """The outcome rule's decision on what has ended so far (in the order this launcher saw it end)."""
        seen = {e.name for e in self.events}
        found = dict(self.local.ended())
        for result in ray.get([a.ended.remote() for a in self.actors]):
            found.update(result)
        for name in sorted(n for n in found if n not in seen):
            code = 128 - found[name] if found[name] < 0 else found[name]
            stamp = "%.6f" % time.time()  # fixed width: sorts in time order
            self.events.append(self.outcome.Ended(name, code, stamp))
            say("%s ended with exit code %d" % (name, code))
        return self.outcome.decide(self.plan, self.events, self.total - len(self.events))

    def stop_all(self):
        """The agents in order: each phase stopped (TERM, grace, KILL) before the next begins."""
        for phase in self.outcome.stop_stages(self.plan):
            self.local.stop(phase)
            try:
                ray.get([a.stop.remote(phase) for a in self.actors])
            except ray.exceptions.RayError as exc:  # a dead actor's agents died with it (death signal)
                say("a node actor is gone while stopping: %s" % str(exc).splitlines()[0])


def submission_id():
    """This job's submission id, from the job config Ray hands its entrypoint."""
    config = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    return (config.get("metadata") or {}).get("job_submission_id") or "areal-unsubmitted"


def prepare_run_dir(path):
    """A fresh run directory. One of the same name (a restarted cluster hands out submission ids again) is kept
    aside as <dir>.<n>."""
    if os.path.exists(path):
        n = 1
        while os.path.exists("%s.%d" % (path, n)):
            n += 1
        os.rename(path, "%s.%d" % (path, n))
    os.makedirs(os.path.join(path, "logs"))


def main():
    with open("plan.json", encoding="utf-8") as handle:
        plan = json.load(handle)
    with open("placement.json", encoding="utf-8") as handle:
        place = json.load(handle)
    job = Job(plan, place)

    def on_signal(signum, frame):
        job.stopping = signum
    prepare_run_dir(job.run_dir)
    ray.init()
    signal.signal(signal.SIGTERM, on_signal)  # after ray.init(), which installs a handler that exits at once
    signal.signal(signal.SIGINT, on_signal)
    decision = None
    try:
        if job.reserve():
            job.launch()
            say("started %d node actor(s); run dir %s" % (len(job.actors), job.run_dir))
            while not job.stopping and (decision is None or not decision.stop and decision.exit_code is None):
                time.sleep(POLL)
                decision = job.poll()
    except ray.exceptions.RayError as exc:  # an actor or its node died: the job cannot go on
        say("the job lost a node actor: %s" % str(exc).splitlines()[0])
        decision = job.outcome.Decision(True, 1, "a node actor died")
    finally:
        say("stopping the agents" + (" (signal %d)" % job.stopping if job.stopping else ""))
        job.stop_all()
        if job.group is not None:
            remove_placement_group(job.group)
    decision = decision or job.outcome.Decision(True, None, "stopped before start")
    outcome, code = job.outcome.exit_code_of(decision, job.stopping)
    say("job %s (%s): exit code %d" % (outcome, decision.reason, code))
    return code


if __name__ == "__main__":
    sys.exit(main())

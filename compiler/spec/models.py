"""The experiment format as strict pydantic models: what a user may write, with types and defaults.

The format's one definition. spec/derive.py derives from these models the pydantic-core schema that check.py
validates with (through spec/records.py, whose records carry these fields); `areal schema` derives the JSON Schema."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class Strict(BaseModel):
    """Unknown keys are errors; no silent type coercion ("16" is not 16); no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Compute(Strict):
    """The nodes' accelerator type and how many devices the experiment uses."""

    accelerator: str = Field(description="Node type from the catalog, e.g. GPU_8xH100 (see `areal catalog`).")
    num_accelerators: int = Field(description="Total devices; a multiple of the type's devices per node.")
    allow_device_sharing: bool = Field(
        False, description="Opt in to non-colocated roles sharing devices (e.g. rollout and actor with memory "
                           "offload): the device budget may then be exceeded and roles overlap.")


class SchedulingSpec(Strict):
    """Per-worker resources and environment, with AReaL's field names."""

    cpu: int = Field(8, description="CPU cores per worker.")
    gpu: int | None = Field(None, description="Devices per worker. Derived from `backend` when it is set; "
                                              "for roles without a backend, defaults to 0.")
    mem: int = Field(32, description="Memory per worker, in GB.")
    port_count: int = Field(2, description="Ports planned per worker; training roles need >= 2 (the second port "
                                           "of worker 0 becomes MASTER_PORT).")
    image: str | None = Field(None, description="Container image; defaults to the experiment's `image`.")
    env_vars: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")


class SchedulingStrategy(Strict):
    """Whether a role has devices of its own or shares another role's (AReaL's scheduling_strategy)."""

    type: Literal["separation", "colocation"] = Field(
        "separation", description="`separation`: the role gets devices of its own; `colocation`: it runs on "
                                  "`target`'s devices.")
    target: str | None = Field(None, description="With colocation: the role whose devices are shared.")
    fork: bool = Field(True, description="With colocation: true = own processes forked by the target's agents "
                                         "on the target's devices; false = runs inside the target's processes.")


class SlurmRole(Strict):
    """Slurm settings a role may override (they apply to that role's heterogeneous-job component)."""

    partition: str | None = Field(None, description="`#SBATCH --partition`.")
    account: str | None = Field(None, description="`#SBATCH --account`.")
    qos: str | None = Field(None, description="`#SBATCH --qos`.")
    time: str | None = Field(None, description="Wall-time limit, e.g. \"24:00:00\" (quote it: YAML reads "
                                               "unquoted 24:00:00 as a number).")
    constraint: str | None = Field(None, description="`#SBATCH --constraint`: node features, e.g. h100.")
    reservation: str | None = Field(None, description="`#SBATCH --reservation`.")
    exclusive: bool | None = Field(None, description="true: `#SBATCH --exclusive` (no other job on the nodes).")
    nodelist: str | None = Field(None, description="`#SBATCH --nodelist`: nodes the job must get.")
    exclude: str | None = Field(None, description="`#SBATCH --exclude`: nodes the job must not get.")


class Slurm(SlurmRole):
    """Job-wide Slurm settings; roles inherit them and may override."""

    version: str = Field("22.05", description="The cluster's Slurm version; chooses version-dependent flags. "
                                              "Never probed.")
    max_retries: int = Field(0, description="Requeue the job while its restart count is below this.")
    gres_type: bool = Field(False, description="Request typed gres (gpu:h100:8) instead of gpu:8.")
    container_type: Literal["none", "apptainer"] = Field(
        "none", description="`apptainer`: every step runs in its role's `image` with `apptainer exec` (binding "
                            "`mount`); `none`: on the node itself.")
    mount: list[str] = Field(default_factory=list, description="Container bind mounts, SRC:DST.")
    template: str | None = Field(None, description="A site template for job.sbatch (path relative to this file): "
                                                   "a Jinja2 template that extends job.sbatch.j2 and fills its "
                                                   "blocks before_job, before_agent and after_job with the site's "
                                                   "own shell.")


class Kubernetes(Strict):
    """Kubernetes settings (read only by the kubernetes target; see docs/targets/kubernetes.md)."""

    namespace: str = Field("default", description="Namespace for every object (a DNS-1123 label).")
    version: str = Field("1.33", description="The cluster's Kubernetes version, MAJOR.MINOR (1.28 or later); "
                                             "manifests are validated against it. Never probed.")
    workload: Literal["jobset", "statefulset"] = Field(
        "jobset", description="`jobset`: a JobSet that runs to completion (needs the JobSet controller); "
                              "`statefulset`: StatefulSets and headless Services whose pods restart forever.")
    name: str | None = Field(None, description="Name of the generated objects (a DNS-1035 label); defaults to "
                                               "<experiment_name>-<trial_name>. Shorten it when names get too long.")
    max_retries: int = Field(0, ge=0, description="JobSet: restart the whole set up to this many times after a "
                                                  "failure (failurePolicy.maxRestarts).")
    shm_gb: int = Field(16, ge=0, description="Size of the memory-backed /dev/shm of every worker pod, in GB "
                                              "(added to the pod's memory request); 0 = the runtime's 64 MiB.")
    node_affinity: dict[str, list[str]] | None = Field(
        None, description="Node label -> accepted values (all labels must match); replaces the catalog's labels "
                          "for the accelerator model. {} = no node affinity.")
    queue: str | None = Field(None, description="Kueue LocalQueue: sets the kueue.x-k8s.io/queue-name label.")
    scheduler_name: str | None = Field(None, description="Pod schedulerName, e.g. volcano or kai-scheduler.")
    fileroot_claim: str | None = Field(None, description="PersistentVolumeClaim (ReadWriteMany) mounted at "
                                                         "`fileroot` in every pod; without it fileroot is pod-local.")


class Ray(Strict):
    """Ray settings (read only by the ray target; see docs/targets/ray.md)."""

    version: str = Field("2.60", description="The cluster's Ray version (MAJOR.MINOR); from 2.49 the accelerator "
                                             "model is a label selector, before a resource. Never probed.")
    address: str | None = Field(None, description="The cluster's dashboard URL for `areal submit` (e.g. "
                                                  "http://head:8265); --address and RAY_ADDRESS override it.")


class Local(Strict):
    """Settings of the local target (`areal run` and `areal start` on this machine)."""

    fail_fast: bool = Field(True, description="When one worker fails, stop the others.")


class Role(Strict):
    backend: str | None = Field(None, description="AReaL allocation string, e.g. sglang:d4t2 or fsdp:d8.")
    replicas: int | None = Field(None, description="Worker count for roles without a backend (helpers).")
    cmd: str | None = Field(None, description="The worker command, split like a shell would but never run by "
                                              "one; `--port {port0}` is appended by the launcher.")
    scheduling_spec: SchedulingSpec = SchedulingSpec()
    scheduling_strategy: SchedulingStrategy = Field(
        SchedulingStrategy(), description="Devices of its own, or colocation on another role's.")
    readiness: Literal["http", "none"] = Field(
        "http", description="When a worker counts as ready: `http`, its first port answers GET /health with 200 "
                            "(AReaL's RPC servers do); `none`, as soon as it runs.")
    may_fail: bool = Field(False, description="A failure of this role's workers does not fail the job (it is "
                                              "reported); by default any worker's failure ends the job.")
    upstream: Literal["areal"] | None = Field(
        None, description="`areal`: the worker is upstream AReaL's RPC server (or a command taking its arguments): "
                          "after `--port` it gets exactly the arguments upstream's LocalScheduler passes (names, "
                          "role, worker index, name_resolve, fileroot; see the `areal` block).")
    slurm: SlurmRole | None = None


class DriverSpec(Strict):
    """The driver's resources: CPU only (it never gets devices)."""

    cpu: int = Field(4, description="CPU cores for the driver.")
    mem: int = Field(16, description="Memory for the driver, in GB.")
    image: str | None = Field(None, description="Container image; defaults to the experiment's `image`.")
    env_vars: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")


class Driver(Strict):
    """The controller (e.g. AReaL's training script): runs once per job, on logical node 0; the job ends when it
    exits, with its exit code."""

    cmd: str = Field(description="The driver command, split like a shell would but never run by one.")
    scheduling_spec: DriverSpec = DriverSpec()
    upstream: Literal["areal"] | None = Field(
        None, description="`areal`: cmd is `python SCRIPT [ARGS]` or `python -m MODULE [ARGS]` running upstream "
                          "AReaL's controller; it runs unchanged, its trainers using the planned scheduler (the "
                          "compiled plan's workers).")


class KubernetesSecretRef(Strict):
    """A key of a Kubernetes Secret in the job's namespace."""

    name: str = Field(description="The Secret's name.")
    key: str = Field(description="The key in the Secret whose value is used.")


class Secret(Strict):
    file: str = Field(description="Path to a file holding the value, read by the agent at run time "
                                  "(Slurm, local, Ray). The value never appears in an artifact.")
    kubernetes: KubernetesSecretRef | None = Field(None, description="Where Kubernetes finds the value.")


class Staleness(Strict):
    """The staleness gate of asynchronous RL, with upstream AReaL's names: one agent serves it, rollouts ask it
    before they start."""

    max_head_offpolicyness: int = Field(description="Max versions a rollout may lag the trainer.")
    consumer_batch_size: int = Field(description="Rollouts the trainer consumes per step.")
    max_concurrent_rollouts: int | None = Field(None, description="0 or omitted: consumer_batch_size.")
    queue_size: int | None = Field(None, description="0 or omitted: 16 x max_concurrent_rollouts.")
    gate_role: str | None = Field(None, description="The role whose worker 0's agent serves the gate; defaults "
                                                    "to the first training role, else the first role.")


class NameResolve(Strict):
    """Upstream AReaL's cluster.name_resolve, with its defaults."""

    type: Literal["nfs", "etcd3", "ray"] = Field("nfs", description="Upstream's name service: `nfs` (a shared "
                                                                     "directory), `etcd3` or `ray`.")
    nfs_record_root: str = Field("/tmp/areal/name_resolve", description="With nfs: a directory every node shares.")
    etcd3_addr: str = Field("localhost:2379", description="With etcd3: the etcd server, HOST:PORT.")


class Areal(Strict):
    """What upstream AReaL's processes are told (roles and driver with `upstream: areal`): the names and the name
    service of the training config the driver reads."""

    experiment_name: str | None = Field(None, description="Upstream's experiment_name; defaults to ours.")
    trial_name: str | None = Field(None, description="Upstream's trial_name; defaults to ours.")
    name_resolve: NameResolve = NameResolve()


class Runtime(Strict):
    """How the agents run the workers: heartbeats, hung workers, stopping, forks and ports."""

    heartbeat_interval: float = Field(5.0, description="Seconds between agent heartbeats.")
    hung_after: float = Field(30.0, description="A worker whose heartbeat is older than this is hung.")
    grace_period: float = Field(10.0, description="Seconds between SIGTERM and SIGKILL on stop.")
    worker_heartbeat: bool = Field(False, description="Count a worker alive only while it beats itself.")
    fork_commands: Literal["declared", "any"] = Field(
        "declared", description="`declared`: the agent forks only commands the plan declares; `any`: any.")
    base_port: int = Field(20000, description="First planned port of every node: each logical node's processes "
                                              "get distinct ports from here on; other nodes reuse the numbers.")


class Experiment(Strict):
    schema_version: Literal[1] = Field(SCHEMA_VERSION, description="Version of this format.")
    experiment_name: str = Field(description="The experiment: names the job and its objects, and with "
                                             "`trial_name` the run (<experiment_name>/<trial_name>).")
    trial_name: str = Field(description="The trial of the experiment.")
    compute: Compute = Field(description="The nodes' accelerator type and how many devices the experiment uses.")
    image: str | None = Field(None, description="Default container image of every role.")
    fileroot: str = Field("/tmp/areal/experiments", description="Shared directory for run state and logs.")
    roles: dict[str, Role] = Field(min_length=1, description="Role name -> role (at least one).")
    driver: Driver | None = Field(None, description="The controller that drives the roles; without it the job "
                                                    "ends when every worker has ended.")
    secrets: dict[str, Secret] = Field(default_factory=dict,
                                       description="Environment variable name -> where its value lives.")
    staleness: Staleness | None = Field(None, description="The staleness gate of asynchronous RL; without it, "
                                                          "no gate.")
    areal: Areal = Areal()
    runtime: Runtime = Field(Runtime(), description="How the agents run the workers.")
    slurm: Slurm = Slurm()
    kubernetes: Kubernetes = Kubernetes()
    ray: Ray = Field(Ray(), description="Ray settings (read only by the ray target).")
    local: Local = Field(Local(), description="Settings of the local target.")


"""What the Kubernetes target writes: components, pods, devices, names, settings, hostile values, located errors."""
from __future__ import annotations

import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import BASE, ROOT
from manifests import objects, problems

EXAMPLES = ROOT / "examples"


def _jobset(folder):
    return next(o for o in objects(folder) if o["kind"] == "JobSet")


def _pods(jobset):
    return {rj["name"]: rj["template"]["spec"] for rj in jobset["spec"]["replicatedJobs"]}


def _container(job_spec):
    return job_spec["template"]["spec"]["containers"][0]


def _env(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _errors(result):
    return [(d.message, d.span.line if d.span else None) for d in result.diagnostics if d.is_error]


def test_two_node_example_jobset(compile_k8s):
    result, folder = compile_k8s(EXAMPLES / "two-node-decoupled.yaml")
    js = _jobset(folder)
    assert js["metadata"]["name"] == "gsm8k-grpo-async-trial0" and js["metadata"]["namespace"] == "rl-training"
    jobs = _pods(js)
    assert list(jobs) == ["rollout", "actor"]  # one replicated Job per component, by first logical node
    assert js["spec"]["successPolicy"] == {"operator": "All"}  # no driver: every Job must succeed
    assert js["spec"]["failurePolicy"]["maxRestarts"] == 0
    rollout = jobs["rollout"]
    assert (rollout["completionMode"], rollout["parallelism"], rollout["backoffLimit"]) == ("Indexed", 1, 0)
    pod = rollout["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    c = _container(rollout)
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["command"][:4] == ["python3", "-I", "/etc/areal/agent.pyz", "node"]
    assert c["command"][c["command"].index("--nodes") + 1] == "0"
    # 4 rollout workers of 24 CPUs and 200 GB; all 8 GPUs of the node; /dev/shm (16 GB) counted in memory
    assert c["resources"]["requests"] == {"cpu": "96", "memory": "816Gi", "nvidia.com/gpu": "8"}
    assert c["resources"]["limits"] == c["resources"]["requests"]
    env = _env(c)
    assert env["AREAL_NODE_HOSTS"] == ("gsm8k-grpo-async-trial0-rollout-0-0.gsm8k-grpo-async-trial0,"
                                       "gsm8k-grpo-async-trial0-actor-0-0.gsm8k-grpo-async-trial0")
    assert env["AREAL_AGENT_BIND"] == "0.0.0.0"
    assert env["WANDB_API_KEY"] == {"secretKeyRef": {"name": "wandb", "key": "api-key"}}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    assert volumes["areal-token"]["secret"]["secretName"] == "gsm8k-grpo-async-trial0-agent-token"
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == [{"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                           "values": ["NVIDIA-H100-80GB-HBM3"]}]}]


def test_configmap_carries_plan_and_agent_under_a_content_name(compile_k8s):
    import base64

    _, folder = compile_k8s(EXAMPLES / "two-node-decoupled.yaml")
    cm = next(o for o in objects(folder) if o["kind"] == "ConfigMap")
    assert cm["immutable"] is True
    assert cm["data"]["plan.json"].encode() == (folder / "plan.json").read_bytes()
    assert base64.b64decode(cm["binaryData"]["agent.pyz"]) == (folder / "agent.pyz").read_bytes()
    js = _jobset(folder)
    assert _pods(js)["rollout"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == cm["metadata"]["name"]
    _, other = compile_k8s(EXAMPLES / "two-node-decoupled.yaml", shm_gb=8)  # a different plan, a different name
    cm2 = next(o for o in objects(other) if o["kind"] == "ConfigMap")
    assert cm2["metadata"]["name"] != cm["metadata"]["name"]
    assert "token" not in json.dumps(cm["data"]).lower().replace("agent_token", "")


def test_render_is_deterministic(compile_k8s):
    a, _ = compile_k8s(EXAMPLES / "hybrid-moe.yaml")
    b, _ = compile_k8s(EXAMPLES / "hybrid-moe.yaml")
    assert {k: v.content for k, v in a.artifacts.items()} == {k: v.content for k, v in b.artifacts.items()}


def test_shared_nodes_make_one_component_and_pods_per_node(compile_k8s):
    _, folder = compile_k8s(EXAMPLES / "single-node-colocated-ref.yaml")
    assert list(_pods(_jobset(folder))) == ["rollout-actor"]  # rollout and actor share node 0
    _, folder = compile_k8s(EXAMPLES / "hybrid-moe.yaml")
    jobs = _pods(_jobset(folder))
    assert {n: j["parallelism"] for n, j in jobs.items()} == {"actor": 6, "rollout": 2}
    hosts = _env(_container(jobs["actor"]))["AREAL_NODE_HOSTS"].split(",")
    assert len(hosts) == 8 and hosts[0] == "qwen3-moe-grpo-trial0-rollout-0-0.qwen3-moe-grpo-trial0"
    assert hosts[2] == "qwen3-moe-grpo-trial0-actor-0-0.qwen3-moe-grpo-trial0"  # pod k of actor = node 2 + k
    assert hosts[7] == "qwen3-moe-grpo-trial0-actor-0-5.qwen3-moe-grpo-trial0"
    assert _container(jobs["rollout"])["command"][-5] == "0,1"
    assert _container(jobs["actor"])["command"][-5] == "2,3,4,5,6,7"


def test_ascend_910b_requests_the_device_plugins_resource_and_labels(compile_k8s):
    _, folder = compile_k8s(EXAMPLES / "ascend-npu.yaml")
    job = next(iter(_pods(_jobset(folder)).values()))
    pod = job["template"]["spec"]
    assert _container(job)["resources"]["limits"]["huawei.com/Ascend910"] == "16"
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [
        {"key": "accelerator", "operator": "In", "values": ["huawei-Ascend910"]},
        {"key": "accelerator-type", "operator": "In", "values": ["module-910b-16"]}]}]


def test_settings_queue_scheduler_affinity_shm_claim_retries(compile_k8s):
    _, folder = compile_k8s(EXAMPLES / "rollout-proxy.yaml", queue="team-a", scheduler_name="volcano",
                            node_affinity={"nvidia.com/gpu.product": ["NVIDIA-H200-SXM5-141GB"]}, shm_gb=0,
                            fileroot_claim="areal-shared", max_retries=3, name="agent")
    js = _jobset(folder)
    assert js["metadata"]["name"] == "agent" and js["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert js["spec"]["failurePolicy"]["maxRestarts"] == 3
    job = next(iter(_pods(js).values()))
    pod = job["template"]["spec"]
    assert pod["schedulerName"] == "volcano"
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"][0]["values"] == ["NVIDIA-H200-SXM5-141GB"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "dshm" not in volumes and volumes["fileroot"] == {"name": "fileroot",
                                                             "persistentVolumeClaim": {"claimName": "areal-shared"}}
    _, folder = compile_k8s(EXAMPLES / "rollout-proxy.yaml", node_affinity={})
    assert "affinity" not in next(iter(_pods(_jobset(folder)).values()))["template"]["spec"]


def test_cpu_pods_get_no_devices_affinity_or_tolerations(compile_k8s):
    _, folder = compile_k8s(EXAMPLES / "cpu-dev.yaml")
    for job in _pods(_jobset(folder)).values():
        pod = job["template"]["spec"]
        assert "affinity" not in pod and "tolerations" not in pod
        assert set(_container(job)["resources"]["requests"]) == {"cpu", "memory"}


def test_hostile_env_values_survive_exactly(compile_k8s):
    hostile = {"QUOTES": "it's \"quoted\" and 'single'", "SUBST": "$(rm -rf /) ${HOME} `id`",
               "LINES": "one\ntwo\n  three\n", "UNI": "héllo ✓ 日本語 \u202e", "HASH": "# not a comment: {x}",
               "YAMLISH": "- item\n? key\n: value\n---\n..."}
    data = yaml.safe_load(BASE)
    data["roles"]["actor"]["scheduling_spec"] = {"env_vars": hostile}
    data["image"] = "img:1"
    data["fileroot"] = "/data/$(HOME)/x"
    result, folder = compile_k8s(yaml.safe_dump(data, allow_unicode=True))
    assert result.ok, _errors(result)
    cm = next(o for o in objects(folder) if o["kind"] == "ConfigMap")
    plan = json.loads(cm["data"]["plan.json"])
    found = plan["roles"]["actor"].get("env") or next(w["env"] for w in plan["workers"] if w["role"] == "actor")
    assert {k: found[k] for k in hostile} == hostile
    command = _container(next(iter(_pods(_jobset(folder)).values())))["command"]
    assert command[-1] == "/data/$$(HOME)/x/exp/t0/kubernetes"  # Kubernetes turns $$( into a literal $(
    assert problems(objects(folder), "1.33") == []


def test_long_names_are_located_errors_with_the_limit(compile_k8s):
    data = yaml.safe_load(BASE)
    data["experiment_name"] = "a-long-experiment-name-for-kubernetes-40"  # fits every per-role name (E423)...
    data["image"] = "img:1"
    result, _ = compile_k8s(yaml.safe_dump(data, sort_keys=False))  # ...but not the pods of rollout+actor
    errors = _errors(result)
    assert errors and all(line == 1 for _, line in errors)  # located at experiment_name
    assert "kubernetes.name to at most" in errors[0][0] and "xxxxx" in errors[0][0]
    data["kubernetes"] = {"name": "short"}
    result, folder = compile_k8s(yaml.safe_dump(data, sort_keys=False))
    assert result.ok and _jobset(folder)["metadata"]["name"] == "short"
    data["kubernetes"] = {"name": "9starts-with-digit"}
    result, _ = compile_k8s(yaml.safe_dump(data, sort_keys=False))
    assert any("DNS-1035" in m for m, _ in _errors(result))


def test_statefulset_longest_name_counts_the_revision_hash(compile_k8s):
    data = yaml.safe_load(BASE)
    data["image"] = "img:1"
    data["kubernetes"] = {"workload": "statefulset", "name": "n" * 40}  # n...-rollout-actor = 54 > 52
    result, _ = compile_k8s(yaml.safe_dump(data))
    assert any("controller-revision-hash" in m for m, _ in _errors(result))


def test_target_only_errors_are_located(compile_k8s):
    text = BASE + """\
image: img:1
secrets:
  HF_TOKEN: {file: /secrets/hf}
kubernetes: {version: "1.20"}
slurm: {container_type: apptainer, mount: ["/a:/b"]}
"""
    data = yaml.safe_load(text)
    data["roles"]["actor"]["slurm"] = {"nodelist": "gpu[1-2]", "partition": "gpu"}
    result, _ = compile_k8s(yaml.safe_dump(data, sort_keys=False))
    messages = " | ".join(m for m, _ in _errors(result))
    for needle in ("secret HF_TOKEN has no kubernetes", "kubernetes.version `1.20`", "roles.actor.slurm.nodelist",
                   "slurm.container_type apptainer", "slurm.mount"):
        assert needle in messages
    assert "partition" not in messages  # job settings for Slurm are fine: only what changes placement is refused
    assert all(line for _, line in _errors(result))


def test_no_image_is_a_located_error(compile_k8s):
    result, _ = compile_k8s(BASE)
    assert any("has no image" in m for m, _ in _errors(result))


def test_configmap_bytes_are_what_the_emitter_writes(tmp_path):
    """render() puts agent.pyz's base64 text, and plan.json's literal block when it is plain ASCII, in after
    dumping (a speed-up): the bytes stay what dumping the whole ConfigMap writes, also when a user's value (here a
    command, so in plan.json) spells a stand-in, and when plan.json is not ASCII (left to PyYAML)."""
    from areal_compiler.pipeline import plan_file
    from areal_compiler.targets import kubernetes

    two_node = (EXAMPLES / "two-node-decoupled.yaml").read_text()
    commands = {"spelled": f"echo {kubernetes.AGENT_STAND_IN} {kubernetes.PLAN_STAND_IN}",
                "unicode": "echo 'héllo wörld ✓'", "blanks": "echo 'a   b' ' '"}
    inputs = []
    for name, command in commands.items():
        inputs.append(tmp_path / f"{name}.yaml")
        inputs[-1].write_text(two_node.replace("cmd: python3 -m areal.infra.rpc.rpc_server", f"cmd: {command}"))
    for example in [*sorted(EXAMPLES.glob("*.yaml")), *inputs]:
        plan = plan_file(str(example)).plan
        header = kubernetes.HEADER.format(run=f"{plan.experiment_name}/{plan.trial_name}")
        rendered = {a.path: a.content for a in kubernetes.render(plan, {})}
        assert rendered == {path: kubernetes.dump(docs, header) for path, docs in kubernetes.objects(plan).items()}


def _both_emitters(docs, monkeypatch):
    """dump() as it is (libyaml's emitter for plain documents) and with PyYAML's emitter only."""
    from areal_compiler.targets import kubernetes

    chosen = kubernetes.dump(docs, "# h\n")
    with monkeypatch.context() as patch:
        patch.setattr(kubernetes, "_CDumper", None)
        return chosen, kubernetes.dump(docs, "# h\n")


def test_libyaml_writes_every_example_as_pyyaml_does(monkeypatch, tmp_path):
    """dump() uses libyaml's emitter for plain documents (a speed-up): every file of every example, and of inputs
    with a tab, non-ASCII text, a line break or quotes in a value (a node label), is byte for byte what PyYAML's
    emitter writes."""
    from areal_compiler.pipeline import plan_file
    from areal_compiler.targets import kubernetes

    two_node = (EXAMPLES / "two-node-decoupled.yaml").read_text()
    inputs = []
    odd = {"tab": '"a\\tb"', "unicode": "'héllo ✓'", "newline": '"a\\nb"', "quotes": "\"'x' y: #z\""}
    for name, value in odd.items():
        inputs.append(tmp_path / f"{name}.yaml")
        inputs[-1].write_text(two_node.replace("kubernetes: {namespace: rl-training}", "kubernetes: {namespace: "
                                               f"rl-training, node_affinity: {{zone: [{value}]}}}}"))
    for example in [*sorted(EXAMPLES.glob("*.yaml")), *inputs]:
        plan = plan_file(str(example)).plan
        assert plan is not None, example
        for path, docs in kubernetes.objects(plan).items():
            chosen, python = _both_emitters(docs, monkeypatch)
            assert chosen == python, (example, path)


_printable = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=200)
_special = st.sampled_from(["", " ", "y", "n", "~", "null", "1e3", "0o7", "a:b", "a# b", "- a", "? a", "'", '"',
                            "\\", "---", "...", "x " * 70, "word " * 30, "a" + " " * 125 + "b"])
_scalars = st.one_of(_printable, _special, st.integers(), st.booleans(), st.none())
_keys = st.one_of(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=64),
                  _special.filter(lambda s: 0 < len(s) <= 64))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_keys, inner, max_size=4)), max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(st.dictionaries(_keys, _values, max_size=5), min_size=1, max_size=3))
def test_libyaml_writes_plain_documents_as_pyyaml_does(docs, monkeypatch):
    chosen, python = _both_emitters(docs, monkeypatch)
    assert chosen == python


def _rbac_rules(folder) -> set[tuple[str, str, str]]:
    role = next(o for o in objects(folder) if o["kind"] == "Role")
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"]}


def test_the_example_rbac_grants_only_what_the_workload_uses(compile_k8s):
    _, jobset = compile_k8s(EXAMPLES / "two-node-decoupled.yaml")
    _, stateful = compile_k8s(EXAMPLES / "two-node-decoupled.yaml", workload="statefulset")
    common = {("", "configmaps", v) for v in ("create", "list", "delete")} | \
        {("", "secrets", v) for v in ("create", "list", "delete")} | \
        {("", "pods", "list"), ("", "events", "list"), ("", "pods/log", "get")}
    assert _rbac_rules(jobset) == common | {("jobset.x-k8s.io", "jobsets", v) for v in ("create", "get", "list",
                                                                                       "delete")}
    assert _rbac_rules(stateful) == common | {("apps", "statefulsets", v) for v in ("create", "get", "list", "delete")} \
        | {("", "services", v) for v in ("create", "list", "delete")}


def _w490(compile_k8s, **areal):
    data = yaml.safe_load((EXAMPLES / "areal-gsm8k-grpo.yaml").read_text(encoding="utf-8"))
    data["areal"]["name_resolve"] = areal.pop("name_resolve", data["areal"]["name_resolve"])
    result, _ = compile_k8s(yaml.safe_dump(data, sort_keys=False), **areal)
    assert result.ok, [d.message for d in result.diagnostics]
    return [(d.code, d.span.line, d.message) for d in result.diagnostics if d.code == "W490"]


def test_nfs_name_service_records_that_pods_cannot_share_are_located(compile_k8s):
    """Upstream's nfs name service in two pods (node and driver): pod-local records would hide peers."""
    (found,) = _w490(compile_k8s)
    code, line, message = found
    assert "/tmp/areal/name_resolve" in message and "not under fileroot /tmp/areal/experiments" in message
    assert "kubernetes.fileroot_claim" in message
    under = {"type": "nfs", "nfs_record_root": "/tmp/areal/experiments/name_resolve"}
    (found,) = _w490(compile_k8s, name_resolve=under)  # under fileroot, but fileroot is a per-pod emptyDir
    assert "per-pod emptyDir without kubernetes.fileroot_claim" in found[2]
    assert _w490(compile_k8s, name_resolve=under, fileroot_claim="areal-shared") == []
    assert _w490(compile_k8s, name_resolve={"type": "etcd3", "etcd3_addr": "etcd:2379"}) == []

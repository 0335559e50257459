"""Can a compiled Ray job ever run on this cluster? Bundles matched to alive nodes, refused with the numbers if not.

Called by runs/ray.py before every submit (Ray leaves a job that can never be placed PENDING forever)."""
from __future__ import annotations

GIB = 1024 ** 3
IGNORED = ("object_store_memory",)  # never requested by a bundle


def _holds(node: dict, need: dict, selector: dict) -> bool:
    total, labels = node.get("resources_total") or {}, node.get("labels") or {}
    return all(total.get(key, 0) + 1e-9 >= value for key, value in need.items() if value) \
        and all(labels.get(key) == value for key, value in selector.items())


def _match(bundles: list[dict], selectors: list[dict], nodes: list[dict], distinct: bool) -> int:
    """How many bundles can be given a node at once (distinct nodes with STRICT_SPREAD); augmenting paths."""
    owner: dict[int, int] = {}
    fits = [[n for n, node in enumerate(nodes) if _holds(node, b, s)] for b, s in zip(bundles, selectors)]
    if not distinct:
        return sum(1 for f in fits if f)

    def assign(b: int, seen: set) -> bool:
        for n in fits[b]:
            if n not in seen:
                seen.add(n)
                if n not in owner or assign(owner[n], seen):
                    owner[n] = b
                    return True
        return False
    return sum(1 for b in range(len(bundles)) if assign(b, set()))


def describe(resources: dict, selector: dict | None = None) -> str:
    parts = []
    for key, value in sorted(resources.items()):
        if key in IGNORED or key.startswith("node:"):
            continue
        parts.append(f"{key} {value / GIB:.1f} GiB" if key == "memory" else f"{key} {value:g}")
    parts += [f"{key}={value}" for key, value in sorted((selector or {}).items())]
    return ", ".join(parts) or "nothing"


def refusal(job: dict, placement: dict, nodes: list[dict]) -> str | None:
    """Why the job can never run here (None when it can): the placement group, then the entrypoint."""
    alive = [n for n in nodes if n.get("state", "ALIVE") == "ALIVE"]
    group = placement["placement_group"]
    bundles = group["bundles"]
    selectors = group.get("bundle_label_selector") or [{} for _ in bundles]
    distinct = group["strategy"] == "STRICT_SPREAD"
    have = "; ".join(f"{n.get('node_ip', '?')}: {describe(n.get('resources_total') or {}, n.get('labels'))}"
                     for n in alive) or "no alive nodes"
    placed = _match(bundles, selectors, alive, distinct)
    if placed < len(bundles):
        wanted = "; ".join(f"node {i}: {describe(b, s)}" for i, (b, s) in enumerate(zip(bundles, selectors)))
        spread = f" on {len(bundles)} different nodes" if distinct else ""
        return (f"the job needs {len(bundles)} bundle(s){spread} ({wanted}) but only {placed} can be placed on "
                f"the cluster's {len(alive)} alive node(s) ({have}): Ray would leave it PENDING forever; "
                "use fewer or smaller roles, or a cluster with these nodes")
    entry = {"CPU": job.get("entrypoint_num_cpus") or 0, "memory": job.get("entrypoint_memory") or 0}
    if entry["CPU"] or entry["memory"]:
        if not any(_holds(n, entry, {}) for n in alive):
            return (f"the driver (the job's entrypoint) needs {describe(entry)} on one node but no node has it "
                    f"({have})")
    return None


def version_refusal(placement: dict, cluster_version: str) -> str | None:
    """Bundle label selectors (chosen from ray.version >= 2.49) on a cluster that predates them."""
    parts = cluster_version.split(".")
    if not placement["placement_group"].get("bundle_label_selector") or not all(p.isdigit() for p in parts[:2]):
        return None
    if (int(parts[0]), int(parts[1])) < (2, 49):
        return (f"the cluster runs Ray {cluster_version}, which has no bundle label selectors, but the job was "
                "compiled for ray.version 2.49 or later: set ray.version to the cluster's version and recompile")
    return None

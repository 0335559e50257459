"""The two layouts of a compile's output: `bundle` (what runs) and `review` (what a reviewer reads and commits).

Called by cli.py's compile command on each input's artifacts. bundle: every target folder self-contained (its
artifacts, plan.json, agent.pyz, manifest.json), as `areal run`, `start` and `submit` need it. review: the plan once,
at the top (every target folder carries the same bytes), and no file areal ships alike for every experiment
(agent.pyz, the Ray launcher): each manifest.json pins their sha256, and where a file embeds one in base64 (the
Kubernetes ConfigMap carries agent.pyz) its sha256 stands in its place."""
from __future__ import annotations

import base64
import hashlib

from areal_compiler.targets import Artifact


def review(artifacts: dict[str, Artifact]) -> dict[str, Artifact]:
    """One input's artifacts ("<target>/<path>") in the review layout."""
    (plan,) = {a.content for rel, a in artifacts.items() if rel.endswith("/plan.json")}
    pinned = {base64.b64encode(a.content): b"sha256:" + hashlib.sha256(a.content).hexdigest().encode()
              for a in artifacts.values() if a.shipped}
    out = {"plan.json": Artifact("plan.json", plan)}
    for rel, artifact in artifacts.items():
        if artifact.shipped or rel.endswith("/plan.json"):
            continue
        content = artifact.content
        for text, digest in pinned.items():
            content = content.replace(text, digest)
        out[rel] = Artifact(artifact.path, content, artifact.executable)
    return out

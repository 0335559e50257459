"""JSON Schemas generated from the models: the experiment format and the local launch plan.

Called by `areal schema` and by the test that keeps schemas/*.json in step with the models. The experiment's schema
also states every single-field rule the validator enforces (bounds, name patterns, the catalog's names, paths), taken
from the validator's own tables and patterns, so an editor rejects what `areal validate` rejects field by field."""
from __future__ import annotations

BASE_ID = "https://github.com/areal-project/areal-compile/schemas/"
SCHEMAS = ("experiment", "local-plan")


def schema(name: str) -> dict:
    if name == "experiment":
        from areal_compiler.spec.models import Experiment as model

        title = "AReaL experiment (areal compile)"
    else:
        from areal_compiler.targets.local_plan import LaunchPlan as model

        title = "Local launch plan (areal compile --target local)"
    out = model.model_json_schema()
    if name == "experiment":
        for path, keywords in constraints():
            _at(out, path).update(keywords)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["$id"] = f"{BASE_ID}{name}.schema.json"
    out["title"] = title
    return out


def schema_text(name: str) -> str:
    import json

    return json.dumps(schema(name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def constraints() -> list[tuple[tuple, dict]]:
    """(path in the experiment, JSON Schema keywords) for every single-field rule of the validator; `*` is every
    value of a mapping, `[]` every item of a list, and keywords on a mapping's own path constrain its keys.
    Cross-field rules (budgets, colocation, generated name lengths, the ports a base_port leaves) and the
    allocation grammar (A0xx, located inside the string) are the validator's alone."""
    from areal_compiler import bounds, rules
    from areal_compiler.spec.catalog import CATALOG
    from areal_compiler.targets import k8s_check, k8s_layout

    env_names = {"pattern": rules.ENV_NAME.pattern, "not": {"anyOf": [
        {"enum": sorted(rules.VISIBILITY_VARS | rules.CONTRACT_VARS)},
        {"pattern": "^(" + "|".join(rules.CONTRACT_PREFIXES) + ")"}]}}
    path_chars = "[^" + bounds.NOT_IN_PATH.pattern[1:-1] + "]*$"
    subdomain, label = k8s_check.DNS_1123_SUBDOMAIN.pattern, k8s_check.LABEL_NAME.pattern
    slurm_keys = ("partition", "account", "qos", "time", "constraint", "reservation", "nodelist", "exclude")
    out: list[tuple[tuple, dict]] = [(path, {"minimum": low, "maximum": high})
                                     for _, path, low, high, _ in bounds.BOUNDS]
    out += [
        (("experiment_name",), {"pattern": rules.DNS_LABEL.pattern}),
        (("trial_name",), {"pattern": rules.TRIAL_NAME.pattern}),
        (("roles",), {"propertyNames": {"pattern": rules.DNS_LABEL.pattern, "not": {"const": rules.DRIVER_ROLE}}}),
        (("compute", "accelerator"), {"enum": list(CATALOG)}),
        (("fileroot",), {"pattern": "^/(?!/*$)" + path_chars}),  # absolute, not the root
        (("secrets",), {"propertyNames": env_names}),
        (("secrets", "*", "file"), {"pattern": "^/" + path_chars}),
        (("secrets", "*", "kubernetes", "name"), {"pattern": subdomain}),
        (("secrets", "*", "kubernetes", "key"), {"pattern": k8s_check.SECRET_KEY.pattern}),
        (("roles", "*", "scheduling_spec", "env_vars"), {"propertyNames": env_names}),
        (("driver", "scheduling_spec", "env_vars"), {"propertyNames": env_names}),
        (("roles", "*", "cmd"), {"pattern": "[^ \t\r\n]"}),  # not empty once split (shlex's blanks)
        (("driver", "cmd"), {"pattern": "[^ \t\r\n]"}),
        (("runtime", "base_port"), {"minimum": 1024, "maximum": 65535 - 2}),  # E471: at least a port and an agent's
        (("areal", "experiment_name"), {"minLength": 1}),
        (("areal", "trial_name"), {"minLength": 1}),
        (("areal", "name_resolve"), {"allOf": [
            {"if": {"properties": {"type": {"const": "nfs"}}}, "then": {"properties": {"nfs_record_root": {
                "pattern": "^/"}}}},
            {"if": {"properties": {"type": {"const": "etcd3"}}, "required": ["type"]},
             "then": {"properties": {"etcd3_addr": {"pattern": rules.ETCD3_ADDR.pattern}}}}]}),
        (("slurm", "version"), {"pattern": rules.VERSION.pattern}),
        (("ray", "version"), {"pattern": rules.VERSION.pattern}),
        (("kubernetes", "namespace"), {"pattern": rules.DNS_LABEL.pattern, "maxLength": 63}),
        (("kubernetes", "version"), {"pattern": _version_at_least(*k8s_check.MIN_VERSION)}),
        (("kubernetes", "name"), {"pattern": k8s_layout.DNS_1035.pattern}),
        (("kubernetes", "queue"), {"pattern": label, "maxLength": 63}),
        (("kubernetes", "scheduler_name"), {"pattern": label, "maxLength": 63}),
        (("kubernetes", "fileroot_claim"), {"pattern": subdomain, "maxLength": 253}),
        (("kubernetes", "node_affinity"), {"propertyNames": {
            "pattern": f"^(?:(?=[^/]{{1,253}}/){subdomain[1:-1]}/)?{label[1:]}"}}),
        (("kubernetes", "node_affinity", "*"), {"minItems": 1}),
        (("kubernetes", "node_affinity", "*", "[]"), {"pattern": k8s_check.LABEL_VALUE.pattern}),
    ]
    out += [(("slurm", key), {"pattern": rules.SLURM_SETTING.pattern}) for key in slurm_keys]
    out += [(("roles", "*", "slurm", key), {"pattern": rules.SLURM_SETTING.pattern}) for key in slurm_keys]
    return out


def _at(root: dict, path: tuple) -> dict:
    """The schema of PATH in ROOT, following $ref and the non-null branch of anyOf on the way."""
    node = root
    for part in path:
        while "$ref" in node or "anyOf" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else \
                next(n for n in node["anyOf"] if n.get("type") != "null")
        node = node["additionalProperties"] if part == "*" else node["items"] if part == "[]" else \
            node["properties"][part]
    return node


def _version_at_least(major: int, minor: int) -> str:
    """MAJOR.MINOR (ASCII digits, leading zeros allowed, as int() reads them) of at least the given version."""
    return f"^(?:0*{major}\\.{_at_least(minor)}|{_at_least(major + 1)}\\.[0-9]+)$"


def _at_least(n: int) -> str:
    """A decimal number >= n: more digits, or as many with a larger digit after the same start, or n itself."""
    digits = str(n)
    larger = [digits[:i] + ("9" if c == "8" else f"[{int(c) + 1}-9]") + "[0-9]" * (len(digits) - i - 1)
              for i, c in enumerate(digits) if c != "9"]
    return "0*(?:" + "|".join([f"[1-9][0-9]{{{len(digits)},}}", *larger, digits]) + ")"

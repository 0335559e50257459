"""The validator's front: load YAML, validate it (spec/records.py), map every error to its YAML position.

Called by cli.py (validate, plan, compile); cross-field rules live in rules.py and run after the schema."""
from __future__ import annotations

from dataclasses import dataclass, field

from areal_compiler.diagnostics import Diagnostic, did_you_mean, sorted_diagnostics
from areal_compiler.source import Source, SourceError
from areal_compiler.spec.records import Experiment, ValidationError, allowed_keys, validate

# Keys users bring from upstream AReaL or other tools, and where they belong in this format.
MOVED_KEYS = {
    "nodelist": "is read only by Slurm: move it to `slurm:` (job-wide) or `roles.<role>.slurm:`",
    "exclude": "is read only by Slurm: move it to `slurm:` (job-wide) or `roles.<role>.slurm:`",
    "reservation": "is read only by Slurm: move it to `slurm:` (job-wide) or `roles.<role>.slurm:`",
    "exclusive": "is read only by Slurm: move it to `slurm:` (job-wide) or `roles.<role>.slurm:`",
    "partition": "is read only by Slurm: move it to `slurm:` (job-wide) or `roles.<role>.slurm:`",
    "account": "is read only by Slurm: move it to `slurm:` (job-wide) or `roles.<role>.slurm:`",
    "qos": "is read only by Slurm: move it to `slurm:` (job-wide) or `roles.<role>.slurm:`",
    "time": "is read only by Slurm: move it to `slurm:` (job-wide) or `roles.<role>.slurm:`",
    "container_type": "is read only by Slurm: move it to the top-level `slurm:` block",
    "mount": "is read only by Slurm: move it to the top-level `slurm:` block",
    "additional_bash_cmds": "would run as shell on Slurm only; it is not supported: put setup steps in the "
                            "image, the role's `cmd` program, or a Slurm site template (`slurm: {template: "
                            "FILE}`, docs/targets/slurm.md, \"Site templates\")",
    "namespace": "is read only by Kubernetes: move it to `kubernetes: {namespace: ...}`",
    "gpus_per_worker": "devices per worker is `scheduling_spec.gpu` (AReaL's name)",
    "allocation_mode": "each role has its own `backend` string, e.g. `roles.actor.backend: fsdp:d8`",
    "n_gpus_per_node": "devices per node come from `compute.accelerator`, e.g. GPU_8xH100",
    "n_nodes": "nodes follow from `compute.num_accelerators` / devices per node",
}
TARGET_ONLY = {k for k, v in MOVED_KEYS.items() if v.startswith("is read only by")}


@dataclass
class Checked:
    """The result of checking one file: the experiment (None when invalid) and every diagnostic."""

    source: Source | None
    experiment: Experiment | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.experiment is not None and not any(d.is_error for d in self.diagnostics)


def check_file(path: str, name: str | None = None) -> Checked:
    """Load, validate and run every cross-field rule; never raises for bad input."""
    from areal_compiler.importers.load import load_source
    from areal_compiler.rules import check_rules

    try:
        source = load_source(path, name)
    except SourceError as exc:
        return Checked(None, None, [exc.diagnostic])
    diags = list(source.problems)
    experiment = None
    if getattr(source, "failed", False):  # an import that could not translate: its errors say why
        return Checked(source, None, sorted_diagnostics(diags))
    if not isinstance(source.data, dict):
        diags.append(source.diagnostic("E203", "an experiment is a mapping of keys (experiment_name, compute, "
                                               "roles, ...)", (), "see examples/ for the format"))
    else:
        try:
            experiment = validate(source.data)
        except ValidationError as exc:
            diags += [schema_diagnostic(source, err) for err in exc.errors()]
    if experiment is not None:
        diags += check_rules(source, experiment)
    if experiment is not None and experiment.slurm.template is not None and not any(d.is_error for d in diags):
        from areal_compiler.inputs import read_inputs

        diags += read_inputs(path, source, experiment)
    diags = sorted_diagnostics(diags)
    return Checked(source, experiment if not any(d.is_error for d in diags) else None, diags)


def schema_diagnostic(source: Source, err: dict) -> Diagnostic:
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc[:-1]) or "the top level"
    kind = err["type"]
    if kind == "extra_forbidden" and loc:
        key = str(loc[-1])
        if key in MOVED_KEYS:
            code = "E204" if key in TARGET_ONLY else "E201"
            return source.diagnostic(code, f"`{key}` is not allowed in `{where}`: it {MOVED_KEYS[key]}"
                                     if code == "E204" else f"unknown key `{key}` in `{where}`",
                                     loc, None if code == "E204" else MOVED_KEYS[key], key=True)
        hint = did_you_mean(key, allowed_keys(loc[:-1])) or f"allowed keys: {', '.join(allowed_keys(loc[:-1]))}"
        return source.diagnostic("E201", f"unknown key `{key}` in `{where}`", loc, hint, key=True)
    if kind == "missing" and loc:
        parent = ".".join(str(p) for p in loc[:-1])
        return source.diagnostic("E202", f"missing required key `{loc[-1]}`" + (f" in `{parent}`" if parent else ""),
                                 loc[:-1], f"add `{loc[-1]}:`", key=bool(parent))
    dotted = ".".join(str(p) for p in loc) or "the document"
    value = err.get("input")
    message = f"`{dotted}`: {_lower_first(err['msg'])}, got {_describe(value)}"
    hint = None
    if kind == "literal_error" and isinstance(value, str):
        expected = err.get("ctx", {}).get("expected", "")
        hint = did_you_mean(value, [c.strip(" '") for c in expected.replace(" or ", ",").split(",")])
    elif kind in ("string_type",) and isinstance(value, (int, float, bool)):
        hint = "quote the value, e.g. \"...\" (YAML reads unquoted 24:00:00 as a number and yes/no as booleans)"
    elif kind == "model_type" or kind == "dict_type":
        hint = "write a mapping here (key: value lines, indented)"
    return source.diagnostic("E203", message, loc, hint)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _describe(value) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, float) and value != value:
        return "not a number (nan)"
    if isinstance(value, (int, float)) and abs(value) >= 2 ** 63:
        return f"a number too large ({value:.3g})"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "null" if value is None else type(value).__name__

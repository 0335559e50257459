"""Runs upstream AReaL's own config loader on a batch of config files (JSON in, JSON out): OmegaConf's merge of the
file into upstream's config class and OmegaConf.to_object, exactly what load_expr_config does after Hydra.

Run by tests/areal/test_upstream_verdicts.py with the AReaL venv's python; with "areal_root" the areal package of
an upstream checkout (main) is imported instead of the installed wheel. Never imports the project. A case:
{"path", "class" (an upstream class name) or "script" (the training script whose load_expr_config class loads the
file; its dataclasses are executed from the script and the local modules it imports), "drop": top-level keys to
leave out, "extra": top-level keys a script's class would declare (added to the class as Any), "newer": [[class, field], ...] keys a newer upstream declares (a 1.0.4 rejection of one is retried
without it)}. The answer: {"ok": true} or {"ok": false, "error": "<type>: <upstream's first message line>"}."""
from __future__ import annotations

import ast
import json
import os
import re
import sys
import warnings
from pathlib import Path

REQUEST = json.load(sys.stdin)
if REQUEST.get("areal_root"):
    sys.path.insert(0, REQUEST["areal_root"])

import areal.api.cli_args as cli_args  # noqa: E402 - after choosing which areal
from omegaconf import OmegaConf  # noqa: E402
from omegaconf.errors import ConfigKeyError  # noqa: E402


def script_class(script: Path, root: Path):
    """The class the script passes to load_expr_config, built by executing the script's dataclass definitions
    (and those of the local modules it imports) over upstream's cli_args namespace; nothing else is run."""
    import types

    module = types.ModuleType("upstream_script_classes")  # type hints of the classes resolve in its globals
    module.__dict__.update({k: v for k, v in vars(cli_args).items() if not k.startswith("__")})
    sys.modules[module.__name__] = module
    namespace = module.__dict__

    def load(path: Path, depth: int = 0):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and depth < 2 and (node.level or not (node.module or "").startswith(
                    "areal")):
                parts = (node.module or "").split(".")
                base = path.parent if node.level else root
                for _ in range(max(node.level - 1, 0)):
                    base = base.parent
                for candidate in (base.joinpath(*parts).with_suffix(".py"), path.parent.joinpath(*parts)
                                  .with_suffix(".py")):
                    if candidate.is_file():
                        load(candidate, depth + 1)
                        break
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.Assign)):
                try:
                    exec(compile(ast.Module([node], []), str(path), "exec"), namespace)  # noqa: S102
                except Exception:  # noqa: BLE001, S110 - a definition needing what is not installed: not a config
                    pass
        return tree

    tree = load(script)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "load_expr_config":
            return namespace[node.args[1].id]
    raise LookupError(f"{script} calls no load_expr_config")


def verdict(case: dict) -> dict:
    path = Path(case["path"])
    for name in re.findall(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)", path.read_text()):
        os.environ.setdefault(name, "set-when-the-script-starts")
    cls = script_class(Path(case["script"]), Path(case["root"])) if case.get("script") else \
        getattr(cli_args, case["class"])
    if case.get("extra"):  # a script's own top-level keys, unknown without the script: any value is fine
        from dataclasses import field, make_dataclass
        from typing import Any

        cls = make_dataclass(cls.__name__, [(k, Any, field(default=None)) for k in case["extra"]], bases=(cls,))
    cfg = _compose(path) if case.get("hydra") else OmegaConf.load(path)
    OmegaConf.set_struct(cfg, False)
    for key in case.get("drop", []):
        cfg.pop(key, None)
    newer = {tuple(pair) for pair in case.get("newer", [])}
    for _ in range(200):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                OmegaConf.to_object(cli_args.to_structured_cfg(cfg, cls))
            return {"ok": True}
        except ConfigKeyError as exc:
            owner = getattr(exc, "object_type", None)
            if owner is None or (owner.__name__, str(exc.key)) not in newer or not _drop(cfg, exc.full_key):
                return _rejected(exc)
        except Exception as exc:  # noqa: BLE001 - every other exception of the loader is a rejection
            return _rejected(exc)
    return {"ok": False, "error": "too many retries"}


def _compose(path: Path):
    """Upstream's parse_cli_args: Hydra composes the file (following its `defaults` list)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(path.parent.absolute()), version_base=None):
        return compose(config_name=path.stem)


def _drop(cfg, full_key: str) -> bool:
    """Delete the key at a dotted path such as `actor.scheduling_spec[0].exclusive`."""
    parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", full_key)]
    node = cfg
    for part in parts[:-1]:
        node = node[part]
    if parts[-1] not in node:
        return False
    node.pop(parts[-1])
    return True


def _rejected(exc: Exception) -> dict:
    text = str(exc).strip().splitlines()
    return {"ok": False, "error": f"{type(exc).__name__}: {text[0] if text else ''}"}


def main() -> int:
    answers = []
    for case in REQUEST["cases"]:
        try:
            answers.append(verdict(case))
        except Exception as exc:  # noqa: BLE001 - the oracle itself failed on this case: say so, go on
            answers.append({"ok": None, "error": f"oracle: {type(exc).__name__}: {exc}"})
    sys.stdout.write("\nVERDICTS " + json.dumps(answers) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

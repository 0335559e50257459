"""The text of job.sbatch: templates/job.sbatch.j2 rendered with Jinja2, or a site template that extends it.

Called by targets/slurm.py (check and render) with its context. Jinja2 is imported only here, when a script is
rendered; the shipped template is compiled once per machine and Jinja2 version into a deterministic cache (keyed by
the template's bytes), so a compile loads its code instead of compiling it. Everything renders in Jinja2's sandbox
with StrictUndefined and no autoescaping; `q` (shlex.quote) is the one filter through which values reach bash, and
`sbatch` writes an #SBATCH option (its values checked by slurm.sbatch_value)."""
from __future__ import annotations

import hashlib
import os
import sys
from functools import lru_cache
from pathlib import Path
from shlex import quote

from areal_compiler.targets import InputError

TEMPLATE = "job.sbatch.j2"
SITE_SETTING = ("slurm", "template")
BLOCKS = ("before_job", "before_agent", "after_job")  # what a site template may fill
OPTIONS = dict(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def q(value) -> str:
    return quote(str(value))


def _sbatch(key: str, value) -> str:
    from areal_compiler.targets.slurm import sbatch_option

    return sbatch_option(key, value)


@lru_cache(maxsize=1)
def _shipped() -> tuple[str, str]:
    """(text, file name) of the shipped template: templates/ is the package areal_compiler.templates."""
    from areal_compiler import templates

    path = Path(templates.__file__).parent / TEMPLATE
    return path.read_text(encoding="utf-8"), str(path)


def _cache_dir(jinja2) -> str | None:
    """Where compiled templates are kept: one folder per Jinja2 version, Python version and environment options
    (which decide the compiled code), under the user's cache folder. None when there is no home to keep it in."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(root):
        return None
    tag = hashlib.sha256(repr((jinja2.__version__, sys.version_info[:2], sorted(OPTIONS.items()))).encode())
    return os.path.join(root, "areal-compile", "templates-" + tag.hexdigest()[:16])


def site_name(site: dict) -> str:
    """The name a site template is loaded under (never the shipped template's, whatever its file is called)."""
    return "site:" + site["path"]


@lru_cache(maxsize=1)
def environment():
    """The sandboxed Jinja2 environment every script renders in (built once per process)."""
    import jinja2
    from jinja2.bccache import FileSystemBytecodeCache
    from jinja2.sandbox import SandboxedEnvironment

    class Cache(FileSystemBytecodeCache):
        """Jinja2's bytecode cache that never fails a compile: a cache it cannot read or write is only slower."""

        def load_bytecode(self, bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:  # noqa: BLE001 - unreadable or damaged: compile the template instead
                bucket.reset()

        def dump_bytecode(self, bucket) -> None:
            try:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                super().dump_bytecode(bucket)
            except OSError:
                pass

    class Loader(jinja2.BaseLoader):
        """The shipped template by its name; a site template (from the plan) by the name it is rendered under."""

        def get_source(self, environment, name):
            if name == TEMPLATE:
                text, filename = _shipped()
                return text, filename, lambda: True
            site = getattr(environment, "site", None)
            if site is not None and name == site_name(site):
                return site["text"], site["path"], lambda: True
            raise jinja2.TemplateNotFound(name, f"a site template can only extend {TEMPLATE!r}")

    directory = _cache_dir(jinja2)
    env = SandboxedEnvironment(loader=Loader(), undefined=jinja2.StrictUndefined,
                               bytecode_cache=Cache(directory) if directory else None, **OPTIONS)
    env.filters.update(q=q, sbatch=_sbatch)
    env.site = None
    return env


def script(ctx: dict, site: dict | None = None) -> str:
    """job.sbatch's text: the shipped template, or SITE (the plan's slurm.template: path, text) extending it.
    A site template's problems raise InputError at their line."""
    env = environment()
    if site is None:
        return env.get_template(TEMPLATE).render(ctx)
    env = env.overlay()
    env.site = site
    from areal_compiler.targets.site_template import checked, render_error

    template = checked(env, site)
    try:
        return template.render(ctx)
    except Exception as exc:  # noqa: BLE001 - anything a site template raises is located in it
        raise render_error(exc, site) from None


def check_site(site: dict) -> list[InputError]:
    """A site template's syntax and structure, without rendering (targets/slurm.py check)."""
    env = environment().overlay()
    env.site = site
    from areal_compiler.targets.site_template import checked

    try:
        checked(env, site)
    except InputError as exc:
        return [exc]
    return []

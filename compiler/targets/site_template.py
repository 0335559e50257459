"""A site template: job.sbatch as a site needs it, a Jinja2 template that extends the shipped one.

Called by targets/sbatch.py (check and render). It may hold `{% extends "job.sbatch.j2" %}` and the blocks the
shipped template offers (BLOCKS), nothing else, so placement, the agent's command line and the exit-code rule stay
the compiler's. Its problems (syntax, a block it may not fill, an undefined name, anything the sandbox refuses) are
InputErrors at their line of the template file."""
from __future__ import annotations

from areal_compiler.targets import InputError
from areal_compiler.targets.sbatch import BLOCKS, SITE_SETTING, TEMPLATE, site_name

SHAPE = (f'a site template holds `{{% extends "{TEMPLATE}" %}}` and the blocks {", ".join(BLOCKS)}; '
         "write its shell inside them")


def checked(env, site: dict):
    """SITE parsed, its shape checked, and compiled (the Template to render); raises InputError."""
    import jinja2

    try:
        _check_shape(env.parse(site["text"], site_name(site), site["path"]))
        return env.get_template(site_name(site))
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"template syntax error: {exc.message}", SITE_SETTING, exc.lineno or 1,
                         hint="see https://jinja.palletsprojects.com/en/stable/templates/") from None


def _check_shape(tree) -> None:
    from jinja2 import nodes

    extends = list(tree.find_all(nodes.Extends))
    for node in tree.body:
        if isinstance(node, nodes.Output) and all(isinstance(n, nodes.TemplateData) and not n.data.strip()
                                                  for n in node.nodes):
            continue
        if isinstance(node, nodes.Block) or node is (extends[0] if extends else None):
            continue
        raise InputError(f"{_what(node)} outside a block", SITE_SETTING, node.lineno, hint=SHAPE)
    first = next((n for n in tree.body if not isinstance(n, nodes.Output)), None)
    if not extends or first is not extends[0] or len(extends) > 1:
        line = extends[1].lineno if len(extends) > 1 else (first.lineno if first is not None else 1)
        raise InputError(f'a site template starts with `{{% extends "{TEMPLATE}" %}}` and extends it once',
                         SITE_SETTING, line, hint=SHAPE)
    parent = extends[0].template
    if not isinstance(parent, nodes.Const) or parent.value != TEMPLATE:
        raise InputError(f"a site template extends {TEMPLATE!r}, the shipped job.sbatch, and nothing else",
                         SITE_SETTING, extends[0].lineno, hint=SHAPE)
    for block in tree.find_all(nodes.Block):
        if block.name not in BLOCKS:
            raise InputError(f"block `{block.name}` is not one a site template may fill", SITE_SETTING,
                             block.lineno, hint=f"the blocks are {', '.join(BLOCKS)}")
    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport)):
        raise InputError("a site template cannot include or import other templates", SITE_SETTING, node.lineno,
                         hint="write the shell into its blocks")


TAGS = {"Assign": "set", "AssignBlock": "set", "FilterBlock": "filter", "CallBlock": "call", "ExprStmt": "do"}


def _what(node) -> str:
    kind = type(node).__name__
    return "text" if kind == "Output" else f"`{{% {TAGS.get(kind, kind.lower())} %}}`"


def render_error(exc: Exception, site: dict) -> Exception:
    """What rendering SITE raised, as an InputError at the line of the site template where it happened (Jinja2
    gives template code its line numbers); an error outside the site template is a bug and stays as it is."""
    import jinja2
    from jinja2.sandbox import SecurityError

    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == site["path"]:
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is None:
        return exc
    if isinstance(exc, SecurityError):
        return InputError(f"refused by the sandbox: {exc}", SITE_SETTING, line,
                          hint="a site template sees the job's values (run_id, experiment, ...), not Python objects")
    if isinstance(exc, jinja2.UndefinedError):
        return InputError(f"undefined name: {exc}", SITE_SETTING, line,
                          hint="the names a site template sees are listed in docs/targets/slurm.md, \"Site templates\"")
    return InputError(f"rendering failed: {type(exc).__name__}: {exc}", SITE_SETTING, line)

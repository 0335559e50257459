"""The placement picture as SVG: a row per node, a box per worker over its devices (its forks listed inside), a row
of boxes for workers without devices, and a legend of exactly the roles drawn; with a review's marks for `areal diff`.

Called by `areal plan --format svg` and `areal diff --format svg`; reads only the plan. Text is monospace at one
size, so every label's width is known: each box, row and the canvas are sized to hold their text."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

from areal_compiler.plan.model import Plan, Worker
from areal_compiler.plan.view import describe

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
FONT = 12  # px, monospace
CHAR = 0.62 * FONT  # the widest advance of the common monospace fonts is 0.60 em: a little room to spare
LINE = 16  # px between text baselines
PAD = 6  # px inside a box, around its text
SWATCH = 9  # px: the square before a fork's (or a sharing worker's) line, in its role's colour
GAP = 4  # px between boxes
MARGIN = 10
MIN_CELL = 56  # px: the narrowest device column
GONE = "#e8e8e8"  # the fill of a removed worker's box
MARK_STYLE = {"added": 'stroke="#111" stroke-width="3"',  # the outline of a marked box
              "moved": 'stroke="#111" stroke-width="3" stroke-dasharray="7 4"',
              "removed": 'stroke="#777" stroke-width="2" stroke-dasharray="3 3"'}
MARK_TEXT = {"added": "added since the base (new)", "moved": "moved since the base (was where its box says)",
             "removed": "removed since the base (was where its box says)"}
UNMARKED = 'stroke="none"'
NOTE = ""  # the colour of a line that is a note (in italics, without a swatch)


@dataclass
class Marks:
    """What a review marks on the new plan's picture: worker name -> how it changed; removed workers stand apart."""

    added: set[str] = field(default_factory=set)
    moved: dict[str, str] = field(default_factory=dict)  # name -> where it was ("node 1, devices 0-1")
    removed: list[tuple[str, str]] = field(default_factory=list)  # (name, where it was)


@dataclass
class Box:
    lines: list[tuple[str, str | None]]  # (text, the colour of the swatch before it: None for none, NOTE)
    fill: str
    span: int = 1  # device columns it covers (no-device boxes: 1)
    mark: str | None = None
    x: float = 0
    y: float = 0
    w: float = 0
    h: float = 0
    label: str = ""  # the workers it shows, for the reader of the SVG source (data-workers)


def _width(text: str) -> float:
    return len(text) * CHAR


def _box_width(box: Box) -> float:
    """The width the box's text needs: its longest line, after a swatch when any line has one."""
    indent = SWATCH + 4 if any(colour for _, colour in box.lines) else 0
    return 2 * PAD + indent + max(_width(text) for text, _ in box.lines)


def _ink(fill: str) -> str:
    """Black or white text, whichever reads on the fill."""
    r, g, b = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "#000" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#fff"


def _colours(plan: Plan) -> dict[str, str]:
    """A colour per role drawn: roles with a worker, and roles forked onto one (plan order)."""
    drawn = {w.role for w in plan.workers} | {f.role for w in plan.workers for f in w.forks}
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(n for n in plan.roles if n in drawn)}


def _worker_lines(w: Worker, fill_role: str | None, colours: dict[str, str], marks: Marks) -> list:
    lines = [(w.name, None if w.role == fill_role else colours[w.role])]
    lines += [(f"+{f.role}/{f.index}", colours[f.role]) for f in w.forks]
    if w.name in marks.moved:
        lines.append((f"was {marks.moved[w.name]}", NOTE))
    elif w.name in marks.added:
        lines.append(("new", NOTE))
    return lines


def _mark(workers: list[Worker], marks: Marks) -> str | None:
    names = [w.name for w in workers]
    if any(n in marks.added for n in names):
        return "added"
    return "moved" if any(n in marks.moved for n in names) else None


def _device_boxes(plan: Plan, node: int, colours: dict[str, str], marks: Marks) -> list[Box]:
    """Boxes over the node's devices: adjacent devices with the same workers share one box."""
    on: dict[int, list[Worker]] = {}
    for w in plan.workers:
        if w.node == node:
            for d in w.devices:
                on.setdefault(d, []).append(w)
    boxes: list[Box] = []
    previous = None
    for device in range(plan.accelerator["devices_per_node"]):
        here = on.get(device, [])
        key = tuple(w.name for w in here)
        if boxes and key and key == previous:
            boxes[-1].span += 1
            continue
        previous = key
        if not here:  # free: the rules let no valid plan leave a device unused, but draw nothing over it anyway
            continue
        fill_role = here[0].role
        lines = [line for w in here for line in _worker_lines(w, fill_role, colours, marks)]
        boxes.append(Box(lines, colours[fill_role], mark=_mark(here, marks), label=" ".join(key)))
    return boxes


def _cpu_boxes(plan: Plan, node: int, colours: dict[str, str], marks: Marks) -> list[Box]:
    return [Box(_worker_lines(w, w.role, colours, marks), colours[w.role], mark=_mark([w], marks), label=w.name)
            for w in plan.workers if w.node == node and not w.devices]


def _legend(plan: Plan, colours: dict[str, str]) -> list[tuple[str, str | None]]:
    """(text, swatch colour) per role drawn, in the words of the text view's table; then the roles not drawn."""
    drawn = [(f"{name}: {describe(name, role)}", colours[name]) for name, role in plan.roles.items() if name in colours]
    return drawn + [(f"{name}: {describe(name, role)}", None) for name, role in plan.roles.items()
                    if name not in colours]


def _rows(plan: Plan, colours: dict[str, str], marks: Marks) -> list[tuple[int, list[Box], list[Box]]]:
    return [(n, _device_boxes(plan, n, colours, marks), _cpu_boxes(plan, n, colours, marks))
            for n in range(plan.nodes)]


def _place(rows, per_node: int, left: float, top: float) -> tuple[float, float, float]:
    """Sizes and positions every box; returns the column width, the grid's right edge and its bottom."""
    everything = [b for _, dev, cpu in rows for b in dev + cpu]
    header = _width(f"dev {per_node - 1}") + PAD  # the device numbers above the columns
    cell = max([MIN_CELL, header] + [(_box_width(b) + GAP * (b.span - 1)) / b.span for b in everything])
    per_line = max(per_node, 4)  # no-device boxes per line
    right, y = left, top
    for _, dev, cpu in rows:
        for band in ([dev] if dev else []) + [cpu[i:i + per_line] for i in range(0, len(cpu), per_line)]:
            height = 2 * PAD + LINE * max(len(b.lines) for b in band) - (LINE - FONT)
            column = 0
            for b in band:
                b.x, b.y = left + column * (cell + GAP), y
                b.w, b.h = b.span * cell + (b.span - 1) * GAP, height
                column += b.span
                right = max(right, b.x + b.w)
            y += height + GAP
        y += 2 * GAP
    return cell, right, y


def _box_svg(b: Box) -> list[str]:
    mark = f' data-mark="{b.mark}"' if b.mark else ""
    out = [f'<g class="box" data-workers="{escape(b.label)}"{mark}>',
           f'<rect x="{b.x:.1f}" y="{b.y:.1f}" width="{b.w:.1f}" height="{b.h:.1f}" rx="4" fill="{b.fill}" '
           f'{MARK_STYLE.get(b.mark, UNMARKED)}/>']
    indent = SWATCH + 4 if any(colour for _, colour in b.lines) else 0
    ink = _ink(b.fill)
    for i, (text, colour) in enumerate(b.lines):
        base = b.y + PAD + FONT - 2 + i * LINE
        if colour:
            out.append(f'<rect x="{b.x + PAD:.1f}" y="{base - SWATCH + 1:.1f}" width="{SWATCH}" height="{SWATCH}" '
                       f'fill="{colour}" stroke="#fff" stroke-width="1"/>')
        style = ' font-style="italic"' if colour == NOTE else ""
        out.append(f'<text x="{b.x + PAD + indent:.1f}" y="{base:.1f}" fill="{ink}"{style}>'
                   f'{escape(text, quote=False)}</text>')
    out.append("</g>")
    return out


def _group(attrs: str, bands: list[tuple[str, list[Box]]]) -> list[str]:
    """A group of bands of boxes, each band's label in the left column, level with its first box."""
    out = [f"<g {attrs}>"]
    for label, boxes in (band for band in bands if band[1]):
        out.append(f'<text x="{MARGIN}" y="{boxes[0].y + PAD + FONT - 2:.1f}">{label}</text>')
        out += [line for b in boxes for line in _box_svg(b)]
    return out + ["</g>"]


def _legend_svg(legend: list[tuple[str, str | None]], top: float) -> list[str]:
    out = ['<g class="legend">']
    for i, (text, colour) in enumerate(legend):
        y = top + i * LINE + FONT
        square = f'<rect x="{MARGIN}" y="{y - SWATCH + 1}" width="{SWATCH}" height="{SWATCH}" '
        if colour in MARK_STYLE:
            head = f'<g class="entry" data-mark="{colour}">{square}fill="#fff" {MARK_STYLE[colour]}/>'
        else:
            head = f'<g class="entry">{square}fill="{colour}"/>' if colour else '<g class="note">'
        out.append(f'{head}<text x="{MARGIN + SWATCH + 6}" y="{y}">{escape(text, quote=False)}</text></g>')
    return out + ["</g>"]


def svg(plan: Plan, marks: Marks | None = None) -> str:
    """The picture of PLAN; with MARKS, added and moved workers outlined and removed ones drawn apart."""
    marks = marks or Marks()
    colours = _colours(plan)
    per_node = plan.accelerator["devices_per_node"]
    title = (f"{plan.experiment_name}/{plan.trial_name}: {plan.accelerator['name']}, "
             f"{plan.nodes} node{'s' * (plan.nodes != 1)} x {per_node} device{'s' * (per_node != 1)}")
    removed = [Box([(name, None), (f"was {where}", NOTE)], GONE, mark="removed", label=name)
               for name, where in marks.removed]
    labels = [f"node {plan.nodes - 1}"] + ["removed"] * bool(removed) + ["no device"] * bool(per_node)
    left = MARGIN + max(map(_width, labels)) + 2 * GAP
    rows = _rows(plan, colours, marks)
    cell, right, bottom = _place(rows + ([(-1, [], removed)] if removed else []), per_node, left,
                                 MARGIN + LINE + (LINE + GAP if per_node else GAP))
    used = {b.mark for _, dev, cpu in rows for b in dev + cpu + removed}
    legend = _legend(plan, colours) + [(MARK_TEXT[m], m) for m in MARK_STYLE if m in used]
    width = math.ceil(max(right, MARGIN + _width(title), *(MARGIN + SWATCH + 6 + _width(t) for t, _ in legend))
                      + MARGIN)
    height = math.ceil(bottom + LINE * len(legend) + MARGIN)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="{FONT}">',
           f'<rect class="canvas" width="{width}" height="{height}" fill="#fff"/>',
           f'<text class="title" x="{MARGIN}" y="{MARGIN + FONT}" font-weight="bold">'
           f'{escape(title, quote=False)}</text>']
    out += [f'<text class="device" x="{left + d * (cell + GAP) + PAD:.1f}" y="{MARGIN + LINE + FONT}" '
            f'fill="#555">dev {d}</text>' for d in range(per_node)]
    for node, dev, cpu in rows:
        bands = [(f"node {node}", dev), ("no device", cpu)] if dev else [(f"node {node}", cpu)]
        out += _group(f'class="node" data-node="{node}"', bands)
    if removed:
        out += _group('class="removed"', [("removed", removed)])
    return "\n".join(out + _legend_svg(legend, bottom) + ["</svg>"]) + "\n"

"""The placement picture (`areal plan --format svg`): every process drawn once, no text outside its box or the
canvas, boxes apart, a legend of exactly the roles drawn, in the words of the text view."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from helpers import BASE, EXAMPLES, ROOT, areal, write
from areal_compiler.pipeline import plan_file
from areal_compiler.plan.picture import FONT, Marks, svg

NS = "{http://www.w3.org/2000/svg}"
ADVANCE = 0.60  # em: the advance of DejaVu Sans Mono, Menlo, Courier (the widest common monospace fonts)


def _rect(element) -> tuple[float, float, float, float]:
    return tuple(float(element.get(k, 0)) for k in ("x", "y", "width", "height"))


def _text_box(element) -> tuple[float, float, float, float]:
    """Where a line of text is drawn: from its baseline, ascent 0.8 em up and descent 0.25 em down."""
    x, y = float(element.get("x")), float(element.get("y"))
    size = float(element.get("font-size", FONT))
    return x, y - 0.8 * size, len(element.text or "") * ADVANCE * size, 1.05 * size


def _inside(inner, outer) -> bool:
    return (inner[0] >= outer[0] - 0.01 and inner[1] >= outer[1] - 0.01 and
            inner[0] + inner[2] <= outer[0] + outer[2] + 0.01 and inner[1] + inner[3] <= outer[1] + outer[3] + 0.01)


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def geometry_problems(text: str) -> list[str]:
    """Everything wrong with a picture's geometry (empty when it is right)."""
    root = ET.fromstring(text)
    canvas = (0.0, 0.0, float(root.get("width")), float(root.get("height")))
    problems = []
    for element in root.iter(f"{NS}text"):
        if not _inside(_text_box(element), canvas):
            problems.append(f"text {element.text!r} leaves the canvas")
    boxes = list(root.iter(f"{NS}g"))
    rects = []
    for g in (g for g in boxes if g.get("class") == "box"):
        outline, *swatches = g.findall(f"{NS}rect")
        rects.append(_rect(outline))
        problems += [f"text {t.text!r} leaves its box" for t in g.findall(f"{NS}text")
                     if not _inside(_text_box(t), _rect(outline))]
        problems += ["a swatch leaves its box" for s in swatches if not _inside(_rect(s), _rect(outline))]
    problems += [f"boxes at {a[:2]} and {b[:2]} overlap" for i, a in enumerate(rects) for b in rects[i + 1:]
                 if _overlap(a, b)]
    lowest = max((r[1] + r[3] for r in rects), default=0)
    for g in (g for g in boxes if g.get("class") in ("entry", "note")):
        label = g.find(f"{NS}text")
        if _text_box(label)[1] < lowest:
            problems.append(f"legend line {label.text!r} overlaps the boxes")
    drawn = {s.get("fill") for g in boxes if g.get("class") == "box" for s in g.findall(f"{NS}rect")}
    drawn |= {g.get("data-mark") for g in boxes if g.get("class") == "box"}
    for g in (g for g in boxes if g.get("class") == "entry"):
        if (g.get("data-mark") or g.find(f"{NS}rect").get("fill")) not in drawn:
            problems.append(f"legend entry {g.find(f'{NS}text').text!r} is drawn nowhere")
    return problems


def lines_in_boxes(text: str) -> list[str]:
    root = ET.fromstring(text)
    return [t.text for g in root.iter(f"{NS}g") if g.get("class") == "box" for t in g.findall(f"{NS}text")]


def legend(text: str) -> list[str]:
    root = ET.fromstring(text)
    return [g.find(f"{NS}text").text for g in root.iter(f"{NS}g") if g.get("class") == "entry"]


def plan_of(path):
    result = plan_file(str(path))
    assert result.ok, [d.render() for d in result.diagnostics]
    return result.plan


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_draws_every_process_once_inside_its_box(example):
    plan = plan_of(example)
    picture = svg(plan)
    assert geometry_problems(picture) == []
    drawn = lines_in_boxes(picture)
    expected = [w.name for w in plan.workers] + [f"+{f.role}/{f.index}" for w in plan.workers for f in w.forks]
    # a worker over several devices is one box; a device holds one box
    assert sorted(drawn) == sorted(expected)
    entries = [line.split(":")[0] for line in legend(picture)]
    assert entries == [n for n, r in plan.roles.items() if r.workers]


def test_the_cpu_demo_draws_its_workers_and_no_free_device():
    picture = areal("plan", "--format", "svg", str(ROOT / "examples" / "demo-cpu.yaml")).stdout.decode()
    assert "free" not in lines_in_boxes(picture) and "dev 0" not in picture
    assert sorted(lines_in_boxes(picture)) == sorted(["rollout/0", "rollout/1", "actor/0", "driver/0",
                                                      "+proxy/0", "+proxy/1"])
    assert geometry_problems(picture) == []


def test_legend_says_what_the_text_view_says():
    picture = svg(plan_of(ROOT / "examples" / "rollout-proxy.yaml"))
    lines = legend(picture)
    assert lines[0] == "rollout: inference sglang, 2 workers x 2 devices = 4 devices on node 0"
    assert lines[2] == "proxy-rollout: helper, forked onto rollout, 2 processes"  # 0 devices, as in the table
    assert not any(line.startswith("eval-rollout") for line in lines)  # no processes: a note, not an entry
    assert "eval-rollout: helper, runs inside rollout's processes (none of its own)" in picture


def test_long_names_and_many_forks_fit(tmp_path):
    forks = "".join(f"  helper{i}:\n    scheduling_strategy: {{type: colocation, target: actor}}\n" for i in range(5))
    text = BASE.replace("rollout:", "a-rather-long-rollout-role-name:") + forks
    picture = svg(plan_of(write(tmp_path, text)))
    assert geometry_problems(picture) == []
    assert "+helper4/3" in lines_in_boxes(picture)


def test_marks_are_drawn_and_explained():
    plan = plan_of(ROOT / "examples" / "two-node-decoupled.yaml")
    marks = Marks(added={"rollout/3"}, moved={"actor/0": "node 0, devices 0-1"},
                  removed=[("rollout/4", "node 0, devices 6-7"), ("rollout/5", "node 1, devices 6-7")])
    picture = svg(plan, marks)
    assert geometry_problems(picture) == []
    assert re.search(r'data-workers="rollout/3" data-mark="added"', picture)
    assert re.search(r'data-workers="actor/0" data-mark="moved"', picture)
    assert "was node 0, devices 0-1" in lines_in_boxes(picture)
    assert lines_in_boxes(picture).count("was node 1, devices 6-7") == 1
    assert [line for line in legend(picture) if "since the base" in line] == [
        "added since the base (new)", "moved since the base (was where its box says)",
        "removed since the base (was where its box says)"]

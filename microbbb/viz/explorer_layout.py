"""Where the explorer draws each box: Graphviz's ``dot`` lays the graph out, once per view.

A view is a set of folded scopes: a folded scope is drawn as one box that stands for all of
its ops and tensors. ``layout(nodes, edges, folded)`` runs ``dot -Tjson0`` on the visible
boxes (scopes as clusters) and returns plain numbers for the page to draw: a box per node
(centre, width, height, in points, y downwards), a rectangle per unfolded scope, and per
drawn edge its SVG path, where its label goes and the logical edges it carries.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

FONT = 16  # points: the page draws its text at this size, so dot sizes the boxes for it
CHAR = 0.6 * FONT  # a generous width per character (the page uses a sans-serif font)
LINE = 1.3 * FONT


@dataclass
class Box:
    """A box to place: its id, its scope ("" for none) and the lines of text it holds."""

    id: str
    scope: str
    lines: list[str]
    shape: str = "box"


@dataclass
class Link:
    """A logical edge (``id``) from box ``source`` to box ``target``; ``label``: the widest
    text the page may write on it (so that dot leaves room)."""

    id: str
    source: str
    target: str
    label: str = ""


def folded_into(scope: str, folded: frozenset[str]) -> str | None:
    """The outermost folded scope that holds ``scope`` (or None)."""
    parts = scope.split("/") if scope else []
    for n in range(1, len(parts) + 1):
        prefix = "/".join(parts[:n])
        if prefix in folded:
            return prefix
    return None


def group_id(scope: str) -> str:
    """The id of the box that stands for a folded scope."""
    return "g:" + scope


def visible(boxes: list[Box], links: list[Link], folded: frozenset[str]) -> tuple:
    """The boxes and edges of one view: folded scopes become one box each, edges merged."""
    where: dict[str, str] = {}
    shown: list[Box] = []
    groups: dict[str, int] = {}
    for box in boxes:
        fold = folded_into(box.scope, folded)
        if fold is None:
            where[box.id] = box.id
            shown.append(box)
        else:
            where[box.id] = group_id(fold)
            groups[fold] = groups.get(fold, 0) + (box.shape == "op")
    for scope, ops in groups.items():
        parent = scope.rsplit("/", 1)[0] if "/" in scope else ""
        lines = [f"▸ {scope}", f"{ops} ops, folded (click)"]
        shown.append(Box(group_id(scope), parent, lines, "group"))
    merged: dict[tuple[str, str], Link] = {}
    carried: dict[tuple[str, str], list[str]] = {}
    for link in links:
        pair = (where[link.source], where[link.target])
        if pair[0] == pair[1]:
            continue
        merged.setdefault(pair, Link("", pair[0], pair[1], link.label))
        carried.setdefault(pair, []).append(link.id)
    return shown, merged, carried


def size(lines: list[str], kind: str) -> tuple[float, float]:
    """Width and height in points of a box holding ``lines``."""
    width = max(len(line) for line in lines) * CHAR + FONT
    rows = 4 if kind == "tensor" else len(lines)
    return width, rows * LINE + 0.6 * FONT


def dot_source(shown: list[Box], merged: dict, rankdir: str = "TB") -> str:
    """The DOT text of one view (ids quoted, labels empty: the page writes the text)."""
    out = [
        "digraph G {",
        f'rankdir={rankdir}; nodesep=0.35; ranksep=0.45; fontsize={FONT}; fontname="Helvetica";',
    ]
    tree: dict[str, list[Box]] = {}
    for box in shown:
        tree.setdefault(box.scope, []).append(box)
    scopes = sorted({s for s in tree if s} | {p for s in tree if s for p in _parents(s)})

    def emit(scope: str, depth: int) -> None:
        for box in tree.get(scope, []):
            w, h = size(box.lines, box.shape)
            out.append(
                f'"{box.id}" [shape=box, fixedsize=true, width={w / 72:.3f},'
                f' height={h / 72:.3f}, label=""];'
            )
        for child in scopes:
            if (child.rsplit("/", 1)[0] if "/" in child else "") == scope and child != scope:
                out.append(f'subgraph "cluster_{child}" {{ label="▾ {child}"; margin=14;')
                emit(child, depth + 1)
                out.append("}")

    emit("", 0)
    for (source, target), link in merged.items():
        label = link.label.replace('"', "'")
        out.append(f'"{source}" -> "{target}" [label="{label}", fontsize={FONT}];')
    out.append("}")
    return "\n".join(out)


def _parents(scope: str) -> list[str]:
    parts = scope.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


def run_dot(source: str) -> dict:
    """Lay out ``source`` with ``dot -Tjson0``; a clear error if dot is missing."""
    try:
        done = subprocess.run(
            ["dot", "-Tjson0"], input=source.encode(), capture_output=True, check=True
        )
    except FileNotFoundError as error:
        raise RuntimeError(
            "explore lays the graph out with Graphviz's `dot` program, which was not found."
            " Install it (Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install"
            " graphviz; conda: conda install graphviz) and try again."
        ) from error
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"dot failed: {error.stderr.decode(errors='replace')}") from error
    return json.loads(done.stdout)


def layout(boxes: list[Box], links: list[Link], folded: frozenset[str]) -> dict:
    """One view as numbers for the page (see the module docstring)."""
    shown, merged, carried = visible(boxes, links, folded)
    laid = run_dot(dot_source(shown, merged))
    x0, y0, x1, y1 = (float(v) for v in laid["bb"].split(","))
    height = y1

    def point(text: str) -> tuple[float, float]:
        x, y = (float(v) for v in text.split(","))
        return round(x, 1), round(height - y, 1)

    nodes, clusters = {}, {}
    by_gvid = {}
    for obj in laid.get("objects", []):
        by_gvid[obj["_gvid"]] = obj["name"]
        if "bb" in obj:  # a cluster: its rectangle
            a, b, c, d = (float(v) for v in obj["bb"].split(","))
            name = obj["name"].removeprefix("cluster_")
            clusters[name] = [round(a, 1), round(height - d, 1), round(c - a, 1), round(d - b, 1)]
        elif "pos" in obj:
            x, y = point(obj["pos"])
            w, h = float(obj["width"]) * 72, float(obj["height"]) * 72
            nodes[obj["name"]] = [x, y, round(w, 1), round(h, 1)]
    edges = []
    for edge in laid.get("edges", []):
        pair = (by_gvid[edge["tail"]], by_gvid[edge["head"]])
        edges.append(
            {
                "source": pair[0],
                "target": pair[1],
                "d": _path(edge["pos"], point),
                "label": list(point(edge["lp"])) if "lp" in edge else None,
                "carries": carried[pair],
            }
        )
    return {
        "width": round(x1 - x0, 1),
        "height": round(y1 - y0, 1),
        "nodes": nodes,
        "clusters": clusters,
        "edges": edges,
        "groups": sorted(b.id for b in shown if b.shape == "group"),
    }


def _path(pos: str, point: object) -> str:
    """dot's spline ``e,x,y p0 p1 p2 p3 ...`` as an SVG path ending at the arrow tip."""
    end, points = None, []
    for part in pos.split():
        if part.startswith("e,"):
            end = point(part[2:])
        elif not part.startswith("s,"):
            points.append(point(part))
    d = f"M{points[0][0]},{points[0][1]}"
    for k in range(1, len(points) - 2, 3):
        (a, b), (c, e), (f, g) = points[k], points[k + 1], points[k + 2]
        d += f"C{a},{b} {c},{e} {f},{g}"
    if end is not None:
        d += f"L{end[0]},{end[1]}"
    return d

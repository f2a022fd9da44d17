"""The topology's graph: Cytoscape elements and style from the dependency tree.

A down device's unreachable subtree collapses into it ("+31 behind"); up leaves of a large parent
fold into one "n more up" node; up leaves go unlabelled (click one for its name)::

>>> nodes = [{"id": 1, "name": "core", "parent_id": None, "site": "A", "device_type": "router", "status": "down",
...           "cause": None, "behind": 1},
...          {"id": 2, "name": "leaf", "parent_id": 1, "site": "A", "device_type": "server", "status": "unreachable",
...           "cause": 1, "behind": 0}]
>>> [e["data"]["label"] for e in elements(nodes)]
['core\\n+1 behind']
"""

from __future__ import annotations

from typing import Any

from dashboard.charts import STATUS_COLORS

__all__ = ["FOLD_LEAVES_OVER", "STYLESHEET", "elements"]

FOLD_LEAVES_OVER = 12      # up leaves of one parent beyond this fold into one node

STYLESHEET: list[dict[str, Any]] = [
    {"selector": "node", "style": {"label": "data(label)", "color": "#c9d1d9", "font-size": 10,
                                   "text-valign": "bottom", "text-margin-y": 4, "width": 16, "height": 16,
                                   "background-color": STATUS_COLORS["unknown"], "text-wrap": "wrap",
                                   "text-max-width": 120, "border-width": 0}},
    *({"selector": f".{status}", "style": {"background-color": color}} for status, color in STATUS_COLORS.items()),
    {"selector": ".cause", "style": {"width": 30, "height": 30, "border-width": 4, "border-color": "#ffa198",
                                     "font-size": 12, "font-weight": "bold", "color": "#ffa198"}},
    {"selector": ".folded", "style": {"shape": "round-rectangle", "width": 26, "height": 14,
                                      "background-opacity": 0.5}},
    {"selector": "edge", "style": {"width": 1, "line-color": "#30363d", "target-arrow-shape": "none",
                                   "curve-style": "bezier"}},
    {"selector": ":selected", "style": {"border-width": 3, "border-color": "#58a6ff"}},
]



def elements(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cytoscape elements: unreachable devices collapse into their cause, big groups of up leaves fold."""
    shown = {n["id"]: n for n in nodes if n["status"] != "unreachable"}
    children: dict[int, list[int]] = {}
    for n in shown.values():
        if n["parent_id"] in shown:
            children.setdefault(n["parent_id"], []).append(n["id"])
    folded: dict[int, int] = {}
    for parent, kids in children.items():
        leaves = [k for k in kids if k not in children and shown[k]["status"] == "up"]
        if len(leaves) > FOLD_LEAVES_OVER:
            for k in leaves[FOLD_LEAVES_OVER // 2:]:
                del shown[k]
            folded[parent] = len(leaves) - FOLD_LEAVES_OVER // 2
    out: list[dict[str, Any]] = []
    for n in shown.values():
        behind = int(n["behind"])
        leaf = n["id"] not in children
        # Up leaves go unlabelled (a row of them is unreadable); click one for its name.
        label = "" if leaf and n["status"] == "up" else n["name"] + (f"\n+{behind} behind" if behind else "")
        classes = n["status"] + (" cause" if behind else "")
        out.append({"data": {"id": str(n["id"]), "label": label, "name": n["name"], "status": n["status"],
                             "site": n["site"], "type": n["device_type"], "behind": behind}, "classes": classes})
        if n["parent_id"] in shown:
            out.append({"data": {"source": str(n["parent_id"]), "target": str(n["id"])}})
    for parent, count in folded.items():
        node_id = f"fold-{parent}"
        out.append({"data": {"id": node_id, "label": f"{count} more up", "status": "up", "folded": count},
                    "classes": "up folded"})
        out.append({"data": {"source": str(parent), "target": node_id}})
    return out

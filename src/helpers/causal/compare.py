"""Compare value graphs with a reference, and test what a graph predicts about side effects.

    reference = schwartz_reference()                 # Schwartz circumplex, package data
    metrics = edge_metrics(found, reference)         # SHD, skeleton precision / recall / F1
    changes = score_changes(scores, values)          # steered minus unsteered, per unit
    own = own_value_change(changes)                  # does "+Power" raise Power? (target x +/-)
    table = side_effects(changes, descendants_of(found))

Side effects (Kang et al.): for a value v, take the interventions (steering roles, SAE features,
...) under which v changed; for every other value u, the share of those interventions under which
u changed too. Averaged over the values a graph says v reaches ("expected") and over the others
("unexpected"); a graph that captures how values move together separates the two.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..values.roles import ValueSetting
from .discovery import Graph, descendants


@lru_cache(maxsize=1)
def circumplex() -> dict:
    """The package's Schwartz circumplex: ``circle`` order, ``related`` and ``opposed`` pairs."""
    text = resources.files("helpers.causal").joinpath("data", "schwartz_circumplex.json").read_text(encoding="utf-8")
    return json.loads(text)


def undirected(nodes: Sequence[str], pairs: Iterable[Sequence[str]], info: dict | None = None) -> Graph:
    """A graph with each pair as two directed edges (the convention discovered graphs follow)."""
    edges = [edge for a, b in pairs for edge in ((a, b), (b, a))]
    return Graph(list(nodes), edges, info or {})


def schwartz_reference(include_opposed: bool = True) -> Graph:
    """Adjacent values on the circle (related) and, by default, opposed values (in tension) as
    undirected edges: both kinds are dependencies a correlation-based method should find."""
    data = circumplex()
    pairs = data["related"] + (data["opposed"] if include_opposed else [])
    return undirected(data["circle"], pairs, {"name": "Schwartz circumplex", "opposed": include_opposed})


def _pair_states(graph: Graph) -> dict[frozenset, tuple[bool, bool]]:
    edges = set(graph.edges)
    states = {}
    for a, b in edges:
        first, second = sorted((a, b))
        states[frozenset((a, b))] = ((first, second) in edges, (second, first) in edges)
    return states


def shd(found: Graph, reference: Graph) -> int:
    """Structural Hamming distance: node pairs whose connection differs (missing, extra, or with
    other directions; an undirected reference edge counts as both directions)."""
    a, b = _pair_states(found), _pair_states(reference)
    return sum(a.get(pair, (False, False)) != b.get(pair, (False, False)) for pair in set(a) | set(b))


def edge_metrics(found: Graph, reference: Graph, directed: bool = False) -> dict[str, float]:
    """SHD and edge precision / recall / F1 over the shared nodes: skeleton pairs by default,
    directed edges with ``directed=True``. Precision is NaN for an empty graph."""
    shared = set(found.nodes) & set(reference.nodes)
    if not shared:
        raise ValueError(f"The graphs share no node: found has {found.nodes}, reference has {reference.nodes}.")

    def edge_set(graph: Graph) -> set:
        kept = [e for e in graph.edges if e[0] in shared and e[1] in shared]
        return set(kept) if directed else {frozenset(e) for e in kept}

    got, want = edge_set(found), edge_set(reference)
    hits = len(got & want)
    precision = hits / len(got) if got else float("nan")
    recall = hits / len(want) if want else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if got and want and precision + recall else float("nan")
    return {"shd": shd(found, reference), "precision": precision, "recall": recall, "f1": f1,
            "found_edges": len(got), "reference_edges": len(want), "matched": hits}


def descendants_of(graph: Graph) -> dict[str, set[str]]:
    """Each node's descendants in ``graph``: what the graph expects a change of the node to move."""
    return descendants(graph.nodes, graph.edges)


def neighbours_of(graph: Graph) -> dict[str, set[str]]:
    """Each node's neighbours: the expectation to use with an undirected reference, in which every
    node reaches every other through the circle."""
    result = {node: set() for node in graph.nodes}
    for a, b in graph.edges:
        result[a].add(b)
        result[b].add(a)
    return result


def score_changes(scores: pd.DataFrame, values: Sequence[str], unit: str = "role", setting: str = "setting",
                  baseline: str = "none") -> pd.DataFrame:
    """Per steered row, its value scores minus those of the same unit's baseline row.

    ``unit`` names what is steered (a role, a prompt), ``setting`` the intervention (a value
    setting, an SAE feature id), ``baseline`` the setting label of the unsteered rows."""
    missing = [c for c in (unit, setting, *values) if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lack column(s) {missing}; they have {list(scores.columns)}.")
    base = scores[scores[setting] == baseline].drop_duplicates(unit).set_index(unit)[list(values)]
    steered = scores[scores[setting] != baseline]
    lacking = sorted(set(steered[unit]) - set(base.index))
    if lacking:
        raise ValueError(f"Unit(s) {lacking[:5]} have steered rows but no {setting}={baseline!r} row to compare with.")
    deltas = steered[list(values)].to_numpy(float) - base.loc[steered[unit], list(values)].to_numpy(float)
    return pd.concat([steered[[unit, setting]].reset_index(drop=True), pd.DataFrame(deltas, columns=list(values))],
                     axis=1)


def own_value_change(changes: pd.DataFrame, setting: str = "setting") -> pd.DataFrame:
    """Does a value setting move its own value? ``changes`` (``score_changes`` of personas steered
    by value settings, labels "+<value>" / "-<value>") reduced to the mean change of each targeted
    value's own score: one row per target value, one column per direction ("+": inclination,
    "-": disinclination), averaged over the units (roles)."""
    decoded = [ValueSetting.from_label(label) for label in changes[setting]]
    targets = [s.value for s in decoded]
    unknown = sorted({t for t in targets if t is None or t not in changes.columns}, key=str)
    if unknown:
        raise ValueError(f"Setting(s) target {unknown}, which are not value columns of changes "
                         f"({list(changes.columns)}).")
    own = pd.DataFrame({"target": targets, "direction": ["+" if s.direction > 0 else "-" for s in decoded],
                        "own_change": [changes[t].iloc[i] for i, t in enumerate(targets)]})
    return own.pivot_table(index="target", columns="direction", values="own_change")


def side_effects(changes: pd.DataFrame, expected: Mapping[str, Iterable[str]],
                 threshold: float | Mapping[str, float] = 0.0) -> pd.DataFrame:
    """The side-effect table: one row per value v of ``expected`` found in ``changes``.

    ``changes`` holds one row per intervention and one column per value (score change); a value
    changed when its absolute change exceeds ``threshold`` (one number, or one per value: say the
    spread of each value across unsteered roles, for continuous scores). For v: ``interventions`` under which
    v changed, ``expected`` the mean share of them under which a value in ``expected[v]`` also
    changed, ``unexpected`` the same over the other values (NaN where a group is empty), and
    ``gap`` = expected - unexpected. Works the same for roles and for SAE features.
    """
    values = [v for v in expected if v in changes.columns]
    if not values:
        raise ValueError(f"No value of the graph ({list(expected)}) is a column of changes ({list(changes.columns)}).")
    limits = np.array([threshold[v] for v in values] if isinstance(threshold, Mapping) else [threshold] * len(values))
    moved = changes[values].abs().to_numpy(float) > limits
    rows = []
    for j, value in enumerate(values):
        where = moved[:, j]
        share = moved[where].mean(axis=0) if where.any() else np.full(len(values), np.nan)
        reach = set(expected[value])
        exp_idx = [k for k, u in enumerate(values) if u in reach and u != value]
        unexp_idx = [k for k, u in enumerate(values) if u not in reach and u != value]
        exp = float(np.mean(share[exp_idx])) if exp_idx and where.any() else float("nan")
        unexp = float(np.mean(share[unexp_idx])) if unexp_idx and where.any() else float("nan")
        rows.append({"value": value, "interventions": int(where.sum()), "n_expected": len(exp_idx),
                     "expected": exp, "unexpected": unexp, "gap": exp - unexp})
    return pd.DataFrame(rows)

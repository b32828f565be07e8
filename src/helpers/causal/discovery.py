"""Causal discovery between value dimensions: PC, FCI and GES from causal-learn behind one call.

    graph = discover(scores, method="pc", alpha=0.05, columns=values)    # a Graph (nodes, edges)
    stability = bootstrap_stability(scores, method="pc", n_resamples=200, columns=values)

``discover`` runs causal-learn, then applies the paper's post-processing: an edge with an arrowhead
at exactly one end is read as directed towards it; every other edge (undirected, bidirected, or
circle-circle from FCI) as two directed edges, one each way; then ``reduce_edges`` removes edges
greedily, one at a time in the order they were listed, whenever removing one leaves every node's
set of descendants unchanged, and repeats until no edge can go. Data that would make the tests
singular (constant or duplicate columns, too few rows, missing values) raise ``DiscoveryDataError``
with what to fix instead of a linear-algebra trace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import networkx as nx
import numpy as np
import pandas as pd

from ..artifacts import atomic_write_json
from ..errors import UserError

METHODS = ("pc", "fci", "ges")


class DiscoveryDataError(UserError):
    """Data that causal discovery cannot use, with what was wrong and how to fix it."""


@dataclass
class Graph:
    """A directed graph over named nodes; ``edges`` keep the order in which they were found."""

    nodes: list[str]
    edges: list[tuple[str, str]]
    info: dict = field(default_factory=dict)  # method, alpha, rows, ... (written to JSON)

    def __post_init__(self):
        self.edges = [tuple(e) for e in self.edges]
        unknown = sorted({n for e in self.edges for n in e} - set(self.nodes))
        if unknown:
            raise ValueError(f"Edges name nodes {unknown} that are not in the graph's nodes.")

    def to_networkx(self) -> nx.DiGraph:
        graph = nx.DiGraph()
        graph.add_nodes_from(self.nodes)
        graph.add_edges_from(self.edges)
        return graph

    def to_json(self, path: Path | str) -> Path:
        """``{"nodes": [...], "edges": [[source, target], ...], ...info}``, written atomically."""
        return atomic_write_json(path, {"nodes": self.nodes, "edges": [list(e) for e in self.edges], **self.info})

    @classmethod
    def from_json(cls, path: Path | str) -> "Graph":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        info = {k: v for k, v in data.items() if k not in ("nodes", "edges")}
        return cls(list(data["nodes"]), [tuple(e[:2]) for e in data["edges"]], info)


def first_text_cell(frame: pd.DataFrame, column: str) -> str:
    """Where ``column`` first holds a cell that is not a number, as "row R: 'text'" (R counts data
    rows from 1, as a spreadsheet shows them below the header)."""
    numbers = pd.to_numeric(frame[column], errors="coerce")
    bad = frame[column][numbers.isna() & frame[column].notna()]
    if bad.empty:
        return "no text cell"
    return f"row {frame.index.get_loc(bad.index[0]) + 1}: {str(bad.iloc[0])[:40]!r}"


def check_data(data: pd.DataFrame, columns: Sequence[str] | None = None) -> np.ndarray:
    """The selected columns as a float matrix, after the checks that make discovery well posed."""
    columns = list(data.columns if columns is None else columns)
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise DiscoveryDataError(f"Column(s) {missing} are not in the data; it has {list(data.columns)}.")
    if len(columns) < 2:
        raise DiscoveryDataError(f"Discovery needs at least 2 columns, got {columns}.")
    frame = data[columns]
    non_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise DiscoveryDataError(f"Column(s) {non_numeric} are not numeric ({first_text_cell(frame, non_numeric[0])}); "
                                 "fix those cells or select the value columns only.")
    if frame.isna().any().any():
        raise DiscoveryDataError(f"Column(s) {list(frame.columns[frame.isna().any()])} have missing values; "
                                 "drop or fill those rows first.")
    min_rows = len(columns) + 5
    if len(frame) < min_rows:
        raise DiscoveryDataError(f"{len(frame)} rows for {len(columns)} columns: conditional-independence tests "
                                 f"need at least {min_rows} (columns + 5); score more roles or settings.")
    values = frame.to_numpy(dtype=float)
    constant = [c for c, sd in zip(columns, values.std(axis=0)) if sd == 0]
    if constant:
        raise DiscoveryDataError(f"Column(s) {constant} are constant over all {len(frame)} rows: they carry no "
                                 "information and make the correlation matrix singular; drop them.")
    corr = np.corrcoef(values, rowvar=False)
    duplicates = [(columns[i], columns[j]) for i in range(len(columns)) for j in range(i + 1, len(columns))
                  if abs(corr[i, j]) > 1 - 1e-10]
    if duplicates:
        raise DiscoveryDataError(f"Column pair(s) {duplicates} are duplicates (correlation +-1): keep one of each.")
    if np.linalg.matrix_rank(corr) < len(columns):
        raise DiscoveryDataError(f"The columns {columns} are linearly dependent (one is a combination of others): "
                                 "drop one of them.")
    return values


def _run_method(values: np.ndarray, method: str, alpha: float):
    """causal-learn's graph object for ``method`` (GeneralGraph with endpoint marks)."""
    if method == "pc":
        from causallearn.search.ConstraintBased.PC import pc
        from causallearn.utils.cit import fisherz
        return pc(values, alpha, fisherz, show_progress=False).G
    if method == "fci":
        from causallearn.search.ConstraintBased.FCI import fci
        from causallearn.utils.cit import fisherz
        return fci(values, fisherz, alpha, show_progress=False, verbose=False)[0]
    if method == "ges":
        from causallearn.search.ScoreBased.GES import ges
        return ges(values, score_func="local_score_BIC")["G"]
    raise ValueError(f"Unknown discovery method {method!r}; choose one of {METHODS}.")


def directed_edges(general_graph, names: Sequence[str]) -> list[tuple[str, str]]:
    """causal-learn edges as directed pairs: an arrowhead at exactly one end points that way;
    any other edge (undirected, bidirected, circle-circle) becomes two directed edges."""
    from causallearn.graph.Endpoint import Endpoint

    index = general_graph.node_map
    edges = []
    for edge in general_graph.get_graph_edges():
        a, b = names[index[edge.get_node1()]], names[index[edge.get_node2()]]
        head_a, head_b = edge.get_endpoint1() == Endpoint.ARROW, edge.get_endpoint2() == Endpoint.ARROW
        if head_b and not head_a:
            edges.append((a, b))
        elif head_a and not head_b:
            edges.append((b, a))
        else:
            edges += [(a, b), (b, a)]
    return edges


def descendants(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, set[str]]:
    """Every node's set of descendants (nodes reachable along directed edges)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    return {node: nx.descendants(graph, node) for node in nodes}


def reduce_edges(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Greedy reachability-preserving reduction: go through the edges in their listed order and
    drop each one whose removal leaves every node's descendants unchanged; repeat until a pass
    drops nothing. The result depends on that order where cycles make several edges redundant."""
    kept = list(dict.fromkeys(edges))
    reference = descendants(nodes, kept)
    changed = True
    while changed:
        changed = False
        for edge in list(kept):
            trial = [e for e in kept if e != edge]
            if descendants(nodes, trial) == reference:
                kept = trial
                changed = True
    return kept


def discover(data: pd.DataFrame, method: str = "pc", alpha: float = 0.05, columns: Sequence[str] | None = None,
             reduce: bool = True) -> Graph:
    """The causal graph over ``columns`` (default: all) of ``data``, post-processed and reduced."""
    if method not in METHODS:
        raise ValueError(f"Unknown discovery method {method!r}; choose one of {METHODS}.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}.")
    columns = list(data.columns if columns is None else columns)
    values = check_data(data, columns)
    edges = directed_edges(_run_method(values, method, alpha), columns)
    info = {"method": method, "alpha": alpha, "rows": len(values), "edges_before_reduction": len(edges)}
    return Graph(columns, reduce_edges(columns, edges) if reduce else edges, info)


def bootstrap_stability(data: pd.DataFrame, method: str = "pc", alpha: float = 0.05,
                        columns: Sequence[str] | None = None, n_resamples: int = 100, seed: int = 0,
                        reduce: bool = True) -> pd.DataFrame:
    """Share of bootstrap resamples (rows drawn with replacement) in which each directed edge appears.

    Returns one row per edge seen at least once: ``source, target, stability`` (sorted, most
    stable first), with ``resamples`` used; a resample that fails ``check_data`` (say, a column
    constant by chance) is skipped and counted in ``attrs["skipped"]``.
    """
    columns = list(data.columns if columns is None else columns)
    check_data(data, columns)
    rng = np.random.default_rng(seed)
    counts: dict[tuple[str, str], int] = {}
    used = skipped = 0
    last_error = None
    for _ in range(n_resamples):
        sample = data.iloc[rng.integers(0, len(data), len(data))]
        try:
            graph = discover(sample, method, alpha, columns, reduce=reduce)
        except DiscoveryDataError as error:
            skipped, last_error = skipped + 1, error
            continue
        used += 1
        for edge in set(graph.edges):
            counts[edge] = counts.get(edge, 0) + 1
    if not used:
        raise DiscoveryDataError(f"All {n_resamples} bootstrap resamples were unusable (last: {last_error}); "
                                 "resampling repeats rows, so the data need more distinct rows than columns.")
    table = pd.DataFrame([{"source": s, "target": t, "stability": n / used} for (s, t), n in counts.items()],
                         columns=["source", "target", "stability"])
    table = table.sort_values(["stability", "source", "target"], ascending=[False, True, True]).reset_index(drop=True)
    table["resamples"] = used
    table.attrs["skipped"] = skipped
    return table

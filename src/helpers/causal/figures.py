"""Value graphs as interactive plotly networks, side by side (nodes on a circle, networkx layout).

    fig = network_figure([("Discovered (PC)", graph, stability), ("Schwartz reference", reference, None)],
                         title="...")

Edge width follows a weight per directed edge (bootstrap stability, 0-1) when one is given; an
edge present in both directions is drawn once, without arrowhead. Hovering a node shows its
in- and out-edges.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import networkx as nx
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .discovery import Graph


def _edge_segments(graph: Graph, weights: Mapping[tuple[str, str], float] | None):
    edges = set(graph.edges)
    drawn = set()
    for a, b in graph.edges:
        if (b, a) in drawn:
            continue
        drawn.add((a, b))
        both = (b, a) in edges
        weight = None if weights is None else max(weights.get((a, b), 0.0), weights.get((b, a), 0.0) if both else 0.0)
        yield a, b, both, weight


def network_figure(panels: Sequence[tuple[str, Graph, Mapping[tuple[str, str], float] | None]], title: str,
                   node_order: Sequence[str] | None = None) -> go.Figure:
    """One subplot per (panel title, graph, edge weights or None); nodes share one circular layout."""
    order = list(node_order or panels[0][1].nodes)
    for _, graph, _ in panels:
        order += [n for n in graph.nodes if n not in order]
    layout = nx.circular_layout(nx.path_graph(order))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels], horizontal_spacing=0.08)
    for col, (_, graph, weights) in enumerate(panels, start=1):
        xref = "x" if col == 1 else f"x{col}"
        yref = "y" if col == 1 else f"y{col}"
        for a, b, both, weight in _edge_segments(graph, weights):
            width = 1.5 if weight is None else 0.5 + 7 * weight
            (x0, y0), (x1, y1) = layout[a], layout[b]
            fig.add_trace(go.Scatter(x=[x0, x1], y=[y0, y1], mode="lines", line={"width": width, "color": "#6b7a8f"},
                                     hoverinfo="text", showlegend=False,
                                     text=f"{a} {'<->' if both else '->'} {b}"
                                          + ("" if weight is None else f" (stability {weight:.2f})")),
                          row=1, col=col)
            if not both:
                fig.add_annotation(x=x0 + 0.88 * (x1 - x0), y=y0 + 0.88 * (y1 - y0), ax=x0 + 0.6 * (x1 - x0),
                                   ay=y0 + 0.6 * (y1 - y0), xref=xref, yref=yref, axref=xref, ayref=yref,
                                   showarrow=True, arrowhead=3, arrowsize=1.2, arrowwidth=1.5, arrowcolor="#34495e",
                                   text="")
        nodes = [n for n in order if n in graph.nodes]
        hover = [f"{n}<br>out: {', '.join(t for s, t in graph.edges if s == n) or '-'}"
                 f"<br>in: {', '.join(s for s, t in graph.edges if t == n) or '-'}" for n in nodes]
        fig.add_trace(go.Scatter(x=[layout[n][0] for n in nodes], y=[layout[n][1] for n in nodes],
                                 mode="markers+text", text=nodes, textposition="top center", hovertext=hover,
                                 hoverinfo="text", marker={"size": 14, "color": "#e67e22"}, showlegend=False),
                      row=1, col=col)
        fig.update_xaxes(visible=False, range=[-1.45, 1.45], row=1, col=col)
        fig.update_yaxes(visible=False, range=[-1.3, 1.3], scaleanchor=xref, row=1, col=col)
    fig.update_layout(title=title, template="plotly_white", xaxis_title="(circular layout)",
                      yaxis_title="(circular layout)")
    return fig

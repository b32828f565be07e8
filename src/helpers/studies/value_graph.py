"""Notebook 05's study: its settings per profile and one entry point per result.

    cfg = preset(VALUE_GRAPH_PRESETS, "default")
    engine = load_scoring_engine(cfg)
    train, test = study_items(cfg)
    values = sorted(train["value"].unique())
    discovery, steering = study_personas(cfg, values)
    role_scores = score_discovery_roles(engine, discovery, train, cfg, out_dir)   # scores.csv, answers.csv
    found = discover_value_graph(role_scores.scores, values, cfg, out_dir)       # graph_<method>.json
    comparison = compare_with_schwartz(role_scores, values, found, cfg)          # PC, FCI, GES vs Schwartz
    methods = compare_scoring_methods(engine, discovery, test, values, cfg)
    steered = score_steering_roles(engine, steering, test, values, cfg, out_dir)  # steering_scores.csv
    effects = graph_side_effects(steered, found, role_scores, values, cfg, out_dir)  # side_effects.csv
    paper, paper_graphs = reproduce_paper_graphs(None, out_dir)                  # paper_<model>_graph.json
    summary = value_graph_summary(...)                                           # what summary.json holds

Discovery personas are the plain baseline plus ``n_roles`` generated roles, scored on the train
items; steering personas are ``steering_roles`` other generated roles (and the baseline), each
unsteered and under an inclination and a disinclination to every value, scored on the test items
(the paper's split between discovery roles and test roles). Each step takes the results of the
steps before it as arguments and returns its own (DataFrames, graphs, small dataclasses); the
``*_figure`` functions build the notebook's figures from them (``helpers.plots.save_fig`` saves them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from ..artifacts import atomic_write_text
from ..causal.compare import (circumplex, descendants_of, edge_metrics, neighbours_of, own_value_change,
                              schwartz_reference, score_changes, side_effects)
from ..causal.discovery import METHODS as DISCOVERY_METHODS, DiscoveryDataError, Graph, bootstrap_stability, discover
from ..causal.figures import network_figure
from ..causal.paper import PAPER_MODELS, published_graph, reproduce_paper_graph
from ..config import project_root
from ..generation import HFEngine
from ..models import load_lm
from ..values.inventory import (PAPER_VALUES, VALUEBENCH_URL, embedded_inventory, like_me_scale, load_valuebench,
                                split_items)
from ..values.roles import NO_ROLE, NO_SETTING, Persona, cross, generate_roles, value_settings
from ..values.scoring import METHODS, score_personas, scores_table

STAGE = "05_value_graph"  # run folder: data/05_value_graph/<profile>/ (notebook 06 reads the graph there)
SIDE_EFFECT_COLUMNS = ["expected", "unexpected", "gap"]


@dataclass(frozen=True)
class ValueGraphConfig:
    """Everything that decides the scores of notebook 05 (recorded in its manifest)."""

    model: str = "smollm2-135m-instruct"
    dtype: str = "auto"  # models.generation_dtype: fp32 on CPUs without bf16 hardware (5x faster scoring here)
    inventory: str = "embedded"  # "embedded", or a path / URL of ValueBench's value_orientation.csv
    values: tuple[str, ...] | None = None  # None: every value of the inventory
    items_per_value: int | None = None  # cap on train items per value (None: all)
    train_fraction: float = 0.7
    n_roles: int = 60  # generated discovery roles (the no-role baseline comes on top)
    with_bio: bool = True
    steering_roles: int = 1  # other roles scored unsteered and under each value setting (+ baseline)
    seed: int = 0
    method: str = "logprob_yes_no"  # generate, logprob_yes_no or logprob_like_me
    compare_roles: int = 4  # discovery personas scored by all three methods on the test items
    max_new_tokens: int = 48  # for the generate method
    batch_size: int = 16
    discovery: str = "pc"
    alpha: float = 0.05
    n_bootstrap: int = 100


VALUE_GRAPH_PRESETS = {
    "smoke": ValueGraphConfig(items_per_value=1, n_roles=29, with_bio=False, steering_roles=0, compare_roles=2,
                              max_new_tokens=24, n_bootstrap=4),
    "default": ValueGraphConfig(),
    "paper": ValueGraphConfig(model="google/gemma-2b-it", dtype="bfloat16", inventory=VALUEBENCH_URL,
                              values=PAPER_VALUES, n_roles=100, steering_roles=25, method="generate",
                              compare_roles=10, max_new_tokens=96, batch_size=64, n_bootstrap=200),
}


def study_items(cfg: ValueGraphConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test items of the configured inventory (train capped at ``items_per_value``)."""
    if cfg.inventory == "embedded":
        items = embedded_inventory(cfg.values)
    else:
        items = load_valuebench(cfg.inventory, values=cfg.values)
    train, test = split_items(items, cfg.train_fraction, cfg.seed)
    if cfg.items_per_value is not None:
        train = train.groupby("value", sort=False).head(cfg.items_per_value).reset_index(drop=True)
        test = test.groupby("value", sort=False).head(max(1, cfg.items_per_value // 2)).reset_index(drop=True)
    return train, test


def study_personas(cfg: ValueGraphConfig, values: list[str] | None = None) -> tuple[list[Persona], list[Persona]]:
    """Discovery personas (baseline + roles, unsteered) and steering personas (other roles and the
    baseline, unsteered and under +/- each of ``values``)."""
    roles = generate_roles(cfg.n_roles + cfg.steering_roles, seed=cfg.seed, with_bio=cfg.with_bio)
    discovery = cross([NO_ROLE, *roles[:cfg.n_roles]])
    settings = [NO_SETTING, *value_settings(values or [])]
    steering = cross([NO_ROLE, *roles[cfg.n_roles:]], settings)
    return discovery, steering


def load_scoring_engine(cfg: ValueGraphConfig) -> HFEngine:
    """``cfg.model`` in ``cfg.dtype`` behind a batched engine that generates and scores
    ``cfg.batch_size`` prompts at a time."""
    model, tokenizer = load_lm(cfg.model, dtype=cfg.dtype)
    return HFEngine(model, tokenizer, batch_size=cfg.batch_size, score_batch_size=cfg.batch_size)


def items_overview(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """Per value: its train and test items, its reverse-keyed train items and one example question."""
    return pd.DataFrame({"train items": train.groupby("value").size(), "test items": test.groupby("value").size(),
                         "reverse-keyed (train)": train[train["agreement"] < 0].groupby("value").size(),
                         "example question": train.groupby("value")["question"].first()}).fillna(0).astype(
                             {"reverse-keyed (train)": int})


def like_me_table() -> pd.DataFrame:
    """The 6-point answer scale of the ``logprob_like_me`` method: rating and label."""
    return pd.DataFrame({"rating": range(1, 7), "label": like_me_scale()})


def personas_preview(discovery: list[Persona], steering: list[Persona]) -> pd.DataFrame:
    """Role, setting and prompt text of the first four discovery personas and of the second and
    third steering personas (the first steered ones)."""
    return pd.DataFrame([{"role": p.role.name, "setting": p.setting.label, "prompt text": p.system_prompt()}
                         for p in [*discovery[:4], *steering[1:3]]])


@dataclass
class RoleScores:
    """The discovery personas scored on the train items with ``cfg.method``."""

    answers: pd.DataFrame  # one row per (persona, item)
    scores: pd.DataFrame  # one row per persona, one column per value
    centred: pd.DataFrame  # the same with each persona's overall yes-lean removed (acquiescence correction)
    seconds: float  # scoring wall time


def score_discovery_roles(engine, personas: list[Persona], train: pd.DataFrame, cfg: ValueGraphConfig,
                          out_dir: Path, log: Callable | None = print) -> RoleScores:
    """Score every discovery persona on the train items (one forward pass per persona and item with
    the log-probability methods); writes ``scores.csv`` and ``answers.csv`` to ``out_dir``."""
    start = time.perf_counter()
    answers = score_personas(engine, personas, train, method=cfg.method, progress=False)
    seconds = time.perf_counter() - start
    scores = scores_table(answers)
    atomic_write_text(out_dir / "scores.csv", scores.to_csv(index=False))
    atomic_write_text(out_dir / "answers.csv", answers.to_csv(index=False))
    if log:
        log(f"{len(answers)} answers from {len(personas)} personas in {seconds:.0f} s "
            f"({len(answers) / seconds:.1f} per second)")
    return RoleScores(answers, scores, scores_table(answers, center=True), seconds)


def score_spread(role_scores: RoleScores, values: list[str]) -> pd.DataFrame:
    """Per value: mean, std, min, max and range of its score across the discovery personas, and
    (log-probability methods) the mean probability the two answer tokens received."""
    spread = role_scores.scores[values].agg(["mean", "std", "min", "max"]).T
    spread["range"] = spread["max"] - spread["min"]
    if "option_mass" in role_scores.answers:
        spread["answer-token mass"] = role_scores.answers.groupby("value")["option_mass"].mean()
    return spread


def scores_heatmap(role_scores: RoleScores, values: list[str], cfg: ValueGraphConfig, n_items: int) -> go.Figure:
    """Heat map of the value scores: one row per role, one column per value, centred colour scale."""
    heat = role_scores.scores.set_index("role")[values]
    limit = float(np.abs(heat.to_numpy()).max())
    fig = px.imshow(heat, color_continuous_scale="RdBu", zmin=-limit, zmax=limit, aspect="auto",
                    title=f"Value scores of {cfg.model} by role ({cfg.method}, {n_items} train items)")
    fig.update_layout(xaxis_title="value", yaxis_title="role (persona)", coloraxis_colorbar_title="score")
    return fig


def correlation_heatmap(role_scores: RoleScores, values: list[str]) -> go.Figure:
    """Pearson correlation of each pair of values over the discovery personas, as a heat map."""
    scores = role_scores.scores
    fig = px.imshow(scores[values].corr(), color_continuous_scale="RdBu", zmin=-1, zmax=1, text_auto=".2f",
                    title=f"Correlation of value scores across {len(scores)} roles")
    fig.update_layout(xaxis_title="value", yaxis_title="value", coloraxis_colorbar_title="Pearson r")
    return fig


def centring_effect(role_scores: RoleScores, values: list[str]) -> pd.DataFrame:
    """Mean correlation between different values and mean std across roles, for the raw and the
    centred scores: how much of the spread is one common yes-lean."""
    off_diagonal = ~np.eye(len(values), dtype=bool)
    raw, centred = role_scores.scores[values], role_scores.centred[values]
    return pd.DataFrame({"mean correlation between values": [raw.corr().to_numpy()[off_diagonal].mean(),
                                                             centred.corr().to_numpy()[off_diagonal].mean()],
                         "mean std across roles": [raw.std().mean(), centred.std().mean()]},
                        index=["raw scores", "centred scores"])


@dataclass
class DiscoveredGraph:
    """The value graph of ``cfg.discovery`` on the discovery scores, with its bootstrap stability."""

    graph: Graph
    stability: pd.DataFrame  # bootstrap_stability's table: source, target, stability, resamples
    weights: dict[tuple[str, str], float]  # (source, target) -> share of resamples holding the edge
    edges: pd.DataFrame  # the graph's edges with their stability
    bootstrap_seconds: float


def discover_value_graph(scores: pd.DataFrame, values: list[str], cfg: ValueGraphConfig, out_dir: Path,
                         log: Callable | None = print) -> DiscoveredGraph:
    """``cfg.discovery`` at ``cfg.alpha`` over the value columns (reduced as in the paper), then
    ``cfg.n_bootstrap`` bootstrap resamples of the roles (seed ``cfg.seed``) for each edge's
    stability; writes ``graph_<discovery>.json`` to ``out_dir``."""
    graph = discover(scores, method=cfg.discovery, alpha=cfg.alpha, columns=values)
    start = time.perf_counter()
    stability = bootstrap_stability(scores, method=cfg.discovery, alpha=cfg.alpha, columns=values,
                                    n_resamples=cfg.n_bootstrap, seed=cfg.seed)
    seconds = time.perf_counter() - start
    weights = {(r.source, r.target): r.stability for r in stability.itertuples()}
    graph.to_json(out_dir / f"graph_{cfg.discovery}.json")
    edges = pd.DataFrame(graph.edges, columns=["source", "target"])
    edges["stability"] = [weights.get(e, 0.0) for e in graph.edges]
    if log:
        log(f"{len(graph.edges)} edges ({graph.info['edges_before_reduction']} before reduction); "
            f"{cfg.n_bootstrap} bootstrap resamples in {seconds:.0f} s")
    return DiscoveredGraph(graph, stability, weights, edges, seconds)


@dataclass
class SchwartzComparison:
    """Every discovery method's graph and its edge metrics against the Schwartz reference."""

    graphs: dict[str, Graph]  # method name (and "<discovery> (centred scores)" when it ran) -> graph
    table: pd.DataFrame  # one row per (method, reference): SHD, precision, recall, F1, chance precision


def compare_with_schwartz(role_scores: RoleScores, values: list[str], found: DiscoveredGraph, cfg: ValueGraphConfig,
                          log: Callable | None = print) -> SchwartzComparison:
    """PC, FCI and GES on the raw scores (``cfg.discovery``'s graph reused) and ``cfg.discovery`` on
    the centred scores (skipped, with a logged reason, when centring makes the columns collinear),
    each scored against the Schwartz circumplex with and without the opposed pairs. "chance
    precision" is the share of all value pairs that the reference connects."""
    reference = schwartz_reference()
    related_only = schwartz_reference(include_opposed=False)
    n_pairs = len(values) * (len(values) - 1) / 2
    graphs = {method: found.graph if method == cfg.discovery else discover(role_scores.scores, method=method,
                                                                             alpha=cfg.alpha, columns=values)
              for method in DISCOVERY_METHODS}
    try:  # centring can make the columns sum to a constant (all items keyed the same way): then PC cannot run
        graphs[f"{cfg.discovery} (centred scores)"] = discover(role_scores.centred, method=cfg.discovery,
                                                               alpha=cfg.alpha, columns=values)
    except DiscoveryDataError as error:
        if log:
            log(f"No discovery on the centred scores: {error}")
    rows = []
    for method, graph in graphs.items():
        for name, ref in (("related + opposed", reference), ("related only", related_only)):
            metrics = edge_metrics(graph, ref)
            rows.append({"method": method, "reference": name, **metrics,
                         "chance precision": metrics["reference_edges"] / n_pairs})
    return SchwartzComparison(graphs, pd.DataFrame(rows))


def graph_vs_schwartz_figure(found: DiscoveredGraph, values: list[str], cfg: ValueGraphConfig) -> go.Figure:
    """The discovered graph (line width: bootstrap stability) beside the Schwartz reference, nodes
    on the circumplex's circle when every value is on it."""
    circle = circumplex()["circle"]
    return network_figure([(f"Discovered ({cfg.discovery.upper()}), width = bootstrap stability", found.graph,
                            found.weights),
                           ("Schwartz circumplex (related and opposed)", schwartz_reference(), None)],
                          title=f"Value graph of {cfg.model} beside the Schwartz reference",
                          node_order=circle if set(values) <= set(circle) else values)


@dataclass
class MethodComparison:
    """The first ``cfg.compare_roles`` discovery personas scored on the test items by every method."""

    answers: dict[str, pd.DataFrame]  # scoring method -> its answers
    cells: pd.DataFrame  # one row per (role, setting, value), one column per method
    seconds: float

    @property
    def generated(self) -> pd.DataFrame:
        """The answers of the generate-then-parse method (raw text and parsed answer)."""
        return self.answers["generate"]


def compare_scoring_methods(engine, personas: list[Persona], test: pd.DataFrame, values: list[str],
                            cfg: ValueGraphConfig, log: Callable | None = print) -> MethodComparison:
    """Score ``personas[:cfg.compare_roles]`` on the test items with each of the three scoring
    methods (generation up to ``cfg.max_new_tokens`` tokens), in ``METHODS`` order."""
    compare_personas = personas[:cfg.compare_roles]
    start = time.perf_counter()
    by_method = {method: score_personas(engine, compare_personas, test, method=method,
                                        max_new_tokens=cfg.max_new_tokens, progress=False) for method in METHODS}
    seconds = time.perf_counter() - start
    cells = pd.DataFrame({method: scores_table(a).set_index(["role", "setting"])[values].stack()
                          for method, a in by_method.items()})
    result = MethodComparison(by_method, cells, seconds)
    if log:
        log(f"{len(compare_personas)} personas x {len(test)} test items x {len(METHODS)} methods in {seconds:.0f} s; "
            f"unclear generated answers: {result.generated['answer'].eq('unclear').mean():.0%}; answers: "
            f"{result.generated['answer'].value_counts().to_dict()}")
    return result


@dataclass
class SteeredRoles:
    """The steering personas scored on the test items, and what each value setting changed."""

    scores: pd.DataFrame  # one row per persona (role x setting)
    changes: pd.DataFrame  # steered minus the same role unsteered
    own_change: pd.DataFrame  # mean change of the targeted value: target x direction ("+" / "-")
    seconds: float


def score_steering_roles(engine, personas: list[Persona], test: pd.DataFrame, values: list[str],
                         cfg: ValueGraphConfig, out_dir: Path, log: Callable | None = print) -> SteeredRoles:
    """Score the steering personas (unsteered and with each value setting) on the test items with
    ``cfg.method``; writes ``steering_scores.csv`` to ``out_dir``."""
    start = time.perf_counter()
    answers = score_personas(engine, personas, test, method=cfg.method, progress=False)
    seconds = time.perf_counter() - start
    scores = scores_table(answers)
    atomic_write_text(out_dir / "steering_scores.csv", scores.to_csv(index=False))
    changes = score_changes(scores, values)
    if log:
        log(f"{len(personas)} steering personas in {seconds:.0f} s")
    return SteeredRoles(scores, changes, own_value_change(changes), seconds)


def graph_side_effects(steered: SteeredRoles, found: DiscoveredGraph, role_scores: RoleScores, values: list[str],
                       cfg: ValueGraphConfig, out_dir: Path) -> pd.DataFrame:
    """The side-effect table (``helpers.causal.compare.side_effects``) of the steering changes for
    the discovered graph (descendants expected to move) and the Schwartz reference (neighbours); a
    value counts as changed when it moved by more than its std across the discovery personas.
    Written to ``side_effects.csv`` in ``out_dir``; column ``graph`` names the graph."""
    threshold = role_scores.scores[values].std().to_dict()
    effects = pd.concat([
        side_effects(steered.changes, descendants_of(found.graph), threshold).assign(
            graph=f"discovered ({cfg.discovery})"),
        side_effects(steered.changes, neighbours_of(schwartz_reference()), threshold).assign(
            graph="Schwartz reference"),
    ])
    atomic_write_text(out_dir / "side_effects.csv", effects.to_csv(index=False))
    return effects


def side_effect_means(effects: pd.DataFrame) -> pd.DataFrame:
    """Per graph, the mean expected and unexpected share of co-changed values and their gap."""
    return effects.groupby("graph")[SIDE_EFFECT_COLUMNS].mean()


def side_effects_figure(effects: pd.DataFrame) -> go.Figure:
    """Per graph (rows) and changed value: the share of the other values that changed too, among
    those the graph expects and among the rest."""
    long = effects.melt(id_vars=["graph", "value"], value_vars=["expected", "unexpected"], var_name="kind",
                        value_name="share")
    fig = px.bar(long, x="value", y="share", color="kind", barmode="group", facet_row="graph", template="plotly_white",
                 title="Side effects: share of other values that also changed, expected vs unexpected by each graph")
    fig.update_layout(xaxis_title="value whose score changed", yaxis_title="share of others that changed too")
    fig.for_each_yaxis(lambda axis: axis.update(title_text="share changed too", range=[0, 1]))
    return fig


def paper_data_dir(folder: Path | str | None = None) -> Path:
    """``folder``, or by default ``../shared/data/value_causal_graph`` beside the checkout."""
    return Path(folder) if folder else project_root().parent / "shared" / "data" / "value_causal_graph"


def reproduce_paper_graphs(folder: Path | str | None, out_dir: Path,
                           log: Callable | None = print) -> tuple[dict[str, dict], dict[str, Graph]]:
    """The paper's Gemma and Llama graphs recomputed from its published scores in ``folder`` (see
    ``paper_data_dir``), each written to ``paper_<model>_graph.json`` in ``out_dir`` and compared
    with the published one. Returns (per model: rows, reproduced_edges, published_edges, identical;
    per model: the reproduced graph); both empty, with a logged line, when the files are absent."""
    paper_dir = paper_data_dir(folder)
    counts, graphs = {}, {}
    if not (paper_dir / "value_graph_data1.json").is_file():
        if log:
            log(f"Skipped: no ValueCausalGraph release files in {paper_dir} (set PAPER_DATA_DIR to that folder).")
        return counts, graphs
    for name in PAPER_MODELS:
        reproduced, published = reproduce_paper_graph(paper_dir, name), published_graph(paper_dir, name)
        reproduced.to_json(out_dir / f"paper_{name}_graph.json")
        counts[name] = {"rows": reproduced.info["rows"], "reproduced_edges": len(reproduced.edges),
                        "published_edges": len(published.edges),
                        "identical": sorted(reproduced.edges) == sorted(published.edges)}
        graphs[name] = reproduced
    return counts, graphs


def paper_table(paper: dict[str, dict]) -> pd.DataFrame:
    """``reproduce_paper_graphs``' counts, one row per model (an empty table when it was skipped)."""
    return pd.DataFrame(paper).T


def paper_graphs_figure(graphs: dict[str, Graph]) -> go.Figure:
    """The reproduced paper graphs side by side."""
    return network_figure([(f"{name.capitalize()} (reproduced, {len(graph.edges)} edges)", graph, None)
                           for name, graph in graphs.items()],
                          title="The paper's causal value graphs, reproduced from its published scores")


def value_graph_summary(profile: str, cfg: ValueGraphConfig, train: pd.DataFrame, test: pd.DataFrame,
                        values: list[str], discovery: list[Persona], role_scores: RoleScores, found: DiscoveredGraph,
                        comparison: SchwartzComparison, methods: MethodComparison, steered: SteeredRoles,
                        effects: pd.DataFrame, paper: dict[str, dict], notebook_seconds: float) -> dict:
    """What ``summary.json`` records: the settings, sizes and timings, the graph and its edges'
    stability, its comparison with the Schwartz reference, the edges found on the centred scores,
    the correlation between scoring methods, the share of unclear generated answers, how much each
    value setting moved its own value, the mean side effects per graph and the paper reproduction."""
    scores, edges = role_scores.scores, set(found.graph.edges)
    centred = comparison.graphs.get(f"{cfg.discovery} (centred scores)")
    return {"profile": profile, "model": cfg.model, "method": cfg.method, "discovery": cfg.discovery,
            "personas": len(discovery), "train_items": len(train), "test_items": len(test),
            "answers": len(role_scores.answers), "scoring_seconds": round(role_scores.seconds, 1),
            "score_std_by_value": {v: round(float(s), 4) for v, s in scores[values].std().items()},
            "edges": [list(e) for e in found.graph.edges],
            "edge_stability": {f"{s}->{t}": w for (s, t), w in found.weights.items() if (s, t) in edges},
            "vs_schwartz": comparison.table.to_dict(orient="records"),
            "centred_edges": [list(e) for e in getattr(centred, "edges", [])],
            "method_correlation": methods.cells.corr().round(3).to_dict(),
            "unclear_generated": float(methods.generated["answer"].eq("unclear").mean()),
            "own_value_change": steered.own_change.round(4).to_dict(),
            "side_effects": side_effect_means(effects).round(4).to_dict(),
            "paper": paper,
            "notebook_seconds": round(notebook_seconds, 1)}

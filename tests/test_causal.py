"""helpers.causal: discovery on known DAGs, post-processing, reduction, bootstrap, comparison,
side effects, data errors, the CLI, and the exact reproduction of the paper's published graphs."""

import json

import numpy as np
import pandas as pd
import pytest

from helpers.causal.compare import (descendants_of, edge_metrics, neighbours_of, own_value_change, schwartz_reference,
                                    score_changes, shd, side_effects)
from helpers.causal.discovery import (DiscoveryDataError, Graph, bootstrap_stability, check_data, directed_edges,
                                      discover, reduce_edges)
from helpers.causal.figures import network_figure
from helpers.cli import main as cli_main

# A linear-Gaussian DAG with a collider (x1 -> x3 <- x2), a chain and a fork: x1 -> x3 -> x4,
# x2 -> x3, x4 -> x5, x4 -> x6, plus an isolated x7.
TRUE_EDGES = [("x1", "x3"), ("x2", "x3"), ("x3", "x4"), ("x4", "x5"), ("x4", "x6")]
NODES = [f"x{i}" for i in range(1, 8)]


def synthetic(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = {name: rng.normal(size=n) for name in ("x1", "x2", "x7")}
    x["x3"] = 0.8 * x["x1"] - 0.7 * x["x2"] + rng.normal(size=n)
    x["x4"] = 0.9 * x["x3"] + rng.normal(size=n)
    x["x5"] = -0.8 * x["x4"] + rng.normal(size=n)
    x["x6"] = 0.7 * x["x4"] + rng.normal(size=n)
    return pd.DataFrame(x)[NODES]


def skeleton(edges):
    return {frozenset(e) for e in edges}


def test_pc_recovers_the_skeleton_and_the_collider_at_n2000():
    graph = discover(synthetic(2000), method="pc", alpha=0.05, reduce=False)
    assert skeleton(graph.edges) == skeleton(TRUE_EDGES), "PC missed or added an adjacency of the known DAG"
    assert ("x1", "x3") in graph.edges and ("x3", "x1") not in graph.edges, "the v-structure x1 -> x3 <- x2 was not oriented"
    assert ("x3", "x4") in graph.edges and ("x4", "x3") not in graph.edges, "Meek rule 1 should orient x3 -> x4"


@pytest.mark.parametrize("method", ["fci", "ges"])
def test_fci_and_ges_find_the_same_adjacencies(method):
    graph = discover(synthetic(2000), method=method, reduce=False)
    assert skeleton(graph.edges) == skeleton(TRUE_EDGES)
    assert graph.info["method"] == method


def test_reduction_keeps_reachability_and_follows_the_listed_order():
    chain = [("a", "b"), ("b", "c"), ("a", "c")]
    assert reduce_edges("abc", chain) == [("a", "b"), ("b", "c")]
    first = [("a", "b"), ("b", "a"), ("b", "c"), ("a", "c")]
    assert reduce_edges("abc", first) == [("a", "b"), ("b", "a"), ("a", "c")]
    second = [("a", "c"), ("a", "b"), ("b", "a"), ("b", "c")]
    assert reduce_edges("abc", second) == [("a", "b"), ("b", "a"), ("b", "c")], "edges must be tried in listed order"


def test_endpoint_marks_become_directed_edges():
    from causallearn.graph.Edge import Edge
    from causallearn.graph.Endpoint import Endpoint
    from causallearn.graph.GeneralGraph import GeneralGraph
    from causallearn.graph.GraphNode import GraphNode

    nodes = [GraphNode(f"X{i}") for i in range(5)]
    graph = GeneralGraph(nodes)
    graph.add_edge(Edge(nodes[0], nodes[1], Endpoint.TAIL, Endpoint.ARROW))    # 0 -> 1
    graph.add_edge(Edge(nodes[2], nodes[1], Endpoint.CIRCLE, Endpoint.ARROW))  # 2 o-> 1
    graph.add_edge(Edge(nodes[2], nodes[3], Endpoint.TAIL, Endpoint.TAIL))     # 2 -- 3
    graph.add_edge(Edge(nodes[3], nodes[4], Endpoint.ARROW, Endpoint.ARROW))   # 3 <-> 4
    edges = set(directed_edges(graph, list("abcde")))
    assert edges == {("a", "b"), ("c", "b"), ("c", "d"), ("d", "c"), ("d", "e"), ("e", "d")}


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.assign(x2=1.0), "constant"),
    (lambda d: d.assign(x5=d["x1"] * 2), "duplicates"),
    (lambda d: d.assign(x6=d["x1"] + d["x2"]), "linearly dependent"),
    (lambda d: d.head(10), "rows"),
    (lambda d: d.assign(x3=d["x3"].where(d.index != 4)), "missing values"),
    (lambda d: d.assign(x4="high"), "not numeric"),
])
def test_bad_data_gives_a_clear_error(mutate, message):
    with pytest.raises(DiscoveryDataError, match=message):
        discover(mutate(synthetic(200)), method="pc")


def test_unknown_columns_method_and_alpha_are_refused():
    data = synthetic(100)
    with pytest.raises(DiscoveryDataError, match="not in the data"):
        check_data(data, ["x1", "nope"])
    with pytest.raises(ValueError, match="choose one of"):
        discover(data, method="lingam")
    with pytest.raises(ValueError, match="alpha"):
        discover(data, alpha=1.5)


def test_bootstrap_stability_is_high_for_true_edges_and_reproducible():
    data = synthetic(600, seed=1)
    table = bootstrap_stability(data, method="pc", n_resamples=12, seed=3, reduce=False)
    assert table["resamples"].iloc[0] == 12 and table["stability"].between(0, 1).all()
    either_way = {frozenset((r.source, r.target)): 0.0 for r in table.itertuples()}
    for r in table.itertuples():
        either_way[frozenset((r.source, r.target))] = max(either_way[frozenset((r.source, r.target))], r.stability)
    for edge in TRUE_EDGES:
        assert either_way.get(frozenset(edge), 0) >= 0.9, f"true edge {edge} unstable under resampling"
    assert all(s <= 0.5 for pair, s in either_way.items() if "x7" in pair), "the isolated node got a stable edge"
    again = bootstrap_stability(data, method="pc", n_resamples=12, seed=3, reduce=False)
    pd.testing.assert_frame_equal(table, again)


def test_shd_and_edge_metrics_on_a_hand_made_pair():
    reference = Graph(list("abc"), [("a", "b"), ("b", "c")])
    found = Graph(list("abc"), [("b", "a"), ("b", "c"), ("a", "c")])
    assert shd(found, reference) == 2  # a-b reversed, a-c extra
    assert shd(reference, reference) == 0
    metrics = edge_metrics(found, reference)
    assert metrics["precision"] == pytest.approx(2 / 3) and metrics["recall"] == 1.0
    directed = edge_metrics(found, reference, directed=True)
    assert directed["precision"] == pytest.approx(1 / 3) and directed["recall"] == 0.5
    undirected_ref = Graph(list("abc"), [("a", "b"), ("b", "a")])
    assert shd(Graph(list("abc"), [("a", "b")]), undirected_ref) == 1, "a one-way edge differs from a two-way one"


def test_schwartz_reference_is_a_circle_with_oppositions():
    ref = schwartz_reference()
    related = schwartz_reference(include_opposed=False)
    assert len(ref.nodes) == 10 and len(set(ref.nodes)) == 10
    assert len(skeleton(related.edges)) == 12 and len(skeleton(ref.edges)) == 24
    for node, neighbours in neighbours_of(related).items():
        assert len(neighbours) >= 2, f"{node} should touch both its neighbours on the circle"
    assert not skeleton(related.edges) & (skeleton(ref.edges) - skeleton(related.edges))
    from helpers.values.inventory import embedded_inventory
    assert set(ref.nodes) == set(embedded_inventory()["value"]), "reference and inventory name other values"


def test_side_effects_on_a_hand_made_example():
    # Graph A -> B; C unrelated. Changes of four interventions (rows) on A, B, C.
    changes = pd.DataFrame({"A": [0.5, 0.2, 0.0, -0.3], "B": [0.1, 0.3, 0.2, 0.0], "C": [0.0, 0.4, 0.0, 0.0]})
    graph = Graph(list("ABC"), [("A", "B")])
    table = side_effects(changes, descendants_of(graph)).set_index("value")
    # A changed in rows 0, 1, 3: B also changed in 0, 1 (2/3), C in 1 (1/3).
    assert table.loc["A", "interventions"] == 3
    assert table.loc["A", "expected"] == pytest.approx(2 / 3) and table.loc["A", "unexpected"] == pytest.approx(1 / 3)
    # B reaches nothing: expected is NaN; B changed in rows 0, 1, 2: A in 0, 1; C in 1 -> (2/3 + 1/3) / 2.
    assert np.isnan(table.loc["B", "expected"]) and table.loc["B", "unexpected"] == pytest.approx(0.5)
    strict = side_effects(changes, descendants_of(graph), threshold=0.25).set_index("value")
    assert strict.loc["A", "interventions"] == 2  # |0.5| and |-0.3|
    per_value = side_effects(changes, descendants_of(graph), threshold={"A": 0.4, "B": 0.0, "C": 0.0})
    assert per_value.set_index("value").loc["A", "interventions"] == 1


def test_score_changes_subtract_the_units_baseline():
    scores = pd.DataFrame({"role": ["r1", "r1", "r2", "r2"], "setting": ["none", "+A", "none", "-A"],
                           "A": [0.1, 0.5, 0.0, -0.2], "B": [0.2, 0.2, 0.3, 0.4]})
    changes = score_changes(scores, ["A", "B"])
    assert changes[["A", "B"]].to_numpy() == pytest.approx(np.array([[0.4, 0.0], [-0.2, 0.1]]))
    with pytest.raises(ValueError, match="no setting='none' row"):
        score_changes(scores[scores["role"] != "r2"].assign(role=["r1", "r3"]), ["A", "B"])


def test_own_value_change_takes_each_settings_target_column_and_averages_over_roles():
    scores = pd.DataFrame({"role": ["r1", "r1", "r1", "r2", "r2", "r2"],
                           "setting": ["none", "+A", "-B-C", "none", "+A", "-B-C"],
                           "A": [0.0, 0.4, 0.9, 0.1, 0.3, 0.9], "B-C": [0.5, 0.9, 0.1, 0.5, 0.9, 0.3]})
    own = own_value_change(score_changes(scores, ["A", "B-C"]))
    # "+A" changed A by 0.4 and 0.2 (mean 0.3); "-B-C" changed B-C by -0.4 and -0.2 (mean -0.3); the
    # other value's change (B-C under "+A": +0.4) is not an own change.
    assert own.loc["A", "+"] == pytest.approx(0.3) and own.loc["B-C", "-"] == pytest.approx(-0.3), own
    assert list(own.index) == ["A", "B-C"] and list(own.columns) == ["+", "-"], own
    assert np.isnan(own.loc["A", "-"]) and np.isnan(own.loc["B-C", "+"]), "no run, no mean"
    with pytest.raises(ValueError, match="not value columns"):
        own_value_change(pd.DataFrame({"role": ["r1"], "setting": ["+Z"], "A": [0.1]}))


def test_graph_json_round_trip_and_network_figure(tmp_path):
    graph = discover(synthetic(500), method="pc")
    path = graph.to_json(tmp_path / "g.json")
    data = json.loads(path.read_text())
    assert data["nodes"] == NODES and all(len(e) == 2 for e in data["edges"]) and data["method"] == "pc"
    back = Graph.from_json(path)
    assert back.edges == graph.edges and back.info["rows"] == 500
    weights = {e: 0.5 for e in graph.edges}
    fig = network_figure([("found", graph, weights), ("reference", Graph(NODES, TRUE_EDGES), None)], title="t")
    assert len(fig.layout.annotations) >= 2 and fig.layout.title.text == "t"
    with pytest.raises(ValueError, match="not in the graph"):
        Graph(["a"], [("a", "b")])


def test_cli_discover_with_columns_and_rows_where(tmp_path, capsys):
    data = synthetic(800).assign(group=["keep"] * 700 + ["drop"] * 100)
    data.loc[700:, "x1"] = 50.0  # rows that would distort the graph if they were not filtered out
    scores = tmp_path / "scores.csv"
    data.to_csv(scores, index=False)
    out = tmp_path / "graph.json"
    assert cli_main(["values", "discover", "--scores", str(scores), "--method", "pc", "--alpha", "0.01",
                     "--columns", "x1,x2,x3,x4", "--rows-where", "group=keep", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["nodes"] == ["x1", "x2", "x3", "x4"] and written["rows"] == 700
    assert skeleton(map(tuple, written["edges"])) == {frozenset(("x1", "x3")), frozenset(("x2", "x3")),
                                                      frozenset(("x3", "x4"))}
    assert cli_main(["values", "discover", "--scores", str(scores), "--method", "pc", "--rows-where", "group",
                     "--out", str(out)]) == 2
    assert "COLUMN=VALUES" in capsys.readouterr().err


@pytest.mark.parametrize("model, n_edges", [("gemma", 28), ("llama", 19)])
def test_reproduction_matches_the_published_graph_edge_for_edge(shared_data, model, n_edges, tmp_path):
    from helpers.causal.paper import paper_rows, published_graph, reproduce_paper_graph

    folder = shared_data / "value_causal_graph"
    graph = reproduce_paper_graph(folder, model)
    published = published_graph(folder, model)
    assert len(published.edges) == n_edges
    assert sorted(graph.edges) == sorted(published.edges), "reproduction differs from the published graph"
    assert len(paper_rows(folder, model)) == {"gemma": 1111, "llama": 814}[model]
    out = tmp_path / f"{model}.json"
    assert cli_main(["values", "reproduce-paper", "--data-dir", str(folder), "--model", model, "--out", str(out)]) == 0
    assert sorted(map(tuple, json.loads(out.read_text())["edges"])) == sorted(published.edges)


def test_reproduction_names_a_missing_folder(tmp_path):
    from helpers.causal.paper import reproduce_paper_graph

    with pytest.raises(FileNotFoundError, match="ans_gemma_train_formal.csv"):
        reproduce_paper_graph(tmp_path, "gemma")
    with pytest.raises(ValueError, match="gemma"):
        reproduce_paper_graph(tmp_path, "mistral")

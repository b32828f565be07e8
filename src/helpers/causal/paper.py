"""Reproduce the causal value graphs published by Kang et al. (Findings of ACL 2025) from their
published score tables (the ValueCausalGraph release: ``ans_{gemma,llama}_train_formal.csv``).

    graph = reproduce_paper_graph("../shared/data/value_causal_graph", "gemma")   # 28 edges
    published = published_graph("../shared/data/value_causal_graph", "gemma")
    set(graph.edges) == set(published.edges)                                       # True

The rows are the unsteered ones (empty ``steer_dim``) and those steered by the paper's ten
curated SAE features of that model; the columns are the 17 value names (not the ``:scstd``
columns); PC with Fisher-z at alpha 0.05, then the post-processing and greedy reduction of
``helpers.causal.discovery``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..values.inventory import PAPER_VALUES
from .discovery import Graph, discover

PAPER_MODELS = ("gemma", "llama")
# The ten curated SAE features per model whose steered rows enter the published graphs.
CURATED_FEATURES = {
    "gemma": (14351, 1025, 2965, 10096, 1341, 1975, 10605, 14049, 1312, 4752),
    "llama": (49202, 58305, 8546, 12477, 7754, 9332, 1897, 62769, 47207, 54606),
}
PUBLISHED_GRAPHS_FILE = "value_graph_data1.json"


def _file(data_dir: Path | str, name: str) -> Path:
    path = Path(data_dir).expanduser() / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: pass the folder of the ValueCausalGraph release files "
                                f"(ans_gemma_train_formal.csv, ..., {PUBLISHED_GRAPHS_FILE}).")
    return path


def _check_model(model: str) -> str:
    if model not in PAPER_MODELS:
        raise ValueError(f"Unknown model {model!r}; the paper's tables are for {PAPER_MODELS}.")
    return model


def paper_rows(data_dir: Path | str, model: str) -> pd.DataFrame:
    """The rows of the paper's discovery data: unsteered, or steered by a curated feature."""
    table = pd.read_csv(_file(data_dir, f"ans_{_check_model(model)}_train_formal.csv"))
    keep = table["steer_dim"].isna() | table["steer_dim"].isin(CURATED_FEATURES[model])
    return table[keep].reset_index(drop=True)


def reproduce_paper_graph(data_dir: Path | str, model: str, alpha: float = 0.05) -> Graph:
    """The paper's procedure on its published scores: PC (Fisher-z), two-way edges, reduction."""
    rows = paper_rows(data_dir, model)
    graph = discover(rows, method="pc", alpha=alpha, columns=list(PAPER_VALUES))
    graph.info.update({"model": model, "source": f"ans_{model}_train_formal.csv"})
    return graph


def published_graph(data_dir: Path | str, name: str) -> Graph:
    """A graph of the paper's ``value_graph_data1.json``: "gemma", "llama", "reference", "human1", ..."""
    data = json.loads(_file(data_dir, PUBLISHED_GRAPHS_FILE).read_text(encoding="utf-8"))
    if name not in data["edges"]:
        raise ValueError(f"No published graph {name!r}; the file has {sorted(data['edges'])}.")
    return Graph(list(data["nodes"]), [tuple(e[:2]) for e in data["edges"][name]], {"published": name})

"""Value inventories: questionnaire items with the value they measure and their agreement sign.

    items = embedded_inventory()                                   # 10 Schwartz values, offline
    items = load_valuebench("path/or/url/value_orientation.csv", values=PAPER_VALUES)
    train, test = split_items(items, train_fraction=0.7, seed=0)   # 70/30 within each value

An inventory is a DataFrame with ValueBench's columns ``questionnaire, item, value, agreement,
question``: ``item`` is a first-person statement ("I enjoy ..."), ``question`` the same stance as a
yes/no question, and ``agreement`` is +1 when agreeing with the item means holding the value and -1
when it means the opposite. The embedded inventory was written for this project (original wording,
eight items per value, two of them reverse-keyed) and ships as package data, so that every notebook
runs offline; ValueBench itself is read from a local copy or downloaded from its public URL.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..artifacts import atomic_write_text
from ..config import cache_dir

COLUMNS = ("questionnaire", "item", "value", "agreement", "question")
VALUEBENCH_URL = "https://raw.githubusercontent.com/Value4AI/ValueBench/main/data/value_orientation.csv"
EMBEDDED_QUESTIONNAIRE = "SLM-Schwartz10"
# The 17 values (20+ items each in ValueBench) of the causal value-graph paper (Kang et al., 2025).
PAPER_VALUES = ("Achievement", "Aesthetic", "Anxiety Disorder", "Breadth of Interest", "Economic", "Empathy",
                "Organization", "Political", "Positive coping", "Religious", "Resilience", "Social",
                "Social Complexity", "Social Cynicism", "Theoretical", "Uncertainty Avoidance", "Understanding")


def _data_file(name: str):
    return resources.files("helpers.values").joinpath("data", name)


@lru_cache(maxsize=1)
def _schwartz_meta() -> dict:
    return json.loads(_data_file("schwartz10_values.json").read_text(encoding="utf-8"))


def like_me_scale() -> tuple[str, ...]:
    """The six answer labels of the "like me" scale, from 1 (not like me at all) to 6."""
    return tuple(_schwartz_meta()["scale"])


def value_descriptions() -> dict[str, str]:
    """One-line definitions of the ten Schwartz values (used by value-inclination roles)."""
    return dict(_schwartz_meta()["values"])


def validate_inventory(items: pd.DataFrame, source: str = "inventory") -> pd.DataFrame:
    """``items`` with checked columns and integer agreement signs; a ValueError says what is off."""
    missing = [c for c in COLUMNS if c not in items.columns]
    if missing:
        raise ValueError(f"{source} lacks column(s) {missing}; an inventory needs {list(COLUMNS)} "
                         "(ValueBench's value_orientation.csv format).")
    items = items.loc[:, list(COLUMNS)].copy()
    bad = ~items["agreement"].isin([1, -1])
    if bad.any():
        raise ValueError(f"{source}: agreement must be 1 or -1; rows {list(items.index[bad][:5])} have "
                         f"{sorted(set(items.loc[bad, 'agreement'].astype(str)))}.")
    empty = items[["item", "value", "question"]].isna().any(axis=1)
    if empty.any():
        raise ValueError(f"{source}: rows {list(items.index[empty][:5])} have an empty item, value or question.")
    items["agreement"] = items["agreement"].astype(int)
    return items.reset_index(drop=True)


def select_items(items: pd.DataFrame, values: Iterable[str] | None = None,
                 questionnaires: Iterable[str] | None = None) -> pd.DataFrame:
    """Rows of the given values and questionnaires (None keeps all); unknown names raise."""
    for column, wanted in (("value", values), ("questionnaire", questionnaires)):
        if wanted is None:
            continue
        wanted = list(wanted)
        unknown = sorted(set(wanted) - set(items[column]))
        if unknown:
            known = sorted(items[column].unique())
            raise ValueError(f"Unknown {column}(s) {unknown}; this inventory has {len(known)}: "
                             f"{known[:20]}{' ...' if len(known) > 20 else ''}")
        items = items[items[column].isin(wanted)]
    return items.reset_index(drop=True)


def _download(url: str) -> Path:
    """A cached copy of ``url`` under ``cache_dir()/inventories`` (downloaded once, atomically)."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]  # two URLs with the same file name do not collide
    target = cache_dir() / "inventories" / f"{digest}-{Path(url.split('?')[0]).name}"
    if not target.exists():
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                text = response.read().decode("utf-8")
        except OSError as error:
            raise ConnectionError(f"Could not download {url} ({error}). Without network, pass the path of "
                                  "a local copy of value_orientation.csv, or use embedded_inventory().") from error
        atomic_write_text(target, text)
    return target


def load_valuebench(source: str | Path = VALUEBENCH_URL, values: Iterable[str] | None = None,
                    questionnaires: Iterable[str] | None = None) -> pd.DataFrame:
    """ValueBench's ``value_orientation.csv`` from a path or an http(s) URL, optionally selected."""
    text = str(source)
    if text.startswith(("http://", "https://")):
        path = _download(text)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"No inventory file at {path}; pass value_orientation.csv from ValueBench "
                                    f"or its URL ({VALUEBENCH_URL}).")
    items = validate_inventory(pd.read_csv(path), source=str(source))
    return select_items(items, values, questionnaires)


def embedded_inventory(values: Iterable[str] | None = None) -> pd.DataFrame:
    """The project's own inventory: 10 Schwartz values x 8 first-person items (offline)."""
    with _data_file("schwartz10_inventory.csv").open("r", encoding="utf-8") as handle:
        items = validate_inventory(pd.read_csv(handle), source="embedded inventory")
    return select_items(items, values)


def split_items(items: pd.DataFrame, train_fraction: float = 0.7, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test items, split within each value (at least one item on each side)."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must lie strictly between 0 and 1, got {train_fraction}.")
    rng = np.random.default_rng(seed)
    train_index, test_index = [], []
    for value, group in items.groupby("value", sort=True):
        if len(group) < 2:
            raise ValueError(f"Value {value!r} has {len(group)} item; a train/test split needs at least 2 per value.")
        order = rng.permutation(group.index.to_numpy())
        n_train = min(max(int(round(train_fraction * len(group))), 1), len(group) - 1)
        train_index.extend(order[:n_train])
        test_index.extend(order[n_train:])
    return items.loc[sorted(train_index)].reset_index(drop=True), items.loc[sorted(test_index)].reset_index(drop=True)

"""Steering experiments and their measures: an SAE-feature coefficient sweep scored with the
value questionnaire, up / same / down shares, their consistency across role groups, and the
graph-guided specificity ranking of features checked on held-out roles.

    scores = sweep_features(engine, personas, items, layer, {"f3361": d, "random": r}, [100, 200], phrase_ids)
    changes = score_changes(scores, values)                             # helpers.causal.compare
    shares = direction_shares(changes, values, threshold)               # setting x value: up / same / down
    ranking = specificity(changes, values, expected_by_graph, target)   # for one target value
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from ..values.roles import Persona
from ..values.scoring import score_personas, scores_table
from .hooks import steer_at_phrase

BASELINE = "none"


def setting_label(name: str, coefficient: float) -> str:
    """The setting of one steered run: direction name and coefficient, e.g. "f3361@200"."""
    return f"{name}@{coefficient:g}"


def combined_direction(directions: Mapping[str, torch.Tensor], coefficients: Mapping[str, float]) -> torch.Tensor:
    """Sum of coefficient x direction over the named directions (the live panel's several sliders
    as one vector to add)."""
    unknown = sorted(set(coefficients) - set(directions))
    if unknown:
        raise KeyError(f"No direction named {unknown}; known: {sorted(directions)}.")
    first = next(iter(directions.values()))
    total = torch.zeros_like(first)
    for name, coefficient in coefficients.items():
        total = total + float(coefficient) * directions[name]
    return total


def score_steered(engine, personas: Sequence[Persona], items: pd.DataFrame, layer: int, direction: torch.Tensor | None,
                  phrase_ids: list[int], batch_size: int | None = None) -> pd.DataFrame:
    """Value scores (one row per persona) with ``direction`` added at the phrase's tokens of every
    prompt (nothing added when None)."""
    if direction is None:
        answers = score_personas(engine, personas, items, values_cue=True, batch_size=batch_size)
    else:
        with steer_at_phrase(engine.model, layer, direction.to(next(engine.model.parameters()).dtype), 1.0,
                             phrase_ids):
            answers = score_personas(engine, personas, items, values_cue=True, batch_size=batch_size)
    return scores_table(answers)


def sweep_features(engine, personas: Sequence[Persona], items: pd.DataFrame, layer: int,
                   directions: Mapping[str, torch.Tensor], coefficients: Sequence[float], phrase_ids: list[int],
                   batch_size: int | None = None, progress: bool = False) -> pd.DataFrame:
    """Scores of every persona unsteered (setting "none") and under each (direction, coefficient);
    ``directions`` are named ("f3361", or "random" for a control); columns role, setting,
    direction, coefficient, then one per value."""
    tables = [score_steered(engine, personas, items, layer, None, phrase_ids, batch_size).assign(
        setting=BASELINE, direction=BASELINE, coefficient=0.0)]
    runs = [(name, c) for name in directions for c in coefficients]
    for name, coefficient in tqdm(runs, desc="sweep", disable=not progress):
        table = score_steered(engine, personas, items, layer, coefficient * directions[name], phrase_ids,
                              batch_size)
        tables.append(table.assign(setting=setting_label(name, coefficient), direction=name,
                                   coefficient=float(coefficient)))
    return pd.concat(tables, ignore_index=True)


def direction_shares(changes: pd.DataFrame, values: Sequence[str], threshold: float | Mapping[str, float],
                     by: Sequence[str] = ("setting",)) -> pd.DataFrame:
    """Per group (``by``) and value: the share of rows (roles) whose score went up (change above
    ``threshold``), stayed within it, or went down: the paper's pies, as numbers."""
    limits = pd.Series(threshold if isinstance(threshold, Mapping) else {v: threshold for v in values})[list(values)]
    long = changes.melt(id_vars=list(by), value_vars=list(values), var_name="value", value_name="change")
    limit = long["value"].map(limits)
    long["went"] = np.select([long["change"] > limit, long["change"] < -limit], ["up", "down"], "same")
    shares = (long.groupby([*by, "value"], sort=False)["went"].value_counts(normalize=True)
              .unstack(fill_value=0.0).reindex(columns=["up", "same", "down"], fill_value=0.0).reset_index())
    shares.columns.name = None
    return shares


def share_consistency(shares_a: pd.DataFrame, shares_b: pd.DataFrame, by: Sequence[str] = ("setting",)) -> float:
    """Pearson correlation, over (group, value) cells, of up-minus-down shares measured on two
    disjoint sets of roles (the paper's train/test consistency)."""
    keys = [*by, "value"]
    merged = shares_a.merge(shares_b, on=keys, suffixes=("_a", "_b"))
    if len(merged) < 3:
        raise ValueError(f"Only {len(merged)} ({', '.join(by)}, value) cells in common: too few to correlate.")
    net_a = merged["up_a"] - merged["down_a"]
    net_b = merged["up_b"] - merged["down_b"]
    return float(np.corrcoef(net_a, net_b)[0, 1])


def yes_shift_pattern(items: pd.DataFrame) -> pd.Series:
    """Per value, the mean agreement sign of its items: the (unnormalised) change of the value
    scores when every answer moves towards "yes" by the same amount, whatever the value."""
    return items.groupby("value")["agreement"].mean()


def yes_shift_share(changes: pd.DataFrame, values: Sequence[str], pattern: pd.Series, by: str = "setting") -> pd.Series:
    """Per group, the share of the squared score change (summed over its rows) that lies along
    ``pattern``: 1 when steering only shifted the overall lean to yes or no, 0 when it moved
    values in a way orthogonal to that."""
    direction = pattern.reindex(list(values)).fillna(0.0).to_numpy(float)
    if not np.any(direction):
        raise ValueError("The yes-shift pattern is zero for every value: each value's items cancel out.")
    direction = direction / np.linalg.norm(direction)
    deltas = changes[list(values)].to_numpy(float)
    along = (deltas @ direction) ** 2
    total = (deltas ** 2).sum(axis=1)
    frame = pd.DataFrame({by: changes[by].to_numpy(), "along": along, "total": total})
    sums = frame.groupby(by, sort=False)[["along", "total"]].sum()
    return (sums["along"] / sums["total"].where(sums["total"] > 0)).rename("yes_shift_share")


def specificity(changes: pd.DataFrame, values: Sequence[str], expected: Mapping[str, set], target: str,
                by: str = "setting") -> pd.Series:
    """Predicted specificity of each setting for raising ``target``: its mean change of the target
    minus its mean absolute change of the values the graph says should not move (neither the
    target nor in ``expected[target]``). Higher first."""
    if target not in values:
        raise ValueError(f"Target {target!r} is not one of the values {list(values)}.")
    off = [v for v in values if v != target and v not in expected.get(target, set())]
    mean = changes.groupby(by, sort=False)[list(values)].mean()
    spill = mean[off].abs().mean(axis=1) if off else 0.0
    return (mean[target] - spill).sort_values(ascending=False, kind="stable")


def specificity_check(train_changes: pd.DataFrame, heldout_changes: pd.DataFrame, values: Sequence[str],
                      graphs: Mapping[str, Mapping[str, set]], by: str = "setting") -> pd.DataFrame:
    """For each graph and target value: rank the settings by specificity on the train roles and
    measure the same on held-out roles. Columns: graph, target, best (the top setting on train),
    its held-out specificity, its held-out rank among the settings, and Spearman's rho between the
    two rankings."""
    rows = []
    for name, expected in graphs.items():
        for target in values:
            predicted = specificity(train_changes, values, expected, target, by)
            observed = specificity(heldout_changes, values, expected, target, by)
            best = predicted.index[0]
            rho = spearmanr(predicted, observed.reindex(predicted.index)).statistic if len(predicted) > 2 else np.nan
            rows.append({"graph": name, "target": target, "best": best,
                         "heldout_specificity": float(observed[best]),
                         "heldout_rank": int(list(observed.index).index(best)) + 1,
                         "settings": len(predicted), "spearman": float(rho)})
    return pd.DataFrame(rows)

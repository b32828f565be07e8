"""Statistics of the reflection evaluation: bootstrap intervals, paired tests, the paper's table.

    paper_table(results)                         # rows = variants, columns = tasks, "t1 / t2 (+d)"
    compare_variants(results, reference="base_with_reflection")   # Acc@t2 deltas, CIs, p-values

``results`` maps a variant name to its per-question records (``protocol.run_protocol``). All
variants are evaluated on the same questions, so comparisons are paired by question id: the
bootstrap resamples questions, and the test is McNemar's exact test (a binomial test on the
questions that one variant gets right and the other wrong).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from .protocol import summarize

# Row order of the paper's table; variants not evaluated are left out.
PAPER_ROWS = ("base_no_reflection", "base_with_reflection", "sft_qa", "sft_one_stage", "sft_two_stage",
              "dpo_d_plus_minus", "dpo_d_pref")


def bootstrap_ci(values: np.ndarray | list[float], n_resamples: int = 2000, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per question)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("bootstrap_ci needs at least one value.")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_resamples, values.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def mcnemar_exact(wins: int, losses: int) -> float:
    """Two-sided exact McNemar p-value: ``wins`` questions only the variant gets right, ``losses``
    questions only the reference gets right."""
    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5).pvalue)


def _aligned(records_a: list[dict], records_b: list[dict], metric: str) -> tuple[np.ndarray, np.ndarray]:
    a = {r["id"]: bool(r[metric]) for r in records_a}
    b = {r["id"]: bool(r[metric]) for r in records_b}
    if set(a) != set(b):
        raise ValueError(f"Variants were evaluated on different questions ({len(set(a) ^ set(b))} ids differ): "
                         "evaluate every variant on the same held-out items.")
    ids = sorted(a)
    return np.array([a[i] for i in ids]), np.array([b[i] for i in ids])


def paired_comparison(records: list[dict], reference: list[dict], metric: str = "correct_t2",
                      seed: int = 0) -> dict:
    """``metric`` accuracy of a variant against a reference on the same questions: the delta,
    its bootstrap 95% interval, wins/losses and McNemar's exact p-value."""
    mine, theirs = _aligned(records, reference, metric)
    wins, losses = int((mine & ~theirs).sum()), int((~mine & theirs).sum())
    low, high = bootstrap_ci(mine.astype(float) - theirs.astype(float), seed=seed)
    return {"n": int(mine.size), "accuracy": float(mine.mean()), "reference_accuracy": float(theirs.mean()),
            "delta": float(mine.mean() - theirs.mean()), "ci_low": low, "ci_high": high,
            "wins": wins, "losses": losses, "p_value": mcnemar_exact(wins, losses)}


def compare_variants(results: dict[str, list[dict]], reference: str = "base_with_reflection",
                     metric: str = "correct_t2") -> pd.DataFrame:
    """One row per other variant: its paired comparison with ``reference`` on ``metric``."""
    if reference not in results:
        raise KeyError(f"Reference variant {reference!r} was not evaluated; evaluated: {sorted(results)}.")
    rows = [{"variant": name, **paired_comparison(records, results[reference], metric)}
            for name, records in results.items() if name != reference]
    return pd.DataFrame(rows)


def reflection_gains(results: dict[str, list[dict]]) -> pd.DataFrame:
    """Per variant: Acc@t1, Acc@t2, their difference with a bootstrap 95% interval (paired by
    question), Acc@self and the self-judge's agreement with the oracle."""
    rows = []
    for name, records in results.items():
        t1 = np.array([r["correct_t1"] for r in records], dtype=float)
        t2 = np.array([r["correct_t2"] for r in records], dtype=float)
        low, high = bootstrap_ci(t2 - t1)
        rows.append({"variant": name, "n": len(records), "acc_t1": t1.mean(), "acc_t2": t2.mean(),
                     "delta": t2.mean() - t1.mean(), "delta_ci_low": low, "delta_ci_high": high,
                     "acc_self": np.mean([r["correct_self"] for r in records]),
                     "judge_agreement": np.mean([r["judged_correct"] == r["correct_t1"] for r in records])})
    return pd.DataFrame(rows)


def long_table(results: dict[str, list[dict]]) -> pd.DataFrame:
    """Tidy accuracies: one row per (variant, task including "all", metric) for plotting."""
    frames = [summarize(records).assign(variant=name) for name, records in results.items()]
    tidy = pd.concat(frames).melt(id_vars=["variant", "task", "n"], value_vars=["acc_t1", "acc_t2", "acc_self"],
                                  var_name="metric", value_name="accuracy")
    return tidy


def paper_table(results: dict[str, list[dict]], digits: int = 1) -> pd.DataFrame:
    """The paper's layout: rows = variants (in ``PAPER_ROWS`` order, others after), columns =
    tasks then "all", cells "Acc@t1 / Acc@t2 (+delta)" in percent."""
    order = [n for n in PAPER_ROWS if n in results] + [n for n in results if n not in PAPER_ROWS]
    rows = {}
    for name in order:
        table = summarize(results[name]).set_index("task")
        rows[name] = {task: f"{100 * r.acc_t1:.{digits}f} / {100 * r.acc_t2:.{digits}f} "
                            f"({100 * (r.acc_t2 - r.acc_t1):+.{digits}f})" for task, r in table.iterrows()}
    return pd.DataFrame(rows).T.rename_axis("variant")

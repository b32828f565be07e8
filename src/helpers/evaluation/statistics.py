"""Statistics of the reflection evaluation: bootstrap intervals, paired tests, the paper's table.

    paper_table(results)                         # rows = variants, columns = tasks, "t1 / t2 (+d)"
    compare_variants(results, reference="base_with_reflection")   # Acc@t2 deltas, CIs, p-values
    against_controls(results)                    # every variant against both controls, Holm-corrected
    power = mcnemar_power(n=96, discordant=0.2, delta=0.08)       # chance to detect 8 points

``results`` maps a variant name to its per-question records (``protocol.run_protocol``). All
variants are evaluated on the same questions, so comparisons are paired by question id: the
bootstrap resamples questions, and the test is McNemar's exact test (a binomial test on the
questions that one variant gets right and the other wrong).

The paper's Acc@t2 retries only answers the key marks wrong, so it never falls below Acc@t1, and a
plain retry without reflection gains too. A trained variant therefore counts as better only when it
beats **both** controls of the base model, the plain retry (``base_no_reflection``) and the retry
after a reflection (``base_with_reflection``), with Holm's correction over every comparison made.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest, norm
from statsmodels.stats.multitest import multipletests

from .protocol import summarize

# Row order of the paper's table; variants not evaluated are left out.
PAPER_ROWS = ("base_no_reflection", "base_with_reflection", "sft_qa", "sft_one_stage", "sft_two_stage",
              "dpo_d_plus_minus", "dpo_d_pref")
# The base model's two ways of making a second trial, which every trained variant must beat.
CONTROLS = ("base_no_reflection", "base_with_reflection")


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


def against_controls(results: dict[str, list[dict]], controls: tuple[str, ...] = CONTROLS,
                     metric: str = "correct_t2", alpha: float = 0.05) -> pd.DataFrame:
    """Every variant other than the controls, paired with each control on ``metric``: one row per
    (variant, control) with ``paired_comparison``'s columns, the Holm-adjusted p-value over all
    rows (``p_holm``) and ``better``: ahead with ``p_holm < alpha``."""
    missing = [c for c in controls if c not in results]
    if missing:
        raise KeyError(f"Control variants {missing} were not evaluated; evaluated: {sorted(results)}.")
    rows = [{"variant": name, "control": control, **paired_comparison(records, results[control], metric)}
            for name, records in results.items() if name not in controls for control in controls]
    table = pd.DataFrame(rows, columns=["variant", "control", "n", "accuracy", "reference_accuracy", "delta",
                                        "ci_low", "ci_high", "wins", "losses", "p_value"])
    table["p_holm"] = multipletests(table["p_value"], method="holm")[1] if len(table) else []
    table["better"] = (table["delta"] > 0) & (table["p_holm"] < alpha)
    return table


def beats_both_controls(table: pd.DataFrame, controls: tuple[str, ...] = CONTROLS) -> list[str]:
    """The variants of an ``against_controls`` table that are ``better`` than every control."""
    wins = table[table["better"]].groupby("variant")["control"].nunique()
    return sorted(wins[wins == len(controls)].index)


def transitions(records: list[dict]) -> dict:
    """How the second trial moves answers, per question (shares of all questions).

    ``i_to_c``: wrong at trial 1, right at trial 2 under the oracle (Acc@t2 - Acc@t1; with the key
    deciding what is retried, nothing moves the other way). Without the key the model decides from
    its own judgement: ``self_i_to_c`` wrong at trial 1 and right in the final answer, ``self_c_to_i``
    right at trial 1 and wrong in the final answer (a correct answer talked out of).
    """
    t1 = np.array([r["correct_t1"] for r in records], dtype=bool)
    t2 = np.array([r["correct_t2"] for r in records], dtype=bool)
    final = np.array([r["correct_self"] for r in records], dtype=bool)
    return {"i_to_c": float((~t1 & t2).mean()), "c_to_i": float((t1 & ~t2).mean()),
            "self_i_to_c": float((~t1 & final).mean()), "self_c_to_i": float((t1 & ~final).mean())}


def reflection_gains(results: dict[str, list[dict]]) -> pd.DataFrame:
    """Per variant: Acc@t1, Acc@t2, their difference with a bootstrap 95% interval (paired by
    question), the ``transitions``, Acc@self and the self-judge's agreement with the oracle."""
    rows = []
    for name, records in results.items():
        t1 = np.array([r["correct_t1"] for r in records], dtype=float)
        t2 = np.array([r["correct_t2"] for r in records], dtype=float)
        low, high = bootstrap_ci(t2 - t1)
        rows.append({"variant": name, "n": len(records), "acc_t1": t1.mean(), "acc_t2": t2.mean(),
                     "delta": t2.mean() - t1.mean(), "delta_ci_low": low, "delta_ci_high": high,
                     **transitions(records), "acc_self": np.mean([r["correct_self"] for r in records]),
                     "judge_agreement": np.mean([r["judged_correct"] == r["correct_t1"] for r in records])})
    return pd.DataFrame(rows)


# Power of McNemar's test by Connor's (1987) normal approximation. With discordant share psi (the
# questions two variants answer differently) and true difference delta = p10 - p01, the statistic
# (n10 - n01) / sqrt(n10 + n01) is about normal with mean delta*sqrt(n)/sqrt(psi) under the
# alternative and variance (psi - delta^2)/psi, hence the two formulas below.
def mcnemar_power(n: int, discordant: float, delta: float, alpha: float = 0.05) -> float:
    """Probability that McNemar's two-sided test at ``alpha`` detects a true paired difference
    ``delta`` on ``n`` questions when a share ``discordant`` of them is answered differently."""
    _check_power_inputs(discordant, delta)
    z = (abs(delta) * np.sqrt(n) - norm.ppf(1 - alpha / 2) * np.sqrt(discordant)) / np.sqrt(discordant - delta**2)
    return float(norm.cdf(z))


def mcnemar_sample_size(discordant: float, delta: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Questions needed for McNemar's test to detect ``delta`` with ``power`` (inverse of
    ``mcnemar_power``, rounded up)."""
    _check_power_inputs(discordant, delta)
    root = norm.ppf(1 - alpha / 2) * np.sqrt(discordant) + norm.ppf(power) * np.sqrt(discordant - delta**2)
    return int(np.ceil((root / delta) ** 2))


def _check_power_inputs(discordant: float, delta: float) -> None:
    if not 0 < abs(delta) < 1 or not delta**2 < discordant <= 1:
        raise ValueError(f"Need 0 < |delta| < 1 and delta^2 < discordant <= 1; got delta={delta}, "
                         f"discordant={discordant} (a difference needs at least that many discordant questions).")


def power_calculation(results: dict[str, list[dict]], reference: str = "base_with_reflection", delta: float = 0.08,
                      alpha: float = 0.05, power: float = 0.8, metric: str = "correct_t2") -> dict:
    """The sample size this evaluation needs: discordance measured against ``reference``, the power
    to detect ``delta`` with the questions evaluated, and the questions needed for ``power``.
    When the measured discordance is at most ``delta**2`` (too few questions answered differently
    for such a difference to exist) power and size are None and ``note`` says so."""
    n = len(results[reference])
    discordant = discordance(results, reference, metric)
    report = {"metric": metric, "reference": reference, "questions": n, "discordant": discordant, "delta": delta,
              "alpha": alpha, "target_power": power, "power": None, "questions_needed": None, "note": ""}
    if discordant <= delta**2:
        report["note"] = (f"discordance {discordant:.3f} <= delta^2 = {delta**2:.4f}: too few questions answered "
                          "differently to size the test; evaluate more questions")
        return report
    report["power"] = mcnemar_power(n, discordant, delta, alpha)
    report["questions_needed"] = mcnemar_sample_size(discordant, delta, alpha, power)
    return report


def discordance(results: dict[str, list[dict]], reference: str, metric: str = "correct_t2") -> float:
    """Mean share of questions on which each other variant and ``reference`` disagree on ``metric``:
    the ``discordant`` input of the power calculation, measured."""
    shares = [float((mine != theirs).mean()) for name, records in results.items() if name != reference
              for mine, theirs in [_aligned(records, results[reference], metric)]]
    if not shares:
        raise ValueError(f"No variant besides {reference!r} to measure discordance against.")
    return float(np.mean(shares))


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

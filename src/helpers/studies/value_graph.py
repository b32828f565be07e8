"""The scoring study of notebook 05: its settings per profile and the steps that produce its tables.

    cfg = preset(VALUE_GRAPH_PRESETS, "default")
    train, test = study_items(cfg)
    discovery, steering = study_personas(cfg)
    answers = score_personas(engine, discovery, train, method=cfg.method)

Discovery personas are the plain baseline plus ``n_roles`` generated roles, scored on the train
items; steering personas are ``steering_roles`` other generated roles (and the baseline), each
unsteered and under an inclination and a disinclination to every value, scored on the test items
(the paper's split between discovery roles and test roles).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..values.inventory import PAPER_VALUES, VALUEBENCH_URL, embedded_inventory, load_valuebench, split_items
from ..values.roles import NO_ROLE, NO_SETTING, Persona, cross, generate_roles, value_settings


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

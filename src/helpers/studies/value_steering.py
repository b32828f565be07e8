"""The settings of notebook 06 per profile, and the roles and items it steers.

    cfg = preset(STEERING_PRESETS, "default")
    items = steering_items(cfg)                     # test items of notebook 05's split
    train_roles, heldout_roles = steering_roles(cfg)

The SAE is trained on the embedded LM (or, in the paper profile, the paper's published Gemma SAE
is loaded). Steered personas are new generated roles, split into train roles (where features are
chosen and ranked) and held-out roles (where the ranking is checked), plus the no-role baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..values.inventory import PAPER_VALUES, VALUEBENCH_URL, embedded_inventory, load_valuebench, split_items
from ..values.roles import Role, generate_roles
from ..steering.settings import HELDOUT_TOKENS, SAETrainingSettings


@dataclass(frozen=True)
class SteeringConfig:
    """Everything that decides the results of notebook 06 (recorded in its manifest)."""

    model: str = "smollm2-135m-instruct"
    scoring_dtype: str = "auto"  # steering and scoring passes (models.generation_dtype); the SAE sees float32
    layer: int = 18  # of 30: middle-to-late, as the paper's layer 12 of Gemma-2B's 18
    published_sae: tuple[str, str] | None = None  # (sae-lens release, id): load it instead of training
    sae_tokens: int = 100_000  # training activations for the SAE
    heldout_tokens: int = HELDOUT_TOKENS  # held-out activations its quality is measured on
    sae: SAETrainingSettings = SAETrainingSettings()  # width, k, epochs, batch size, lr, seed
    inventory: str = "embedded"
    values: tuple[str, ...] | None = None
    items_per_value: int = 2  # test items of notebook 05's split, per value
    n_candidates: int = 25  # features ranked at " your values" (the paper's 25)
    n_features: int = 6  # steered (the paper kept 10 after inspection)
    # times the unit decoder direction; the layer-18 residual norm is about 200 here, and below
    # 100 the changes stay near the noise of bf16 scoring
    coefficients: tuple[float, ...] = (100.0, 200.0, 400.0)
    panel_max_coefficient: float = 800.0
    n_roles: int = 8  # train roles (the no-role baseline comes on top)
    n_heldout_roles: int = 8
    role_prompt_roles: int = 4  # roles scored under each value inclination / disinclination
    with_bio: bool = True
    seed: int = 0
    batch_size: int = 16


STEERING_PRESETS = {
    "smoke": SteeringConfig(sae_tokens=6_000, heldout_tokens=1_500, sae=SAETrainingSettings(width=512, k=16, epochs=2.0),
                            items_per_value=1, n_candidates=8, n_features=2, coefficients=(200.0,), n_roles=3,
                            n_heldout_roles=3, role_prompt_roles=1, with_bio=False),
    "default": SteeringConfig(),
    "paper": SteeringConfig(model="google/gemma-2b-it", layer=12,
                            published_sae=("gemma-2b-it-res-jb", "blocks.12.hook_resid_post"),
                            inventory=VALUEBENCH_URL, values=PAPER_VALUES, items_per_value=4, n_features=10,
                            coefficients=(50.0, 100.0, 150.0), panel_max_coefficient=300.0, n_roles=50,
                            n_heldout_roles=50, role_prompt_roles=10, batch_size=32),
}


def steering_inventory(cfg: SteeringConfig) -> pd.DataFrame:
    """Every item of the configured inventory (feature selection reads them all)."""
    if cfg.inventory == "embedded":
        return embedded_inventory(cfg.values)
    return load_valuebench(cfg.inventory, values=cfg.values)


def steering_items(cfg: SteeringConfig) -> pd.DataFrame:
    """Up to ``items_per_value`` test items per value, from the 70/30 split notebook 05 uses
    (seeded the same way), so that no item that found the graph scores the steering."""
    _, test = split_items(steering_inventory(cfg), 0.7, cfg.seed)
    return test.groupby("value", sort=False).head(cfg.items_per_value).reset_index(drop=True)


def steering_roles(cfg: SteeringConfig) -> tuple[list[Role], list[Role]]:
    """(train roles, held-out roles): generated with a seed of their own, distinct from notebook
    05's discovery roles."""
    roles = generate_roles(cfg.n_roles + cfg.n_heldout_roles, seed=cfg.seed + 606, with_bio=cfg.with_bio)
    return roles[:cfg.n_roles], roles[cfg.n_roles:]

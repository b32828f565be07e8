"""What each reflection notebook needs from the ones before it, made on demand.

    run = reflection_run("default")                  # notebook 01's run folder (raw + curated files)
    result = train_variant("sft_one_stage", "default")      # what notebooks 02 and 03 do per variant
    model = trained_variant("sft_one_stage", "default")     # its merged model, trained now if absent
    variants = evaluation_variants("default")        # the rows of notebook 04's table

Under ``make run`` the notebooks run in order and each finds its inputs on disk. Run alone (or in
the test suite, where every notebook gets an empty data folder) a notebook makes the inputs it
needs with the same profile, through the same functions the earlier notebooks call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..artifacts import run_dir
from ..config import configs_dir, preset
from ..evaluation.protocol import Variant
from ..generation import make_engine
from ..training import TrainResult, train
from ..reflection.curation import write_curated
from ..reflection.pipeline import REFLECTION_PRESETS, generate, read_run_records


@dataclass(frozen=True)
class TrainedVariant:
    """A trained row of the evaluation table: its recipe, recipe overrides, notebook stage and
    how it makes its second trial (see ``helpers.evaluation.protocol.MODES``)."""

    recipe: str
    stage: str
    overrides: dict = field(default_factory=dict, hash=False)
    mode: str = "reflection"


TRAINED_VARIANTS = {
    "sft_qa": TrainedVariant("sft_qa.yaml", "02_sft"),
    "sft_one_stage": TrainedVariant("sft_one_stage.yaml", "02_sft", mode="one_stage"),
    "sft_two_stage": TrainedVariant("sft_two_stage.yaml", "02_sft"),
    "dpo_d_plus_minus": TrainedVariant("dpo.yaml", "03_dpo", {"data": "d_plus_minus"}),
    "dpo_d_pref": TrainedVariant("dpo.yaml", "03_dpo", {"data": "d_pref"}),
}


@dataclass(frozen=True)
class TrainingPlan:
    """How long every variant trains in a profile (None keeps the recipe's value or sets no cap)."""

    max_rows: int | None = None  # rows per stage, a seeded sample
    max_steps: int | None = None  # optimizer steps per stage
    num_train_epochs: float | None = None
    per_device_train_batch_size: int | None = None

    def recipe_overrides(self) -> dict:
        return {"max_steps": self.max_steps, "num_train_epochs": self.num_train_epochs,
                "per_device_train_batch_size": self.per_device_train_batch_size}


TRAINING_PRESETS = {
    "smoke": TrainingPlan(max_rows=8, max_steps=2, per_device_train_batch_size=4),
    # 2 CPU cores train about 150 tokens/s and a row is about 400 tokens (a DPO pair twice that):
    # 32 rows once, in batches of 4, keep notebooks 02 and 03 near 10 minutes together.
    "default": TrainingPlan(max_rows=32, num_train_epochs=1, per_device_train_batch_size=4),
    "paper": TrainingPlan(),
}


def reflection_run(profile: str) -> Path:
    """Notebook 01's run folder for ``profile``; generated and curated now when it is missing."""
    cfg = preset(REFLECTION_PRESETS, profile)
    folder = run_dir("01_reflection", profile)
    if not (folder / "d_pref.jsonl").exists():
        generate(cfg, folder, progress=False)
        judge = make_engine(cfg.judge or cfg.model, batch_size=cfg.batch_size, dtype=cfg.dtype)
        write_curated(folder, read_run_records(folder), judge, cfg.pref_pairs_per_question)
    return folder


def variant_dir(name: str, profile: str) -> Path:
    if name not in TRAINED_VARIANTS:
        raise KeyError(f"Unknown trained variant {name!r}; known: {', '.join(TRAINED_VARIANTS)}.")
    return run_dir(TRAINED_VARIANTS[name].stage, profile) / name


def train_variant(name: str, profile: str, plan: TrainingPlan | None = None, **overrides) -> TrainResult:
    """Train variant ``name`` on notebook 01's run of ``profile`` into ``variant_dir(name, profile)``
    (reused when it was trained on the same rows with the same settings, retrained when they
    changed); ``overrides`` replace recipe keys (``learning_rate=1e-4``, ...)."""
    plan = plan or preset(TRAINING_PRESETS, profile)
    spec = TRAINED_VARIANTS[name]
    return train(configs_dir() / spec.recipe, reflection_run(profile), variant_dir(name, profile),
                 model=preset(REFLECTION_PRESETS, profile).model, max_rows=plan.max_rows, on_change="restart",
                 **{**plan.recipe_overrides(), **spec.overrides, **overrides})


def trained_variant(name: str, profile: str) -> Path:
    """The merged model of variant ``name``; trained now when notebook 02 or 03 has not made it."""
    merged = variant_dir(name, profile) / "merged"
    if not (merged / "config.json").exists():
        train_variant(name, profile)
    return merged


def evaluation_variants(profile: str, trained: tuple[str, ...] = tuple(TRAINED_VARIANTS)) -> list[Variant]:
    """The paper's rows: the base model with a plain retry and with reflection, then each trained variant."""
    base = preset(REFLECTION_PRESETS, profile).model
    return [Variant("base_no_reflection", base, "plain"), Variant("base_with_reflection", base),
            *[Variant(name, str(trained_variant(name, profile)), TRAINED_VARIANTS[name].mode) for name in trained]]

"""Self-evolution: round k+1 generates reflection data with the round-k model and trains it again.

    cfg = preset(EVOLUTION_PRESETS, "default")
    rounds = run_self_evolution(cfg, "smollm2-135m-instruct", items, eval_cfg, out_dir,
                                first_round_data="data/01_reflection/default")
    rounds.table            # round, model, training rows, Acc@t1, Acc@t2, Acc@self

Round 0 is the base model. Round k (k >= 1) takes a generation run made by the round-(k-1) model
(``first_round_data`` may supply round 1's, e.g. notebook 01's run of the base model), curates it,
trains ``cfg.recipe`` starting from the round-(k-1) model, and evaluates the result on the same
held-out items. Every round's data (raw records and curated sets), model and evaluation live under
``out_dir/round-k/``: round 1 copies ``first_round_data``'s raw records into ``round-k/data`` and
curates there, never into the source folder. No round trains on a held-out question: rounds k >= 2
generate with ``seed + k`` but skip the held-out questions, and round-1 data holding one is
refused. ``training_questions(out_dir)`` (``reflect evaluate --exclude out_dir``) therefore finds
every question any round trained on. A rerun resumes generation and reuses finished models and
evaluations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import project_root
from ..errors import UserError
from ..generation import make_engine
from ..reflection.curation import curate_d_plus, curate_d_plus_minus, curate_d_pref
from ..reflection.formats import write_records
from ..reflection.pipeline import REFLECTION_PRESETS, ReflectionConfig, generate, read_run_records
from .reflection_variants import TRAINING_PRESETS, TrainingPlan
from ..tasks import TaskItem
from ..training import load_recipe, train
from ..evaluation.protocol import EvalConfig, Variant, evaluate_variant


@dataclass(frozen=True)
class EvolutionConfig:
    """The recipe each round trains and the size of each round's generation run."""

    recipe: str = "configs/sft_two_stage.yaml"  # relative to the project root, or absolute
    rounds: int = 2
    generation: ReflectionConfig = dataclasses.field(
        default_factory=lambda: dataclasses.replace(REFLECTION_PRESETS["default"], n_questions=64, n_reflections=2))
    training: TrainingPlan = TrainingPlan()  # how long each round trains


EVOLUTION_PRESETS = {
    "smoke": EvolutionConfig(rounds=1, generation=REFLECTION_PRESETS["smoke"], training=TRAINING_PRESETS["smoke"]),
    "default": EvolutionConfig(training=TRAINING_PRESETS["default"]),
    "paper": EvolutionConfig(rounds=3, generation=REFLECTION_PRESETS["paper"]),
}


@dataclass
class EvolutionResult:
    table: pd.DataFrame  # one row per round
    records: dict[str, list[dict]]  # "round_k" -> per-question evaluation records


def _recipe_path(recipe: str) -> Path:
    path = Path(recipe)
    return path if path.is_absolute() else project_root() / path


def curate_round(run_dir: Path, judge_model: str, needs_pref: bool, cfg: ReflectionConfig) -> dict[str, int]:
    """Write a round's D+ and D+- (and Dpref, judged by the round's model, when the recipe uses it)."""
    records = read_run_records(run_dir)
    sets = {"d_plus": curate_d_plus(records), "d_plus_minus": curate_d_plus_minus(records)}
    if needs_pref:
        judge = make_engine(judge_model, batch_size=cfg.batch_size, dtype=cfg.dtype)
        sets["d_pref"] = curate_d_pref(records, judge, cfg.pref_pairs_per_question)
    for name, curated in sets.items():
        write_records(run_dir / f"{name}.jsonl", curated)
    return {name: len(curated) for name, curated in sets.items()}


def round_data(round_dir: Path, k: int, model: str, cfg: EvolutionConfig, heldout: set[str],
               first_round_data: Path | str | None = None, progress: bool = False) -> Path:
    """``round_dir/data``, holding the raw records round ``k`` trains on: for round 1, a copy of
    ``first_round_data``'s (refused when they hold a held-out question); else a generation run of
    ``model`` with seed ``seed + k`` that leaves the held-out questions out."""
    data_dir = round_dir / "data"
    if k == 1 and first_round_data:
        records = read_run_records(first_round_data)
        write_records(data_dir / "raw.jsonl", records)
    else:
        generate(dataclasses.replace(cfg.generation, model=model, seed=cfg.generation.seed + k), data_dir,
                 progress=progress, exclude=heldout)
    return data_dir


def run_self_evolution(cfg: EvolutionConfig, base_model: str, items: list[TaskItem], eval_cfg: EvalConfig,
                       out_dir: Path | str, first_round_data: Path | str | None = None,
                       first_round_model: Path | str | None = None, known_records: dict[int, list[dict]] | None = None,
                       progress: bool = False) -> EvolutionResult:
    """Run (or resume) ``cfg.rounds`` rounds. ``first_round_model`` is a round-1 model already
    trained with ``cfg.recipe`` on ``first_round_data``; ``known_records`` holds evaluations of
    rounds already made on the same items with the same protocol (e.g. round 0, the base model)."""
    out_dir = Path(out_dir)
    heldout = {item.question for item in items}
    if first_round_data:
        overlap = heldout & {record["question"] for record in read_run_records(first_round_data)}
        if overlap:
            raise UserError(f"{first_round_data} holds {len(overlap)} of the held-out questions: round 1 would train "
                            "on them. Build the items with heldout_items(cfg, exclude=training_questions(run)).")
    recipe_path = _recipe_path(cfg.recipe)
    recipe = load_recipe(recipe_path, out_dir)
    mode = "one_stage" if recipe.name == "sft_one_stage" else "reflection"
    known_records = known_records or {}
    models, rows, records = [base_model], [], {}
    for k in range(cfg.rounds + 1):
        round_dir = out_dir / f"round-{k}"
        sizes: dict[str, int] = {}
        if k > 0:
            data_dir = round_data(round_dir, k, models[-1], cfg, heldout, first_round_data, progress)
            sizes = curate_round(data_dir, models[-1], recipe.data == "d_pref", cfg.generation)
            merged = round_dir / "model" / "merged"
            if k == 1 and first_round_model:
                merged = Path(first_round_model)
            elif not (merged / "config.json").exists():
                train(recipe_path, data_dir, round_dir / "model", model=models[-1], max_rows=cfg.training.max_rows,
                      **cfg.training.recipe_overrides())
            models.append(str(merged))
        name = f"round_{k}"
        records[name] = known_records.get(k) or evaluate_variant(Variant(name, models[k], mode), items, eval_cfg,
                                                                 out_dir / "evaluations", progress=progress)
        n = len(records[name])
        rows.append({"round": k, "model": models[k], **{f"{s}_rows": v for s, v in sizes.items()},
                     "acc_t1": sum(r["correct_t1"] for r in records[name]) / n,
                     "acc_t2": sum(r["correct_t2"] for r in records[name]) / n,
                     "acc_self": sum(r["correct_self"] for r in records[name]) / n})
    return EvolutionResult(pd.DataFrame(rows), records)

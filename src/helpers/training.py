"""Training recipes for reflection learning on trl + peft: SFT on QA pairs, one-stage and two-stage
SFT on D+, DPO on D+- or Dpref. One YAML file per recipe under ``configs/``.

    result = train("configs/sft_one_stage.yaml", data_dir="data/01_reflection/default",
                   out_dir="data/02_sft/mine/sft_one_stage")
    result.merged_dir      # a folder that helpers.models.load_lm() loads like any model

A recipe YAML holds trl's own key names -- those of ``trl.ModelConfig`` (``model_name_or_path``,
``use_peft``, ``lora_r``, ``lora_alpha``, ``lora_target_modules``, ...) and of ``trl.SFTConfig`` or
``trl.DPOConfig`` (``learning_rate``, ``num_train_epochs``, ``beta``, ...) -- plus two of ours:
``recipe`` (which training set to build) and ``trainer`` (``sft`` or ``dpo``). Unknown keys are
refused with the list of valid ones. Training sets are built from the files a generation run
wrote (``raw.jsonl``, ``d_plus.jsonl``, ``d_plus_minus.jsonl``, ``d_pref.jsonl``) in trl's
conversational prompt-completion (SFT) and prompt-chosen-rejected (DPO) formats, so the loss falls
on the completion only and the tokenizer's chat template is applied by trl.

On a GPU the same recipe runs under ``accelerate launch`` (see ``configs/accelerate/``).

A run folder is locked while it trains (``artifacts.run_lock``). Its outputs are written aside and
renamed into place: ``adapter-<stage>`` and ``merged-<stage>`` once a stage finished, then the
manifest, then ``merged`` (the final model). A run started again on the same folder with the same
recipe and rows skips the stages already finished, resumes a stage from its newest trainer
checkpoint when the recipe saves them (``save_strategy: steps``; a checkpoint that does not load is
renamed ``*.corrupt`` and the one before is used), and returns at once when ``merged`` is there.
With other settings it is refused (``on_change="refuse"``, the command line) or started over
(``on_change="restart"``, what the notebooks do when their data changed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .artifacts import (SettingsChangedError, atomic_write_json, follow_umask, run_lock, same_settings_or_refuse,
                        to_jsonable, write_manifest)
from .errors import UserError
from .models import cpu_has_native_bf16, load_lm, model_fingerprint
from .reflection.formats import read_records
from .reflection.pipeline import read_run_records
from .reflection.prompts import Instruction, reason_prompt, reflect_prompt, retry_prompt, without_verdict

RECIPES = {"sft_qa": "sft", "sft_one_stage": "sft", "sft_two_stage": "sft", "dpo": "dpo"}
# Release records carry no instruction id; their reflection prompt uses this one.
DEFAULT_INSTRUCTION = Instruction("trace", "logical_coherence", "high_level")
OUR_KEYS = ("recipe", "trainer", "data")


@dataclass
class Recipe:
    """A parsed recipe: what to build, and trl's model and trainer configs."""

    name: str
    trainer: str
    data: str | None  # for dpo: "d_plus_minus" or "d_pref"
    model_args: Any  # trl.ModelConfig
    training_args: Any  # trl.SFTConfig or trl.DPOConfig
    source: dict = field(default_factory=dict)


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def load_recipe(path: Path | str, output_dir: Path | str, **overrides: Any) -> Recipe:
    """Parse a recipe YAML into trl's config classes; ``overrides`` replace YAML values."""
    import torch
    from trl import DPOConfig, ModelConfig, SFTConfig

    path = Path(path)
    raw = {**(yaml.safe_load(path.read_text()) or {}), **{k: v for k, v in overrides.items() if v is not None}}
    name = raw.get("recipe")
    if name not in RECIPES:
        raise ValueError(f"{path}: 'recipe' must be one of {sorted(RECIPES)}, got {name!r}.")
    trainer = raw.get("trainer", RECIPES[name])
    config_cls = {"sft": SFTConfig, "dpo": DPOConfig}[trainer]
    model_keys, trainer_keys = _fields(ModelConfig), _fields(config_cls)
    unknown = sorted(set(raw) - model_keys - trainer_keys - set(OUR_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}. Valid keys are those of trl.ModelConfig, "
                         f"trl.{config_cls.__name__} and {list(OUR_KEYS)}.")
    model_args = ModelConfig(**{k: v for k, v in raw.items() if k in model_keys})
    trainer_values = {k: v for k, v in raw.items() if k in trainer_keys}
    if not torch.cuda.is_available():
        # CPU: fp16 needs a GPU; memory is plentiful and compute scarce, so no activation recomputation.
        trainer_values.update(fp16=False, activation_checkpointing=False, use_cpu=True)
        if trainer_values.get("bf16") and not cpu_has_native_bf16():
            # Without bf16 in hardware, autocast emulates it: the smoke SFT run (2 steps of 4 rows)
            # took 387 s in bf16 against 39 s in fp32 on a 2-core AVX2 CPU.
            print(f"{path.name}: training in fp32, not bf16: this CPU has no bf16 arithmetic (about 10x slower).")
            trainer_values["bf16"] = False
    trainer_values.setdefault("report_to", "none")
    training_args = config_cls(output_dir=str(output_dir), **trainer_values)
    return Recipe(name, trainer, raw.get("data"), model_args, training_args, raw)


# --- training sets ----------------------------------------------------------------------------

def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text.strip()}]


def _reflection_messages(record: dict) -> list[dict]:
    """The reflection prompt the reflector saw (stored by curation), or one rebuilt with the
    default instruction for release records, which store none."""
    stored = record.get("reflect_prompt") or record.get("reflection_prompt")
    if stored:
        return [{"role": "user", "content": stored}]
    return reflect_prompt(record["question"], record["first_trial_reasoning"], DEFAULT_INSTRUCTION)


def sft_qa_rows(raw_records: list[dict]) -> list[dict]:
    """Question -> gold answer in the ReAct format (the paper's SFT-on-QA baseline)."""
    return [{"prompt": reason_prompt(r["question"]),
             "completion": _assistant(f"Thought: The answer is {r['answer']}.\nAction: Finish[{r['answer']}]")}
            for r in raw_records]


def one_stage_rows(d_plus: list[dict]) -> list[dict]:
    """Reflection prompt -> reflection followed by the corrected answer."""
    return [{"prompt": _reflection_messages(r),
             "completion": _assistant(f"{r['reflections']}\n\n{without_verdict(r['second_trial_reasoning'])}")}
            for r in d_plus]


def reflection_rows(d_plus: list[dict]) -> list[dict]:
    """Two-stage, stage 1: reflection prompt -> reflection."""
    return [{"prompt": _reflection_messages(r), "completion": _assistant(r["reflections"])} for r in d_plus]


def correction_rows(d_plus: list[dict]) -> list[dict]:
    """Two-stage, stage 2: question + failed trial + reflection -> corrected answer."""
    return [{"prompt": retry_prompt(r["question"], r["first_trial_reasoning"], r["reflections"]),
             "completion": _assistant(without_verdict(r["second_trial_reasoning"]))} for r in d_plus]


def preference_rows(pairs: list[dict]) -> list[dict]:
    """DPO: reflection prompt -> chosen / rejected reflection."""
    return [{"prompt": _reflection_messages(r), "chosen": _assistant(r["reflection_chosen"]),
             "rejected": _assistant(r["reflection_rejected"])} for r in pairs]


def training_sets(recipe: Recipe, data_dir: Path | str) -> list[tuple[str, list[dict]]]:
    """The (stage name, rows) this recipe trains on, in order, from a generation run folder."""
    data_dir = Path(data_dir)

    def curated(name: str) -> list[dict]:
        path = data_dir / f"{name}.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run `python -m helpers reflect curate --run {data_dir}`.")
        return read_records(path)

    if recipe.name == "sft_qa":
        return [("qa", sft_qa_rows(read_run_records(data_dir)))]
    if recipe.name == "sft_one_stage":
        return [("one_stage", one_stage_rows(curated("d_plus")))]
    if recipe.name == "sft_two_stage":
        d_plus = curated("d_plus")
        return [("reflection", reflection_rows(d_plus)), ("correction", correction_rows(d_plus))]
    source = recipe.data or "d_plus_minus"
    if source not in ("d_plus_minus", "d_pref"):
        raise ValueError(f"dpo 'data' must be d_plus_minus or d_pref, got {source!r}.")
    return [(source, preference_rows(curated(source)))]


# --- training ---------------------------------------------------------------------------------

@dataclass
class TrainResult:
    merged_dir: Path
    adapter_dirs: list[Path]  # one LoRA adapter per stage
    log_history: list[dict]
    seconds: float
    train_rows: dict[str, int]


def _loads(checkpoint: Path) -> bool:
    """Whether every file of a trainer checkpoint reads back (a killed or damaged save does not)."""
    import torch
    from safetensors import safe_open

    try:
        json.loads((checkpoint / "trainer_state.json").read_text())
        for path in checkpoint.iterdir():
            if path.suffix in (".pt", ".pth", ".bin"):
                torch.load(path, map_location="cpu", weights_only=False)
            elif path.suffix == ".safetensors":
                with safe_open(path, "pt") as handle:
                    for key in handle.keys():
                        handle.get_tensor(key)
    except Exception:  # json, pickle, zip and safetensors errors alike mean "does not load"
        return False
    return True


def resumable_checkpoint(stage_dir: Path) -> Path | None:
    """The newest trainer checkpoint of ``stage_dir`` that loads; newer ones that do not are
    renamed ``*.corrupt`` (and so ignored by the trainer from then on)."""
    found = [p for p in stage_dir.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    for checkpoint in sorted(found, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        if _loads(checkpoint):
            return checkpoint
        checkpoint.rename(checkpoint.with_name(checkpoint.name + ".corrupt"))
        print(f"{checkpoint} does not load; set aside as {checkpoint.name}.corrupt, resuming from the one before.",
              flush=True)
    return None


def _train_stage(recipe: Recipe, model_name: str, rows: list[dict], stage_dir: Path):
    """One trl run with a fresh LoRA adapter on ``model_name``, resumed from the stage's newest
    loadable checkpoint when there is one; returns the trainer."""
    from datasets import Dataset
    from trl import DPOTrainer, SFTTrainer, get_peft_config

    if not rows:
        raise UserError(f"No training rows for stage {stage_dir.name} of {recipe.name}: the generation run "
                        "produced no usable records (too few questions, or no corrected failure).")
    model, tokenizer = load_lm(model_name, dtype="float32" if not recipe.training_args.bf16 else None)
    if recipe.trainer == "sft":
        tokenizer.padding_side = "right"
    args = dataclasses.replace(recipe.training_args, output_dir=str(stage_dir))
    peft_config = get_peft_config(recipe.model_args)
    trainer_cls = SFTTrainer if recipe.trainer == "sft" else DPOTrainer
    trainer = trainer_cls(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                          peft_config=peft_config)
    checkpoint = resumable_checkpoint(stage_dir) if stage_dir.is_dir() else None
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return trainer


def _replace_dir(staging: Path, target: Path) -> None:
    """Move a finished folder into place (a previous one at ``target`` goes first)."""
    follow_umask(staging)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def _save_stage(trainer, out_dir: Path, stage: str) -> tuple[Path | None, Path]:
    """Save the stage's LoRA adapter (``adapter-<stage>``) and the base model with the adapter
    merged in (``merged-<stage>``, with ``stage.json``: its log history), which the next stage or
    ``load_lm`` starts from. Only the main process writes, each folder aside and then renamed; the
    others wait for it."""
    model, adapter_dir = trainer.model, None
    merged_dir = out_dir / f"merged-{stage}"
    main_process = trainer.accelerator.is_main_process
    if hasattr(model, "merge_and_unload"):
        adapter_dir = out_dir / f"adapter-{stage}"
        if main_process:
            staging = out_dir / f".adapter-{stage}.saving"
            model.save_pretrained(staging)
            trainer.processing_class.save_pretrained(staging)  # so load_lm(adapter_dir) finds a tokenizer
            _replace_dir(staging, adapter_dir)
        model = model.merge_and_unload()
    if main_process:
        staging = out_dir / f".merged-{stage}.saving"
        model.save_pretrained(staging)
        trainer.processing_class.save_pretrained(staging)
        atomic_write_json(staging / "stage.json", {"log_history": trainer.state.log_history})
        _replace_dir(staging, merged_dir)
    trainer.accelerator.wait_for_everyone()
    return adapter_dir, merged_dir


def capped(rows: list[dict], max_rows: int | None, seed: int) -> list[dict]:
    """At most ``max_rows`` rows, a seeded sample in their original order (all when None)."""
    if max_rows is None or len(rows) <= max_rows:
        return rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), max_rows))
    return [rows[i] for i in keep]


def _rows_digest(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(to_jsonable(rows), sort_keys=True).encode()).hexdigest()[:16]


def _main_process() -> bool:
    """Rank 0 (or no launcher): under ``accelerate launch`` / ``torchrun`` only it locks and writes."""
    return int(os.environ.get("RANK", "0")) == 0


def train(recipe_path: Path | str, data_dir: Path | str, out_dir: Path | str, model: str | None = None,
          max_rows: int | None = None, on_change: str = "refuse", **overrides: Any) -> TrainResult:
    """Train a recipe on a generation run's files; save adapters, the merged model and a manifest.

    ``model`` replaces the recipe's ``model_name_or_path`` (an embedded name, hub id or folder);
    ``max_rows`` caps the rows of each stage (a seeded sample); ``overrides`` replace any other
    recipe key (``max_steps=10``, ``learning_rate=1e-4``, ``data="d_pref"``, ...). The training
    rows are read and checked before any model loads; a folder trained with other settings is
    refused or started over, as ``on_change`` says (see the module docstring).
    """
    if on_change not in ("refuse", "restart"):
        raise ValueError(f"on_change must be 'refuse' or 'restart', not {on_change!r}.")
    out_dir = Path(out_dir)
    recipe = load_recipe(recipe_path, out_dir, model_name_or_path=model, **overrides)
    sets = [(stage, capped(rows, max_rows, recipe.training_args.seed)) for stage, rows in training_sets(recipe, data_dir)]
    settings = {"recipe": recipe.source, "max_rows": max_rows,
                "rows": {stage: {"n": len(rows), "sha256": _rows_digest(rows)} for stage, rows in sets}}
    lock = run_lock(out_dir) if _main_process() else contextlib.nullcontext()
    with lock:
        _reuse_or_restart(out_dir, to_jsonable(settings), on_change)
        final = out_dir / "merged"
        if (final / "config.json").is_file() and (out_dir / "manifest.json").is_file():
            return _finished_result(out_dir, sets)
        start = time.perf_counter()
        current = recipe.model_args.model_name_or_path
        adapters, history = [], []
        for stage, rows in sets:
            merged_dir = out_dir / f"merged-{stage}"
            if (merged_dir / "stage.json").is_file():  # finished by an earlier, interrupted run
                log = json.loads((merged_dir / "stage.json").read_text())["log_history"]
                adapter_dir = out_dir / f"adapter-{stage}"
                adapters += [adapter_dir] if adapter_dir.is_dir() else []
            else:
                trainer = _train_stage(recipe, current, rows, out_dir / f"checkpoints-{stage}")
                adapter_dir, merged_dir = _save_stage(trainer, out_dir, stage)
                adapters += [adapter_dir] if adapter_dir else []
                log = trainer.state.log_history
            history += [{**entry, "stage": stage} for entry in log]
            current = str(merged_dir)
        seconds = time.perf_counter() - start
        if _main_process():
            atomic_write_json(out_dir / "log_history.json", history)
            write_manifest(out_dir, recipe.source, base_model=model_fingerprint(recipe.model_args.model_name_or_path),
                           data_dir=str(data_dir), train_rows={s: len(r) for s, r in sets}, max_rows=max_rows,
                           seconds=round(seconds, 1))
            _replace_dir(Path(current), final)
    return TrainResult(final, adapters, history, seconds, {s: len(r) for s, r in sets})


SETTINGS_FILE = "training_settings.json"


def _reuse_or_restart(out_dir: Path, settings: dict, on_change: str) -> None:
    """Record ``settings`` in a new folder; in a folder trained with other settings, refuse or
    clear it (``on_change``)."""
    path = out_dir / SETTINGS_FILE
    fix = "use another --out folder, or delete this one to train again."
    try:
        if same_settings_or_refuse(path, settings, what="a model", fix=fix):
            return
        if (out_dir / "manifest.json").is_file():  # trained by an older version, which recorded no settings
            raise SettingsChangedError(f"{out_dir} holds a model trained without recorded settings; {fix}", [])
    except SettingsChangedError:
        if on_change == "refuse":
            raise
        for child in out_dir.iterdir():
            if child.name != ".lock":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    atomic_write_json(path, settings)


def _finished_result(out_dir: Path, sets: list[tuple[str, list[dict]]]) -> TrainResult:
    """The result of a run that finished earlier with the same settings (nothing is retrained)."""
    manifest = json.loads((out_dir / "manifest.json").read_text())
    adapters = [out_dir / f"adapter-{stage}" for stage, _ in sets if (out_dir / f"adapter-{stage}").is_dir()]
    history = json.loads((out_dir / "log_history.json").read_text())
    return TrainResult(out_dir / "merged", adapters, history, manifest.get("seconds", 0.0),
                       {stage: len(rows) for stage, rows in sets})

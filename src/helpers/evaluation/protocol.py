"""Held-out evaluation of reflection learning: Acc@t1, Acc@t2 (oracle verdict) and the accuracy
reached without an oracle, one record per question and model variant.

    cfg = preset(EVAL_PRESETS, "default")
    items = heldout_items(cfg, exclude=training_questions("data/01_reflection/default"))
    records = evaluate_variant(Variant("base_with_reflection", "smollm2-135m-instruct"), items, cfg)
    summarize(records)     # per task and "all": n, acc_t1, acc_t2, acc_self

The protocol, the same for every variant, greedy decoding throughout:

1. Trial 1 with the ReAct prompt of the generation pipeline, checked against the gold answer.
2. Self-judgement: the variant reads its own trial and is scored on answering "Yes" or "No" to
   "is the final answer correct?"; judged correct when log P(Yes) > log P(No).
3. For questions that failed (oracle) or that the variant judged failed (no oracle) -- computed
   once for the union -- a second trial, by the variant's ``mode``:
   * ``"reflection"``: the variant writes a reflection on its failed trial following the question's
     instruction from the pool (fixed per question, the same for every variant), then answers
     again with the reflection in context;
   * ``"plain"``: the variant answers again, told only that its trial was wrong (no reflection);
   * ``"one_stage"``: as ``"reflection"``, but the one-stage SFT model writes the corrected answer
     right after its reflection, in the same generation (what it was trained to do); trial 2 is
     what follows the reflection from its first "Thought:" on (``one_stage_trial``). There is no
     second prompt: an output with no answer after the reflection is a failed trial 2, never
     retried with the two-stage prompt (that would mix two protocols in one row), and a number
     inside the reflection is not an answer.

Acc@t1 = trial 1 correct. Acc@t2 = trial 1 correct, or trial 2 correct after the oracle said
trial 1 failed (the paper's metric). Acc@self = trial 1 when the variant judged it correct, else
trial 2 (what a user without gold answers would get).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..artifacts import cached, to_jsonable
from ..errors import UserError
from ..generation import Engine, SamplingParams, make_engine
from ..models import model_fingerprint
from ..reflection.pipeline import (DEFAULT_TASK_MIX, ReflectionConfig, choose_instructions, first_trials,
                                   prefixed_prompt, read_run_records, trial_sampling)
from ..reflection.prompts import (INCORRECT, REFLECTION_STOP, plain_retry_prompt, reflect_prompt, retry_prompt,
                                  self_judge_prompt, without_verdict)
from ..tasks import TaskItem, check
from ..tasks.loaders import read_data_source_jsonl
from ..tasks.registry import build_items, parse_task_names

MODES = ("reflection", "plain", "one_stage")


@dataclass(frozen=True)
class EvalConfig:
    """Which held-out questions, and how the variants decode (recorded with every result)."""

    tasks: tuple[str, ...] = DEFAULT_TASK_MIX
    unseen_tasks: tuple[str, ...] = ("lcm",)  # task types no training run of the suite uses
    tasks_file: str | None = None  # more questions in ReflectEvo's data_source JSONL format
    tasks_file_format: str = "auto"  # "auto": from the file's fields; or its answer format (choice, text, math, code)
    n_per_task: int = 8
    seed: int = 10_000  # generation runs use small seeds; held-out questions come from this one
    trial_max_new_tokens: int = 80
    reflection_max_new_tokens: int = 112
    dtype: str = "auto"  # models.generation_dtype: bf16 on CUDA and bf16-capable CPUs, else fp32 (3x faster here)
    batch_size: int = 64


EVAL_PRESETS = {
    "smoke": EvalConfig(tasks=("basic_arithmetic", "syllogism_mc"), n_per_task=2, trial_max_new_tokens=48,
                        reflection_max_new_tokens=48),
    "default": EvalConfig(),
    "paper": EvalConfig(n_per_task=100, trial_max_new_tokens=512, reflection_max_new_tokens=256, batch_size=256),
}


@dataclass(frozen=True)
class Variant:
    """A model under evaluation: a name for tables, the model (embedded name, hub id or folder)
    and how it makes its second trial (one of ``MODES``)."""

    name: str
    model: str
    mode: str = "reflection"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"Variant {self.name!r}: mode must be one of {MODES}, got {self.mode!r}.")


def training_questions(*run_dirs: Path | str) -> set[str]:
    """Question texts of generation runs, to keep them out of the held-out set. A folder without
    ``raw*.jsonl`` of its own counts every run folder below it (a self-evolution folder: every
    round's ``round-k/data``)."""
    questions = set()
    for run in map(Path, run_dirs):
        runs = [run] if any(run.glob("raw*.jsonl")) else sorted({p.parent for p in run.rglob("raw*.jsonl")})
        if not runs:
            raise UserError(f"{run} holds no generation run (no raw*.jsonl in it or below it): pass the folder of "
                            "`reflect generate` or of a self-evolution run.")
        questions |= {record["question"] for folder in runs for record in read_run_records(folder)}
    return questions


def heldout_items(cfg: EvalConfig, exclude: set[str] = frozenset()) -> list[TaskItem]:
    """``n_per_task`` questions of every task, unseen task and the tasks file, from ``cfg.seed``,
    none of whose text is in ``exclude``; interleaved across tasks."""
    names = [*cfg.tasks, *[t for t in cfg.unseen_tasks if t not in cfg.tasks]]
    per_task = []
    for name in parse_task_names(names) if names else []:
        # small answer spaces repeat questions across seeds: build_items draws on past the excluded ones
        per_task.append(build_items([name], cfg.n_per_task, cfg.seed, exclude))
        if len(per_task[-1]) < cfg.n_per_task:
            warnings.warn(f"Task {name}: only {len(per_task[-1])} of {cfg.n_per_task} held-out questions are not in the "
                          "training data (its question space is small at this difficulty).", stacklevel=2)
    if cfg.tasks_file:
        path = Path(cfg.tasks_file)
        from_file = read_data_source_jsonl(path, task=path.stem, domain="custom", answer_format=cfg.tasks_file_format)
        per_task.append([item for item in from_file if item.question not in exclude][: cfg.n_per_task])
    if not per_task:
        raise ValueError("No held-out questions: name tasks (--tasks) or a --tasks-file.")
    return [items[i] for i in range(max(map(len, per_task))) for items in per_task if i < len(items)]


def _generation_config(cfg: EvalConfig) -> ReflectionConfig:
    return ReflectionConfig(trial_max_new_tokens=cfg.trial_max_new_tokens,
                            reflection_max_new_tokens=cfg.reflection_max_new_tokens, seed=cfg.seed)


def self_judge_margins(engine: Engine, questions: list[str], trials: list[str]) -> list[float]:
    """log P("Yes") - log P("No") of the model judging each trial correct."""
    prompts = [self_judge_prompt(q, t) for q, t in zip(questions, trials)]
    scores = engine.logprobs([p for p in prompts for _ in range(2)], ["Yes", "No"] * len(prompts))
    return [scores[2 * i].total - scores[2 * i + 1].total for i in range(len(prompts))]


def _trial(item: TaskItem, text: str) -> dict:
    verdict = check(item, text)
    return {"text": text.strip(), "answer": verdict.extracted, "correct": verdict.correct}


def one_stage_trial(item: TaskItem, text: str) -> tuple[str, dict]:
    """The one-stage model's output split into its reflection and its trial 2: "Thought: ..." with
    the corrected answer, checked like every trial; with no "Thought:" the whole output is the
    reflection and trial 2 holds no answer."""
    head, sep, tail = text.partition("Thought:")
    return head.strip(), _trial(item, sep + tail)


def run_protocol(engine: Engine, items: list[TaskItem], variant: Variant, cfg: EvalConfig,
                 progress: bool = False) -> list[dict]:
    """The per-question records of one variant (see the module docstring for the protocol)."""
    gen_cfg = _generation_config(cfg)
    firsts = first_trials(items, engine, gen_cfg, variant.name, progress=progress)
    trials = [without_verdict(r["output"][0]["reasoning"]) for r in firsts]
    margins = self_judge_margins(engine, [item.question for item in items], trials)
    records = []
    for item, first, trial, margin in zip(items, firsts, trials, margins):
        correct = first["output"][0]["is_correct"]
        records.append({"id": item.id, "task": item.task, "domain": item.domain, "question": item.question,
                        "answer": item.answer, "variant": variant.name, "mode": variant.mode,
                        "trial1": {"text": trial, "answer": first["output"][0]["generated_answer"] or None,
                                   "correct": correct},
                        "self_margin": round(margin, 4), "judged_correct": margin > 0,
                        "instruction": None, "reflection": None, "trial2": None})
    retry = [(item, rec) for item, rec in zip(items, records)
             if not rec["trial1"]["correct"] or not rec["judged_correct"]]
    failed_text = {rec["id"]: f"{rec['trial1']['text']}\n{INCORRECT}" for _, rec in retry}
    prompts = {}
    if variant.mode == "plain":
        prompts = {rec["id"]: plain_retry_prompt(item.question, failed_text[rec["id"]]) for item, rec in retry}
    else:
        extra = cfg.trial_max_new_tokens if variant.mode == "one_stage" else 0
        params = SamplingParams(max_new_tokens=cfg.reflection_max_new_tokens + extra, seed=cfg.seed,
                                stop=REFLECTION_STOP + (("Observation:",) if extra else ()))
        instructions = [choose_instructions(item.id, 1, cfg.seed)[0] for item, _ in retry]
        outputs = engine.generate([reflect_prompt(item.question, failed_text[rec["id"]], instruction)
                                   for (item, rec), instruction in zip(retry, instructions)], params, progress=progress)
        for (item, rec), instruction, output in zip(retry, instructions, outputs):
            rec["instruction"] = instruction.id
            if variant.mode == "one_stage":
                rec["reflection"], rec["trial2"] = one_stage_trial(item, output[0].text)
            else:
                rec["reflection"] = output[0].text.strip()
                prompts[rec["id"]] = retry_prompt(item.question, failed_text[rec["id"]], rec["reflection"])
    ids = list(prompts)
    texts = engine.generate([prefixed_prompt(engine, prompts[i]) for i in ids], trial_sampling(gen_cfg),
                            progress=progress) if ids else []
    retried = {rec["id"]: (item, rec) for item, rec in retry}
    for i, out in zip(ids, texts):
        item, rec = retried[i]
        rec["trial2"] = _trial(item, "Thought:" + out[0].text)
    for rec in records:
        t1, t2 = rec["trial1"]["correct"], bool(rec["trial2"] and rec["trial2"]["correct"])
        rec["correct_t1"], rec["correct_t2"] = t1, t1 or t2
        rec["correct_self"] = t1 if rec["judged_correct"] else t2
    return records


def _weights_signature(model: str) -> list:
    """Size and modification time of a local model's weight files (a retrained folder differs)."""
    folder = Path(model)
    if not folder.is_dir():
        return []
    return sorted([p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in folder.glob("*.safetensors"))


def evaluate_variant(variant: Variant, items: list[TaskItem], cfg: EvalConfig, out_dir: Path | str | None = None,
                     engine: Engine | None = None, progress: bool = False) -> list[dict]:
    """Records of one variant on ``items``; with ``out_dir``, stored as ``<out_dir>/<name>.json``
    and read back instead of recomputed when the variant, model files, config and items match."""
    key = {"variant": dataclasses.asdict(variant), "model": model_fingerprint(variant.model),
           "weights": _weights_signature(variant.model), "config": to_jsonable(cfg),
           "item_ids": [item.id for item in items]}
    def compute() -> list[dict]:
        runner = engine or make_engine(variant.model, batch_size=cfg.batch_size, dtype=cfg.dtype)
        return run_protocol(runner, items, variant, cfg, progress=progress)

    if out_dir is None:
        return compute()
    return cached(Path(out_dir) / f"{variant.name}.json", key, compute)


def summarize(records: list[dict]) -> pd.DataFrame:
    """Per task and over all ("all"): n, acc_t1, acc_t2, acc_self, delta (acc_t2 - acc_t1) and
    the self-judge's agreement with the oracle on trial 1."""
    frame = pd.DataFrame([{"task": r["task"], "correct_t1": r["correct_t1"], "correct_t2": r["correct_t2"],
                           "correct_self": r["correct_self"], "judge_agrees": r["judged_correct"] == r["correct_t1"]}
                          for r in records])
    if frame.empty:
        raise ValueError("No records to summarize: the evaluation ran on zero questions.")

    def row(group: pd.DataFrame) -> dict:
        return {"n": len(group), "acc_t1": group["correct_t1"].mean(), "acc_t2": group["correct_t2"].mean(),
                "acc_self": group["correct_self"].mean(),
                "delta": group["correct_t2"].mean() - group["correct_t1"].mean(),
                "judge_agreement": group["judge_agrees"].mean()}

    rows = {task: row(group) for task, group in frame.groupby("task", sort=False)}
    rows["all"] = row(frame)
    return pd.DataFrame(rows).T.rename_axis("task").reset_index().astype({"n": int})


def result_json(variant: Variant, cfg: EvalConfig, records: list[dict]) -> dict:
    """What ``reflect evaluate --out`` writes: per task and in total ``n``, ``acc_t1``, ``acc_t2``
    (and ``acc_self``), and the per-question records."""
    table = summarize(records).set_index("task")
    per_task = {task: {"n": int(r["n"]), "acc_t1": float(r["acc_t1"]), "acc_t2": float(r["acc_t2"]),
                       "acc_self": float(r["acc_self"])} for task, r in table.iterrows()}
    total = per_task.pop("all")
    return {"variant": dataclasses.asdict(variant), "model": model_fingerprint(variant.model),
            "config": to_jsonable(cfg), "tasks": per_task, "total": total, "records": records}

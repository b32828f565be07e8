"""The trial-reflect-retry pipeline that makes ReflectEvo-style reflection data.

    cfg = preset(REFLECTION_PRESETS, "default")
    run = generate(cfg, out_dir)            # appends records to out_dir/raw.jsonl, resumes

For each question: trial 1 (greedy) is checked against the gold answer; when it failed, the
reflector samples ``n_reflections`` reflections, each following one instruction of the 32-item
pool, ``reflections_per_instruction`` of them per instruction (so that reflections can be paired
under one prompt for DPO); for each reflection the generator answers again (trial 2, greedy) and
is checked again. ``generate(..., exclude=questions)`` leaves those questions out (an evaluation's
held-out set) and takes the next ones of each task instead.
Questions are processed in chunks cut from the run's full question list, so a chunk holds the
same questions however often the run was interrupted; each chunk samples its reflections from its
own seed (derived from the run's seed and the chunk's first question). Every finished question is
appended to the JSONL file at once. A resumed run cuts a torn last line, skips the chunks whose
questions are all written, and redoes a partly written chunk whole, appending only its missing
records: the resumed file holds the same records as an uninterrupted run, each once.
With ``shard=(i, N)`` the run takes every N-th question starting at i and writes
``raw-shard-i-of-N.jsonl`` (and ``manifest-shard-i-of-N.json``): N processes or machines produce
disjoint files that ``read_run_records`` merges. Each output file is locked by the process writing
it (``artifacts.run_lock``); the configuration check and the manifest are done under the lock,
before any model loads.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..artifacts import (append_jsonl, numbered_jsonl, read_jsonl, read_text, repair_jsonl, run_lock,
                         same_settings_or_refuse, write_manifest)
from ..errors import UserError
from ..generation import Engine, SamplingParams, derive_seed, make_engine, render_prompt
from ..models import default_device, model_fingerprint, resolve_dtype
from ..tasks import TaskItem, check
from ..tasks.loaders import read_data_source_jsonl
from ..tasks.registry import build_items, parse_task_names
from ..tasks.sandbox import require_sandbox, sandbox_description
from .prompts import (INSTRUCTION_POOL_VERSION, REFLECTION_STOP, TRIAL_STOP, Instruction, instruction_pool,
                      reason_prompt, reflect_prompt, retry_prompt, trial_text)

DEFAULT_TASK_MIX = ("basic_arithmetic", "chain_sum", "gcd", "count_bits", "base_conversion", "letter_counting",
                    "spell_backward_mc", "word_sequence_reversal_mc", "syllogism_mc", "family_relationships_mc",
                    "color_cube_rotation_mc", "weekday_mc")


@dataclass(frozen=True)
class ReflectionConfig:
    """Everything that decides what a generation run produces (recorded in its manifest)."""

    model: str = "smollm2-135m-instruct"
    reflector: str | None = None  # None: the generator reflects on its own failures
    tasks: tuple[str, ...] = DEFAULT_TASK_MIX
    tasks_file: str | None = None  # extra questions from a JSONL file in ReflectEvo's data_source format
    tasks_file_format: str = "auto"  # "auto": from the file's fields; or its answer format (choice, text, math, code)
    n_questions: int = 300  # in total, spread evenly over the tasks (the file counts as one task)
    n_reflections: int = 3  # sampled per failed question
    # Each instruction is sampled this many times in a row: DPO pairs need two reflections written
    # under the same prompt (see curation); 1 gives every reflection its own instruction.
    reflections_per_instruction: int = 2
    reflection_temperature: float = 0.8
    reflection_top_p: float = 0.95
    trial_max_new_tokens: int = 80
    reflection_max_new_tokens: int = 112
    seed: int = 0
    dtype: str = "auto"  # models.generation_dtype: bf16 on CUDA and bf16-capable CPUs, else fp32 (3x faster here)
    batch_size: int = 64
    chunk_size: int = 64  # questions per resumable chunk
    judge: str | None = None  # LM judge that ranks reflection pairs for Dpref (None: the generator)
    pref_pairs_per_question: int = 1  # reflection pairs judged per failed question

    def __post_init__(self):
        for name in ("n_questions", "n_reflections", "reflections_per_instruction", "trial_max_new_tokens",
                     "reflection_max_new_tokens", "batch_size", "chunk_size", "pref_pairs_per_question"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"{name} must be a whole number of at least 1, got {value!r} "
                                f"(--{name.replace('_', '-')}).")
        if not self.tasks and not self.tasks_file:
            raise UserError("No questions to ask: name tasks (--tasks T1,T2; see `python -m helpers tasks list`) "
                            "or a --tasks-file.")
        resolve_dtype(self.dtype, "cpu")  # an unknown dtype name fails here, before any model loads


REFLECTION_PRESETS = {
    # Mostly multiple choice: retries there succeed often enough that 8 questions give a few D+ rows,
    # which the smoke runs of the training notebooks need.
    "smoke": ReflectionConfig(tasks=("syllogism_mc", "basic_arithmetic", "weekday_mc", "family_relationships_mc"),
                              n_questions=8, n_reflections=4, trial_max_new_tokens=48, reflection_max_new_tokens=48,
                              chunk_size=8),
    "default": ReflectionConfig(),
    "paper": ReflectionConfig(model="meta-llama/Meta-Llama-3-8B-Instruct", n_questions=10_000, n_reflections=8,
                              trial_max_new_tokens=512, reflection_max_new_tokens=256, batch_size=256,
                              chunk_size=1024),
}


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/N"`` -> (i, N) with 0 <= i < N; None stays None."""
    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N (e.g. 0/4), got {text!r}.") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text}: need 0 <= i < N.")
    return index, count


def raw_file(out_dir: Path, shard: tuple[int, int] | None) -> Path:
    return out_dir / ("raw.jsonl" if shard is None else f"raw-shard-{shard[0]}-of-{shard[1]}.jsonl")


def manifest_file(shard: tuple[int, int] | None) -> str:
    return "manifest.json" if shard is None else f"manifest-shard-{shard[0]}-of-{shard[1]}.json"


def select_items(cfg: ReflectionConfig, shard: tuple[int, int] | None = None,
                 exclude: frozenset[str] | set[str] = frozenset()) -> list[TaskItem]:
    """The run's questions, in order: ``n_questions`` spread over the tasks (and the tasks file),
    none of whose text is in ``exclude``, then this shard's share."""
    tasks = parse_task_names(list(cfg.tasks)) if cfg.tasks or not cfg.tasks_file else []
    sources = len(tasks) + (cfg.tasks_file is not None)
    per_task = -(-cfg.n_questions // sources)
    file_items = []
    if cfg.tasks_file:
        path = Path(cfg.tasks_file)
        file_items = [item for item in read_data_source_jsonl(path, task=path.stem, domain="custom",
                                                              answer_format=cfg.tasks_file_format)
                      if item.question not in exclude][:per_task]
    registry_items = build_items(tasks, per_task, cfg.seed, exclude) if tasks else []
    items = (registry_items + file_items)[: cfg.n_questions]
    if not items:
        raise UserError(f"The tasks file {cfg.tasks_file} holds no questions: give a JSONL file with one "
                        "{\"question\": ..., \"answer\": ...} object a line.")
    if shard is not None:
        items = items[shard[0]::shard[1]]
    return items


def chunk_seed(seed: int, first_id: str) -> int:
    """The sampling seed of the chunk that starts with question ``first_id``: chunks get streams of
    their own, and a chunk redone after an interruption gets the same one."""
    return derive_seed(seed, first_id)


def choose_instructions(item_id: str, count: int, seed: int, per_instruction: int = 1) -> list[Instruction]:
    """``count`` instructions for one failed question, each repeated ``per_instruction`` times in a
    row, with no other repeats while the pool lasts; the same arguments always give the same list
    (and its first instruction does not depend on ``count`` or ``per_instruction``)."""
    pool = instruction_pool()
    rng = random.Random(f"{seed}/{item_id}")
    order = rng.sample(pool, len(pool))
    return [order[(k // per_instruction) % len(pool)] for k in range(count)]


@dataclass
class Engines:
    """The generator and the reflector (the same engine when the model reflects on itself)."""

    generator: Engine
    reflector: Engine


def prefixed_prompt(engine: Engine, messages: list[dict]) -> str:
    """A chat prompt with the assistant turn opened on "Thought:", ReAct style."""
    return render_prompt(engine.tokenizer, messages) + "Thought:"


def _trial_output(item: TaskItem, reasoning: str, trial: int, reflection: str | None,
                  instruction: Instruction | None, source: str) -> dict:
    verdict = check(item, "Thought:" + reasoning)
    output = {
        "generated_answer": verdict.extracted or "",
        "reflections": [] if reflection is None else [reflection],
        "reasoning": trial_text(reasoning, verdict.correct),
        "is_correct": verdict.correct,
        "trial": trial,
        "reasoning_source": source,
        "reflection_source": "N/A" if reflection is None else source,
    }
    if instruction is not None:
        output["instruction"] = instruction.id
    if verdict.detail:
        output["check_detail"] = verdict.detail
    return output


def trial_sampling(cfg: ReflectionConfig) -> SamplingParams:
    """Decoding of both trials: greedy, stopped where the model would start a new ReAct turn."""
    return SamplingParams(max_new_tokens=cfg.trial_max_new_tokens, stop=TRIAL_STOP, seed=cfg.seed)


def first_trials(items: list[TaskItem], engine: Engine, cfg: ReflectionConfig, source: str,
                 progress: bool = False) -> list[dict]:
    """Raw records (release field names) holding each question's checked first trial."""
    outputs = engine.generate([prefixed_prompt(engine, reason_prompt(item.question)) for item in items], trial_sampling(cfg),
                              progress=progress)
    return [{"question": item.question, "answer": item.answer, "id": item.id, "task": item.task,
             "domain": item.domain, "output": [_trial_output(item, outs[0].text, 1, None, None, source)]}
            for item, outs in zip(items, outputs)]


def process_chunk(items: list[TaskItem], engines: Engines, cfg: ReflectionConfig, sources: tuple[str, str],
                  progress: bool = False) -> list[dict]:
    """Raw records for a chunk of questions: first trial, reflections on failures (sampled from
    the chunk's own seed, ``chunk_seed``), second trials."""
    records = first_trials(items, engines.generator, cfg, sources[0], progress)
    failed = [(item, rec) for item, rec in zip(items, records) if not rec["output"][0]["is_correct"]]
    requests = [(item, rec, instruction) for item, rec in failed
                for instruction in choose_instructions(item.id, cfg.n_reflections, cfg.seed,
                                                       cfg.reflections_per_instruction)]
    if not requests:
        return records
    sampling = SamplingParams(temperature=cfg.reflection_temperature, top_p=cfg.reflection_top_p,
                              max_new_tokens=cfg.reflection_max_new_tokens, stop=REFLECTION_STOP,
                              seed=chunk_seed(cfg.seed, items[0].id))
    reflections = engines.reflector.generate(
        [reflect_prompt(item.question, rec["output"][0]["reasoning"], ins) for item, rec, ins in requests],
        sampling, progress=progress)
    retries = engines.generator.generate(
        [prefixed_prompt(engines.generator, retry_prompt(item.question, rec["output"][0]["reasoning"], ref[0].text))
         for (item, rec, _), ref in zip(requests, reflections)], trial_sampling(cfg), progress=progress)
    for (item, rec, instruction), ref, retry in zip(requests, reflections, retries):
        rec["output"].append(_trial_output(item, retry[0].text, 2, ref[0].text.strip(), instruction, sources[1]))
    return records


def done_ids(path: Path) -> set[str]:
    return {str(record["id"]) for record in read_jsonl(path)}


def _check_manifests(out_dir: Path, cfg: ReflectionConfig) -> None:
    """Refuse to resume into a folder whose manifests (of any shard) record another configuration."""
    for manifest in sorted(out_dir.glob("manifest*.json")):
        same_settings_or_refuse(manifest, cfg, field="config", what="a reflection run",
                                fix="resume with the same settings or choose a new --out folder.")


def generate(cfg: ReflectionConfig, out_dir: Path | str, shard: tuple[int, int] | None = None,
             engines: Engines | None = None, progress: bool = True,
             exclude: frozenset[str] | set[str] = frozenset()) -> Path:
    """Run (or resume) the pipeline; return the raw JSONL path. Writes the manifest first.
    Questions whose text is in ``exclude`` are not asked (resume with the same set).

    Order matters for a user who gave a wrong setting or a busy folder: the lock, the questions,
    the configuration check and the manifest all come before the models load.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = raw_file(out_dir, shard)
    with run_lock(path):
        items = select_items(cfg, shard, exclude)
        if any(item.answer_format == "code" for item in items):
            require_sandbox()  # code answers run in the sandbox: refuse now, not at the first answer
        with run_lock(out_dir):  # briefly: shards of one run check and write their manifests in turn
            _check_manifests(out_dir, cfg)
            write_manifest(out_dir, cfg, filename=manifest_file(shard), generator=model_fingerprint(cfg.model),
                           reflector=model_fingerprint(cfg.reflector or cfg.model),
                           instruction_pool=INSTRUCTION_POOL_VERSION, seed=cfg.seed, task_mix=list(cfg.tasks),
                           n_items=len(items), n_excluded=len(exclude), shard=shard, sandbox=sandbox_description(),
                           dtype=str(resolve_dtype(cfg.dtype, default_device())))
        repair_jsonl(path)
        finished = done_ids(path)
        chunks = [chunk for chunk in _chunks(items, cfg.chunk_size) if any(i.id not in finished for i in chunk)]
        if chunks and engines is None:
            generator = make_engine(cfg.model, batch_size=cfg.batch_size, dtype=cfg.dtype)
            reflector = generator if cfg.reflector in (None, cfg.model) else make_engine(
                cfg.reflector, batch_size=cfg.batch_size, dtype=cfg.dtype)
            engines = Engines(generator, reflector)
        sources = (cfg.model, cfg.reflector or cfg.model)
        start = time.perf_counter()
        for chunk in chunks:
            for record in process_chunk(chunk, engines, cfg, sources, progress=progress):
                if record["id"] not in finished:
                    append_jsonl(path, record)
                    finished.add(record["id"])
            if progress:
                print(f"{len(finished)}/{len(items)} questions done, {time.perf_counter() - start:.0f} s", flush=True)
    return path


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


RECORD_FIELDS = ("id", "question", "answer", "output")
TRIAL_FIELDS = ("generated_answer", "reasoning", "is_correct", "trial")


def check_raw_record(record: dict, where: str) -> dict:
    """``record`` if it has the fields of a raw record (and its trials theirs), else a UserError
    naming ``where`` (file:line) and the missing field."""
    missing = [name for name in RECORD_FIELDS if name not in record]
    if missing:
        raise UserError(f"{where}: the record lacks {', '.join(repr(m) for m in missing)}; raw records need "
                        f"{', '.join(RECORD_FIELDS)} (see `reflect generate`).")
    if not isinstance(record["output"], list) or not record["output"]:
        raise UserError(f"{where}: 'output' must be a non-empty list of trials.")
    for trial in record["output"]:
        lacking = [name for name in TRIAL_FIELDS if not isinstance(trial, dict) or name not in trial]
        if lacking:
            raise UserError(f"{where}: a trial in 'output' lacks {', '.join(repr(m) for m in lacking)}.")
    return record


def read_run_records(out_dir: Path | str) -> list[dict]:
    """All raw records of a run folder (``raw.jsonl`` and any shard files), one per id, each
    checked for the fields later steps read (a UserError names the file and line otherwise)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise UserError(f"{out_dir} is not a folder: pass the --out folder of `python -m helpers reflect generate`.")
    files = sorted(out_dir.glob("raw*.jsonl"))
    if not files:
        raise UserError(f"No raw*.jsonl in {out_dir}: run `python -m helpers reflect generate --out {out_dir}` first.")
    seen, records = set(), []
    for path in files:
        for number, record in numbered_jsonl(path):
            check_raw_record(record, f"{path}:{number}")
            if str(record["id"]) not in seen:
                seen.add(str(record["id"]))
                records.append(record)
    if not records:
        raise UserError(f"{out_dir} holds no records yet ({', '.join(p.name for p in files)} empty): let "
                        "`reflect generate` finish at least one chunk first.")
    return records


def recorded_config(out_dir: Path | str) -> dict:
    """The configuration a generation run recorded in its manifest (any shard's: they must agree),
    as a dict; empty for a folder without a manifest (records made elsewhere)."""
    for manifest in sorted(Path(out_dir).glob("manifest*.json")):
        return json.loads(read_text(manifest)).get("config") or {}
    return {}

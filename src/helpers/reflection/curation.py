"""Curating raw reflection records into training sets, in ReflectEvo's field names.

Reflections shorter than ``MIN_REFLECTION_WORDS`` words are left out of all three sets.

* **D+**: one record per reflection whose second trial was correct (the first trial failed).
* **D+-**: pairs for the same question: chosen = a reflection that led to a correct second answer,
  rejected = one that led to a wrong one.
* **Dpref**: pairs of reflections on the same failure ranked by an LM judge. The judge reads both
  reflections and is scored on answering "A" or "B"; each pair is judged in both orders and the
  log-probabilities averaged, which cancels the judge's preference for a position.

Both kinds of pairs join only reflections written under the same instruction, so that the pair's
``reflection_prompt`` is the prompt of both (the pipeline samples each instruction
``reflections_per_instruction`` times for this). As in the release, ``reason_prompt`` holds the
full prompts as text (``prompts.prompt_text``): in D+ the trial-1 and the trial-2 prompt, in the
pairs the trial-1 prompt only (each side's trial 2 followed its own reflection).

    d_plus, d_plus_minus = curate_d_plus(records), curate_d_plus_minus(records)
    d_pref = curate_d_pref(records, judge_engine)
    write_curated(run_dir, judge_engine)       # writes d_plus.jsonl, d_plus_minus.jsonl, d_pref.jsonl
"""

from __future__ import annotations

import itertools
from pathlib import Path

from ..generation import Engine
from .formats import write_records
from .pipeline import ReflectionConfig
from .prompts import Instruction, prompt_text, reason_prompt, reflect_prompt, retry_prompt

MAX_PAIRS_PER_QUESTION = 4
# Shorter "reflections" are degenerate samples ("Question:", "Your answer was A."), not training data.
MIN_REFLECTION_WORDS = 5
JUDGE_PROMPT = (
    "Two self-reflections were written about the same failed attempt at a question. A good reflection "
    "localizes the error, explains why it happened and gives a plan, without stating the answer.\n\n"
    "Question: {question}\n\nFailed attempt:\n{failed}\n\nReflection A:\n{a}\n\nReflection B:\n{b}\n\n"
    "Which reflection is better? Answer with A or B."
)


def _instruction(output: dict) -> Instruction | None:
    parts = output.get("instruction", "").split("/")
    return Instruction(*parts) if len(parts) == 3 else None


def _trial_prompts(record: dict, output: dict) -> list[str]:
    """The full trial-1 prompt and the trial-2 prompt ``output`` answered, as text."""
    question, failed = record["question"], record["output"][0]["reasoning"]
    return [prompt_text(reason_prompt(question)), prompt_text(retry_prompt(question, failed, output["reflections"][0]))]


def _reflection_prompt(record: dict, output: dict) -> str | None:
    """The reflection prompt ``output``'s reflection was written after. Records from the release
    carry no instruction id, so theirs is unknown (training rebuilds one)."""
    instruction = _instruction(output)
    if instruction is None:
        return None
    return reflect_prompt(record["question"], record["output"][0]["reasoning"], instruction)[0]["content"]


def _failed_with_retries(records: list[dict]):
    for record in records:
        first = record["output"][0]
        retries = [o for o in record["output"][1:]
                   if o.get("reflections") and len(o["reflections"][0].split()) >= MIN_REFLECTION_WORDS]
        if not first["is_correct"] and retries:
            yield record, first, retries


def _base(record: dict, first: dict, suffix: str) -> dict:
    return {"id": f"{record['id']}#{suffix}", "question": record["question"], "answer": record["answer"],
            "first_trial_reasoning": first["reasoning"], "first_trial_answer": first["generated_answer"]}


def curate_d_plus(records: list[dict]) -> list[dict]:
    """D+: every reflection after a failed first trial whose second trial was correct."""
    curated = []
    for record, first, retries in _failed_with_retries(records):
        for k, output in enumerate(retries):
            if output["is_correct"]:
                curated.append({**_base(record, first, str(k)), "second_trial_reasoning": output["reasoning"],
                                "second_trial_answer": output["generated_answer"],
                                "reflections": output["reflections"][0],
                                "reason_prompt": _trial_prompts(record, output),
                                "reflect_prompt": _reflection_prompt(record, output)})
    return curated


def _by_instruction(retries: list[dict]) -> list[list[dict]]:
    """The retries grouped by the instruction their reflection followed, in order of appearance.

    A DPO pair is two completions of one prompt (trl's prompt/chosen/rejected rows hold a single
    prompt; the implicit-prompt format would only move the differing instructions into the
    completions, where the loss would score prompt text). So pairs are made within a group only.
    Release records carry no instruction id: theirs form one group, as the release's own pairs do.
    """
    groups: dict[str | None, list[dict]] = {}
    for output in retries:
        groups.setdefault(output.get("instruction"), []).append(output)
    return list(groups.values())


def _pair(record: dict, first: dict, chosen: dict, rejected: dict, suffix: str) -> dict:
    return {**_base(record, first, suffix),
            "second_trial_reasoning_chosen": chosen["reasoning"],
            "second_trial_answer_chosen": chosen["generated_answer"],
            "reflection_chosen": chosen["reflections"][0],
            "second_trial_reasoning_rejected": rejected["reasoning"],
            "second_trial_answer_rejected": rejected["generated_answer"],
            "reflection_rejected": rejected["reflections"][0],
            "reason_prompt": _trial_prompts(record, chosen)[0],
            "reflection_prompt": _reflection_prompt(record, chosen)}


def curate_d_plus_minus(records: list[dict], max_pairs: int = MAX_PAIRS_PER_QUESTION) -> list[dict]:
    """D+-: (correct, wrong) pairs of reflections written under the same instruction on the same
    failed question."""
    curated = []
    for record, first, retries in _failed_with_retries(records):
        candidates = itertools.chain.from_iterable(
            itertools.product([o for o in group if o["is_correct"]], [o for o in group if not o["is_correct"]])
            for group in _by_instruction(retries))
        for n, (chosen, rejected) in enumerate(itertools.islice(candidates, max_pairs)):
            curated.append(_pair(record, first, chosen, rejected, f"pm{n}"))
    return curated


def judge_pairs(engine: Engine, cases: list[tuple[dict, str, str]]) -> list[float]:
    """For each (record, reflection a, reflection b), the judge's preference for a over b:
    log P("A" | a first) - log P("B" | a first), averaged with the swapped order."""
    prompts, answers = [], []
    for record, a, b in cases:
        failed = record["output"][0]["reasoning"]
        for x, y in ((a, b), (b, a)):
            content = JUDGE_PROMPT.format(question=record["question"], failed=failed, a=x, b=y)
            prompts += [[{"role": "user", "content": content}]] * 2
            answers += ["A", "B"]
    scores = [s.total for s in engine.logprobs(prompts, answers)]
    preferences = []
    for i in range(len(cases)):
        a_first_a, a_first_b, b_first_a, b_first_b = scores[4 * i: 4 * i + 4]
        preferences.append(((a_first_a - a_first_b) + (b_first_b - b_first_a)) / 2)
    return preferences


def curate_d_pref(records: list[dict], judge: Engine, max_pairs: int = MAX_PAIRS_PER_QUESTION) -> list[dict]:
    """Dpref: pairs of distinct reflections written under the same instruction on the same failure,
    ordered by the LM judge."""
    cases, origins = [], []
    for record, first, retries in _failed_with_retries(records):
        groups = [{o["reflections"][0]: o for o in group}.values() for group in _by_instruction(retries)]
        candidates = itertools.chain.from_iterable(itertools.combinations(group, 2) for group in groups)
        for a, b in itertools.islice(candidates, max_pairs):
            cases.append((record, a["reflections"][0], b["reflections"][0]))
            origins.append((record, first, a, b))
    if not cases:
        return []
    preferences = judge_pairs(judge, cases)
    curated = []
    for n, ((record, first, a, b), preference) in enumerate(zip(origins, preferences)):
        chosen, rejected = (a, b) if preference >= 0 else (b, a)
        curated.append({**_pair(record, first, chosen, rejected, f"pref{n}"), "judge_margin": round(abs(preference), 4)})
    return curated


def write_curated(run_dir: Path | str, records: list[dict], judge: Engine,
                  pref_pairs_per_question: int = ReflectionConfig.pref_pairs_per_question) -> dict[str, int]:
    """Write ``d_plus.jsonl``, ``d_plus_minus.jsonl`` and ``d_pref.jsonl`` into ``run_dir``;
    return their sizes."""
    run_dir = Path(run_dir)
    sets = {"d_plus": curate_d_plus(records), "d_plus_minus": curate_d_plus_minus(records),
            "d_pref": curate_d_pref(records, judge, pref_pairs_per_question)}
    for name, curated in sets.items():
        write_records(run_dir / f"{name}.jsonl", curated)
    return {name: len(curated) for name, curated in sets.items()}

"""Curating raw reflection records into training sets, in ReflectEvo's field names.

Reflections shorter than ``MIN_REFLECTION_WORDS`` words are left out of all three sets.

* **D+**: one record per reflection whose second trial was correct (the first trial failed).
* **D+-**: pairs for the same question: chosen = a reflection that led to a correct second answer,
  rejected = one that led to a wrong one.
* **Dpref**: pairs of reflections on the same failure ranked by an LM judge. The judge reads both
  reflections and is scored on answering "A" or "B"; each pair is judged in both orders and the
  log-probabilities averaged, which cancels the judge's preference for a position.

    d_plus, d_plus_minus = curate_d_plus(records), curate_d_plus_minus(records)
    d_pref = curate_d_pref(records, judge_engine)
    write_curated(run_dir, judge_engine)       # writes d_plus.jsonl, d_plus_minus.jsonl, d_pref.jsonl
"""

from __future__ import annotations

import itertools
from pathlib import Path

from ..generation import Engine
from .formats import write_records
from .prompts import Instruction, reason_prompt, reflect_prompt, retry_prompt

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


def _prompts(record: dict, output: dict) -> tuple[list[str], str | None]:
    """The first and second trial prompts and the reflection prompt, as text (release layout).
    Records from the release carry no instruction id, so their reflection prompt is unknown."""
    first = record["output"][0]
    question = record["question"]
    reflection = output["reflections"][0] if output["reflections"] else ""
    reason = [reason_prompt(question)[0]["content"],
              retry_prompt(question, first["reasoning"], reflection)[0]["content"]]
    instruction = _instruction(output)
    reflect = reflect_prompt(question, first["reasoning"], instruction)[0]["content"] if instruction else None
    return reason, reflect


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
                reason, reflect = _prompts(record, output)
                curated.append({**_base(record, first, str(k)), "second_trial_reasoning": output["reasoning"],
                                "second_trial_answer": output["generated_answer"],
                                "reflections": output["reflections"][0], "reason_prompt": reason,
                                "reflect_prompt": reflect})
    return curated


def _pair(record: dict, first: dict, chosen: dict, rejected: dict, suffix: str) -> dict:
    reason, reflect = _prompts(record, chosen)
    return {**_base(record, first, suffix),
            "second_trial_reasoning_chosen": chosen["reasoning"],
            "second_trial_answer_chosen": chosen["generated_answer"],
            "reflection_chosen": chosen["reflections"][0],
            "second_trial_reasoning_rejected": rejected["reasoning"],
            "second_trial_answer_rejected": rejected["generated_answer"],
            "reflection_rejected": rejected["reflections"][0],
            "reason_prompt": reason, "reflection_prompt": reflect}


def curate_d_plus_minus(records: list[dict], max_pairs: int = MAX_PAIRS_PER_QUESTION) -> list[dict]:
    """D+-: (correct, wrong) reflection pairs on the same failed question."""
    curated = []
    for record, first, retries in _failed_with_retries(records):
        good = [o for o in retries if o["is_correct"]]
        bad = [o for o in retries if not o["is_correct"]]
        for n, (chosen, rejected) in enumerate(itertools.islice(itertools.product(good, bad), max_pairs)):
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
    """Dpref: pairs of reflections on the same failure, ordered by the LM judge."""
    cases, origins = [], []
    for record, first, retries in _failed_with_retries(records):
        distinct = {o["reflections"][0]: o for o in retries if o["reflections"][0].strip()}
        for a, b in itertools.islice(itertools.combinations(distinct.values(), 2), max_pairs):
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
                  pref_pairs_per_question: int = MAX_PAIRS_PER_QUESTION) -> dict[str, int]:
    """Write ``d_plus.jsonl``, ``d_plus_minus.jsonl`` and ``d_pref.jsonl`` into ``run_dir``;
    return their sizes."""
    run_dir = Path(run_dir)
    sets = {"d_plus": curate_d_plus(records), "d_plus_minus": curate_d_plus_minus(records),
            "d_pref": curate_d_pref(records, judge, pref_pairs_per_question)}
    for name, curated in sets.items():
        write_records(run_dir / f"{name}.jsonl", curated)
    return {name: len(curated) for name, curated in sets.items()}

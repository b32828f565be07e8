"""Reading and writing ReflectEvo's released file formats, and ``datasets`` views of them.

The release (ReflectEvo-460k) has four kinds of files, all with the same field names as ours:

* raw reflection records ``{question, answer, id, output: [{generated_answer, reflections,
  reasoning, is_correct, trial, reasoning_source, reflection_source}, ...]}`` -- the release writes
  them as pretty-printed JSON objects one after another, our pipeline as one object per line;
  ``read_records`` reads both;
* D+ ``{id, question, answer, first_trial_reasoning, first_trial_answer, second_trial_reasoning,
  second_trial_answer, reflections, reason_prompt, reflect_prompt}``;
* D+- and Dpref ``{..., second_trial_{reasoning,answer}_{chosen,rejected}, reflection_chosen,
  reflection_rejected, reason_prompt, reflection_prompt}``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..artifacts import atomic_write_jsonl

D_PLUS_FIELDS = ("id", "question", "answer", "first_trial_reasoning", "first_trial_answer",
                 "second_trial_reasoning", "second_trial_answer", "reflections", "reason_prompt", "reflect_prompt")
PAIR_FIELDS = ("id", "question", "answer", "first_trial_reasoning", "first_trial_answer",
               "second_trial_reasoning_chosen", "second_trial_answer_chosen", "reflection_chosen",
               "second_trial_reasoning_rejected", "second_trial_answer_rejected", "reflection_rejected",
               "reason_prompt", "reflection_prompt")
RAW_FIELDS = ("question", "answer", "id", "output")
FIELDS_BY_KIND = {"raw": RAW_FIELDS, "d_plus": D_PLUS_FIELDS, "d_plus_minus": PAIR_FIELDS, "d_pref": PAIR_FIELDS}


def read_records(path: Path | str, kind: str | None = None) -> list[dict]:
    """Every JSON object in ``path``, whether one per line or pretty-printed back to back.

    With ``kind`` ("raw", "d_plus", "d_plus_minus", "d_pref"), each record must carry that kind's
    fields; a record that does not raises a ValueError naming its position and the missing fields.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    records, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            break
        try:
            record, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            line = text.count("\n", 0, position) + 1
            raise ValueError(f"{path}:{line}: not a JSON object ({error.msg}).") from error
        records.append(record)
    if kind is not None:
        required = FIELDS_BY_KIND[kind]
        for number, record in enumerate(records, start=1):
            missing = [f for f in required if f not in record]
            if missing:
                raise ValueError(f"{path}: record {number} lacks {missing} for a {kind} file; "
                                 f"is this the right kind of file?")
    return records


def write_records(path: Path | str, records: list[dict]) -> Path:
    """One JSON object per line, written atomically."""
    return atomic_write_jsonl(path, records)


def as_dataset(records: list[dict]):
    """A Hugging Face ``datasets.Dataset`` of records (nested fields kept as JSON strings when
    their types vary between records, which Arrow cannot store)."""
    import pyarrow
    from datasets import Dataset

    if not records:
        return Dataset.from_list([])
    try:
        return Dataset.from_list(records)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError):  # mixed nested types: keep them as JSON text
        flat = [{k: v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v, ensure_ascii=False)
                 for k, v in record.items()} for record in records]
        return Dataset.from_list(flat)

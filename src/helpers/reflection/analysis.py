"""Tables about a reflection run: accuracy and fixes per task and per instruction, reflection lengths,
and the failure cases the notebooks page through.

    records = read_run_records(run_dir)
    by_task(records)          # questions, trial-1 accuracy, share of failures fixed, ...
    by_instruction(records)   # for each of the 32 instructions: reflections and their success rate
    reflection_lengths(records), failure_cases(records)
"""

from __future__ import annotations

import pandas as pd


def _trials(record: dict) -> tuple[dict, list[dict]]:
    return record["output"][0], [o for o in record["output"][1:] if o.get("reflections")]


def by_task(records: list[dict]) -> pd.DataFrame:
    """Per task (and a final "all" row): questions, trial-1 accuracy, failures, the share of
    failures fixed by at least one reflection, and the share of reflections that led to a fix."""
    rows = []
    for record in records:
        first, retries = _trials(record)
        rows.append({"task": record.get("task", "?"), "domain": record.get("domain", "?"),
                     "correct_t1": first["is_correct"], "failed": not first["is_correct"],
                     "fixed": (not first["is_correct"]) and any(o["is_correct"] for o in retries),
                     "reflections": len(retries), "good_reflections": sum(o["is_correct"] for o in retries)})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame

    def summarize(group: pd.DataFrame) -> pd.Series:
        failures = int(group["failed"].sum())
        return pd.Series({"domain": group["domain"].iloc[0], "questions": len(group),
                          "trial1_accuracy": group["correct_t1"].mean(), "failures": failures,
                          "failures_fixed": (group["fixed"].sum() / failures) if failures else float("nan"),
                          "reflections": int(group["reflections"].sum()),
                          "reflection_success": (group["good_reflections"].sum() / group["reflections"].sum())
                          if group["reflections"].sum() else float("nan")})

    table = pd.DataFrame({task: summarize(group) for task, group in frame.groupby("task")}).T
    overall = summarize(frame.assign(domain="all"))
    table.loc["all"] = overall
    return table.reset_index(names="task")


def by_instruction(records: list[dict]) -> pd.DataFrame:
    """Per instruction of the pool: reflections written under it and the share that led to a
    correct second trial, sorted from most to least helpful."""
    rows = [{"instruction": o.get("instruction", "unknown"), "success": o["is_correct"]}
            for record in records for o in _trials(record)[1]]
    frame = pd.DataFrame(rows, columns=["instruction", "success"])
    table = frame.groupby("instruction")["success"].agg(reflections="size", success_rate="mean").reset_index()
    parts = table["instruction"].str.split("/", expand=True).reindex(columns=range(3))
    table["verification"], table["focus"], table["plan"] = parts[0], parts[1], parts[2]
    return table.sort_values("success_rate", ascending=False, ignore_index=True)


def reflection_lengths(records: list[dict]) -> pd.DataFrame:
    """One row per reflection: task, its length in words, and whether the retry was correct."""
    return pd.DataFrame([{"task": record.get("task", "?"), "words": len(o["reflections"][0].split()),
                          "led_to_correct": o["is_correct"]}
                         for record in records for o in _trials(record)[1]],
                        columns=["task", "words", "led_to_correct"])


def failure_cases(records: list[dict]) -> list[dict]:
    """One case per reflection on a failed first trial: what the browser widget shows."""
    cases = []
    for record in records:
        first, retries = _trials(record)
        for retry in retries:
            cases.append({"id": record["id"], "task": record.get("task", "?"), "question": record["question"],
                          "gold": record["answer"], "first_trial": first["reasoning"],
                          "first_answer": first["generated_answer"], "reflection": retry["reflections"][0],
                          "instruction": retry.get("instruction", ""), "second_trial": retry["reasoning"],
                          "second_answer": retry["generated_answer"], "fixed": retry["is_correct"]})
    return cases

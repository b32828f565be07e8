"""Calibrate task difficulty: the embedded model's trial-1 accuracy on every registered task.

    python bench/calibrate_tasks.py [--n 40] [--seed 1000] [--tasks a,b,...]

Runs the reflection pipeline's first trial (same prompt, same greedy decoding, same checker) on
``--n`` questions per task, with a seed that no notebook uses, and prints accuracy with a 95%
Wilson interval and the share of answers without a ``Finish[...]``. The difficulty settings in
``helpers.tasks.reasoning_gym_tasks`` were chosen so that accuracy lies between 10% and 80%.
Writes ``bench/results/task_calibration.json`` (keeping rows of tasks not measured this time).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from helpers.artifacts import atomic_write_json, package_versions
from helpers.generation import make_engine
from helpers.reflection.pipeline import ReflectionConfig, first_trials
from helpers.tasks.registry import TASKS, build_items

RESULTS = Path(__file__).resolve().parent / "results" / "task_calibration.json"


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args()
    cfg = ReflectionConfig(seed=args.seed)
    engine = make_engine(cfg.model, batch_size=cfg.batch_size, dtype=cfg.dtype)
    rows = []
    print(f"{'task':26s} {'domain':12s} {'acc':>5s} {'95% CI':>13s} {'no Finish':>9s} {'s':>5s}")
    for name in args.tasks.split(","):
        start = time.perf_counter()
        records = first_trials(build_items([name], args.n, args.seed), engine, cfg, cfg.model)
        correct = sum(r["output"][0]["is_correct"] for r in records)
        missing = sum(r["output"][0].get("check_detail") == "no answer found" for r in records)
        low, high = wilson(correct, len(records))
        row = {"task": name, "domain": TASKS[name].domain, "n": len(records), "accuracy": correct / len(records),
               "ci95": [round(low, 3), round(high, 3)], "no_answer_share": missing / len(records),
               "seconds": round(time.perf_counter() - start, 1)}
        rows.append(row)
        print(f"{name:26s} {row['domain']:12s} {row['accuracy']:5.2f} [{low:.2f}, {high:.2f}] "
              f"{row['no_answer_share']:9.2f} {row['seconds']:5.0f}", flush=True)
    inside = [r["task"] for r in rows if 0.10 <= r["accuracy"] <= 0.80]
    print(f"\n{len(inside)}/{len(rows)} tasks with trial-1 accuracy in [0.10, 0.80]")
    # Rows of tasks not measured this time stay, when they were measured with the same settings.
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if (previous.get("n_per_task"), previous.get("seed"), previous.get("model")) == (args.n, args.seed, cfg.model):
        measured = {r["task"] for r in rows}
        rows = [r for r in previous["rows"] if r["task"] not in measured] + rows
    atomic_write_json(RESULTS, {"n_per_task": args.n, "seed": args.seed, "model": cfg.model, "rows": rows,
                                "packages": package_versions(["torch", "transformers", "reasoning-gym"])})


if __name__ == "__main__":
    main()

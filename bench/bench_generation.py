"""Benchmark: the batched engine against one-prompt-at-a-time ``model.generate``.

    python bench/bench_generation.py [--n-prompts 64] [--max-new-tokens 64] [--batch-sizes 16,32,64]

Same 64 chat prompts, embedded LM, greedy, 64 new tokens at most. Each mode runs in its own
subprocess so that its peak resident memory is its own. Prints a table and the speed-up of each
engine batch size over the naive loop, and writes ``bench/results/generation.json``. The target
(issue 2) is a speed-up of at least 6x on 2 CPU cores; it is reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "generation.json"


def worker(mode: str, n_prompts: int, max_new_tokens: int, batch_size: int) -> dict:
    from helpers.generation import HFEngine
    from helpers.throughput import batched, chat_prompts, one_at_a_time

    engine = HFEngine.from_name("smollm2-135m-instruct")
    prompts = chat_prompts(n_prompts)
    if mode == "naive":
        result = one_at_a_time(engine, prompts, max_new_tokens)
    else:
        result = batched(engine, prompts, max_new_tokens, batch_size)
    return {"mode": result.mode, "batch_size": result.batch_size, "new_tokens": result.new_tokens,
            "seconds": round(result.seconds, 2), "tokens_per_s": round(result.tokens_per_s, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="16,32,64")
    parser.add_argument("--worker", choices=["naive", "engine"], help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n_prompts, args.max_new_tokens, args.batch_size)))
        return

    runs = [("naive", 1)] + [("engine", int(b)) for b in args.batch_sizes.split(",")]
    rows = []
    for mode, batch_size in runs:
        command = [sys.executable, __file__, "--worker", mode, "--batch-size", str(batch_size),
                   "--n-prompts", str(args.n_prompts), "--max-new-tokens", str(args.max_new_tokens)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        print(f"{mode:7s} batch {batch_size:3d}: {rows[-1]['tokens_per_s']:7.1f} tokens/s, "
              f"peak RSS {rows[-1]['peak_rss_mb']} MB", flush=True)
    naive = rows[0]["tokens_per_s"]
    for row in rows:
        row["speedup_vs_naive"] = round(row["tokens_per_s"] / naive, 2)
    print(f"\n{'mode':8s} {'batch':>5s} {'tokens':>7s} {'seconds':>8s} {'tokens/s':>9s} {'speed-up':>9s} {'peak RSS MB':>12s}")
    for row in rows:
        print(f"{row['mode'][:8]:8s} {row['batch_size']:5d} {row['new_tokens']:7d} {row['seconds']:8.1f} "
              f"{row['tokens_per_s']:9.1f} {row['speedup_vs_naive']:8.2f}x {row['peak_rss_mb']:12d}")
    best = max(rows[1:], key=lambda r: r["speedup_vs_naive"])
    print(f"\nbest engine speed-up over one-at-a-time: {best['speedup_vs_naive']:.2f}x at batch {best['batch_size']} "
          f"(target >= 6x)")
    from helpers.artifacts import atomic_write_json
    atomic_write_json(RESULTS, {"n_prompts": args.n_prompts, "max_new_tokens": args.max_new_tokens,
                                "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
                                "rows": rows})


if __name__ == "__main__":
    main()

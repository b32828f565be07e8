"""Benchmark: every C-STS method on the real re-annotated C-STS file, split 80/20 with a fixed seed.

    python bench/bench_csts.py [--data ../shared/data/csts_reannotated/csts_train_reannotated.csv]
        [--train-rows N] [--test-rows N] [--epochs 1] [--lr 3e-5] [--methods router,tri-encoder-hadamard]
        [--seeds 0,1,2] [--tag NAME]

Splits the file by sentence pair (``split_rows``, test fraction 0.2, seed 0), trains each method on
the first ``--train-rows`` rows of the 80 % part (all by default) with the embedded encoder, scores
the 20 % part, once per seed, and writes ``bench/results/csts_real[_TAG].json``: per method and seed
Spearman and Pearson x100, parameters added, training seconds per epoch, conditioned embeddings per
second with every row encoded (and, for cacheable methods, with each distinct text of a batch
encoded once), cacheability; per method the mean and 95 % t interval over the seeds; plus the run's
settings and machine. Only numbers are written: C-STS text never leaves the data file.
Threads as everywhere in the suite (``helpers.threads``); set SLM_NOTEBOOKS_THREADS to choose.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import helpers  # noqa: F401  first: puts the OpenMP settings in the environment before torch loads
import torch

from helpers.artifacts import atomic_write_json, package_versions
from helpers.config import preset, project_root
from helpers.csts.data import read_csts_csv, split_rows
from helpers.csts.training import CSTS_PRESETS, run_methods, summarize_seeds
from helpers.threads import apply_threads

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = project_root().parent / "shared" / "data" / "csts_reannotated" / "csts_train_reannotated.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--train-rows", type=int, help="rows of the 80 %% part to train on (default: all)")
    parser.add_argument("--test-rows", type=int, help="rows of the 20 %% part to score (default: all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=None, help="encoder learning rate (default: the preset's)")
    parser.add_argument("--methods", help="comma-separated subset of the methods")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds, one run of each method per seed")
    parser.add_argument("--tag", default="", help="suffix of the results file")
    args = parser.parse_args()
    apply_threads()

    cfg = dataclasses.replace(  # the row counts are set here, None meaning all rows
        preset(CSTS_PRESETS, "default", epochs=args.epochs, lr=args.lr,
               methods=tuple(args.methods.split(",")) if args.methods else None,
               seeds=tuple(int(seed) for seed in args.seeds.split(","))),
        real_train_rows=args.train_rows, real_test_rows=args.test_rows)
    rows = read_csts_csv(args.data)
    train, test = split_rows(rows, test_fraction=0.2, seed=0)
    train = train.iloc[: cfg.real_train_rows] if cfg.real_train_rows else train
    test = test.iloc[: cfg.real_test_rows] if cfg.real_test_rows else test
    print(f"{len(rows)} rows -> training on {len(train)}, scoring {len(test)}; settings {cfg}")
    start = time.perf_counter()
    table, _ = run_methods(cfg, train, test)
    summary = summarize_seeds(table)
    result = {"data": Path(args.data).name, "split": "split_rows(test_fraction=0.2, seed=0)",
              "train_rows": len(train), "test_rows": len(test), "config": cfg.__dict__,
              "seconds": time.perf_counter() - start, "threads": torch.get_num_threads(),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "packages": package_versions(("torch", "transformers", "sentence-transformers")),
              "summary": json.loads(summary.to_json(orient="records")),
              "runs": json.loads(table.to_json(orient="records"))}
    path = RESULTS / f"csts_real{'_' + args.tag if args.tag else ''}.json"
    atomic_write_json(path, result)
    print(summary.to_markdown(index=False, floatfmt=".1f"))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

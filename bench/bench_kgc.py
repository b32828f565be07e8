"""Benchmark: SimKGC-style two towers on WN18RR with the embedded encoder, all training triples.

    python bench/bench_kgc.py [--graph ../shared/data/wn18rr] [--methods bi-encoder,router]
        [--train-triples N] [--epochs 1] [--batch-size 64] [--pre-batch 0] [--shared-towers] [--tag NAME]

Trains each method's query and entity towers (``helpers.kgc``, the ``default`` profile's settings
unless overridden) on ``--train-triples`` training triples (all 86,835 by default, both directions),
ranks every test query against all 40,943 entities (filtered) and writes
``bench/results/kgc_wn18rr[_TAG].json``: per method MR, MRR, Hits@1/3/10 overall, for tail and head
prediction and per relation, the share of queries whose own entity still ranks first, training
seconds per epoch, entity-embedding seconds and queries ranked per second, with the settings and
the machine. Check it on a small subset first: ``--train-triples 200``. Threads as everywhere in
the suite (``helpers.threads``); set SLM_NOTEBOOKS_THREADS to choose.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from pathlib import Path

import torch

from helpers.artifacts import atomic_write_json, package_versions
from helpers.config import preset
from helpers.kgc import load_wn18rr, shared_wn18rr
from helpers.studies.knowledge_graph_completion import KGC_PRESETS, evaluate_model, train_model
from helpers.threads import apply_threads

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graph", default=str(shared_wn18rr()), help="folder in the WN18RR layout")
    parser.add_argument("--methods", default="bi-encoder,router")
    parser.add_argument("--train-triples", type=int, help="training triples (default: all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--pre-batch", type=int)
    parser.add_argument("--shared-towers", action="store_true")
    parser.add_argument("--split", default="test", choices=["test", "valid"])
    parser.add_argument("--tag", default="", help="suffix of the results file")
    args = parser.parse_args()
    if not Path(args.graph).is_dir():
        raise SystemExit(f"--graph {args.graph}: no such folder (a WN18RR-layout folder is needed).")
    apply_threads()

    cfg = dataclasses.replace(preset(KGC_PRESETS, "default", epochs=args.epochs, batch_size=args.batch_size,
                                     pre_batch=args.pre_batch, shared_towers=args.shared_towers or None),
                              train_triples=args.train_triples, methods=tuple(args.methods.split(",")))
    kg = load_wn18rr(args.graph)
    print(f"{len(kg.entities)} entities; training on {cfg.train_triples or len(kg.splits['train'])} triples; {cfg}")
    start = time.perf_counter()
    methods = {}
    for name in cfg.methods:
        model, seconds = train_model(cfg, name, kg, log=print)
        report = evaluate_model(model, kg, args.split, log=print)
        report.pop("ranks"), report.pop("queries")
        methods[name] = {**report, "train_s_per_epoch": seconds, "params_added": model.added_parameters()}
        print(f"{name}: MRR {report['mrr']:.3f} Hits@1 {report['hits_at_1']:.3f} Hits@10 {report['hits_at_10']:.3f} "
              f"(tail {report['tail']['mrr']:.3f}, head {report['head']['mrr']:.3f}); own entity first "
              f"{report['own_entity_top1']:.3f}")
    result = {"graph": args.graph, "split": args.split, "config": cfg.__dict__,
              "train_triples": cfg.train_triples or len(kg.splits["train"]), "seconds": time.perf_counter() - start,
              "threads": torch.get_num_threads(),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "packages": package_versions(("torch", "transformers", "sentence-transformers")), "methods": methods}
    path = RESULTS / f"kgc_wn18rr{'_' + args.tag if args.tag else ''}.json"
    atomic_write_json(path, result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

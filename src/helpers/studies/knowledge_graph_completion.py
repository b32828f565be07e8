"""Notebook 08's settings and entry points: train each method's two towers, then rank.

    cfg = preset(KGC_PRESETS, "default")
    table, details = run_kgc(cfg, kg)                   # one row per method, details["reports"][method]
    model, seconds = train_model(cfg, "router", kg)     # what `python -m helpers kgc train` runs
    report = evaluate_model(model, kg, "test")          # what `python -m helpers kgc evaluate` writes
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..models import DEFAULT_ENCODER
from ..kgc.graph import KnowledgeGraph, Triple, known_answers, make_queries
from ..kgc.model import TwoTowerKGC, encode_entities, rank_queries, train_two_tower
from ..kgc.ranking import ranking_report


@dataclass(frozen=True)
class KGCConfig:
    """Knobs of notebook 08, ``bench/bench_kgc.py`` and ``python -m helpers kgc train``."""

    graph: str = "wn18rr"  # "wn18rr" (../shared/data/wn18rr where present), "toy", or a folder
    encoder: str = DEFAULT_ENCODER
    methods: tuple[str, ...] = ("bi-encoder", "router")
    train_triples: int | None = None  # training triples sampled from train.txt (None: all)
    eval_triples: int | None = None  # triples of the evaluation split (None: all)
    split: str = "test"
    epochs: int = 1
    batch_size: int = 64
    lr: float = 5e-5  # both encoders (SimKGC: 5e-5 for WN18RR)
    head_lr: float = 1e-3  # the method's new layers and the temperature
    temperature: float = 0.05  # initial; learnable as in SimKGC (--finetune-t)
    learn_temperature: bool = True
    additive_margin: float = 0.02  # subtracted from the right answer's cosine in training (SimKGC)
    self_negative: bool = True  # the query's own entity as a negative (SimKGC --use-self-negative)
    pre_batch: int = 0  # earlier batches whose answers are extra negatives (SimKGC's WN18RR script: 0)
    pre_batch_weight: float = 0.5
    shared_towers: bool = False  # one encoder for queries and entities (SimKGC: two copies)
    max_length: int = 48  # tokens of a query (entity text + relation)
    entity_max_length: int = 32  # tokens of an entity's text (name and the start of its gloss)
    eval_untrained: bool = False  # also rank with each method before training
    log_every: int = 50  # training steps between progress lines
    seed: int = 0
    device: str = "cpu"


KGC_PRESETS = {
    "smoke": KGCConfig(graph="toy", train_triples=64, eval_triples=32, batch_size=16, max_length=24,
                       entity_max_length=16, eval_untrained=True),
    # Sized for about 15 minutes on 2 CPU cores with both methods, from timings on 1 shared thread:
    # training ~11 queries/s, embedding the 40,943 WN18RR entities 260-400 s, ranking ~85 queries/s.
    "default": KGCConfig(train_triples=2500, batch_size=64, max_length=40, entity_max_length=24),
    # SimKGC's WN18RR setting: all training triples, 50 epochs, batch 1024, on a GPU.
    "paper": KGCConfig(encoder="google-bert/bert-base-uncased", train_triples=None, epochs=50, batch_size=1024, lr=5e-5,
                       max_length=50, entity_max_length=50, device="cuda", log_every=20),
}


def sample_triples(triples: list[Triple], n: int | None, seed: int) -> list[Triple]:
    """A seeded sample of ``n`` triples (all of them when ``n`` is None or not smaller)."""
    if n is None or n >= len(triples):
        return list(triples)
    return random.Random(seed).sample(list(triples), n)


def build_model(cfg: KGCConfig, method: str) -> TwoTowerKGC:
    return TwoTowerKGC.build(method, cfg.encoder, cfg.device, cfg.max_length, cfg.entity_max_length,
                             cfg.shared_towers, cfg.temperature, cfg.learn_temperature)


def train_model(cfg: KGCConfig, method: str, kg: KnowledgeGraph, log=print) -> tuple[TwoTowerKGC, list[float]]:
    """A fresh two-tower model of ``method`` trained on ``cfg.train_triples`` sampled training triples."""
    if cfg.train_triples is not None and cfg.train_triples < 1:
        raise ValueError(f"train_triples must be at least 1 (or None for all), not {cfg.train_triples}.")
    train = sample_triples(kg.splits["train"], cfg.train_triples, cfg.seed)
    model = build_model(cfg, method)
    seconds = train_two_tower(model, make_queries(kg, train), kg, known_answers(kg, ("train",)), cfg, log=log)
    return model, seconds


def evaluate_model(model: TwoTowerKGC, kg: KnowledgeGraph, split: str = "test", eval_triples: int | None = None,
                   seed: int = 0, log=None) -> dict:
    """``ranking_report`` of ``model`` on ``split`` (filtered, both directions), with the share of
    queries whose own entity ranks first, and timings."""
    if split not in kg.splits:
        raise ValueError(f"Unknown split {split!r}; the graph has {', '.join(kg.splits)}.")
    queries = make_queries(kg, sample_triples(kg.splits[split], eval_triples, seed))
    start = time.perf_counter()
    entities = encode_entities(model, kg, log=log)
    entity_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ranks, own_top1 = rank_queries(model, queries, entities, known_answers(kg))
    report = ranking_report(ranks, queries)
    report.update(split=split, own_entity_top1=float(own_top1.mean()) if len(own_top1) else math.nan,
                  entity_seconds=entity_seconds, queries_per_s=len(queries) / (time.perf_counter() - start),
                  entities=len(kg.entities))
    return {**report, "ranks": ranks, "queries": queries}


def run_kgc(cfg: KGCConfig, kg: KnowledgeGraph, log=print) -> tuple[pd.DataFrame, dict]:
    """Train and rank each method of ``cfg.methods``; a table (one row per method) and details:
    ``reports`` (``evaluate_model``'s output per method, and ``untrained`` ones with
    ``cfg.eval_untrained``), ``queries`` and ``ranks`` per method."""
    records, reports, untrained = [], {}, {}
    for name in cfg.methods:
        if cfg.eval_untrained:
            untrained[name] = evaluate_model(build_model(cfg, name), kg, cfg.split, cfg.eval_triples, cfg.seed, log)
        model, seconds = train_model(cfg, name, kg, log=log)
        reports[name] = report = evaluate_model(model, kg, cfg.split, cfg.eval_triples, cfg.seed, log)
        records.append({"method": name, **{k: report[k] for k in ("mr", "mrr", "hits_at_1", "hits_at_3", "hits_at_10")},
                        "tail_mrr": report["tail"]["mrr"], "head_mrr": report["head"]["mrr"],
                        "own_entity_top1": report["own_entity_top1"],
                        "mrr_untrained": untrained[name]["mrr"] if name in untrained else math.nan,
                        "own_entity_top1_untrained": untrained[name]["own_entity_top1"] if name in untrained else math.nan,
                        "params_added": model.added_parameters(), "train_s_per_epoch": float(np.mean(seconds)),
                        "entity_s": report["entity_seconds"], "queries_per_s": report["queries_per_s"],
                        "train_queries": 2 * len(sample_triples(kg.splits["train"], cfg.train_triples, cfg.seed)),
                        "eval_queries": report["n"]})
        if log:
            log(f"{name:12s} MRR {report['mrr']:.3f} Hits@1 {report['hits_at_1']:.3f} Hits@10 {report['hits_at_10']:.3f} "
                f"own entity first {report['own_entity_top1']:.3f}; train {np.mean(seconds):.0f} s/epoch")
    queries = next(iter(reports.values()))["queries"] if reports else None
    return pd.DataFrame(records), {"reports": reports, "untrained": untrained, "queries": queries,
                                   "ranks": {name: r["ranks"] for name, r in reports.items()}}

"""Text-based knowledge-graph completion in the SimKGC style, with the C-STS conditioned encoders.

    kg = load_wn18rr("path/to/wn18rr")          # train/valid/test.txt, entity2text.txt, relation2text.txt
    table, ranks = run_kgc(preset(KGC_PRESETS, "default"), kg)

A query (head, relation, ?) is a conditioned sentence: the head entity's text is the sentence and
the relation's text the condition, embedded by a method of ``helpers.csts.methods``
(``bi-encoder``: ``head [SEP] relation`` in one sequence; ``router``: the head's pass routed by the
relation). Head prediction uses the inverse relation ("inverse of hypernym") with the tail as the
query, so each triple gives two queries. Candidates are entities embedded from their text by a
frozen copy of the pre-trained encoder (computed once and shared by every method, which keeps a
CPU run affordable; SimKGC also fine-tunes this tower). Training: InfoNCE over in-batch negatives
(other queries' answers in the batch, minus copies of the right answer) with temperature
``temperature``. Evaluation: filtered ranking over all entities -- every other known answer of the
query (in train, valid or test) is removed before ranking -- then MR, MRR and Hits@1/3/10.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .artifacts import atomic_write_text
from .config import cache_dir, project_root
from .models import DEFAULT_ENCODER

WN18RR_FILES = ("train.txt", "valid.txt", "test.txt", "entity2text.txt", "relation2text.txt")
Triple = tuple[str, str, str]


@dataclass(frozen=True)
class KGCConfig:
    """Knobs of notebook 08."""

    graph: str = "wn18rr"  # "wn18rr" (../shared/data/wn18rr where present), "toy", or a folder
    encoder: str = DEFAULT_ENCODER
    methods: tuple[str, ...] = ("bi-encoder", "router")
    train_triples: int | None = 4000  # training triples sampled from train.txt (None: all)
    eval_triples: int | None = None  # triples of the evaluation split (None: all)
    split: str = "test"
    epochs: int = 1
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3
    temperature: float = 0.05
    max_length: int = 32  # tokens of a query (head text; the relation is separate or appended)
    entity_max_length: int = 24  # tokens of a candidate's text (name and the start of its gloss)
    eval_untrained: bool = True  # also rank with each method before training
    self_negative: bool = False  # add the query's own head entity as a negative (SimKGC)
    seed: int = 0
    device: str = "cpu"


KGC_PRESETS = {
    "smoke": KGCConfig(graph="toy", train_triples=64, eval_triples=32, batch_size=16),
    "default": KGCConfig(train_triples=2000, eval_triples=None, eval_untrained=False),
    # SimKGC's WN18RR setting: all training triples, 50 epochs, batch 1024, on a GPU.
    "paper": KGCConfig(encoder="bert-base-uncased", train_triples=None, epochs=50, batch_size=1024, lr=5e-5,
                       max_length=50, entity_max_length=50, device="cuda"),
}


@dataclass
class KnowledgeGraph:
    """Entities and relations with their texts, and the triples of each split."""

    entity_text: dict[str, str]
    relation_text: dict[str, str]
    splits: dict[str, list[Triple]]
    entities: list[str] = field(init=False)

    def __post_init__(self):
        seen = dict.fromkeys(self.entity_text)
        for triples in self.splits.values():
            for head, _, tail in triples:
                seen.setdefault(head)
                seen.setdefault(tail)
        self.entities = list(seen)
        for entity in self.entities:
            self.entity_text.setdefault(entity, entity)  # an entity without text is named by its id


def _read_tsv(path: Path, columns: int) -> list[tuple[str, ...]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != columns:
            raise ValueError(f"{path}:{number}: expected {columns} tab-separated fields, found {len(parts)}.")
        rows.append(tuple(p.strip() for p in parts))
    return rows


def load_wn18rr(folder: str | Path) -> KnowledgeGraph:
    """A graph in the WN18RR text layout: ``train/valid/test.txt`` (head, relation, tail per line),
    ``entity2text.txt`` (entity, text) and ``relation2text.txt`` (relation, text), tab-separated."""
    folder = Path(folder)
    missing = [name for name in WN18RR_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {missing}: a WN18RR-format folder holds {', '.join(WN18RR_FILES)}.")
    splits = {name: _read_tsv(folder / f"{name}.txt", 3) for name in ("train", "valid", "test")}
    return KnowledgeGraph(dict(_read_tsv(folder / "entity2text.txt", 2)),
                          dict(_read_tsv(folder / "relation2text.txt", 2)), splits)


def write_toy_graph(folder: str | Path, seed: int = 0) -> Path:
    """Write a small graph in the WN18RR layout (for offline runs): the words of the synthetic C-STS
    scenes, linked to their near synonyms (``_similar_to``) and to their attribute (``_attribute_of``)."""
    from .csts.synthetic import ATTRIBUTE_GROUPS

    folder = Path(folder)
    entities = {attribute: attribute for attribute in ATTRIBUTE_GROUPS}
    triples = []
    for attribute, groups in ATTRIBUTE_GROUPS.items():
        for group in groups:
            for word in group:
                entities[word] = word
                triples.append((word, "_attribute_of", attribute))
                triples.extend((word, "_similar_to", other) for other in group if other != word)
    random.Random(seed).shuffle(triples)
    cut = [int(len(triples) * 0.8), int(len(triples) * 0.9)]
    parts = {"train": triples[:cut[0]], "valid": triples[cut[0]:cut[1]], "test": triples[cut[1]:]}
    ids = {name: f"{i:05d}" for i, name in enumerate(entities)}
    for split, rows in parts.items():
        atomic_write_text(folder / f"{split}.txt", "".join(f"{ids[h]}\t{r}\t{ids[t]}\n" for h, r, t in rows))
    atomic_write_text(folder / "entity2text.txt", "".join(f"{ids[e]}\t{text}\n" for e, text in entities.items()))
    atomic_write_text(folder / "relation2text.txt", "_similar_to\tsimilar to\n_attribute_of\tis a value of\n")
    return folder


def resolve_graph(graph: str, toy_folder: str | Path) -> tuple[KnowledgeGraph, str]:
    """The graph a config names, and a sentence saying which one it is. ``"wn18rr"`` reads
    ``../shared/data/wn18rr`` next to the checkout where present and falls back to the toy graph
    (written to ``toy_folder``); any other value but ``"toy"`` is a folder in the WN18RR layout."""
    if graph == "wn18rr":
        shared = project_root().parent / "shared" / "data" / "wn18rr"
        if shared.is_dir():
            return load_wn18rr(shared), f"WN18RR from {shared}"
        graph = "toy"
    if graph == "toy":
        return load_wn18rr(write_toy_graph(toy_folder)), "the embedded toy graph (no WN18RR folder found)"
    return load_wn18rr(graph), f"the graph in {graph}"


@dataclass(frozen=True)
class Queries:
    """Queries of both directions: texts, the relation key (``r`` or ``inverse r``) and the answer."""

    head_ids: list[str]
    heads: np.ndarray  # index of the query's entity in kg.entities
    relations: list[str]
    head_texts: list[str]
    relation_texts: list[str]
    answers: np.ndarray  # index of the right entity in kg.entities


def make_queries(kg: KnowledgeGraph, triples: list[Triple]) -> Queries:
    """(h, r, ?) and (t, inverse r, ?) for every triple."""
    index = {e: i for i, e in enumerate(kg.entities)}
    heads, relations, texts, answers = [], [], [], []
    for head, relation, tail in triples:
        for source, key, target in ((head, relation, tail), (tail, f"inverse {relation}", head)):
            heads.append(source)
            relations.append(key)
            base = kg.relation_text.get(relation, relation.strip("_").replace("_", " "))
            texts.append(base if key == relation else f"inverse of {base}")
            answers.append(index[target])
    return Queries(heads, np.array([index[h] for h in heads], dtype=np.int64), relations,
                   [kg.entity_text[h] for h in heads], texts, np.array(answers, dtype=np.int64))


def known_answers(kg: KnowledgeGraph) -> dict[tuple[str, str], set[int]]:
    """Every answer of (entity, relation or inverse relation) in any split: what filtering removes."""
    index = {e: i for i, e in enumerate(kg.entities)}
    known: dict[tuple[str, str], set[int]] = {}
    for triples in kg.splits.values():
        for head, relation, tail in triples:
            known.setdefault((head, relation), set()).add(index[tail])
            known.setdefault((tail, f"inverse {relation}"), set()).add(index[head])
    return known


def filtered_ranks(scores: torch.Tensor, answers, filters: list[set[int]]) -> np.ndarray:
    """Rank (1 = best) of each query's answer among all candidates, after removing the query's other
    known answers (``filters[i]``); ties count in the answer's favour."""
    scores = scores.clone().float()
    answers = torch.as_tensor(np.asarray(answers), dtype=torch.long)
    rows = torch.arange(len(answers))
    target = scores[rows, answers]
    for i, others in enumerate(filters):
        drop = [j for j in others if j != int(answers[i])]
        if drop:
            scores[i, drop] = -math.inf
    return ((scores > target[:, None]).sum(dim=1) + 1).numpy()


def ranking_metrics(ranks) -> dict[str, float]:
    """MR, MRR and Hits@1/3/10 of filtered ranks."""
    ranks = np.asarray(ranks, dtype=float)
    return {"MR": float(ranks.mean()), "MRR": float((1.0 / ranks).mean()),
            **{f"Hits@{k}": float((ranks <= k).mean()) for k in (1, 3, 10)}}


def _embed_by_length(embed, texts: list[str], batch_size: int) -> torch.Tensor:
    """``embed`` over batches of similar length (less padding), returned in the order of ``texts``."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    parts = [embed(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
    out = torch.empty(len(texts), parts[0].shape[-1], device=parts[0].device) if parts else torch.zeros(0)
    if parts:
        out[torch.tensor(order, device=out.device)] = torch.cat(parts)
    return out


@torch.no_grad()
def encode_entities(kg: KnowledgeGraph, cfg: KGCConfig, batch_size: int = 128) -> torch.Tensor:
    """Unit-norm embeddings of every entity's text by the frozen pre-trained encoder, cached under
    ``cache_dir()/kgc`` by a hash of the encoder, the length limit and the texts."""
    from .csts.methods import build_method

    texts = [kg.entity_text[e] for e in kg.entities]
    key = hashlib.sha256("\n".join([cfg.encoder, str(cfg.entity_max_length), *texts]).encode()).hexdigest()[:20]
    path = cache_dir() / "kgc" / f"entities-{key}.pt"
    if path.is_file():
        return torch.load(path, map_location=cfg.device)
    tower = build_method("bi-encoder", cfg.encoder, cfg.device, cfg.entity_max_length).eval()
    embeddings = _embed_by_length(lambda rows: F.normalize(tower.pool([texts[i] for i in rows]), dim=-1),
                                  texts, batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(embeddings.cpu(), tmp)
    os.replace(tmp, path)
    return embeddings


def _query_embeddings(model, queries: Queries, rows) -> torch.Tensor:
    return F.normalize(model.embed([queries.head_texts[i] for i in rows],
                                   [queries.relation_texts[i] for i in rows]), dim=-1)


def contrastive_logits(queries: torch.Tensor, entity_embeddings: torch.Tensor, answers: torch.Tensor,
                       heads: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """Logits of unit-norm ``queries`` (batch, dim) against the batch's answers (columns 0..batch-1,
    the right one on the diagonal; other columns holding the same entity are masked) and, when
    ``heads`` is given, against each query's own head entity (a last column; masked where the head
    is the answer)."""
    in_batch = queries @ entity_embeddings[answers].T
    duplicate = (answers[:, None] == answers[None, :]) & ~torch.eye(len(answers), dtype=torch.bool,
                                                                     device=answers.device)
    logits = in_batch.masked_fill(duplicate, -math.inf)
    if heads is not None:
        own_head = (queries * entity_embeddings[heads]).sum(dim=-1).masked_fill(heads == answers, -math.inf)
        logits = torch.cat([logits, own_head[:, None]], dim=1)
    return logits / temperature


def train_queries(model, queries: Queries, entity_embeddings: torch.Tensor, cfg: KGCConfig) -> list[float]:
    """InfoNCE with in-batch and self-negatives (``contrastive_logits``); returns seconds per epoch."""
    from transformers import get_linear_schedule_with_warmup

    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    groups = [{"params": list(model.backbone.parameters()), "lr": cfg.lr}]
    if model.new_parameters():
        groups.append({"params": model.new_parameters(), "lr": cfg.head_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    steps = cfg.epochs * math.ceil(len(queries.answers) / cfg.batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, steps // 10, steps)
    seconds = []
    model.train()
    for _ in range(cfg.epochs):
        start = time.perf_counter()
        order = list(range(len(queries.answers)))
        rng.shuffle(order)
        for begin in range(0, len(order), cfg.batch_size):
            rows = order[begin:begin + cfg.batch_size]
            answers = torch.as_tensor(queries.answers[rows], device=entity_embeddings.device)
            heads = None
            if cfg.self_negative:
                heads = torch.as_tensor(queries.heads[rows], device=entity_embeddings.device)
            logits = contrastive_logits(_query_embeddings(model, queries, rows), entity_embeddings, answers, heads,
                                        cfg.temperature)
            loss = F.cross_entropy(logits, torch.arange(len(rows), device=logits.device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - start)
    model.eval()
    return seconds


@torch.no_grad()
def rank_queries(model, queries: Queries, entity_embeddings: torch.Tensor,
                 known: dict[tuple[str, str], set[int]], batch_size: int = 128) -> np.ndarray:
    """Filtered rank of every query's answer over all entities."""
    model.eval()
    embedded = _embed_by_length(lambda rows: _query_embeddings(model, queries, rows), queries.head_texts, batch_size)
    ranks = []
    for begin in range(0, len(queries.answers), batch_size):
        rows = list(range(begin, min(begin + batch_size, len(queries.answers))))
        scores = embedded[rows] @ entity_embeddings.T
        filters = [known.get((queries.head_ids[i], queries.relations[i]), set()) for i in rows]
        ranks.append(filtered_ranks(scores.cpu(), queries.answers[rows], filters))
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


def run_kgc(cfg: KGCConfig, kg: KnowledgeGraph, log=print) -> tuple[pd.DataFrame, dict]:
    """Ranking metrics of each method on ``cfg.split`` after training (and before, with
    ``cfg.eval_untrained``); details: the evaluation ``queries`` and each method's ``ranks``."""
    from .csts.methods import build_method

    rng = random.Random(cfg.seed)
    train = list(kg.splits["train"])
    if cfg.train_triples is not None and cfg.train_triples < len(train):
        train = rng.sample(train, cfg.train_triples)
    evaluated = kg.splits[cfg.split]
    if cfg.eval_triples is not None and cfg.eval_triples < len(evaluated):
        evaluated = rng.sample(evaluated, cfg.eval_triples)
    start = time.perf_counter()
    entities = encode_entities(kg, cfg)
    if log:
        log(f"{len(kg.entities)} entities embedded in {time.perf_counter() - start:.0f} s")
    known, train_queries_, eval_queries = known_answers(kg), make_queries(kg, train), make_queries(kg, evaluated)
    records, all_ranks = [], {}
    for name in cfg.methods:
        model = build_method(name, cfg.encoder, cfg.device, cfg.max_length)
        before = ranking_metrics(rank_queries(model, eval_queries, entities, known)) if cfg.eval_untrained else {}
        seconds = train_queries(model, train_queries_, entities, cfg)
        start = time.perf_counter()
        ranks = rank_queries(model, eval_queries, entities, known)
        rank_seconds = time.perf_counter() - start
        all_ranks[name] = ranks
        after = ranking_metrics(ranks)
        records.append({"method": name, **after, "MRR untrained": before.get("MRR", math.nan),
                        "Hits@10 untrained": before.get("Hits@10", math.nan), "params_added": model.added_parameters(),
                        "train_s_per_epoch": float(np.mean(seconds)), "queries_per_s": len(ranks) / rank_seconds,
                        "train_queries": len(train_queries_.answers), "eval_queries": len(ranks)})
        if log:
            log(f"{name:12s} MRR {after['MRR']:.3f} Hits@10 {after['Hits@10']:.3f} "
                f"train {np.mean(seconds):.0f} s/epoch")
    return pd.DataFrame(records), {"queries": eval_queries, "ranks": all_ranks}

"""SimKGC's two towers on the conditioned encoders of ``helpers.csts.methods``: training, entity
embeddings (cached by a hash of the weights), filtered ranking, save and load.

    model = TwoTowerKGC.build("router", encoder="all-minilm-l6-v2", shared_towers=False)
    train_two_tower(model, make_queries(kg, train_triples), kg, known_answers(kg, ("train",)), cfg)
    entities = encode_entities(model, kg)                   # recomputed whenever the weights change
    ranks, own_top1 = rank_queries(model, queries, entities, known_answers(kg))

The query tower embeds (entity text, relation text) with a C-STS method (``bi-encoder``:
``head [SEP] relation``; ``router``: the head's pass routed by the relation); the entity tower
embeds an entity's text by mean pooling. Both are trained (SimKGC fine-tunes both; they share
weights with ``shared_towers=True``, where the router's backbone with routing off *is* the plain
encoder). Loss: InfoNCE over, for each query, (a) the batch's answers (in-batch negatives; a column
is masked when its entity is a known training answer of the query), (b) with ``pre_batch > 0``, the
answers of the last ``pre_batch`` batches (their stored vectors, weighted by ``pre_batch_weight``,
masked the same way), and (c) with ``self_negative``, the query's own entity (masked when it is one
of the query's answers). As in SimKGC, scores are cosines times a learnable inverse temperature,
with an additive margin subtracted from the right answer's cosine during training.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..artifacts import atomic_path, atomic_write_json, cached, write_manifest
from ..config import cache_dir
from ..csts.methods import ConditionedScorer, build_method, mean_pool
from .graph import KnowledgeGraph, Queries

QUERY_METHODS = ("bi-encoder", "router")


class TwoTowerKGC(nn.Module):
    """A query tower (a C-STS method) and an entity tower (a plain encoder, or the query tower's own
    backbone when ``shared_towers``), and SimKGC's learnable inverse temperature."""

    def __init__(self, query: ConditionedScorer, entity: ConditionedScorer | None, entity_max_length: int,
                 temperature: float = 0.05, learn_temperature: bool = True):
        super().__init__()
        self.query = query
        self.entity = entity
        self.entity_max_length = entity_max_length
        self.log_inv_t = nn.Parameter(torch.tensor(1.0 / temperature).log(), requires_grad=learn_temperature)

    @classmethod
    def build(cls, method: str, encoder: str, device: str = "cpu", max_length: int = 32,
              entity_max_length: int = 24, shared_towers: bool = False, temperature: float = 0.05,
              learn_temperature: bool = True) -> "TwoTowerKGC":
        if method not in QUERY_METHODS:
            raise ValueError(f"Unknown KGC method {method!r}; choose one of {', '.join(QUERY_METHODS)}.")
        query = build_method(method, encoder, device, max_length)
        entity = None if shared_towers else build_method("bi-encoder", encoder, device, entity_max_length)
        model = cls(query, entity, entity_max_length, temperature, learn_temperature).to(device)
        model.build_options = {"method": method, "encoder": encoder, "max_length": max_length,
                               "entity_max_length": entity_max_length, "shared_towers": shared_towers,
                               "temperature": temperature, "learn_temperature": learn_temperature}
        return model

    @property
    def entity_tower(self) -> ConditionedScorer:
        return self.query if self.entity is None else self.entity

    @property
    def device(self) -> torch.device:
        return self.log_inv_t.device

    def embed_queries(self, entity_texts: list[str], relation_texts: list[str]) -> torch.Tensor:
        return F.normalize(self.query.embed(entity_texts, relation_texts), dim=-1)

    def embed_entities(self, texts: list[str]) -> torch.Tensor:
        """Unit-norm mean-pooled embeddings of entity texts (outside any routing: the plain encoder)."""
        tower = self.entity_tower
        batch = tower.tokenizer(list(texts), padding=True, truncation=True, max_length=self.entity_max_length,
                                return_tensors="pt").to(self.device)
        return F.normalize(mean_pool(tower.backbone(**batch).last_hidden_state, batch["attention_mask"]), dim=-1)

    def backbone_parameters(self) -> list[nn.Parameter]:
        params = list(self.query.backbone.parameters())
        return params + (list(self.entity.backbone.parameters()) if self.entity is not None else [])

    def new_parameters(self) -> list[nn.Parameter]:
        """The query method's added layers and the temperature (trained at ``head_lr``)."""
        return self.query.new_parameters() + [self.log_inv_t]

    def added_parameters(self) -> int:
        return self.query.added_parameters()


def weights_hash(module: nn.Module) -> str:
    """SHA-256 (20 hex digits) of every tensor of ``module``'s state dict, in key order."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]


def _by_length(embed, texts: list[str], batch_size: int) -> torch.Tensor:
    """``embed(rows)`` over batches of similar length (less padding), returned in the order of ``texts``."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    parts = [embed(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
    if not parts:
        return torch.zeros(0)
    out = torch.empty(len(texts), parts[0].shape[-1], device=parts[0].device)
    out[torch.tensor(order, device=out.device)] = torch.cat(parts)
    return out


@torch.no_grad()
def encode_entities(model: TwoTowerKGC, kg: KnowledgeGraph, batch_size: int = 128, log=None) -> torch.Tensor:
    """Embeddings of every entity of ``kg`` by the entity tower, cached under ``cache_dir()/kgc`` by a
    hash of the tower's weights, the length limit and the texts (a trained tower gets new ones)."""
    texts = [kg.entity_text[e] for e in kg.entities]
    tower = model.entity_tower.backbone
    key = hashlib.sha256("\n".join([weights_hash(tower), str(model.entity_max_length), *texts]).encode())
    # The hash names the file, so that towers of several runs keep their own embeddings side by side.
    path = cache_dir() / "kgc" / f"entities-{key.hexdigest()[:20]}.pt"

    def embed() -> torch.Tensor:
        was_training = model.training
        model.eval()
        start = time.perf_counter()
        embeddings = _by_length(lambda rows: model.embed_entities([texts[i] for i in rows]), texts, batch_size)
        model.train(was_training)
        if log:
            log(f"{len(texts)} entities embedded in {time.perf_counter() - start:.0f} s")
        return embeddings

    embeddings = cached(path, key.hexdigest(), embed, save=_save_tensor, load=torch.load)
    return embeddings.to(model.device)


def _save_tensor(path: Path, tensor: torch.Tensor) -> None:
    with atomic_path(path) as tmp:
        torch.save(tensor.cpu(), tmp)


def negative_masks(queries: Queries, rows: list[int], columns: np.ndarray,
                   known: dict[tuple[str, str], set[int]]) -> torch.Tensor:
    """(len(rows), len(columns)) boolean: True where entity ``columns[j]`` may serve as a negative of
    query ``rows[i]``, i.e. it is not a known (training) answer of that query; SimKGC's triplet mask."""
    mask = torch.ones(len(rows), len(columns), dtype=torch.bool)
    for i, row in enumerate(rows):
        answers = known.get((queries.head_ids[row], queries.relations[row]), set()) | {int(queries.answers[row])}
        for j, entity in enumerate(columns):
            if int(entity) in answers:
                mask[i, j] = False
    return mask


def contrastive_logits(query: torch.Tensor, answers: torch.Tensor, inv_t: torch.Tensor, in_batch_mask: torch.Tensor,
                       margin: float = 0.0, pre_batch: torch.Tensor | None = None,
                       pre_batch_mask: torch.Tensor | None = None, pre_batch_weight: float = 0.5,
                       own: torch.Tensor | None = None, own_mask: torch.Tensor | None = None) -> torch.Tensor:
    """SimKGC's logits for unit-norm ``query`` (batch, dim): the right answer on the diagonal of the
    in-batch block (``answers``: the batch's answer vectors; its cosine lowered by ``margin``), then the
    pre-batch block (``pre_batch`` vectors times ``pre_batch_weight``) and the self-negative column
    (``own``: each query's own entity vector). Masks are True where a column is a valid negative; the
    diagonal is always kept. Masked entries are -inf."""
    batch = len(query)
    eye = torch.eye(batch, dtype=torch.bool, device=query.device)
    logits = (query @ answers.T - margin * eye) * inv_t
    blocks = [logits.masked_fill(~(in_batch_mask.to(query.device) | eye), -math.inf)]
    if pre_batch is not None and len(pre_batch):
        pre = (query @ pre_batch.T) * inv_t * pre_batch_weight
        blocks.append(pre.masked_fill(~pre_batch_mask.to(query.device), -math.inf))
    if own is not None:
        self_logit = (query * own).sum(dim=-1) * inv_t
        blocks.append(self_logit.masked_fill(~own_mask.to(query.device), -math.inf)[:, None])
    return torch.cat(blocks, dim=1)


def train_two_tower(model: TwoTowerKGC, queries: Queries, kg: KnowledgeGraph, known: dict[tuple[str, str], set[int]],
                    cfg, log=None) -> list[float]:
    """Train both towers on ``queries`` with SimKGC's loss (module docstring); ``known``: the training
    answers that no negative may be. ``cfg``: a ``KGCConfig``. Returns seconds per epoch."""
    from transformers import get_linear_schedule_with_warmup

    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW([{"params": model.backbone_parameters(), "lr": cfg.lr},
                                   {"params": model.new_parameters(), "lr": cfg.head_lr, "weight_decay": 0.0}],
                                  weight_decay=0.01)
    steps = cfg.epochs * math.ceil(len(queries) / cfg.batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, steps // 10, steps)
    texts = [kg.entity_text[e] for e in kg.entities]
    previous: deque = deque(maxlen=max(cfg.pre_batch, 0))  # (vectors, entity indices) of earlier batches
    seconds = []
    model.train()
    for epoch in range(cfg.epochs):
        start = time.perf_counter()
        order = list(range(len(queries)))
        rng.shuffle(order)
        for step, begin in enumerate(range(0, len(order), cfg.batch_size)):
            rows = order[begin:begin + cfg.batch_size]
            answers, heads = queries.answers[rows], queries.heads[rows]
            needed = np.unique(np.concatenate([answers, heads]) if cfg.self_negative else answers)
            where = {int(e): i for i, e in enumerate(needed)}
            entity_vectors = model.embed_entities([texts[i] for i in needed])  # one pass for answers and heads
            answer_vectors = entity_vectors[[where[int(e)] for e in answers]]
            query = model.embed_queries([queries.head_texts[i] for i in rows], [queries.relation_texts[i] for i in rows])
            extra = {}
            if previous:
                pre_vectors = torch.cat([v for v, _ in previous])
                pre_entities = np.concatenate([e for _, e in previous])
                extra.update(pre_batch=pre_vectors, pre_batch_mask=negative_masks(queries, rows, pre_entities, known),
                             pre_batch_weight=cfg.pre_batch_weight)
            if cfg.self_negative:
                extra.update(own=entity_vectors[[where[int(e)] for e in heads]],
                             own_mask=negative_masks(queries, rows, heads, known).diagonal())
            logits = contrastive_logits(query, answer_vectors, model.log_inv_t.exp(),
                                        negative_masks(queries, rows, answers, known), cfg.additive_margin, **extra)
            loss = F.cross_entropy(logits, torch.arange(len(rows), device=logits.device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if cfg.pre_batch > 0:
                previous.append((answer_vectors.detach(), answers))
            if log and step % max(1, cfg.log_every) == 0:
                log(f"epoch {epoch + 1} step {step + 1}/{math.ceil(len(order) / cfg.batch_size)} loss {loss.item():.3f} "
                    f"1/t {model.log_inv_t.exp().item():.1f} ({time.perf_counter() - start:.0f} s)")
        seconds.append(time.perf_counter() - start)
    model.eval()
    return seconds


@torch.no_grad()
def embed_queries(model: TwoTowerKGC, queries: Queries, batch_size: int = 128) -> torch.Tensor:
    """Unit-norm query embeddings, in the order of ``queries``."""
    model.eval()
    return _by_length(lambda rows: model.embed_queries([queries.head_texts[i] for i in rows],
                                                       [queries.relation_texts[i] for i in rows]),
                      queries.head_texts, batch_size)


def rank_embedded(query_embeddings: torch.Tensor, queries: Queries, entity_embeddings: torch.Tensor,
                  known: dict[tuple[str, str], set[int]], batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Filtered rank of every query's answer over all entities (``helpers.kgc.ranking``), and whether
    the query's own entity scores first once the filter is applied (what the self-negative fixes).
    As in SimKGC the own entity is not removed, unless it is another known answer."""
    from .ranking import filtered_ranks

    ranks, own_top1 = [], []
    for begin in range(0, len(queries), batch_size):
        rows = list(range(begin, min(begin + batch_size, len(queries))))
        scores = (query_embeddings[rows] @ entity_embeddings.T).cpu().float()
        filters = [known.get((queries.head_ids[i], queries.relations[i]), set()) for i in rows]
        ranks.append(filtered_ranks(scores, queries.answers[rows], filters))
        for i, row in enumerate(rows):
            scores[i, [j for j in filters[i] if j != int(queries.answers[row])]] = -math.inf
        own_top1.append(scores.argmax(dim=1).numpy() == queries.heads[rows])
    if not ranks:
        return np.zeros(0), np.zeros(0, dtype=bool)
    return np.concatenate(ranks), np.concatenate(own_top1)


def rank_queries(model: TwoTowerKGC, queries: Queries, entity_embeddings: torch.Tensor,
                 known: dict[tuple[str, str], set[int]], batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """``rank_embedded`` of ``model``'s query embeddings."""
    return rank_embedded(embed_queries(model, queries, batch_size), queries, entity_embeddings, known, batch_size)


def save_kgc_model(model: TwoTowerKGC, folder: str | Path, cfg=None, **fields) -> Path:
    """``folder/kgc.json`` (how to rebuild), ``folder/model.safetensors`` and a manifest."""
    from safetensors.torch import save_model as save_safetensors

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.safetensors") as tmp:
        save_safetensors(model, str(tmp))
    atomic_write_json(folder / "kgc.json", model.build_options)
    write_manifest(folder, cfg, model=model.build_options, **fields)
    return folder


def load_kgc_model(folder: str | Path, device: str = "cpu") -> TwoTowerKGC:
    """A model saved by ``save_kgc_model`` (its encoder must be loadable here)."""
    from safetensors.torch import load_model as load_safetensors

    folder = Path(folder)
    if not (folder / "kgc.json").is_file():
        raise FileNotFoundError(f"{folder} is not a saved KGC model: it lacks kgc.json "
                                "(make one with `python -m helpers kgc train ... --out DIR`).")
    options = json.loads((folder / "kgc.json").read_text())
    model = TwoTowerKGC.build(device=device, **options)
    load_safetensors(model, str(folder / "model.safetensors"), device=device)
    return model.eval()

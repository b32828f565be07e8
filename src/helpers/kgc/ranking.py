"""Filtered ranking and its metrics: MR, MRR, Hits@1/3/10, overall, per direction and per relation.

    ranks = filtered_ranks(scores, answers, filters)     # 1 = best; other true answers removed
    report = ranking_report(ranks, queries)              # {"mrr": ..., "tail": {...}, "head": {...},
                                                         #  "per_relation": {...}}

Filtered setting (Bordes et al. 2013, and SimKGC's ``evaluate.py``): before ranking a query's
answer, every *other* known answer of the same (entity, relation) in train, valid or test is removed.
SimKGC does not remove the query's own entity at ranking (it appears only when it is a known
answer, i.e. a self-loop triple); it teaches the query tower to push it down with the
self-negative during training. We do the same, and report how often the own entity still comes
first (``own_entity_top1``).

Ties: an answer tied with ``k`` other candidates gets the mean of the ranks the tie spans,
``1 + greater + k / 2`` (the "realistic" rank of PyKEEN). Counting ties in the answer's favour would
give a model that maps every entity to one point a perfect score.
"""

from __future__ import annotations

import math

import numpy as np
import torch

METRICS = ("mr", "mrr", "hits_at_1", "hits_at_3", "hits_at_10")


def filtered_ranks(scores: torch.Tensor, answers, filters: list[set[int]]) -> np.ndarray:
    """Rank (1 = best, ties averaged) of each query's answer among all candidates (``scores``:
    queries x candidates), after removing the query's other known answers (``filters[i]``)."""
    scores = scores.clone().float()
    answers = torch.as_tensor(np.asarray(answers), dtype=torch.long)
    rows = torch.arange(len(answers))
    target = scores[rows, answers]
    for i, others in enumerate(filters):
        drop = [j for j in others if j != int(answers[i])]
        if drop:
            scores[i, drop] = -math.inf
    greater = (scores > target[:, None]).sum(dim=1)
    ties = (scores == target[:, None]).sum(dim=1) - 1  # other candidates with the answer's score
    return (1 + greater + ties / 2).numpy().astype(float)


def ranking_metrics(ranks) -> dict[str, float]:
    """MR, MRR and Hits@1/3/10 of filtered ranks, and the number of queries ``n``."""
    ranks = np.asarray(ranks, dtype=float)
    if len(ranks) == 0:
        return {**dict.fromkeys(METRICS, math.nan), "n": 0}
    return {"mr": float(ranks.mean()), "mrr": float((1.0 / ranks).mean()),
            **{f"hits_at_{k}": float((ranks <= k).mean()) for k in (1, 3, 10)}, "n": int(len(ranks))}


def ranking_report(ranks, queries) -> dict:
    """Metrics over all queries, for tail prediction (h, r, ?) and head prediction (t, inverse r, ?)
    apart, and per relation (each direction and both): the layout of ``kgc evaluate``'s JSON."""
    ranks = np.asarray(ranks, dtype=float)
    directions = np.asarray(queries.directions)
    relations = np.asarray([r.removeprefix("inverse ") for r in queries.relations])
    report = {**ranking_metrics(ranks),
              **{d: ranking_metrics(ranks[directions == d]) for d in ("tail", "head")}, "per_relation": {}}
    for relation in sorted(set(relations)):
        own = relations == relation
        report["per_relation"][relation] = {**ranking_metrics(ranks[own]),
                                            **{d: ranking_metrics(ranks[own & (directions == d)])
                                               for d in ("tail", "head")}}
    return report

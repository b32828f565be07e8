"""Text-based knowledge-graph completion in SimKGC's way, with the C-STS conditioned encoders.

    from helpers.studies.knowledge_graph_completion import KGC_PRESETS, run_kgc
    kg = load_wn18rr("path/to/wn18rr")          # train/valid/test.txt, entity2text.txt, relation2text.txt
    table, details = run_kgc(preset(KGC_PRESETS, "default"), kg)

A query (entity, relation, ?) is a conditioned sentence: the entity's text under the condition
"relation text" (head prediction: "inverse of relation text"), embedded by a C-STS method
(``bi-encoder`` or ``router``); every entity of the graph is a candidate, embedded from its text by a
second, also trained tower. Parts:

* ``graph``    -- the WN18RR layout loader, the toy graph, queries of both directions, known answers;
* ``model``    -- the two towers, SimKGC's loss (in-batch, pre-batch and self-negatives), entity
                  embeddings cached by a hash of the weights, filtered ranking, save/load;
* ``ranking``  -- filtered ranks (ties averaged) and MR / MRR / Hits@1/3/10 overall, per direction
                  and per relation;

Notebook 08's ``run_kgc`` and ``KGCConfig`` live in ``helpers.studies.knowledge_graph_completion``,
the command ``python -m helpers kgc train|evaluate`` in ``helpers.cli.kgc``.
"""

from .graph import (KnowledgeGraph, Queries, known_answers, load_wn18rr, make_queries, resolve_graph,
                    shared_wn18rr, write_toy_graph)
from .model import (TwoTowerKGC, contrastive_logits, encode_entities, load_kgc_model, negative_masks, rank_embedded,
                    rank_queries, save_kgc_model, train_two_tower, weights_hash)
from .ranking import filtered_ranks, ranking_metrics, ranking_report

__all__ = ["KnowledgeGraph", "Queries", "TwoTowerKGC", "contrastive_logits",
           "encode_entities", "filtered_ranks", "known_answers", "load_kgc_model", "load_wn18rr",
           "make_queries", "negative_masks", "rank_embedded", "rank_queries", "ranking_metrics", "ranking_report",
           "resolve_graph", "save_kgc_model", "shared_wn18rr", "train_two_tower", "weights_hash",
           "write_toy_graph"]

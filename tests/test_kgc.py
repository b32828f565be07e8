"""helpers.kgc: filtered ranking and its metrics, the WN18RR loader, queries, a tiny end-to-end run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers.config import ENV_CACHE_DIR, preset
from helpers.kgc import (KGC_PRESETS, contrastive_logits, filtered_ranks, known_answers, load_wn18rr, make_queries,
                         ranking_metrics, run_kgc, write_toy_graph)


def test_filtered_ranks_on_a_hand_made_ranking():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1],    # answer 2: entities 0 and 1 score higher -> raw rank 3
                           [0.1, 0.2, 0.3, 0.4],    # answer 3: best -> rank 1
                           [0.5, 0.5, 0.1, 0.0]])   # answer 1 ties with 0: ties count for the answer
    answers = [2, 3, 1]
    assert filtered_ranks(scores, answers, [set(), set(), set()]).tolist() == [3, 1, 1]
    # entity 0 is another known answer of query 0: filtering removes it -> rank 2; the answer itself stays
    assert filtered_ranks(scores, answers, [{0, 2}, {3}, set()]).tolist() == [2, 1, 1]
    metrics = ranking_metrics([1, 2, 4, 20])
    assert metrics["MR"] == pytest.approx(6.75)
    assert metrics["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 20) / 4)
    assert (metrics["Hits@1"], metrics["Hits@3"], metrics["Hits@10"]) == (0.25, 0.5, 0.75)


def test_contrastive_logits_mask_copies_of_the_answer_and_a_head_that_is_the_answer():
    entities = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [0, 1], [1, 1], [1, -1]]), dim=-1)
    queries = entities[[0, 1, 2]]
    answers, heads = torch.tensor([0, 1, 1]), torch.tensor([2, 3, 1])
    logits = contrastive_logits(queries, entities, answers, heads, temperature=0.5)
    assert logits.shape == (3, 4), "three in-batch columns and one self-negative column"
    assert torch.isinf(logits[1, 2]) and torch.isinf(logits[2, 1]), "another copy of the answer is no negative"
    assert torch.isfinite(logits.diagonal()).all()
    assert torch.isinf(logits[2, 3]), "a head that is the answer (a self-loop) is no negative"
    assert logits[0, 3].item() == pytest.approx((queries[0] @ entities[2]).item() / 0.5)
    assert torch.equal(contrastive_logits(queries, entities, answers, None, 0.5), logits[:, :3])


def test_loader_queries_and_filters_on_the_toy_graph(tmp_path):
    kg = load_wn18rr(write_toy_graph(tmp_path / "toy"))
    assert set(kg.splits) == {"train", "valid", "test"} and kg.splits["test"]
    queries = make_queries(kg, kg.splits["test"])
    assert len(queries.answers) == 2 * len(kg.splits["test"]), "one query per direction"
    head, relation, tail = kg.splits["test"][0]
    assert kg.entities[queries.answers[0]] == tail and kg.entities[queries.answers[1]] == head
    assert kg.entities[queries.heads[0]] == head and kg.entities[queries.heads[1]] == tail
    assert queries.relation_texts[1].startswith("inverse of ")
    known = known_answers(kg)
    assert kg.entities.index(tail) in known[(head, relation)]
    assert kg.entities.index(head) in known[(tail, f"inverse {relation}")]


def test_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="entity2text.txt"):
        load_wn18rr(tmp_path)
    folder = write_toy_graph(tmp_path / "toy")
    (folder / "test.txt").write_text("only\ttwo\n")
    with pytest.raises(ValueError, match=r"test.txt:1: expected 3"):
        load_wn18rr(folder)


def test_tiny_run_trains_and_ranks_every_method(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    kg = load_wn18rr(write_toy_graph(tmp_path / "toy"))
    cfg = preset(KGC_PRESETS, "smoke", train_triples=32, eval_triples=8)
    table, details = run_kgc(cfg, kg, log=None)
    ranks = details["ranks"]
    assert table["method"].tolist() == ["bi-encoder", "router"]
    for name, method_ranks in ranks.items():
        assert len(method_ranks) == 16 and method_ranks.min() >= 1 and method_ranks.max() <= len(kg.entities)
    assert table["MRR"].between(1 / len(kg.entities), 1).all()
    assert table.loc[table.method == "router", "params_added"].item() == 384 * 384 + 384
    assert not math.isnan(table["MRR untrained"].iloc[0])
    assert len(list((tmp_path / "cache" / "kgc").glob("entities-*.pt"))) == 1, "entity embeddings are cached"
    again, _ = run_kgc(cfg, kg, log=None)
    assert again["MRR"].tolist() == table["MRR"].tolist(), "a seeded run (cached entities) repeats itself"


def test_wn18rr_folder_loads(shared_data):
    kg = load_wn18rr(shared_data / "wn18rr")
    assert {k: len(v) for k, v in kg.splits.items()} == {"train": 86835, "valid": 3034, "test": 3134}
    assert len(kg.entities) == 40943 and len(kg.relation_text) == 11
    assert np.mean([len(kg.entity_text[e]) > 0 for e in kg.entities]) == 1.0

"""helpers.kgc: SimKGC's negatives and own-entity handling on a hand-made graph, filtered ranking with
ties, both towers trained, entity embeddings recomputed when the weights change, the kgc CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers.cli import main as cli_main
from helpers.config import ENV_CACHE_DIR, preset
from helpers.studies.knowledge_graph_completion import KGC_PRESETS, run_kgc
from helpers.kgc import (TwoTowerKGC, contrastive_logits, encode_entities, filtered_ranks, known_answers,
                         load_kgc_model, load_wn18rr, make_queries, negative_masks, rank_embedded, ranking_metrics,
                         ranking_report, train_two_tower, weights_hash, write_toy_graph)

# dog and cat are the heads; "dog hypernym ?" has two answers; "cat similar_to cat" is a self-loop
HAND_MADE = {"entity2text.txt": "e0\tdog\ne1\tcanine\ne2\tanimal\ne3\tcat\ne4\tfeline\n",
             "relation2text.txt": "_hypernym\thypernym\n_similar_to\tsimilar to\n",
             "train.txt": "e0\t_hypernym\te1\ne0\t_hypernym\te2\ne3\t_hypernym\te4\ne3\t_similar_to\te3\n",
             "valid.txt": "e4\t_hypernym\te2\n", "test.txt": "e1\t_hypernym\te2\n"}


@pytest.fixture
def hand_made(tmp_path):
    folder = tmp_path / "hand_made"
    folder.mkdir()
    for name, text in HAND_MADE.items():
        (folder / name).write_text(text)
    return load_wn18rr(folder)


def test_queries_cover_both_directions_with_inverse_relation_text(hand_made):
    queries = make_queries(hand_made, hand_made.splits["train"][:1])
    assert queries.head_ids == ["e0", "e1"] and queries.directions == ["tail", "head"]
    assert queries.relation_texts == ["hypernym", "inverse of hypernym"]
    assert queries.answers.tolist() == [1, 0] and queries.heads.tolist() == [0, 1]


def test_negative_masks_spare_known_answers_and_a_self_loop_own_entity(hand_made):
    queries = make_queries(hand_made, hand_made.splits["train"])  # rows 0, 2, 4, 6: tail queries
    known = known_answers(hand_made, ("train",))
    rows = [0, 2, 4, 6]  # (dog, hypernym) -> canine; (dog, hypernym) -> animal; (cat, hypernym); (cat, similar, cat)
    in_batch = negative_masks(queries, rows, queries.answers[rows], known)
    assert in_batch[0].tolist() == [False, False, True, True], "animal is dog's other hypernym: no negative of row 0"
    assert in_batch[1].tolist() == [False, False, True, True]
    assert in_batch[3].tolist() == [True, True, True, False]
    own = negative_masks(queries, rows, queries.heads[rows], known).diagonal()
    assert own.tolist() == [True, True, True, False], "cat is an answer of (cat, similar to): not a self-negative"


def test_contrastive_logits_blocks_margin_and_masks():
    query = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    answers = F.normalize(torch.tensor([[1.0, 1.0], [0.0, 1.0]]), dim=-1)
    pre = F.normalize(torch.tensor([[1.0, 0.0]]), dim=-1)
    own = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    inv_t = torch.tensor(10.0)
    logits = contrastive_logits(query, answers, inv_t, torch.tensor([[True, False], [True, True]]), margin=0.1,
                                pre_batch=pre, pre_batch_mask=torch.tensor([[True], [False]]), pre_batch_weight=0.5,
                                own=own, own_mask=torch.tensor([True, False]))
    assert logits.shape == (2, 4), "two in-batch columns, one pre-batch column, one self-negative column"
    assert logits[0, 0].item() == pytest.approx((2 ** -0.5 - 0.1) * 10), "margin comes off the right answer only"
    assert logits[1, 0].item() == pytest.approx(2 ** -0.5 * 10)
    assert logits[0, 1].item() == -math.inf, "a masked in-batch column"
    assert logits[1, 1].item() == pytest.approx((1 - 0.1) * 10), "the diagonal stays even if a mask says False"
    assert logits[0, 2].item() == pytest.approx(1.0 * 10 * 0.5) and logits[1, 2].item() == -math.inf
    assert logits[0, 3].item() == pytest.approx(10.0) and logits[1, 3].item() == -math.inf


def test_filtered_ranks_with_ties_and_filters():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1],    # answer 2: entities 0 and 1 score higher -> rank 3
                           [0.1, 0.2, 0.3, 0.4],    # answer 3: best -> rank 1
                           [0.5, 0.5, 0.5, 0.0]])   # answer 1 tied with 0 and 2: ranks 1-3 -> mean 2
    answers = [2, 3, 1]
    assert filtered_ranks(scores, answers, [set(), set(), set()]).tolist() == [3, 1, 2]
    # filters remove other known answers (never the answer itself); a filtered entity no longer ties
    assert filtered_ranks(scores, answers, [{0, 2}, {3}, {0}]).tolist() == [2, 1, 1.5]
    constant = torch.zeros(2, 5)
    assert filtered_ranks(constant, [0, 4], [set(), set()]).tolist() == [3, 3], \
        "a model that scores every entity alike must get the middle rank, not rank 1"
    metrics = ranking_metrics([1, 2, 4, 20])
    assert metrics["mr"] == pytest.approx(6.75) and metrics["n"] == 4
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 20) / 4)
    assert (metrics["hits_at_1"], metrics["hits_at_3"], metrics["hits_at_10"]) == (0.25, 0.5, 0.75)


def test_rank_embedded_keeps_the_own_entity_and_reports_it(hand_made):
    queries = make_queries(hand_made, [("e0", "_hypernym", "e1"), ("e3", "_similar_to", "e3")])
    entities = torch.eye(5)
    # rows: (dog, hypernym, ?) -> canine, (canine, inverse hypernym, ?) -> dog, then the self-loop both ways
    query = F.normalize(torch.stack([entities[0] + 0.5 * entities[1], entities[0],
                                     entities[3] + 0.1 * entities[4], entities[3]]), dim=-1)
    ranks, own_top1 = rank_embedded(query, queries, entities, known_answers(hand_made))
    # (dog, hypernym, ?): dog itself scores 1.0 > canine 0.5: SimKGC keeps it, so canine ranks 2; animal
    # (another known answer) would tie with the rest but is filtered
    assert ranks[0] == 2 and own_top1[0]
    assert ranks[1] == 1 and not own_top1[1], "(canine, inverse hypernym, ?) -> dog"
    assert ranks[2] == 1 and own_top1[2], "a self-loop's answer is the own entity: it ranks first, rightly"
    report = ranking_report(ranks, queries)
    assert report["tail"]["n"] == 2 and report["head"]["n"] == 2
    assert report["tail"]["mrr"] == pytest.approx((1 / 2 + 1) / 2)
    assert set(report["per_relation"]) == {"_hypernym", "_similar_to"}
    assert report["per_relation"]["_hypernym"]["head"]["mrr"] == 1.0


def test_both_towers_train_and_entity_embeddings_follow_the_weights(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    kg = load_wn18rr(write_toy_graph(tmp_path / "toy"))
    cfg = preset(KGC_PRESETS, "smoke", batch_size=8, pre_batch=1, lr=1e-4)
    model = TwoTowerKGC.build("bi-encoder", cfg.encoder, max_length=16, entity_max_length=12)
    before = encode_entities(model, kg)
    assert torch.equal(encode_entities(model, kg), before), "unchanged weights reuse the cache"
    query_hash, entity_hash = weights_hash(model.query), weights_hash(model.entity)
    assert query_hash == entity_hash, "both towers start from the same encoder"
    queries = make_queries(kg, kg.splits["train"][:8])
    train_two_tower(model, queries, kg, known_answers(kg, ("train",)), cfg)
    assert weights_hash(model.query) != query_hash, "the query tower must train"
    assert weights_hash(model.entity) != entity_hash, "the entity tower must train (SimKGC)"
    assert weights_hash(model.query) != weights_hash(model.entity), "separate towers stay separate"
    after = encode_entities(model, kg)
    assert not torch.allclose(after, before), "a trained entity tower must not reuse the old embeddings"
    assert len(list((tmp_path / "cache" / "kgc").glob("entities-*.pt"))) == 2
    shared = TwoTowerKGC.build("router", cfg.encoder, max_length=16, entity_max_length=12, shared_towers=True)
    assert shared.entity is None and shared.entity_tower is shared.query


def test_tiny_run_trains_and_ranks_every_method(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    kg = load_wn18rr(write_toy_graph(tmp_path / "toy"))
    cfg = preset(KGC_PRESETS, "smoke", train_triples=32, eval_triples=8)
    table, details = run_kgc(cfg, kg, log=None)
    assert table["method"].tolist() == ["bi-encoder", "router"]
    for name, ranks in details["ranks"].items():
        assert len(ranks) == 16 and ranks.min() >= 1 and ranks.max() <= len(kg.entities)
    assert table["mrr"].between(1 / len(kg.entities), 1).all()
    assert table.loc[table.method == "router", "params_added"].item() == 384 * 384 + 384
    assert not math.isnan(table["mrr_untrained"].iloc[0])
    again, _ = run_kgc(cfg, kg, log=None)
    assert again["mrr"].tolist() == table["mrr"].tolist(), "a seeded run repeats itself"


def test_loader_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="entity2text.txt"):
        load_wn18rr(tmp_path)
    folder = write_toy_graph(tmp_path / "toy")
    (folder / "test.txt").write_text("only\ttwo\n")
    with pytest.raises(ValueError, match=r"test.txt:1: expected 3"):
        load_wn18rr(folder)


def _cli_train_evaluate(graph, tmp_path, method="router", extra=()):
    model_dir, metrics = tmp_path / "model", tmp_path / "metrics.json"
    assert cli_main(["kgc", "train", "--graph", str(graph), "--method", method, "--encoder", "all-minilm-l6-v2",
                     "--train-triples", "24", "--epochs", "1", "--out", str(model_dir), "--profile", "smoke",
                     *extra]) == 0
    assert (model_dir / "kgc.json").is_file() and (model_dir / "manifest.json").is_file()
    assert cli_main(["kgc", "evaluate", "--model", str(model_dir), "--graph", str(graph), "--split", "test",
                     "--out", str(metrics), "--eval-triples", "6"]) == 0
    return model_dir, json.loads(metrics.read_text())


def test_cli_train_then_evaluate_on_the_toy_graph(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    graph = write_toy_graph(tmp_path / "toy")
    model_dir, report = _cli_train_evaluate(graph, tmp_path, extra=("--shared-towers", "--pre-batch", "1"))
    for key in ("mrr", "hits_at_1", "hits_at_3", "hits_at_10", "mr"):
        assert key in report and key in report["head"] and key in report["tail"], key
    assert report["n"] == 12 and report["head"]["n"] == report["tail"]["n"] == 6
    assert 0 < report["mrr"] <= 1 and 0 <= report["own_entity_top1"] <= 1
    assert report["per_relation"], "per-relation metrics"
    loaded = load_kgc_model(model_dir)
    assert loaded.build_options["shared_towers"] is True and loaded.entity is None


def test_cli_refuses_bad_input_in_one_line_before_loading_a_model(tmp_path, capsys, monkeypatch):
    import helpers.kgc.model as kgc_model

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built before the input was checked")

    monkeypatch.setattr(kgc_model.TwoTowerKGC, "build", no_model)
    (tmp_path / "file").write_text("x")
    cases = [(["train", "--graph", str(tmp_path / "absent"), "--method", "router", "--out", str(tmp_path / "m")],
              "no such folder"),
             (["train", "--graph", str(tmp_path), "--method", "router", "--out", str(tmp_path / "m")], "lacks"),
             (["train", "--graph", "toy", "--method", "router", "--out", str(tmp_path / "file")], "is a file"),
             (["evaluate", "--model", str(tmp_path), "--graph", "toy", "--out", str(tmp_path / "m.json")],
              "lacks kgc.json")]
    for argv, message in cases:
        assert cli_main(["kgc", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, err
    with pytest.raises(SystemExit):
        cli_main(["kgc", "train", "--graph", "toy", "--method", "transe", "--out", str(tmp_path / "m")])
    assert "invalid choice" in capsys.readouterr().err


def test_wn18rr_folder_loads(shared_data):
    kg = load_wn18rr(shared_data / "wn18rr")
    assert {k: len(v) for k, v in kg.splits.items()} == {"train": 86835, "valid": 3034, "test": 3134}
    assert len(kg.entities) == 40943 and len(kg.relation_text) == 11
    assert np.mean([len(kg.entity_text[e]) > 0 for e in kg.entities]) == 1.0


def test_cli_on_a_wn18rr_subgraph(shared_data, tmp_path, monkeypatch):
    """The CLI on real WN18RR text and triples, cut to the triples among the entities of 100 training
    and 50 test triples (ranking all 40,943 entities would take minutes)."""
    monkeypatch.setenv(ENV_CACHE_DIR, str(tmp_path / "cache"))
    kg = load_wn18rr(shared_data / "wn18rr")
    keep = {e for h, _, t in kg.splits["train"][:100] + kg.splits["test"][:50] for e in (h, t)}
    sub = tmp_path / "wn18rr_sub"
    sub.mkdir()
    for split, triples in kg.splits.items():
        inside = [t for t in triples if t[0] in keep and t[2] in keep]
        (sub / f"{split}.txt").write_text("".join("\t".join(t) + "\n" for t in inside))
    (sub / "entity2text.txt").write_text("".join(f"{e}\t{kg.entity_text[e]}\n" for e in sorted(keep)))
    (sub / "relation2text.txt").write_text((shared_data / "wn18rr" / "relation2text.txt").read_text())
    assert len(load_wn18rr(sub).splits["train"]) >= 24, "the subgraph needs training triples"
    _, report = _cli_train_evaluate(sub, tmp_path, method="bi-encoder")
    assert report["n"] == 12 and 1 <= report["mr"] <= len(keep)

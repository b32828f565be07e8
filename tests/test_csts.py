"""helpers.csts: loaders and decryption, the synthetic generator, every method, the router, the CLI."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.cli import main as cli_main
from helpers.config import preset
from helpers.csts.data import (COLUMNS, WrongPasswordError, decrypt_openssl, encrypt_openssl, load_official,
                               read_csts_csv, split_rows)
from helpers.csts.methods import METHOD_NAMES, build_method, mean_pool
from helpers.csts.router import RoutingState, routing
from helpers.csts.synthetic import ATTRIBUTE_GROUPS, COUNTS, attribute_label, synthetic_csts
from helpers.csts.training import (CSTS_PRESETS, correlations, load_model, pair_margin_loss, score_rows,
                                   train_method)
from helpers.models import load_encoder

SMOKE = preset(CSTS_PRESETS, "smoke", max_length=24)


# --- data -------------------------------------------------------------------------------------

def test_encrypt_decrypt_round_trip_and_wrong_password():
    plain = b"sentence1,sentence2,condition,label\n" * 7 + b"tail without newline"
    encrypted = encrypt_openssl(plain, "s3cret")
    assert encrypted.startswith(b"U2FsdGVkX1"), "openssl -a output starts with base64('Salted__')"
    assert decrypt_openssl(encrypted, "s3cret") == plain
    with pytest.raises(WrongPasswordError, match="Wrong password"):
        decrypt_openssl(encrypted, "not the password")
    with pytest.raises(ValueError, match="Salted__"):
        decrypt_openssl(b"aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=", "s3cret")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl binary to compare with")
def test_decryption_matches_the_openssl_command(tmp_path):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(bytes(range(256)) * 3)
    encrypted = tmp_path / "plain.bin.enc"
    subprocess.run(["openssl", "enc", "-e", "-aes-256-cbc", "-a", "-pbkdf2", "-in", str(plain), "-out",
                    str(encrypted), "-pass", "pass:pw"], check=True)
    assert decrypt_openssl(encrypted.read_bytes(), "pw") == plain.read_bytes()
    ours = tmp_path / "ours.enc"
    ours.write_bytes(encrypt_openssl(plain.read_bytes(), "pw"))
    back = subprocess.run(["openssl", "enc", "-d", "-aes-256-cbc", "-a", "-pbkdf2", "-in", str(ours),
                           "-pass", "pass:pw"], check=True, capture_output=True).stdout
    assert back == plain.read_bytes()


def test_official_archive_loader(tmp_path):
    rows = synthetic_csts(5, seed=3)[list(COLUMNS)]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for split in ("train", "validation"):
            data = rows.to_csv(index=False).encode()
            info = tarfile.TarInfo(f"csts/csts_{split}.csv")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = tmp_path / "csts.tar.enc"
    archive.write_bytes(encrypt_openssl(buffer.getvalue(), "pw"))
    loaded = load_official(archive, "pw", split="validation")
    pd.testing.assert_frame_equal(loaded[list(COLUMNS)], rows, check_dtype=False)
    with pytest.raises(WrongPasswordError):
        load_official(archive, "wrong", split="train")
    with pytest.raises(ValueError, match="csts_test.csv"):
        load_official(archive, "pw", split="test")


def test_csv_loader_names_missing_columns_and_bad_labels(tmp_path):
    path = tmp_path / "rows.csv"
    pd.DataFrame({"s1": ["a"], "sentence2": ["b"], "condition": ["c"], "label": [3]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"\['sentence1'\].*rename"):
        read_csts_csv(path)
    pd.DataFrame({"sentence1": ["a"], "sentence2": ["b"], "condition": ["c"], "label": [7]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="not numbers in"):
        read_csts_csv(path)
    assert len(read_csts_csv(path, require_label=False)) == 1, "scoring needs no valid label"


def test_split_keeps_sentence_pairs_together_and_is_seeded():
    rows = synthetic_csts(100, seed=0)
    train, test = split_rows(rows, 0.2, seed=1)
    pairs = lambda f: set(zip(f.sentence1, f.sentence2))  # noqa: E731
    assert not pairs(train) & pairs(test), "a sentence pair must not straddle the split"
    assert len(train) + len(test) == len(rows) and abs(len(test) - 40) <= 4
    again, _ = split_rows(rows, 0.2, seed=1)
    pd.testing.assert_frame_equal(train, again)


def test_real_data_sources_in_order_and_named(tmp_path):
    from helpers.csts.data import load_real_csts

    csv = tmp_path / "rows.csv"
    synthetic_csts(3, seed=1)[list(COLUMNS)].to_csv(csv, index=False)
    rows, source = load_real_csts(csv=csv, shared=tmp_path / "absent.csv", hub=False)
    assert len(rows) == 6 and source == "C-STS CSV rows.csv"
    rows, source = load_real_csts(shared=csv, hub=False)
    assert len(rows) == 6 and source == "re-annotated C-STS file rows.csv"
    rows, source = load_real_csts(shared=tmp_path / "absent.csv", hub=False)
    assert rows is None and source.startswith("synthetic only"), "the fallback must say it is synthetic"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_real_csts(csv=tmp_path / "absent.csv")
    with pytest.raises(ValueError, match="needs its password"):
        load_real_csts(archive=csv)


def test_reannotated_file_loads(shared_data):
    rows = read_csts_csv(shared_data / "csts_reannotated" / "csts_train_reannotated.csv")
    assert len(rows) == 11342 and rows["label"].between(1, 5).all()
    train, test = split_rows(rows, 0.2, seed=0)
    assert abs(len(test) / len(rows) - 0.2) < 0.02


# --- synthetic generator ----------------------------------------------------------------------

def _value_in(sentence: str, attribute: str) -> str:
    if attribute == "count":
        return sentence.split()[0]
    values = [v for group in ATTRIBUTE_GROUPS[attribute] for v in group]
    found = [v for v in values if re.search(rf"(^| ){re.escape(v)}( |$)", sentence)]
    assert len(found) == 1, f"{attribute}: expected one value in {sentence!r}, found {found}"
    return found[0]


def test_synthetic_labels_follow_the_conditioned_attribute():
    assert attribute_label("colour", "red", "red") == 5
    assert attribute_label("colour", "red", "crimson") == 3
    assert attribute_label("colour", "red", "navy") == 1
    assert attribute_label("count", COUNTS[0], COUNTS[2]) == 3
    assert attribute_label("count", COUNTS[0], COUNTS[5]) == 1
    rows = synthetic_csts(200, seed=5)
    for row in rows.itertuples():
        a, b = _value_in(row.sentence1, row.attribute), _value_in(row.sentence2, row.attribute)
        assert row.label == attribute_label(row.attribute, a, b), row
    per_pair = rows.groupby(["sentence1", "sentence2"]).attribute.nunique()
    assert (per_pair == 2).all(), "every pair comes with two different conditions"
    assert set(rows.label) == {1, 2, 3, 4, 5}
    pd.testing.assert_frame_equal(rows, synthetic_csts(200, seed=5))


# --- methods ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", METHOD_NAMES)
def test_each_method_forward_and_one_training_step(name):
    rows = synthetic_csts(4, seed=1)
    model = build_method(name, max_length=24)
    scores = model(rows.sentence1.tolist(), rows.sentence2.tolist(), rows.condition.tolist())
    assert scores.shape == (len(rows),) and torch.isfinite(scores).all()
    assert scores.min() >= -1 - 1e-5 and scores.max() <= 1 + 1e-5
    torch.nn.functional.mse_loss(scores, torch.tensor((rows.label.to_numpy() - 1) / 4, dtype=torch.float32)).backward()
    for part, params in (("encoder", model.backbone.parameters()), ("new layers", model.new_parameters())):
        grads = [p.grad for p in params if p.grad is not None]
        assert all(torch.isfinite(g).all() for g in grads)
        if part == "encoder" or model.new_parameters():
            assert any(g.abs().sum() > 0 for g in grads), f"the loss must reach the {part}"
    model.zero_grad()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    result = train_method(model, rows, preset(CSTS_PRESETS, "smoke", batch_size=len(rows), epochs=1))
    assert len(result.losses) == 1 and np.isfinite(result.losses[0])
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any("backbone" in k for k in changed), "one step must update the encoder"
    if model.new_parameters():
        assert any("backbone" not in k for k in changed), "one step must update the method's new layers"
    if model.embeds:
        z = model.embed(["a red car", "a red car"], ["the colour", "the number"])
        same_under_any = torch.allclose(z[0], z[1])
        assert same_under_any is False, "the conditioned embedding must depend on the condition"


def test_router_adds_only_its_projection_and_reduces_to_the_plain_encoder():
    plain = load_encoder(device="cpu")[0].auto_model.eval()
    router = build_method("router").eval()
    hidden = router.hidden_size
    assert router.added_parameters() == hidden * hidden + hidden, "only the output projection is new"
    assert sum(p.numel() for p in router.backbone.parameters()) == sum(p.numel() for p in plain.parameters())
    sentences = ["three red dogs are running in the park", "a cat sleeps"]
    batch = router.tokenize(sentences)
    with torch.no_grad():
        reference = mean_pool(plain(**batch).last_hidden_state, batch["attention_mask"])
        off = router.pool(sentences)  # routing off: the wrappers call the original attention
        assert torch.equal(off, reference)
        assert torch.equal(router.projection(off), off), "the projection starts at the identity"
        nothing_added = RoutingState(condition_states=None, reweight=False)
        with routing(router.wrappers, nothing_added):
            own = mean_pool(router.backbone(**batch).last_hidden_state, batch["attention_mask"])
        torch.testing.assert_close(own, reference, atol=1e-5, rtol=1e-5)
        routed = router.embed(sentences, ["the colour", "the colour"])
        assert not torch.allclose(routed, reference, atol=1e-3), "routing on must change the embedding"
    tokens, weights = router.token_weights(sentences[0], "the colour")
    assert len(tokens) == len(weights) and tokens[0] == "[CLS]"
    assert all(1.0 <= w <= 2.0 for w in weights), "weights are 1 + an attention probability"
    assert all(w.state is None for w in router.wrappers), "routing must switch off after the pass"


def test_router_refuses_an_encoder_it_does_not_know():
    from helpers.csts.router import install_router

    with pytest.raises(TypeError, match="does not know the attention of Linear"):
        install_router(torch.nn.Linear(2, 2))


_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=100)
TINY_FAMILIES = {  # tiny randomly initialised encoders of each family the router supports
    "bert": lambda t: t.BertConfig(**_TINY),
    "roberta": lambda t: t.RobertaConfig(**_TINY, pad_token_id=1, max_position_embeddings=40),
    "distilbert": lambda t: t.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=100),
    "mpnet": lambda t: t.MPNetConfig(**_TINY),
    "deberta-v2": lambda t: t.DebertaV2Config(**_TINY, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                              position_buckets=8, max_relative_positions=16,
                                              position_biased_input=False, share_att_key=True,
                                              norm_rel_ebd="layer_norm"),
}


@pytest.mark.parametrize("attention", [None, "eager"])  # None: the family's default (sdpa where it has one)
@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_router_on_each_encoder_family_reduces_to_the_plain_encoder(family, attention):
    import copy

    import transformers

    from helpers.csts.router import install_router

    plain = transformers.AutoModel.from_config(TINY_FAMILIES[family](transformers), attn_implementation=attention)
    plain.eval()
    routed = copy.deepcopy(plain)
    wrappers = install_router(routed, reweight_layers=1)
    assert sum(p.numel() for p in routed.parameters()) == sum(p.numel() for p in plain.parameters())
    ids = torch.randint(5, 100, (3, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:], mask[2, 3:] = 0, 0  # padded rows: the layer's own mask must be honoured
    run = lambda model, i=ids: model(input_ids=i, attention_mask=mask).last_hidden_state  # noqa: E731
    with torch.no_grad():
        reference = run(plain)
        assert torch.equal(run(routed), reference), "routing off must call the original attention unchanged"
        with routing(wrappers, RoutingState(condition_states=None, reweight=False)):
            own = run(routed)
            other_padding = ids.clone()
            other_padding[mask == 0] = 7
            padded_changed = run(routed, other_padding)
        torch.testing.assert_close(own, reference, atol=1e-5, rtol=1e-5,
                                   msg=f"{family}: the wrapper's own attention differs from the family's")
        torch.testing.assert_close(padded_changed[mask.bool()], own[mask.bool()], atol=1e-5, rtol=1e-5,
                                   msg="padding tokens leaked into real tokens: the attention mask was ignored")
        condition = tuple(torch.randn(3, 4, 32) for _ in wrappers)
        condition_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
        state = RoutingState(condition, condition_mask)
        with routing(wrappers, state):
            routed_out = run(routed)
        assert not torch.allclose(routed_out, reference, atol=1e-3), "routing on must change the states"
        assert set(state.weights) == {len(wrappers) - 1}, "only the last layer re-weights"
        moved = tuple(c.clone() for c in condition)
        for c in moved:
            c[condition_mask == 0] = 99.0  # padded condition positions must not matter
        with routing(wrappers, RoutingState(moved, condition_mask)):
            torch.testing.assert_close(run(routed), routed_out, atol=1e-5, rtol=1e-5)


def test_hyper_cl_starts_as_the_hadamard_tri_encoder():
    rows = synthetic_csts(3, seed=4)
    args = (rows.sentence1.tolist(), rows.sentence2.tolist(), rows.condition.tolist())
    with torch.no_grad():
        hyper = build_method("hyper-cl", max_length=24).eval()
        tri = build_method("tri-encoder-hadamard", max_length=24).eval()
        assert torch.equal(hyper.embed(args[0], args[2]), tri.embed(args[0], args[2])), \
            "an untrained Hyper-CL must equal the plain tri-encoder (U's generator starts at zero)"
        assert torch.equal(hyper(*args), tri(*args))
    hyper(*args).sum().backward()
    assert hyper.make_u.weight.grad.abs().sum() > 0, "the zero-initialised generator must still get a gradient"


@pytest.mark.parametrize("name", ["bi-encoder", "tri-encoder-concat"])
def test_embedding_methods_round_trip_through_sentence_transformers(name, tmp_path):
    from sentence_transformers import SentenceTransformer

    from helpers.csts.training import save_model

    rows = synthetic_csts(4, seed=6)
    model = build_method(name, max_length=24)
    train_method(model, rows, preset(CSTS_PRESETS, "smoke", batch_size=len(rows)))  # weights differ from the encoder's
    folder = save_model(model, tmp_path / name)
    opened = SentenceTransformer(str(folder), device="cpu")
    sentences, conditions = rows.sentence1.tolist()[:3], rows.condition.tolist()[:3]
    with torch.no_grad():
        torch.testing.assert_close(opened.encode(sentences, convert_to_tensor=True), model.pool(sentences),
                                   atol=1e-5, rtol=1e-4, msg="the folder must hold the trained encoder and its pooling")
        if name == "bi-encoder":
            pairs = opened.encode(list(zip(sentences, conditions)), convert_to_tensor=True)
            torch.testing.assert_close(pairs, model.embed(sentences, conditions), atol=1e-5, rtol=1e-4)
        loaded = load_model(folder)
        torch.testing.assert_close(score_rows(loaded, rows), score_rows(model, rows), atol=1e-5, rtol=1e-4)
    assert loaded.build_options["encoder"] == "all-minilm-l6-v2"
    with pytest.raises(TypeError, match="only bi-encoder"):
        build_method("router", max_length=24).to_sentence_transformer()


def test_speed_counts_every_sentence_and_condition_without_deduplication():
    from helpers.csts.training import evaluate

    rows = synthetic_csts(3, seed=8)  # each sentence pair twice, conditions repeat
    model = build_method("tri-encoder-hadamard", max_length=24)
    encoded = []
    handle = model.backbone.register_forward_pre_hook(lambda module, args, kwargs: encoded.append(
        kwargs["input_ids"].shape[0]), with_kwargs=True)
    report = evaluate(model, rows, batch_size=64)
    handle.remove()
    distinct = len(set(rows.sentence1) | set(rows.sentence2)) + len(set(rows.condition))
    assert encoded[:2] == [2 * len(rows), 2 * len(rows)], "timed pass: every sentence and every condition encoded"
    assert sum(encoded[2:]) < 4 * len(rows) and sum(encoded[2:]) >= distinct, "cached pass: distinct texts once"
    assert report["embeddings_per_s"] > 0 and report["cached_embeddings_per_s"] > 0
    assert model.deduplicate is True, "evaluate must restore de-duplication"


def test_seed_summary_mean_and_t_interval():
    from helpers.csts.training import mean_interval, summarize_seeds

    mean, low, high = mean_interval([40.0, 42.0, 44.0])
    assert mean == pytest.approx(42.0)
    assert high - mean == pytest.approx(4.302653 * 2.0 / 3 ** 0.5, rel=1e-5), "t(0.975, 2 df) * s / sqrt(n)"
    assert mean - low == pytest.approx(high - mean)
    table = pd.DataFrame({"method": ["a"] * 3 + ["b"], "seed": [0, 1, 2, 0], "spearman": [40.0, 42.0, 44.0, 10.0],
                          "pearson": [1.0, 1.0, 1.0, 2.0], "params_added": 0, "train_s_per_epoch": 1.0,
                          "embeddings_per_s": 2.0, "cached_embeddings_per_s": np.nan, "pairs_per_s": 1.0,
                          "cacheable": False})
    summary = summarize_seeds(table).set_index("method")
    assert summary.loc["a", "seeds"] == 3 and summary.loc["a", "spearman_high"] == pytest.approx(high)
    assert np.isnan(summary.loc["b", "spearman_low"]), "one seed has no interval"


# --- training pieces and metrics -----------------------------------------------------------------

def test_correlations_and_pair_margin_loss():
    assert correlations([1, 2, 3, 4], [10, 20, 30, 41])["spearman"] == pytest.approx(100)
    assert correlations([4, 3, 2, 1], [1, 2, 3, 4])["pearson"] == pytest.approx(-100)
    assert np.isnan(correlations([1, 1, 1], [1, 2, 3])["spearman"])
    scores = torch.tensor([0.9, 0.2, 0.5])
    labels = torch.tensor([1.0, 0.0, 0.5])
    # rows 0 and 1 share a pair; row 0 has the higher label and scores 0.7 higher: no loss at margin 0.1
    assert pair_margin_loss(scores, labels, ["p", "p", "q"], 0.1).item() == pytest.approx(0.0)
    # reversed scores: the loss is margin + gap
    assert pair_margin_loss(scores.flip(0)[[1, 2, 0]], labels, ["p", "p", "q"], 0.1).item() > 0
    assert pair_margin_loss(scores, labels, ["p", "q", "r"], 0.1).item() == 0.0


def test_cli_train_then_predict_keeps_row_order(tmp_path):
    rows = synthetic_csts(6, seed=2)
    train_csv, data_csv = tmp_path / "train.csv", tmp_path / "data.csv"
    rows.to_csv(train_csv, index=False)
    shuffled = rows.sample(frac=1.0, random_state=0).drop(columns=["label", "attribute"])
    shuffled.to_csv(data_csv, index=False)
    out = tmp_path / "model"
    assert cli_main(["csts", "train", "--train", str(train_csv), "--method", "tri-encoder-concat", "--encoder",
                     "all-minilm-l6-v2", "--out", str(out), "--profile", "smoke", "--max-length", "24"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "manifest.json").is_file()
    preds_csv = tmp_path / "preds.csv"
    assert cli_main(["csts", "predict", "--model", str(out), "--data", str(data_csv), "--out", str(preds_csv)]) == 0
    preds = pd.read_csv(preds_csv)
    assert preds["row"].tolist() == list(range(len(shuffled)))
    model = load_model(out)
    one_by_one = [score_rows(model, shuffled.iloc[[i]])[0] for i in range(len(shuffled))]
    np.testing.assert_allclose(preds["score"], one_by_one, atol=1e-5, err_msg="predictions out of input order")
    assert preds["label_scale"].between(1, 5).all()


def test_explorer_parts_score_every_method_and_map_router_weights():
    from helpers.csts.explorer import method_scores, router_heatmap

    models = {"bi-encoder": build_method("bi-encoder", max_length=24), "router": build_method("router", max_length=24)}
    table = method_scores(models, "two red dogs", "two blue dogs", "the colour")
    assert table["method"].tolist() == ["bi-encoder", "router"] and table["label scale (1-5)"].between(1, 5).all()
    fig = router_heatmap(models["router"], ["two red dogs", "a cat"], "the colour")
    z = fig.data[0].z
    assert len(z) == 2 and len(z[0]) == 5 and z[1][-1] is None, "rows padded to the longest sentence"
    assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text

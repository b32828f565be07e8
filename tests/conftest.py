"""Shared fixtures: fixed seeds, isolated output folders, the real embedded LM (loaded once), and a
tiny randomly initialised LM for properties that do not depend on what the model says."""

from __future__ import annotations

import random
from pathlib import Path

import helpers  # noqa: F401  first: puts the OpenMP settings in the environment before torch loads
import numpy as np
import pytest
import torch

from helpers.config import ENV_DATA_DIR, ENV_FIGURES_DIR, project_root

SHARED_DATA = project_root().parent / "shared" / "data"


@pytest.fixture(autouse=True)
def fixed_seeds():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def isolated_outputs(tmp_path, monkeypatch):
    """Send data/ and figures/ of every test to a temporary folder, never into the checkout."""
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "data"))
    monkeypatch.setenv(ENV_FIGURES_DIR, str(tmp_path / "figures"))
    return tmp_path


@pytest.fixture(scope="session")
def lm():
    from helpers.models import load_lm

    return load_lm()


@pytest.fixture(scope="session")
def engine(lm):
    from helpers.generation import HFEngine

    model, tokenizer = lm
    return HFEngine(model, tokenizer, batch_size=4)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A folder holding a randomly initialised one-layer Llama with the embedded LM's tokenizer and
    chat template: loads, generates, trains and evaluates through the real code paths in
    milliseconds. Its outputs are noise, so its first trials fail and its samples all differ."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from helpers.models import resolve_lm

    folder = tmp_path_factory.mktemp("tiny-lm")
    tokenizer = AutoTokenizer.from_pretrained(resolve_lm("smollm2-135m-instruct"))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_engine(tiny_lm_dir):
    from helpers.generation import HFEngine
    from helpers.models import load_lm

    model, tokenizer = load_lm(str(tiny_lm_dir), dtype="float32")
    return HFEngine(model, tokenizer, batch_size=8)


class RecordingEngine:
    """A real engine that also records each generate call's prompts and sampling parameters."""

    def __init__(self, engine):
        self.engine, self.tokenizer, self.calls = engine, engine.tokenizer, []

    def generate(self, prompts, params, progress=False):
        self.calls.append((list(prompts), params))
        return self.engine.generate(prompts, params, progress=progress)

    def logprobs(self, prompts, continuations):
        return self.engine.logprobs(prompts, continuations)


@pytest.fixture
def recording_tiny_engine(tiny_engine) -> RecordingEngine:
    return RecordingEngine(tiny_engine)


@pytest.fixture
def no_model_loads(monkeypatch):
    """Any model load fails the test: the errors under test must come first."""
    import helpers.generation as generation
    from helpers import models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(models, "load_lm", refuse)
    monkeypatch.setattr(models, "load_encoder", refuse)
    monkeypatch.setattr(generation, "make_engine", refuse)
    monkeypatch.setattr(generation.HFEngine, "from_name", classmethod(lambda cls, *a, **k: refuse()))

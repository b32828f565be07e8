"""Shared fixtures: fixed seeds, isolated output folders, the real embedded LM (loaded once)."""

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

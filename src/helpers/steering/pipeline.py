"""From a model name to a measured SAE in one folder: the step behind `steer train-sae` and
notebook 06.

    sae, quality, activations = build_sae(model, tokenizer, "smollm2-135m-instruct", layer=18,
                                          n_tokens=100_000, settings=SAETrainingSettings(), out_dir=folder)

The folder gets ``activations.safetensors`` (the corpus activations, reused by a rerun with the same
corpus settings and by the feature inspection), the SAE in sae-lens format, and ``quality.json``.
The last ``heldout_tokens`` (whole chunks) are held out of training and measure the quality.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from ..artifacts import atomic_write_json, cached, package_versions
from .activations import ActivationSet, activation_corpus, collect_activations, pack_tokens
from .sae import QUALITY_FILE, SAETrainingSettings, sae_quality, train_sae

ACTIVATIONS_FILE = "activations.safetensors"
CORPUS_FILE = "corpus.json"


def corpus_activations(model, tokenizer, model_name: str, layer: int, n_tokens: int, heldout_tokens: int,
                       out_dir: Path, seq_len: int = 128, sink_ratio: float = 10.0, seed: int = 0,
                       progress: bool = False) -> ActivationSet:
    """The corpus activations of ``layer`` (training + held out), from ``out_dir`` when a previous
    run collected them with the same model and settings."""
    record = {"model": model_name, "layer": layer, "n_tokens": n_tokens, "heldout_tokens": heldout_tokens, "seq_len": seq_len,
              "sink_ratio": sink_ratio, "seed": seed}
    total = n_tokens + heldout_tokens

    def collect() -> ActivationSet:
        chunks = pack_tokens(tokenizer, activation_corpus(tokenizer, seed=seed), seq_len,
                             max_chunks=math.ceil(total / (seq_len - 1) * 1.05) + 1)
        activations = collect_activations(model, chunks, layer, n_tokens=total, sink_ratio=sink_ratio,
                                          progress=progress)
        if len(activations.activations) < total:
            print(f"The corpus gave {len(activations.activations)} activations, fewer than the {total} asked for.")
        return activations

    def save(path: Path, activations: ActivationSet) -> None:
        activations.save(path)
        atomic_write_json(out_dir / CORPUS_FILE, {"settings": record, "chunks": len(activations.chunks),
                                                  "activations": len(activations.activations),
                                                  "sink_positions": activations.sink_positions})

    return cached(out_dir / ACTIVATIONS_FILE, record, collect, save=save, load=ActivationSet.load)


def split_heldout(activations: ActivationSet, heldout_tokens: int) -> tuple[ActivationSet, ActivationSet]:
    """(train, held-out): the last whole chunks holding about ``heldout_tokens`` tokens are held out."""
    heldout_chunks = max(1, math.ceil(heldout_tokens / (activations.chunks.shape[1] - 1)))
    if heldout_chunks >= len(activations.chunks):
        raise ValueError(f"{heldout_tokens} held-out tokens leave no chunk to train on: ask for more --tokens.")
    return activations.split(heldout_chunks)


def build_sae(model, tokenizer, model_name: str, layer: int, n_tokens: int, settings: SAETrainingSettings,
              out_dir: Path | str, heldout_tokens: int = 20_000, seq_len: int = 128, sink_ratio: float = 10.0,
              progress: bool = False):
    """Collect (or reuse) activations, train (or resume, or reuse) the SAE, measure it; returns
    (sae, quality dict, the activation set). ``quality.json`` is rewritten on every call."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    activations = corpus_activations(model, tokenizer, model_name, layer, n_tokens, heldout_tokens, out_dir,
                                     seq_len, sink_ratio, settings.seed, progress)
    collected = time.perf_counter()
    train, heldout = split_heldout(activations, heldout_tokens)
    sae_reused = (out_dir / "cfg.json").is_file()
    sae = train_sae(train, settings, out_dir, model_name=model_name, progress=progress)
    trained = time.perf_counter()
    quality = {**sae_quality(sae, heldout, model, sink_ratio), "model": model_name, "layer": layer,
               "width": sae.cfg.d_sae, "k": settings.k, "train_activations": len(train.activations),
               "sink_positions_left_out": activations.sink_positions,
               "sink_share": activations.sink_positions / activations.tokens_seen,
               "collect_seconds": round(collected - start, 1), "train_seconds": round(trained - collected, 1),
               "sae_reused": sae_reused,  # True: a finished SAE was loaded, train_seconds is its load time
               "versions": package_versions()}
    atomic_write_json(out_dir / QUALITY_FILE, quality)
    return sae, quality, activations

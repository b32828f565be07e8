"""Sparse autoencoders on the residual stream, through sae-lens: train, resume, load, measure.

A tiny SAE on random activations (the real ones come from ``activations.collect_activations``):

>>> import tempfile, torch
>>> from helpers.steering.activations import ActivationSet
>>> acts = torch.randn(1000, 16, generator=torch.Generator().manual_seed(0))
>>> data = ActivationSet(acts, chunks=torch.zeros(100, 11, dtype=torch.long), chunk=torch.arange(1000) // 10,
...                      position=torch.arange(1000) % 10 + 1, layer=3, sink_positions=100)
>>> train, heldout = data.split(heldout_chunks=20)   # the last 20 chunks, whole
>>> folder = tempfile.TemporaryDirectory()
>>> sae = train_sae(train, SAETrainingSettings(width=32, k=4, epochs=1, batch_size=100), out_dir=folder.name)
>>> sae.cfg.d_in, sae.cfg.d_sae, layer_of(sae)
(16, 32, 3)
>>> quality = sae_quality(sae, heldout)   # with ``model=`` also the LM loss, clean and spliced
>>> sorted(quality), quality["mean_l0"]   # TopK: the mean L0 is k by construction
(['dead_fraction', 'fraction_variance_explained', 'heldout_activations', 'mean_l0'], 4.0)
>>> load_sae(folder.name).cfg.d_sae      # the saved inference SAE, in sae-lens format
32
>>> folder.cleanup()

A published SAE downloads from the hub, so this is shown rather than run::

    sae, layer = load_published_sae("gemma-2b-it-res-jb", "blocks.12.hook_resid_post")  # the paper's

Training uses sae-lens' ``SAETrainer`` and its TopK SAE (``k`` active features per token, so the
mean L0 is ``k`` by construction), fed from activations held in memory (``ActivationSet``) in a
seeded order. Checkpoints (weights, optimizer and trainer state) are written by sae-lens into
``out_dir/checkpoints/.staging`` and renamed to ``out_dir/checkpoints/<samples seen>`` once whole; a
run started again with the same settings resumes from the last one. A checkpoint that fails to load
(a damaged disk, a copy cut short) is renamed ``<name>.corrupt`` and the one before it is used. The finished SAE is saved with
``save_inference_model`` (``cfg.json`` + ``sae_weights.safetensors``), which ``SAE.load_from_disk``
and every sae-lens tool read. Its metadata names the hook the TransformerLens way,
``blocks.{layer}.hook_resid_post``: the output of decoder layer ``layer``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import torch
from sae_lens import SAE, SAETrainer
from sae_lens.config import SAETrainerConfig
from sae_lens.saes.sae import SAEMetadata
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

from ..artifacts import atomic_write_json, same_settings_or_refuse
from ..errors import UserError
from .activations import ActivationSet, sink_mask
from .hooks import hooked, layer_hidden, layer_module, replace_hidden
from .settings import SAETrainingSettings

SETTINGS_FILE = "training_settings.json"
QUALITY_FILE = "quality.json"
_HOOK = re.compile(r"blocks\.(\d+)\.hook_resid_post$")


def hook_name(layer: int) -> str:
    """The TransformerLens name of the output of decoder layer ``layer``, as sae-lens records it."""
    return f"blocks.{layer}.hook_resid_post"


def layer_of(sae: SAE) -> int:
    """The decoder layer an SAE reads, from its hook name (``blocks.L.hook_resid_post``)."""
    name = sae.cfg.metadata.hook_name or ""
    match = _HOOK.match(name)
    if not match:
        raise ValueError(f"SAE hook {name!r} is not a residual-stream output (blocks.L.hook_resid_post); "
                         "steering here adds to the output of a decoder layer.")
    return int(match.group(1))


def _batches(activations: torch.Tensor, batch_size: int, seed: int, skip: int) -> Iterator[torch.Tensor]:
    """Endless seeded epochs of shuffled batches; the first ``skip`` samples are passed over (resume)."""
    generator = torch.Generator().manual_seed(seed)
    seen = 0
    while True:
        order = torch.randperm(len(activations), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            seen += batch_size
            if seen > skip:
                yield activations[order[start:start + batch_size]]


def _checkpoints_newest_first(folder: Path) -> list[Path]:
    found = [p for p in folder.glob("*") if p.is_dir() and p.name.isdigit()]
    return sorted(found, key=lambda p: int(p.name), reverse=True)


def _publish_checkpoint(checkpoint_path: Path | None) -> None:
    """sae-lens' ``save_checkpoint_fn``: the checkpoint it has just written whole into the staging
    folder is renamed into place, so a run killed while writing leaves no half checkpoint."""
    if checkpoint_path is not None:
        checkpoint_path.rename(checkpoint_path.parent.parent / checkpoint_path.name)


def _resume_from_checkpoint(trainer: SAETrainer, folder: Path) -> Path | None:
    """Load the newest checkpoint that loads; set aside (``*.corrupt``) those that do not."""
    for checkpoint in _checkpoints_newest_first(folder):
        try:
            trainer.sae.load_weights_from_checkpoint(checkpoint)
            trainer.load_trainer_state(checkpoint)
            return checkpoint
        except Exception as error:  # torch.load and safetensors raise several types on damaged files
            aside = checkpoint.with_name(checkpoint.name + ".corrupt")
            checkpoint.rename(aside)
            print(f"checkpoint {checkpoint} does not load ({type(error).__name__}); set aside as {aside.name}, "
                  "resuming from the one before.", flush=True)
    return None


def check_settings(out_dir: Path | str, record: dict) -> None:
    """Refuse (UserError) a folder holding an SAE trained with other settings. ``record`` may hold
    only some fields (the command line checks what it knows before loading a model)."""
    same_settings_or_refuse(Path(out_dir) / SETTINGS_FILE, record, partial=True, what="an SAE",
                            fix="use another --out folder, or delete this one to start over.")


def train_sae(train: ActivationSet, settings: SAETrainingSettings, out_dir: Path | str, model_name: str = "",
              progress: bool = False) -> SAE:
    """Train (or resume, or load when finished) a TopK SAE on ``train``; returns the inference SAE."""
    out_dir = Path(out_dir)
    record = {**asdict(settings), "layer": train.layer, "d_in": int(train.activations.shape[1]),
              "train_activations": len(train.activations), "model": model_name}
    check_settings(out_dir, record)
    if (out_dir / "cfg.json").is_file() and (out_dir / SETTINGS_FILE).is_file():
        return load_sae(out_dir)
    if len(train.activations) < settings.batch_size:
        raise UserError(f"{len(train.activations)} training activations are fewer than one batch of "
                        f"{settings.batch_size}: collect more tokens (--tokens) or lower --batch-size.")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / SETTINGS_FILE, record)
    config = TopKTrainingSAEConfig(d_in=record["d_in"], d_sae=settings.width, k=settings.k,
                                   normalize_activations="expected_average_only_in",
                                   metadata=SAEMetadata(model_name=model_name, hook_name=hook_name(train.layer)))
    total = int(settings.epochs * len(train.activations)) // settings.batch_size * settings.batch_size
    if total == 0:
        raise UserError(f"{len(train.activations)} activations x {settings.epochs} epochs is less than one batch "
                        f"of {settings.batch_size}: collect more tokens or lower batch_size.")
    trainer_config = SAETrainerConfig(total_training_samples=total, train_batch_size_samples=settings.batch_size,
                                      lr=settings.lr, lr_end=settings.lr / 10, lr_scheduler_name="cosineannealing",
                                      lr_warm_up_steps=total // settings.batch_size // 20,
                                      dead_feature_window=settings.dead_feature_window,
                                      feature_sampling_window=max(1, total // settings.batch_size),
                                      n_checkpoints=settings.n_checkpoints,
                                      checkpoint_path=str(out_dir / "checkpoints" / ".staging"))

    def fresh_trainer() -> SAETrainer:
        torch.manual_seed(settings.seed)  # the initial weights
        return SAETrainer(trainer_config, TopKTrainingSAE(config), iter(()), save_checkpoint_fn=_publish_checkpoint)

    shutil.rmtree(out_dir / "checkpoints" / ".staging", ignore_errors=True)  # what a killed run was writing
    trainer = fresh_trainer()
    checkpoint = _resume_from_checkpoint(trainer, out_dir / "checkpoints")
    if checkpoint is None:
        trainer = fresh_trainer()  # a checkpoint that failed half-way may have loaded some weights
    skip = 0
    if checkpoint is not None:
        skip = trainer.n_training_samples
        trainer.checkpoint_thresholds = [t for t in trainer.checkpoint_thresholds if t >= skip]
    else:
        # The scale (mean norm -> sqrt(d)) from all training activations, not from the first batches,
        # so that a resumed run reads the data in the same order as an uninterrupted one.
        trainer.activation_scaler.scaling_factor = float(
            record["d_in"] ** 0.5 / train.activations.norm(dim=-1).mean())
    trainer.data_provider = _batches(train.activations, settings.batch_size, settings.seed, skip)
    with _progress_bar(progress):
        trained = trainer.fit()
    _save_atomically(trained, out_dir)
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return load_sae(out_dir)


def _save_atomically(sae, out_dir: Path) -> None:
    """``save_inference_model`` into a side folder, then the weights and, last, ``cfg.json`` (the
    mark of a finished SAE) moved into place: an interruption never leaves a half-written SAE."""
    staging = out_dir / ".saving"
    shutil.rmtree(staging, ignore_errors=True)
    weights, config = sae.save_inference_model(staging)
    for written in (weights, config):
        os.chmod(written, 0o644)  # save_inference_model's temporary files are private; these are results
    weights.replace(out_dir / weights.name)
    config.replace(out_dir / config.name)
    shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _progress_bar(shown: bool) -> Iterator[None]:
    """sae-lens' training progress bar, hidden unless ``shown``."""
    import sae_lens.training.sae_trainer as trainer_module

    original = trainer_module.tqdm
    if not shown:
        trainer_module.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        trainer_module.tqdm = original


def load_sae(folder: Path | str, device: str = "cpu") -> SAE:
    """An SAE saved in sae-lens format (``cfg.json`` + ``sae_weights.safetensors``)."""
    folder = Path(folder)
    if not (folder / "cfg.json").is_file():
        raise FileNotFoundError(f"No SAE in {folder} (no cfg.json): train one with "
                                "`python -m helpers steer train-sae ... --out FOLDER`.")
    return SAE.load_from_disk(folder, device=device)


def load_published_sae(release: str, sae_id: str, device: str = "cpu") -> tuple[SAE, int]:
    """A published SAE by sae-lens release and id (downloads from the Hugging Face hub), and the
    decoder layer it reads; e.g. the paper's Gemma-2B-IT SAE:
    ``load_published_sae("gemma-2b-it-res-jb", "blocks.12.hook_resid_post")``, or Gemma Scope:
    ``load_published_sae("gemma-scope-2b-pt-res-canonical", "layer_12/width_16k/canonical")``."""
    try:
        sae = SAE.from_pretrained(release, sae_id, device=device)
    except (OSError, ValueError) as error:
        raise RuntimeError(f"Could not load SAE {release}/{sae_id}: {error}. Published SAEs download from the "
                           "Hugging Face hub (network needed); the names are in sae-lens' pretrained_saes.yaml."
                           ) from error
    return sae, layer_of(sae)


@torch.no_grad()
def encode(sae: SAE, activations: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Feature activations of ``activations`` (n, d_in) -> (n, d_sae), in batches."""
    return torch.cat([sae.encode(activations[i:i + batch_size].to(sae.W_dec.dtype))
                      for i in range(0, len(activations), batch_size)])


@torch.no_grad()
def reconstruction_stats(sae: SAE, activations: torch.Tensor, batch_size: int = 4096) -> dict[str, float]:
    """Fraction of variance explained (1 - SSE / total squared deviation from the mean), mean L0
    and the share of features that never fire on ``activations``."""
    mean = activations.mean(0)
    sse = sst = l0 = 0.0
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    for i in range(0, len(activations), batch_size):
        x = activations[i:i + batch_size].to(sae.W_dec.dtype)
        features = sae.encode(x)
        sse += float(((sae.decode(features) - x) ** 2).sum())
        sst += float(((x - mean) ** 2).sum())
        active = features != 0
        l0 += float(active.sum())
        fired |= active.any(0)
    return {"fraction_variance_explained": 1 - sse / sst, "mean_l0": l0 / len(activations),
            "dead_fraction": 1 - float(fired.float().mean())}


def splice_sae(module, args, output, sae: SAE, sink_ratio: float):
    """Forward hook body: the layer's output replaced by the SAE's reconstruction at non-sink
    positions (sink positions, which the SAE never saw, pass through)."""
    hidden = layer_hidden(output)
    keep = ~sink_mask(hidden, sink_ratio)
    rebuilt = sae.decode(sae.encode(hidden.to(sae.W_dec.dtype))).to(hidden.dtype)
    return replace_hidden(output, torch.where(keep[..., None], rebuilt, hidden))


@torch.no_grad()
def lm_loss(model, chunks: torch.Tensor, batch_size: int = 16, sae: SAE | None = None, layer: int | None = None,
            sink_ratio: float = 10.0) -> float:
    """Mean next-token cross-entropy of ``model`` on the token rows; with ``sae``, the SAE's
    reconstruction replaces the output of ``layer`` (its own layer by default) at non-sink positions."""
    device = next(model.parameters()).device
    hook = None
    if sae is not None:
        layer = layer_of(sae) if layer is None else layer
        hook = functools.partial(splice_sae, sae=sae, sink_ratio=sink_ratio)
    total, count = 0.0, 0
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start:start + batch_size].to(device)
        if hook is None:
            logits = model(input_ids=batch).logits
        else:
            with hooked(layer_module(model, layer), hook):
                logits = model(input_ids=batch).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), batch[:, 1:].flatten(),
                                                 reduction="sum")
        total += float(loss)
        count += batch[:, 1:].numel()
    return total / count


def sae_quality(sae: SAE, heldout: ActivationSet, model=None, sink_ratio: float = 10.0) -> dict[str, float]:
    """The numbers of ``quality.json``: reconstruction on held-out activations, and (with the
    model) the LM's loss on the held-out chunks without and with the SAE spliced in."""
    quality = {**reconstruction_stats(sae, heldout.activations), "heldout_activations": len(heldout.activations)}
    if model is not None:
        quality["lm_loss_clean"] = lm_loss(model, heldout.chunks)
        quality["lm_loss_spliced"] = lm_loss(model, heldout.chunks, sae=sae, layer=heldout.layer,
                                             sink_ratio=sink_ratio)
    return quality

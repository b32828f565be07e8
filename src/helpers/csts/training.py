"""Training, scoring, evaluation and saving of the C-STS methods of ``helpers.csts.methods``.

    cfg = preset(CSTS_PRESETS, "default")
    model = build_method("router", cfg.encoder)
    result = train_method(model, train_rows, cfg)          # seconds per epoch, losses
    report = evaluate(model, test_rows)                     # Spearman / Pearson x100, throughput
    save_model(model, "out/router"); model = load_model("out/router")
    table, _ = run_methods(cfg, train_rows, test_rows)      # one row per method and seed (cfg.seeds)
    summary = summarize_seeds(table)                        # mean and 95 % interval per method

Bi- and tri-encoders (and Hyper-CL) are saved as sentence-transformers folders that
``SentenceTransformer(folder)`` opens (their new layers, if any, in ``method_layers.safetensors``);
the cross-encoder and the router, whose backbones run differently, as ``model.safetensors`` of the
whole module.

Loss: mean squared error between the model's score and the label rescaled to [0, 1]
((label - 1) / 4), plus, with ``contrastive_weight > 0``, a margin term between rows of the same
sentence pair under different conditions: the row with the higher label must score at least
``margin`` higher. Batches keep the rows of one sentence pair together so that the term sees them.
The backbone trains at ``lr``, the method's new layers at ``head_lr``; linear warm-up and decay.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats

from ..artifacts import atomic_path, atomic_write_json, write_manifest
from ..models import DEFAULT_ENCODER
from .methods import METHOD_NAMES, SENTENCE_TRANSFORMER_METHODS, ConditionedScorer, build_method


@dataclass(frozen=True)
class CSTSConfig:
    """Knobs of notebook 07, the benchmark and ``python -m helpers csts train``."""

    encoder: str = DEFAULT_ENCODER
    methods: tuple[str, ...] = METHOD_NAMES
    synthetic_train_pairs: int = 600  # sentence pairs (two rows each)
    synthetic_test_pairs: int = 200
    real_data: str | None = None  # a C-STS CSV (re-annotated or other); None: the shared file, then the hub
    real_hub: bool = True  # try the hub's re-annotated C-STS when no file is given or found
    real_train_rows: int | None = None  # rows of the 80 % part used for training (None: all)
    real_test_rows: int | None = None  # rows of the 20 % part scored (None: all)
    epochs: int = 1
    batch_size: int = 16
    lr: float = 1e-4  # encoder; beat 3e-5 for 4 of 6 methods in one short epoch (bench/results/csts_real_4000*)
    head_lr: float = 1e-3
    warmup_fraction: float = 0.1
    max_length: int = 64
    contrastive_weight: float = 0.0
    margin: float = 0.1
    hyper_rank: int = 8
    reweight_layers: int = 1
    seed: int = 0  # data order of ``train_method``; ``run_methods`` runs every seed of ``seeds``
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"


CSTS_PRESETS = {
    "smoke": CSTSConfig(synthetic_train_pairs=16, synthetic_test_pairs=8, real_train_rows=32, real_test_rows=32,
                        batch_size=16, max_length=32, seeds=(0,), real_hub=False),
    "default": CSTSConfig(synthetic_train_pairs=400, synthetic_test_pairs=100, real_train_rows=1200,
                          real_test_rows=1000, epochs=1),
    # The papers' setting: RoBERTa-large SimCSE encoder, all rows, several epochs, on a GPU.
    "paper": CSTSConfig(encoder="princeton-nlp/sup-simcse-roberta-large", synthetic_train_pairs=5000,
                        synthetic_test_pairs=1000, epochs=3, batch_size=32, lr=1e-5, head_lr=1e-4,
                        max_length=128, contrastive_weight=0.5, device="cuda"),
}


@dataclass
class TrainResult:
    seconds_per_epoch: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # one per optimizer step


def correlations(predicted, gold) -> dict[str, float]:
    """Spearman and Pearson correlations x 100 (NaN when a side is constant)."""
    predicted, gold = np.asarray(predicted, dtype=float), np.asarray(gold, dtype=float)
    if len(predicted) < 2 or np.ptp(predicted) == 0 or np.ptp(gold) == 0:
        return {"spearman": math.nan, "pearson": math.nan}
    return {"spearman": 100 * stats.spearmanr(predicted, gold).statistic,
            "pearson": 100 * stats.pearsonr(predicted, gold).statistic}


def grouped_batches(rows: pd.DataFrame, batch_size: int, rng: random.Random) -> list[list[int]]:
    """Row indices in batches, sentence pairs shuffled but the rows of each pair kept adjacent."""
    groups = rows.groupby(["sentence1", "sentence2"], sort=False).indices
    order = list(groups.values())
    rng.shuffle(order)
    flat = [int(i) for group in order for i in group]
    return [flat[i:i + batch_size] for i in range(0, len(flat), batch_size)]


def pair_margin_loss(scores: torch.Tensor, labels: torch.Tensor, pair_ids: list, margin: float) -> torch.Tensor:
    """Mean hinge over rows of the same sentence pair whose labels differ (0 if there are none)."""
    same = torch.tensor([[a == b for b in pair_ids] for a in pair_ids], device=scores.device)
    higher = (labels[:, None] > labels[None, :]) & same
    if not higher.any():
        return scores.new_zeros(())
    gaps = scores[:, None] - scores[None, :]
    return F.relu(margin - gaps[higher]).mean()


def train_method(model: ConditionedScorer, rows: pd.DataFrame, cfg: CSTSConfig, progress=None) -> TrainResult:
    """Train ``model`` on C-STS ``rows`` for ``cfg.epochs`` epochs; ``progress(step, loss)`` if given."""
    from transformers import get_linear_schedule_with_warmup

    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    new = model.new_parameters()
    groups = [{"params": list(model.backbone.parameters()), "lr": cfg.lr}]
    if new:
        groups.append({"params": new, "lr": cfg.head_lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    steps = cfg.epochs * math.ceil(len(rows) / cfg.batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_fraction * steps), steps)
    targets = torch.tensor(((rows["label"].to_numpy() - 1.0) / 4.0), dtype=torch.float32)
    result = TrainResult()
    model.train()
    for _ in range(cfg.epochs):
        start = time.perf_counter()
        for batch in grouped_batches(rows, cfg.batch_size, rng):
            part = rows.iloc[batch]
            scores = model(part["sentence1"].tolist(), part["sentence2"].tolist(), part["condition"].tolist())
            target = targets[batch].to(scores.device)
            loss = F.mse_loss(scores, target)
            if cfg.contrastive_weight > 0:
                pairs = list(zip(part["sentence1"], part["sentence2"]))
                loss = loss + cfg.contrastive_weight * pair_margin_loss(scores, target, pairs, cfg.margin)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            result.losses.append(loss.item())
            if progress is not None:
                progress(len(result.losses), result.losses[-1])
        result.seconds_per_epoch.append(time.perf_counter() - start)
    model.eval()
    return result


@torch.no_grad()
def score_rows(model: ConditionedScorer, rows: pd.DataFrame, batch_size: int = 64) -> np.ndarray:
    """The model's score of each row, in row order (cosine, or the cross-encoder's sigmoid)."""
    model.eval()
    out = []
    for start in range(0, len(rows), batch_size):
        part = rows.iloc[start:start + batch_size]
        out.append(model(part["sentence1"].tolist(), part["sentence2"].tolist(), part["condition"].tolist()).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def evaluate(model: ConditionedScorer, rows: pd.DataFrame, batch_size: int = 64) -> dict:
    """Scores, Spearman/Pearson x100 against ``label``, pairs/s and conditioned embeddings/s with
    every sentence and condition of every row encoded (no de-duplication: the same work for every
    method); for cacheable methods also ``cached_embeddings_per_s``, re-using each distinct text's
    embedding within a batch."""
    model.deduplicate = False
    try:
        start = time.perf_counter()
        scores = score_rows(model, rows, batch_size)
        seconds = time.perf_counter() - start
    finally:
        model.deduplicate = True
    cached = math.nan
    if model.cacheable:
        start = time.perf_counter()
        score_rows(model, rows, batch_size)
        cached = 2 * len(rows) / (time.perf_counter() - start)
    return {"scores": scores, **correlations(scores, rows["label"]), "pairs_per_s": len(rows) / seconds,
            "embeddings_per_s": 2 * len(rows) / seconds if model.embeds else math.nan,
            "cached_embeddings_per_s": cached}


def run_methods(cfg: CSTSConfig, train_rows: pd.DataFrame, test_rows: pd.DataFrame,
                methods: tuple[str, ...] | None = None, log=print) -> tuple[pd.DataFrame, dict]:
    """Build, train and evaluate each method once per seed of ``cfg.seeds`` (the seed sets the new
    layers' initialisation and the data order); a table with one row per method and seed, and the
    models trained with the first seed and every run's scores by (method, seed)."""
    import dataclasses

    records, trained, scores = [], {}, {}
    for name in methods or cfg.methods:
        for seed in cfg.seeds:
            torch.manual_seed(seed)
            model = build_method(name, cfg.encoder, cfg.device, cfg.max_length, cfg.hyper_rank, cfg.reweight_layers)
            result = train_method(model, train_rows, dataclasses.replace(cfg, seed=seed))
            report = evaluate(model, test_rows)
            trained.setdefault(name, model)
            scores[name, seed] = report["scores"]
            records.append({"method": name, "seed": seed, "spearman": report["spearman"], "pearson": report["pearson"],
                            "params_added": model.added_parameters(),
                            "train_s_per_epoch": float(np.mean(result.seconds_per_epoch)),
                            "embeddings_per_s": report["embeddings_per_s"],
                            "cached_embeddings_per_s": report["cached_embeddings_per_s"],
                            "pairs_per_s": report["pairs_per_s"], "cacheable": model.cacheable,
                            "final_loss": float(np.mean(result.losses[-20:]))})
            if log:
                log(f"{name:22s} seed {seed} spearman {report['spearman']:6.1f} pearson {report['pearson']:6.1f} "
                    f"train {records[-1]['train_s_per_epoch']:6.0f} s/epoch")
    return pd.DataFrame(records), {"models": trained, "scores": scores}


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and the two ends of its Student-t ``confidence`` interval (NaN ends for one value)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def summarize_seeds(table: pd.DataFrame, metrics: tuple[str, ...] = ("spearman", "pearson")) -> pd.DataFrame:
    """One row per method: ``seeds``, and per metric its mean and 95 % interval (``_low``, ``_high``) over
    the seeds; speeds and sizes as their means."""
    rows = []
    for name, group in table.groupby("method", sort=False):
        row = {"method": name, "seeds": len(group)}
        for metric in metrics:
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = mean_interval(group[metric])
        for column in ("params_added", "train_s_per_epoch", "embeddings_per_s", "cached_embeddings_per_s",
                       "pairs_per_s"):
            row[column] = float(group[column].mean())
        row["cacheable"] = bool(group["cacheable"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def save_model(model: ConditionedScorer, folder: str | Path, cfg: CSTSConfig | None = None, **fields) -> Path:
    """``folder/method.json`` (how to rebuild), the weights and a manifest. Methods of
    ``SENTENCE_TRANSFORMER_METHODS`` are written as a sentence-transformers folder (plus
    ``method_layers.safetensors`` for their new layers); the others as ``model.safetensors``."""
    from safetensors.torch import save_file
    from safetensors.torch import save_model as save_safetensors

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    options = dict(model.build_options)
    if model.name in SENTENCE_TRANSFORMER_METHODS:
        model.to_sentence_transformer().save(str(folder))
        new = {name: p.detach().contiguous() for name, p in model.named_parameters()
               if not name.startswith("backbone.")}
        if new:
            with atomic_path(folder / "method_layers.safetensors") as tmp:
                save_file(new, str(tmp))
        options["format"] = "sentence-transformers"
    else:
        with atomic_path(folder / "model.safetensors") as tmp:
            save_safetensors(model, str(tmp))
    atomic_write_json(folder / "method.json", options)
    write_manifest(folder, cfg, method=options, **fields)
    return folder


def load_model(folder: str | Path, device: str = "cpu") -> ConditionedScorer:
    """A model saved by ``save_model`` (the encoder named in ``method.json`` must be loadable here,
    except for sentence-transformers folders, which hold their encoder)."""
    from safetensors.torch import load_file
    from safetensors.torch import load_model as load_safetensors

    folder = Path(folder)
    if not (folder / "method.json").is_file():
        raise FileNotFoundError(f"{folder} is not a saved C-STS model: it lacks method.json "
                                "(make one with `python -m helpers csts train ... --out DIR`).")
    options = json.loads((folder / "method.json").read_text())
    if options.pop("format", None) == "sentence-transformers":
        model = build_method(device=device, **{**options, "encoder": str(folder)})
        model.build_options["encoder"] = options["encoder"]
        if (folder / "method_layers.safetensors").is_file():
            missing, unexpected = model.load_state_dict(load_file(folder / "method_layers.safetensors", device=device),
                                                        strict=False)
            if unexpected or any(not name.startswith("backbone.") for name in missing):
                raise ValueError(f"{folder}/method_layers.safetensors does not fit {options['name']}: "
                                 f"unexpected {unexpected}, missing {[n for n in missing if 'backbone' not in n]}.")
        return model.eval()
    model = build_method(device=device, **options)
    load_safetensors(model, str(folder / "model.safetensors"), device=device)
    return model.eval()

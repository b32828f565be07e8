"""Choosing and reading SAE features: the paper's selection at " your values", top-activating
contexts, and the tokens a feature's decoder direction promotes through the unembedding.

    candidates = select_features(model, tokenizer, sae, layer, prompts, phrase_ids, top_k=25)
    contexts = top_contexts(sae, activation_set, tokenizer, candidates["feature"][:10])
    promoted = promoted_tokens(model, tokenizer, sae, candidates["feature"][:10])
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .activations import ActivationSet
from .hooks import capture_residual, phrase_mask, submodule
from .sae import encode


def feature_direction(sae, feature: int) -> torch.Tensor:
    """The unit-norm decoder direction of ``feature`` (float32): what steering adds, times its coefficient."""
    row = sae.W_dec[int(feature)].detach().float()
    return row / row.norm()


@torch.no_grad()
def phrase_activations(model, tokenizer, sae, layer: int, prompts: Sequence[str], phrase_ids: list[int],
                       batch_size: int = 16) -> torch.Tensor:
    """SAE feature activations at the phrase's tokens in each prompt: (n_phrase_tokens, d_sae).
    Prompts without the phrase raise a ValueError (they would be silently skipped otherwise)."""
    device = next(model.parameters()).device
    found = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[start:start + batch_size]), add_special_tokens=False, padding=True,
                          padding_side="left", return_tensors="pt").to(device)
        mask = phrase_mask(batch["input_ids"], phrase_ids)
        missing = [start + i for i in range(mask.shape[0]) if not mask[i].any()]
        if missing:
            raise ValueError(f"Prompt(s) {missing[:5]} lack the phrase {tokenizer.decode(phrase_ids)!r} "
                             "(as these token ids); build them with values_cue=True.")
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        hidden = capture_residual(model, layer, stop_after=True, input_ids=batch["input_ids"],
                                  attention_mask=batch["attention_mask"], position_ids=positions)
        found.append(encode(sae, hidden[mask].float().cpu()))
    return torch.cat(found)


def rank_features(activations: torch.Tensor, top_k: int) -> pd.DataFrame:
    """Features by mean activation over the rows, highest first; ties go to the lower feature index,
    so the ranking is a deterministic function of the activations."""
    mean = activations.float().mean(0).numpy()
    share = (activations > 0).float().mean(0).numpy()
    order = np.lexsort((np.arange(len(mean)), -mean))[:top_k]
    return pd.DataFrame({"rank": np.arange(1, len(order) + 1), "feature": order.astype(int),
                         "mean_activation": mean[order], "firing_share": share[order]})


def select_features(model, tokenizer, sae, layer: int, prompts: Sequence[str], phrase_ids: list[int],
                    top_k: int = 25, batch_size: int = 16) -> pd.DataFrame:
    """The paper's candidates: features ranked by their mean activation at the phrase's tokens over
    the (no-role) value prompts; the top ``top_k``."""
    return rank_features(phrase_activations(model, tokenizer, sae, layer, prompts, phrase_ids, batch_size), top_k)


@torch.no_grad()
def top_contexts(sae, activation_set: ActivationSet, tokenizer, features: Sequence[int], k: int = 5,
                 window: int = 12, batch_size: int = 4096) -> pd.DataFrame:
    """For each feature, the ``k`` tokens of the activation set where it fires most, with the
    ``window`` tokens before them; the token itself is shown as [[token]]."""
    features = [int(f) for f in features]
    columns = []
    for start in range(0, len(activation_set.activations), batch_size):
        columns.append(encode(sae, activation_set.activations[start:start + batch_size])[:, features])
    acts = torch.cat(columns)
    rows = []
    for j, feature in enumerate(features):
        values, where = acts[:, j].topk(min(k, len(acts)))
        for rank, (value, index) in enumerate(zip(values.tolist(), where.tolist()), start=1):
            if value <= 0:
                break
            chunk, pos = int(activation_set.chunk[index]), int(activation_set.position[index])
            tokens = activation_set.chunks[chunk]
            before = tokenizer.decode(tokens[max(0, pos - window):pos])
            rows.append({"feature": feature, "rank": rank, "activation": value,
                         "context": f"{before}[[{tokenizer.decode(tokens[pos:pos + 1])}]]".replace("\n", "⏎")})
    return pd.DataFrame(rows, columns=["feature", "rank", "activation", "context"])


def _final_norm_weight(model) -> torch.Tensor | None:
    """The gain of the final norm before the unembedding, where the architecture is known."""
    for path in ("model.norm", "transformer.ln_f", "gpt_neox.final_layer_norm", "model.decoder.final_layer_norm"):
        module = submodule(model, path)
        if module is not None and getattr(module, "weight", None) is not None:
            return module.weight.detach().float()
    return None


@torch.no_grad()
def promoted_tokens(model, tokenizer, sae, features: Sequence[int], k: int = 8) -> pd.DataFrame:
    """The tokens each feature's decoder direction raises most through the final norm's gain and
    the unembedding (the logit lens of the direction), with their logit increase."""
    unembed = model.get_output_embeddings().weight.detach().float()
    gain = _final_norm_weight(model)
    rows = []
    for feature in features:
        direction = feature_direction(sae, feature).to(unembed.device)
        logits = unembed @ (direction * gain.to(unembed.device) if gain is not None else direction)
        top = logits.topk(k)
        rows.append({"feature": int(feature),
                     "promoted tokens": " | ".join(repr(tokenizer.decode([int(i)])) for i in top.indices),
                     "top logit": float(top.values[0])})
    return pd.DataFrame(rows)

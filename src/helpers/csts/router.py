"""The condition-specified router's change to an encoder: a thin wrapper around each self-attention.

``install_router(backbone, reweight_layers=1)`` replaces the self-attention module of every layer
(``layer.attention.self`` in BERT, RoBERTa, XLM-R, ELECTRA and MiniLM encoders: any module with
``query``, ``key`` and ``value`` linear projections) by ``RoutedSelfAttention``, which keeps the
original module inside and uses its projections and dropout. It adds no parameters.

Which layers route, during a sentence pass run under ``routing(backbone, state)``:

* every layer: the sentence tokens' queries also attend to the condition's token states of that
  layer (from a separate, plain pass over the condition), projected to keys and values by that
  layer's own ``key`` and ``value``;
* the last ``reweight_layers`` layers: each sentence token's attention output is multiplied by
  ``1 + m``, where ``m`` is the head-averaged attention that the pooling token (position 0,
  ``[CLS]`` / ``<s>``) pays to that token, so that tokens that matter under the condition weigh
  more in the pooled embedding. The last ``m`` of each of those layers is kept in ``state.weights``.

Outside ``routing(...)`` (routing off) each wrapper calls the original module unchanged, so the
encoder is exactly the plain encoder; ``RoutingState(condition_states=None, reweight=False)`` runs
the wrapper's own attention with nothing added, which equals the plain encoder up to float error.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class RoutingState:
    """What one routed sentence pass needs: the padding mask of the sentence batch, the condition's
    hidden states entering each layer (``None``: no extra keys), their mask, and whether to re-weight."""

    sentence_mask: torch.Tensor  # (batch, length), 1 for tokens
    condition_states: tuple[torch.Tensor, ...] | None = None  # per layer, (batch, cond_length, hidden)
    condition_mask: torch.Tensor | None = None  # (batch, cond_length)
    reweight: bool = True
    weights: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> m, (batch, length)


def _split_heads(x: torch.Tensor, head_size: int) -> torch.Tensor:
    return x.view(x.shape[0], x.shape[1], -1, head_size).transpose(1, 2)


class RoutedSelfAttention(nn.Module):
    """Wraps one layer's self-attention; routes when ``state`` is set, else calls the original."""

    def __init__(self, inner: nn.Module, layer_index: int, reweights: bool):
        super().__init__()
        for name in ("query", "key", "value"):
            if not isinstance(getattr(inner, name, None), nn.Linear):
                raise TypeError(f"{type(inner).__name__} has no linear '{name}' projection: the router supports "
                                "BERT-like and RoBERTa-like encoders (attention.self.query/key/value).")
        self.inner = inner
        self.layer_index = layer_index
        self.reweights = reweights
        self.state: RoutingState | None = None

    def forward(self, hidden_states: torch.Tensor, attention_mask=None, **kwargs):
        state = self.state
        if state is None:
            return self.inner(hidden_states, attention_mask=attention_mask, **kwargs)
        inner = self.inner
        head_size = inner.attention_head_size
        query = _split_heads(inner.query(hidden_states), head_size)
        key = _split_heads(inner.key(hidden_states), head_size)
        value = _split_heads(inner.value(hidden_states), head_size)
        mask = state.sentence_mask.bool()
        if state.condition_states is not None:
            condition = state.condition_states[self.layer_index]
            key = torch.cat([key, _split_heads(inner.key(condition), head_size)], dim=2)
            value = torch.cat([value, _split_heads(inner.value(condition), head_size)], dim=2)
            mask = torch.cat([mask, state.condition_mask.bool()], dim=1)
        scores = (query @ key.transpose(-1, -2)) * getattr(inner, "scaling", head_size ** -0.5)
        scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
        probs = scores.softmax(dim=-1)
        output = inner.dropout(probs) @ value  # (batch, heads, length, head_size)
        if self.reweights and state.reweight:
            length = hidden_states.shape[1]
            m = probs[:, :, 0, :length].mean(dim=1)  # attention of the pooling token to each token
            output = output * (1.0 + m)[:, None, :, None]
            state.weights[self.layer_index] = m.detach()
        return output.transpose(1, 2).reshape(*hidden_states.shape[:2], -1), None


def encoder_layers(backbone: nn.Module) -> nn.ModuleList:
    """The transformer layers of a BERT-like or RoBERTa-like model (``backbone.encoder.layer``)."""
    layers = getattr(getattr(backbone, "encoder", None), "layer", None)
    if layers is None:
        raise TypeError(f"{type(backbone).__name__} has no encoder.layer list: the router supports "
                        "BERT-like and RoBERTa-like encoders.")
    return layers


def install_router(backbone: nn.Module, reweight_layers: int = 1) -> list[RoutedSelfAttention]:
    """Wrap the self-attention of every layer of ``backbone`` (in place); return the wrappers."""
    layers = encoder_layers(backbone)
    if not 0 <= reweight_layers <= len(layers):
        raise ValueError(f"reweight_layers must be in [0, {len(layers)}], not {reweight_layers}.")
    wrappers = []
    for index, layer in enumerate(layers):
        wrapper = RoutedSelfAttention(layer.attention.self, index, index >= len(layers) - reweight_layers)
        layer.attention.self = wrapper
        wrappers.append(wrapper)
    return wrappers


@contextlib.contextmanager
def routing(wrappers: list[RoutedSelfAttention], state: RoutingState):
    """Run the wrapped encoder with ``state`` (routing on) inside the block; routing off after it."""
    for wrapper in wrappers:
        wrapper.state = state
    try:
        yield state
    finally:
        for wrapper in wrappers:
            wrapper.state = None

"""The condition-specified router's change to an encoder: a thin wrapper around each self-attention.

``install_router(backbone, reweight_layers=1)`` replaces the self-attention module of every layer
by ``RoutedSelfAttention``, which keeps the original module inside and uses its own projections,
dropout and position terms. It adds no parameters. Supported families (``FAMILIES``, found by
``config.model_type``, or by shape for other BERT-like encoders):

=============  ===============================  ======================  =========================
family         self-attention module            projections             extra score terms
=============  ===============================  ======================  =========================
BERT-like      encoder.layer[i].attention.self  query, key, value       none
(BERT, RoBERTa, XLM-R, ELECTRA, CamemBERT, MiniLM)
DistilBERT     transformer.layer[i].attention   q_lin, k_lin, v_lin     none (out_lin inside)
MPNet          encoder.layer[i].attention.attn  q, k, v                 relative position bias
                                                                        (o inside)
DeBERTa-v2/v3  encoder.layer[i].attention.self  query/key/value_proj    disentangled c2p / p2c
=============  ===============================  ======================  =========================

Which layers route, during a sentence pass run under ``routing(wrappers, state)``:

* every layer: the sentence tokens' queries also attend to the condition's token states of that
  layer (from a separate, plain pass over the condition), projected to keys and values by that
  layer's own key and value projections (content only: no position term links a sentence token to
  a condition token);
* the last ``reweight_layers`` layers: each sentence token's attention output is multiplied by
  ``1 + m``, where ``m`` is the head-averaged attention that the pooling token (position 0,
  ``[CLS]`` / ``<s>``) pays to that token, so that tokens that matter under the condition weigh
  more in the pooled embedding. The last ``m`` of each of those layers is kept in ``state.weights``.

The sentence part of the scores is the family's own: its scaling, its position terms, and the
attention mask the layer is given (additive float masks and boolean or 0/1 masks alike), and a
``head_mask`` where a caller passes one. Outside ``routing(...)`` (routing off) each wrapper calls the
original module unchanged, so the encoder is exactly the plain encoder;
``RoutingState(condition_states=None, reweight=False)`` runs the wrapper's own attention with
nothing added, which equals the plain encoder up to float error (tested per family).
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field
from operator import attrgetter

import torch
from torch import nn


@dataclass
class RoutingState:
    """What one routed sentence pass needs: the condition's hidden states entering each layer
    (``None``: no extra keys), their padding mask, and whether to re-weight tokens."""

    condition_states: tuple[torch.Tensor, ...] | None = None  # per layer, (batch, cond_length, hidden)
    condition_mask: torch.Tensor | None = None  # (batch, cond_length), 1 for tokens
    reweight: bool = True
    weights: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> m, (batch, length)


@dataclass(frozen=True)
class AttentionFamily:
    """Where a family keeps its self-attention modules and what is inside them."""

    name: str
    layers: str  # dotted path from the backbone to the list of layers
    attention: str  # dotted path from a layer to its self-attention module
    projections: tuple[str, str, str]  # query, key and value linear layers of that module
    output: str | None = None  # output projection applied inside the module (DistilBERT, MPNet)
    position: str | None = None  # "mpnet" (additive position_bias) or "deberta" (disentangled attention)


BERT_LIKE = AttentionFamily("bert", "encoder.layer", "attention.self", ("query", "key", "value"))
FAMILIES = {
    **dict.fromkeys(("bert", "roberta", "xlm-roberta", "electra", "camembert", "xlm-roberta-xl"), BERT_LIKE),
    "distilbert": AttentionFamily("distilbert", "transformer.layer", "attention", ("q_lin", "k_lin", "v_lin"),
                                  output="out_lin"),
    "mpnet": AttentionFamily("mpnet", "encoder.layer", "attention.attn", ("q", "k", "v"), output="o",
                             position="mpnet"),
    "deberta-v2": AttentionFamily("deberta-v2", "encoder.layer", "attention.self",
                                  ("query_proj", "key_proj", "value_proj"), position="deberta"),
}


def attention_family(backbone: nn.Module) -> AttentionFamily:
    """The ``AttentionFamily`` of ``backbone``: by its ``model_type``, else BERT-like if it has that shape."""
    model_type = getattr(getattr(backbone, "config", None), "model_type", None)
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    try:
        inner = attrgetter(BERT_LIKE.attention)(attrgetter(BERT_LIKE.layers)(backbone)[0])
        if all(isinstance(getattr(inner, p, None), nn.Linear) for p in BERT_LIKE.projections):
            return BERT_LIKE
    except (AttributeError, IndexError, TypeError):
        pass
    raise TypeError(f"The router does not know the attention of {type(backbone).__name__} (model_type "
                    f"{model_type!r}); it supports {', '.join(sorted(FAMILIES))} and other encoders with "
                    "encoder.layer[i].attention.self.query/key/value.")


def _split_heads(x: torch.Tensor, head_size: int) -> torch.Tensor:
    return x.view(x.shape[0], x.shape[1], -1, head_size).transpose(1, 2)  # (batch, heads, length, head_size)


def _masked(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Scores with an attention mask applied the way the layer's own code applies it: a floating
    mask is additive (0 or a large negative number), a boolean or integer one says where to attend."""
    if mask is None:
        return scores
    if mask.dtype.is_floating_point:
        return scores + mask.to(scores.dtype)
    return scores.masked_fill(~mask.bool(), torch.finfo(scores.dtype).min)


class RoutedSelfAttention(nn.Module):
    """Wraps one layer's self-attention; routes when ``state`` is set, else calls the original."""

    def __init__(self, inner: nn.Module, family: AttentionFamily, layer_index: int, reweights: bool):
        super().__init__()
        for name in family.projections:
            if not isinstance(getattr(inner, name, None), nn.Linear):
                raise TypeError(f"{type(inner).__name__} has no linear '{name}' projection, which the "
                                f"{family.name} family has: the router cannot wrap it.")
        self.inner = inner
        self.family = family
        self.layer_index = layer_index
        self.reweights = reweights
        self.state: RoutingState | None = None
        self._signature = inspect.signature(inner.forward)  # to read the arguments however they are passed

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        state = self.state
        if state is None:
            return self.inner(hidden_states, *args, **kwargs)
        arguments = self._signature.bind(hidden_states, *args, **kwargs).arguments
        arguments = {**arguments.pop("kwargs", {}), **arguments}
        inner, family = self.inner, self.family
        project_q, project_k, project_v = (getattr(inner, p) for p in family.projections)
        head_size = inner.attention_head_size
        query = _split_heads(project_q(hidden_states), head_size)
        key = _split_heads(project_k(hidden_states), head_size)
        value = _split_heads(project_v(hidden_states), head_size)
        scale = self._scale(head_size)
        scores = (query @ key.transpose(-1, -2)) * scale + self._position_scores(query, key, arguments)
        scores = _masked(scores, arguments.get("attention_mask"))
        if state.condition_states is not None:
            condition = state.condition_states[self.layer_index]
            condition_scores = (query @ _split_heads(project_k(condition), head_size).transpose(-1, -2)) * scale
            condition_scores = _masked(condition_scores, state.condition_mask.bool()[:, None, None, :])
            scores = torch.cat([scores, condition_scores], dim=-1)
            value = torch.cat([value, _split_heads(project_v(condition), head_size)], dim=2)
        probs = inner.dropout(scores.softmax(dim=-1))
        if arguments.get("head_mask") is not None:
            probs = probs * arguments["head_mask"]
        output = probs @ value  # (batch, heads, length, head_size)
        if self.reweights and state.reweight:
            length = hidden_states.shape[1]
            m = probs[:, :, 0, :length].mean(dim=1)  # attention of the pooling token to each sentence token
            output = output * (1.0 + m)[:, None, :, None]
            state.weights[self.layer_index] = m.detach()
        output = output.transpose(1, 2).reshape(*hidden_states.shape[:2], -1)
        if family.output is not None:
            output = getattr(inner, family.output)(output)
        if family.position == "mpnet":  # MPNet's module returns (output,) or (output, probabilities)
            return (output, probs) if arguments.get("output_attentions") else (output,)
        return output, None

    def _scale(self, head_size: int) -> float:
        if self.family.position == "deberta":  # DeBERTa divides by sqrt(d * (1 + number of position terms))
            terms = 1 + sum(kind in self.inner.pos_att_type for kind in ("c2p", "p2c"))
            return (head_size * terms) ** -0.5
        return getattr(self.inner, "scaling", head_size ** -0.5)

    def _position_scores(self, query: torch.Tensor, key: torch.Tensor, arguments: dict) -> torch.Tensor | float:
        """The family's position term of the sentence-to-sentence scores (0 where it has none)."""
        if self.family.position == "mpnet":
            bias = arguments.get("position_bias")
            return 0.0 if bias is None else bias
        if self.family.position == "deberta" and self.inner.relative_attention:
            inner = self.inner
            if arguments.get("query_states") is not None:
                raise NotImplementedError("DeBERTa's enhanced mask decoder (query_states) is not routed.")
            batch, heads, length, size = query.shape
            terms = 1 + sum(kind in inner.pos_att_type for kind in ("c2p", "p2c"))
            bias = inner.disentangled_attention_bias(query.reshape(-1, length, size), key.reshape(-1, length, size),
                                                     arguments.get("relative_pos"),
                                                     inner.pos_dropout(arguments["rel_embeddings"]), terms)
            return bias.view(batch, heads, length, length)
        return 0.0


def encoder_layers(backbone: nn.Module) -> nn.ModuleList:
    """The transformer layers of a supported encoder (see ``FAMILIES``)."""
    return attrgetter(attention_family(backbone).layers)(backbone)


def install_router(backbone: nn.Module, reweight_layers: int = 1) -> list[RoutedSelfAttention]:
    """Wrap the self-attention of every layer of ``backbone`` (in place); return the wrappers."""
    family = attention_family(backbone)
    layers = attrgetter(family.layers)(backbone)
    if not 0 <= reweight_layers <= len(layers):
        raise ValueError(f"reweight_layers must be in [0, {len(layers)}], not {reweight_layers}.")
    parent_path, _, attribute = family.attention.rpartition(".")
    wrappers = []
    for index, layer in enumerate(layers):
        parent = attrgetter(parent_path)(layer) if parent_path else layer
        wrapper = RoutedSelfAttention(getattr(parent, attribute), family, index, index >= len(layers) - reweight_layers)
        setattr(parent, attribute, wrapper)
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

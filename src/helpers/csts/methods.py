"""Conditioned sentence encoders behind one interface, on Hugging Face encoders (the router: the
families of ``helpers.csts.router.FAMILIES``: BERT, RoBERTa, DistilBERT, MPNet, DeBERTa-v2 and kin).

    model = build_method("router", encoder="all-minilm-l6-v2")
    similarity = model(sentences1, sentences2, conditions)      # (batch,) tensor
    z = model.embed(sentences, conditions)                      # conditioned embeddings

Every method scores a row by the cosine of the two conditioned embeddings, except the
cross-encoder, which reads ``s1 [SEP] s2 [SEP] c`` at once and regresses the score (a reference
point, not an embedding method). Sentence embeddings are the mean of the last hidden states over
the tokens (the pooling of sentence-transformers models such as all-MiniLM-L6-v2).

=====================  ==========================================  ====================  =========
method                 conditioned embedding                       parameters added      cacheable
=====================  ==========================================  ====================  =========
cross-encoder          none (score = sigmoid(w . pool(s1,s2,c)))   hidden + 1            no
bi-encoder             pool(s [SEP] c)                             0                     no
tri-encoder-hadamard   pool(s) * pool(c)                           0                     yes
tri-encoder-concat     W [pool(s); pool(c)] + b                    2 hidden^2 + hidden   yes
hyper-cl               pool(s) * pool(c) + U(c) V(c)^T pool(s)     2 hidden^2 rank (+b)  yes
router                 P pool(routed pass of s given c)            hidden^2 + hidden     no
=====================  ==========================================  ====================  =========

"Cacheable" means a sentence's embedding can be computed once and reused under any condition;
within a batch these methods encode each distinct text once unless ``model.deduplicate`` is False
(``training.evaluate`` times both ways, so that speeds compare the same work).
``hyper-cl`` follows Hyper-CL (Yoo et al., ACL 2024): a hypernetwork maps the condition embedding
to a low-rank (U, V) projection of the sentence embedding, added here to the Hadamard tri-encoder.
``router`` follows the condition-specified router (Lin et al., EMNLP 2024); see
``helpers.csts.router`` for which layers route. Every method with new layers starts exactly at a
plain baseline, so that a comparison measures the method and not its initialisation: concat and the
router at the identity (the plain sentence embedding), Hyper-CL at the Hadamard tri-encoder (its U
generator starts at zero, as LoRA's B does, so the low-rank term is 0 until training moves it).

The embedding methods without a changed backbone (``SENTENCE_TRANSFORMER_METHODS``) also export
their encoder as a sentence-transformers model (``to_sentence_transformer``):
``SentenceTransformer(folder).encode(sentences)`` gives ``pool(sentences)``, and for the bi-encoder
``encode([(sentence, condition)])`` gives the conditioned embedding.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models import DEFAULT_ENCODER, load_encoder
from .router import RoutingState, install_router, routing


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (batch, length, dim) over the positions where ``mask`` is 1."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def _unique(texts: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    """Distinct texts in first-seen order and, per input, the index of its distinct text."""
    position: dict[str, int] = {}
    index = [position.setdefault(t, len(position)) for t in texts]
    return list(position), torch.tensor(index, dtype=torch.long)


class ConditionedScorer(nn.Module):
    """Base class: a backbone encoder, its tokenizer, mean pooling and the cosine score."""

    name = "base"
    cacheable = False  # sentence embeddings independent of the condition
    embeds = True  # produces conditioned sentence embeddings (all but the cross-encoder)
    deduplicate = True  # encode each distinct sentence / condition of a batch once

    def __init__(self, backbone: nn.Module, tokenizer, max_length: int = 64):
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.max_length = max_length

    @property
    def hidden_size(self) -> int:
        return self.backbone.config.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    def tokenize(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(list(texts), list(pairs) if pairs is not None else None, padding=True,
                               truncation=True, max_length=self.max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items()}

    def pool(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> torch.Tensor:
        """Plain (unconditioned) mean-pooled embeddings of ``texts`` (or of text pairs)."""
        batch = self.tokenize(texts, pairs)
        return mean_pool(self.backbone(**batch).last_hidden_state, batch["attention_mask"])

    def pool_unique(self, texts: Sequence[str]) -> torch.Tensor:
        """``pool`` that encodes each distinct text once (conditions repeat within a batch), unless
        ``deduplicate`` is off."""
        if not self.deduplicate:
            return self.pool(texts)
        distinct, index = _unique(texts)
        return self.pool(distinct)[index.to(self.device)]

    def embed(self, sentences: Sequence[str], conditions: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, sentences1: Sequence[str], sentences2: Sequence[str], conditions: Sequence[str]) -> torch.Tensor:
        """Cosine similarity of the two conditioned embeddings, one value per row."""
        n = len(sentences1)
        z = self.embed([*sentences1, *sentences2], [*conditions, *conditions])
        return F.cosine_similarity(z[:n], z[n:], dim=-1)

    def to_sentence_transformer(self):
        """The backbone, tokenizer and mean pooling as a ``SentenceTransformer`` (the same backbone
        object, so it carries the trained weights); only for ``SENTENCE_TRANSFORMER_METHODS``."""
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.sentence_transformer.modules import Pooling

        if self.name not in SENTENCE_TRANSFORMER_METHODS:
            raise TypeError(f"{self.name} changes how the encoder runs; only {', '.join(SENTENCE_TRANSFORMER_METHODS)} "
                            "export a sentence-transformers model.")
        transformer = self._sentence_transformer_modules[0]
        transformer.max_seq_length = self.max_length
        return SentenceTransformer(modules=[transformer, Pooling(self.hidden_size, "mean")], device=str(self.device))

    def added_parameters(self) -> int:
        """Parameters beyond the backbone's."""
        backbone = {id(p) for p in self.backbone.parameters()}
        return sum(p.numel() for p in self.parameters() if id(p) not in backbone)

    def new_parameters(self) -> list[nn.Parameter]:
        backbone = {id(p) for p in self.backbone.parameters()}
        return [p for p in self.parameters() if id(p) not in backbone]


class CrossEncoder(ConditionedScorer):
    """``s1 [SEP] s2 [SEP] c`` in one sequence, mean-pooled, then a linear head and a sigmoid."""

    name, embeds = "cross-encoder", False

    def __init__(self, backbone, tokenizer, max_length: int = 64):
        super().__init__(backbone, tokenizer, max_length * 2)
        self.head = nn.Linear(self.hidden_size, 1)

    def embed(self, sentences, conditions):
        raise TypeError("The cross-encoder scores a pair at once; it has no per-sentence embedding.")

    def forward(self, sentences1, sentences2, conditions):
        sep = self.tokenizer.sep_token or " "
        seconds = [f"{s2} {sep} {c}" for s2, c in zip(sentences2, conditions)]
        return torch.sigmoid(self.head(self.pool(sentences1, seconds))).squeeze(-1)


class BiEncoder(ConditionedScorer):
    """Each sentence encoded together with the condition: ``s [SEP] c``."""

    name = "bi-encoder"

    def embed(self, sentences, conditions):
        return self.pool(sentences, conditions)


class TriEncoder(ConditionedScorer):
    """Sentence and condition encoded apart, then composed (``hadamard`` or ``concat`` + linear)."""

    cacheable = True

    def __init__(self, backbone, tokenizer, max_length: int = 64, composition: str = "hadamard"):
        super().__init__(backbone, tokenizer, max_length)
        if composition not in ("hadamard", "concat"):
            raise ValueError(f"composition must be 'hadamard' or 'concat', not {composition!r}.")
        self.composition = composition
        self.name = f"tri-encoder-{composition}"
        if composition == "concat":
            hidden = self.hidden_size
            self.combine = nn.Linear(2 * hidden, hidden)
            with torch.no_grad():  # start as the plain sentence embedding: W = [I | 0], b = 0
                self.combine.weight.zero_()
                self.combine.weight[:, :hidden] = torch.eye(hidden)
                self.combine.bias.zero_()

    def compose(self, sentence: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        if self.composition == "hadamard":
            return sentence * condition
        return self.combine(torch.cat([sentence, condition], dim=-1))

    def embed(self, sentences, conditions):
        return self.compose(self.pool_unique(sentences), self.pool_unique(conditions))


class HyperEncoder(TriEncoder):
    """Hyper-CL: the condition embedding generates a rank-``rank`` projection U(c) V(c)^T of the
    sentence embedding, added to the Hadamard tri-encoder's ``s * c``; U's generator starts at zero,
    so an untrained Hyper-CL is exactly the Hadamard tri-encoder."""

    name = "hyper-cl"

    def __init__(self, backbone, tokenizer, max_length: int = 64, rank: int = 8):
        ConditionedScorer.__init__(self, backbone, tokenizer, max_length)
        hidden = self.hidden_size
        self.rank = rank
        self.make_u = nn.Linear(hidden, hidden * rank)
        self.make_v = nn.Linear(hidden, hidden * rank)
        with torch.no_grad():  # zero U, random V: the low-rank term is 0 but its gradient is not (LoRA's init)
            self.make_u.weight.zero_()
            self.make_u.bias.zero_()

    def compose(self, sentence, condition):
        u = self.make_u(condition).view(-1, self.hidden_size, self.rank)
        v = self.make_v(condition).view(-1, self.hidden_size, self.rank)
        return sentence * condition + (u @ (v.transpose(1, 2) @ sentence.unsqueeze(-1))).squeeze(-1)


class RouterEncoder(ConditionedScorer):
    """Condition-specified router: the sentence pass attends to the condition's token states in every
    layer and re-weights tokens in the last ``reweight_layers`` layers (see ``helpers.csts.router``)."""

    name = "router"

    def __init__(self, backbone, tokenizer, max_length: int = 64, reweight_layers: int = 1):
        super().__init__(backbone, tokenizer, max_length)
        self.reweight_layers = reweight_layers
        self.wrappers = install_router(backbone, reweight_layers)
        self.projection = nn.Linear(self.hidden_size, self.hidden_size)
        with torch.no_grad():
            self.projection.weight.copy_(torch.eye(self.hidden_size))
            self.projection.bias.zero_()

    def routed(self, sentences: Sequence[str], conditions: Sequence[str]) -> tuple[torch.Tensor, RoutingState]:
        """Pooled sentence states of the routed pass (before the projection) and the routing state."""
        if self.deduplicate:  # one condition pass per distinct condition of the batch
            distinct, index = _unique(conditions)
        else:
            distinct, index = list(conditions), torch.arange(len(conditions))
        index = index.to(self.device)
        condition_batch = self.tokenize(distinct)
        condition_pass = self.backbone(**condition_batch, output_hidden_states=True)
        states = tuple(h[index] for h in condition_pass.hidden_states[:-1])  # the input of each layer
        batch = self.tokenize(sentences)
        state = RoutingState(states, condition_batch["attention_mask"][index])
        with routing(self.wrappers, state):
            hidden = self.backbone(**batch).last_hidden_state
        return mean_pool(hidden, batch["attention_mask"]), state

    def embed(self, sentences, conditions):
        return self.projection(self.routed(sentences, conditions)[0])

    def token_weights(self, sentence: str, condition: str) -> tuple[list[str], list[float]]:
        """Tokens of ``sentence`` and the router weight ``1 + m`` of each in the last layer."""
        with torch.no_grad():
            _, state = self.routed([sentence], [condition])
        ids = self.tokenize([sentence])["input_ids"][0].tolist()
        last = max(state.weights)
        return self.tokenizer.convert_ids_to_tokens(ids), (1.0 + state.weights[last][0]).tolist()


METHOD_NAMES = ("cross-encoder", "bi-encoder", "tri-encoder-hadamard", "tri-encoder-concat", "hyper-cl", "router")
SENTENCE_TRANSFORMER_METHODS = ("bi-encoder", "tri-encoder-hadamard", "tri-encoder-concat", "hyper-cl")


def build_method(name: str, encoder: str = DEFAULT_ENCODER, device: str = "cpu", max_length: int = 64,
                 rank: int = 8, reweight_layers: int = 1) -> ConditionedScorer:
    """A fresh method on a fresh copy of ``encoder`` (embedded name, hub id or local folder)."""
    if name not in METHOD_NAMES:
        raise ValueError(f"Unknown method {name!r}; choose one of {', '.join(METHOD_NAMES)}.")
    sentence_model = load_encoder(encoder, device=device)
    backbone, tokenizer = sentence_model[0].auto_model, sentence_model.tokenizer
    if name == "cross-encoder":
        model = CrossEncoder(backbone, tokenizer, max_length)
    elif name == "bi-encoder":
        model = BiEncoder(backbone, tokenizer, max_length)
    elif name.startswith("tri-encoder-"):
        model = TriEncoder(backbone, tokenizer, max_length, composition=name.removeprefix("tri-encoder-"))
    elif name == "hyper-cl":
        model = HyperEncoder(backbone, tokenizer, max_length, rank=rank)
    else:
        model = RouterEncoder(backbone, tokenizer, max_length, reweight_layers=reweight_layers)
    model._sentence_transformer_modules = [sentence_model[0]]  # a list: not a second copy in state_dict()
    model.build_options = {"name": name, "encoder": encoder, "max_length": max_length, "rank": rank,
                           "reweight_layers": reweight_layers}
    return model.to(device)

"""Residual-stream activations for SAE training, from a corpus that needs no download.

    texts = activation_corpus(tokenizer, seed=0)                 # Python docstrings + value prompts
    chunks = pack_tokens(tokenizer, texts, seq_len=128)          # (n_chunks, 128) token ids
    acts = collect_activations(model, chunks, layer=18, n_tokens=100_000)
    acts.activations.shape                                       # (<= 100_000, d_model)

The corpus (documented in the README): the docstrings of the Python standard library, read from
its source files with ``ast`` (English technical prose that ships with every Python, nothing is
imported or executed), mixed with the value-questionnaire prompts of notebooks 05/06 (generated
roles x the embedded inventory, with the " your values" cue), the text the SAE is used on later.

Sink tokens are left out: the first position of every chunk and any position whose residual norm
is more than ``sink_ratio`` times the chunk batch's median. The embedded LM puts a massive
activation there (about 150x the median norm, one dimension carrying most of the variance); an SAE
trained or scored with them would spend itself on, and be judged by, a handful of positions.
"""

from __future__ import annotations

import ast
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from ..artifacts import atomic_write_bytes
from ..values.inventory import embedded_inventory
from ..values.roles import NO_SETTING, cross, generate_roles
from ..values.scoring import build_prompt
from .hooks import capture_residual

STDLIB_SKIP = ("test", "idlelib", "lib2to3", "tkinter", "turtledemo", "site-packages", "ensurepip")


def stdlib_docstrings(min_chars: int = 200) -> list[str]:
    """Module, class and function docstrings of the standard library's .py files, in a fixed
    order, duplicates dropped. Parsed with ``ast``: nothing is imported."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts: dict[str, None] = {}
    for path in sorted(root.rglob("*.py")):
        if any(part in STDLIB_SKIP for part in path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= min_chars:
                    texts[doc] = None
    return list(texts)


def questionnaire_texts(tokenizer, n_roles: int = 40, seed: int = 0) -> list[str]:
    """The value prompts of the steering notebook: generated roles (with bios) x every item of the
    embedded inventory, rendered with the chat template and the " your values" cue."""
    personas = cross(generate_roles(n_roles, seed=seed + 1000, with_bio=True), [NO_SETTING])
    items = embedded_inventory()
    return [build_prompt(p, item, "logprob_yes_no", tokenizer, values_cue=True)
            for p in personas for _, item in items.iterrows()]


def activation_corpus(tokenizer, questionnaire_share: float = 0.25, n_roles: int = 40, seed: int = 0) -> list[str]:
    """Standard-library docstrings and value prompts, shuffled with ``seed``; the value prompts are
    subsampled to about ``questionnaire_share`` of the characters."""
    docs = stdlib_docstrings()
    prompts = questionnaire_texts(tokenizer, n_roles=n_roles, seed=seed)
    rng = random.Random(seed)
    rng.shuffle(prompts)
    doc_chars = sum(map(len, docs))
    budget = questionnaire_share / (1 - questionnaire_share) * doc_chars
    kept, used = [], 0
    for prompt in prompts:
        if used >= budget:
            break
        kept.append(prompt)
        used += len(prompt)
    texts = docs + kept
    rng.shuffle(texts)
    return texts


def pack_tokens(tokenizer, texts: list[str], seq_len: int = 128, max_chunks: int | None = None) -> torch.Tensor:
    """Texts tokenized, joined with the EOS token and cut into rows of ``seq_len`` token ids."""
    if seq_len < 2:
        raise ValueError(f"seq_len must be at least 2 (the first position of a chunk is dropped), got {seq_len}.")
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    wanted = None if max_chunks is None else max_chunks * seq_len
    for text in texts:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
        if wanted is not None and len(stream) >= wanted:
            break
    n_chunks = len(stream) // seq_len if wanted is None else min(len(stream) // seq_len, max_chunks)
    if n_chunks == 0:
        raise ValueError(f"The corpus has {len(stream)} tokens, fewer than one chunk of {seq_len}.")
    return torch.tensor(stream[:n_chunks * seq_len]).view(n_chunks, seq_len)


def sink_mask(hidden: torch.Tensor, sink_ratio: float) -> torch.Tensor:
    """(batch, seq) mask of sink positions: the first of every row, and any whose norm exceeds
    ``sink_ratio`` x the median norm of the batch's other positions."""
    norms = hidden.float().norm(dim=-1)
    median = norms[:, 1:].median()
    mask = norms > sink_ratio * median
    mask[:, 0] = True
    return mask


@dataclass
class ActivationSet:
    """Residual activations at kept (non-sink) positions, with where each came from.

    ``chunks`` are the token-id rows the model read; row ``i`` of ``activations`` is the residual
    at ``chunks[chunk[i], position[i]]``."""

    activations: torch.Tensor  # (n, d_model) float32
    chunks: torch.Tensor  # (n_chunks, seq_len) token ids
    chunk: torch.Tensor  # (n,) row of chunks
    position: torch.Tensor  # (n,) position in that row
    layer: int
    sink_positions: int  # positions left out as sinks (first positions included)

    @property
    def tokens_seen(self) -> int:
        return len(self.activations) + self.sink_positions

    def split(self, heldout_chunks: int) -> tuple["ActivationSet", "ActivationSet"]:
        """(train, held-out): the last ``heldout_chunks`` chunks are held out, whole."""
        if not 0 < heldout_chunks < len(self.chunks):
            raise ValueError(f"heldout_chunks must be between 1 and {len(self.chunks) - 1}, got {heldout_chunks}.")
        cut = len(self.chunks) - heldout_chunks
        parts = []
        for keep, offset in ((self.chunk < cut, 0), (self.chunk >= cut, cut)):
            rows = self.chunks[:cut] if offset == 0 else self.chunks[cut:]
            parts.append(ActivationSet(self.activations[keep], rows, self.chunk[keep] - offset,
                                       self.position[keep], self.layer, 0))
        return parts[0], parts[1]

    def save(self, path: Path | str) -> None:
        """Write the set as safetensors, atomically (``artifacts.atomic_write_bytes``)."""
        data = save({"activations": self.activations.contiguous(), "chunks": self.chunks.contiguous(),
                     "chunk": self.chunk, "position": self.position},
                    metadata={"layer": str(self.layer), "sink_positions": str(self.sink_positions)})
        atomic_write_bytes(path, data)

    @classmethod
    def load(cls, path: Path | str) -> "ActivationSet":
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata()
        tensors = load_file(str(path))
        return cls(tensors["activations"], tensors["chunks"], tensors["chunk"], tensors["position"],
                   int(meta["layer"]), int(meta["sink_positions"]))


def collect_activations(model, chunks: torch.Tensor, layer: int, n_tokens: int | None = None,
                        batch_size: int = 16, sink_ratio: float = 10.0, progress: bool = False) -> ActivationSet:
    """The output of decoder ``layer`` on the chunks (in order, until ``n_tokens`` activations are
    kept), in float32, sink positions left out. Only the layers up to ``layer`` run."""
    device = next(model.parameters()).device
    kept, rows, positions, sinks, used_chunks = [], [], [], 0, 0
    n_kept = 0
    for start in tqdm(range(0, len(chunks), batch_size), desc="activations", disable=not progress):
        batch = chunks[start:start + batch_size].to(device)
        hidden = capture_residual(model, layer, stop_after=True, input_ids=batch).float().cpu()
        sink = sink_mask(hidden, sink_ratio)
        keep = ~sink
        row, pos = torch.nonzero(keep, as_tuple=True)
        kept.append(hidden[keep])
        rows.append(row + start)
        positions.append(pos)
        sinks += int(sink.sum())
        n_kept += int(keep.sum())
        used_chunks = start + len(batch)
        if n_tokens is not None and n_kept >= n_tokens:
            break
    return ActivationSet(torch.cat(kept), chunks[:used_chunks].clone(), torch.cat(rows), torch.cat(positions),
                         layer, sinks)

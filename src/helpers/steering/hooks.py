"""Reading and steering the residual stream of a plain Hugging Face decoder with forward hooks.

    acts = capture_residual(model, layer=20, input_ids=ids, attention_mask=mask)   # (batch, seq, d)
    with steer(model, layer=20, direction=w_dec[feature], coefficient=8.0, positions=mask_of_tokens):
        logits = model(input_ids=ids, attention_mask=mask).logits

The hook bodies are pure functions of explicit arguments (``add_at_positions``), bound with
``functools.partial``; nothing reads notebook globals. Every hook is removed in a ``finally``
block, so none stays attached when the forward pass (or the code inside ``steer``) raises.
A layer's "residual" is the output of decoder layer ``layer`` (``hidden_states[layer + 1]`` of
``output_hidden_states=True``).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import torch

# Where common architectures keep their decoder layers.
_LAYER_PATHS = ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers")


def decoder_layers(model) -> torch.nn.ModuleList:
    """The model's list of decoder layers (Llama, Mistral, Gemma, Qwen, GPT-2, GPT-NeoX, OPT, ...)."""
    for path in _LAYER_PATHS:
        module = model
        for name in path.split("."):
            module = getattr(module, name, None)
            if module is None:
                break
        if isinstance(module, torch.nn.ModuleList):
            return module
    raise ValueError(f"{type(model).__name__}: no decoder layers found at {', '.join(_LAYER_PATHS)}; "
                     "pass a causal LM from transformers (AutoModelForCausalLM).")


def _layer(model, layer: int) -> torch.nn.Module:
    layers = decoder_layers(model)
    if not -len(layers) <= layer < len(layers):
        raise IndexError(f"Layer {layer} does not exist: the model has {len(layers)} decoder layers.")
    return layers[layer]


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


def _with_hidden(output, hidden: torch.Tensor):
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def position_mask(positions: torch.Tensor | list[int], shape: tuple[int, int]) -> torch.Tensor:
    """A (batch, seq) boolean mask from a mask of that shape or a list of sequence indices
    (the same indices in every row; negative ones count from the end)."""
    if isinstance(positions, torch.Tensor) and positions.dtype == torch.bool:
        if tuple(positions.shape) != tuple(shape):
            raise ValueError(f"The position mask has shape {tuple(positions.shape)}, the activations {tuple(shape)}.")
        return positions
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[:, torch.as_tensor(list(positions), dtype=torch.long)] = True
    return mask


def add_at_positions(module, args, output, direction: torch.Tensor, coefficient: float,
                     positions: torch.Tensor | list[int] | None):
    """Forward hook body: the layer's output plus ``coefficient * direction`` at ``positions``
    (every position when None), nowhere else."""
    hidden = _hidden(output)
    shift = (coefficient * direction).to(hidden.dtype).to(hidden.device)
    if positions is None:
        return _with_hidden(output, hidden + shift)
    mask = position_mask(positions, tuple(hidden.shape[:2])).to(hidden.device)
    return _with_hidden(output, hidden + mask[..., None].to(hidden.dtype) * shift)


def _record(module, args, output, store: list):
    store.append(_hidden(output).detach())


@contextlib.contextmanager
def hooked(module: torch.nn.Module, hook) -> Iterator[None]:
    """Attach a forward hook for the duration of the block; removed even when the block raises."""
    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def steer(model, layer: int, direction: torch.Tensor, coefficient: float,
          positions: torch.Tensor | list[int] | None = None) -> Iterator[None]:
    """Inside the block, every forward pass adds ``coefficient * direction`` to the output of
    decoder layer ``layer`` at ``positions`` (a (batch, seq) mask or sequence indices)."""
    if direction.ndim != 1:
        raise ValueError(f"direction must be one vector of the residual width, got shape {tuple(direction.shape)}.")
    hook = functools.partial(add_at_positions, direction=direction, coefficient=coefficient, positions=positions)
    with hooked(_layer(model, layer), hook):
        yield


@torch.inference_mode()
def capture_residual(model, layer: int, **model_inputs) -> torch.Tensor:
    """The output of decoder layer ``layer`` for one forward pass, shape (batch, seq, d_model)."""
    store: list[torch.Tensor] = []
    with hooked(_layer(model, layer), functools.partial(_record, store=store)):
        model(**model_inputs)
    return store[0]

"""Reading and steering the residual stream of a plain Hugging Face decoder with forward hooks.

    acts = capture_residual(model, layer=20, input_ids=ids, attention_mask=mask)   # (batch, seq, d)
    with steer(model, layer=20, direction=w_dec[feature], coefficient=8.0, positions=mask_of_tokens):
        logits = model(input_ids=ids, attention_mask=mask).logits
    with steer_at_phrase(model, layer=20, direction=d, coefficient=8.0, phrase_ids=[469, 2396]):
        scores = score_personas(engine, personas, items)   # steered wherever " your values" occurs

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


def submodule(model, path: str):
    """``model.a.b.c`` for the dotted ``path``, or None where any part is missing."""
    module = model
    for name in path.split("."):
        module = getattr(module, name, None)
        if module is None:
            return None
    return module


def decoder_layers(model) -> torch.nn.ModuleList:
    """The model's list of decoder layers (Llama, Mistral, Gemma, Qwen, GPT-2, GPT-NeoX, OPT, ...)."""
    for path in _LAYER_PATHS:
        module = submodule(model, path)
        if isinstance(module, torch.nn.ModuleList):
            return module
    raise ValueError(f"{type(model).__name__}: no decoder layers found at {', '.join(_LAYER_PATHS)}; "
                     "pass a causal LM from transformers (AutoModelForCausalLM).")


def layer_module(model, layer: int) -> torch.nn.Module:
    """Decoder layer ``layer`` of the model (negative indices count from the last)."""
    layers = decoder_layers(model)
    if not -len(layers) <= layer < len(layers):
        raise IndexError(f"Layer {layer} does not exist: the model has {len(layers)} decoder layers.")
    return layers[layer]


def layer_hidden(output):
    """The hidden states in a decoder layer's output (a tensor, or the first item of a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def replace_hidden(output, hidden: torch.Tensor):
    """The layer's output with its hidden states replaced, in the same form (tensor or tuple)."""
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
    hidden = layer_hidden(output)
    shift = (coefficient * direction).to(hidden.dtype).to(hidden.device)
    if positions is None:
        return replace_hidden(output, hidden + shift)
    mask = position_mask(positions, tuple(hidden.shape[:2])).to(hidden.device)
    return replace_hidden(output, hidden + mask[..., None].to(hidden.dtype) * shift)


def phrase_mask(input_ids: torch.Tensor, phrase_ids: list[int]) -> torch.Tensor:
    """(batch, seq) mask of the tokens of every occurrence of the token sequence ``phrase_ids``."""
    if not phrase_ids:
        raise ValueError("phrase_ids is empty: tokenize the phrase with add_special_tokens=False.")
    n = len(phrase_ids)
    mask = torch.zeros(input_ids.shape, dtype=torch.bool, device=input_ids.device)
    if input_ids.shape[1] < n:
        return mask
    windows = input_ids.unfold(1, n, 1)  # (batch, seq - n + 1, n)
    starts = (windows == torch.as_tensor(phrase_ids, device=input_ids.device)).all(-1)
    for offset in range(n):
        mask[:, offset:offset + starts.shape[1]] |= starts
    return mask


def _remember_input_ids(module, args, kwargs, seen: dict):
    seen["input_ids"] = kwargs.get("input_ids", args[0] if args else None)


def add_at_phrase(module, args, output, direction: torch.Tensor, coefficient: float, phrase_ids: list[int],
                  seen: dict):
    """Forward hook body: ``coefficient * direction`` added at the tokens of ``phrase_ids`` in the
    input ids of the current forward pass (``seen["input_ids"]``); a pass without the phrase (a
    decoding step after the prompt) is left alone."""
    input_ids = seen.get("input_ids")
    if input_ids is None:
        raise ValueError("Phrase steering needs input_ids (not inputs_embeds) in the model call.")
    return add_at_positions(module, args, output, direction, coefficient, phrase_mask(input_ids, phrase_ids))


class _EnoughLayers(Exception):
    """Raised by a capture hook to skip the layers after the one captured."""


def _record(module, args, output, store: list, stop: bool):
    store.append(layer_hidden(output).detach())
    if stop:
        raise _EnoughLayers


@contextlib.contextmanager
def hooked(module: torch.nn.Module, hook) -> Iterator[None]:
    """Attach a forward hook for the duration of the block; removed even when the block raises."""
    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _check_direction(direction: torch.Tensor) -> None:
    if direction.ndim != 1:
        raise ValueError(f"direction must be one vector of the residual width, got shape {tuple(direction.shape)}.")


@contextlib.contextmanager
def steer(model, layer: int, direction: torch.Tensor, coefficient: float,
          positions: torch.Tensor | list[int] | None = None) -> Iterator[None]:
    """Inside the block, every forward pass adds ``coefficient * direction`` to the output of
    decoder layer ``layer`` at ``positions`` (a (batch, seq) mask or sequence indices)."""
    _check_direction(direction)
    hook = functools.partial(add_at_positions, direction=direction, coefficient=coefficient, positions=positions)
    with hooked(layer_module(model, layer), hook):
        yield


@contextlib.contextmanager
def steer_at_phrase(model, layer: int, direction: torch.Tensor, coefficient: float,
                    phrase_ids: list[int]) -> Iterator[None]:
    """Inside the block, every forward pass adds ``coefficient * direction`` to the output of
    decoder layer ``layer`` at the tokens of the phrase (the paper's steering at " your values"),
    wherever it sits in each row of the batch. Both hooks go when the block ends or raises."""
    _check_direction(direction)
    seen: dict = {}
    handle = model.register_forward_pre_hook(functools.partial(_remember_input_ids, seen=seen), with_kwargs=True)
    try:
        hook = functools.partial(add_at_phrase, direction=direction, coefficient=coefficient,
                                 phrase_ids=list(phrase_ids), seen=seen)
        with hooked(layer_module(model, layer), hook):
            yield
    finally:
        handle.remove()


@torch.inference_mode()
def capture_residual(model, layer: int, stop_after: bool = False, **model_inputs) -> torch.Tensor:
    """The output of decoder layer ``layer`` for one forward pass, shape (batch, seq, d_model).
    ``stop_after=True`` skips the later layers (and the logits): faster when only the activations count."""
    store: list[torch.Tensor] = []
    try:
        with hooked(layer_module(model, layer), functools.partial(_record, store=store, stop=stop_after)):
            model(**model_inputs)
    except _EnoughLayers:
        pass
    return store[0]

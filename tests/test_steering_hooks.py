"""Forward hooks on the real embedded LM: capture matches output_hidden_states, steering adds exactly
coeff * direction at the chosen positions and nowhere else, and no hook outlives its block."""

import pytest
import torch

from helpers.steering.hooks import capture_residual, decoder_layers, position_mask, steer

LAYER = 10


@pytest.fixture(scope="module")
def inputs(lm):
    _, tokenizer = lm
    batch = tokenizer(["Answer according to your values.", "Do you like adventure? Yes"], return_tensors="pt",
                      padding=True)
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def _hook_counts(model):
    return [len(layer._forward_hooks) for layer in decoder_layers(model)]


@pytest.fixture(scope="module")
def own_hooks(lm, inputs):
    """The hooks transformers itself installs on the layers at the first forward pass (it records
    outputs through them) and keeps."""
    with torch.no_grad():
        lm[0](**inputs, output_hidden_states=True)
    return _hook_counts(lm[0])


def _no_hooks(model, baseline):
    return _hook_counts(model) == baseline


def test_capture_is_the_layer_output_of_output_hidden_states(lm, inputs, own_hooks):
    model, _ = lm
    captured = capture_residual(model, LAYER, **inputs)
    with torch.no_grad():
        reference = model(**inputs, output_hidden_states=True).hidden_states[LAYER + 1]
    assert torch.allclose(captured, reference, atol=1e-5) and _no_hooks(model, own_hooks)


def test_steering_adds_exactly_coeff_times_direction_at_the_positions_only(lm, inputs, own_hooks):
    model, _ = lm
    clean = capture_residual(model, LAYER, **inputs)
    direction = torch.randn(clean.shape[-1])
    positions = [2, -1]
    with steer(model, LAYER, direction, 3.0, positions):
        steered = capture_residual(model, LAYER, **inputs)  # the capture hook runs after the steering hook
    mask = position_mask(positions, tuple(clean.shape[:2]))
    assert torch.allclose(steered[mask], clean[mask] + 3.0 * direction, atol=1e-4)
    assert torch.equal(steered[~mask], clean[~mask]), "positions outside the mask must not change"
    assert _no_hooks(model, own_hooks)


def test_a_boolean_mask_selects_per_row_positions(lm, inputs):
    model, _ = lm
    clean = capture_residual(model, LAYER, **inputs)
    mask = torch.zeros(clean.shape[:2], dtype=torch.bool)
    mask[0, 1] = mask[1, 3] = True
    with steer(model, LAYER, torch.ones(clean.shape[-1]), -2.0, mask):
        steered = capture_residual(model, LAYER, **inputs)
    assert torch.allclose(steered - clean, (-2.0 * mask[..., None]).expand_as(clean).float(), atol=1e-4)


def test_hooks_are_removed_when_the_block_or_the_forward_pass_raises(lm, inputs, own_hooks):
    model, _ = lm
    direction = torch.zeros(model.config.hidden_size)
    with pytest.raises(RuntimeError, match="inside the block"):
        with steer(model, LAYER, direction, 1.0):
            raise RuntimeError("inside the block")
    assert _no_hooks(model, own_hooks)
    with pytest.raises(Exception):
        with steer(model, LAYER, direction, 1.0, positions=torch.zeros(1, 1, dtype=torch.bool)):  # wrong shape
            model(**inputs)
    assert _no_hooks(model, own_hooks), "a hook stayed attached after the forward pass raised"


def test_bad_layer_and_direction_are_refused(lm):
    model, _ = lm
    with pytest.raises(IndexError, match="decoder layers"):
        capture_residual(model, 999, input_ids=torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="one vector"):
        with steer(model, LAYER, torch.zeros(2, model.config.hidden_size), 1.0):
            pass

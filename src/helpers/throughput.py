"""Generation throughput: the batched engine against one-prompt-at-a-time ``model.generate``.

Used by notebook 00 and by ``bench/bench_generation.py`` so that both measure the same thing:
greedy decoding of the same chat prompts, new tokens counted up to and including the end-of-turn
token, wall time around the whole set of prompts.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import torch

from .generation import HFEngine, SamplingParams

_TASKS = ["Explain", "Give two facts about", "Write one sentence about", "Describe",
          "What is the main idea behind", "List three words related to", "Summarize",
          "Why do people care about"]
_TOPICS = ["photosynthesis", "the moon", "binary numbers", "volcanoes", "the French revolution",
           "honey bees", "prime numbers", "rain", "bicycles", "the internet", "glaciers",
           "the human heart", "chess", "electric cars", "coffee", "the printing press"]


@dataclass(frozen=True)
class ThroughputConfig:
    """Knobs of notebook 00 (``helpers.config.preset(THROUGHPUT_PRESETS, profile, ...)``)."""

    model: str = "smollm2-135m-instruct"
    n_prompts: int = 64
    max_new_tokens: int = 48
    batch_sizes: tuple[int, ...] = (4, 16, 32, 64)


THROUGHPUT_PRESETS = {
    "smoke": ThroughputConfig(n_prompts=4, max_new_tokens=8, batch_sizes=(2, 4)),
    "default": ThroughputConfig(),
    "paper": ThroughputConfig(model="meta-llama/Meta-Llama-3-8B-Instruct", n_prompts=256,
                              max_new_tokens=128, batch_sizes=(1, 8, 32, 64, 128, 256)),
}


@dataclass
class ThroughputResult:
    mode: str  # "one at a time" or "engine"
    batch_size: int
    n_prompts: int
    new_tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds


def chat_prompts(n: int) -> list[list[dict]]:
    """``n`` distinct short chat prompts (8 task phrasings x 16 topics, in a fixed order)."""
    pairs = list(itertools.product(_TOPICS, _TASKS))
    if n > len(pairs):
        raise ValueError(f"At most {len(pairs)} distinct demo prompts; asked for {n}.")
    return [[{"role": "user", "content": f"{task} {topic}."}] for topic, task in pairs[:n]]


@torch.inference_mode()
def one_at_a_time(engine: HFEngine, prompts, max_new_tokens: int) -> ThroughputResult:
    """The naive baseline: plain ``model.generate`` on each prompt alone, greedy, no padding."""
    end_ids = engine.end_token_ids()
    new_tokens = 0
    start = time.perf_counter()
    for prompt in prompts:
        ids = torch.tensor([engine.encode(prompt)], device=engine.device)
        out = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                    max_new_tokens=max_new_tokens,
                                    pad_token_id=engine.tokenizer.pad_token_id)[0, ids.shape[1]:].tolist()
        new_tokens += next((i + 1 for i, t in enumerate(out) if t in end_ids), len(out))
    return ThroughputResult("one at a time", 1, len(prompts), new_tokens, time.perf_counter() - start)


def batched(engine: HFEngine, prompts, max_new_tokens: int, batch_size: int) -> ThroughputResult:
    """The engine at one batch size, greedy, on the same prompts."""
    previous, engine.batch_size = engine.batch_size, batch_size
    try:
        start = time.perf_counter()
        outputs = engine.generate(prompts, SamplingParams(max_new_tokens=max_new_tokens), progress=False)
        seconds = time.perf_counter() - start
    finally:
        engine.batch_size = previous
    return ThroughputResult("engine", batch_size, len(prompts), sum(o[0].num_tokens for o in outputs), seconds)

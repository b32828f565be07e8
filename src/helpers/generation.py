"""Batched text generation and continuation scoring behind one interface.

    engine = make_engine("smollm2-135m-instruct")           # HFEngine on CPU, VLLMEngine on CUDA+vLLM
    params = SamplingParams(max_new_tokens=64, stop=("\\n\\n",))
    outs = engine.generate(["2+2=", [{"role": "user", "content": "Hi!"}]], params)
    outs[1][0].text                                          # first sample of the second prompt
    scores = engine.logprobs(["Q: yes or no? A:"] * 2, [" yes", " no"])

A prompt is either plain text or a list of chat messages (the tokenizer's chat template is
applied, with the assistant turn opened). ``generate`` returns, in input order, a list of ``n``
``Completion`` per prompt.

The Hugging Face backend sorts prompts by token length, cuts them into batches of similar length
(less padding), pads on the left, generates, and puts results back in input order. Greedy output
of a prompt does not depend on the batch it ran in (tested). On a 2-core CPU, batching is the
lever: one prompt at a time leaves most of the machine idle (see ``bench/bench_generation.py``).

Sampling is reproducible from ``SamplingParams.seed`` and private to the call: the Hugging Face
backend seeds a fork of torch's generator (the caller's stream is left as it was), vLLM gets one
seed per prompt (``derive_seed(seed, i)``), so equal prompts in one call still sample apart.
Callers give unrelated calls unrelated seeds (e.g. ``reflection.pipeline.chunk_seed``).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass, field
from typing import Protocol, Sequence, Union

import torch
from tqdm.auto import tqdm

Message = dict
Prompt = Union[str, Sequence[Message]]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature == 0`` is greedy decoding (then ``n`` copies are identical)."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}.")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1], got {self.top_p}.")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}.")
        if isinstance(self.stop, str):  # a lone string would be read as a tuple of characters
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass
class Completion:
    """One generated continuation. ``finish_reason`` is "stop" (end of turn or a stop string,
    which is cut from ``text``) or "length" (``max_new_tokens`` reached)."""

    text: str
    num_tokens: int
    finish_reason: str


@dataclass
class ContinuationScore:
    """Log-probability of a given continuation after a prompt (natural log)."""

    total: float
    token_logprobs: list[float] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)


class Engine(Protocol):
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams = SamplingParams(),
                 progress: bool = True) -> list[list[Completion]]: ...

    def logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[ContinuationScore]: ...


def derive_seed(*parts) -> int:
    """A 32-bit seed from any parts (a run seed and a chunk's first id, a seed and a prompt index):
    distinct parts give unrelated seeds, the same parts the same seed."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "big")


def is_chat(prompt: Prompt) -> bool:
    return not isinstance(prompt, str)


def render_prompt(tokenizer, prompt: Prompt) -> str:
    """Plain text as is; chat messages through the tokenizer's chat template, assistant turn open."""
    if not is_chat(prompt):
        return prompt
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("This tokenizer has no chat template: pass plain-text prompts, "
                         "or load an instruction-tuned model.")
    return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop string, and whether one was found."""
    cuts = [text.find(s) for s in stop if s and s in text]
    if not cuts:
        return text, False
    return text[: min(cuts)], True


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (memory peaks early)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


class HFEngine:
    """Batched generation and scoring with a Hugging Face causal LM (any device)."""

    def __init__(self, model, tokenizer, batch_size: int = 64, score_batch_size: int = 8,
                 cache_implementation: str | None = "static"):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.score_batch_size = score_batch_size
        # A static (preallocated) KV cache avoids re-copying the whole cache at every step, which
        # dominates decoding time on CPU once prompts are a few hundred tokens long.
        self.cache_implementation = cache_implementation
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def from_name(cls, name: str, batch_size: int = 64, **load_kwargs) -> "HFEngine":
        from .models import load_lm

        model, tokenizer = load_lm(name, **load_kwargs)
        return cls(model, tokenizer, batch_size=batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt; chat templates carry their own special tokens."""
        return self.tokenizer(render_prompt(self.tokenizer, prompt),
                              add_special_tokens=not is_chat(prompt))["input_ids"]

    def end_token_ids(self) -> set[int]:
        """Token ids that end a generation (the model's end-of-turn and the tokenizer's EOS)."""
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids]) if ids is not None else set()
        return ids | {self.tokenizer.eos_token_id}

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        return input_ids, mask

    def _decode(self, tokens: list[int], stop: Sequence[str], stop_ids: set[int]) -> Completion:
        ended = next((i for i, t in enumerate(tokens) if t in stop_ids), None)
        kept = tokens if ended is None else tokens[:ended]
        text, hit_stop = cut_at_stop(self.tokenizer.decode(kept, skip_special_tokens=True), stop)
        finished = ended is not None or hit_stop
        used = len(tokens) if ended is None else ended + 1
        return Completion(text=text, num_tokens=used, finish_reason="stop" if finished else "length")

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams = SamplingParams(),
                 progress: bool = True) -> list[list[Completion]]:
        if isinstance(prompts, str):
            raise TypeError("generate() takes a list of prompts; wrap a single prompt in a list.")
        encoded = [self.encode(p) for p in prompts]
        sampling = params.temperature > 0
        copies = params.n if sampling else 1
        stop_ids = self.end_token_ids()
        results: list[list[Completion]] = [[] for _ in prompts]
        bar = tqdm(total=len(prompts), desc="generate", unit="prompt", disable=not progress)
        # transformers samples from torch's global generator: seed a fork of it, so that this call's
        # stream depends on params.seed alone and the caller's stream is restored afterwards.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(params.seed)
            for batch in length_sorted_batches([len(e) for e in encoded], self.batch_size):
                input_ids, mask = self._left_pad([encoded[i] for i in batch])
                output = self.model.generate(
                    input_ids=input_ids, attention_mask=mask, max_new_tokens=params.max_new_tokens,
                    do_sample=sampling, temperature=params.temperature if sampling else None,
                    top_p=params.top_p if sampling else None, top_k=None,
                    num_return_sequences=copies, pad_token_id=self.tokenizer.pad_token_id,
                    stop_strings=list(params.stop) or None, tokenizer=self.tokenizer,
                    cache_implementation=self.cache_implementation,
                )
                new_tokens = output[:, input_ids.shape[1]:].tolist()
                for row, index in enumerate(batch):
                    for copy in range(copies):
                        results[index].append(self._decode(new_tokens[row * copies + copy], params.stop, stop_ids))
                    if not sampling:
                        results[index] *= params.n
                bar.update(len(batch))
        bar.close()
        return results

    @torch.inference_mode()
    def logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[ContinuationScore]:
        """Summed and per-token log-probabilities of each continuation after its prompt.

        Prompt and continuation are tokenized separately and concatenated, so the continuation's
        tokens are exactly ``tokenizer(continuation, add_special_tokens=False)``.
        """
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations: "
                             "pass one continuation per prompt (repeat the prompt for each choice).")
        pairs = [(self.encode(p), self.tokenizer(c, add_special_tokens=False)["input_ids"])
                 for p, c in zip(prompts, continuations)]
        scores: list[ContinuationScore | None] = [None] * len(pairs)
        for batch in length_sorted_batches([len(p) + len(c) for p, c in pairs], self.score_batch_size):
            rows = [pairs[i][0] + pairs[i][1] for i in batch]
            input_ids, mask = self._left_pad(rows)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding must not shift positions
            # Rows are padded on the left, so every continuation ends at the last position: only the
            # last `keep` positions need the vocabulary projection, which for short continuations
            # after long prompts is most of the work (49k vocabulary x every prompt token).
            keep = max(len(pairs[i][1]) for i in batch) + 1
            logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                logits_to_keep=keep).logits  # (rows, keep, vocab)
            width = input_ids.shape[1]
            for row, index in enumerate(batch):
                n_cont = len(pairs[index][1])
                if n_cont == 0:
                    scores[index] = ContinuationScore(total=0.0)
                    continue
                targets = input_ids[row, width - n_cont:]
                step_logits = logits[row, keep - n_cont - 1: keep - 1].float()
                token_lp = torch.log_softmax(step_logits, dim=-1).gather(1, targets[:, None])[:, 0]
                scores[index] = ContinuationScore(
                    total=float(token_lp.sum()), token_logprobs=token_lp.tolist(),
                    tokens=self.tokenizer.convert_ids_to_tokens(targets.tolist()))
        return scores  # type: ignore[return-value]


class VLLMEngine:
    """The same interface on vLLM, for CUDA machines (``pip install -e '.[vllm]'``).

    Extra keyword arguments go to ``vllm.LLM`` (``tensor_parallel_size``, ``gpu_memory_utilization``,
    ...). Embedded model names resolve to their cached safetensors folder first.
    """

    def __init__(self, name: str, **llm_kwargs):
        try:
            import vllm
        except ImportError as error:
            raise ImportError("The vLLM backend needs vllm on a CUDA machine: pip install -e '.[vllm]'. "
                              "Use backend='hf' on CPU.") from error
        from .models import resolve_lm

        self._vllm = vllm
        self.llm = vllm.LLM(model=str(resolve_lm(name)), **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams = SamplingParams(),
                 progress: bool = True) -> list[list[Completion]]:
        texts = [render_prompt(self.tokenizer, p) for p in prompts]
        # vLLM seeds each request's own generator: one seed for all would make equal prompts
        # (the same instruction sampled twice) give equal samples.
        sampling = [self._vllm.SamplingParams(
            n=params.n, temperature=params.temperature, top_p=params.top_p,
            max_tokens=params.max_new_tokens, stop=list(params.stop), seed=derive_seed(params.seed, index))
            for index in range(len(texts))]
        outputs = self.llm.generate(texts, sampling, use_tqdm=progress)
        return [[Completion(text=o.text, num_tokens=len(o.token_ids),
                            finish_reason="length" if o.finish_reason == "length" else "stop")
                 for o in out.outputs] for out in outputs]

    def logprobs(self, prompts: Sequence[Prompt], continuations: Sequence[str]) -> list[ContinuationScore]:
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations.")
        requests, cont_lengths = [], []
        for prompt, continuation in zip(prompts, continuations):
            text = render_prompt(self.tokenizer, prompt)
            p_ids = self.tokenizer(text, add_special_tokens=not is_chat(prompt))["input_ids"]
            c_ids = self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
            requests.append({"prompt_token_ids": p_ids + c_ids})
            cont_lengths.append(len(c_ids))
        scoring = self._vllm.SamplingParams(max_tokens=1, prompt_logprobs=1, temperature=0.0)
        outputs = self.llm.generate(requests, scoring, use_tqdm=False)
        scores = []
        for out, n_cont in zip(outputs, cont_lengths):
            ids = out.prompt_token_ids[len(out.prompt_token_ids) - n_cont:]
            steps = out.prompt_logprobs[len(out.prompt_token_ids) - n_cont:] if n_cont else []
            token_lp = [step[token].logprob for step, token in zip(steps, ids)]
            scores.append(ContinuationScore(total=float(sum(token_lp)), token_logprobs=token_lp,
                                            tokens=self.tokenizer.convert_ids_to_tokens(ids)))
        return scores


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def make_engine(name: str = "smollm2-135m-instruct", backend: str = "auto", **kwargs) -> Engine:
    """An engine for a model name: ``backend`` is "hf", "vllm" or "auto" (vLLM when installed
    and a GPU is present, else Hugging Face)."""
    if backend not in ("auto", "hf", "vllm"):
        raise ValueError(f"Unknown backend {backend!r}: choose 'auto', 'hf' or 'vllm'.")
    if backend == "vllm" or (backend == "auto" and vllm_available()):
        return VLLMEngine(name, **kwargs)
    return HFEngine.from_name(name, **kwargs)

import dataclasses
import sys
import types

import pytest
import torch

from helpers.generation import (Completion, HFEngine, SamplingParams, VLLMEngine, cut_at_stop,
                                length_sorted_batches, make_engine, render_prompt)

PROMPTS = [
    [{"role": "user", "content": "What is 3 plus 4?"}],
    "The three primary colours are",
    [{"role": "user", "content": "Write a short sentence about the sea, the wind and the sky at dawn."}],
    [{"role": "user", "content": "Hi"}],
    "def fibonacci(n):",
]


def test_length_sorted_batches_cover_every_index_once():
    batches = length_sorted_batches([5, 1, 9, 3, 7], batch_size=2)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    assert batches[0] == [2, 4], "longest prompts should come first"


def test_greedy_output_is_the_same_alone_and_in_a_batch(engine):
    params = SamplingParams(max_new_tokens=24)
    batched = engine.generate(PROMPTS, params, progress=False)
    for prompt, result in zip(PROMPTS, batched):
        alone = engine.generate([prompt], params, progress=False)[0][0]
        assert result[0].text == alone.text, f"batching changed the greedy output of {prompt!r}"
        assert result[0].num_tokens == alone.num_tokens


def test_results_come_back_in_input_order(engine):
    questions = [[{"role": "user", "content": f"Repeat the word {w} once."}] for w in
                 ["apple", "banana", "cherry", "dragonfruit", "elderberry", "fig"]]
    outputs = engine.generate(questions, SamplingParams(max_new_tokens=12), progress=False)
    for word, output in zip(["apple", "banana", "cherry", "dragonfruit", "elderberry", "fig"], outputs):
        assert word.lower() in output[0].text.lower(), f"output for {word!r} is {output[0].text!r}: order lost?"


def test_stop_strings_cut_the_text(engine):
    prompt = ["Count: one, two, three, four, five, six, seven,"]
    free = engine.generate(prompt, SamplingParams(max_new_tokens=20), progress=False)[0][0]
    assert "," in free.text, f"test needs a continuation with a comma, got {free.text!r}"
    stopped = engine.generate(prompt, SamplingParams(max_new_tokens=20, stop=(",",)), progress=False)[0][0]
    assert "," not in stopped.text and stopped.finish_reason == "stop"
    assert free.text.startswith(stopped.text)
    assert stopped.num_tokens < free.num_tokens, "generation should end at the stop string"


def test_length_finish_reason(engine):
    out = engine.generate(["Once upon a time"], SamplingParams(max_new_tokens=3), progress=False)[0][0]
    assert out.finish_reason == "length" and out.num_tokens == 3


def test_n_samples_are_reproducible_with_a_seed(engine):
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=12, seed=123)
    first = engine.generate(["My favourite animal is", "The weather today"], params, progress=False)
    again = engine.generate(["My favourite animal is", "The weather today"], params, progress=False)
    assert [len(o) for o in first] == [4, 4]
    assert [[c.text for c in o] for o in first] == [[c.text for c in o] for o in again]
    assert len({c.text for c in first[0]}) > 1, "temperature 1.0 should give different samples"


def test_greedy_with_n_returns_n_identical_copies(engine):
    out = engine.generate(["Hello"], SamplingParams(n=3, max_new_tokens=5), progress=False)[0]
    assert len(out) == 3 and len({c.text for c in out}) == 1


def test_logprobs_match_a_direct_forward_pass(engine):
    prompts = ["The capital of France is", [{"role": "user", "content": "Say yes or no."}], "2 + 2 ="]
    continuations = [" Paris, of course", "Yes", " 4"]
    scores = engine.logprobs(prompts, continuations)
    for prompt, continuation, score in zip(prompts, continuations, scores):
        prompt_ids = engine.encode(prompt)
        cont_ids = engine.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + cont_ids])
        with torch.no_grad():
            logp = torch.log_softmax(engine.model(ids).logits[0].float(), -1)
        expected = [logp[len(prompt_ids) + i - 1, t].item() for i, t in enumerate(cont_ids)]
        assert score.token_logprobs == pytest.approx(expected, abs=1e-4)
        assert score.total == pytest.approx(sum(expected), abs=1e-3)
        assert len(score.tokens) == len(cont_ids)


def test_logprobs_rank_the_right_answer_first(engine):
    scores = engine.logprobs(["The capital of France is"] * 2, [" Paris", " Banana"])
    assert scores[0].total > scores[1].total


def test_bad_arguments_give_clear_errors(engine):
    with pytest.raises(ValueError, match="one continuation per prompt"):
        engine.logprobs(["a", "b"], ["x"])
    with pytest.raises(TypeError, match="list of prompts"):
        engine.generate("a single string")
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError, match="backend"):
        make_engine(backend="tensorrt")


def test_helpers_for_prompts_and_stops(lm):
    _, tokenizer = lm
    text = render_prompt(tokenizer, [{"role": "user", "content": "Hi"}])
    assert text.endswith("<|im_start|>assistant\n")
    assert render_prompt(tokenizer, "plain") == "plain"
    assert cut_at_stop("abc. def", [".", " d"]) == ("abc", True)
    assert SamplingParams(stop="\n").stop == ("\n",)


def test_vllm_backend_maps_the_interface(monkeypatch, tiny_engine):
    """vLLM needs a GPU: a stand-in module checks that requests and results are translated."""
    tokenizer = tiny_engine.tokenizer  # the embedded LM's tokenizer and chat template
    seen = {}

    class FakeLLM:
        def __init__(self, model, **kwargs):
            seen["model"] = model

        def get_tokenizer(self):
            return tokenizer

        def generate(self, requests, sampling, use_tqdm=False):
            seen.setdefault("requests", []).append((requests, sampling))
            if isinstance(sampling, list):  # one SamplingParams per prompt
                assert len(sampling) == len(requests)
                sampling = sampling[0]
            if sampling.kwargs.get("prompt_logprobs"):
                return [types.SimpleNamespace(
                    prompt_token_ids=r["prompt_token_ids"],
                    prompt_logprobs=[None] + [{t: types.SimpleNamespace(logprob=-0.5)} for t in r["prompt_token_ids"][1:]])
                    for r in requests]
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text="ok", token_ids=[1, 2], finish_reason="stop")]
                                          * sampling.kwargs["n"]) for _ in requests]

    fake = types.ModuleType("vllm")
    fake.LLM = FakeLLM
    fake.SamplingParams = lambda **kwargs: types.SimpleNamespace(kwargs=kwargs)
    monkeypatch.setitem(sys.modules, "vllm", fake)
    engine = VLLMEngine("some/model", tensor_parallel_size=1)
    out = engine.generate([[{"role": "user", "content": "Hi"}]], SamplingParams(n=2, stop=("\n",), max_new_tokens=7))
    assert out == [[Completion("ok", 2, "stop")] * 2]
    texts, sampling = seen["requests"][0]
    assert texts[0].endswith("<|im_start|>assistant\n"), "chat template must be applied before vLLM"
    assert sampling[0].kwargs["max_tokens"] == 7 and sampling[0].kwargs["stop"] == ["\n"]
    same = [[{"role": "user", "content": "Hi"}]] * 2
    engine.generate(same, SamplingParams(temperature=1.0, seed=5))
    engine.generate(same, SamplingParams(temperature=1.0, seed=6))
    seeds = [[p.kwargs["seed"] for p in sampling] for _, sampling in seen["requests"][1:]]
    assert len({seed for pair in seeds for seed in pair}) == 4, \
        f"vLLM seeds each request: equal seeds {seeds} make equal prompts give equal samples"
    scores = engine.logprobs(["The sky is"], [" blue today"])
    n_cont = len(tokenizer(" blue today", add_special_tokens=False)["input_ids"])
    assert scores[0].total == pytest.approx(-0.5 * n_cont) and len(scores[0].tokens) == n_cont


def test_hf_engine_from_name_is_the_cpu_default():
    engine = make_engine(backend="hf", batch_size=2)
    assert isinstance(engine, HFEngine) and engine.batch_size == 2


def test_sampling_follows_the_seed_and_leaves_the_callers_generator_alone(tiny_engine):
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=1)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = tiny_engine.generate(["Hello", "Hello"], params, progress=False)
    assert torch.equal(torch.rand(3), expected), \
        "generate must not reseed the caller's global generator (torch.manual_seed): fork it, then seed the fork"
    assert tiny_engine.generate(["Hello", "Hello"], params, progress=False) == first, "the same seed, the same samples"
    other = tiny_engine.generate(["Hello", "Hello"], dataclasses.replace(params, seed=2), progress=False)
    assert other != first, "another seed (another chunk) must give another random stream"
    assert len({c.text for out in first for c in out}) == 4, "every prompt and copy gets its own draws"

import pytest

from helpers.cli import main
from helpers.throughput import batched, chat_prompts, one_at_a_time


def test_chat_prompts_are_distinct_and_bounded():
    prompts = chat_prompts(64)
    assert len({p[0]["content"] for p in prompts}) == 64
    with pytest.raises(ValueError, match="At most"):
        chat_prompts(10_000)


def test_engine_and_naive_generate_the_same_tokens(engine):
    prompts = chat_prompts(3)
    naive = one_at_a_time(engine, prompts, max_new_tokens=6)
    fast = batched(engine, prompts, max_new_tokens=6, batch_size=3)
    assert naive.new_tokens == fast.new_tokens, "greedy decoding must not depend on batching"
    assert engine.batch_size == 4, "batched() must restore the engine's batch size"
    assert fast.tokens_per_s > 0


def test_cli_lists_embedded_models(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m-instruct" in out and "all-minilm-l6-v2" in out

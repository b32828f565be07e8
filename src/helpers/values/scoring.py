"""Score an LM's values under personas: one answer per (persona, item), one row per persona.

    answers = score_personas(engine, personas, items, method="logprob_yes_no")
    table = scores_table(answers)        # columns role, setting, then one column per value in [-1, 1]

Three methods, all batched through a generation engine (``helpers.generation``):

* ``generate`` -- the paper's: a short thought, then yes or no, greedy; the raw text is kept,
  ``parse_yes_no`` reads the answer, and an item scores +agreement for yes, -agreement for no and
  0 when the answer is unclear (counted in ``n_unclear``).
* ``logprob_yes_no`` -- one forward pass: the persona and the question in one user turn, the
  assistant turn opened by "Answer:", and the probabilities of " Yes" and " No" as next token (where
  the embedded model puts most of its mass); an item scores agreement x (P(yes) - P(no)) /
  (P(yes) + P(no)).
* ``logprob_like_me`` -- one forward pass: how much the first-person statement is "like me" on the
  6-point scale; the expected rating E over the digits 1-6 gives agreement x (E - 3.5) / 2.5.

The log-probability prompts carry no few-shot examples and put the persona in the user turn: on the
embedded 135M model, a persona in the system turn followed by examples moved value scores across
roles several times less (standard deviation 0.01-0.03 per value over 17 personas, against
0.02-0.14 over 9 personas with this prompt), which leaves causal discovery little to find.

A value's score is the mean over its items, in [-1, 1]. ``option_logprobs`` is a pure function of
the engine's model: forward hooks attached to ``engine.model`` (activation steering) act on it.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..generation import Prompt, SamplingParams, length_sorted_batches, render_prompt
from .inventory import like_me_scale
from .roles import Persona

METHODS = ("generate", "logprob_yes_no", "logprob_like_me")
ANSWER_PREFIX = "Answer:"
YES_NO_OPTIONS = (" Yes", " No")
# The cue of the SAE-steering prompts (notebook 06): the paper steers at the tokens of " your values".
STEERING_PHRASE = " your values"
VALUES_CUE = f"Answer yes or no according to{STEERING_PHRASE}."
LIKE_ME_OPTIONS = ("1", "2", "3", "4", "5", "6")  # after "Answer: ", so each digit is one token
INSTRUCTION = ("Answer every question according to your own values. First write one short thought, "
               "then answer yes or no, in the form: Thought: ... Answer: yes/no")
# Two worked examples, as in the paper's prompt; about tastes, not about any value we measure.
FEW_SHOT = (("Do you enjoy spending an evening with a good book?",
             "Thought: Reading relaxes me and I learn from it.", "yes"),
            ("Would you rather eat the same meal every day for a year?",
             "Thought: I like some variety in what I eat.", "no"))


def _paper_messages(persona: Persona, question: str) -> list[dict]:
    """System turn with the persona and the instruction, two worked examples, then the question."""
    system = " ".join(part for part in (persona.system_prompt(), INSTRUCTION) if part)
    messages = [{"role": "system", "content": system}]
    for user, thought, answer in FEW_SHOT:
        messages += [{"role": "user", "content": user},
                     {"role": "assistant", "content": f"{thought} Answer: {answer}"}]
    return messages + [{"role": "user", "content": question}]


def _direct_prompt(persona: Persona, request: str, tokenizer, prefix: str) -> str:
    """One user turn (persona, then the request), rendered, with the answer ``prefix`` opened."""
    persona_text = persona.system_prompt()
    content = f"{persona_text}\n\n{request}" if persona_text else request
    return render_prompt(tokenizer, [{"role": "user", "content": content}]) + prefix


def build_prompt(persona: Persona, item: pd.Series | dict, method: str, tokenizer=None,
                 values_cue: bool = False) -> Prompt:
    """The prompt that asks ``persona`` about one inventory ``item`` under ``method``.

    ``generate`` returns chat messages (the paper's format: persona and instruction, two worked
    examples, the question); the log-probability methods return the rendered chat text with the
    assistant turn opened by "Answer:" (they need ``tokenizer`` for its chat template).
    ``values_cue=True`` (``logprob_yes_no`` only) asks for the answer "according to your values",
    the phrase at which SAE features are selected and added.
    """
    if values_cue and method != "logprob_yes_no":
        raise ValueError(f"values_cue applies to the logprob_yes_no prompt only, not {method!r}.")
    if method == "generate":
        return _paper_messages(persona, item["question"])
    if method not in METHODS:
        raise ValueError(f"Unknown scoring method {method!r}; choose one of {METHODS}.")
    if tokenizer is None:
        raise ValueError(f"Method {method!r} renders the chat text itself: pass the engine's tokenizer.")
    if method == "logprob_yes_no":
        request = VALUES_CUE if values_cue else "Answer yes or no."
        return _direct_prompt(persona, f"Question: {item['question']}\n{request}", tokenizer, ANSWER_PREFIX)
    scale = ", ".join(f"{i} = {label}" for i, label in enumerate(like_me_scale(), start=1))
    request = (f'Statement: "{item["item"]}"\nHow much is this statement like you? '
               f"Reply with one number ({scale}).")
    return _direct_prompt(persona, request, tokenizer, f"{ANSWER_PREFIX} ")


_ANSWER = re.compile(r"answer\s*[:\-]?\s*\**\s*(yes|no)\b", re.IGNORECASE)
_WORD = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def parse_yes_no(text: str) -> str:
    """"yes", "no" or "unclear": the last "Answer: yes/no", else the only yes/no word used."""
    answers = _ANSWER.findall(text)
    if answers:
        return answers[-1].lower()
    words = {w.lower() for w in _WORD.findall(text)}
    return words.pop() if len(words) == 1 else "unclear"


def option_logprobs(engine, prompts: Sequence[Prompt], options: Sequence[str], batch_size: int | None = None,
                    progress: bool = False) -> np.ndarray:
    """Log-probability of each option as the continuation of each prompt: array (prompts, options).

    When every option is a single token and the engine exposes its Hugging Face ``model``, all
    options of a prompt come from one forward pass (the next-token distribution at its end);
    otherwise each option is scored as a continuation with ``engine.logprobs``.
    """
    tokenizer = engine.tokenizer
    option_ids = [tokenizer(o, add_special_tokens=False)["input_ids"] for o in options]
    if not hasattr(engine, "model") or any(len(ids) != 1 for ids in option_ids):
        flat = engine.logprobs([p for p in prompts for _ in options], [o for _ in prompts for o in options])
        return np.array([s.total for s in flat], dtype=float).reshape(len(prompts), len(options))
    targets = torch.tensor([ids[0] for ids in option_ids])
    encoded = [engine.encode(p) for p in prompts]
    result = np.zeros((len(prompts), len(options)))
    device = next(engine.model.parameters()).device
    batches = length_sorted_batches([len(e) for e in encoded], batch_size or engine.score_batch_size)
    with torch.inference_mode():
        for batch in tqdm(batches, desc="score", unit="batch", disable=not progress):
            padded = tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, padding=True,
                                   padding_side="left", return_tensors="pt").to(device)
            positions = (padded["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            # logits_to_keep=1: the vocabulary projection for the last position only (left padding)
            logits = engine.model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"],
                                  position_ids=positions, logits_to_keep=1).logits[:, -1].float()
            result[batch] = torch.log_softmax(logits, dim=-1)[:, targets.to(device)].cpu().numpy()
    return result


def _answer_frame(personas: Sequence[Persona], items: pd.DataFrame, method: str) -> pd.DataFrame:
    rows = [{"role": p.role.name, "setting": p.setting.label, "value": item.value, "item": item.item,
             "agreement": item.agreement, "method": method} for p in personas for item in items.itertuples()]
    return pd.DataFrame(rows)


def score_personas(engine, personas: Sequence[Persona], items: pd.DataFrame, method: str = "logprob_yes_no",
                   batch_size: int | None = None, max_new_tokens: int = 48, progress: bool = False,
                   values_cue: bool = False) -> pd.DataFrame:
    """One row per (persona, item): the answer and the item's score in [-1, 1].

    ``generate`` adds ``raw_text`` and ``answer``; the log-probability methods add ``option_mass``
    (the probability the options got in total: a low mass means the model wanted to say something
    else) and ``p_yes`` or ``expected_rating``. ``values_cue``: see ``build_prompt``.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown scoring method {method!r}; choose one of {METHODS}.")
    if len({(p.role.name, p.setting.label) for p in personas}) != len(personas):
        raise ValueError("Two personas share a role name and setting: give every role a distinct name.")
    records = [(p, item) for p in personas for _, item in items.iterrows()]
    answers = _answer_frame(personas, items, method)
    agreement = answers["agreement"].to_numpy(float)
    if method == "generate":
        prompts = [build_prompt(p, item, method) for p, item in records]
        outputs = engine.generate(prompts, SamplingParams(max_new_tokens=max_new_tokens), progress=progress)
        answers["raw_text"] = [out[0].text for out in outputs]
        answers["answer"] = answers["raw_text"].map(parse_yes_no)
        answers["item_score"] = agreement * answers["answer"].map({"yes": 1.0, "no": -1.0, "unclear": 0.0})
        return answers
    prompts = [build_prompt(p, item, method, engine.tokenizer, values_cue=values_cue) for p, item in records]
    options = YES_NO_OPTIONS if method == "logprob_yes_no" else LIKE_ME_OPTIONS
    logprobs = option_logprobs(engine, prompts, options, batch_size=batch_size, progress=progress)
    probs = np.exp(logprobs)
    answers["option_mass"] = probs.sum(axis=1)
    probs = probs / probs.sum(axis=1, keepdims=True)
    if method == "logprob_yes_no":
        answers["p_yes"] = probs[:, 0]
        answers["item_score"] = agreement * (probs[:, 0] - probs[:, 1])
    else:
        answers["expected_rating"] = probs @ np.arange(1, len(options) + 1)
        answers["item_score"] = agreement * (answers["expected_rating"] - 3.5) / 2.5
    return answers


def scores_table(answers: pd.DataFrame, center: bool = False) -> pd.DataFrame:
    """One row per (role, setting) in first-seen order, one column per value (mean item score);
    answers parsed from generated text add ``n_unclear``, the number of unclear answers.

    ``center=True`` applies the acquiescence correction of questionnaire scoring: each persona's
    mean unsigned answer (its overall lean towards yes, over all its items) is subtracted before
    the agreement signs, so that a role that makes the model say yes to everything does not
    raise every value at once.
    """
    keys = ["role", "setting"]
    if center:
        unsigned = answers["agreement"] * answers["item_score"]
        lean = unsigned.groupby([answers[k] for k in keys], sort=False).transform("mean")
        answers = answers.assign(item_score=answers["agreement"] * (unsigned - lean))
    table = answers.pivot_table(index=keys, columns="value", values="item_score", aggfunc="mean", sort=False)
    table.columns.name = None
    if "answer" in answers:
        table["n_unclear"] = answers.assign(u=answers["answer"].eq("unclear")).groupby(keys, sort=False)["u"].sum()
    return table.reset_index()

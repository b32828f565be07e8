"""Question loaders: HumanEval (real, bundled), data_source JSONL files, Hub benchmark converters."""

from __future__ import annotations

import json
import time

import datasets
import huggingface_hub.constants
import pytest

from helpers.tasks import check
from helpers.tasks.loaders import HUB_SOURCES, humaneval_items, load_hub_benchmark, read_data_source_jsonl

# --- HumanEval ----------------------------------------------------------------------------------


def test_humaneval_all_problems_and_fields():
    items = humaneval_items()
    assert len(items) == 164, "HumanEval has 164 problems"
    assert len({item.id for item in items}) == 164, "ids must be unique"
    item = items[0]
    assert item.id == "humaneval/HumanEval/0" and item.task == "humaneval" and item.domain == "code"
    assert (item.answer_format, item.checker) == ("code", "code")
    assert item.metadata["prompt"] in item.question and "```python" in item.question
    assert item.metadata["tests"].rstrip().endswith(f"check({item.metadata['entry_point']})")
    assert item.answer.startswith(item.metadata["prompt"]), "answer = prompt + canonical solution"


def test_humaneval_sampling_is_deterministic():
    first, again, other = humaneval_items(5, seed=3), humaneval_items(5, seed=3), humaneval_items(5, seed=4)
    assert [i.id for i in first] == [i.id for i in again], "same seed, same sample"
    assert [i.id for i in first] != [i.id for i in other], "another seed should give another sample"
    with pytest.raises(ValueError, match="n=500"):
        humaneval_items(500)


def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail():
    for item in humaneval_items(5, seed=0):
        full = check(item, f"Thought: done.\n```python\n{item.answer}\n```\nAction: Finish[done]")
        assert full.correct, f"{item.id}: canonical solution failed: {full.detail}"
        body = item.answer[len(item.metadata["prompt"]):]
        assert check(item, f"```python\n{body}\n```").correct, f"{item.id}: body-only completion failed"
        wrong = check(item, f"```python\n{item.metadata['prompt']}    return None\n```")
        assert not wrong.correct, f"{item.id}: a function returning None must fail the tests"


def test_humaneval_full_function_without_the_prompts_helpers_passes():
    """HumanEval/10's prompt defines is_palindrome; a model often rewrites only make_palindrome."""
    item = next(i for i in humaneval_items() if i.id == "humaneval/HumanEval/10")
    solution = ("def make_palindrome(string: str) -> str:\n"
                "    for i in range(len(string) + 1):\n"
                "        if is_palindrome(string[i:]):\n"
                "            return string + string[:i][::-1]\n")
    verdict = check(item, f"```python\n{solution}```")
    assert verdict.correct, f"the prompt (with its helper) must be put before the code: {verdict.detail}"


# --- data_source JSONL --------------------------------------------------------------------------

def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_data_source_rows_become_items(tmp_path):
    path = write_lines(tmp_path / "qa.jsonl", [
        json.dumps({"id": "q1", "question": "Capital of France?", "answer": "Paris"}),
        "",
        json.dumps({"question": "2 + 2?", "answer": 4}),
    ])
    items = read_data_source_jsonl(path, task="demo", domain="language", answer_format="text")
    assert [i.id for i in items] == ["demo/q1", "demo/3"], "ids: the row's id, else its line number"
    assert items[1].answer == "4", "numeric answers are kept as text"
    assert check(items[0], "Action: Finish[paris]").correct


def test_data_source_mbpp_code_rows(tmp_path):
    row = {"id": 11, "question": "Write a function to remove the first and last occurrence of a given "
                                 "character from the string.",
           "answer": "def remove_Occ(s, ch):\n    return s.replace(ch, '', 1)[::-1].replace(ch, '', 1)[::-1]",
           "test_list": ['assert remove_Occ("hello","l") == "heo"', 'assert remove_Occ("abcda","a") == "bcd"']}
    item, = read_data_source_jsonl(write_lines(tmp_path / "mbpp.jsonl", [json.dumps(row)]), task="mbpp",
                                   domain="code", answer_format="code")
    assert row["test_list"][0] in item.question, "the tests show the model the function name"
    assert check(item, f"```python\n{row['answer']}\n```").correct, "the reference solution must pass"
    assert not check(item, "```python\ndef remove_Occ(s, ch):\n    return s\n```").correct


def test_data_source_malformed_rows_are_reported_with_line_numbers(tmp_path):
    path = write_lines(tmp_path / "mixed.jsonl", [
        json.dumps({"question": "Which?\nA. x\nB. y", "answer": "b"}),  # line 1: fine
        '{"question": "broken", "answer": ',                          # line 2: bad JSON
        json.dumps({"answer": "a"}),                                  # line 3: no question
        json.dumps({"question": "Which?", "answer": ["a"]}),          # line 4: wrong type
        json.dumps(["not", "an", "object"]),                          # line 5
        json.dumps({"question": "Which?", "answer": "c", "test_list": "assert x"}),  # line 6
        json.dumps({"id": "q7", "question": "Again?", "answer": "a"}),  # line 7: own id
        json.dumps({"question": "Last?", "answer": "d"}),             # line 8: id = line number
    ])
    with pytest.warns(UserWarning) as caught:
        items = read_data_source_jsonl(path, task="quiz", domain="logic", answer_format="choice")
    message = str(caught[0].message)
    for line in (2, 3, 4, 5, 6):
        assert f"line {line}:" in message, f"line {line} should be reported as malformed:\n{message}"
    assert "skipped 5 malformed row(s)" in message
    assert [i.id for i in items] == ["quiz/1", "quiz/q7", "quiz/8"]
    assert [i.answer for i in items] == ["B", "A", "D"], "choice answers are upper-cased; good rows kept"


def test_data_source_duplicate_ids_are_skipped(tmp_path):
    path = write_lines(tmp_path / "dup.jsonl", [json.dumps({"id": 7, "question": "Q?", "answer": "x"})] * 2)
    with pytest.warns(UserWarning, match="line 2: duplicate id 'demo/7'"):
        items = read_data_source_jsonl(path, task="demo", domain="language", answer_format="text")
    assert len(items) == 1


def test_data_source_code_rows_need_tests(tmp_path):
    path = write_lines(tmp_path / "code.jsonl", [json.dumps({"question": "Write f.", "answer": "def f(): pass"})])
    with pytest.warns(UserWarning, match="test_list"):
        assert read_data_source_jsonl(path, task="c", domain="code", answer_format="code") == []


def test_data_source_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.warns(UserWarning, match="no rows"):
        assert read_data_source_jsonl(empty, task="t", domain="logic", answer_format="text") == []
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_data_source_jsonl(tmp_path / "missing.jsonl", task="t", domain="logic", answer_format="text")
    with pytest.raises(ValueError, match="answer_format"):
        read_data_source_jsonl(empty, task="t", domain="logic", answer_format="number")


def test_data_source_reads_a_real_reflectevo_file(shared_data):
    path = shared_data / "reflectevo_formats" / "example_D+.jsonl"
    items = read_data_source_jsonl(path, task="reflectevo", domain="logic", answer_format="choice")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(items) == len(rows) and all(len(i.answer) == 1 and i.answer.isupper() for i in items)
    for item, row in zip(items, rows):
        for trial in ("first_trial_reasoning", "second_trial_reasoning"):
            stored_correct = "Answer is CORRECT" in row[trial]
            assert check(item, row[trial]).correct == stored_correct, \
                f"{item.id} {trial}: our verdict disagrees with the stored Observation"


# --- Hub benchmarks -----------------------------------------------------------------------------

HUB_ROWS = {
    "lucasmccabe/logiqa": [
        {"context": "All birds can fly. Tweety is a bird.", "query": "Which must be true?",
         "options": ["Tweety can fly.", "Tweety cannot fly.", "Tweety is a fish.", "None."], "correct_option": 0},
        {"context": "Broken row.", "query": "?", "options": ["a", "b"], "correct_option": 5},
    ],
    "EleutherAI/hendrycks_math": [
        {"problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?",
         "solution": "We have $\\frac{2}{4} + \\frac{1}{4} = \\boxed{\\frac{3}{4}}$.", "level": "Level 1",
         "type": "Algebra"},
    ],
    "google-research-datasets/mbpp": [
        {"source_file": "x", "task_id": 2,
         "prompt": "Write a function to find the shared elements from the given two lists.",
         "code": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))",
         "test_imports": [], "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"]},
    ],
    "tasksource/bigbench": [
        {"inputs": "Q: Is the sky blue?\nA:", "targets": ["yes"], "multiple_choice_targets": ["no", "yes"],
         "multiple_choice_scores": [0, 1], "idx": 0},
        {"inputs": "Q: Capital of Italy?\nA:", "targets": ["Rome", "Roma"], "multiple_choice_targets": [],
         "multiple_choice_scores": [], "idx": 1},
    ],
}


@pytest.fixture
def fake_hub(monkeypatch):
    """Stand-in for a Hub download (impossible here): small real Dataset objects per dataset id."""
    calls = []

    def load_dataset(dataset_id, config=None, split=None):
        calls.append((dataset_id, config, split))
        return datasets.Dataset.from_list(HUB_ROWS[dataset_id])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_logiqa(fake_hub):
    with pytest.warns(UserWarning, match="row 1"):
        items = load_hub_benchmark("logiqa")
    assert fake_hub == [("lucasmccabe/logiqa", None, "test")]
    item, = items
    assert item.answer == "A" and item.answer_format == "choice" and "A. Tweety can fly." in item.question
    assert check(item, "Action: Finish[A]").correct


def test_hub_math_all_subjects_and_one(fake_hub):
    items = load_hub_benchmark("math")
    assert len(fake_hub) == 7, "plain 'math' loads every subject config"
    assert len(items) == 7 and items[0].answer == "\\frac{3}{4}", "answer = last \\boxed{} of the solution"
    one = load_hub_benchmark("math:algebra")
    assert fake_hub[-1] == ("EleutherAI/hendrycks_math", "algebra", "test")
    assert one[0].task == "math/algebra" and check(one[0], "Action: Finish[0.75]").correct


def test_hub_mbpp(fake_hub):
    item, = load_hub_benchmark("mbpp", split="train")
    assert fake_hub == [("google-research-datasets/mbpp", "sanitized", "train")]
    assert item.id == "mbpp/2" and "similar_elements" in item.question
    assert check(item, f"```python\n{item.answer}\n```").correct


def test_hub_bigbench_choice_and_text(fake_hub):
    choice, text = load_hub_benchmark("bigbench:boolean_expressions")
    assert fake_hub == [("tasksource/bigbench", "boolean_expressions", "test")]
    assert (choice.answer_format, choice.answer) == ("choice", "B")
    assert (text.answer_format, text.answer, text.metadata["aliases"]) == ("text", "Rome", ["Roma"])
    assert check(text, "Action: Finish[Roma]").correct


def test_hub_sampling_and_bad_names(fake_hub):
    assert len(load_hub_benchmark("math", n=3, seed=1)) == 3
    with pytest.raises(ValueError, match="bigbench:<name>"):
        load_hub_benchmark("bigbench")
    with pytest.raises(ValueError, match="Unknown hub benchmark"):
        load_hub_benchmark("gsm8k")
    assert set(HUB_SOURCES) == {"logiqa", "math", "mbpp", "bigbench"}


def test_hub_unreachable_raises_a_clear_error(monkeypatch):
    # datasets reads the offline switch at import time, so set the module constants as well.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(RuntimeError) as error:
        load_hub_benchmark("logiqa")
    message = str(error.value)
    assert "unreachable" in message and "lucasmccabe/logiqa" in message and "read_data_source_jsonl" in message
    assert time.monotonic() - start < 20, "offline mode should fail fast instead of retrying"

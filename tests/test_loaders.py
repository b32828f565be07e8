"""Question loaders: HumanEval (real, bundled), data_source JSONL files, Hub benchmark converters."""

from __future__ import annotations

import json
import time

import datasets
import huggingface_hub.constants
import pytest

from helpers import cli
from helpers.errors import UserError
from helpers.reflection.pipeline import select_items
from helpers.tasks import check
from helpers.tasks.checkers import normalize_math
from helpers.tasks.loaders import (CODE_INSTRUCTION, HUB_SOURCES, humaneval_items, load_hub_benchmark,
                                   read_data_source_jsonl)

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
    expected = r"code\.jsonl:1: no row could be used: a code item needs a non-empty 'test_list'"
    with pytest.raises(UserError, match=expected):
        read_data_source_jsonl(path, task="c", domain="code", answer_format="code")


def test_data_source_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(UserError, match="holds no questions"):
        read_data_source_jsonl(empty, task="t", domain="logic", answer_format="text")
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


# --- data_source files of ReflectEvo's four sources, in their public schemas ----------------------

LOGIQA_ROWS = [  # {id, question, answer}: options inside the question, the answer a lower-case letter
    {"id": 101, "question": "Every member of the chess club plays in the Sunday league. Lin does not play in the "
                            "Sunday league.\nWhich of the following must be true?\nA.Lin is a member of the chess "
                            "club.\nB.Lin is not a member of the chess club.\nC.Every Sunday league player is in the "
                            "chess club.\nD.Lin plays chess on Sundays.", "answer": "b"},
    {"id": 57, "question": "All the kettles on sale are electric. Some electric appliances are cheap.\nWhich of the "
                           "following follows?\nA.Some kettles are cheap.\nB.No kettle is cheap.\nC.All cheap "
                           "appliances are kettles.\nD.None of the above.", "answer": "d"},
]
MATH_ROWS = [  # Hendrycks MATH {problem, level, type, solution}: the answer is the solution's last \boxed{}
    {"problem": "Compute $\\sin 60^\\circ$.", "level": "Level 1", "type": "Precalculus",
     "solution": "Let $P$ be the point on the unit circle $60^\\circ$ counterclockwise from $(1,0)$, and $D$ the "
                 "foot of the altitude from $P$. Triangle $POD$ is a 30-60-90 triangle, so $DO = \\frac{1}{2}$ and "
                 "$PD = \\frac{\\sqrt{3}}{2}$. Therefore $\\sin 60^\\circ = \\boxed{\\frac{\\sqrt{3}}{2}}$."},
    {"problem": "What is the sum of the first five positive odd integers?", "level": "Level 1", "type": "Algebra",
     "solution": "A first guess of $\\boxed{20}$ forgets the $9$: the sum is $1 + 3 + 5 + 7 + 9 = \\boxed{25}$."},
]
MBPP_ROWS = [  # original MBPP {text, code, task_id, test_setup_code, test_list, challenge_test_list}
    {"text": "Write a function to find the perimeter of a rectangle.",
     "code": "def rectangle_perimeter(l,b):\r\n  perimeter=2*(l+b)\r\n  return perimeter", "task_id": 901,
     "test_setup_code": "", "test_list": ["assert rectangle_perimeter(10,20)==60",
                                          "assert rectangle_perimeter(10,5)==30",
                                          "assert rectangle_perimeter(4,2)==12"], "challenge_test_list": []},
    {"text": "Write a function to find the area of a circle given its radius.",
     "code": "def circle_area(r):\r\n  return 3.141592653589793 * r * r", "task_id": 902,
     "test_setup_code": "import math", "test_list": ["assert math.isclose(circle_area(1), math.pi)",
                                                     "assert math.isclose(circle_area(2), 4 * math.pi)"],
     "challenge_test_list": ["assert circle_area(0) == 0"]},
]
BIGBENCH_ROWS = [  # {question, answer}: free-form text
    {"question": "The library opens at nine and closes at five on weekdays; on Saturdays it closes at noon.\n\n"
                 "Question: When does the library close on Saturdays?", "answer": "at noon"},
    {"question": "Wolfgang Pauli proposed the neutrino in 1930, and Enrico Fermi named it.\n\nQuestion: Who named "
                 "the neutrino?", "answer": "Enrico Fermi"},
]
SOURCES = {"logiqa": (LOGIQA_ROWS, "choice"), "math": (MATH_ROWS, "math"), "mbpp": (MBPP_ROWS, "code"),
           "bigbench": (BIGBENCH_ROWS, "text")}


def write_rows(path, rows):
    return write_lines(path, [json.dumps(row) for row in rows])


def test_logiqa_rows_are_detected_as_choice_with_upper_case_letter_answers(tmp_path):
    items = read_data_source_jsonl(write_rows(tmp_path / "logiqa_test.jsonl", LOGIQA_ROWS), task="logiqa_test",
                                   domain="logic")
    assert [(i.id, i.answer, i.answer_format, i.checker) for i in items] == [
        ("logiqa_test/101", "B", "choice", "choice"), ("logiqa_test/57", "D", "choice", "choice")]
    assert items[0].question == LOGIQA_ROWS[0]["question"], "the options stay in the question as written"
    assert check(items[0], "Thought: Lin is outside the league.\nAction: Finish[B]").correct
    assert not check(items[0], "Thought: ...\nAction: Finish[A]").correct


def test_math_rows_take_the_solutions_last_boxed_answer_and_math_verify_judges_it(tmp_path):
    items = read_data_source_jsonl(write_rows(tmp_path / "math_test.jsonl", MATH_ROWS), task="math_test",
                                   domain="math")
    assert [(i.id, i.answer, i.answer_format, i.checker) for i in items] == [
        ("math_test/1", "\\frac{\\sqrt{3}}{2}", "math", "math"), ("math_test/2", "25", "math", "math")], \
        "the answer is the last \\boxed{} (nested braces kept), ids the line numbers"
    assert items[0].question == MATH_ROWS[0]["problem"]
    assert items[0].metadata == {"level": "Level 1", "type": "Precalculus", "solution": MATH_ROWS[0]["solution"]}
    equivalent = "\\dfrac{\\sqrt3}{2}"
    assert normalize_math(equivalent) != normalize_math(items[0].answer), "equal only symbolically (math-verify)"
    verdict = check(items[0], f"Thought: sin 60 is root 3 over 2.\nAction: Finish[{equivalent}]")
    assert (verdict.correct, verdict.extracted) == (True, equivalent)
    assert not check(items[0], "Action: Finish[\\frac{\\sqrt{2}}{2}]").correct
    assert check(items[1], "Action: Finish[25]").correct and not check(items[1], "Action: Finish[20]").correct


def test_mbpp_rows_show_task_and_tests_and_are_checked_in_the_sandbox(tmp_path):
    items = read_data_source_jsonl(write_rows(tmp_path / "mbpp_test.jsonl", MBPP_ROWS), task="mbpp_test",
                                   domain="code")
    assert [(i.id, i.answer_format, i.checker) for i in items] == [("mbpp_test/901", "code", "code"),
                                                                  ("mbpp_test/902", "code", "code")]
    rectangle, circle = items
    assert rectangle.question == (f"{MBPP_ROWS[0]['text']}\nYour code should pass these tests:\n"
                                  + "\n".join(MBPP_ROWS[0]["test_list"]) + f"\n{CODE_INSTRUCTION}")
    assert rectangle.answer == MBPP_ROWS[0]["code"]
    assert circle.metadata["tests"] == "import math\n" + "\n".join(MBPP_ROWS[1]["test_list"]) + "\n", \
        "test_setup_code, then test_list; challenge_test_list is not used"
    for item, row in zip(items, MBPP_ROWS):
        verdict = check(item, f"Thought: done.\n```python\n{row['code']}\n```\nAction: Finish[done]")
        assert verdict.correct, f"{item.id}: the reference solution must pass in the sandbox: {verdict.detail}"
    assert not check(rectangle, "```python\ndef rectangle_perimeter(l, b):\n    return l + b\n```").correct
    assert not check(circle, "```python\ndef circle_area(r):\n    return 3.14 * r\n```").correct


def test_bigbench_rows_are_detected_as_free_text(tmp_path):
    items = read_data_source_jsonl(write_rows(tmp_path / "bigbench_test.jsonl", BIGBENCH_ROWS),
                                   task="bigbench_test", domain="language")
    assert [(i.id, i.answer, i.answer_format, i.checker) for i in items] == [
        ("bigbench_test/1", "at noon", "text", "text"), ("bigbench_test/2", "Enrico Fermi", "text", "text")]
    assert check(items[0], "Thought: Saturdays differ.\nAction: Finish[At noon.]").correct
    assert not check(items[0], "Action: Finish[at five]").correct


def test_a_named_answer_format_reads_question_answer_rows_that_way(tmp_path):
    path = write_rows(tmp_path / "numbers.jsonl", [{"question": "What is half of 3?", "answer": "3/2"}])
    item, = read_data_source_jsonl(path, task="numbers", domain="math", answer_format="math")
    assert (item.answer_format, item.checker) == ("math", "math") and check(item, "Action: Finish[1.5]").correct
    text, = read_data_source_jsonl(path, task="numbers", domain="math")
    assert text.answer_format == "text", "auto: question/answer rows with free answers are BIG-bench text"


def _one_line_error(path, **kwargs) -> str:
    with pytest.raises(UserError) as error:
        read_data_source_jsonl(path, task="t", domain="custom", **kwargs)
    message = str(error.value)
    assert "\n" not in message, f"the error must be one line:\n{message}"
    return message


def test_a_file_in_no_known_format_fails_naming_line_fields_seen_and_expected(tmp_path):
    path = write_rows(tmp_path / "other.jsonl", [{"prompt": "2+2?", "target": "4"}, {"prompt": "3+3?", "target": "6"}])
    message = _one_line_error(path)
    for text in (f"{path}:1: no row is in a tasks-file format", "has fields {prompt, target}",
                 "{id, question, answer", "MATH {problem, level, type, solution}",
                 "MBPP {text, code, task_id, test_setup_code, test_list, challenge_test_list}", "Rename the fields"):
        assert text in message, f"{text!r} missing from: {message}"


def test_a_file_mixing_formats_fails_naming_both_lines(tmp_path):
    path = write_rows(tmp_path / "mixed.jsonl", [MATH_ROWS[0], MATH_ROWS[1], MBPP_ROWS[0]])
    message = _one_line_error(path)
    for text in (f"{path}:3: mixed formats", "line 1 is a MATH row {problem, level, type, solution}",
                 "line 3 is a MBPP row {text, code, task_id, test_setup_code, test_list, challenge_test_list}",
                 "split it into one file per format"):
        assert text in message, f"{text!r} missing from: {message}"


def test_a_file_whose_every_row_is_skipped_fails_instead_of_giving_no_questions(tmp_path):
    unboxed = [dict(row, solution=row["solution"].replace("\\boxed", "")) for row in MATH_ROWS]
    message = _one_line_error(write_rows(tmp_path / "unboxed.jsonl", unboxed))
    for text in (f"{tmp_path / 'unboxed.jsonl'}:1: no row could be used: the solution has no \\boxed{{}} answer",
                 "(and 1 more skipped row(s))", "fields seen {problem, level, type, solution}",
                 "expected MATH rows {problem, level, type, solution}", "Fix the rows"):
        assert text in message, f"{text!r} missing from: {message}"


def test_a_named_answer_format_that_does_not_fit_the_rows_fails(tmp_path):
    message = _one_line_error(write_rows(tmp_path / "mbpp.jsonl", MBPP_ROWS), answer_format="choice")
    for text in (f"{tmp_path / 'mbpp.jsonl'}:1: --tasks-file-format choice does not fit its MBPP rows",
                 "have code answers", "pass --tasks-file-format code, or auto"):
        assert text in message, f"{text!r} missing from: {message}"


def test_a_row_missing_its_formats_fields_is_skipped_with_its_line(tmp_path):
    path = write_rows(tmp_path / "math.jsonl", [MATH_ROWS[0], {"problem": "Compute $1+1$."}])
    with pytest.warns(UserWarning, match=r"line 2: 'solution' missing for a MATH row"):
        items = read_data_source_jsonl(path, task="math", domain="math")
    assert [i.id for i in items] == ["math/1"]


def test_the_reflectevo_release_file_is_detected_as_logiqa(shared_data):
    path = shared_data / "reflectevo_formats" / "example_D+.jsonl"
    detected = read_data_source_jsonl(path, task="reflectevo", domain="logic")
    assert detected == read_data_source_jsonl(path, task="reflectevo", domain="logic", answer_format="choice")
    assert {i.answer_format for i in detected} == {"choice"}


# --- --tasks-file through the command line (items only: no model loads) -------------------------------

@pytest.mark.parametrize("source", SOURCES)
def test_reflect_evaluate_builds_its_questions_from_a_tasks_file_of_each_format(tmp_path, no_model_loads, source):
    rows, answer_format = SOURCES[source]
    path = write_rows(tmp_path / f"{source}_test.jsonl", rows)
    args = cli.build_parser().parse_args(["reflect", "evaluate", "--model", "no/such-model", "--tasks-file", str(path),
                                          "--n-questions", "2", "--out", str(tmp_path / "result.json")])
    cfg, items = cli.evaluation_items(args)
    assert (cfg.tasks, cfg.tasks_file, cfg.tasks_file_format) == ((), str(path), "auto")
    assert items == read_data_source_jsonl(path, task=f"{source}_test", domain="custom")
    assert len(items) == 2 and {(i.task, i.answer_format) for i in items} == {(f"{source}_test", answer_format)}


def test_reflect_generate_asks_the_questions_of_a_math_tasks_file(tmp_path, no_model_loads):
    path = write_rows(tmp_path / "math_test.jsonl", MATH_ROWS)
    args = cli.build_parser().parse_args(["reflect", "generate", "--tasks-file", str(path),
                                          "--out", str(tmp_path / "run")])
    items = select_items(cli.generation_config(args))
    assert [(i.id, i.answer, i.answer_format) for i in items] == [
        ("math_test/1", "\\frac{\\sqrt{3}}{2}", "math"), ("math_test/2", "25", "math")]


def test_reflect_evaluate_on_a_mixed_tasks_file_fails_in_one_line_before_the_model(tmp_path, capsys, no_model_loads):
    path = write_rows(tmp_path / "mixed.jsonl", [LOGIQA_ROWS[0], MATH_ROWS[0]])
    status = cli.main(["reflect", "evaluate", "--model", "smollm2-135m-instruct", "--tasks-file", str(path),
                       "--n-questions", "2", "--out", str(tmp_path / "result.json")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {path}:2: mixed formats") and "zero questions" not in err[0]
    assert not (tmp_path / "result.json").exists()


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

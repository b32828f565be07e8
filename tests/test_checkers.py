"""Answer extraction and the checkers, on realistic ReAct responses and real ReflectEvo outputs."""

from __future__ import annotations

import json

import pytest
import reasoning_gym

from helpers.tasks import CHECKERS, TaskItem, Verdict, check, extract_answer
from helpers.tasks.checkers import finish_content, math_equal, token_f1

CHOICE_QUESTION = ("I stand below you, and you throw a ball to me. Which direction does the ball travel?\n"
                   "Options:\nA. Up\nB. Down\nC. Left\nD. Right")


def make_item(answer: str, answer_format: str, checker: str | None = None, question: str = "Q?",
              **metadata) -> TaskItem:
    return TaskItem(id=f"test/{answer_format}", task="test", domain="logic", question=question,
                    answer=answer, answer_format=answer_format, checker=checker or answer_format,
                    metadata=metadata)


def react(answer: str, thought: str = "Let me think step by step.") -> str:
    return f"\nThought: \n\n{thought}\n\n\nAction: \nFinish[{answer}] \n\nObservation: Answer is INCORRECT"


# --- Finish[...] --------------------------------------------------------------------------------

@pytest.mark.parametrize("response, expected", [
    ("Thought: easy.\nAction: Finish[42]", "42"),
    ("Action: Finish[[1, 2]]", "[1, 2]"),
    ("Action: Finish[[[1, 2], [3]]] and some trailing words", "[[1, 2], [3]]"),
    ("Thought: first Finish[7] was a guess.\nAction: Finish[8]", "8"),
    ("finish [  Paris  ]\nObservation: Answer is CORRECT", "Paris"),
    ("Action: Finish[(-\\infty, 3]]", "(-\\infty, 3]"),
    ("Action: Finish[12", "12"),
    ("Action: Finish[]", None),
    ("No action at all", None),
])
def test_finish_content(response, expected):
    assert finish_content(response) == expected, f"Finish content of {response!r}: last Finish[ with balanced brackets"


# --- choice -------------------------------------------------------------------------------------

@pytest.mark.parametrize("content", ["B", "b", "B.", "(B)", "B) Down", "Option B", "option (b)", "**B**",
                                     "answer: B", "The answer is B"])
def test_choice_letter_forms(content):
    assert extract_answer(react(content), "choice") == "B", f"Finish[{content}] should give the letter B"


def test_choice_fallback_to_answer_is():
    assert extract_answer("Both are plausible, but the answer is (c).", "choice") == "C"
    assert extract_answer("So the correct answer is D", "choice") == "D"
    assert extract_answer("The answer is a bit unclear to me.", "choice") is None, \
        "a lower-case article after 'answer is' is not an option letter"


def test_choice_checker_right_wrong_and_missing():
    item = make_item("b", "choice", question=CHOICE_QUESTION)  # ReflectEvo stores lower-case gold
    right, wrong = check(item, react("B")), check(item, react("A"))
    assert right == Verdict(True, "B", 1.0, right.detail), "gold 'b' must match an extracted 'B'"
    assert (wrong.correct, wrong.extracted, wrong.score) == (False, "A", 0.0)
    assert check(item, "Thought: I am not sure.") == Verdict(False, None, 0.0, "no answer found")


def test_choice_answer_given_as_option_text():
    item = make_item("B", "choice", question=CHOICE_QUESTION)
    verdict = check(item, react("Down"))
    assert verdict.correct and verdict.extracted == "B", "an answer equal to one option's text maps to its letter"
    assert check(item, react("Sideways")).extracted is None


def concatenated_json(text: str) -> list[dict]:
    """The file holds pretty-printed JSON objects one after another (not one per line)."""
    records, position, decoder = [], 0, json.JSONDecoder()
    text = text.strip()
    while position < len(text):
        record, position = decoder.raw_decode(text, position)
        records.append(record)
        position = len(text) - len(text[position:].lstrip())
    return records


def test_choice_on_real_reflectevo_outputs(shared_data):
    """Every stored trial: our extraction equals ReflectEvo's generated_answer, our verdict its is_correct."""
    text = (shared_data / "reflectevo_formats" / "example_Reflection_raw.jsonl").read_text(encoding="utf-8")
    trials = 0
    for record in concatenated_json(text):
        item = make_item(record["answer"], "choice", question=record["question"])
        for trial in record["output"]:
            trials += 1
            stored = trial["generated_answer"]
            expected = stored if len(stored) == 1 else None
            assert extract_answer(trial["reasoning"], "choice") == expected, trial["reasoning"][-200:]
            assert check(item, trial["reasoning"]).correct == trial["is_correct"], trial["reasoning"][-200:]
    assert trials >= 20, "the reference file should hold at least 20 trials"


# --- text ---------------------------------------------------------------------------------------

def test_text_normalized_exact_match():
    item = make_item("The Eiffel Tower", "text")
    verdict = check(item, react("eiffel tower."))
    assert verdict.correct and verdict.score == 1.0, "articles, case and punctuation must be ignored"
    assert verdict.extracted == "eiffel tower."


def test_text_partial_answer_gets_f1_score():
    verdict = check(make_item("Barack Obama", "text"), react("President Barack Hussein Obama"))
    assert not verdict.correct
    assert verdict.score == pytest.approx(2 * (2 / 4) * (2 / 2) / (2 / 4 + 2 / 2)), "token F1 (SQuAD)"
    assert check(make_item("Paris", "text"), react("London")).score == 0.0


def test_text_aliases_and_missing_answer():
    item = make_item("United States", "text", aliases=["USA", "US"])
    assert check(item, react("the USA")).correct, "metadata['aliases'] are accepted gold answers"
    assert check(item, "Thought: no idea").detail == "no answer found"


def test_token_f1_edge_cases():
    assert token_f1("a the", "an") == 1.0, "both empty after normalization"
    assert token_f1("cat", "the") == 0.0


# --- math ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer, gold", [
    ("0.75", "3/4"), ("\\frac{3}{4}", "0.75"), ("\\dfrac{3}{4}", "\\frac34"), ("-\\frac{1}{2}", "-0.5"),
    ("1,000", "1000"), ("\\$5", "5"), ("$12.0$", "12"), ("\\text{7 }", "7"), (" 1 000", "1000"),
    ("x = 4", "4"), ("\\boxed{16}", "16"), ("90^\\circ", "90"), ("1e3", "1000"),
    ("\\frac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt{3}} {2}"), ("(-\\infty, 3]", "\\left(-\\infty,3\\right]"),
    ("50\\%", "0.5"), ("50", "50\\%"),  # math-verify's convention: a percentage matches its number and its value
])
def test_math_equivalent_forms(answer, gold):
    assert math_equal(answer, gold), f"{answer!r} and {gold!r} are the same value"


@pytest.mark.parametrize("answer, gold", [
    ("0.333", "1/3"), ("3/4", "4/3"), ("50\\%", "0.4"), ("1,2", "12"), ("\\sqrt{2}", "\\sqrt{3}"), ("1/0", "1/0x"),
])
def test_math_different_values(answer, gold):
    assert not math_equal(answer, gold), f"{answer!r} and {gold!r} must differ (exact comparison)"


@pytest.mark.parametrize("answer, gold", [
    ("\\frac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt3}{2}"), ("2\\sqrt2", "\\sqrt8"), ("x^2+2x", "2x+x^2"),
    ("\\boxed{\\frac{\\pi}{4}}", "\\frac14\\pi"), ("(x+1)^2", "x^2+2x+1"),
])
def test_math_answers_equal_as_expressions_are_judged_equal(answer, gold):
    assert math_equal(answer, gold), f"{answer!r} and {gold!r} are the same expression (math-verify should say so)"
    assert check(make_item(gold, "math"), react(answer)).correct, "the math checker must use the same equivalence"


@pytest.mark.parametrize("answer, gold", [
    ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{2}}{2}"), ("2\\sqrt2", "\\sqrt6"), ("x^2+2x", "x^2+3x"),
    ("x^2+2x", "2x^2+x"), ("\\frac{\\pi}{4}", "\\frac{\\pi}{3}"),
])
def test_math_answers_of_different_value_are_judged_different(answer, gold):
    assert not math_equal(answer, gold), f"{answer!r} and {gold!r} differ"


def test_math_extraction_order():
    assert extract_answer("So $x = \\boxed{\\frac{1}{2}}$.\nAction: Finish[0.5]", "math") == "0.5", "Finish wins"
    assert extract_answer("Adding up, the total is \\boxed{\\frac{1}{2}} (not 3).", "math") == "\\frac{1}{2}"
    assert extract_answer("We get 12 apples, then 1,250 in total.", "math") == "1,250", "last number"
    assert extract_answer("It is -3/4 of the cake.", "math") == "-3/4"
    assert extract_answer("I cannot solve this.", "math") is None


def test_math_checker():
    item = make_item("\\frac{14}{3}", "math")
    verdict = check(item, "Thought: 4 + 2/3 = 14/3.\nAction: Finish[$\\dfrac{14}{3}$]")
    assert verdict.correct and verdict.score == 1.0, verdict.detail
    assert not check(item, react("4.67")).correct, "a rounded decimal is not the exact fraction"
    assert check(item, "Thought: the answer is 14/3").correct, "falls back to the last number"
    assert check(item, "Thought: I give up").extracted is None


# --- code ---------------------------------------------------------------------------------------

CODE_PROMPT = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'
CODE_TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


def code_item(**metadata) -> TaskItem:
    metadata = {"prompt": CODE_PROMPT, "tests": CODE_TESTS + "\ncheck(add)\n", "entry_point": "add", **metadata}
    return make_item(CODE_PROMPT + "    return a + b\n", "code", **metadata)


@pytest.mark.parametrize("response", [
    "Thought: simple.\n```python\ndef add(a, b):\n    return a + b\n```\nAction: Finish[done]",
    "```\ndef add(a, b):\n    return b + a\n```",
    "First try:\n```python\ndef add(a, b):\n    return 0\n```\n"
    "Fixed:\n```python\ndef add(a, b):\n    return a + b\n```",
    "```python\n    return a + b\n```",  # HumanEval-style body only: the prompt is prepended
    "```python\nreturn a + b\n```",  # body without indentation
    "Action: Finish[def add(a, b): return a + b]",
    "Here it is: def add(a, b):\n    return a + b",
    "```python\ndef add(a, b):\n    return a + b",  # cut off before the closing fence
])
def test_code_checker_passes(response):
    verdict = check(code_item(), response)
    assert verdict.correct, f"should pass; sandbox said {verdict.detail!r}; extracted {verdict.extracted!r}"


def test_code_checker_fails_wrong_code_with_reason():
    verdict = check(code_item(), "```python\ndef add(a, b):\n    return a * b\n```")
    assert not verdict.correct and verdict.score == 0.0
    assert verdict.detail.startswith("AssertionError"), f"detail should carry the sandbox reason: {verdict.detail!r}"
    assert check(code_item(), "I do not know how.") == Verdict(False, None, 0.0, "no answer found")


def test_code_checker_mbpp_style_without_prompt():
    item = make_item("def square(x):\n    return x * x", "code",
                     tests="assert square(3) == 9\nassert square(-2) == 4\n")
    assert check(item, "```python\ndef square(x):\n    return x ** 2\n```").correct
    assert not check(item, "```python\ndef square(x):\n    return 2 * x\n```").correct


def test_code_checker_needs_tests():
    with pytest.raises(ValueError, match="metadata\\['tests'\\]"):
        check(make_item("x", "code"), "```python\nx = 1\n```")


# --- reasoning-gym ------------------------------------------------------------------------------

def rg_item(name: str, index: int = 0, answer_format: str = "text", **config) -> TaskItem:
    config = {"size": 5, "seed": 1, **config}
    entry = reasoning_gym.create_dataset(name, **config)[index]
    return TaskItem(id=f"rg/{name}/s1/{index}", task=f"rg/{name}", domain="math", question=entry["question"],
                    answer=str(entry["answer"]), answer_format=answer_format, checker="reasoning_gym",
                    metadata={"rg_entry": entry, "rg_dataset": name, "rg_config": config})


def test_reasoning_gym_scorer():
    item = rg_item("basic_arithmetic")  # "Calculate 5 - 3 - 6." -> -4
    right = check(item, react(item.answer))
    assert right.correct and right.score == 1.0, right.detail
    wrong = check(item, react("12345"))
    assert not wrong.correct and wrong.score < 1.0 and wrong.extracted == "12345"
    assert check(item, "Thought: hmm").detail == "no answer found"


def test_reasoning_gym_partial_score_is_kept():
    item = rg_item("puzzle24")
    wrong = check(item, react("1 + 1"))
    assert not wrong.correct and 0.0 < wrong.score < 1.0, "puzzle24 gives 0.01 to a well-formed wrong answer"
    assert check(item, react(item.answer)).correct


def test_reasoning_gym_without_config_uses_source_dataset():
    item = rg_item("syllogism")
    bare = TaskItem(**{**item.__dict__, "metadata": {"rg_entry": item.metadata["rg_entry"]}})
    assert check(bare, react(item.answer)).correct, "get_score_answer_fn(source_dataset) should score it"


def test_reasoning_gym_item_without_entry_is_an_error():
    with pytest.raises(ValueError, match="rg_entry"):
        check(make_item("1", "text", checker="reasoning_gym"), react("1"))


# --- check --------------------------------------------------------------------------------------

def test_unknown_checker_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid checkers") as error:
        check(make_item("1", "text", checker="nope"), react("1"))
    assert all(name in str(error.value) for name in CHECKERS)


@pytest.mark.parametrize("checker, answer_format", [("choice", "choice"), ("text", "text"), ("math", "math"),
                                                    ("code", "code"), ("reasoning_gym", "text")])
@pytest.mark.parametrize("response", ["", "   \n", None])
def test_empty_response_never_raises(checker, answer_format, response):
    item = make_item("A", answer_format, checker=checker)
    assert check(item, response) == Verdict(False, None, 0.0, "no answer found")


def test_extract_answer_rejects_unknown_format():
    with pytest.raises(ValueError, match="choice"):
        extract_answer("Finish[1]", "number")

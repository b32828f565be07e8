from collections import Counter

import pytest

from helpers.cli import main
from helpers.tasks import check
from helpers.tasks.reasoning_gym_tasks import RG_TASKS
from helpers.tasks.registry import TASKS, build_items, parse_task_names


def test_registry_covers_the_domains_with_enough_reasoning_gym_tasks():
    assert len(RG_TASKS) >= 10
    assert {"logic", "math", "algorithmic", "language"} <= {t.domain for t in RG_TASKS.values()}
    assert any(t.answer_format == "choice" for t in RG_TASKS.values()), "multiple-choice tasks are required"
    assert TASKS["humaneval"].domain == "code"


@pytest.mark.parametrize("name", sorted(RG_TASKS))
def test_gold_answers_pass_their_own_checker(name):
    for item in build_items([name], 5, seed=3):
        verdict = check(item, f"Thought: I know this.\nAction: Finish[{item.answer}]")
        assert verdict.correct, f"{item.id}: the gold answer {item.answer!r} fails its checker ({verdict.detail})"
        wrong = "Z" if item.answer_format == "choice" else "no idea"
        assert not check(item, f"Thought: hm.\nAction: Finish[{wrong}]").correct


def test_items_are_deterministic_interleaved_and_unique():
    first = build_items(["basic_arithmetic", "syllogism_mc"], 3, seed=1)
    assert [i.id for i in first] == [i.id for i in build_items(["basic_arithmetic", "syllogism_mc"], 3, seed=1)]
    assert [i.task for i in first] == ["basic_arithmetic", "syllogism_mc"] * 3
    assert {i.question for i in first} != {i.question for i in build_items(["basic_arithmetic", "syllogism_mc"], 3, 2)}
    assert len({i.id for i in build_items(list(RG_TASKS), 4, 0)}) == 4 * len(RG_TASKS)


@pytest.mark.parametrize("name", [n for n, t in RG_TASKS.items() if t.options])
def test_multiple_choice_gold_letters_are_balanced(name):
    items = build_items([name], 28, seed=0)
    letters = Counter(item.answer for item in items)
    # Gold positions cycle; only items with fewer distinct options (palindromes, ...) break the cycle.
    fair_share = len(items) / max(len(item.metadata["options"]) for item in items)
    assert max(letters.values()) <= fair_share + 2, f"gold letters are unbalanced: {letters}"


def test_unknown_task_names_are_listed():
    with pytest.raises(ValueError, match="Registered tasks: .*basic_arithmetic"):
        parse_task_names("basic_arithmetic,nope")
    assert parse_task_names("gcd, humaneval") == ["gcd", "humaneval"]


def test_cli_lists_tasks(capsys):
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert "syllogism_mc" in out and "humaneval" in out and "code" in out

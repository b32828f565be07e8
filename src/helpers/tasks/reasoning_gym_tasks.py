"""reasoning-gym tasks at difficulties where the embedded 135M model is neither always right nor
always wrong, including multiple-choice versions of tasks with a small answer set.

    from helpers.tasks.reasoning_gym_tasks import RG_TASKS, rg_items
    items = rg_items("basic_arithmetic", n=20, seed=0)

Each ``RGTask`` names a reasoning-gym dataset, the config that sets its difficulty, a domain and
an answer format. Free-answer tasks keep reasoning-gym's own scorer (checker ``reasoning_gym``);
multiple-choice tasks list their options (the gold answer plus the others in the task's small
answer set, shuffled per item with the seed) and are checked by letter (checker ``choice``).
The difficulties come from ``bench/calibrate_tasks.py``, which measures the embedded model's
trial-1 accuracy per task; its latest results are in ``bench/results/task_calibration.json``.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field
from typing import Any, Callable

from .items import TaskItem

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FAMILY_RELATIONS = ["mother", "father", "sister", "brother", "daughter", "son", "wife", "husband",
                    "grandmother", "grandfather", "aunt", "uncle", "niece", "nephew"]


def _cube_colours(entry: dict) -> list[str]:
    return sorted(set(entry["metadata"]["initial_state"].values()))


def _family_options(entry: dict) -> list[str]:
    """The gold relation and three other relations, chosen per question."""
    gold = entry["answer"]
    rng = random.Random(entry["question"])
    others = [r for r in FAMILY_RELATIONS if r != gold]
    return [gold, *rng.sample(others, 3)]


def _distinct(candidates: list[str], limit: int = 4) -> list[str]:
    return list(dict.fromkeys(candidates))[:limit]


def _reversal_options(entry: dict) -> list[str]:
    """The reversed word, the word itself and two rotations of the reversal."""
    gold = entry["answer"]
    return _distinct([gold, gold[::-1], gold[1:] + gold[0], gold[-1] + gold[:-1], "".join(sorted(gold))])


def _word_order_options(entry: dict) -> list[str]:
    """The reversed list, the original order and rotations of the reversal."""
    words = entry["answer"].split(", ")
    rotations = [", ".join(words[k:] + words[:k]) for k in range(1, len(words))]
    return _distinct([entry["answer"], ", ".join(reversed(words)), *rotations])


@dataclass(frozen=True)
class RGTask:
    """One reasoning-gym dataset at a chosen difficulty."""

    name: str
    dataset: str
    domain: str
    answer_format: str  # "math" or "text" for free answers; "choice" when ``options`` is set
    config: dict[str, Any] = field(default_factory=dict)
    options: Callable[[dict], list[str]] | None = None  # entry -> answer options (gold included)


RG_TASK_LIST = [
    # math
    RGTask("basic_arithmetic", "basic_arithmetic", "math", "math",
           dict(min_terms=2, max_terms=2, min_digits=1, max_digits=2, operators=("+", "-"),
                allow_parentheses=False, allow_negation=False)),
    RGTask("chain_sum", "chain_sum", "math", "math", dict(min_terms=2, max_terms=2, min_digits=1, max_digits=1)),
    RGTask("gcd", "gcd", "math", "math", dict(min_value=1, max_value=20)),
    # not in the default training mix: the held-out task type of the reflection evaluation
    RGTask("lcm", "lcm", "math", "math", dict(min_value=1, max_value=10)),
    # algorithmic
    RGTask("count_bits", "count_bits", "algorithmic", "math", dict(min_n=1, max_n=16)),
    RGTask("base_conversion", "base_conversion", "algorithmic", "math",
           dict(min_base=2, max_base=10, min_value=0, max_value=6)),
    # language
    RGTask("letter_counting", "letter_counting", "language", "math", dict(min_words=1, max_words=3)),
    RGTask("spell_backward_mc", "spell_backward", "language", "choice", dict(min_word_len=4, max_word_len=5),
           options=_reversal_options),
    RGTask("word_sequence_reversal_mc", "word_sequence_reversal", "language", "choice",
           dict(min_words=3, max_words=4), options=_word_order_options),
    # logic, as multiple choice
    RGTask("syllogism_mc", "syllogism", "logic", "choice", {}, options=lambda entry: ["Yes", "No"]),
    RGTask("family_relationships_mc", "family_relationships", "logic", "choice",
           dict(min_family_size=3, max_family_size=4), options=_family_options),
    RGTask("color_cube_rotation_mc", "color_cube_rotation", "logic", "choice",
           dict(min_rotations=1, max_rotations=1), options=_cube_colours),
    RGTask("weekday_mc", "calendar_arithmetic", "logic", "choice", dict(tasks=["weekday_of_date"]),
           options=lambda entry: WEEKDAYS),
]
RG_TASKS = {task.name: task for task in RG_TASK_LIST}

# The tasks' own answer-format sentences, replaced by the options and a letter instruction.
_FORMAT_SENTENCE = re.compile(
    r"\s*\(?(answer (yes or no|with a single word)|provide only [^.\n]*|reply with just [^.\n]*|"
    r"provide the relationship in one word|name the day of the week in full|write out the full weekday name)"
    r"[.)]*", re.IGNORECASE)


def _multiple_choice(entry: dict, options: list[str], position: int,
                     rng: random.Random) -> tuple[str, str, list[str]]:
    """Question with lettered options, the gold one at ``position`` (modulo the number of options)
    and the others shuffled; the task's own answer-format sentence is dropped. Returns the
    question, the gold letter and the options in order."""
    gold = entry["answer"].strip().rstrip(".")
    others = [o for o in options if o.lower() != gold.lower()]
    rng.shuffle(others)
    ordered = others[:]
    ordered.insert(position % len(options), gold)
    letters = string.ascii_uppercase[: len(ordered)]
    body = _FORMAT_SENTENCE.sub("", entry["question"]).rstrip()
    listing = "\n".join(f"{letter}. {option}" for letter, option in zip(letters, ordered))
    question = f"{body}\nOptions:\n{listing}\nAnswer with the letter of the correct option."
    return question, letters[ordered.index(gold)], ordered


def rg_items(name: str, n: int, seed: int) -> list[TaskItem]:
    """``n`` items of task ``name`` generated with ``seed`` (the same seed gives the same items)."""
    import reasoning_gym

    if name not in RG_TASKS:
        raise ValueError(f"Unknown reasoning-gym task {name!r}; registered: {', '.join(RG_TASKS)}.")
    task = RG_TASKS[name]
    dataset = reasoning_gym.create_dataset(task.dataset, size=n, seed=seed, **task.config)
    items, offset = [], random.Random(f"{name}/{seed}").randrange(26)
    for index, entry in enumerate(dataset):
        entry = {"question": entry["question"], "answer": str(entry["answer"]),
                 "metadata": _jsonable(entry["metadata"])}
        metadata: dict[str, Any] = {"rg_dataset": task.dataset, "rg_config": _jsonable(task.config),
                                    "rg_entry": entry}
        if task.options is not None:
            # Gold positions cycle through the letters (from a seeded offset), so that no letter is
            # right more often than another and a model's letter preference cannot pass for skill.
            question, answer, options = _multiple_choice(entry, task.options(entry), index + offset,
                                                         random.Random(f"{name}/{seed}/{index}"))
            metadata["options"] = options
            checker = "choice"
        else:
            question, answer, checker = entry["question"], entry["answer"], "reasoning_gym"
        items.append(TaskItem(id=f"{name}/s{seed}/{index}", task=name, domain=task.domain, question=question,
                              answer=answer, answer_format=task.answer_format, checker=checker,
                              metadata=metadata))
    return items


def _jsonable(value: Any) -> Any:
    """reasoning-gym metadata holds tuples, enums and dates: make them plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return getattr(value, "value", str(value))

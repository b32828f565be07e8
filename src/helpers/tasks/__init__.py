"""Tasks with verifiable answers: one record type, a registry of sources, checkers per format.

>>> from helpers.tasks import check
>>> from helpers.tasks.registry import build_items
>>> items = build_items(["basic_arithmetic", "syllogism_mc"], n_per_task=2, seed=0)
>>> [item.id for item in items]  # interleaved across tasks
['basic_arithmetic/s0/0', 'syllogism_mc/s0/0', 'basic_arithmetic/s0/1', 'syllogism_mc/s0/1']
>>> items[0].question, items[0].answer
('Calculate 5 - 33.', '-28')
>>> verdict = check(items[0], "Thought: 5 - 33 = -28.\\nAction: Finish[-28]")
>>> verdict.correct, verdict.extracted
(True, '-28')
>>> check(items[0], "Thought: 33 - 5 = 28.\\nAction: Finish[28]").correct
False

Every question, whatever its source, becomes a ``TaskItem``; the model answers in ReflectEvo's
ReAct style and ends with ``Finish[answer]``. ``check`` pulls the answer out of the response and
applies the item's checker (see ``helpers.tasks.checkers``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ANSWER_FORMATS = ("choice", "text", "math", "code")


@dataclass(frozen=True)
class TaskItem:
    """One question with a checkable gold answer.

    id: unique across sources and seeds, e.g. ``rg/basic_arithmetic/s0/3``.
    task: the registered task name (``rg/basic_arithmetic``, ``humaneval``, ...).
    domain: "logic", "math", "algorithmic", "language" or "code".
    question: the full text shown to the model (options included for multiple choice).
    answer: the gold answer as text (a letter for "choice"; for "code", the reference solution).
    answer_format: one of ANSWER_FORMATS; decides how the answer is extracted from a response.
    checker: name of the checker in ``helpers.tasks.checkers.CHECKERS``.
    metadata: what the checker needs beyond the answer (tests and entry point for code, the
        reasoning-gym entry for its own scorer, ...). JSON-serializable.
    """

    id: str
    task: str
    domain: str
    question: str
    answer: str
    answer_format: str
    checker: str
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self):
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {self.answer_format!r} "
                             f"for item {self.id!r}.")


@dataclass
class Verdict:
    """Result of checking a response: ``extracted`` is None when no answer could be found."""

    correct: bool
    extracted: str | None
    score: float
    detail: str = ""


from .checkers import CHECKERS, check, extract_answer  # noqa: E402

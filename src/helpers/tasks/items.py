"""The records every task source produces: ``TaskItem`` (a question with its gold answer) and
``Verdict`` (a checked response)."""

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

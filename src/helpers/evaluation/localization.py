"""Error localization: does a reflection point at the step where the first trial went wrong?

    cases = localization_cases(results, judge_engine, per_variant=30)
    localization_summary(cases)      # per variant: programmatic and judged localization accuracy

A failed trial is split into steps (sentences and lines; ``split_steps``). Two checks, by task:

* **Programmatic**, for arithmetic tasks (``ARITHMETIC_TASKS``): every claim "expression = number"
  ("is", "equals" and "gives" count as "=") is evaluated exactly; the first step with a false
  claim is where the trial went wrong, or, when every claim holds, the step with the final
  ``Finish[...]`` answer. The reflection points at the first step whose expression it quotes,
  else the first step whose claimed result it mentions, else the step it shares the most content
  words with (at least ``MIN_SHARED_WORDS``). Localized when the two steps are the same.
* **LM judge**, for the other tasks: the judge reads the question, the gold answer, the numbered
  steps and the reflection, and is scored on "Yes" against "No" for ``LOCALIZATION_JUDGE_PROMPT``.
  The judge also sees the arithmetic cases: its agreement with the programmatic check there says
  how far its verdicts on the other tasks can be trusted.
"""

from __future__ import annotations

import ast
import operator
import random
import re
from dataclasses import dataclass
from fractions import Fraction

import pandas as pd

from ..generation import Engine
from ..tasks.checkers import finish_content

ARITHMETIC_TASKS = ("basic_arithmetic", "chain_sum")
MIN_SHARED_WORDS = 3
LOCALIZATION_JUDGE_PROMPT = (
    "A student answered a question wrongly and then wrote a reflection about the mistake.\n\n"
    "Question: {question}\nCorrect answer: {answer}\n\nThe student's solution, step by step:\n{steps}\n\n"
    "The student's reflection:\n{reflection}\n\n"
    "Does the reflection point to the step where the solution first goes wrong? Answer with Yes or No."
)

_NUMBER = r"-?\d+(?:\.\d+)?"
_CLAIM = re.compile(rf"(?<![\d.])({_NUMBER}(?:\s*(?:[-+*/×÷]|x(?=\s*-?\d))\s*{_NUMBER})+)\s*(?:=|is|equals|gives)\s*"
                    rf"({_NUMBER})", re.IGNORECASE)
_STEP_BREAK = re.compile(r"\n+|(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[a-z]{4,}")
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


@dataclass
class Step:
    """One step of a trial with its arithmetic claims as (expression, claimed result, true value)."""

    text: str
    claims: list[tuple[str, str, Fraction | None]]

    @property
    def wrong_claim(self) -> bool:
        return any(value is not None and value != Fraction(stated) for _, stated, value in self.claims)

    @property
    def is_final(self) -> bool:
        return finish_content(self.text) is not None


def evaluate_expression(expression: str) -> Fraction | None:
    """Exact value of a +, -, *, / expression of numbers; None when it is not one (or divides by 0)."""
    text = expression.replace("×", "*").replace("÷", "/").replace("x", "*").replace("X", "*")

    def value(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return Fraction(str(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        raise ValueError(f"not arithmetic: {ast.dump(node)}")

    try:
        return value(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError):
        return None


def split_steps(trial: str) -> list[Step]:
    """A trial's sentences and lines as steps, each with its arithmetic claims."""
    texts = [t.strip() for t in _STEP_BREAK.split(trial.strip()) if t.strip()]
    return [Step(text, [(m.group(1), m.group(2), evaluate_expression(m.group(1))) for m in _CLAIM.finditer(text)])
            for text in texts]


def first_error_step(steps: list[Step]) -> int | None:
    """Index of the first step with a false claim, else of the final-answer step (else the last)."""
    for index, step in enumerate(steps):
        if step.wrong_claim:
            return index
    finals = [i for i, step in enumerate(steps) if step.is_final]
    return finals[-1] if finals else (len(steps) - 1 if steps else None)


def _mentions_number(text: str, number: str) -> bool:
    return re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", text) is not None


def claimed_step(reflection: str, steps: list[Step]) -> int | None:
    """The step a reflection points at (see the module docstring), or None when it points nowhere."""
    compact = re.sub(r"\s+", "", reflection)
    for index, step in enumerate(steps):
        if any(re.sub(r"\s+", "", expression) in compact for expression, _, _ in step.claims):
            return index
    for index, step in enumerate(steps):
        results = [stated for _, stated, _ in step.claims] + ([finish_content(step.text).strip()] if step.is_final else [])
        if any(r and _mentions_number(reflection, r) for r in results):
            return index
    words = set(_WORD.findall(reflection.lower()))
    overlaps = [len(words & set(_WORD.findall(step.text.lower()))) for step in steps]
    if overlaps and max(overlaps) >= MIN_SHARED_WORDS:
        return overlaps.index(max(overlaps))
    return None


def judge_localization(engine: Engine, cases: list[dict]) -> list[float]:
    """log P("Yes") - log P("No") of the judge for each case (question, answer, trial, reflection)."""
    prompts = []
    for case in cases:
        steps = "\n".join(f"{n}. {s.text}" for n, s in enumerate(split_steps(case["trial"]), start=1))
        content = LOCALIZATION_JUDGE_PROMPT.format(question=case["question"], answer=case["answer"], steps=steps,
                                                   reflection=case["reflection"])
        prompts += [[{"role": "user", "content": content}]] * 2
    scores = engine.logprobs(prompts, ["Yes", "No"] * len(cases))
    return [scores[2 * i].total - scores[2 * i + 1].total for i in range(len(cases))]


def localization_cases(results: dict[str, list[dict]], judge: Engine, per_variant: int = 30,
                       seed: int = 0) -> pd.DataFrame:
    """For up to ``per_variant`` failed first trials with a reflection per variant (a seeded
    sample): the programmatic check where the task allows it, and the judge's verdict on all."""
    cases = []
    for name, records in results.items():
        failures = sorted((r for r in records if not r["correct_t1"] and r.get("reflection")), key=lambda r: r["id"])
        for record in random.Random(f"{seed}/{name}").sample(failures, min(per_variant, len(failures))):
            steps = split_steps(record["trial1"]["text"])
            programmatic = record["task"] in ARITHMETIC_TASKS
            actual = first_error_step(steps) if programmatic else None
            claimed = claimed_step(record["reflection"], steps)
            cases.append({"variant": name, "id": record["id"], "task": record["task"],
                          "question": record["question"], "answer": record["answer"],
                          "trial": record["trial1"]["text"], "reflection": record["reflection"],
                          "method": "programmatic" if programmatic else "lm_judge", "steps": len(steps),
                          "actual_step": actual, "claimed_step": claimed,
                          "programmatic_localized": (claimed is not None and claimed == actual) if programmatic else None})
    frame = pd.DataFrame(cases)
    if frame.empty:
        return frame
    frame["judge_margin"] = judge_localization(judge, cases)
    frame["judge_localized"] = frame["judge_margin"] > 0
    frame["localized"] = frame["programmatic_localized"].where(frame["method"] == "programmatic",
                                                               frame["judge_localized"]).astype(bool)
    return frame


def localization_summary(cases: pd.DataFrame) -> pd.DataFrame:
    """Per variant: cases, localization accuracy overall, by the programmatic check and by the
    judge, and the judge's agreement with the programmatic check on the arithmetic cases."""
    rows = []
    for name, group in cases.groupby("variant", sort=False):
        checked = group[group["method"] == "programmatic"]
        judged = group[group["method"] == "lm_judge"]
        rows.append({"variant": name, "cases": len(group), "localization_accuracy": group["localized"].mean(),
                     "programmatic_cases": len(checked),
                     "programmatic_accuracy": checked["programmatic_localized"].astype(bool).mean()
                     if len(checked) else float("nan"),
                     "judged_cases": len(judged),
                     "judge_accuracy": judged["judge_localized"].mean() if len(judged) else float("nan"),
                     "judge_agreement_on_programmatic": (checked["judge_localized"]
                                                         == checked["programmatic_localized"].astype(bool)).mean()
                     if len(checked) else float("nan")})
    return pd.DataFrame(rows)

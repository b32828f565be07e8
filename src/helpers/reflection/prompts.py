"""Prompts of the trial-reflect-retry pipeline and the instruction pool (ReflectEvo's layout).

* ``reason_prompt(question)`` -- trial 1: ReAct style, the model thinks and ends with
  ``Action: Finish[answer]``; the verdict ("Observation: Answer is CORRECT/INCORRECT") is appended
  to the trial afterwards.
* ``reflect_prompt(question, failed_trial, instruction)`` -- the reflector sees the question and the
  failed trial with its verdict, and follows one instruction of the pool: localize the error, give
  the likely reason and a plan, never state the answer, about 100 words at most.
* ``retry_prompt(question, failed_trial, reflection)`` -- trial 2: the reasoning prompt with the
  reflection and the failed trial in context; ``plain_retry_prompt`` is the same without a
  reflection (the evaluation's no-reflection baseline).
* ``self_judge_prompt(question, trial)`` -- the model judges its own first trial (evaluation
  without an oracle).
* ``prompt_text(messages)`` -- a chat prompt as plain text, as curated files store it.

The instruction pool has 2 x 8 x 2 = 32 instructions: verification style x review focus x plan
level. Its version goes into every run manifest, so that data made with another pool is told apart.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

INSTRUCTION_POOL_VERSION = "reflectevo-32-v1"

VERIFICATION_STYLES = {
    "trace": "Trace the failed solution step by step and find the first step where it goes wrong.",
    "review": "Quickly review the failed solution as a whole, without step-by-step verification, "
              "and name the part that is wrong.",
}
REVIEW_FOCUSES = {
    "calculation": "Focus on calculation errors: arithmetic, counting and numeric slips.",
    "algorithm": "Focus on the logic of the algorithm or procedure that was applied.",
    "logical_coherence": "Focus on logical coherence: whether each conclusion follows from the previous steps.",
    "internal_consistency": "Focus on internal consistency: statements or values that contradict each other.",
    "context": "Focus on the context and requirements of the question that were missed or misread.",
    "relevance": "Focus on relevance: whether the solution answered the question that was actually asked.",
    "answer_format": "Focus on the required answer format and whether the final answer follows it.",
    "factual": "Focus on factual accuracy: facts, definitions or rules that were stated wrongly.",
}
PLAN_LEVELS = {
    "high_level": "Then give a short high-level plan for solving the question correctly.",
    "low_level": "Then give low-level, concrete corrections to the wrong steps.",
}


@dataclass(frozen=True)
class Instruction:
    """One instruction of the pool; ``id`` is stable (``trace/calculation/high_level``)."""

    verification: str
    focus: str
    plan: str

    @property
    def id(self) -> str:
        return f"{self.verification}/{self.focus}/{self.plan}"

    @property
    def text(self) -> str:
        return " ".join([VERIFICATION_STYLES[self.verification], REVIEW_FOCUSES[self.focus], PLAN_LEVELS[self.plan]])


def instruction_pool() -> list[Instruction]:
    """All 32 instructions, in a fixed order."""
    return [Instruction(v, f, p) for v, f, p in itertools.product(VERIFICATION_STYLES, REVIEW_FOCUSES, PLAN_LEVELS)]


REASON_INSTRUCTIONS = (
    "Solve the question. Think briefly in a Thought, then give your final answer as Action: Finish[answer]. "
    "Put only the answer inside the brackets: a letter for multiple choice, a number for arithmetic."
)
# Worked examples as earlier chat turns: a small model copies an example that sits inside the
# question's own message, but follows the format of an earlier turn.
REASON_EXAMPLES = (
    ("Question: Which number is larger, 7 or 4?",
     "Thought: 7 is more than 4, so 7 is larger.\nAction: Finish[7]"),
    ("Question: Is a cat an animal?\nOptions:\nA. No\nB. Yes\nAnswer with the letter of the correct option.",
     "Thought: A cat is a mammal, and mammals are animals, so the answer is Yes, which is option B.\n"
     "Action: Finish[B]"),
)
CORRECT = "Observation: Answer is CORRECT"
INCORRECT = "Observation: Answer is INCORRECT"
# Generation stops where the model would start a new turn of the ReAct loop on its own.
TRIAL_STOP = ("Observation:", "\nQuestion:")
REFLECTION_STOP = ("\nQuestion:", "Previous trial")


def _with_examples(content: str) -> list[dict]:
    """The instructions and worked examples as earlier turns, then ``content`` as the last turn."""
    messages = []
    for number, (question, answer) in enumerate(REASON_EXAMPLES):
        messages.append({"role": "user", "content": f"{REASON_INSTRUCTIONS}\n\n{question}" if number == 0 else question})
        messages.append({"role": "assistant", "content": answer})
    return messages + [{"role": "user", "content": content}]


def reason_prompt(question: str) -> list[dict]:
    return _with_examples(f"Question: {question}")


def trial_text(reasoning: str, correct: bool) -> str:
    """A finished trial as stored in the data: the reasoning and the verdict on its own line."""
    return f"Thought: {reasoning.strip()}\n{CORRECT if correct else INCORRECT}"


def without_verdict(trial: str) -> str:
    """A stored trial without its "Observation: Answer is ..." line: what the model wrote."""
    return trial.split("\nObservation:")[0].strip()


def reflect_prompt(question: str, failed_trial: str, instruction: Instruction) -> list[dict]:
    content = (
        "You were unsuccessful in answering the question below. Write a self-reflection that helps "
        "you answer it correctly next time.\n\n"
        f"Question: {question}\n\nPrevious trial and your incorrect solution:\n{failed_trial}\n\n"
        f"{instruction.text} Localize the error, say why it happened, and give the plan. "
        "Do not state the answer. Use at most 100 words."
    )
    return [{"role": "user", "content": content}]


def retry_prompt(question: str, failed_trial: str, reflection: str) -> list[dict]:
    return _with_examples(
        f"Question: {question}\n\nYour previous trial was wrong:\n{failed_trial}\n\n"
        f"Your reflection on that trial, which localizes the error and plans a correction:\n{reflection.strip()}\n\n"
        "Now solve the question again.")


def plain_retry_prompt(question: str, failed_trial: str) -> list[dict]:
    """Trial 2 without a reflection: the baseline "base model, plain retry" of the evaluation."""
    return _with_examples(f"Question: {question}\n\nYour previous trial was wrong:\n{failed_trial}\n\n"
                          "Now solve the question again.")


def self_judge_prompt(question: str, trial: str) -> list[dict]:
    """The model judges its own first trial (no oracle); scored by log P("Yes") - log P("No")."""
    content = (f"Question: {question}\n\nA solution to the question:\n{trial.strip()}\n\n"
               "Is the final answer of this solution correct? Answer with Yes or No.")
    return [{"role": "user", "content": content}]


def prompt_text(messages: list[dict]) -> str:
    """A chat prompt as plain text, every turn headed by its role: how curated files store the
    full prompt a trial or reflection was written after (the release stores text, and our worked
    examples are earlier turns, so the roles are part of the prompt)."""
    return "\n\n".join(f"{message['role'].upper()}: {message['content']}" for message in messages)

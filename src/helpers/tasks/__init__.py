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

from .checkers import CHECKERS, check, extract_answer
from .items import ANSWER_FORMATS, TaskItem, Verdict

__all__ = ["ANSWER_FORMATS", "CHECKERS", "TaskItem", "Verdict", "check", "extract_answer"]
